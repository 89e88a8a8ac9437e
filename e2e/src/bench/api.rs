//! The API benchmark: an API server started in-process (on the embedded store, then on a real
//! etcd started here) under HTTP load — pod creates/s and gets/s with C concurrent requests,
//! the latency of listing 10k pods (consistent and from the watch cache), and watch events/s
//! delivered to 100 watchers — plus raw etcd puts/s of the same payload size in the same run,
//! the baseline of the creates-over-etcd ratio. Each create measurement also reports the CPU
//! time one operation cost, in this process (load generator and API server) and in etcd: a
//! figure the machine's speed changes far less than throughput, and which shows where a
//! create's cost lies.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use rkube_testkit::etcd::EtcdServer;

use super::apimetrics::Snapshot;
use super::control_plane::proc_stats;
use super::report::Report;
use super::server::{Http, Server, create_namespace, http, request, start_server, stop};

/// Parameters of the API benchmark.
#[derive(Clone, Debug)]
pub struct Config {
    /// Pods created (and read) per backend.
    pub creates: usize,
    /// Requests in flight.
    pub concurrency: usize,
    /// Pods in the namespace for the list measurement.
    pub list_size: usize,
    /// Watchers in the fan-out measurement.
    pub watchers: usize,
    /// Objects written during the fan-out measurement.
    pub watch_events: usize,
    /// Rounds of the create measurement (the median is reported).
    pub rounds: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            creates: 5_000,
            concurrency: 64,
            list_size: 10_000,
            watchers: 100,
            watch_events: 2_000,
            rounds: 3,
        }
    }
}

/// A pod of about 2 KiB.
pub fn pod(name: &str) -> Bytes {
    Bytes::from(
        serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "bench", "tier": "load"},
                         "annotations": {"bench/padding": "p".repeat(900)}},
            "spec": {"containers": [{
                "name": "app", "image": "busybox:1.35",
                "command": ["sh", "-c", "sleep 3600"],
                "ports": [{"name": "http", "containerPort": 8080}],
                "env": [{"name": "MODE", "value": "bench"}, {"name": "LEVEL", "value": "info"}],
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}
            }]}
        })
        .to_string(),
    )
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// Runs `total` requests with `concurrency` in flight: (ops/s, p50 ms, p99 ms).
async fn load<F, Fut>(total: usize, concurrency: usize, op: F) -> anyhow::Result<(f64, f64, f64)>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let started = Instant::now();
    let mut lat = Vec::with_capacity(total);
    let mut s = futures::stream::iter(0..total)
        .map(|i| {
            let f = op(i);
            async move {
                let t = Instant::now();
                f.await.map(|()| t.elapsed())
            }
        })
        .buffer_unordered(concurrency);
    while let Some(r) = s.next().await {
        lat.push(r?);
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    lat.sort();
    Ok((rate, percentile(&lat, 0.5), percentile(&lat, 0.99)))
}

/// Creates `count` pods named `{prefix}{i}` in `ns`: (ops/s, p50 ms, p99 ms).
async fn create_pods(
    c: &Arc<Http>,
    base: &str,
    ns: &str,
    prefix: &str,
    count: usize,
    concurrency: usize,
) -> anyhow::Result<(f64, f64, f64)> {
    let url = format!("{base}/api/v1/namespaces/{ns}/pods");
    load(count, concurrency, |i| {
        let c = c.clone();
        let url = url.clone();
        let name = format!("{prefix}{i}");
        async move {
            let (code, body) = request(&c, "POST", &url, Some(pod(&name))).await?;
            if code != 201 {
                bail!("create answered {code}: {}", String::from_utf8_lossy(&body));
            }
            Ok(())
        }
    })
    .await
}

/// The read-side figures of one backend.
struct Reads {
    gets: (f64, f64, f64),
    list_consistent_ms: f64,
    list_cached_ms: f64,
    list_items: usize,
    watch_events_per_s: f64,
}

async fn measure_reads(server: &Server, cfg: &Config) -> anyhow::Result<Reads> {
    let c = Arc::new(http());
    let base = server.url.clone();
    create_namespace(&c, &base, "bench").await?;
    create_pods(&c, &base, "bench", "p", cfg.list_size, cfg.concurrency).await?;
    let pods_url = format!("{base}/api/v1/namespaces/bench/pods");
    let gets = load(cfg.creates, cfg.concurrency, |i| {
        let c = c.clone();
        let url = format!("{pods_url}/p{}", (i * 7919) % cfg.list_size.max(1));
        async move {
            let (code, _) = request(&c, "GET", &url, None).await?;
            if code != 200 {
                bail!("get answered {code}");
            }
            Ok(())
        }
    })
    .await?;
    let mut consistent = Vec::new();
    let mut cached = Vec::new();
    let mut items = 0;
    for _ in 0..3 {
        let t = Instant::now();
        let (code, body) = request(&c, "GET", &pods_url, None).await?;
        consistent.push(t.elapsed());
        if code != 200 {
            bail!(
                "list answered {code}: {}",
                String::from_utf8_lossy(&body[..body.len().min(400)])
            );
        }
        let v: serde_json::Value = serde_json::from_slice(&body)?;
        items = v["items"].as_array().map_or(0, Vec::len);
        let t = Instant::now();
        let (code, _) = request(&c, "GET", &format!("{pods_url}?resourceVersion=0"), None).await?;
        cached.push(t.elapsed());
        if code != 200 {
            bail!("cached list answered {code}");
        }
    }
    consistent.sort();
    cached.sort();

    // Watch fan-out.
    let (_, body) = request(
        &c,
        "GET",
        &format!("{base}/api/v1/namespaces/bench/configmaps"),
        None,
    )
    .await?;
    let rv = serde_json::from_slice::<serde_json::Value>(&body)?["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_string();
    let mut watchers = Vec::new();
    for _ in 0..cfg.watchers {
        let url = format!("{base}/api/v1/namespaces/bench/configmaps?watch=1&resourceVersion={rv}");
        let c = http();
        let resp = c
            .request(axum::http::Request::get(url).body(Full::new(Bytes::new()))?)
            .await?;
        let want = cfg.watch_events;
        watchers.push(tokio::spawn(async move {
            let mut body = resp.into_body();
            let mut lines = 0usize;
            while lines < want {
                match body.frame().await {
                    Some(Ok(f)) => {
                        if let Some(d) = f.data_ref() {
                            lines += d.iter().filter(|b| **b == b'\n').count();
                        }
                    }
                    _ => return Err(anyhow::anyhow!("watch ended after {lines} events")),
                }
            }
            Ok(())
        }));
    }
    let started = Instant::now();
    let cms_url = format!("{base}/api/v1/namespaces/bench/configmaps");
    load(cfg.watch_events, cfg.concurrency, |i| {
        let c = c.clone();
        let url = cms_url.clone();
        async move {
            let body = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": format!("w{i}")}, "data": {"k": "v"}});
            let (code, _) = request(&c, "POST", &url, Some(Bytes::from(body.to_string()))).await?;
            if code != 201 {
                bail!("create answered {code}");
            }
            Ok(())
        }
    })
    .await?;
    for w in watchers {
        tokio::time::timeout(Duration::from_secs(120), w)
            .await
            .context("watchers did not get every event in 120 s")???;
    }
    let delivered = (cfg.watchers * cfg.watch_events) as f64 / started.elapsed().as_secs_f64();
    Ok(Reads {
        gets,
        list_consistent_ms: percentile(&consistent, 0.5),
        list_cached_ms: percentile(&cached, 0.5),
        list_items: items,
        watch_events_per_s: delivered,
    })
}

fn median(mut v: Vec<(f64, f64, f64)>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    v[v.len() / 2]
}

/// What one create costs etcd itself: a put of `value` at `key` guarded by "the key does not
/// exist yet", as the API server's creates are.
pub(crate) async fn etcd_create(
    kv: &mut etcd_client::KvClient,
    key: String,
    value: Bytes,
) -> anyhow::Result<()> {
    let txn = etcd_client::Txn::new()
        .when([etcd_client::Compare::version(
            key.clone(),
            etcd_client::CompareOp::Equal,
            0,
        )])
        .and_then([etcd_client::TxnOp::put(key, value.to_vec(), None)]);
    kv.txn(txn).await?;
    Ok(())
}

/// CPU time spent per operation of a measurement, µs: in this process (the load generator,
/// and the API server when one is measured — it runs in-process) and in etcd.
#[derive(Clone, Copy, Debug, Default)]
struct CpuPerOp {
    here: f64,
    etcd: f64,
}

/// CPU seconds used so far by this process and by etcd (utime + stime from `/proc`).
fn cpu_seconds(etcd: &EtcdServer) -> anyhow::Result<(f64, f64)> {
    let here = proc_stats(std::process::id())?.cpu;
    let pid = etcd.pid().context("etcd is not running")?;
    let etcd = proc_stats(pid)?.cpu;
    Ok((here, etcd))
}

/// Runs `measurement` of `ops` operations and adds what CPU each cost to `cpu`.
async fn with_cpu<T>(
    etcd: &EtcdServer,
    ops: usize,
    cpu: &mut Vec<CpuPerOp>,
    measurement: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    let before = cpu_seconds(etcd)?;
    let out = measurement.await?;
    let after = cpu_seconds(etcd)?;
    let per_op = |a: f64, b: f64| (b - a) * 1e6 / ops.max(1) as f64;
    cpu.push(CpuPerOp {
        here: per_op(before.0, after.0),
        etcd: per_op(before.1, after.1),
    });
    Ok(out)
}

/// The median of each figure.
fn median_cpu(v: &[CpuPerOp]) -> CpuPerOp {
    let mid = |f: fn(&CpuPerOp) -> f64| {
        let mut x: Vec<f64> = v.iter().map(f).collect();
        x.sort_by(f64::total_cmp);
        x.get(x.len() / 2).copied().unwrap_or(0.0)
    };
    CpuPerOp {
        here: mid(|c| c.here),
        etcd: mid(|c| c.etcd),
    }
}

/// Runs the API benchmark on the embedded store and on etcd.
pub async fn run(cfg: &Config) -> anyhow::Result<Report> {
    let mut report = Report {
        workload: "api".into(),
        ..Default::default()
    };
    let p = &mut report.parameters;
    p.insert("pod_bytes".into(), pod("p0").len().into());
    p.insert("creates".into(), cfg.creates.into());
    p.insert("concurrency".into(), cfg.concurrency.into());
    p.insert("list_size".into(), cfg.list_size.into());
    p.insert("watchers".into(), cfg.watchers.into());
    p.insert("watch_events".into(), cfg.watch_events.into());

    p.insert("rounds".into(), cfg.rounds.into());
    let etcd = tokio::task::spawn_blocking(EtcdServer::start).await?;
    let raw = etcd_client::Client::connect([etcd.endpoint()], None).await?;
    let embedded = start_server(None).await?;
    let over_etcd = start_server(Some(&etcd)).await?;
    let c = Arc::new(http());
    // Creates: the raw etcd baseline and both backends, alternating rounds (median reported),
    // so machine noise hits all three alike.
    let (mut raw_puts, mut raw_txns, mut emb, mut etc) = (vec![], vec![], vec![], vec![]);
    // The embedded store's commits during its creates, and the writes they carried.
    let mut emb_commits = (0u64, 0u64);
    // CPU per operation of each, in the same order.
    let mut cpu: [Vec<CpuPerOp>; 4] = Default::default();
    for round in 0..cfg.rounds.max(1) {
        let [cpu_puts, cpu_txns, cpu_emb, cpu_etc] = &mut cpu;
        let puts = load(cfg.creates, cfg.concurrency, |i| {
            let mut kv = raw.kv_client();
            let (key, value) = (format!("/bench/raw/r{round}/{i}"), pod(&format!("p{i}")));
            async move {
                kv.put(key, value.to_vec(), None).await?;
                Ok(())
            }
        });
        raw_puts.push(with_cpu(&etcd, cfg.creates, cpu_puts, puts).await?);
        // What one create costs etcd itself: a put guarded by "the key does not exist yet".
        let txns = load(cfg.creates, cfg.concurrency, |i| {
            let mut kv = raw.kv_client();
            let key = format!("/bench/txn/r{round}/{i}");
            async move { etcd_create(&mut kv, key, pod(&format!("p{i}"))).await }
        });
        raw_txns.push(with_cpu(&etcd, cfg.creates, cpu_txns, txns).await?);
        let ns = format!("create-r{round}");
        create_namespace(&c, &embedded.url, &ns).await?;
        let before = Snapshot::fetch(&c, &embedded.url).await?;
        let creates = create_pods(&c, &embedded.url, &ns, "p", cfg.creates, cfg.concurrency);
        emb.push(with_cpu(&etcd, cfg.creates, cpu_emb, creates).await?);
        let during = Snapshot::fetch(&c, &embedded.url).await?.since(&before);
        if let Some((commits, writes)) = during.commits {
            emb_commits.0 += commits;
            emb_commits.1 += writes;
        }
        create_namespace(&c, &over_etcd.url, &ns).await?;
        let creates = create_pods(&c, &over_etcd.url, &ns, "p", cfg.creates, cfg.concurrency);
        etc.push(with_cpu(&etcd, cfg.creates, cpu_etc, creates).await?);
    }
    let [cpu_puts, cpu_txns, cpu_emb, cpu_etc] = cpu.map(|v| median_cpu(&v));
    for (label, c) in [
        ("raw etcd puts", cpu_puts),
        ("raw etcd create-txns", cpu_txns),
    ] {
        report.measure(&format!("{label}: CPU per op, etcd"), c.etcd, "µs");
        report.measure(&format!("{label}: CPU per op, client"), c.here, "µs");
    }
    report.measure(
        "embedded: CPU per create, API server + client",
        cpu_emb.here,
        "µs",
    );
    if emb_commits.0 > 0 {
        report.measure(
            "embedded: writes per store commit (creates)",
            emb_commits.1 as f64 / emb_commits.0 as f64,
            "writes",
        );
    }
    report.measure("etcd: CPU per create, etcd", cpu_etc.etcd, "µs");
    report.measure(
        "etcd: CPU per create, API server + client",
        cpu_etc.here,
        "µs",
    );
    let raw_puts = median(raw_puts);
    let raw_txns = median(raw_txns);
    report.measure("raw etcd puts (etcd-client)", raw_puts.0, "ops/s");
    report.measure("raw etcd create-txns (etcd-client)", raw_txns.0, "ops/s");
    for (label, server, creates) in [
        ("embedded", embedded, median(emb)),
        ("etcd", over_etcd, median(etc)),
    ] {
        report.measure(&format!("{label}: pod creates"), creates.0, "ops/s");
        report.measure(&format!("{label}: create p50"), creates.1, "ms");
        report.measure(&format!("{label}: create p99"), creates.2, "ms");
        let r = measure_reads(&server, cfg).await?;
        report.measure(&format!("{label}: pod gets"), r.gets.0, "ops/s");
        report.measure(&format!("{label}: get p99"), r.gets.2, "ms");
        report.measure(
            &format!("{label}: list {} pods (consistent)", r.list_items),
            r.list_consistent_ms,
            "ms",
        );
        report.measure(
            &format!("{label}: list {} pods (rv=0, cache)", r.list_items),
            r.list_cached_ms,
            "ms",
        );
        report.measure(
            &format!(
                "{label}: watch events delivered to {} watchers",
                cfg.watchers
            ),
            r.watch_events_per_s,
            "events/s",
        );
        if label == "etcd" {
            report.ratio(
                "API creates over etcd / raw etcd puts",
                creates.0 / raw_puts.0,
                0.5,
            );
        } else {
            report.ratio(
                "API creates on embedded / raw etcd puts",
                creates.0 / raw_puts.0,
                0.5,
            );
        }
        stop(server).await;
    }
    drop(etcd);
    Ok(report)
}
