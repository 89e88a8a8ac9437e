//! A hollow cluster in one process, as the scale benchmarks use it: the API server (embedded
//! store, or a real etcd started here), rkube-scheduler, rkube-controller-manager and N hollow
//! kubelets (the fake runtime), each component with the identity the real one has — the
//! scheduler `system:kube-scheduler`, the controller manager `system:kube-controller-manager`
//! with each controller acting as its ServiceAccount, every kubelet `system:node:<name>` in
//! `system:nodes` (so the Node authorizer confines it) with a client certificate of its own.
//!
//! [`HollowNodes`] are also started alone against an API server running as a process of its
//! own (the footprint and scale-limit workloads), so that they do not count in its memory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use rkube_kubelet::hollow::FakeConfig;
use rkube_kubelet::{Kubelet, RuntimeMode};
use rkube_testkit::etcd::EtcdServer;

use super::server::{Http, Server, http, kube_client, kube_config, start_server, stop};

/// The pod network the controller manager's node IPAM splits into a /24 per node: room for
/// 32,768 nodes.
pub(crate) const CLUSTER_CIDR: &str = "10.128.0.0/9";

/// The name of hollow node `i`.
pub(crate) fn node_name(i: usize) -> String {
    format!("hollow-{i:05}")
}

/// Hollow kubelets started in this process, each with its own client certificate.
pub(crate) struct HollowNodes {
    kubelets: Vec<Kubelet>,
    dir: tempfile::TempDir,
    /// How the fake runtime behaves.
    pub(crate) fake: FakeConfig,
}

impl HollowNodes {
    /// No nodes yet.
    pub(crate) fn new() -> anyhow::Result<Self> {
        Ok(HollowNodes {
            kubelets: Vec::new(),
            dir: tempfile::tempdir()?,
            fake: FakeConfig::default(),
        })
    }

    /// Starts `n` more hollow kubelets against `server` (16 starting at once) and waits until
    /// every node is Ready.
    pub(crate) async fn add(&mut self, server: &Server, n: usize) -> anyhow::Result<()> {
        let first = self.kubelets.len();
        let started = Instant::now();
        let mut starting = futures::stream::iter(first..first + n)
            .map(|i| {
                let name = node_name(i);
                let dir = self.dir.path().join(&name);
                let fake = self.fake.clone();
                async move {
                    let user = format!("system:node:{name}");
                    let kc = server.kubeconfig_for_user(&user, &["system:nodes"])?;
                    let client = kube::Client::try_from(kube_config(&kc).await?)?;
                    let cfg = kubelet_config(server, client, &name, &dir, fake);
                    Kubelet::start(cfg)
                        .await
                        .with_context(|| format!("starting hollow kubelet {name}"))
                }
            })
            .buffer_unordered(16);
        while let Some(k) = starting.next().await {
            self.kubelets.push(k?);
        }
        drop(starting);
        let admin = kube_client(server).await?;
        nodes_ready(&admin, self.kubelets.len()).await?;
        eprintln!(
            "{n} hollow nodes started and Ready in {:.1?} ({} in all)",
            started.elapsed(),
            self.kubelets.len()
        );
        Ok(())
    }

    /// Stops every kubelet.
    pub(crate) async fn stop(self) {
        futures::future::join_all(self.kubelets.into_iter().map(Kubelet::stop)).await;
    }
}

/// A hollow kubelet's configuration: the fake runtime, its own client, the bench CA's client
/// certificates accepted on its API, 4 cpu / 8 GiB, kubelet defaults otherwise.
fn kubelet_config(
    server: &Server,
    client: kube::Client,
    name: &str,
    dir: &std::path::Path,
    fake: FakeConfig,
) -> rkube_kubelet::Config {
    let mut cfg = rkube_kubelet::Config::new(name, dir);
    cfg.client = Some(client);
    cfg.runtime = RuntimeMode::Fake(fake);
    cfg.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    cfg.node_ip = Some(std::net::IpAddr::from([127, 0, 0, 1]));
    // Many kubelets in one process: no health port.
    cfg.serving.healthz_port = None;
    cfg.serving.client_ca_file = Some(server.ca_file());
    cfg.capacity = Some(rkube_kubelet::config::Capacity {
        cpu_milli: 4000,
        memory: 8 << 30,
        ephemeral_storage: 100 << 30,
    });
    cfg
}

/// Waits until at least `want` Nodes are Ready (two minutes, plus 50 ms a node).
pub(crate) async fn nodes_ready(client: &kube::Client, want: usize) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let limit = Duration::from_secs(120) + Duration::from_millis(50) * want as u32;
    let deadline = Instant::now() + limit;
    loop {
        let ready = nodes
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .filter(|n| {
                n.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .count();
        if ready >= want {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{ready} of {want} hollow nodes Ready after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A component running as a task of this process.
struct Task {
    name: &'static str,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// Spawns `run` (given its shutdown future), logging its failure.
fn spawn<F, E>(
    name: &'static str,
    run: impl FnOnce(futures::future::BoxFuture<'static, ()>) -> F,
) -> Task
where
    F: Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display,
{
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let fut = run(Box::pin(async {
        let _ = rx.await;
    }));
    let task = tokio::spawn(async move {
        if let Err(e) = fut.await {
            eprintln!("{name} failed: {e}");
        }
    });
    Task {
        name,
        stop: tx,
        task,
    }
}

/// The controller manager's settings in a hollow cluster: node IPAM over [`CLUSTER_CIDR`],
/// each controller as its ServiceAccount (connecting with `sa`'s server and CA).
pub(crate) fn controller_manager_config(sa: kube::Config) -> rkube_controller_manager::Config {
    rkube_controller_manager::Config {
        cluster_cidr: Some(CLUSTER_CIDR.parse().expect("the cluster CIDR")),
        node_cidr_mask_size: 24,
        service_account_credentials: Some(sa),
        ..Default::default()
    }
}

/// What a hollow cluster is made of.
#[derive(Clone, Debug, Default)]
pub(crate) struct Options {
    /// Hollow nodes started with it.
    pub(crate) nodes: usize,
    /// The API server on a real etcd started here, not the embedded store.
    pub(crate) etcd: bool,
}

/// A hollow cluster in this process. Stop it with [`HollowCluster::stop`].
pub(crate) struct HollowCluster {
    /// The API server.
    pub(crate) server: Server,
    /// A kube client of the admin.
    pub(crate) admin: kube::Client,
    /// A pooled HTTPS client of the admin.
    pub(crate) http: Arc<Http>,
    /// The hollow kubelets.
    pub(crate) nodes: HollowNodes,
    components: Vec<Task>,
    _etcd: Option<EtcdServer>,
}

impl HollowCluster {
    /// Starts the API server, the scheduler and the controller manager, then `opts.nodes`
    /// hollow kubelets, and waits until every node is Ready.
    pub(crate) async fn start(opts: &Options) -> anyhow::Result<Self> {
        let etcd = if opts.etcd {
            Some(tokio::task::spawn_blocking(EtcdServer::start).await?)
        } else {
            None
        };
        let server = start_server(etcd.as_ref()).await?;
        let mut cluster = HollowCluster {
            admin: kube_client(&server).await?,
            http: Arc::new(http()),
            server,
            nodes: HollowNodes::new()?,
            components: Vec::new(),
            _etcd: etcd,
        };
        if let Err(e) = cluster.start_components(opts.nodes).await {
            cluster.stop().await;
            return Err(e);
        }
        Ok(cluster)
    }

    async fn start_components(&mut self, nodes: usize) -> anyhow::Result<()> {
        let server = &self.server;
        let scheduler = kube::Client::try_from(
            kube_config(&server.kubeconfig_for_user("system:kube-scheduler", &[])?).await?,
        )?;
        let opts = rkube_scheduler::Options::new(scheduler, Default::default());
        self.components.push(spawn("scheduler", move |shutdown| {
            rkube_scheduler::run(opts, shutdown)
        }));
        let manager =
            kube_config(&server.kubeconfig_for_user("system:kube-controller-manager", &[])?)
                .await?;
        let cm = controller_manager_config(manager.clone());
        let client = kube::Client::try_from(manager)?;
        self.components
            .push(spawn("controller-manager", move |shutdown| {
                rkube_controller_manager::run(cm, client, None, shutdown)
            }));
        self.nodes.add(&self.server, nodes).await
    }

    /// Stops the kubelets, the components, then the API server (and etcd).
    pub(crate) async fn stop(self) {
        self.nodes.stop().await;
        for c in self.components {
            let _ = c.stop.send(());
            if tokio::time::timeout(Duration::from_secs(20), c.task)
                .await
                .is_err()
            {
                eprintln!("{} did not stop within 20 s", c.name);
            }
        }
        stop(self.server).await;
    }
}
