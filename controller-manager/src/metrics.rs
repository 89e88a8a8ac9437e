//! Prometheus metrics of the controller manager: reconciles and errors per controller, reconcile
//! latency, work-queue depth (keys waiting to be reconciled) and leadership, rendered in the
//! Prometheus text format for `/metrics`.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default, Clone)]
struct PerController {
    successes: u64,
    errors: u64,
    sum: f64,
    buckets: [u64; BUCKETS.len()],
}

type DepthFn = Box<dyn Fn() -> usize + Send + Sync>;

/// The registry every controller reports to.
#[derive(Default)]
pub struct Metrics {
    controllers: Mutex<BTreeMap<String, PerController>>,
    depths: Mutex<Vec<(String, DepthFn)>>,
    leader: AtomicBool,
}

impl Metrics {
    /// A new registry.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Records one reconcile.
    pub fn observe(&self, controller: &str, took: Duration, ok: bool) {
        let mut all = self.controllers.lock().expect("metrics");
        let c = all.entry(controller.to_string()).or_default();
        if ok {
            c.successes += 1;
        } else {
            c.errors += 1;
        }
        let secs = took.as_secs_f64();
        c.sum += secs;
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                c.buckets[i] += 1;
            }
        }
    }

    /// Registers how to read a controller's queue depth.
    pub fn register_queue(
        &self,
        controller: &str,
        depth: impl Fn() -> usize + Send + Sync + 'static,
    ) {
        self.depths
            .lock()
            .expect("metrics")
            .push((controller.to_string(), Box::new(depth)));
    }

    /// Sets whether this instance leads.
    pub fn set_leader(&self, leading: bool) {
        self.leader.store(leading, Ordering::Relaxed);
    }

    /// (successes, errors) of a controller.
    pub fn counts(&self, controller: &str) -> (u64, u64) {
        self.controllers
            .lock()
            .expect("metrics")
            .get(controller)
            .map(|c| (c.successes, c.errors))
            .unwrap_or((0, 0))
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let all = self.controllers.lock().expect("metrics").clone();
        out += "# HELP rkube_controller_reconcile_total Reconciles by controller and result.\n";
        out += "# TYPE rkube_controller_reconcile_total counter\n";
        for (name, c) in &all {
            let _ = writeln!(
                out,
                "rkube_controller_reconcile_total{{controller=\"{name}\",result=\"success\"}} {}",
                c.successes
            );
            let _ = writeln!(
                out,
                "rkube_controller_reconcile_total{{controller=\"{name}\",result=\"error\"}} {}",
                c.errors
            );
        }
        out += "# HELP rkube_controller_reconcile_errors_total Reconciles that failed.\n";
        out += "# TYPE rkube_controller_reconcile_errors_total counter\n";
        for (name, c) in &all {
            let _ = writeln!(
                out,
                "rkube_controller_reconcile_errors_total{{controller=\"{name}\"}} {}",
                c.errors
            );
        }
        out += "# HELP rkube_controller_reconcile_duration_seconds Time spent in one reconcile.\n";
        out += "# TYPE rkube_controller_reconcile_duration_seconds histogram\n";
        for (name, c) in &all {
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "rkube_controller_reconcile_duration_seconds_bucket{{controller=\"{name}\",le=\"{b}\"}} {}",
                    c.buckets[i]
                );
            }
            let total = c.successes + c.errors;
            let _ = writeln!(
                out,
                "rkube_controller_reconcile_duration_seconds_bucket{{controller=\"{name}\",le=\"+Inf\"}} {total}"
            );
            let _ = writeln!(
                out,
                "rkube_controller_reconcile_duration_seconds_sum{{controller=\"{name}\"}} {}",
                c.sum
            );
            let _ = writeln!(
                out,
                "rkube_controller_reconcile_duration_seconds_count{{controller=\"{name}\"}} {total}"
            );
        }
        out += "# HELP rkube_controller_queue_depth Keys waiting to be reconciled.\n";
        out += "# TYPE rkube_controller_queue_depth gauge\n";
        for (name, depth) in self.depths.lock().expect("metrics").iter() {
            let _ = writeln!(
                out,
                "rkube_controller_queue_depth{{controller=\"{name}\"}} {}",
                depth()
            );
        }
        out += "# HELP rkube_controller_manager_leader Whether this instance is the leader.\n";
        out += "# TYPE rkube_controller_manager_leader gauge\n";
        let _ = writeln!(
            out,
            "rkube_controller_manager_leader {}",
            u8::from(self.leader.load(Ordering::Relaxed))
        );
        out
    }
}

/// Keys triggered but not yet picked up by a reconcile: the depth of a controller's queue.
#[derive(Default)]
pub struct Pending {
    keys: Mutex<HashSet<String>>,
}

impl Pending {
    /// A key was queued.
    pub fn add(&self, key: String) {
        self.keys.lock().expect("pending").insert(key);
    }

    /// A key's reconcile started.
    pub fn remove(&self, key: &str) {
        self.keys.lock().expect("pending").remove(key);
    }

    /// Keys waiting, after dropping those `exists` no longer knows (deleted objects are never
    /// reconciled).
    pub fn depth(&self, exists: impl Fn(&str) -> bool) -> usize {
        let mut keys = self.keys.lock().expect("pending");
        keys.retain(|k| exists(k));
        keys.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_gauges() {
        let m = Metrics::new();
        m.observe("replicaset", Duration::from_millis(3), true);
        m.observe("replicaset", Duration::from_millis(30), false);
        m.register_queue("replicaset", || 7);
        m.set_leader(true);
        let text = m.render();
        assert!(text.contains(
            "rkube_controller_reconcile_total{controller=\"replicaset\",result=\"success\"} 1"
        ));
        assert!(
            text.contains("rkube_controller_reconcile_errors_total{controller=\"replicaset\"} 1")
        );
        assert!(text.contains(
            "rkube_controller_reconcile_duration_seconds_bucket{controller=\"replicaset\",le=\"0.005\"} 1"
        ));
        assert!(text.contains(
            "rkube_controller_reconcile_duration_seconds_bucket{controller=\"replicaset\",le=\"+Inf\"} 2"
        ));
        assert!(text.contains("rkube_controller_queue_depth{controller=\"replicaset\"} 7"));
        assert!(text.contains("rkube_controller_manager_leader 1"));
        let p = Pending::default();
        p.add("a".into());
        p.add("b".into());
        p.add("a".into());
        assert_eq!(p.depth(|_| true), 2);
        p.remove("a");
        assert_eq!(p.depth(|k| k != "b"), 0);
    }
}
