//! Metrics in the Prometheus text format: `apiserver_request_total` by verb, resource and
//! code, `apiserver_request_duration_seconds` histograms by verb and resource, the store's
//! latency (`etcd_request_duration_seconds`, [`crate::storage::metered`]), and the watch
//! cache's state per resource — watchers, the longest queue of events a watcher has not read
//! yet, objects and revision.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::storage::cache::{CacheStats, WatchCache};
use crate::storage::metered::StoreMetrics;

const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0,
];

/// A gauge of the watch cache: name, help, value of a resource's cache.
type Gauge = (&'static str, &'static str, fn(&CacheStats) -> i64);

/// A histogram: a latency histogram (seconds) with [`BUCKETS`] by default, or one with
/// bounds of its own ([`Histogram::with_bounds`]).
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::with_bounds(BUCKETS)
    }
}

impl Histogram {
    /// An empty histogram with buckets up to each of `bounds` (ascending).
    pub fn with_bounds(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    /// Records one value.
    pub fn observe(&mut self, value: f64) {
        for (b, n) in self.bounds.iter().zip(&mut self.counts) {
            if value <= *b {
                *n += 1;
            }
        }
        self.sum += value;
        self.count += 1;
    }

    /// The number of values and their sum.
    pub fn totals(&self) -> (u64, f64) {
        (self.count, self.sum)
    }

    /// Writes the `_bucket`, `_sum` and `_count` lines of `name{labels}` (`labels` may be
    /// empty).
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (b, n) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braced = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braced} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braced} {}", self.count);
    }
}

/// Request counters and latency histograms, and the sources of the store's figures.
#[derive(Default)]
pub struct Metrics {
    totals: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<(String, String), Histogram>>,
    /// The store's latency.
    pub store: Arc<StoreMetrics>,
    /// The watch cache, whose state is reported.
    pub watch_cache: Option<Arc<WatchCache>>,
}

impl Metrics {
    /// Metrics that also report the store's latency and the watch cache's state.
    pub fn new(store: Arc<StoreMetrics>, watch_cache: Option<Arc<WatchCache>>) -> Self {
        Self {
            store,
            watch_cache,
            ..Default::default()
        }
    }

    /// Records one request.
    pub fn observe(&self, verb: &str, resource: &str, code: u16, took: Duration) {
        {
            let mut totals = self.totals.lock().expect("metrics lock");
            let key = (verb.to_string(), resource.to_string(), code);
            *totals.entry(key).or_insert(0) += 1;
        }
        // Watches last as long as the client wants: their duration says nothing.
        if verb == "watch" {
            return;
        }
        let mut lat = self.latency.lock().expect("metrics lock");
        lat.entry((verb.to_string(), resource.to_string()))
            .or_default()
            .observe(took.as_secs_f64());
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP apiserver_request_total Counter of apiserver requests broken out by verb, resource and HTTP response code.\n");
        out.push_str("# TYPE apiserver_request_total counter\n");
        for ((verb, resource, code), n) in self.totals.lock().expect("metrics lock").iter() {
            let _ = writeln!(
                out,
                "apiserver_request_total{{verb=\"{verb}\",resource=\"{resource}\",code=\"{code}\"}} {n}"
            );
        }
        out.push_str("# HELP apiserver_request_duration_seconds Response latency distribution in seconds for each verb and resource.\n");
        out.push_str("# TYPE apiserver_request_duration_seconds histogram\n");
        for ((verb, resource), h) in self.latency.lock().expect("metrics lock").iter() {
            h.render(
                &mut out,
                "apiserver_request_duration_seconds",
                &format!("verb=\"{verb}\",resource=\"{resource}\""),
            );
        }
        self.store.render(&mut out);
        if let Some(cache) = &self.watch_cache {
            let stats = cache.stats();
            let gauges: [Gauge; 6] = [
                (
                    "apiserver_watch_cache_watchers",
                    "Watches served from the watch cache, per resource.",
                    |s| s.watchers as i64,
                ),
                (
                    "apiserver_watch_cache_queue_length",
                    "Events the slowest watcher of the resource has not read yet.",
                    |s| s.queued as i64,
                ),
                (
                    "apiserver_watch_cache_objects",
                    "Objects the watch cache holds, per resource.",
                    |s| s.objects as i64,
                ),
                (
                    "apiserver_watch_cache_window_events",
                    "Events in the watch cache's window of recent history, per resource.",
                    |s| s.window_events as i64,
                ),
                (
                    "apiserver_watch_cache_window_bytes",
                    "Bytes of the events in the watch cache's window, per resource.",
                    |s| s.window_bytes as i64,
                ),
                (
                    "apiserver_watch_cache_resource_version",
                    "The newest revision the watch cache has seen, per resource.",
                    |s| s.revision,
                ),
            ];
            for (name, help, value) in gauges {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
                for st in &stats {
                    let _ = writeln!(out, "{name}{{resource=\"{}\"}} {}", st.resource, value(st));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.observe("get", "pods", 200, Duration::from_millis(3));
        m.observe("get", "pods", 404, Duration::from_millis(30));
        m.observe("watch", "pods", 200, Duration::from_secs(300));
        let text = m.render();
        assert!(
            text.contains("apiserver_request_total{verb=\"get\",resource=\"pods\",code=\"404\"} 1")
        );
        assert!(text.contains(
            "apiserver_request_duration_seconds_count{verb=\"get\",resource=\"pods\"} 2"
        ));
        assert!(text.contains("le=\"0.005\"} 1"));
        assert!(!text.contains("apiserver_request_duration_seconds_count{verb=\"watch\""));
    }
}
