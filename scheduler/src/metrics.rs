//! Scheduler metrics in the Prometheus text format, named as kube-scheduler names them:
//! `scheduler_schedule_attempts_total{result,profile}`,
//! `scheduler_scheduling_attempt_duration_seconds{result}`,
//! `scheduler_pod_scheduling_sli_duration_seconds` (end to end: queued → bound),
//! `scheduler_binding_duration_seconds`, `scheduler_pending_pods{queue}`,
//! `scheduler_preemption_attempts_total`, `scheduler_preemption_victims`, the cache sizes and
//! the events dropped under load.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::queue::QueueLengths;

/// The result of a scheduling attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AttemptResult {
    /// Bound.
    Scheduled,
    /// No node fits.
    Unschedulable,
    /// A plugin or the binding failed.
    Error,
}

impl AttemptResult {
    fn as_str(self) -> &'static str {
        match self {
            AttemptResult::Scheduled => "scheduled",
            AttemptResult::Unschedulable => "unschedulable",
            AttemptResult::Error => "error",
        }
    }
}

/// A histogram with fixed upper bounds.
#[derive(Clone, Debug)]
pub struct Histogram {
    bounds: Vec<f64>,
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    /// Buckets `start × factor^i` for `i < n`.
    pub fn exponential(start: f64, factor: f64, n: usize) -> Self {
        let bounds: Vec<f64> = (0..n).map(|i| start * factor.powi(i as i32)).collect();
        Histogram {
            counts: vec![0; bounds.len()],
            bounds,
            sum: 0.0,
            count: 0,
        }
    }

    /// Records a value.
    pub fn observe(&mut self, v: f64) {
        self.sum += v;
        self.count += 1;
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            self.counts[i] += 1;
        }
    }

    /// Observations.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Sum of the observations.
    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// The upper bound of the bucket holding the q-quantile (q in 0..1).
    pub fn quantile_bound(&self, q: f64) -> f64 {
        let want = (self.count as f64 * q).ceil() as u64;
        let mut seen = 0;
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            seen += c;
            if seen >= want.max(1) {
                return *b;
            }
        }
        f64::INFINITY
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cum = 0;
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            cum += c;
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cum}");
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

/// Cache sizes, for rendering.
#[derive(Clone, Copy, Debug, Default)]
pub struct CacheSizes {
    /// Nodes.
    pub nodes: usize,
    /// Pods (bound and assumed).
    pub pods: usize,
    /// Assumed pods.
    pub assumed: usize,
}

/// The scheduler's counters and histograms.
pub struct Metrics {
    attempts: Mutex<BTreeMap<(AttemptResult, String), u64>>,
    attempt_duration: Mutex<BTreeMap<AttemptResult, Histogram>>,
    e2e: Mutex<Histogram>,
    binding: Mutex<Histogram>,
    cycle_nanos: AtomicU64,
    bind_nanos: AtomicU64,
    preemption_attempts: AtomicU64,
    preemption_victims: AtomicU64,
    events_dropped: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            attempts: Mutex::default(),
            attempt_duration: Mutex::default(),
            e2e: Mutex::new(Histogram::exponential(0.01, 2.0, 20)),
            binding: Mutex::new(Histogram::exponential(0.001, 2.0, 15)),
            cycle_nanos: AtomicU64::new(0),
            bind_nanos: AtomicU64::new(0),
            preemption_attempts: AtomicU64::new(0),
            preemption_victims: AtomicU64::new(0),
            events_dropped: AtomicU64::new(0),
        }
    }
}

/// Totals for benchmarks and tests.
#[derive(Clone, Debug, Default)]
pub struct Totals {
    /// Pods bound.
    pub scheduled: u64,
    /// Attempts that found no node.
    pub unschedulable: u64,
    /// Attempts that failed otherwise.
    pub errors: u64,
    /// Time spent in scheduling cycles (snapshot, filter, score, assume).
    pub cycle_time: Duration,
    /// Time spent in binding requests (summed over concurrent binds).
    pub bind_time: Duration,
    /// Preemptions that nominated a node.
    pub preemptions: u64,
    /// Pods evicted by preemption.
    pub victims: u64,
    /// Events not sent because the event queue was full.
    pub events_dropped: u64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Metrics {
    /// Records a scheduling attempt's outcome and the cycle's duration.
    pub fn attempt(&self, result: AttemptResult, profile: &str, cycle: Duration) {
        *lock(&self.attempts)
            .entry((result, profile.to_string()))
            .or_default() += 1;
        lock(&self.attempt_duration)
            .entry(result)
            .or_insert_with(|| Histogram::exponential(0.001, 2.0, 15))
            .observe(cycle.as_secs_f64());
    }

    /// Adds the time of one scheduling cycle.
    pub fn cycle_time(&self, d: Duration) {
        self.cycle_nanos
            .fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Records a binding round trip.
    pub fn bound(&self, took: Duration) {
        self.bind_nanos
            .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
        lock(&self.binding).observe(took.as_secs_f64());
    }

    /// Records the end-to-end latency of a scheduled pod.
    pub fn e2e(&self, took: Duration) {
        lock(&self.e2e).observe(took.as_secs_f64());
    }

    /// Records a preemption.
    pub fn preemption(&self, victims: usize) {
        self.preemption_attempts.fetch_add(1, Ordering::Relaxed);
        self.preemption_victims
            .fetch_add(victims as u64, Ordering::Relaxed);
    }

    /// Counts an event dropped because the event queue was full.
    pub fn event_dropped(&self) {
        self.events_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// The end-to-end latency histogram.
    pub fn e2e_histogram(&self) -> Histogram {
        lock(&self.e2e).clone()
    }

    /// Totals.
    pub fn totals(&self) -> Totals {
        let attempts = lock(&self.attempts);
        let sum = |r: AttemptResult| {
            attempts
                .iter()
                .filter(|((res, _), _)| *res == r)
                .map(|(_, n)| n)
                .sum()
        };
        Totals {
            scheduled: sum(AttemptResult::Scheduled),
            unschedulable: sum(AttemptResult::Unschedulable),
            errors: sum(AttemptResult::Error),
            cycle_time: Duration::from_nanos(self.cycle_nanos.load(Ordering::Relaxed)),
            bind_time: Duration::from_nanos(self.bind_nanos.load(Ordering::Relaxed)),
            preemptions: self.preemption_attempts.load(Ordering::Relaxed),
            victims: self.preemption_victims.load(Ordering::Relaxed),
            events_dropped: self.events_dropped.load(Ordering::Relaxed),
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self, queue: QueueLengths, cache: CacheSizes) -> String {
        let mut out = String::new();
        out += "# HELP scheduler_schedule_attempts_total Number of attempts to schedule pods, by the result.\n";
        out += "# TYPE scheduler_schedule_attempts_total counter\n";
        for ((r, profile), n) in lock(&self.attempts).iter() {
            let _ = writeln!(
                out,
                "scheduler_schedule_attempts_total{{profile=\"{profile}\",result=\"{}\"}} {n}",
                r.as_str()
            );
        }
        out += "# HELP scheduler_scheduling_attempt_duration_seconds Scheduling attempt latency (scheduling algorithm and assume).\n";
        out += "# TYPE scheduler_scheduling_attempt_duration_seconds histogram\n";
        for (r, h) in lock(&self.attempt_duration).iter() {
            h.render(
                &mut out,
                "scheduler_scheduling_attempt_duration_seconds",
                &format!("result=\"{}\"", r.as_str()),
            );
        }
        out += "# HELP scheduler_pod_scheduling_sli_duration_seconds E2e latency for a pod being scheduled, from the time the pod enters the scheduling queue to its binding.\n";
        out += "# TYPE scheduler_pod_scheduling_sli_duration_seconds histogram\n";
        lock(&self.e2e).render(
            &mut out,
            "scheduler_pod_scheduling_sli_duration_seconds",
            "",
        );
        out += "# HELP scheduler_binding_duration_seconds Binding request latency.\n";
        out += "# TYPE scheduler_binding_duration_seconds histogram\n";
        lock(&self.binding).render(&mut out, "scheduler_binding_duration_seconds", "");
        out += "# HELP scheduler_pending_pods Number of pending pods, by the queue type.\n";
        out += "# TYPE scheduler_pending_pods gauge\n";
        for (q, n) in [
            ("active", queue.active),
            ("backoff", queue.backoff),
            ("unschedulable", queue.unschedulable),
            ("in_flight", queue.in_flight),
        ] {
            let _ = writeln!(out, "scheduler_pending_pods{{queue=\"{q}\"}} {n}");
        }
        out += "# HELP scheduler_cache_size Number of nodes, pods, and assumed pods in the scheduler cache.\n";
        out += "# TYPE scheduler_cache_size gauge\n";
        for (t, n) in [
            ("nodes", cache.nodes),
            ("pods", cache.pods),
            ("assumed_pods", cache.assumed),
        ] {
            let _ = writeln!(out, "scheduler_cache_size{{type=\"{t}\"}} {n}");
        }
        let t = self.totals();
        out += "# HELP scheduler_preemption_attempts_total Total preemption attempts in the cluster till now.\n";
        out += "# TYPE scheduler_preemption_attempts_total counter\n";
        let _ = writeln!(out, "scheduler_preemption_attempts_total {}", t.preemptions);
        out += "# HELP scheduler_preemption_victims Number of selected preemption victims.\n";
        out += "# TYPE scheduler_preemption_victims counter\n";
        let _ = writeln!(out, "scheduler_preemption_victims {}", t.victims);
        out += "# HELP scheduler_events_dropped_total Events not sent because the event queue was full.\n";
        out += "# TYPE scheduler_events_dropped_total counter\n";
        let _ = writeln!(out, "scheduler_events_dropped_total {}", t.events_dropped);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_gauges() {
        let m = Metrics::default();
        m.attempt(
            AttemptResult::Scheduled,
            "default-scheduler",
            Duration::from_micros(300),
        );
        m.attempt(
            AttemptResult::Scheduled,
            "default-scheduler",
            Duration::from_micros(700),
        );
        m.attempt(
            AttemptResult::Unschedulable,
            "default-scheduler",
            Duration::from_millis(3),
        );
        m.e2e(Duration::from_millis(15));
        m.preemption(2);
        let text = m.render(
            QueueLengths {
                active: 1,
                backoff: 2,
                unschedulable: 3,
                in_flight: 0,
            },
            CacheSizes {
                nodes: 4,
                pods: 5,
                assumed: 1,
            },
        );
        for line in [
            "scheduler_schedule_attempts_total{profile=\"default-scheduler\",result=\"scheduled\"} 2",
            "scheduler_schedule_attempts_total{profile=\"default-scheduler\",result=\"unschedulable\"} 1",
            "scheduler_scheduling_attempt_duration_seconds_bucket{result=\"scheduled\",le=\"0.001\"} 2",
            "scheduler_scheduling_attempt_duration_seconds_count{result=\"unschedulable\"} 1",
            "scheduler_pod_scheduling_sli_duration_seconds_bucket{le=\"0.01\"} 0",
            "scheduler_pod_scheduling_sli_duration_seconds_bucket{le=\"0.02\"} 1",
            "scheduler_pod_scheduling_sli_duration_seconds_count 1",
            "scheduler_pending_pods{queue=\"unschedulable\"} 3",
            "scheduler_cache_size{type=\"assumed_pods\"} 1",
            "scheduler_preemption_victims 2",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        let t = m.totals();
        assert_eq!((t.scheduled, t.unschedulable, t.preemptions), (2, 1, 1));
    }

    #[test]
    fn quantile_bounds() {
        let mut h = Histogram::exponential(1.0, 2.0, 5);
        for v in [0.5, 1.5, 3.0, 3.5, 7.0, 100.0] {
            h.observe(v);
        }
        assert_eq!(h.quantile_bound(0.5), 4.0);
        assert_eq!(h.quantile_bound(0.1), 1.0);
        assert_eq!(h.quantile_bound(0.99), f64::INFINITY);
        assert_eq!(h.count(), 6);
    }
}
