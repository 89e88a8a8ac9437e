//! `rkube server`: every component as tasks of one tokio runtime.
//!
//! Start: the data directory, the cluster CA and one kubeconfig per component identity, the
//! kubelet's serving certificate, the built-in add-ons, then the API server (on
//! `--bind-address:--https-listen-port` — every address by default, its certificate naming
//! the node's IP too, so agents reach it; verifying kubelets' certificates against the
//! cluster CA). Once it answers `/readyz`: the node token (`DATA/node-token`, a bootstrap
//! token agents join with, see [`crate::token`]) is made or kept, how to use the server is
//! printed, and the scheduler, controller manager, local agent (kubelet and proxy, the same
//! code path as `rkube agent`'s), cluster DNS and the manifests applier start, each with its
//! own client. A line is logged when the node is Ready, with the time since start.
//!
//! A component that fails stops the server (with its error); the shutdown future (SIGTERM,
//! Ctrl-C) stops it cleanly: the components first (the kubelet stops its containerd; pods
//! keep running and are adopted at the next start, as k3s does), the API server last.

use std::collections::HashMap;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::agent;
use crate::config::{Component, NODE_CIDR_MASK, ServerConfig};
use crate::dns::Placement;
use crate::identity;
use crate::manifests;
use crate::supervise::{Supervisor, log_stop_reason};
use crate::{BoxError, Error};

/// How long the API server may take to answer `/readyz` at start (etcd may be slow to come).
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long stopping the components may take before the API server stops anyway.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// A kube-rs client from a kubeconfig file.
pub async fn client_from(path: &Path) -> Result<kube::Client, Error> {
    let cfg = config_from(path).await?;
    rkube_machinery::client::client(cfg).map_err(|e| Error::Kubeconfig {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// The client configuration of the kubeconfig at `path`.
async fn config_from(path: &Path) -> Result<kube::Config, Error> {
    let err = |message: String| Error::Kubeconfig {
        path: path.to_path_buf(),
        message,
    };
    let kc = kube::config::Kubeconfig::read_from(path).map_err(|e| err(e.to_string()))?;
    kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .map_err(|e| err(e.to_string()))
}

/// Waits until the API server answers `/readyz` with 200.
async fn wait_ready(client: &kube::Client) -> Result<(), Error> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let req = http::Request::get("/readyz")
            .body(Vec::new())
            .expect("a static request");
        match client.request_text(req).await {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                return Err(Error::NotReady {
                    limit: READY_TIMEOUT,
                    last: e.to_string(),
                });
            }
            Err(e) => tracing::debug!(error = %e, "waiting for the API server"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The resolvers of `/etc/resolv.conf`, for names outside the cluster.
fn upstreams() -> Vec<SocketAddr> {
    match std::fs::read_to_string("/etc/resolv.conf") {
        Ok(text) => rkube_dns::upstream::from_resolv_conf(&text),
        Err(e) => {
            tracing::warn!(error = %e, "no /etc/resolv.conf: names outside the cluster get SERVFAIL");
            Vec::new()
        }
    }
}

fn usage(config: &ServerConfig, started: Instant) -> String {
    let layout = config.layout();
    let mut text = format!(
        "\nrkube server is up ({:.1}s): API {}, data in {}\n\n  \
         export KUBECONFIG={}\n  kubectl get nodes\n\n\
         Join more nodes: rkube agent --server https://SERVER:{} --token $(cat {})\n",
        started.elapsed().as_secs_f64(),
        config.local_server_url(),
        layout.root.display(),
        layout.admin_kubeconfig().display(),
        config.https_listen_port,
        layout.node_token().display(),
    );
    text.push_str(&format!(
        "Manifests in {} are applied at start and when they change.\n",
        layout.manifests().display()
    ));
    if !config.runs(Component::Agent) {
        text.push_str("The local agent is disabled: this server runs no pods, and no DNS.\n");
    }
    text
}

/// Runs the server until `shutdown` completes or a component fails.
pub async fn run(
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let started = Instant::now();
    config.validate()?;
    let layout = config.layout();
    identity::create_private_dir(&layout.root)?;
    let pki = rkube_apiserver::pki::Pki::load_or_create(&layout.pki())?;
    let url = config.local_server_url();
    let mut kubeconfigs: HashMap<&'static str, PathBuf> = HashMap::new();
    for id in identity::needed(&config) {
        let path = identity::write_kubeconfig(&pki, &layout, &url, &id)?;
        kubeconfigs.insert(id.file, path);
    }
    let kubeconfig = |id: identity::Identity| kubeconfigs[id.file].clone();
    // Every client is made before anything starts, so no error can leave a component (and a
    // containerd) running behind an early return.
    let mut clients: HashMap<&'static str, kube::Client> = HashMap::new();
    for (file, path) in &kubeconfigs {
        if *file != identity::kubelet(&config.node.node_name).file {
            clients.insert(file, client_from(path).await?);
        }
    }
    let client_of = |id: identity::Identity| clients[id.file].clone();
    let mut cm_credentials = match config.runs(Component::ControllerManager) {
        true => Some(config_from(&kubeconfig(identity::controller_manager())).await?),
        false => None,
    };
    let node_ip = config
        .node
        .node_ip
        .or_else(rkube_kubelet::node::detect_node_ip);
    let local_agent = match config.runs(Component::Agent) {
        true => {
            let mut node = config.node.clone();
            node.node_ip = node_ip;
            Some(agent::NodeAgent {
                serving: agent::kubelet_serving(&config, &pki)?,
                node,
                dir: layout.agent(),
                kubelet_kubeconfig: kubeconfig(identity::kubelet(&config.node.node_name)),
                proxy: config
                    .runs(Component::Proxy)
                    .then(|| client_of(identity::proxy())),
            })
        }
        false => None,
    };
    let dns_ip = config
        .runs(Component::Dns)
        .then_some(config.node.cluster_dns);
    for f in manifests::install_builtin(&layout.manifests(), dns_ip)? {
        tracing::info!(file = %f.display(), "wrote a built-in add-on");
    }
    if let Some(a) = &local_agent {
        a.prepare().await;
    }

    let addr = config.listen_addr();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Listen { addr, source })?;
    let mut api_config = rkube_apiserver::server::Config::new(&config.data_dir);
    api_config.etcd_servers = config.etcd_servers.clone();
    api_config.settings.service_cidr = config.service_cidr;
    api_config.settings.default_not_ready_toleration_seconds =
        config.default_not_ready_toleration_seconds;
    api_config.settings.default_unreachable_toleration_seconds =
        config.default_unreachable_toleration_seconds;
    api_config.event_ttl = config.event_ttl;
    api_config.tls_sans = config.tls_sans.clone();
    // Agents reach the API server at the node's IP: the serving certificate names it.
    if let Some(ip) = node_ip {
        api_config.tls_sans.push(ip.to_string());
    }
    // Pods reach the API server through the `kubernetes` Service at the node's IP — when the
    // server listens there.
    api_config.advertise_address = if config.bind_address.is_unspecified() {
        node_ip.filter(|ip| !ip.is_loopback())
    } else {
        Some(config.bind_address).filter(|ip| !ip.is_loopback())
    };
    // The local kubelet's serving certificate is of the cluster CA: verify it.
    api_config.kubelet_client.certificate_authority = Some(layout.pki().join("ca.crt"));
    let api_stop = CancellationToken::new();
    let mut api_task = Some(tokio::spawn(rkube_apiserver::server::run(
        api_config,
        listener,
        api_stop.clone().cancelled_owned(),
    )));
    let server = client_of(identity::supervisor());
    let mut shutdown = std::pin::pin!(shutdown);
    tokio::select! {
        r = wait_ready(&server) => r?,
        r = api_task.as_mut().expect("running") => {
            return Err(api_outcome(r));
        }
        () = &mut shutdown => {
            tracing::info!("stopping before the API server was ready");
            api_stop.cancel();
            if let Some(t) = api_task.take() {
                api_result(t.await)?;
            }
            return Ok(());
        }
    }
    // The join token: its bootstrap token Secret is kept in the store.
    let ca_der = pki.ca_der()?;
    let token_path = layout.node_token();
    let token = tokio::select! {
        r = crate::token::ensure_node_token(&server, &ca_der, &token_path) => r,
        r = api_task.as_mut().expect("running") => return Err(api_outcome(r)),
    };
    if let Err(e) = token {
        api_stop.cancel();
        if let Some(t) = api_task.take() {
            api_result(t.await)?;
        }
        return Err(e.into());
    }
    tracing::info!(url = %url, took = ?started.elapsed(), "API server ready");
    eprintln!("{}", usage(&config, started));

    let mut sup = Supervisor::new();
    let stop = sup.stop_token();
    if config.runs(Component::ControllerManager) {
        let client = client_of(identity::controller_manager());
        // Each controller writes as its own ServiceAccount (`--use-service-account-credentials`):
        // the manager's role, as in Kubernetes, only reads.
        let cm = rkube_controller_manager::Config {
            cluster_cidr: Some(config.node.cluster_cidr),
            node_cidr_mask_size: NODE_CIDR_MASK,
            service_account_credentials: cm_credentials.take(),
            // Joining agents' CSRs are signed by the cluster CA (as k3s' server does).
            cluster_signing_cert_file: Some(layout.pki().join("ca.crt")),
            cluster_signing_key_file: Some(layout.pki().join("ca.key")),
            node_monitor_grace_period: config.node_monitor_grace_period,
            ..Default::default()
        };
        let listener = agent::optional_listener(
            "controller manager",
            SocketAddr::from((Ipv4Addr::LOCALHOST, 10257)),
        )
        .await;
        sup.spawn(
            "controller-manager",
            rkube_controller_manager::run(cm, client, listener, stop.clone().cancelled_owned()),
        );
    }
    if config.runs(Component::Scheduler) {
        let client = client_of(identity::scheduler());
        let mut opts = rkube_scheduler::Options::new(client, Default::default());
        opts.listener =
            agent::optional_listener("scheduler", SocketAddr::from((Ipv4Addr::LOCALHOST, 10259)))
                .await;
        sup.spawn(
            "scheduler",
            rkube_scheduler::run(opts, stop.clone().cancelled_owned()),
        );
    }
    if let Some(a) = local_agent {
        a.spawn(&mut sup).await;
    }
    if config.runs(Component::Dns) {
        let placement = Placement {
            server: server.clone(),
            dns_client: client_of(identity::dns()),
            node_name: config.node.node_name.clone(),
            config: rkube_dns::Config {
                cluster_domain: config.node.cluster_domain.clone(),
                upstreams: upstreams(),
                ..Default::default()
            },
            metrics_addr: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 9153))),
        };
        sup.spawn("dns", placement.run(stop.clone()));
    } else if !config.disabled.contains(&Component::Dns) {
        tracing::warn!("cluster DNS not served: it answers on the local agent's pod network");
    }
    let applier = manifests::Applier::new(server.clone(), layout.manifests());
    let poll = config.manifests_poll;
    let stop2 = stop.clone();
    sup.spawn("manifests", async move {
        applier.run(poll, stop2).await;
        Ok::<(), BoxError>(())
    });
    let ready_log = config.runs(Component::Agent).then(|| {
        tokio::spawn(agent::log_node_ready(
            server.clone(),
            config.node.node_name.clone(),
            started,
        ))
    });

    let failure = tokio::select! {
        () = &mut shutdown => None,
        Some(ended) = sup.ended() => Some(ended),
        r = api_task.as_mut().expect("running") => {
            api_task = None;
            Some(("apiserver", Err(Box::new(api_outcome(r)) as BoxError)))
        }
    };
    log_stop_reason(failure.as_ref());
    if let Some(t) = ready_log {
        t.abort();
    }
    sup.stop(STOP_TIMEOUT).await;
    api_stop.cancel();
    if let Some(t) = api_task.take() {
        api_result(t.await)?;
    }
    tracing::info!("rkube server stopped");
    match failure {
        None => Ok(()),
        Some((name, Ok(()))) => Err(Error::Stopped(name)),
        Some((name, Err(source))) => Err(Error::Component { name, source }),
    }
}

fn api_result(
    r: Result<Result<(), rkube_apiserver::server::ServerError>, tokio::task::JoinError>,
) -> Result<(), Error> {
    match r {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Error::ApiServer(e)),
        Err(e) => Err(Error::Panic {
            name: "apiserver",
            message: e.to_string(),
        }),
    }
}

/// The error for an API server that ended while it should be serving.
fn api_outcome(
    r: Result<Result<(), rkube_apiserver::server::ServerError>, tokio::task::JoinError>,
) -> Error {
    match api_result(r) {
        Ok(()) => Error::Stopped("apiserver"),
        Err(e) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_names_the_files() {
        let c = ServerConfig::new("/srv/rk", "n1");
        let text = usage(&c, Instant::now());
        assert!(
            text.contains("export KUBECONFIG=/srv/rk/admin.kubeconfig"),
            "{text}"
        );
        assert!(text.contains("kubectl get nodes"), "{text}");
        assert!(text.contains("/srv/rk/node-token"), "{text}");
        assert!(text.contains("https://127.0.0.1:6443"), "{text}");
    }
}
