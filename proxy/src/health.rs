//! `/healthz` (healthy while the last successful sync is recent; reports its time) and `/metrics`
//! (Prometheus text: sync durations, syncs, rules, services, endpoints) for the proxy.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::rules::Summary;

/// Upper bounds (seconds) of the sync duration histogram.
const BUCKETS: [f64; 11] = [
    0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0,
];

#[derive(Debug, Default)]
struct Inner {
    mode: &'static str,
    last_sync: Option<SystemTime>,
    last_duration: Duration,
    bucket_counts: [u64; BUCKETS.len()],
    duration_sum: f64,
    full_syncs: u64,
    partial_syncs: u64,
    errors: u64,
    rules: usize,
    summary: Summary,
    routes: usize,
}

/// The proxy's health and metrics, shared by the sync loop and the HTTP server.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
    stale_after: Duration,
}

impl Metrics {
    /// Metrics for `mode`; `/healthz` fails when no sync succeeded within `stale_after`.
    pub fn new(mode: &'static str, stale_after: Duration) -> Self {
        Self {
            inner: Mutex::new(Inner {
                mode,
                ..Default::default()
            }),
            stale_after,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a successful sync.
    pub fn synced(&self, full: bool, duration: Duration, rules: usize, summary: Summary) {
        let mut m = self.lock();
        m.last_sync = Some(SystemTime::now());
        m.last_duration = duration;
        let secs = duration.as_secs_f64();
        m.duration_sum += secs;
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                m.bucket_counts[i] += 1;
            }
        }
        if full {
            m.full_syncs += 1;
        } else {
            m.partial_syncs += 1;
        }
        m.rules = rules;
        m.summary = summary;
    }

    /// Records a failed sync.
    pub fn failed(&self) {
        self.lock().errors += 1;
    }

    /// Records the number of pod routes in place.
    pub fn routes(&self, n: usize) {
        self.lock().routes = n;
    }

    /// When the last successful sync finished.
    pub fn last_sync(&self) -> Option<SystemTime> {
        self.lock().last_sync
    }

    /// Whether a sync succeeded recently enough, and the `/healthz` body.
    pub fn health(&self) -> (bool, serde_json::Value) {
        let m = self.lock();
        let now = SystemTime::now();
        let fmt = |t: SystemTime| {
            jiff::Timestamp::try_from(t)
                .map(|t| t.to_string())
                .unwrap_or_default()
        };
        let healthy = m
            .last_sync
            .is_some_and(|t| now.duration_since(t).unwrap_or_default() <= self.stale_after);
        let body = serde_json::json!({
            "mode": m.mode,
            "lastUpdated": m.last_sync.map(fmt),
            "currentTime": fmt(now),
            "lastSyncDurationSeconds": m.last_duration.as_secs_f64(),
            "healthy": healthy,
        });
        (healthy, body)
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let m = self.lock();
        let mut out = String::new();
        let count = m.full_syncs + m.partial_syncs;
        out +=
            "# HELP rkube_proxy_sync_duration_seconds Time to compute and apply the dataplane.\n";
        out += "# TYPE rkube_proxy_sync_duration_seconds histogram\n";
        for (b, c) in BUCKETS.iter().zip(m.bucket_counts) {
            let _ = writeln!(
                out,
                "rkube_proxy_sync_duration_seconds_bucket{{le=\"{b}\"}} {c}"
            );
        }
        let _ = writeln!(
            out,
            "rkube_proxy_sync_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "rkube_proxy_sync_duration_seconds_sum {}",
            m.duration_sum
        );
        let _ = writeln!(out, "rkube_proxy_sync_duration_seconds_count {count}");
        out += "# HELP rkube_proxy_syncs_total Successful syncs by kind.\n";
        out += "# TYPE rkube_proxy_syncs_total counter\n";
        let _ = writeln!(
            out,
            "rkube_proxy_syncs_total{{kind=\"full\"}} {}",
            m.full_syncs
        );
        let _ = writeln!(
            out,
            "rkube_proxy_syncs_total{{kind=\"partial\"}} {}",
            m.partial_syncs
        );
        out += "# HELP rkube_proxy_sync_errors_total Failed syncs.\n";
        out += "# TYPE rkube_proxy_sync_errors_total counter\n";
        let _ = writeln!(out, "rkube_proxy_sync_errors_total {}", m.errors);
        out += "# HELP rkube_proxy_last_sync_timestamp_seconds When the last sync succeeded.\n";
        out += "# TYPE rkube_proxy_last_sync_timestamp_seconds gauge\n";
        let ts = m
            .last_sync
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let _ = writeln!(out, "rkube_proxy_last_sync_timestamp_seconds {ts}");
        for (name, help, v) in [
            (
                "rules",
                "nftables elements and chains (listeners in userspace mode).",
                m.rules,
            ),
            (
                "services",
                "Services with at least one frontend.",
                m.summary.services,
            ),
            (
                "frontends",
                "ClusterIP, external IP and NodePort frontends.",
                m.summary.frontends,
            ),
            (
                "endpoints",
                "Endpoints summed over frontends.",
                m.summary.endpoints,
            ),
            (
                "frontends_without_endpoints",
                "Frontends that reject or drop.",
                m.summary.empty_frontends,
            ),
            (
                "pod_routes",
                "host-gw routes to other nodes' pod CIDRs.",
                m.routes,
            ),
        ] {
            let _ = writeln!(out, "# HELP rkube_proxy_{name} {help}");
            let _ = writeln!(out, "# TYPE rkube_proxy_{name} gauge");
            let _ = writeln!(out, "rkube_proxy_{name} {v}");
        }
        out
    }
}

async fn healthz(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    let (ok, body) = m.health();
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body))
}

async fn metrics(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        m.render(),
    )
}

/// The `/healthz` and `/metrics` router.
pub fn router(metrics_state: Arc<Metrics>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(metrics_state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unhealthy_until_a_sync_then_metrics_count_it() {
        let m = Metrics::new("nftables", Duration::from_secs(60));
        let (ok, body) = m.health();
        assert!(!ok);
        assert!(body["lastUpdated"].is_null());
        m.synced(
            true,
            Duration::from_millis(7),
            42,
            Summary {
                services: 3,
                frontends: 4,
                endpoints: 9,
                empty_frontends: 1,
            },
        );
        m.synced(false, Duration::from_millis(30), 40, Summary::default());
        m.failed();
        let (ok, body) = m.health();
        assert!(ok);
        assert!(body["lastUpdated"].as_str().unwrap().ends_with('Z'));
        let text = m.render();
        assert!(text.contains("rkube_proxy_sync_duration_seconds_bucket{le=\"0.01\"} 1\n"));
        assert!(text.contains("rkube_proxy_sync_duration_seconds_bucket{le=\"0.05\"} 2\n"));
        assert!(text.contains("rkube_proxy_sync_duration_seconds_count 2\n"));
        assert!(text.contains("rkube_proxy_syncs_total{kind=\"partial\"} 1\n"));
        assert!(text.contains("rkube_proxy_sync_errors_total 1\n"));
        assert!(text.contains("rkube_proxy_rules 40\n"));

        let stale = Metrics::new("userspace", Duration::ZERO);
        stale.synced(true, Duration::ZERO, 0, Summary::default());
        std::thread::sleep(Duration::from_millis(5));
        assert!(!stale.health().0);
    }
}
