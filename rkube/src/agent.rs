//! The server's local agent: the kubelet (with a managed containerd under `DATA/agent/`
//! unless `--container-runtime-endpoint` names a running one) and, beside it, the proxy —
//! each with its own identity. The kubelet serves its API over HTTPS with a certificate of the
//! cluster CA for the node's name and IP (`DATA/pki/kubelet-serving.{crt,key}`), which the API
//! server verifies, and takes client certificates of that CA. At the first start the offline
//! images (pause from catatonit, busybox from busybox-static) are written into
//! `DATA/agent/images/`, which the kubelet imports into containerd, so pods run without a
//! registry.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rkube_apiserver::pki::{Pki, PkiError, ServingNames};
use rkube_kubelet::config::{ManagedContainerd, ServingConfig};
use rkube_kubelet::{Kubelet, RuntimeMode};
use tokio_util::sync::CancellationToken;

use crate::config::ServerConfig;

/// The file stem of the kubelet's serving certificate under `DATA/pki/`.
const KUBELET_SERVING: &str = "kubelet-serving";

/// The kubelet's serving settings: a certificate of the cluster CA for the node's name and IP
/// (and loopback), kept in `DATA/pki/` and renewed as the API server's is, and the cluster CA
/// as the CA of its clients' certificates.
pub fn kubelet_serving(config: &ServerConfig, pki: &Pki) -> Result<ServingConfig, PkiError> {
    let mut names = ServingNames::default();
    names.add_name(&config.node_name);
    names.add_name("localhost");
    let node_ip = config.node_ip.or_else(rkube_kubelet::node::detect_node_ip);
    for ip in node_ip.into_iter().chain([IpAddr::from([127, 0, 0, 1])]) {
        names.add_ip(ip);
    }
    let cn = format!("system:node:{}", config.node_name);
    pki.serving_stored(KUBELET_SERVING, &cn, &names)?;
    Ok(ServingConfig {
        tls_cert_file: Some(pki.dir().join(format!("{KUBELET_SERVING}.crt"))),
        tls_private_key_file: Some(pki.dir().join(format!("{KUBELET_SERVING}.key"))),
        client_ca_file: Some(pki.dir().join("ca.crt")),
        ..Default::default()
    })
}

/// The kubelet configuration of the server's node.
pub fn kubelet_config(
    config: &ServerConfig,
    kubeconfig: PathBuf,
    serving: ServingConfig,
) -> rkube_kubelet::Config {
    let layout = config.layout();
    let mut cfg = rkube_kubelet::Config::new(config.node_name.clone(), layout.agent());
    cfg.kubeconfig = Some(kubeconfig);
    cfg.serving = serving;
    cfg.runtime = match &config.container_runtime_endpoint {
        Some(endpoint) => RuntimeMode::Remote {
            endpoint: endpoint.clone(),
        },
        None => RuntimeMode::Managed(ManagedContainerd::default()),
    };
    cfg.node_ip = config.node_ip;
    cfg.cluster_dns = vec![IpAddr::V4(config.cluster_dns)];
    cfg.cluster_domain = config.cluster_domain.clone();
    cfg.images_dir = Some(layout.images());
    cfg.cgroup_root = config.cgroup_root.clone();
    cfg.node_labels = config.node_labels.clone();
    cfg.register_with_taints = config.node_taints.clone();
    // Conditions are computed every second (a CRI Status call; the Node is written only when
    // they change), so the node turns Ready as soon as its pod network is — as the upstream
    // kubelet's fast status updates at start do — rather than up to 10 s later.
    cfg.node_status_update_frequency = Duration::from_secs(1);
    cfg
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

/// The proxy configuration of the server's node.
pub fn proxy_config(
    config: &ServerConfig,
    client: kube::Client,
    health: Option<tokio::net::TcpListener>,
) -> rkube_proxy::Config {
    let mut cfg = rkube_proxy::Config::new(client, config.node_name.clone());
    cfg.cluster_cidr = Some(config.cluster_cidr);
    cfg.health_listener = health;
    cfg
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
