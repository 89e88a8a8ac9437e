//! Counters of what rkube-dns answered and how its zone is doing, and the HTTP endpoint that
//! serves them: `/healthz` (the process is up), `/readyz` (the caches have synced and the
//! zone is being served) and `/metrics` (Prometheus text format).

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use hickory_server::proto::op::ResponseCode;

/// Why the HTTP endpoint stopped.
#[derive(Debug, thiserror::Error)]
#[error("health/metrics server on {addr}: {source}")]
pub struct MetricsError {
    /// The address it served on.
    pub addr: String,
    /// The error.
    pub source: std::io::Error,
}

const RCODES: [(&str, ResponseCode); 6] = [
    ("NOERROR", ResponseCode::NoError),
    ("NXDOMAIN", ResponseCode::NXDomain),
    ("SERVFAIL", ResponseCode::ServFail),
    ("REFUSED", ResponseCode::Refused),
    ("FORMERR", ResponseCode::FormErr),
    ("NOTIMP", ResponseCode::NotImp),
];

/// The counters (all relaxed atomics: the answer path only increments).
#[derive(Debug, Default)]
pub struct Metrics {
    responses_udp: [AtomicU64; RCODES.len() + 1],
    responses_tcp: [AtomicU64; RCODES.len() + 1],
    /// Questions forwarded upstream.
    pub forwarded: AtomicU64,
    /// Forwarded questions that no upstream answered (answered SERVFAIL).
    pub forward_failures: AtomicU64,
    /// CNAMEs to names outside the zone completed through the upstreams.
    pub chased: AtomicU64,
    /// Responses that could not be sent.
    pub send_errors: AtomicU64,
    /// Zone snapshots built.
    pub zone_builds: AtomicU64,
    /// Owner names in the current snapshot.
    pub zone_names: AtomicU64,
    /// Records in the current snapshot.
    pub zone_records: AtomicU64,
    /// SOA serial of the current snapshot.
    pub zone_serial: AtomicU64,
    /// How long the last snapshot took to build, in microseconds.
    pub zone_build_micros: AtomicU64,
    /// Whether the caches have synced and a snapshot of them is served.
    pub ready: AtomicBool,
}

impl Metrics {
    /// Counts one response sent with `rcode` over UDP (`tcp == false`) or TCP.
    pub fn response(&self, rcode: ResponseCode, tcp: bool) {
        let i = RCODES
            .iter()
            .position(|(_, c)| *c == rcode)
            .unwrap_or(RCODES.len());
        let counters = if tcp {
            &self.responses_tcp
        } else {
            &self.responses_udp
        };
        counters[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Responses sent with `rcode` (both transports).
    pub fn responses(&self, rcode: ResponseCode) -> u64 {
        let i = RCODES
            .iter()
            .position(|(_, c)| *c == rcode)
            .unwrap_or(RCODES.len());
        self.responses_udp[i].load(Ordering::Relaxed)
            + self.responses_tcp[i].load(Ordering::Relaxed)
    }

    /// The counters in Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP rkube_dns_responses_total DNS responses sent, by transport and response code.\n");
        out.push_str("# TYPE rkube_dns_responses_total counter\n");
        for (proto, counters) in [("udp", &self.responses_udp), ("tcp", &self.responses_tcp)] {
            for (i, c) in counters.iter().enumerate() {
                let rcode = RCODES.get(i).map_or("OTHER", |(n, _)| n);
                let _ = writeln!(
                    out,
                    "rkube_dns_responses_total{{proto=\"{proto}\",rcode=\"{rcode}\"}} {}",
                    c.load(Ordering::Relaxed)
                );
            }
        }
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        for (name, kind, help, value) in [
            (
                "rkube_dns_forwarded_total",
                "counter",
                "Questions forwarded to the upstream resolvers.",
                load(&self.forwarded),
            ),
            (
                "rkube_dns_forward_failures_total",
                "counter",
                "Forwarded questions no upstream answered in time.",
                load(&self.forward_failures),
            ),
            (
                "rkube_dns_cname_chases_total",
                "counter",
                "CNAMEs leaving the zone completed through the upstreams.",
                load(&self.chased),
            ),
            (
                "rkube_dns_send_errors_total",
                "counter",
                "Responses that could not be sent.",
                load(&self.send_errors),
            ),
            (
                "rkube_dns_zone_builds_total",
                "counter",
                "Zone snapshots built from the caches.",
                load(&self.zone_builds),
            ),
            (
                "rkube_dns_zone_names",
                "gauge",
                "Owner names in the served zone.",
                load(&self.zone_names),
            ),
            (
                "rkube_dns_zone_records",
                "gauge",
                "Records in the served zone.",
                load(&self.zone_records),
            ),
            (
                "rkube_dns_zone_serial",
                "gauge",
                "SOA serial of the served zone.",
                load(&self.zone_serial),
            ),
            (
                "rkube_dns_zone_build_seconds",
                "gauge",
                "Time the last zone snapshot took to build.",
                0,
            ),
            (
                "rkube_dns_ready",
                "gauge",
                "1 once the caches have synced.",
                u64::from(self.ready.load(Ordering::Relaxed)),
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            if name == "rkube_dns_zone_build_seconds" {
                let secs = load(&self.zone_build_micros) as f64 / 1e6;
                let _ = writeln!(out, "{name} {secs}");
            } else {
                let _ = writeln!(out, "{name} {value}");
            }
        }
        out
    }
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    if m.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "caches not synced")
    }
}

async fn metrics(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        m.render(),
    )
}

/// The health/metrics routes.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(self::metrics))
        .with_state(metrics)
}

/// Serves the routes on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), MetricsError> {
    let addr = listener
        .local_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string());
    axum::serve(listener, router(metrics))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| MetricsError { addr, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_transport_and_rcode() {
        let m = Metrics::default();
        m.response(ResponseCode::NoError, false);
        m.response(ResponseCode::NoError, true);
        m.response(ResponseCode::NXDomain, false);
        m.response(ResponseCode::BADVERS, false);
        assert_eq!(m.responses(ResponseCode::NoError), 2);
        assert_eq!(m.responses(ResponseCode::NXDomain), 1);
        let text = m.render();
        assert!(
            text.contains("rkube_dns_responses_total{proto=\"udp\",rcode=\"NOERROR\"} 1"),
            "{text}"
        );
        assert!(text.contains("rkube_dns_responses_total{proto=\"tcp\",rcode=\"NOERROR\"} 1"));
        assert!(text.contains("rkube_dns_responses_total{proto=\"udp\",rcode=\"OTHER\"} 1"));
        assert!(text.contains("rkube_dns_ready 0"));
        m.ready.store(true, Ordering::Relaxed);
        m.zone_build_micros.store(1500, Ordering::Relaxed);
        let text = m.render();
        assert!(text.contains("rkube_dns_ready 1"));
        assert!(
            text.contains("rkube_dns_zone_build_seconds 0.0015"),
            "{text}"
        );
    }
}
