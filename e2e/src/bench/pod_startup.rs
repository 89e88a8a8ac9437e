//! The pod-startup benchmark, in two parts.
//!
//! Real: an API server (embedded store) started in-process and one real node — rkubelet
//! in-process with its managed containerd in a network namespace of its own
//! ([`rkube_testkit::node::NetnsNode`]), the offline busybox and pause images imported before
//! anything is measured. Pods already bound to the node (`spec.nodeName` set, image present)
//! are created one at a time (the next once the previous is Running) and then all at once;
//! the latency of each pod is from the client sending its create to a watch seeing
//! `status.phase` Running (and its Ready condition True): p50/p99/max and the wall time, with
//! the Kubernetes SLO (p99 ≤ 5 s) and the target (p99 ≤ 1 s) as ratios. A first pod,
//! before those, is reported on its own (cold).
//!
//! Hollow: one process — this one — running a hollow cluster (API server, scheduler,
//! controller manager and 100 hollow kubelets on the in-process fake runtime, see
//! [`super::hollow_cluster`]), and P pods bound round-robin across the nodes, C creates in
//! flight: pods/s from the first create to the last pod seen Running, and the p50/p99
//! latency. The baseline, in the same run on a fresh API server: the client creating the same
//! pods and writing their Running status itself (one merge patch, as the kubelet writes it),
//! seen on the same kind of watch — the API server's ceiling for this load.
//!
//! Deployment: on a fresh hollow cluster, one Deployment of 1,000 replicas — the controller
//! manager creates the pods, the scheduler binds them, the hollow kubelets run them: the time
//! from the Deployment's create to every pod seen Running (target ≤ 10 s), and each pod's
//! startup latency as the SLO defines it, from its creation (first seen on the watch) to a
//! watch seeing it Running (target p99 ≤ 1 s), split into created → scheduled → Running;
//! compared with the hollow part's bound pods, the API server's ceiling.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::watcher;
use rkube_testkit::etcd::EtcdServer;
use rkube_testkit::node::NetnsNode;

use super::apimetrics::Snapshot;
use super::control_plane::proc_stats;
use super::hollow_cluster::{HollowCluster, Options, deployment_json, node_name, sleep_container};
use super::report::{Report, percentile_ms};
use super::server::{
    Http, Server, create_namespace, each, http, kube_client, request, request_as, start_server,
    stop,
};

/// The Kubernetes pod startup SLO: p99 ≤ 5 s.
pub const SLO_P99: Duration = Duration::from_secs(5);
/// The target: p99 ≤ 1 s.
pub const TARGET_P99: Duration = Duration::from_secs(1);
/// How long a measured set of pods may take to all be Running.
const PHASE_LIMIT: Duration = Duration::from_secs(600);

/// Parameters of the pod-startup benchmark.
#[derive(Clone, Debug)]
pub struct Config {
    /// Run the real part (root, containerd).
    pub real: bool,
    /// Run the hollow part.
    pub hollow: bool,
    /// Pods on the real node, per mode (one at a time, all at once).
    pub pods: usize,
    /// Hollow nodes.
    pub hollow_nodes: usize,
    /// Pods across the hollow nodes.
    pub hollow_pods: usize,
    /// Creates in flight in the hollow part and its baseline.
    pub concurrency: usize,
    /// Run the Deployment part.
    pub deployment: bool,
    /// Replicas of the Deployment part's Deployment.
    pub replicas: usize,
    /// The hollow clusters' API server on etcd (started here), not the embedded store.
    pub etcd: bool,
    /// The Deployment part's scheduler spreads pods (`LeastAllocated`) instead of packing
    /// them.
    pub spread: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            real: true,
            hollow: true,
            pods: 50,
            hollow_nodes: 100,
            hollow_pods: 2_000,
            concurrency: 64,
            deployment: true,
            replicas: 1_000,
            etcd: false,
            spread: false,
        }
    }
}

/// When the watch first saw a pod (its creation), bound to a node, Running and Ready.
#[derive(Clone, Debug, Default)]
struct Seen {
    created: Option<Instant>,
    bound: Option<Instant>,
    /// The node it was bound to.
    node: Option<String>,
    running: Option<Instant>,
    ready: Option<Instant>,
}

fn is_running(p: &Pod) -> bool {
    p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// A watch on one namespace's pods that records when each is first seen Running and Ready.
struct StartupWatch {
    /// The pods seen Running so far.
    running: tokio::sync::watch::Receiver<HashSet<String>>,
    /// Ends once `want` pods were seen both Running and Ready.
    task: tokio::task::JoinHandle<anyhow::Result<HashMap<String, Seen>>>,
}

impl StartupWatch {
    /// Starts the watch and waits until its initial list is done.
    async fn start(client: kube::Client, ns: &str, want: usize) -> anyhow::Result<Self> {
        let api: Api<Pod> = Api::namespaced(client, ns);
        let (listed_tx, listed_rx) = tokio::sync::oneshot::channel::<()>();
        let (running_tx, running) = tokio::sync::watch::channel(HashSet::new());
        let task = tokio::spawn(async move {
            let mut listed = Some(listed_tx);
            let mut seen: HashMap<String, Seen> = HashMap::new();
            let mut complete = 0;
            let mut stream = watcher(api, watcher::Config::default()).boxed();
            while complete < want {
                let Some(ev) = stream.next().await else {
                    bail!("the pod watch ended after {complete} pods started")
                };
                let now = Instant::now();
                let p = match ev {
                    Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => p,
                    Ok(watcher::Event::InitDone) => {
                        if let Some(l) = listed.take() {
                            let _ = l.send(());
                        }
                        continue;
                    }
                    Ok(_) => continue,
                    Err(e) => bail!("pod watch: {e}"),
                };
                let name = p.metadata.name.clone().unwrap_or_default();
                let s = seen.entry(name.clone()).or_default();
                s.created.get_or_insert(now);
                if s.bound.is_none()
                    && let Some(node) = p.spec.as_ref().and_then(|s| s.node_name.clone())
                {
                    s.bound = Some(now);
                    s.node = Some(node);
                }
                let was_complete = s.running.is_some() && s.ready.is_some();
                if s.running.is_none() && is_running(&p) {
                    s.running = Some(now);
                    running_tx.send_modify(|r| {
                        r.insert(name);
                    });
                }
                if s.ready.is_none() && is_ready(&p) {
                    s.ready = Some(now);
                }
                if !was_complete && s.running.is_some() && s.ready.is_some() {
                    complete += 1;
                }
            }
            Ok(seen)
        });
        match tokio::time::timeout(Duration::from_secs(30), listed_rx).await {
            Ok(Ok(())) => Ok(StartupWatch { running, task }),
            Ok(Err(_)) => Err(task
                .await?
                .err()
                .unwrap_or_else(|| anyhow::anyhow!("the pod watch ended before its initial list"))),
            Err(_) => bail!("the pod watch did not list within 30 s"),
        }
    }

    /// Waits until pod `name` was seen Running.
    async fn running(&self, name: &str) -> anyhow::Result<()> {
        let mut rx = self.running.clone();
        tokio::time::timeout(PHASE_LIMIT, rx.wait_for(|r| r.contains(name)))
            .await
            .with_context(|| format!("pod {name} was not Running within {PHASE_LIMIT:?}"))?
            .with_context(|| format!("the pod watch ended before {name} was Running"))?;
        Ok(())
    }

    /// Waits until every wanted pod was seen Running and Ready: when.
    async fn finish(self) -> anyhow::Result<HashMap<String, Seen>> {
        tokio::time::timeout(PHASE_LIMIT, self.task)
            .await
            .with_context(|| format!("not every pod was Running and Ready within {PHASE_LIMIT:?}"))?
            .context("the pod watch panicked")?
    }
}

/// What the client does after creating each pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Then {
    /// Nothing: the next create goes out as soon as a slot is free.
    Next,
    /// Waits until the watch saw the pod Running (with one create in flight: one at a time).
    AwaitRunning,
    /// Writes the pod's Running status itself (the baseline: no kubelet).
    WriteStatus,
}

/// A pod bound to `node` running busybox's `sleep`.
fn pod_json(name: &str, node: &str) -> Bytes {
    Bytes::from(
        serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "startup"}},
            "spec": {
                "nodeName": node,
                "terminationGracePeriodSeconds": 1,
                "containers": [sleep_container()]
            }
        })
        .to_string(),
    )
}

/// The status a kubelet writes for a started pod (a merge patch of `pods/status`).
fn running_status(uid: &str, node_ip: &str, pod_ip: &str) -> Bytes {
    let now = k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .ok();
    let cond =
        |t: &str| serde_json::json!({"type": t, "status": "True", "lastTransitionTime": now});
    Bytes::from(
        serde_json::json!({
            "metadata": {"uid": uid},
            "status": {
                "phase": "Running",
                "conditions": [
                    cond("PodReadyToStartContainers"), cond("Initialized"), cond("Ready"),
                    cond("ContainersReady"), cond("PodScheduled")
                ],
                "hostIP": node_ip, "hostIPs": [{"ip": node_ip}],
                "podIP": pod_ip, "podIPs": [{"ip": pod_ip}],
                "startTime": now,
                "qosClass": "BestEffort",
                "containerStatuses": [{
                    "name": "app", "ready": true, "started": true, "restartCount": 0,
                    "image": rkube_images::BUSYBOX_REF,
                    "imageID": format!("{}@sha256:{:064x}", rkube_images::BUSYBOX_REF, 1),
                    "containerID": format!("fake://{:064x}", 2),
                    "state": {"running": {"startedAt": now}}
                }]
            }
        })
        .to_string(),
    )
}

/// One set of pods measured from create to Running.
#[derive(Clone, Debug)]
struct Phase {
    pods: usize,
    /// First create sent → last pod seen Running.
    wall: Duration,
    /// Create sent → seen Running, sorted.
    running: Vec<Duration>,
    /// Create sent → seen Ready, sorted.
    ready: Vec<Duration>,
}

impl Phase {
    fn new(sent: &HashMap<String, Instant>, seen: &HashMap<String, Seen>) -> anyhow::Result<Self> {
        let first = sent.values().min().copied().context("no pod was created")?;
        let mut running = Vec::new();
        let mut ready = Vec::new();
        let mut last = first;
        for (name, t) in sent {
            let s = seen.get(name).cloned().unwrap_or_default();
            let r = s
                .running
                .with_context(|| format!("pod {name} never seen Running"))?;
            last = last.max(r);
            running.push(r.saturating_duration_since(*t));
            ready.push(
                s.ready
                    .with_context(|| format!("pod {name} never seen Ready"))?
                    .saturating_duration_since(*t),
            );
        }
        running.sort();
        ready.sort();
        Ok(Phase {
            pods: sent.len(),
            wall: last.saturating_duration_since(first),
            running,
            ready,
        })
    }

    fn rate(&self) -> f64 {
        self.pods as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    fn p99(&self) -> f64 {
        percentile_ms(&self.running, 0.99)
    }

    /// Adds the latency figures under `label`.
    fn measure(&self, report: &mut Report, label: &str) {
        report.measure(
            &format!("{label}: create→Running p50"),
            percentile_ms(&self.running, 0.5),
            "ms",
        );
        report.measure(&format!("{label}: create→Running p99"), self.p99(), "ms");
        report.cdf(
            &format!("{label}: latency distribution"),
            &[("create → Running", &self.running)],
        );
        report.measure(
            &format!("{label}: create→Running max"),
            percentile_ms(&self.running, 1.0),
            "ms",
        );
        report.measure(
            &format!("{label}: create→Ready p50"),
            percentile_ms(&self.ready, 0.5),
            "ms",
        );
        report.measure(
            &format!("{label}: create→Ready p99"),
            percentile_ms(&self.ready, 0.99),
            "ms",
        );
        report.measure(
            &format!("{label}: wall time (first create → last Running)"),
            self.wall.as_secs_f64() * 1000.0,
            "ms",
        );
    }
}

/// Creates `n` pods in the new namespace `ns` (pod `i` bound to `node(i)`), `concurrency`
/// creates in flight, doing `then` after each, and waits until the watch saw them all
/// Running and Ready.
async fn measure_pods(
    server: &Server,
    client: &kube::Client,
    ns: &str,
    n: usize,
    concurrency: usize,
    node: impl Fn(usize) -> String,
    then: Then,
) -> anyhow::Result<Phase> {
    let c = Arc::new(http());
    create_namespace(&c, &server.url, ns).await?;
    let watch = Arc::new(StartupWatch::start(client.clone(), ns, n).await?);
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let url = format!("{}/api/v1/namespaces/{ns}/pods", server.url);
    let created = each(n, concurrency, |i| {
        let (c, url, sent, watch) = (c.clone(), url.clone(), sent.clone(), watch.clone());
        let name = format!("pod-{i:05}");
        let body = pod_json(&name, &node(i));
        async move {
            let t = Instant::now();
            let (code, resp) = request(&c, "POST", &url, Some(body)).await?;
            if code != 201 {
                bail!(
                    "creating pod {name}: {code} {}",
                    String::from_utf8_lossy(&resp)
                );
            }
            sent.lock().expect("lock").insert(name.clone(), t);
            match then {
                Then::Next => {}
                Then::AwaitRunning => watch.running(&name).await?,
                Then::WriteStatus => write_status(&c, &url, &name, &resp, i).await?,
            }
            Ok(())
        }
    })
    .await;
    created?;
    let watch = Arc::into_inner(watch).context("the pod watch is still shared")?;
    let seen = watch.finish().await?;
    let sent = std::mem::take(&mut *sent.lock().expect("lock"));
    Phase::new(&sent, &seen)
}

/// The baseline's status write for pod `name` (its create answered `created`).
async fn write_status(
    c: &Http,
    pods_url: &str,
    name: &str,
    created: &[u8],
    i: usize,
) -> anyhow::Result<()> {
    let obj: serde_json::Value = serde_json::from_slice(created)?;
    let uid = obj["metadata"]["uid"].as_str().unwrap_or_default();
    let pod_ip = format!("10.244.{}.{}", (i / 250) % 256, i % 250 + 2);
    let (code, resp) = request_as(
        c,
        "PATCH",
        &format!("{pods_url}/{name}/status"),
        "application/merge-patch+json",
        Some(running_status(uid, "127.0.0.1", &pod_ip)),
    )
    .await?;
    if code != 200 {
        bail!(
            "writing the status of {name}: {code} {}",
            String::from_utf8_lossy(&resp)
        );
    }
    Ok(())
}

/// The real part on `server`: one node, a cold first pod, then `cfg.pods` one at a time and
/// `cfg.pods` all at once. The node (namespace, containerd, containers, cgroups) is removed
/// also when something fails: dropping it cleans up.
async fn real_on(server: &Server, cfg: &Config) -> anyhow::Result<(Phase, Phase, Phase)> {
    let client = kube_client(server).await?;
    let mut node = NetnsNode::new(&client).context("making the node's network namespace")?;
    let started = Instant::now();
    let mut kubelet = node.config();
    // The API server's client certificate authenticates to it (it serves a self-signed one).
    kubelet.serving.client_ca_file = Some(server.ca_file());
    node.start_with(kubelet)
        .await
        .context("starting rkubelet")?;
    eprintln!(
        "node {} Ready (containerd started, images imported) in {:?}",
        node.name,
        started.elapsed()
    );
    let name = node.name.clone();
    let on_node = |_| name.clone();
    let cold = measure_pods(server, &client, "cold", 1, 1, on_node, Then::Next).await?;
    let one_by_one = measure_pods(
        server,
        &client,
        "one-at-a-time",
        cfg.pods,
        1,
        on_node,
        Then::AwaitRunning,
    )
    .await?;
    node.delete_pods().await.context("deleting the pods")?;
    let at_once = measure_pods(
        server,
        &client,
        "all-at-once",
        cfg.pods,
        cfg.pods,
        on_node,
        Then::Next,
    )
    .await?;
    node.shutdown().await.context("shutting the node down")?;
    Ok((cold, one_by_one, at_once))
}

/// The real part: its figures and ratios.
async fn real(report: &mut Report, cfg: &Config) -> anyhow::Result<()> {
    let server = start_server(None).await?;
    let result = real_on(&server, cfg).await;
    stop(server).await;
    let (cold, one_by_one, at_once) = result?;
    report.measure(
        "real: first pod (cold) create→Running",
        percentile_ms(&cold.running, 0.5),
        "ms",
    );
    let n = cfg.pods;
    for (label, phase) in [
        (format!("real, {n} pods one at a time"), &one_by_one),
        (format!("real, {n} pods all at once"), &at_once),
    ] {
        phase.measure(report, &label);
    }
    for (label, phase) in [
        ("real, one at a time", &one_by_one),
        ("real, all at once", &at_once),
    ] {
        let p99 = phase.p99().max(1e-3);
        report.ratio(
            &format!("{label}: 5 s SLO / create→Running p99"),
            SLO_P99.as_secs_f64() * 1000.0 / p99,
            1.0,
        );
        report.ratio(
            &format!("{label}: 1 s target / create→Running p99"),
            TARGET_P99.as_secs_f64() * 1000.0 / p99,
            1.0,
        );
    }
    Ok(())
}

/// The baseline of the hollow parts on a fresh API server (no kubelets, no controllers): the
/// client creates each pod bound to a node and writes its Running status itself.
async fn baseline(cfg: &Config) -> anyhow::Result<Phase> {
    let etcd = if cfg.etcd {
        Some(tokio::task::spawn_blocking(EtcdServer::start).await?)
    } else {
        None
    };
    let server = start_server(etcd.as_ref()).await?;
    let n = cfg.hollow_nodes;
    let result = async {
        let client = kube_client(&server).await?;
        measure_pods(
            &server,
            &client,
            "bench",
            cfg.hollow_pods,
            cfg.concurrency,
            |i| node_name(i % n),
            Then::WriteStatus,
        )
        .await
    }
    .await;
    stop(server).await;
    result
}

/// The hollow part: pods already bound, across the hollow nodes of a hollow cluster.
async fn hollow(report: &mut Report, cfg: &Config, baseline: &Phase) -> anyhow::Result<Phase> {
    let n = cfg.hollow_nodes;
    let cluster = HollowCluster::start(&Options {
        nodes: n,
        etcd: cfg.etcd,
        spread: false,
    })
    .await?;
    let result = measure_pods(
        &cluster.server,
        &cluster.admin,
        "bench",
        cfg.hollow_pods,
        cfg.concurrency,
        |i| node_name(i % n),
        Then::Next,
    )
    .await;
    cluster.stop().await;
    let phase = result?;

    let label = format!("hollow, {n} nodes x {} bound pods", cfg.hollow_pods);
    report.measure(&format!("{label}: Running"), phase.rate(), "pods/s");
    phase.measure(report, &label);
    report.measure(
        "client create + Running status write (baseline)",
        baseline.rate(),
        "pods/s",
    );
    report.measure("baseline: create→Running p99", baseline.p99(), "ms");
    report.ratio(
        &format!("{label}: Running / client create+status"),
        phase.rate() / baseline.rate(),
        0.5,
    );
    Ok(phase)
}

/// A Deployment's pods, from its create to every pod Running.
#[derive(Clone, Debug)]
struct Rollout {
    pods: usize,
    /// Deployment created (its create sent) → the first pod seen.
    first_pod: Duration,
    /// Deployment created → the last pod seen Running.
    all_running: Duration,
    /// Per pod: first seen (its creation) → seen Running, sorted.
    startup: Vec<Duration>,
    /// Per pod: first seen → seen bound to a node, sorted.
    scheduled: Vec<Duration>,
    /// Per pod: seen bound → seen Running, sorted.
    bound_to_running: Vec<Duration>,
    /// API requests every client made while the Deployment rolled out, by verb and resource.
    requests: BTreeMap<(String, String), u64>,
    /// The nodes the pods were bound to.
    nodes: usize,
    /// The kubelets' pod syncs while the Deployment rolled out, by why they ran.
    pod_syncs: BTreeMap<&'static str, u64>,
    /// Writes per commit of the embedded store while the Deployment rolled out.
    writes_per_commit: Option<f64>,
    /// CPU time (user + system) the benchmark's process — the whole hollow cluster — used
    /// while the Deployment rolled out, seconds.
    cpu: f64,
}

impl Rollout {
    fn new(sent: Instant, seen: &HashMap<String, Seen>) -> anyhow::Result<Self> {
        let mut r = Rollout {
            pods: seen.len(),
            first_pod: Duration::MAX,
            all_running: Duration::ZERO,
            startup: Vec::new(),
            scheduled: Vec::new(),
            bound_to_running: Vec::new(),
            requests: BTreeMap::new(),
            pod_syncs: BTreeMap::new(),
            writes_per_commit: None,
            cpu: 0.0,
            nodes: seen
                .values()
                .filter_map(|s| s.node.as_deref())
                .collect::<HashSet<_>>()
                .len(),
        };
        for (name, s) in seen {
            let (Some(created), Some(bound), Some(running)) = (s.created, s.bound, s.running)
            else {
                bail!("pod {name} was not seen created, bound and Running");
            };
            r.first_pod = r.first_pod.min(created.saturating_duration_since(sent));
            r.all_running = r.all_running.max(running.saturating_duration_since(sent));
            r.startup.push(running.saturating_duration_since(created));
            r.scheduled.push(bound.saturating_duration_since(created));
            r.bound_to_running
                .push(running.saturating_duration_since(bound));
        }
        if seen.is_empty() {
            bail!("no pod was seen");
        }
        r.startup.sort();
        r.scheduled.sort();
        r.bound_to_running.sort();
        Ok(r)
    }

    fn rate(&self) -> f64 {
        self.pods as f64 / self.all_running.as_secs_f64().max(1e-9)
    }
}

/// Creates the Deployment in a new namespace of `cluster` and waits until the watch saw all
/// its pods Running and Ready.
async fn rollout(cluster: &HollowCluster, replicas: usize) -> anyhow::Result<Rollout> {
    let ns = "deploy";
    create_namespace(&cluster.http, &cluster.server.url, ns).await?;
    let watch = StartupWatch::start(cluster.admin.clone(), ns, replicas).await?;
    let before = Snapshot::fetch(&cluster.http, &cluster.server.url).await?;
    let syncs_before = cluster.nodes.pod_syncs();
    let cpu_before = proc_stats(std::process::id())?.cpu;
    let url = format!(
        "{}/apis/apps/v1/namespaces/{ns}/deployments",
        cluster.server.url
    );
    let sent = Instant::now();
    let (code, resp) = request(
        &cluster.http,
        "POST",
        &url,
        Some(deployment_json("startup", replicas)),
    )
    .await?;
    if code != 201 {
        bail!(
            "creating the Deployment: {code} {}",
            String::from_utf8_lossy(&resp)
        );
    }
    let seen = watch.finish().await?;
    let cpu_after = proc_stats(std::process::id())?.cpu;
    let after = Snapshot::fetch(&cluster.http, &cluster.server.url).await?;
    let mut r = Rollout::new(sent, &seen)?;
    r.cpu = cpu_after - cpu_before;
    let during = after.since(&before);
    r.requests = during.requests();
    r.writes_per_commit = during.writes_per_commit();
    r.pod_syncs = cluster
        .nodes
        .pod_syncs()
        .into_iter()
        .map(|(op, n)| (op, n - syncs_before.get(op).copied().unwrap_or(0)))
        .collect();
    Ok(r)
}

/// The Deployment part: a Deployment of `cfg.replicas` on the hollow nodes of a fresh hollow
/// cluster, through the controller manager, the scheduler and the kubelets.
async fn deployment(
    report: &mut Report,
    cfg: &Config,
    ceiling: Option<&Phase>,
) -> anyhow::Result<()> {
    let n = cfg.hollow_nodes;
    let cluster = HollowCluster::start(&Options {
        nodes: n,
        etcd: cfg.etcd,
        spread: cfg.spread,
    })
    .await?;
    let result = rollout(&cluster, cfg.replicas).await;
    cluster.stop().await;
    let r = result?;

    let label = format!(
        "Deployment of {} on {n} hollow nodes{}",
        cfg.replicas,
        if cfg.spread { ", spread" } else { "" }
    );
    report.measure(
        &format!("{label}: created → first pod"),
        r.first_pod.as_secs_f64() * 1000.0,
        "ms",
    );
    report.measure(
        &format!("{label}: created → all Running"),
        r.all_running.as_secs_f64() * 1000.0,
        "ms",
    );
    report.measure(&format!("{label}: Running"), r.rate(), "pods/s");
    // The scheduler's default scoring packs nodes: how many of them the pods went to.
    report.measure(
        &format!("{label}: nodes the pods run on"),
        r.nodes as f64,
        "nodes",
    );
    for (what, v) in [
        ("pod startup (created → Running)", &r.startup),
        ("created → scheduled", &r.scheduled),
        ("scheduled → Running", &r.bound_to_running),
    ] {
        for (q, p) in [("p50", 0.5), ("p99", 0.99)] {
            report.measure(&format!("{label}: {what} {q}"), percentile_ms(v, p), "ms");
        }
    }
    report.measure(
        &format!("{label}: pod startup max"),
        percentile_ms(&r.startup, 1.0),
        "ms",
    );
    // Where the API server's work comes from: requests per pod, by verb and resource.
    let per_pod = |n: u64| n as f64 / cfg.replicas.max(1) as f64;
    // The cost of a pod to the cluster (every component and hollow kubelet runs in this
    // process; etcd, with `--etcd`, does not): steadier from run to run than the wall-clock
    // figures on a shared machine.
    report.measure(
        &format!("{label}: CPU time per pod, all components"),
        r.cpu * 1000.0 / cfg.replicas.max(1) as f64,
        "ms",
    );
    report.measure(
        &format!("{label}: API requests per pod"),
        per_pod(r.requests.values().sum()),
        "req",
    );
    for ((verb, resource), n) in &r.requests {
        if per_pod(*n) >= 0.05 {
            report.measure(
                &format!("{label}: API requests per pod, {verb} {resource}"),
                per_pod(*n),
                "req",
            );
        }
    }
    // Where the kubelets' work comes from: pod syncs per pod, by why they ran.
    report.measure(
        &format!("{label}: kubelet pod syncs per pod"),
        per_pod(r.pod_syncs.values().sum()),
        "syncs",
    );
    for (op, n) in &r.pod_syncs {
        report.measure(
            &format!("{label}: kubelet pod syncs per pod, {op}"),
            per_pod(*n),
            "syncs",
        );
    }
    if let Some(w) = r.writes_per_commit {
        report.measure(
            &format!("{label}: embedded store writes per commit"),
            w,
            "writes",
        );
    }
    report.cdf(
        &format!("{label}: latency distribution"),
        &[
            ("pod startup (created → Running)", &r.startup),
            ("created → scheduled", &r.scheduled),
            ("scheduled → Running", &r.bound_to_running),
        ],
    );
    report.ratio(
        &format!("{label}: 10 s target / all Running"),
        10.0 / r.all_running.as_secs_f64().max(1e-6),
        1.0,
    );
    report.ratio(
        &format!("{label}: 1 s target / pod startup p99"),
        1000.0 / percentile_ms(&r.startup, 0.99).max(1e-3),
        1.0,
    );
    if let Some(c) = ceiling {
        report.ratio(
            &format!("{label}: Running / bound pods Running (the API server's ceiling)"),
            r.rate() / c.rate(),
            0.5,
        );
    }
    Ok(())
}

/// Runs the pod-startup benchmark. Interrupted (Ctrl-C), it stops and cleans up first.
pub async fn run(cfg: &Config) -> anyhow::Result<Report> {
    let mut report = Report::new("pod-startup");
    let p = &mut report.parameters;
    p.insert("real_pods_per_mode".into(), cfg.pods.into());
    p.insert("hollow_nodes".into(), cfg.hollow_nodes.into());
    p.insert("hollow_pods".into(), cfg.hollow_pods.into());
    p.insert("hollow_concurrency".into(), cfg.concurrency.into());
    p.insert("deployment_replicas".into(), cfg.replicas.into());
    p.insert(
        "store".into(),
        if cfg.etcd { "etcd" } else { "embedded" }.into(),
    );
    p.insert(
        "deployment_scoring".into(),
        if cfg.spread {
            "LeastAllocated (spread)"
        } else {
            "MostAllocated (bin-packing, the default)"
        }
        .into(),
    );
    p.insert(
        "latency".into(),
        "real and hollow: from the client sending the create of a pod already bound \
         (spec.nodeName) to a watch seeing status.phase Running (Ready: its Ready condition \
         True); Deployment: from a watch first seeing the pod (its creation) to the watch \
         seeing it Running, the pod startup SLO's definition"
            .into(),
    );
    p.insert(
        "real".into(),
        if cfg.real {
            "one node: rkubelet in-process, its managed containerd in a network namespace \
             (cgroup v1, runc, CNI bridge), busybox image imported; one at a time = next create \
             once the previous pod is Running; all at once = every create in flight together"
                .into()
        } else {
            "skipped".into()
        },
    );
    p.insert(
        "hollow".into(),
        if cfg.hollow {
            "a hollow cluster in this process (API server, scheduler, controller manager, \
             hollow kubelets — fake runtime: 10 ms sandbox, 10 ms start — each with its own \
             identity), pods created already bound; baseline on a fresh API server alone: the \
             client creates each pod and merge-patches its Running status"
                .into()
        } else {
            "skipped".into()
        },
    );
    p.insert(
        "deployment".into(),
        if cfg.deployment {
            "a fresh hollow cluster; one Deployment of the replicas created, its pods made by \
             the controller manager, bound by the scheduler, run by the hollow kubelets; \
             compared with the hollow part's bound pods (the API server's ceiling)"
                .into()
        } else {
            "skipped".into()
        },
    );
    let work = async {
        if cfg.real {
            real(&mut report, cfg).await?;
        }
        let mut ceiling = None;
        if cfg.hollow {
            let base = baseline(cfg).await?;
            ceiling = Some(hollow(&mut report, cfg, &base).await?);
        }
        if cfg.deployment {
            deployment(&mut report, cfg, ceiling.as_ref()).await?;
        }
        anyhow::Ok(())
    };
    tokio::select! {
        r = work => r?,
        _ = tokio::signal::ctrl_c() => bail!("interrupted (the node and its containers were removed)"),
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether this machine can run the real part: root, containerd and the offline images'
    /// binaries (scripts/setup installs them).
    fn real_node_possible() -> bool {
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        let found = |b: &str| {
            std::process::Command::new("sh")
                .args(["-c", &format!("command -v {b}")])
                .output()
                .is_ok_and(|o| o.status.success())
        };
        root && ["containerd", "runc", "nsenter", "ip"]
            .iter()
            .all(|b| found(b))
            && std::path::Path::new(rkube_images::BUSYBOX_BIN).exists()
            && std::path::Path::new(rkube_images::CATATONIT_BIN).exists()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_short_run_measures_both_parts() {
        let real = real_node_possible();
        if !real {
            eprintln!("no root or no containerd here: the real part is skipped");
        }
        let cfg = Config {
            real,
            hollow: true,
            pods: 3,
            hollow_nodes: 3,
            hollow_pods: 30,
            concurrency: 8,
            deployment: true,
            replicas: 30,
            etcd: false,
            spread: false,
        };
        let report = run(&cfg).await.expect("the benchmark runs");
        let value = |name: &str| {
            report
                .value(name)
                .unwrap_or_else(|| panic!("{name} in {:#?}", report.measurements))
        };
        if real {
            for mode in ["one at a time", "all at once"] {
                let p99 = value(&format!("real, 3 pods {mode}: create→Running p99"));
                assert!(p99 > 0.0 && p99 < 60_000.0, "{mode}: p99 {p99} ms");
            }
        }
        assert!(value("hollow, 3 nodes x 30 bound pods: Running") > 0.0);
        assert!(value("client create + Running status write (baseline)") > 0.0);
        let deploy = "Deployment of 30 on 3 hollow nodes";
        assert!(value(&format!("{deploy}: Running")) > 0.0);
        let p50 = value(&format!("{deploy}: pod startup (created → Running) p50"));
        let p99 = value(&format!("{deploy}: pod startup (created → Running) p99"));
        assert!(p50 <= p99, "p50 {p50} ms, p99 {p99} ms");
        // Each pod's worker starts it once; its own status write does not sync it again.
        assert_eq!(
            value(&format!("{deploy}: kubelet pod syncs per pod, create")),
            1.0
        );
        assert_eq!(
            value(&format!("{deploy}: kubelet pod syncs per pod, update")),
            0.0
        );
        assert_eq!(report.ratios.len(), if real { 8 } else { 4 });
    }

    #[test]
    fn phases_measure_from_create_to_running() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let sent = HashMap::from([("a".to_string(), ms(0)), ("b".to_string(), ms(10))]);
        let seen = HashMap::from([
            (
                "a".to_string(),
                Seen {
                    running: Some(ms(100)),
                    ready: Some(ms(120)),
                    ..Default::default()
                },
            ),
            (
                "b".to_string(),
                Seen {
                    running: Some(ms(310)),
                    ready: Some(ms(310)),
                    ..Default::default()
                },
            ),
        ]);
        let p = Phase::new(&sent, &seen).unwrap();
        assert_eq!(p.wall, Duration::from_millis(310));
        assert_eq!(
            p.running,
            [Duration::from_millis(100), Duration::from_millis(300)]
        );
        assert_eq!(
            p.ready,
            [Duration::from_millis(120), Duration::from_millis(300)]
        );
        assert!((p.rate() - 2.0 / 0.31).abs() < 1e-6);
        let missing = HashMap::from([("a".to_string(), Seen::default())]);
        assert!(Phase::new(&sent, &missing).is_err());
    }

    #[test]
    fn rollouts_measure_from_first_seen_to_running() {
        let t0 = Instant::now();
        let ms = |n| Some(t0 + Duration::from_millis(n));
        let seen = HashMap::from([
            (
                "a".to_string(),
                Seen {
                    created: ms(50),
                    bound: ms(60),
                    node: Some("n1".into()),
                    running: ms(100),
                    ready: ms(100),
                },
            ),
            (
                "b".to_string(),
                Seen {
                    created: ms(70),
                    bound: ms(200),
                    node: Some("n1".into()),
                    running: ms(470),
                    ready: ms(480),
                },
            ),
        ]);
        let r = Rollout::new(t0, &seen).unwrap();
        assert_eq!(r.first_pod, Duration::from_millis(50));
        assert_eq!(r.nodes, 1);
        assert_eq!(r.all_running, Duration::from_millis(470));
        assert_eq!(
            r.startup,
            [Duration::from_millis(50), Duration::from_millis(400)]
        );
        assert_eq!(
            r.scheduled,
            [Duration::from_millis(10), Duration::from_millis(130)]
        );
        assert_eq!(
            r.bound_to_running,
            [Duration::from_millis(40), Duration::from_millis(270)]
        );
        let unbound = HashMap::from([(
            "a".to_string(),
            Seen {
                created: ms(1),
                ..Default::default()
            },
        )]);
        assert!(Rollout::new(t0, &unbound).is_err());
    }
}
