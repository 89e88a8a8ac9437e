//! A node's agent — the kubelet (with a managed containerd under `DATA/agent/` unless
//! `--container-runtime-endpoint` names a running one) and, beside it, the proxy (Services in
//! nftables, and host-gw routes to the other nodes' pod CIDRs) — each with its own identity.
//! One code path ([`NodeAgent`]) for `rkube server`'s local agent and for `rkube agent`
//! ([`run`]); they differ only in where the credentials come from: the server issues its
//! local agent's from the cluster CA it holds, an agent joins with a token
//! ([`crate::join`]).
//!
//! The kubelet serves its API over HTTPS with a certificate of the cluster CA for the node's
//! name and IP, which the API server verifies, and takes client certificates of that CA. At
//! the first start the offline images (pause from catatonit, busybox from busybox-static) are
//! written into `DATA/agent/images/`, which the kubelet imports into containerd, so pods run
//! without a registry. SIGTERM or Ctrl-C stops `rkube agent` cleanly (exit 0): the kubelet
//! stops its containerd, the pods keep running and are adopted at the next start.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use rkube_apiserver::pki::{Pki, PkiError};
use rkube_kubelet::config::{ManagedContainerd, ServingConfig};
use rkube_kubelet::{Kubelet, RuntimeMode};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{AgentConfig, NodeConfig, ServerConfig};
use crate::join::{AgentFiles, Join, JoinError, kubelet_serving_names};
use crate::supervise::{Supervisor, log_stop_reason};
use crate::{Error, server};

/// The file stem of the server's local kubelet's serving certificate under `DATA/pki/`.
const KUBELET_SERVING: &str = "kubelet-serving";
/// How long stopping the components may take.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// The server's local kubelet's serving settings: a certificate of the cluster CA for the
/// node's name and IP (and loopback), kept in `DATA/pki/` and renewed as the API server's is,
/// and the cluster CA as the CA of its clients' certificates.
pub fn kubelet_serving(config: &ServerConfig, pki: &Pki) -> Result<ServingConfig, PkiError> {
    let node = &config.node;
    let node_ip = node.node_ip.or_else(rkube_kubelet::node::detect_node_ip);
    let names = kubelet_serving_names(&node.node_name, node_ip);
    let cn = format!("system:node:{}", node.node_name);
    pki.serving_stored(KUBELET_SERVING, &cn, &names)?;
    Ok(serving_config(
        pki.dir().join(format!("{KUBELET_SERVING}.crt")),
        pki.dir().join(format!("{KUBELET_SERVING}.key")),
        pki.dir().join("ca.crt"),
    ))
}

/// The kubelet's HTTPS settings: its certificate and key, and the CA of its clients.
pub fn serving_config(cert: PathBuf, key: PathBuf, client_ca: PathBuf) -> ServingConfig {
    ServingConfig {
        tls_cert_file: Some(cert),
        tls_private_key_file: Some(key),
        client_ca_file: Some(client_ca),
        ..Default::default()
    }
}

/// One node's agent: what its kubelet and proxy run with.
pub struct NodeAgent {
    /// The node's settings.
    pub node: NodeConfig,
    /// The kubelet's data directory (`DATA/agent`: containerd, CNI, pods, logs, images).
    pub dir: PathBuf,
    /// The kubelet's kubeconfig (`system:node:<node>`).
    pub kubelet_kubeconfig: PathBuf,
    /// The kubelet's HTTPS settings.
    pub serving: ServingConfig,
    /// The proxy's client (`system:kube-proxy`); `None`: no proxy.
    pub proxy: Option<kube::Client>,
}

impl NodeAgent {
    /// Image tarballs imported into containerd (`DATA/agent/images`).
    pub fn images(&self) -> PathBuf {
        self.dir.join("images")
    }

    /// The kubelet's configuration.
    pub fn kubelet_config(&self) -> rkube_kubelet::Config {
        let node = &self.node;
        let mut cfg = rkube_kubelet::Config::new(node.node_name.clone(), self.dir.clone());
        cfg.kubeconfig = Some(self.kubelet_kubeconfig.clone());
        cfg.serving = self.serving.clone();
        cfg.runtime = match &node.container_runtime_endpoint {
            Some(endpoint) => RuntimeMode::Remote {
                endpoint: endpoint.clone(),
            },
            None => RuntimeMode::Managed(ManagedContainerd::default()),
        };
        cfg.node_ip = node.node_ip;
        cfg.cluster_dns = vec![IpAddr::V4(node.cluster_dns)];
        cfg.cluster_domain = node.cluster_domain.clone();
        cfg.images_dir = Some(self.images());
        cfg.cgroup_root = node.cgroup_root.clone();
        cfg.node_labels = node.node_labels.clone();
        cfg.register_with_taints = node.node_taints.clone();
        // Conditions are computed every second (a CRI Status call; the Node is written only
        // when they change), so the node turns Ready as soon as its pod network is — as the
        // upstream kubelet's fast status updates at start do — rather than up to 10 s later.
        cfg.node_status_update_frequency = Duration::from_secs(1);
        cfg
    }

    /// The proxy's configuration: Services, and host-gw routes to the other nodes' pod CIDRs
    /// (`<podCIDR> via <InternalIP>` for every other Node, kept as Nodes come and go).
    pub fn proxy_config(
        &self,
        client: kube::Client,
        health: Option<tokio::net::TcpListener>,
    ) -> rkube_proxy::Config {
        let mut cfg = rkube_proxy::Config::new(client, self.node.node_name.clone());
        cfg.cluster_cidr = Some(self.node.cluster_cidr);
        cfg.routes = true;
        cfg.health_listener = health;
        cfg
    }

    /// Writes the offline images at the first start (see [`seed_images`]).
    pub async fn prepare(&self) {
        let images = self.images();
        let _ = tokio::task::spawn_blocking(move || seed_images(&images)).await;
    }

    /// Starts the kubelet and (with a client) the proxy under `sup`.
    pub async fn spawn(self, sup: &mut Supervisor) {
        let cfg = self.kubelet_config();
        sup.spawn("kubelet", run_kubelet(cfg, sup.stop_token()));
        if let Some(client) = self.proxy.clone() {
            let health =
                optional_listener("proxy", SocketAddr::from((Ipv4Addr::LOCALHOST, 10256))).await;
            let cfg = self.proxy_config(client, health);
            sup.spawn(
                "proxy",
                rkube_proxy::run(cfg, sup.stop_token().cancelled_owned()),
            );
        }
    }
}

/// Writes the offline images into `dir` when the directory does not exist yet (the first
/// start); later, its contents are the user's. A machine without busybox-static or catatonit
/// gets a warning: pods then need images from a registry.
pub fn seed_images(dir: &Path) {
    if dir.exists() {
        return;
    }
    match rkube_images::write_default_images(dir) {
        Ok(files) => tracing::info!(
            dir = %dir.display(),
            images = ?[rkube_images::PAUSE_REF, rkube_images::BUSYBOX_REF],
            files = files.len(),
            "wrote the offline images"
        ),
        Err(e) => {
            let _ = std::fs::create_dir_all(dir);
            tracing::warn!(
                error = %e,
                "cannot build the offline images; pods need their images (and {}) from a registry",
                rkube_images::PAUSE_REF
            );
        }
    }
}

/// Runs the kubelet until `stop`, then stops it (its containerd too; pods keep running and a
/// restarted kubelet adopts them).
pub async fn run_kubelet(
    cfg: rkube_kubelet::Config,
    stop: CancellationToken,
) -> Result<(), rkube_kubelet::Error> {
    let kubelet = Kubelet::start(cfg).await?;
    stop.cancelled().await;
    kubelet.stop().await;
    Ok(())
}

/// Binds a loopback health/metrics listener, or warns and goes without (another process —
/// e.g. a separately run component — may hold the port).
pub async fn optional_listener(what: &str, addr: SocketAddr) -> Option<tokio::net::TcpListener> {
    match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::warn!(%addr, error = %e, "{what}: health and metrics not served");
            None
        }
    }
}

/// Logs once the node is Ready, with the time since `started` (`client` may read the Node).
pub async fn log_node_ready(client: kube::Client, node: String, started: Instant) {
    let nodes: Api<Node> = Api::all(client);
    loop {
        if let Ok(Some(n)) = nodes.get_opt(&node).await {
            let ready = n
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            if ready {
                let secs = started.elapsed().as_secs_f64();
                tracing::info!(node = %node, "node is Ready, {secs:.2}s after start");
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The address this machine reaches `host:port` from (the route's source address; nothing
/// is sent).
pub async fn local_ip_towards(host: &str, port: u16) -> Option<IpAddr> {
    let addr = tokio::net::lookup_host((host, port)).await.ok()?.next()?;
    let bind: SocketAddr = match addr {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = tokio::net::UdpSocket::bind(bind).await.ok()?;
    socket.connect(addr).await.ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}

/// `rkube agent`: joins the server (or reuses the stored credentials), then runs the node's
/// kubelet and proxy until `shutdown` completes or one of them fails.
pub async fn run(
    config: AgentConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let started = Instant::now();
    config.node.validate()?;
    let join_err = |source: JoinError| Error::Join {
        server: config.server.clone(),
        source,
    };
    let (host, port) =
        crate::trust::host_port(&config.server).map_err(|e| join_err(JoinError::from(e)))?;
    let node_ip = match config.node.node_ip {
        Some(ip) => ip,
        None => match local_ip_towards(&host, port).await {
            Some(ip) => ip,
            None => {
                rkube_kubelet::node::detect_node_ip().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
            }
        },
    };
    let layout = config.layout();
    let join = Join {
        server: &config.server,
        token: &config.token,
        node_name: &config.node.node_name,
        node_ip,
        timeout: config.join_timeout,
    };
    let mut shutdown = std::pin::pin!(shutdown);
    tokio::select! {
        r = join.credentials(&layout) => { r.map_err(join_err)?; }
        () = &mut shutdown => {
            tracing::info!("stopping before the agent joined");
            return Ok(());
        }
    }
    let files = AgentFiles::new(&layout);
    let kubelet_client = server::client_from(&files.kubelet_kubeconfig).await?;
    let proxy_client = server::client_from(&files.proxy_kubeconfig).await?;
    let mut node = config.node.clone();
    node.node_ip = Some(node_ip);
    let agent = NodeAgent {
        node,
        dir: layout.agent(),
        kubelet_kubeconfig: files.kubelet_kubeconfig.clone(),
        serving: serving_config(files.serving_cert, files.serving_key, files.ca),
        proxy: Some(proxy_client),
    };
    agent.prepare().await;
    tracing::info!(node = %config.node.node_name, %node_ip, server = %config.server,
        "starting the kubelet and the proxy");
    let mut sup = Supervisor::new();
    agent.spawn(&mut sup).await;
    let ready_log = tokio::spawn(log_node_ready(
        kubelet_client,
        config.node.node_name.clone(),
        started,
    ));
    let failure = tokio::select! {
        () = &mut shutdown => None,
        Some(ended) = sup.ended() => Some(ended),
    };
    log_stop_reason(failure.as_ref());
    ready_log.abort();
    sup.stop(STOP_TIMEOUT).await;
    tracing::info!("rkube agent stopped");
    match failure {
        None => Ok(()),
        Some((name, Ok(()))) => Err(Error::Stopped(name)),
        Some((name, Err(source))) => Err(Error::Component { name, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_and_proxy_settings_follow_the_node() {
        let mut node = NodeConfig::new("node-b");
        node.node_ip = Some("10.99.0.3".parse().unwrap());
        node.cluster_cidr = "10.42.0.0/16".parse().unwrap();
        node.cluster_dns = "10.43.0.10".parse().unwrap();
        node.container_runtime_endpoint = Some("unix:///run/c.sock".into());
        node.node_labels.insert("zone".into(), "b".into());
        let agent = NodeAgent {
            node,
            dir: "/d/agent".into(),
            kubelet_kubeconfig: "/d/agent/kubelet.kubeconfig".into(),
            serving: serving_config("/c".into(), "/k".into(), "/ca".into()),
            proxy: None,
        };
        let k = agent.kubelet_config();
        assert_eq!(k.node_name, "node-b");
        assert_eq!(k.data_dir, PathBuf::from("/d/agent"));
        assert_eq!(k.images_dir, Some(PathBuf::from("/d/agent/images")));
        assert_eq!(k.cluster_dns, [IpAddr::from([10, 43, 0, 10])]);
        assert_eq!(k.node_ip, Some(IpAddr::from([10, 99, 0, 3])));
        assert_eq!(k.node_labels["zone"], "b");
        assert_eq!(k.serving.client_ca_file, Some(PathBuf::from("/ca")));
        assert!(
            matches!(k.runtime, RuntimeMode::Remote { ref endpoint } if endpoint == "unix:///run/c.sock")
        );
    }

    #[tokio::test]
    async fn the_source_address_towards_a_host() {
        assert_eq!(
            local_ip_towards("127.0.0.1", 6443).await,
            Some(IpAddr::from([127, 0, 0, 1]))
        );
    }
}
