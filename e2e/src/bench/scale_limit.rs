//! The scale-limit benchmark: a control plane of real processes (each component its own
//! binary, or the all-in-one) and hollow nodes in this process, grown in steps — S more nodes
//! and S × K more pods (a Deployment) a step — until the API server's p99 latency of some verb
//! crosses 1 s over a steady window after the step, or its RSS crosses a cap, or a step's pods
//! do not all start, or the node count reaches its maximum. Each step reports the sizes, the
//! worst verb's p99 (the API server's histograms) in the steady window and while loading, the
//! p99 of a probing client (gets, lists of 100, creates and deletes), the API server's and the
//! control plane's RSS; the last line says where and why it stopped.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::apimetrics::Snapshot;
use super::control_plane::{ControlPlane, Setup, mib, proc_stats};
use super::hollow_cluster::{
    HollowNodes, PODS_PER_NAMESPACE, RunningPods, create_spread, node_name,
};
use super::report::{Report, percentile_ms};
use super::server::{Http, create_namespace, http, request};

/// Parameters of the scale-limit benchmark.
#[derive(Clone, Debug)]
pub struct Config {
    /// How the control plane runs.
    pub setup: Setup,
    /// Nodes added a step.
    pub step_nodes: usize,
    /// Pods added a step, per node added.
    pub pods_per_node: usize,
    /// The most nodes (the run ends there when no limit was crossed).
    pub max_nodes: usize,
    /// The API p99 latency limit (any verb).
    pub p99_limit: Duration,
    /// The API server's RSS cap, bytes.
    pub rss_cap: u64,
    /// The steady window measured after each step.
    pub window: Duration,
    /// Verbs with fewer requests in a window are not judged (their p99 is a handful of
    /// requests).
    pub min_requests: u64,
    /// Where the binaries are (default: next to this executable, built when missing).
    pub bin_dir: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            setup: Setup::Separate,
            step_nodes: 250,
            pods_per_node: 30,
            max_nodes: 5_000,
            p99_limit: Duration::from_secs(1),
            rss_cap: 4 << 30,
            window: Duration::from_secs(15),
            min_requests: 50,
            bin_dir: None,
        }
    }
}

/// One step's figures.
#[derive(Clone, Debug, Default)]
struct Step {
    nodes: usize,
    pods: usize,
    /// The slowest judged verb and its p99 (ms) in the steady window.
    worst: (String, f64),
    /// Every verb's requests merged: p99 (ms) in the steady window.
    all_p99: f64,
    /// The slowest judged verb's p99 (ms) while the step loaded.
    loading_worst: (String, f64),
    /// The probing client's p99 (ms) over all its requests.
    client_p99: f64,
    apiserver_rss: u64,
    control_plane_rss: u64,
    /// Nodes and pods of the step started and Running.
    took: Duration,
}

/// The slowest verb with at least `min` requests in `window`: name and p99 in ms.
fn worst_verb(window: &Snapshot, min: u64) -> (String, f64) {
    window
        .by_verb()
        .into_iter()
        .filter(|(_, h)| h.count >= min)
        .map(|(v, h)| (v, h.quantile_ms(0.99)))
        .fold(("-".to_string(), 0.0), |a, b| if b.1 > a.1 { b } else { a })
}

/// The probing client over `window`: ten requests a second — gets of nodes, lists of 100
/// pods, a pod created and deleted — each timed; the p99 (ms) and failures.
async fn probe(
    c: &Http,
    base: &str,
    step: usize,
    nodes: usize,
    window: Duration,
) -> (f64, Vec<String>) {
    let mut lat = Vec::new();
    let mut failures = Vec::new();
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut k = 0usize;
    let pods = format!("{base}/api/v1/namespaces/scale/pods");
    while start.elapsed() < window {
        tick.tick().await;
        let (method, url, body, ok) = match k % 10 {
            0 => (
                "POST",
                pods.clone(),
                Some(Bytes::from(
                    serde_json::json!({"apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": format!("probe-{step}-{k}")},
                        "spec": {"containers": [{"name": "app",
                            "image": rkube_images::BUSYBOX_REF}]}})
                    .to_string(),
                )),
                201,
            ),
            5 => (
                "DELETE",
                format!("{pods}/probe-{step}-{}", k - 5),
                None,
                200,
            ),
            3 | 8 => ("GET", format!("{pods}?limit=100"), None, 200),
            _ => (
                "GET",
                format!("{base}/api/v1/nodes/{}", node_name(k % nodes.max(1))),
                None,
                200,
            ),
        };
        let t = Instant::now();
        match request(c, method, &url, body).await {
            Ok((code, _)) if code == ok || (method == "DELETE" && code == 202) => {}
            Ok((code, body)) => failures.push(format!(
                "{method} {url}: {code} {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            )),
            Err(e) => failures.push(format!("{method} {url}: {e:#}")),
        }
        lat.push(t.elapsed());
        k += 1;
    }
    lat.sort();
    (percentile_ms(&lat, 0.99), failures)
}

/// Grows the cluster step by step: the steps and why it stopped.
async fn grow(
    cfg: &Config,
    cp: &mut ControlPlane,
    nodes: &mut HollowNodes,
) -> anyhow::Result<(Vec<Step>, String)> {
    let c = http();
    let base = cp.server.url.clone();
    create_namespace(&c, &base, "scale").await?;
    let running = RunningPods::start(&base, None);
    let mut next_ns = 0;
    let apiserver = cp.processes()[0].1;
    let mut steps: Vec<Step> = Vec::new();
    let mut pods = 0;
    let reason = loop {
        if nodes.len() >= cfg.max_nodes {
            break format!(
                "reached --max-nodes {} without crossing a limit",
                cfg.max_nodes
            );
        }
        let k = steps.len();
        let add = cfg.step_nodes.min(cfg.max_nodes - nodes.len());
        let started = Instant::now();
        let before = Snapshot::fetch(&c, &base).await?;
        let loaded = async {
            nodes.add(&cp.server, add).await?;
            let count = add * cfg.pods_per_node;
            if count > 0 {
                create_spread(&c, &base, "step", &mut next_ns, count).await?;
            }
            running
                .wait(
                    pods + count,
                    Duration::from_secs(120) + Duration::from_millis(30) * count as u32,
                )
                .await?;
            cp.check()?;
            anyhow::Ok(count)
        }
        .await;
        let count = match loaded {
            Ok(n) => n,
            Err(e) => break format!("step {} failed: {e:#}", k + 1),
        };
        pods += count;
        let took = started.elapsed();
        let loading = Snapshot::fetch(&c, &base).await?.since(&before);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let before = Snapshot::fetch(&c, &base).await?;
        let (client_p99, failures) = probe(&c, &base, k, nodes.len(), cfg.window).await;
        let window = Snapshot::fetch(&c, &base).await?.since(&before);
        let rss = proc_stats(apiserver)?.rss;
        let total: u64 = cp
            .processes()
            .iter()
            .filter_map(|(_, pid)| proc_stats(*pid).ok())
            .map(|s| s.rss)
            .sum();
        let step = Step {
            nodes: nodes.len(),
            pods,
            worst: worst_verb(&window, cfg.min_requests),
            all_p99: window.all().quantile_ms(0.99),
            loading_worst: worst_verb(&loading, cfg.min_requests),
            client_p99,
            apiserver_rss: rss,
            control_plane_rss: total,
            took,
        };
        eprintln!(
            "step {}: {} nodes, {} pods in {:.1?}; worst p99 {} {:.0} ms (loading: {} {:.0} ms), \
             client p99 {:.0} ms, apiserver RSS {:.0} MiB",
            k + 1,
            step.nodes,
            step.pods,
            took,
            step.worst.0,
            step.worst.1,
            step.loading_worst.0,
            step.loading_worst.1,
            step.client_p99,
            mib(rss)
        );
        let limit_ms = cfg.p99_limit.as_secs_f64() * 1000.0;
        let verdict = if let Some(first) = failures.first() {
            Some(format!(
                "{} probe requests failed, the first: {first}",
                failures.len()
            ))
        } else if step.worst.1 > limit_ms {
            Some(format!(
                "API p99 of {} crossed {limit_ms:.0} ms ({:.0} ms)",
                step.worst.0, step.worst.1
            ))
        } else if rss > cfg.rss_cap {
            Some(format!(
                "the API server's RSS crossed {:.0} MiB ({:.0} MiB)",
                mib(cfg.rss_cap),
                mib(rss)
            ))
        } else {
            None
        };
        steps.push(step);
        if let Some(v) = verdict {
            break v;
        }
    };
    running.stop().await?;
    Ok((steps, reason))
}

/// Runs the scale-limit benchmark.
pub async fn run(cfg: &Config) -> anyhow::Result<Report> {
    let mut report = Report::new("scale-limit");
    let p = &mut report.parameters;
    p.insert("setup".into(), cfg.setup.label().into());
    p.insert("step_nodes".into(), cfg.step_nodes.into());
    p.insert("pods_per_node".into(), cfg.pods_per_node.into());
    p.insert("max_nodes".into(), cfg.max_nodes.into());
    p.insert(
        "pods_per_namespace".into(),
        format!("at most {PODS_PER_NAMESPACE} (one Deployment a namespace)").into(),
    );
    p.insert(
        "p99_limit_ms".into(),
        (cfg.p99_limit.as_secs_f64() * 1000.0).into(),
    );
    p.insert("apiserver_rss_cap_mib".into(), mib(cfg.rss_cap).into());
    p.insert("window_s".into(), cfg.window.as_secs_f64().into());
    p.insert(
        "judged".into(),
        format!(
            "after each step, a steady window: the API server's histograms over every \
             component's requests (verbs with at least {} requests) while a client probes \
             (10 requests/s: node gets, pod lists of 100, a pod created and deleted)",
            cfg.min_requests
        )
        .into(),
    );
    let mut cp = ControlPlane::start(cfg.setup, cfg.bin_dir.as_deref()).await?;
    let mut nodes = HollowNodes::new()?;
    let result = tokio::select! {
        r = grow(cfg, &mut cp, &mut nodes) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    nodes.stop().await;
    cp.stop().await;
    let (steps, reason) = result?;
    let mut last_ok: Option<&Step> = None;
    for (i, s) in steps.iter().enumerate() {
        let at = format!("step {}: {} nodes / {} pods", i + 1, s.nodes, s.pods);
        report.measure(
            &format!("{at}: worst verb p99 ({})", s.worst.0),
            s.worst.1,
            "ms",
        );
        report.measure(&format!("{at}: every verb p99"), s.all_p99, "ms");
        report.measure(
            &format!("{at}: worst verb p99 while loading ({})", s.loading_worst.0),
            s.loading_worst.1,
            "ms",
        );
        report.measure(&format!("{at}: probing client p99"), s.client_p99, "ms");
        report.measure(
            &format!("{at}: API server RSS"),
            mib(s.apiserver_rss),
            "MiB",
        );
        report.measure(
            &format!("{at}: control plane RSS"),
            mib(s.control_plane_rss),
            "MiB",
        );
        report.measure(&format!("{at}: step took"), s.took.as_secs_f64(), "s");
        let limit_ms = cfg.p99_limit.as_secs_f64() * 1000.0;
        if s.worst.1 <= limit_ms && s.apiserver_rss <= cfg.rss_cap {
            last_ok = Some(s);
        }
    }
    let (n, p) = last_ok.map_or((0, 0), |s| (s.nodes, s.pods));
    report.measure("largest size within the limits: nodes", n as f64, "nodes");
    report.measure("largest size within the limits: pods", p as f64, "pods");
    report
        .parameters
        .insert("stopped_by".into(), reason.clone().into());
    eprintln!("scale-limit stopped: {reason}");
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_verb_has_enough_requests() {
        let text = "\
apiserver_request_duration_seconds_bucket{verb=\"get\",resource=\"pods\",le=\"0.1\"} 100
apiserver_request_duration_seconds_bucket{verb=\"get\",resource=\"pods\",le=\"+Inf\"} 100
apiserver_request_duration_seconds_count{verb=\"get\",resource=\"pods\"} 100
apiserver_request_duration_seconds_bucket{verb=\"list\",resource=\"pods\",le=\"0.1\"} 0
apiserver_request_duration_seconds_bucket{verb=\"list\",resource=\"pods\",le=\"1\"} 3
apiserver_request_duration_seconds_bucket{verb=\"list\",resource=\"pods\",le=\"+Inf\"} 3
apiserver_request_duration_seconds_count{verb=\"list\",resource=\"pods\"} 3
";
        let s = Snapshot::parse(text);
        let (verb, p99) = worst_verb(&s, 50);
        assert_eq!(verb, "get");
        assert!(p99 <= 100.0);
        assert_eq!(worst_verb(&s, 1).0, "list");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_small_run_grows_until_its_maximum() {
        let cfg = Config {
            step_nodes: 2,
            pods_per_node: 5,
            max_nodes: 4,
            window: Duration::from_secs(2),
            // A run this small is judged on its sizes only.
            p99_limit: Duration::from_secs(3600),
            ..Default::default()
        };
        let report = run(&cfg).await.expect("the benchmark runs");
        let value = |name: &str| {
            report
                .value(name)
                .unwrap_or_else(|| panic!("{name} in {:#?}", report.measurements))
        };
        assert_eq!(value("largest size within the limits: nodes"), 4.0);
        assert_eq!(value("largest size within the limits: pods"), 20.0);
        assert!(value("step 2: 4 nodes / 20 pods: API server RSS") > 0.0);
        assert_eq!(
            report.parameters["stopped_by"],
            "reached --max-nodes 4 without crossing a limit"
        );
    }
}
