//! The kubelet's Prometheus metrics (`/metrics`): runtime operations by type (count, errors,
//! latency), pod start latency, pod worker syncs by cause, PLEG relist latency, running pods
//! and containers.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Latency histogram buckets, in seconds.
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

#[derive(Default, Clone)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, v: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS.len()];
        }
        for (i, b) in BUCKETS.iter().enumerate() {
            if v <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, b) in BUCKETS.iter().enumerate() {
            let c = self.counts.get(i).copied().unwrap_or(0);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {c}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

#[derive(Default)]
struct Inner {
    ops: BTreeMap<&'static str, (u64, u64, Histogram)>,
    pod_start: Histogram,
    pod_worker: BTreeMap<&'static str, Histogram>,
    pleg_relist: Histogram,
    running_pods: u64,
    running_containers: u64,
    pleg_last_relist: f64,
    evictions: u64,
}

/// The metrics registry of one kubelet.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records one CRI call.
    pub fn runtime_operation(&self, op: &'static str, took: Duration, failed: bool) {
        let mut m = self.lock();
        let e = m.ops.entry(op).or_default();
        e.0 += 1;
        if failed {
            e.1 += 1;
        }
        e.2.observe(took.as_secs_f64());
    }

    /// Records a pod's start latency (first seen to all containers running).
    pub fn pod_started(&self, took: Duration) {
        self.lock().pod_start.observe(took.as_secs_f64());
    }

    /// Records one sync of a pod worker and why it ran (`create`: the pod's first, `update`:
    /// the pod changed, `sync`: the runtime, a probe, a back-off or the sync period, `kill`:
    /// the pod is being deleted).
    pub fn pod_worker_synced(&self, operation: &'static str, took: Duration) {
        self.lock()
            .pod_worker
            .entry(operation)
            .or_default()
            .observe(took.as_secs_f64());
    }

    /// The pod worker syncs recorded for `operation` (for tests and benchmarks).
    pub fn pod_worker_count(&self, operation: &str) -> u64 {
        self.lock().pod_worker.get(operation).map_or(0, |h| h.count)
    }

    /// Records a PLEG relist and what it found.
    pub fn relisted(&self, took: Duration, pods: u64, containers: u64) {
        let mut m = self.lock();
        m.pleg_relist.observe(took.as_secs_f64());
        m.running_pods = pods;
        m.running_containers = containers;
        m.pleg_last_relist = jiff::Timestamp::now().as_millisecond() as f64 / 1000.0;
    }

    /// Counts a pod the kubelet refused to admit.
    pub fn rejected(&self) {
        self.lock().evictions += 1;
    }

    /// The number of pod starts recorded and their latencies' sum (for tests and benchmarks).
    pub fn pod_start_count(&self) -> u64 {
        self.lock().pod_start.count
    }

    /// Prometheus text exposition.
    pub fn render(&self, node: &str) -> String {
        let m = self.lock();
        let mut out = String::new();
        let _ = writeln!(out, "# HELP kubelet_node_name The node's name.");
        let _ = writeln!(out, "# TYPE kubelet_node_name gauge");
        let _ = writeln!(out, "kubelet_node_name{{node=\"{node}\"}} 1");
        let _ = writeln!(
            out,
            "# HELP kubelet_running_pods Pods with a running sandbox."
        );
        let _ = writeln!(out, "# TYPE kubelet_running_pods gauge");
        let _ = writeln!(out, "kubelet_running_pods {}", m.running_pods);
        let _ = writeln!(out, "# HELP kubelet_running_containers Running containers.");
        let _ = writeln!(out, "# TYPE kubelet_running_containers gauge");
        let _ = writeln!(
            out,
            "kubelet_running_containers{{container_state=\"running\"}} {}",
            m.running_containers
        );
        let _ = writeln!(
            out,
            "# HELP kubelet_runtime_operations_total Cumulative number of runtime operations by operation type."
        );
        let _ = writeln!(out, "# TYPE kubelet_runtime_operations_total counter");
        for (op, (n, _, _)) in &m.ops {
            let _ = writeln!(
                out,
                "kubelet_runtime_operations_total{{operation_type=\"{op}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP kubelet_runtime_operations_errors_total Cumulative number of runtime operation errors by operation type."
        );
        let _ = writeln!(
            out,
            "# TYPE kubelet_runtime_operations_errors_total counter"
        );
        for (op, (_, e, _)) in &m.ops {
            let _ = writeln!(
                out,
                "kubelet_runtime_operations_errors_total{{operation_type=\"{op}\"}} {e}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP kubelet_runtime_operations_duration_seconds Duration in seconds of runtime operations."
        );
        let _ = writeln!(
            out,
            "# TYPE kubelet_runtime_operations_duration_seconds histogram"
        );
        for (op, (_, _, h)) in &m.ops {
            h.render(
                &mut out,
                "kubelet_runtime_operations_duration_seconds",
                &format!("operation_type=\"{op}\""),
            );
        }
        let _ = writeln!(
            out,
            "# HELP kubelet_pod_start_duration_seconds Duration in seconds from the kubelet seeing a pod to all its containers running."
        );
        let _ = writeln!(out, "# TYPE kubelet_pod_start_duration_seconds histogram");
        m.pod_start
            .render(&mut out, "kubelet_pod_start_duration_seconds", "");
        let _ = writeln!(
            out,
            "# HELP kubelet_pod_worker_duration_seconds Duration in seconds to sync a single pod. Broken down by operation type: create, update, sync or kill."
        );
        let _ = writeln!(out, "# TYPE kubelet_pod_worker_duration_seconds histogram");
        for (op, h) in &m.pod_worker {
            h.render(
                &mut out,
                "kubelet_pod_worker_duration_seconds",
                &format!("operation_type=\"{op}\""),
            );
        }
        let _ = writeln!(
            out,
            "# HELP kubelet_pleg_relist_duration_seconds Duration in seconds for relisting pods in PLEG."
        );
        let _ = writeln!(out, "# TYPE kubelet_pleg_relist_duration_seconds histogram");
        m.pleg_relist
            .render(&mut out, "kubelet_pleg_relist_duration_seconds", "");
        let _ = writeln!(
            out,
            "# HELP kubelet_pleg_last_seen_seconds Timestamp in seconds when PLEG was last seen active."
        );
        let _ = writeln!(out, "# TYPE kubelet_pleg_last_seen_seconds gauge");
        let _ = writeln!(out, "kubelet_pleg_last_seen_seconds {}", m.pleg_last_relist);
        let _ = writeln!(
            out,
            "# HELP kubelet_admission_rejections_total Pods the kubelet refused to admit."
        );
        let _ = writeln!(out, "# TYPE kubelet_admission_rejections_total counter");
        let _ = writeln!(out, "kubelet_admission_rejections_total {}", m.evictions);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.runtime_operation("start_container", Duration::from_millis(40), false);
        m.runtime_operation("start_container", Duration::from_millis(3), true);
        m.pod_started(Duration::from_millis(700));
        let text = m.render("n1");
        assert!(
            text.contains("kubelet_runtime_operations_total{operation_type=\"start_container\"} 2")
        );
        assert!(text.contains(
            "kubelet_runtime_operations_errors_total{operation_type=\"start_container\"} 1"
        ));
        assert!(text.contains(
            "kubelet_runtime_operations_duration_seconds_bucket{operation_type=\"start_container\",le=\"0.005\"} 1"
        ));
        assert!(text.contains("kubelet_pod_start_duration_seconds_bucket{le=\"0.5\"} 0"));
        assert!(text.contains("kubelet_pod_start_duration_seconds_bucket{le=\"1\"} 1"));
        assert!(text.contains("kubelet_pod_start_duration_seconds_count 1"));
        assert_eq!(m.pod_start_count(), 1);
    }
}
