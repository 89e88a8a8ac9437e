//! rkube-dns: the cluster DNS server. It answers the names the Kubernetes DNS specification
//! gives Services, endpoints and Pods (`<svc>.<ns>.svc.<domain>`, SRV for named ports,
//! `<a-b-c-d>.<ns>.pod.<domain>`, PTR, SOA/NS) from zone snapshots built out of kube-rs
//! reflector caches, and forwards every other name to upstream resolvers. The DNS protocol
//! (UDP and TCP, EDNS0, truncation) is hickory-server's.
//!
//! [`run`] takes bound sockets and a shutdown future, so tests and benchmarks run it
//! in-process on port 0.

pub mod answer;
pub mod forward;
pub mod handler;
pub mod metrics;
pub mod names;
pub mod upstream;
pub mod watch;
pub mod zone;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hickory_server::Server;
use tokio::net::{TcpListener, UdpSocket};
use tracing::info;

pub use crate::handler::DnsHandler;
pub use crate::metrics::Metrics;
use crate::zone::{Zone, ZoneConfig};

/// Why rkube-dns could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The cluster domain is not a valid name.
    #[error(transparent)]
    Domain(#[from] names::NameError),
    /// The kubeconfig could not be read or used.
    #[error("kubeconfig {path}: {reason}")]
    Kubeconfig {
        /// Its path.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The caches could not be kept.
    #[error(transparent)]
    Watch(#[from] watch::WatchError),
    /// The health/metrics endpoint failed.
    #[error(transparent)]
    Metrics(#[from] metrics::MetricsError),
    /// The DNS server failed.
    #[error("DNS server: {0}")]
    Server(String),
}

/// What rkube-dns serves and how.
#[derive(Clone, Debug)]
pub struct Config {
    /// The cluster domain (`cluster.local`).
    pub cluster_domain: String,
    /// The TTL of every answer from the cluster zone, in seconds (also the negative TTL).
    pub ttl: u32,
    /// Resolvers for names outside the cluster zone (empty: those are answered SERVFAIL).
    pub upstreams: Vec<SocketAddr>,
    /// The deadline for one forwarded question, across all upstreams; then SERVFAIL.
    pub upstream_timeout: Duration,
    /// How long a burst of API changes may settle before the zone is rebuilt.
    pub settle: Duration,
    /// Idle timeout of TCP connections.
    pub tcp_idle_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            cluster_domain: "cluster.local".into(),
            ttl: 5,
            upstreams: Vec::new(),
            upstream_timeout: Duration::from_secs(2),
            settle: Duration::from_millis(20),
            tcp_idle_timeout: Duration::from_secs(10),
        }
    }
}

/// The bound sockets rkube-dns serves on.
#[derive(Debug, Default)]
pub struct Listeners {
    /// UDP sockets for DNS.
    pub udp: Vec<UdpSocket>,
    /// TCP listeners for DNS.
    pub tcp: Vec<TcpListener>,
    /// The health/metrics HTTP listener (`/healthz`, `/readyz`, `/metrics`), if any.
    pub http: Option<TcpListener>,
}

/// A kube-rs client from a kubeconfig file.
pub async fn client_from_kubeconfig(path: &Path) -> Result<kube::Client, Error> {
    let err = |reason: String| Error::Kubeconfig {
        path: path.display().to_string(),
        reason,
    };
    let kc = kube::config::Kubeconfig::read_from(path).map_err(|e| err(e.to_string()))?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .map_err(|e| err(e.to_string()))?;
    rkube_machinery::client::client(cfg).map_err(|e| err(e.to_string()))
}

/// Serves DNS on `listeners` from caches of the cluster behind `client` until `shutdown`
/// completes.
pub async fn run(
    config: Config,
    client: kube::Client,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    if listeners.udp.is_empty() && listeners.tcp.is_empty() {
        return Err(Error::Server("no UDP or TCP socket to serve DNS on".into()));
    }
    let zone_config = ZoneConfig::new(&config.cluster_domain, config.ttl)?;
    let zone = Arc::new(ArcSwap::from_pointee(Zone::pending(&zone_config)));
    let metrics = Arc::new(Metrics::default());
    let forwarder = forward::Forwarder::new(config.upstreams.clone(), config.upstream_timeout);
    let handler = DnsHandler::new(zone.clone(), forwarder, metrics.clone());

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };

    let mut server = Server::new(handler);
    for socket in listeners.udp {
        info!(addr = ?socket.local_addr().ok(), "serving DNS over UDP");
        server.register_socket(socket);
    }
    for listener in listeners.tcp {
        info!(addr = ?listener.local_addr().ok(), "serving DNS over TCP");
        server.register_listener(listener, config.tcp_idle_timeout, 64);
    }
    let http = listeners.http.map(|l| {
        info!(addr = ?l.local_addr().ok(), "serving /healthz, /readyz, /metrics");
        tokio::spawn(metrics::serve(l, metrics.clone(), stopped()))
    });
    let watch_config = watch::WatchConfig {
        zone: zone_config,
        settle: config.settle,
    };
    let mut cache = tokio::spawn(watch::run(
        client,
        watch_config,
        zone,
        metrics.clone(),
        stopped(),
    ));

    let mut shutdown = std::pin::pin!(shutdown);
    let outcome = tokio::select! {
        _ = &mut shutdown => Ok(()),
        r = &mut cache => match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::from(e)),
            Err(e) => Err(Error::Server(format!("the cache task failed: {e}"))),
        },
        r = server.block_until_done() => r.map_err(|e| Error::Server(e.to_string())),
    };
    info!("shutting down");
    let _ = stop_tx.send(true);
    let _ = server.shutdown_gracefully().await;
    if !cache.is_finished() {
        let _ = cache.await;
    }
    if let Some(h) = http {
        match h.await {
            Ok(r) => r?,
            Err(e) => return Err(Error::Server(format!("the metrics task failed: {e}"))),
        }
    }
    outcome
}
