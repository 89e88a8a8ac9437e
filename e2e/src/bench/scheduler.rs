//! The scheduler benchmark: an API server (embedded store) and rkube-scheduler started
//! in-process, N Node objects (no kubelets), then P pods created with C requests in flight.
//! Measured: pods/s from the first create to the last binding seen on a watch, the p50/p99
//! latency from a pod's create to its binding, and where the scheduler's time goes (scheduling
//! cycles vs binding round trips). The baseline, in the same run on a fresh server: the same
//! pods created and bound by the client itself (round-robin nodes, no scheduling decisions),
//! i.e. what the API server allows at best.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde::Deserialize;

use super::report::{Report, percentile_ms};
use super::server::{Http, create_namespace, each, http, kube_config, request, start_server, stop};

/// Parameters of the scheduler benchmark.
#[derive(Clone, Debug)]
pub struct Config {
    /// (nodes, pods) per run.
    pub runs: Vec<(usize, usize)>,
    /// Creates in flight.
    pub concurrency: usize,
    /// Node capacity: cpu (cores), memory (GiB), pods.
    pub node_cpu: u32,
    /// Node memory in GiB.
    pub node_memory_gi: u32,
    /// Pod requests: cpu in millicores.
    pub pod_milli_cpu: u32,
    /// Pod requests: memory in MiB.
    pub pod_memory_mi: u32,
    /// Percentage of nodes to score (None: Kubernetes' adaptive default).
    pub percentage_of_nodes_to_score: Option<i32>,
}

impl Default for Config {
    fn default() -> Self {
        // scheduler_perf's defaults: nodes of 4 cpu / 32Gi / 110 pods, pods of 100m / 500Mi.
        Config {
            runs: vec![(1_000, 5_000), (5_000, 10_000)],
            concurrency: 64,
            node_cpu: 4,
            node_memory_gi: 32,
            pod_milli_cpu: 100,
            pod_memory_mi: 500,
            percentage_of_nodes_to_score: None,
        }
    }
}

fn node_json(name: &str, cfg: &Config) -> Bytes {
    let alloc = serde_json::json!({
        "cpu": cfg.node_cpu.to_string(),
        "memory": format!("{}Gi", cfg.node_memory_gi),
        "pods": "110",
    });
    Bytes::from(
        serde_json::json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {
                "capacity": alloc, "allocatable": alloc,
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]
            }
        })
        .to_string(),
    )
}

fn pod_json(name: &str, scheduler: &str, cfg: &Config) -> Bytes {
    Bytes::from(
        serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "bench"}},
            "spec": {
                "schedulerName": scheduler,
                "containers": [{
                    "name": "app", "image": "registry.k8s.io/pause:3.10",
                    "resources": {"requests": {
                        "cpu": format!("{}m", cfg.pod_milli_cpu),
                        "memory": format!("{}Mi", cfg.pod_memory_mi)
                    }}
                }]
            }
        })
        .to_string(),
    )
}

/// Creates `n` nodes (and sets their status if the create did not keep it).
async fn create_nodes(c: &Arc<Http>, base: &str, n: usize, cfg: &Config) -> anyhow::Result<()> {
    let url = format!("{base}/api/v1/nodes");
    each(n, cfg.concurrency, |i| {
        let c = c.clone();
        let url = url.clone();
        let name = format!("node-{i:05}");
        let body = node_json(&name, cfg);
        async move {
            let (code, resp) = request(&c, "POST", &url, Some(body.clone())).await?;
            if code != 201 {
                bail!(
                    "node create answered {code}: {}",
                    String::from_utf8_lossy(&resp)
                );
            }
            let created: serde_json::Value = serde_json::from_slice(&resp)?;
            if created["status"]["allocatable"].is_null() {
                let mut with_status = created;
                with_status["status"] =
                    serde_json::from_slice::<serde_json::Value>(&body)?["status"].clone();
                let (code, _) = request(
                    &c,
                    "PUT",
                    &format!("{url}/{name}/status"),
                    Some(Bytes::from(with_status.to_string())),
                )
                .await?;
                if code != 200 {
                    bail!("node status update answered {code}");
                }
            }
            Ok(())
        }
    })
    .await
}

#[derive(Deserialize)]
struct WatchLine {
    object: MiniPod,
}

#[derive(Deserialize)]
struct MiniPod {
    metadata: MiniMeta,
    #[serde(default)]
    spec: MiniSpec,
}

#[derive(Deserialize)]
struct MiniMeta {
    name: String,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MiniSpec {
    #[serde(default)]
    node_name: Option<String>,
}

/// Watches the namespace's pods and records when each is first seen bound; resolves once
/// `want` pods are bound.
async fn watch_bindings(
    base: &str,
    ns: &str,
    want: usize,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<HashMap<String, Instant>>>> {
    let c = http();
    let (code, body) = request(
        &c,
        "GET",
        &format!("{base}/api/v1/namespaces/{ns}/pods?limit=1"),
        None,
    )
    .await?;
    if code != 200 {
        bail!("list answered {code}");
    }
    let rv = serde_json::from_slice::<serde_json::Value>(&body)?["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_string();
    let url = format!("{base}/api/v1/namespaces/{ns}/pods?watch=1&resourceVersion={rv}");
    let resp = c
        .request(axum::http::Request::get(url).body(Full::new(Bytes::new()))?)
        .await?;
    Ok(tokio::spawn(async move {
        let mut body = resp.into_body();
        let mut buf: Vec<u8> = Vec::new();
        let mut bound: HashMap<String, Instant> = HashMap::new();
        while bound.len() < want {
            match body.frame().await {
                Some(Ok(f)) => {
                    let Some(d) = f.data_ref() else { continue };
                    buf.extend_from_slice(d);
                    let now = Instant::now();
                    while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = buf.drain(..=pos).collect();
                        if let Ok(ev) = serde_json::from_slice::<WatchLine>(&line)
                            && ev.object.spec.node_name.is_some()
                        {
                            bound.entry(ev.object.metadata.name).or_insert(now);
                        }
                    }
                }
                _ => bail!("the watch ended after {} bindings", bound.len()),
            }
        }
        Ok(bound)
    }))
}

/// Creates `pods` pods (recording when each create returned) and waits for their bindings.
async fn create_and_wait(
    c: &Arc<Http>,
    base: &str,
    ns: &str,
    pods: usize,
    scheduler: &str,
    bind_with_client: Option<usize>,
    cfg: &Config,
) -> anyhow::Result<(f64, Vec<Duration>)> {
    let watch = watch_bindings(base, ns, pods).await?;
    let created: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let url = format!("{base}/api/v1/namespaces/{ns}/pods");
    let start = Instant::now();
    each(pods, cfg.concurrency, |i| {
        let c = c.clone();
        let url = url.clone();
        let name = format!("pod-{i:06}");
        let body = pod_json(&name, scheduler, cfg);
        let created = created.clone();
        async move {
            let (code, resp) = request(&c, "POST", &url, Some(body)).await?;
            if code != 201 {
                bail!(
                    "pod create answered {code}: {}",
                    String::from_utf8_lossy(&resp)
                );
            }
            created
                .lock()
                .expect("lock")
                .insert(name.clone(), Instant::now());
            if let Some(nodes) = bind_with_client {
                let node = format!("node-{:05}", i % nodes);
                let binding = serde_json::json!({"apiVersion": "v1", "kind": "Binding",
                    "metadata": {"name": name}, "target": {"kind": "Node", "name": node}});
                let (code, resp) = request(
                    &c,
                    "POST",
                    &format!("{url}/{name}/binding"),
                    Some(Bytes::from(binding.to_string())),
                )
                .await?;
                if code != 201 {
                    bail!(
                        "binding answered {code}: {}",
                        String::from_utf8_lossy(&resp)
                    );
                }
            }
            Ok(())
        }
    })
    .await?;
    let bound = tokio::time::timeout(Duration::from_secs(600), watch)
        .await
        .context("not every pod was bound within 10 minutes")???;
    let last = bound.values().max().copied().unwrap_or(start);
    let rate = pods as f64 / (last - start).as_secs_f64();
    let created = created.lock().expect("lock");
    let mut lat: Vec<Duration> = bound
        .iter()
        .filter_map(|(n, t)| created.get(n).map(|c| t.saturating_duration_since(*c)))
        .collect();
    lat.sort();
    Ok((rate, lat))
}

/// One run: (nodes, pods) with the scheduler, then the client-binding baseline.
async fn run_one(
    report: &mut Report,
    nodes: usize,
    pods: usize,
    cfg: &Config,
) -> anyhow::Result<()> {
    let label = format!("{nodes} nodes, {pods} pods");
    let c = Arc::new(http());

    // Baseline: the client creates and binds the pods itself.
    let server = start_server(None).await?;
    create_namespace(&c, &server.url, "bench").await?;
    create_nodes(&c, &server.url, nodes, cfg).await?;
    let (baseline, _) =
        create_and_wait(&c, &server.url, "bench", pods, "nobody", Some(nodes), cfg).await?;
    stop(server).await;

    // The scheduler.
    let server = start_server(None).await?;
    create_namespace(&c, &server.url, "bench").await?;
    let t = Instant::now();
    create_nodes(&c, &server.url, nodes, cfg).await?;
    let nodes_secs = t.elapsed().as_secs_f64();
    // The scheduler's own identity, with its default roles.
    let client = rkube_machinery::client::client(
        kube_config(&server.kubeconfig_for_user("system:kube-scheduler", &[])?).await?,
    )?;
    let sc = rkube_scheduler::SchedulerConfiguration {
        percentage_of_nodes_to_score: cfg.percentage_of_nodes_to_score,
        ..Default::default()
    };
    let mut opts = rkube_scheduler::Options::new(client, sc);
    opts.seed = Some(1);
    let scheduler = rkube_scheduler::Scheduler::new(opts)?;
    let handle = scheduler.handle();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(scheduler.run(async {
        let _ = stop_rx.await;
    }));
    let mut synced = handle.synced.clone();
    tokio::time::timeout(Duration::from_secs(60), synced.wait_for(|s| *s))
        .await
        .context("the scheduler's caches did not sync")??;
    let wall = Instant::now();
    let (rate, lat) = create_and_wait(
        &c,
        &server.url,
        "bench",
        pods,
        "default-scheduler",
        None,
        cfg,
    )
    .await?;
    let wall = wall.elapsed();
    // The scheduler counts a pod once its binding request has returned, which can be just
    // after the watch showed the pod bound: wait (bounded) for the counters to catch up.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut totals = handle.metrics.totals();
    while (totals.scheduled as usize) < pods && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        totals = handle.metrics.totals();
    }
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(20), task).await;
    stop(server).await;

    report.measure(
        &format!("{label}: nodes created"),
        nodes as f64 / nodes_secs,
        "nodes/s",
    );
    report.measure(&format!("{label}: scheduled"), rate, "pods/s");
    report.measure(
        &format!("{label}: create→bound p50"),
        percentile_ms(&lat, 0.5),
        "ms",
    );
    report.measure(
        &format!("{label}: create→bound p99"),
        percentile_ms(&lat, 0.99),
        "ms",
    );
    let n = totals.scheduled.max(1) as f64;
    report.measure(
        &format!("{label}: scheduling cycle mean"),
        totals.cycle_time.as_secs_f64() * 1e6 / n,
        "us",
    );
    report.measure(
        &format!("{label}: scheduling cycles total"),
        totals.cycle_time.as_secs_f64() * 1000.0,
        "ms",
    );
    report.measure(
        &format!("{label}: binding round trip mean"),
        totals.bind_time.as_secs_f64() * 1000.0 / n,
        "ms",
    );
    report.measure(
        &format!("{label}: binds in flight (mean)"),
        totals.bind_time.as_secs_f64() / wall.as_secs_f64(),
        "binds",
    );
    report.measure(
        &format!("{label}: cycle share of wall time"),
        100.0 * totals.cycle_time.as_secs_f64() / wall.as_secs_f64(),
        "%",
    );
    report.measure(
        &format!("{label}: events dropped"),
        totals.events_dropped as f64,
        "events",
    );
    report.measure(
        &format!("{label}: client create+bind (baseline)"),
        baseline,
        "pods/s",
    );
    report.ratio(
        &format!("{label}: scheduled vs the 1000 pods/s target"),
        rate / 1000.0,
        1.0,
    );
    report.ratio(
        &format!("{label}: scheduled vs client create+bind"),
        rate / baseline,
        0.5,
    );
    if totals.scheduled as usize != pods {
        bail!(
            "{label}: the scheduler counted {} bindings",
            totals.scheduled
        );
    }
    Ok(())
}

/// Runs the scheduler benchmark.
pub async fn run(cfg: &Config) -> anyhow::Result<Report> {
    let mut report = Report {
        workload: "scheduler".into(),
        ..Default::default()
    };
    let p = &mut report.parameters;
    p.insert(
        "runs".into(),
        cfg.runs
            .iter()
            .map(|(n, p)| format!("{n} nodes x {p} pods"))
            .collect::<Vec<_>>()
            .join(", ")
            .into(),
    );
    p.insert("concurrency".into(), cfg.concurrency.into());
    p.insert(
        "node".into(),
        format!("{} cpu / {}Gi / 110 pods", cfg.node_cpu, cfg.node_memory_gi).into(),
    );
    p.insert(
        "pod".into(),
        format!("{}m / {}Mi", cfg.pod_milli_cpu, cfg.pod_memory_mi).into(),
    );
    p.insert(
        "percentage_of_nodes_to_score".into(),
        cfg.percentage_of_nodes_to_score
            .map_or_else(|| "adaptive".into(), |p| p.to_string())
            .into(),
    );
    for &(nodes, pods) in &cfg.runs {
        run_one(&mut report, nodes, pods, cfg).await?;
    }
    Ok(report)
}
