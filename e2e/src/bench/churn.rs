//! The churn benchmark: on a hollow cluster in this process (API server, scheduler, controller
//! manager, hollow kubelets), R pod changes a second for a duration — a steady mix of pods
//! created, updated (a label patched) and deleted by the client, and Deployments scaled up and
//! down by one (a pod the controller manager creates or deletes) — with a read (get and list of
//! the namespace's pods) every second. Measured: the API p99 latency per verb as the API server's
//! own `apiserver_request_duration_seconds` histograms saw it over the window (every
//! component's requests), and as the client measured its own; errors (client requests refused
//! or failed, and 5xx answers of the API server); and the watch lag — the time from a write's
//! response to a watch seeing the event of the resourceVersion it returned. The Kubernetes SLO:
//! API p99 ≤ 1 s per verb, no errors.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;

use super::apimetrics::Snapshot;
use super::hollow_cluster::{
    HollowCluster, Options, RunningPods, create_deployment, sleep_container,
};
use super::report::{Report, percentile_ms};
use super::server::{EventObject, Http, create_namespace, http, request_as, watch_collection};

/// The Kubernetes API latency SLO: p99 ≤ 1 s.
const SLO: Duration = Duration::from_secs(1);
const NS: &str = "churn";
/// Bare pods kept alive before deletes begin.
const MIN_POOL: usize = 10;

/// Parameters of the churn benchmark.
#[derive(Clone, Debug)]
pub struct Config {
    /// Hollow nodes.
    pub nodes: usize,
    /// Pod changes per second.
    pub rate: f64,
    /// How long the churn lasts.
    pub duration: Duration,
    /// Deployments scaled.
    pub deployments: usize,
    /// Their replicas at the start.
    pub replicas: usize,
    /// The API server on etcd (started here), not the embedded store.
    pub etcd: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            nodes: 100,
            rate: 20.0,
            duration: Duration::from_secs(300),
            deployments: 10,
            replicas: 30,
            etcd: false,
        }
    }
}

/// What the client measured.
#[derive(Default)]
struct Client {
    /// Latency by "verb resource".
    latency: BTreeMap<String, Vec<Duration>>,
    /// Failed requests: how many, and the first few.
    errors: Vec<String>,
    error_count: usize,
    /// (resourceVersion a write returned, when its response arrived).
    writes: Vec<(String, Instant)>,
    /// Pod changes made.
    changes: usize,
}

/// The churn's state and its measurements, shared by the requests in flight.
struct Churn {
    http: Http,
    base: String,
    /// Bare pods alive (oldest first), and the next pod's number.
    pods: Mutex<(VecDeque<String>, usize)>,
    /// Each Deployment's replicas as last set.
    replicas: Mutex<Vec<usize>>,
    client: Mutex<Client>,
}

/// Records when each resourceVersion was first seen on the watch of `path`.
fn watch_versions(
    base: String,
    path: String,
    seen: Arc<Mutex<HashMap<String, Instant>>>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    watch_collection(base, path, stop, move |ev, now| {
        seen.lock()
            .expect("lock")
            .entry(ev.object.metadata.resource_version.clone())
            .or_insert(now);
    })
}

fn bare_pod(name: &str) -> Bytes {
    Bytes::from(
        serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "bare", "gen": "0"}},
            "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [sleep_container()]
            }
        })
        .to_string(),
    )
}

impl Churn {
    /// Sends one request, records its latency under `what` and, for a write, the
    /// resourceVersion it returned; an unexpected code is an error.
    async fn call(
        &self,
        what: &str,
        method: &str,
        url: &str,
        content_type: &str,
        body: Option<Bytes>,
        ok: &[u16],
        write: bool,
    ) -> bool {
        let t = Instant::now();
        let r = request_as(&self.http, method, url, content_type, body).await;
        let done = Instant::now();
        let mut c = self.client.lock().expect("lock");
        c.latency
            .entry(what.to_string())
            .or_default()
            .push(done - t);
        let failure = match r {
            Ok((code, body)) if ok.contains(&code) => {
                if write && let Ok(o) = serde_json::from_slice::<EventObject>(&body) {
                    c.writes.push((o.metadata.resource_version, done));
                }
                return true;
            }
            Ok((code, body)) => format!(
                "{what}: {code} {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ),
            Err(e) => format!("{what}: {e:#}"),
        };
        c.error_count += 1;
        if c.errors.len() < 5 {
            c.errors.push(failure);
        }
        false
    }

    fn pods_url(&self) -> String {
        format!("{}/api/v1/namespaces/{NS}/pods", self.base)
    }

    /// Change number `k`: create, update, delete a bare pod, scale a Deployment up, down.
    async fn change(&self, k: usize) {
        let json = "application/json";
        let merge = "application/merge-patch+json";
        let pods = self.pods_url();
        let counted = match k % 5 {
            0 => self.create_pod().await,
            1 => {
                // The newest pod: deletes take the oldest, and only from a pool of
                // MIN_POOL, so no update races a delete of the same pod.
                let name = self.pods.lock().expect("lock").0.back().cloned();
                match name {
                    Some(name) => {
                        let patch =
                            serde_json::json!({"metadata": {"labels": {"gen": k.to_string()}}});
                        self.call(
                            "patch pods",
                            "PATCH",
                            &format!("{pods}/{name}"),
                            merge,
                            Some(Bytes::from(patch.to_string())),
                            &[200],
                            true,
                        )
                        .await
                    }
                    None => self.create_pod().await,
                }
            }
            2 => {
                let name = {
                    let mut p = self.pods.lock().expect("lock");
                    if p.0.len() > MIN_POOL {
                        p.0.pop_front()
                    } else {
                        None
                    }
                };
                match name {
                    Some(name) => {
                        self.call(
                            "delete pods",
                            "DELETE",
                            &format!("{pods}/{name}"),
                            json,
                            None,
                            &[200, 202],
                            true,
                        )
                        .await
                    }
                    None => self.create_pod().await,
                }
            }
            step => {
                let n = self.replicas.lock().expect("lock").len();
                let d = (k / 5) % n.max(1);
                let replicas = {
                    let mut r = self.replicas.lock().expect("lock");
                    if step == 3 {
                        r[d] += 1;
                    } else {
                        r[d] = r[d].saturating_sub(1);
                    }
                    r[d]
                };
                let patch = serde_json::json!({"spec": {"replicas": replicas}});
                self.call(
                    "patch deployments",
                    "PATCH",
                    &format!(
                        "{}/apis/apps/v1/namespaces/{NS}/deployments/d-{d}",
                        self.base
                    ),
                    merge,
                    Some(Bytes::from(patch.to_string())),
                    &[200],
                    true,
                )
                .await
            }
        };
        if counted {
            self.client.lock().expect("lock").changes += 1;
        }
    }

    async fn create_pod(&self) -> bool {
        let name = {
            let mut p = self.pods.lock().expect("lock");
            p.1 += 1;
            format!("bare-{:06}", p.1)
        };
        let ok = self
            .call(
                "create pods",
                "POST",
                &self.pods_url(),
                "application/json",
                Some(bare_pod(&name)),
                &[201],
                true,
            )
            .await;
        if ok {
            self.pods.lock().expect("lock").0.push_back(name);
        }
        ok
    }

    /// The reads: a get of a bare pod (or the list when there is none) and a list.
    async fn read(&self) {
        let pods = self.pods_url();
        let name = self.pods.lock().expect("lock").0.back().cloned();
        if let Some(name) = name {
            self.call(
                "get pods",
                "GET",
                &format!("{pods}/{name}"),
                "application/json",
                None,
                &[200, 404],
                false,
            )
            .await;
        }
        self.call(
            "list pods",
            "GET",
            &pods,
            "application/json",
            None,
            &[200],
            false,
        )
        .await;
    }
}

/// The churn on `cluster`: the figures.
async fn churn_on(
    cluster: &HollowCluster,
    cfg: &Config,
    report: &mut Report,
) -> anyhow::Result<()> {
    let base = cluster.server.url.clone();
    create_namespace(&cluster.http, &base, NS).await?;
    let running = RunningPods::start(&base, Some(NS));
    for d in 0..cfg.deployments {
        create_deployment(&cluster.http, &base, NS, &format!("d-{d}"), cfg.replicas).await?;
    }
    let want = cfg.deployments * cfg.replicas;
    running
        .wait(
            want,
            Duration::from_secs(120) + Duration::from_millis(20) * want as u32,
        )
        .await?;
    running.stop().await?;
    let churn = Arc::new(Churn {
        http: http(),
        base: base.clone(),
        pods: Mutex::new((VecDeque::new(), 0)),
        replicas: Mutex::new(vec![cfg.replicas; cfg.deployments]),
        client: Mutex::new(Client::default()),
    });
    let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let watches = [
        format!("/api/v1/namespaces/{NS}/pods"),
        format!("/apis/apps/v1/namespaces/{NS}/deployments"),
    ]
    .map(|p| watch_versions(base.clone(), p, seen.clone(), stop_rx.clone()));
    let before = Snapshot::fetch(&cluster.http, &base).await?;
    let started = Instant::now();
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / cfg.rate.max(0.01)));
    let mut reads = tokio::time::interval(Duration::from_secs(1));
    let mut inflight = tokio::task::JoinSet::new();
    let mut k = 0;
    while started.elapsed() < cfg.duration {
        tokio::select! {
            _ = ticks.tick() => {
                let c = churn.clone();
                inflight.spawn(async move { c.change(k).await });
                k += 1;
            }
            _ = reads.tick() => {
                let c = churn.clone();
                inflight.spawn(async move { c.read().await });
            }
        }
        while inflight.try_join_next().is_some() {}
    }
    while inflight.join_next().await.is_some() {}
    let wall = started.elapsed();
    let after = Snapshot::fetch(&cluster.http, &base).await?;
    // The last writes' events: a moment to arrive.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = stop_tx.send(true);
    for w in watches {
        w.await.context("a watch panicked")??;
    }
    let window = after.since(&before);
    let client = std::mem::take(&mut *churn.client.lock().expect("lock"));
    let seen = std::mem::take(&mut *seen.lock().expect("lock"));

    report.measure("pod changes made", client.changes as f64, "changes");
    report.measure(
        "pod changes",
        client.changes as f64 / wall.as_secs_f64(),
        "changes/s",
    );
    let all = window.all();
    report.measure("server, every verb: requests", all.count as f64, "requests");
    report.measure("server, every verb: p99", all.quantile_ms(0.99), "ms");
    let mut worst_server: f64 = 0.0;
    for (verb, h) in window.by_verb() {
        let p99 = h.quantile_ms(0.99);
        worst_server = worst_server.max(p99);
        report.measure(
            &format!("server {verb}: requests"),
            h.count as f64,
            "requests",
        );
        report.measure(&format!("server {verb}: p50"), h.quantile_ms(0.5), "ms");
        report.measure(&format!("server {verb}: p99"), p99, "ms");
        report.measure(
            &format!("server {verb}: within 1 s"),
            100.0 * h.share_within(1.0),
            "%",
        );
    }
    let mut worst_client: f64 = 0.0;
    let mut distributions: Vec<(String, Vec<Duration>)> = Vec::new();
    for (what, mut v) in client.latency {
        v.sort();
        let p99 = percentile_ms(&v, 0.99);
        worst_client = worst_client.max(p99);
        report.measure(
            &format!("client {what}: requests"),
            v.len() as f64,
            "requests",
        );
        report.measure(&format!("client {what}: p50"), percentile_ms(&v, 0.5), "ms");
        report.measure(&format!("client {what}: p99"), p99, "ms");
        distributions.push((what.to_string(), v));
    }
    report.measure("client errors", client.error_count as f64, "errors");
    report.measure(
        "server 5xx answers",
        window.server_errors() as f64,
        "errors",
    );
    let mut lag: Vec<Duration> = Vec::new();
    let mut unseen = 0;
    for (rv, answered) in &client.writes {
        match seen.get(rv) {
            Some(t) => lag.push(t.saturating_duration_since(*answered)),
            None => unseen += 1,
        }
    }
    lag.sort();
    distributions.push(("watch lag".into(), lag.clone()));
    let lines: Vec<(&str, &[Duration])> = distributions
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect();
    report.cdf("client latency by verb, and watch lag", &lines);
    report.measure("watch lag p50", percentile_ms(&lag, 0.5), "ms");
    report.measure("watch lag p99", percentile_ms(&lag, 0.99), "ms");
    report.measure("watch lag max", percentile_ms(&lag, 1.0), "ms");
    report.measure("writes not seen on the watch", unseen as f64, "writes");
    report.ratio(
        "1 s SLO / worst verb p99 (server histograms)",
        SLO.as_secs_f64() * 1000.0 / worst_server.max(1e-3),
        1.0,
    );
    report.ratio(
        "1 s SLO / worst verb p99 (client)",
        SLO.as_secs_f64() * 1000.0 / worst_client.max(1e-3),
        1.0,
    );
    for e in &client.errors {
        eprintln!("churn error: {e}");
    }
    Ok(())
}

/// Runs the churn benchmark.
pub async fn run(cfg: &Config) -> anyhow::Result<Report> {
    let mut report = Report::new("churn");
    let p = &mut report.parameters;
    p.insert("hollow_nodes".into(), cfg.nodes.into());
    p.insert("changes_per_second".into(), cfg.rate.into());
    p.insert("duration_s".into(), cfg.duration.as_secs_f64().into());
    p.insert(
        "deployments".into(),
        format!("{} x {} replicas", cfg.deployments, cfg.replicas).into(),
    );
    p.insert(
        "store".into(),
        if cfg.etcd { "etcd" } else { "embedded" }.into(),
    );
    p.insert(
        "mix".into(),
        "per 5 changes: create, label-patch, delete a bare pod; scale a Deployment up by one, \
         then down by one; plus a get and a list of the namespace's pods every second"
            .into(),
    );
    p.insert(
        "latency".into(),
        "server: the API server's apiserver_request_duration_seconds over the window (every \
         component's requests, interpolated within buckets); client: this client's own \
         requests; watch lag: a write's response → a watch seeing its resourceVersion"
            .into(),
    );
    let cluster = HollowCluster::start(&Options {
        nodes: cfg.nodes,
        etcd: cfg.etcd,
        spread: false,
    })
    .await?;
    let result = tokio::select! {
        r = churn_on(&cluster, cfg, &mut report) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    cluster.stop().await;
    result?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_short_churn_makes_changes_without_errors() {
        let cfg = Config {
            nodes: 3,
            rate: 20.0,
            duration: Duration::from_secs(5),
            deployments: 2,
            replicas: 3,
            etcd: false,
        };
        let report = run(&cfg).await.expect("the benchmark runs");
        let value = |name: &str| {
            report
                .value(name)
                .unwrap_or_else(|| panic!("{name} in {:#?}", report.measurements))
        };
        assert!(
            value("pod changes made") > 0.0,
            "{:#?}",
            report.measurements
        );
        assert_eq!(value("client errors"), 0.0);
        assert_eq!(value("server 5xx answers"), 0.0);
        assert!(value("server create: requests") > 0.0);
        assert!(value("client create pods: requests") > 0.0);
        assert!(value("watch lag p50") <= value("watch lag p99"));
    }
}
