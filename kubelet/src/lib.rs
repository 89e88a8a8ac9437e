//! rkubelet: the node agent. It registers its Node and keeps its Lease, watches the pods bound
//! to it, runs them through the container runtime's CRI (containerd — started and supervised
//! by the kubelet with `--managed-containerd` — or the in-process hollow runtime for scale
//! tests), reports their status, and serves container logs, metrics and stats on its HTTPS
//! port to the clients the API server authenticates and authorizes for it ([`server`]).
//!
//! [`Kubelet::start`] starts everything and returns a handle; [`run`] runs until a shutdown
//! future completes. Pods keep running when the kubelet stops, and a restarted kubelet adopts
//! them.

pub mod backoff;
pub mod cgroups;
pub mod config;
pub mod container;
pub mod containerd;
pub mod context;
pub mod cri;
pub mod env;
pub mod events;
pub mod hollow;
pub mod hooks;
pub mod images;
pub mod labels;
pub mod metrics;
pub mod node;
pub mod pleg;
pub mod pod_worker;
pub mod pods;
pub mod probes;
pub mod qos;
pub mod runtime;
pub mod sandbox;
pub mod server;
pub mod service_env;
pub mod status;
pub mod util;
pub mod volumes;
pub mod watched;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use config::{Config, RuntimeMode};

use crate::context::{Context, NodeFacts};
use crate::cri::{Cri, CriError};
use crate::events::{EventType, Events};
use crate::metrics::Metrics;

/// How long a stopping kubelet waits for the runtime calls under way (a container's stop
/// may take its grace period; past this, containerd is stopped anyway).
const RUNTIME_CALLS_GRACE: Duration = Duration::from_secs(10);

/// Why the kubelet could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kubeconfig could not be used.
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Neither a kubeconfig nor a client was given.
    #[error("no kubeconfig given")]
    NoClient,
    /// The container runtime is unusable.
    #[error("container runtime: {0}")]
    Cri(#[from] CriError),
    /// The managed containerd could not run.
    #[error("managed containerd: {0}")]
    Containerd(#[from] containerd::ContainerdError),
    /// The HTTP port could not be bound.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The Node could not be registered.
    #[error(transparent)]
    Node(#[from] node::NodeError),
    /// The serving certificate or client CA is unusable.
    #[error("kubelet TLS: {0}")]
    Tls(#[from] server::tls::TlsError),
    /// A directory could not be made.
    #[error("creating {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// A running kubelet.
pub struct Kubelet {
    ctx: Arc<Context>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    managed: Option<Arc<containerd::ManagedRuntime>>,
    events_task: Option<tokio::task::JoinHandle<()>>,
    port: u16,
    healthz_port: Option<u16>,
    /// Dropping the kubelet without `stop` still ends its loops and containerd's supervision
    /// (containerd is then stopped by its supervisor, never restarted).
    _cancel_on_drop: Vec<tokio_util::sync::DropGuard>,
}

async fn make_client(config: &Config) -> Result<kube::Client, Error> {
    if let Some(c) = &config.client {
        return Ok(c.clone());
    }
    let path = config.kubeconfig.clone().ok_or(Error::NoClient)?;
    let err = |m: String| Error::Kubeconfig {
        path: path.clone(),
        message: m,
    };
    let kc = kube::config::Kubeconfig::read_from(&path).map_err(|e| err(e.to_string()))?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .map_err(|e| err(e.to_string()))?;
    rkube_machinery::client::client(cfg).map_err(|e| err(e.to_string()))
}

impl Kubelet {
    /// Starts the kubelet: the runtime (managed containerd, a CRI endpoint, or the hollow
    /// runtime), the images directory import, the HTTPS API and the health port, Node
    /// registration, and the status, lease, PLEG and pod loops.
    pub async fn start(config: Config) -> Result<Kubelet, Error> {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| Error::Listen {
                addr: config.listen,
                source,
            })?;
        // Boxed: the start is a large future, and callers hold it in theirs.
        Box::pin(Self::start_with_listener(config, listener)).await
    }

    /// Starts the kubelet with its HTTPS API on a listener the caller bound (`config.listen`
    /// is not used) — e.g. one made inside the node's network namespace, or on port 0.
    pub async fn start_with_listener(
        config: Config,
        listener: tokio::net::TcpListener,
    ) -> Result<Kubelet, Error> {
        let client = make_client(&config).await?;
        let node_ip = match config.node_ip {
            Some(ip) => ip,
            None => node::detect_node_ip().unwrap_or(std::net::IpAddr::from([127, 0, 0, 1])),
        };
        let names = server::tls::Names::of_node(
            &config.node_name,
            config.hostname.as_deref(),
            &[node_ip, config.listen.ip()],
        );
        let tls = Arc::new(server::tls::server_config(
            &config.serving,
            &config.data_dir,
            &names,
        )?);
        if config.serving.client_ca_file.is_none() {
            tracing::warn!(
                "no --client-ca-file: only bearer tokens authenticate to the kubelet's API, \
                 not the API server's client certificate (kubectl logs will fail)"
            );
        }
        let metrics = Arc::new(Metrics::default());
        for d in ["pods", "logs", "seccomp"] {
            let path = config.data_dir.join(d);
            std::fs::create_dir_all(&path).map_err(|source| Error::Dir { path, source })?;
        }
        let mut managed = None;
        let (cri, importer, prober): (
            Cri,
            Option<Arc<dyn images::Importer>>,
            Arc<dyn probes::Prober>,
        ) = match &config.runtime {
            RuntimeMode::Remote { endpoint } => {
                let cri = Cri::connect(endpoint, metrics.clone())?;
                let socket = cri::socket_path(endpoint)?;
                let importer: Arc<dyn images::Importer> = Arc::new(images::CtrImporter {
                    ctr: "ctr".into(),
                    socket,
                });
                (
                    cri.clone(),
                    Some(importer),
                    Arc::new(probes::RealProber { cri }),
                )
            }
            RuntimeMode::Managed(m) => {
                let rt = containerd::ManagedRuntime::start(&config.data_dir, m).await?;
                let cri = Cri::connect_path(&rt.paths.socket, metrics.clone());
                let importer: Arc<dyn images::Importer> = Arc::new(images::CtrImporter {
                    ctr: m.ctr.clone(),
                    socket: rt.paths.socket.clone(),
                });
                managed = Some(Arc::new(rt));
                (
                    cri.clone(),
                    Some(importer),
                    Arc::new(probes::RealProber { cri }),
                )
            }
            RuntimeMode::Fake(f) => {
                let fake = hollow::FakeRuntime::new(f.clone());
                let cri = fake.client(metrics.clone());
                let importer: Arc<dyn images::Importer> = Arc::new(images::FakeImporter(fake));
                (
                    cri.clone(),
                    Some(importer),
                    Arc::new(probes::HollowProber { cri }),
                )
            }
        };
        let version = cri.version().await?;
        tracing::info!(
            runtime = %version.runtime_name,
            version = %version.runtime_version,
            "connected to the container runtime"
        );
        let imported = match (&config.images_dir, &importer) {
            (Some(dir), Some(imp)) => {
                let _ = std::fs::create_dir_all(dir);
                let started = std::time::Instant::now();
                let done = images::import_all(dir, imp.as_ref()).await;
                tracing::info!(files = done.len(), took = ?started.elapsed(), dir = %dir.display(), "images directory imported");
                Some(done)
            }
            _ => None,
        };
        let (cpu, memory, storage) = node::capacity(&config);
        let port = listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or(config.listen.port());
        let (events, events_task) = Events::start(client.clone(), &config.node_name);
        let api_objects = Arc::new(env::ApiObjects::new(client.clone()));
        let objects: Arc<dyn env::Objects> = api_objects.clone();
        let sandbox_ctx = sandbox::SandboxContext {
            cluster_dns: config.cluster_dns.clone(),
            cluster_domain: config.cluster_domain.clone(),
            resolv_conf: config.resolv_conf.clone(),
            cgroup_root: config.cgroup_root.clone(),
            logs_root: config.data_dir.join("logs"),
            seccomp_root: config.data_dir.join("seccomp"),
        };
        let ctx = Arc::new(Context {
            runtime: runtime::RuntimeCache::new(cri.clone()),
            images: images::ImageManager::new(cri.clone(), events.clone(), config.image_backoff),
            volumes: volumes::VolumeManager::new(
                &config.data_dir,
                !config.hollow(),
                objects.clone(),
            ),
            objects,
            events: events.clone(),
            metrics,
            prober,
            runtime_name: version.runtime_name.clone(),
            runtime_version: format!("{}://{}", version.runtime_name, version.runtime_version),
            sandbox: sandbox_ctx,
            node: std::sync::RwLock::new(NodeFacts {
                ips: vec![node_ip.to_string()],
                cpu_milli: cpu,
                memory,
                storage,
                pod_cidr: None,
                uid: String::new(),
            }),
            pods: pods::PodManager::default(),
            last_relist: Default::default(),
            cancel: CancellationToken::new(),
            runtime_tasks: tokio_util::task::TaskTracker::new(),
            cri,
            client,
            config,
        });
        let mut attempt = 0;
        loop {
            match node::register(&ctx).await {
                Ok(_) => break,
                Err(e) if attempt < 30 => {
                    tracing::warn!(error = %e, "registering the node; retrying");
                    attempt += 1;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        events.node(
            &ctx.config.node_name,
            EventType::Normal,
            "Starting",
            "Starting kubelet.",
        );
        let mut tasks = Vec::new();
        {
            let auth = Arc::new(server::auth::ApiAuth::new(
                ctx.client.clone(),
                &ctx.config.node_name,
                &ctx.config.serving,
            ));
            let app = server::router(ctx.clone(), auth);
            tasks.push(tokio::spawn(rkube_machinery::https::serve(
                listener,
                tls,
                app,
                ctx.cancel.clone(),
                Duration::from_secs(5),
                |tls: &rustls::ServerConnection, _| {
                    let mut ext = axum::http::Extensions::new();
                    ext.insert(server::auth::PeerUser::of(tls));
                    ext
                },
            )));
        }
        let healthz_port = match healthz_listener(ctx.config.serving.healthz_port).await {
            Some(l) => {
                let port = l.local_addr().map(|a| a.port()).ok();
                let cancel = ctx.cancel.clone();
                tasks.push(tokio::spawn(async move {
                    let serve = axum::serve(l, server::healthz_router())
                        .with_graceful_shutdown(async move { cancel.cancelled().await });
                    if let Err(e) = serve.await {
                        tracing::warn!(error = %e, "the health port failed");
                    }
                }));
                port
            }
            None => None,
        };
        tasks.push(tokio::spawn(node::status_loop(ctx.clone(), port)));
        tasks.push(tokio::spawn(node::lease_loop(ctx.clone())));
        tasks.push(tokio::spawn(node::watch_pod_cidr(
            ctx.clone(),
            managed.clone(),
        )));
        tasks.push(tokio::spawn(pleg::run(ctx.clone())));
        {
            let cancel = ctx.cancel.clone();
            tasks.push(tokio::spawn(async move {
                api_objects.watch_services(cancel).await
            }));
        }
        tasks.push(tokio::spawn(pods::watch(ctx.clone())));
        if let (Some(dir), Some(imp), Some(done)) = (&ctx.config.images_dir, importer, imported) {
            tasks.push(tokio::spawn(images::watch_dir(
                dir.clone(),
                imp,
                ctx.config.images_dir_scan,
                ctx.cancel.clone(),
                done,
            )));
        }
        tracing::info!(node = %ctx.config.node_name, port, "kubelet started");
        let mut cancel_on_drop = vec![ctx.cancel.clone().drop_guard()];
        if let Some(m) = &managed {
            cancel_on_drop.push(m.supervision().drop_guard());
        }
        Ok(Kubelet {
            _cancel_on_drop: cancel_on_drop,
            ctx,
            tasks,
            managed,
            events_task: Some(events_task),
            port,
            healthz_port,
        })
    }

    /// The port the HTTPS API listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The loopback port plain `/healthz` is served on, if it is.
    pub fn healthz_port(&self) -> Option<u16> {
        self.healthz_port
    }

    /// The CRI client.
    pub fn cri(&self) -> Cri {
        self.ctx.cri.clone()
    }

    /// The metrics.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.ctx.metrics.clone()
    }

    /// The managed containerd, if the kubelet runs one.
    pub fn managed_containerd(&self) -> Option<Arc<containerd::ManagedRuntime>> {
        self.managed.clone()
    }

    /// Stops the kubelet (pods keep running) and its managed containerd.
    pub async fn stop(mut self) {
        self.ctx.cancel.cancel();
        for t in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(15), t).await;
        }
        // Pod workers stop at their next step; runtime calls under way finish first (a
        // StopPodSandbox cut short by containerd's own shutdown leaves the sandbox's shim
        // running with nothing to remove it).
        self.ctx.runtime_tasks.close();
        if tokio::time::timeout(RUNTIME_CALLS_GRACE, self.ctx.runtime_tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                left = self.ctx.runtime_tasks.len(),
                "runtime calls still under way at shutdown; stopping anyway"
            );
        }
        if let Some(m) = self.managed.take() {
            m.stop().await;
        }
        // The event publisher ends when every sender is gone; give it a moment to flush.
        drop(self.ctx);
        if let Some(t) = self.events_task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
        }
    }
}

/// The listener of the health port on 127.0.0.1, if one is wanted and can be bound (a port
/// in use is a warning, as with Kubernetes' kubelet: the API port is what matters).
async fn healthz_listener(port: Option<u16>) -> Option<tokio::net::TcpListener> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port?));
    match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::warn!(%addr, error = %e, "/healthz not served on the health port");
            None
        }
    }
}

/// Runs a kubelet until `shutdown` completes.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    let kubelet = Kubelet::start(config).await?;
    shutdown.await;
    tracing::info!("shutting down");
    kubelet.stop().await;
    Ok(())
}
