//! A hollow cluster in one process, as the scale benchmarks use it: the API server (embedded
//! store, or a real etcd started here), rkube-scheduler, rkube-controller-manager and N hollow
//! kubelets (the fake runtime), each component with the identity the real one has — the
//! scheduler `system:kube-scheduler`, the controller manager `system:kube-controller-manager`
//! with each controller acting as its ServiceAccount, every kubelet `system:node:<name>` in
//! `system:nodes` (so the Node authorizer confines it) with a client certificate of its own.
//!
//! [`HollowNodes`] are also started alone against an API server running as a process of its
//! own (the footprint and scale-limit workloads), so that they do not count in its memory.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use rkube_kubelet::hollow::FakeConfig;
use rkube_kubelet::{Kubelet, RuntimeMode};
use rkube_testkit::etcd::EtcdServer;

use super::server::{
    Http, Server, create_namespace, http, kube_client, kube_config, request, start_server, stop,
    watch_collection,
};

/// The pod network the controller manager's node IPAM splits into a /24 per node: room for
/// 32,768 nodes.
pub(crate) const CLUSTER_CIDR: &str = "10.128.0.0/9";

/// The name of hollow node `i`.
pub(crate) fn node_name(i: usize) -> String {
    format!("hollow-{i:05}")
}

/// The container of the benchmarks' pods: busybox `sleep` (every image is present on hollow
/// nodes; real nodes import busybox offline).
pub(crate) fn sleep_container() -> serde_json::Value {
    serde_json::json!({
        "name": "app",
        "image": rkube_images::BUSYBOX_REF,
        "command": ["sleep", "86400"]
    })
}

/// A Deployment of `replicas` pods (busybox `sleep`, no requests, 1 s grace period) labelled
/// `app: <name>`.
pub(crate) fn deployment_json(name: &str, replicas: usize) -> Bytes {
    Bytes::from(
        serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {
                        "terminationGracePeriodSeconds": 1,
                        "containers": [sleep_container()]
                    }
                }
            }
        })
        .to_string(),
    )
}

/// Creates Deployment `name` of `replicas` in namespace `ns` (as the admin).
pub(crate) async fn create_deployment(
    c: &Http,
    base: &str,
    ns: &str,
    name: &str,
    replicas: usize,
) -> anyhow::Result<()> {
    let (code, body) = request(
        c,
        "POST",
        &format!("{base}/apis/apps/v1/namespaces/{ns}/deployments"),
        Some(deployment_json(name, replicas)),
    )
    .await?;
    if code != 201 {
        bail!(
            "creating Deployment {ns}/{name}: {code} {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(())
}

/// The most pods the large workloads (footprint, scale-limit) put in one namespace: clusters
/// spread their pods over namespaces, and the Node authorizer's cost of a kubelet's request
/// for a pod's token or ConfigMap grows with the pods of the pod's namespace.
pub(crate) const PODS_PER_NAMESPACE: usize = 100;

/// Creates `pods` more pods as Deployments of at most [`PODS_PER_NAMESPACE`] replicas, each in
/// a new namespace `<prefix>-<n>` (`next` numbers them, and is advanced).
pub(crate) async fn create_spread(
    c: &Http,
    base: &str,
    prefix: &str,
    next: &mut usize,
    pods: usize,
) -> anyhow::Result<()> {
    let mut left = pods;
    while left > 0 {
        let n = left.min(PODS_PER_NAMESPACE);
        let ns = format!("{prefix}-{next}");
        create_namespace(c, base, &ns).await?;
        create_deployment(c, base, &ns, "app", n).await?;
        *next += 1;
        left -= n;
    }
    Ok(())
}

/// Counts the pods (of one namespace, or all) a watch saw Running (once each).
pub(crate) struct RunningPods {
    count: tokio::sync::watch::Receiver<usize>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl RunningPods {
    /// Starts watching namespace `ns` (None: every namespace) of the API server at `base`.
    pub(crate) fn start(base: &str, ns: Option<&str>) -> Self {
        let (count_tx, count) = tokio::sync::watch::channel(0);
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let mut running = std::collections::HashSet::new();
        let task = watch_collection(
            base.to_string(),
            match ns {
                Some(ns) => format!("/api/v1/namespaces/{ns}/pods"),
                None => "/api/v1/pods".to_string(),
            },
            stop_rx,
            move |ev, _| {
                if ev.object.status.phase.as_deref() == Some("Running")
                    && running.insert((
                        ev.object.metadata.namespace.clone(),
                        ev.object.metadata.name.clone(),
                    ))
                {
                    count_tx.send_replace(running.len());
                }
            },
        );
        RunningPods { count, stop, task }
    }

    /// Waits (up to `limit`) until at least `want` pods were seen Running.
    pub(crate) async fn wait(&self, want: usize, limit: Duration) -> anyhow::Result<()> {
        let mut rx = self.count.clone();
        let progress = super::progress::Progress::new(want, "pods Running");
        let seen = rx.wait_for(|n| {
            progress.set(*n);
            *n >= want
        });
        match tokio::time::timeout(limit, seen).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => bail!("the pod watch ended"),
            Err(_) => bail!(
                "{} of {want} pods Running after {limit:?}",
                *self.count.borrow()
            ),
        }
    }

    /// Stops the watch.
    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.task.await.context("the pod watch panicked")?
    }
}

/// Where hollow kubelets keep their state (pod directories, projected volume files, hosts
/// files, logs): in memory (`/dev/shm`) when the machine has it. A hundred simulated nodes
/// share one file system here; on ext4 with many deleted inodes, creating their files spent
/// up to half of the machine's CPU in the kernel's inode allocator — a cost of the simulation
/// (real nodes write to disks of their own), not of the control plane being measured.
fn state_dir() -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("rkube-hollow-")
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
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
            dir: state_dir()?,
            fake: FakeConfig::default(),
        })
    }

    /// How many run.
    pub(crate) fn len(&self) -> usize {
        self.kubelets.len()
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
                    let client = rkube_machinery::client::client(kube_config(&kc).await?)?;
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
    /// The pod syncs every kubelet's pod workers ran so far, by why they ran (`create`,
    /// `update`, `sync`, `kill`).
    pub(crate) fn pod_syncs(&self) -> BTreeMap<&'static str, u64> {
        ["create", "update", "sync", "kill"]
            .into_iter()
            .map(|op| {
                let n = self
                    .kubelets
                    .iter()
                    .map(|k| k.metrics().pod_worker_count(op))
                    .sum();
                (op, n)
            })
            .collect()
    }

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
    /// The scheduler spreads pods (NodeResourcesFit `LeastAllocated`, Kubernetes' default)
    /// instead of packing them (`MostAllocated`, rkube's default).
    pub(crate) spread: bool,
}

/// The scheduler configuration of a hollow cluster that spreads pods.
const SPREAD: &str = r#"
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
- schedulerName: default-scheduler
  pluginConfig:
  - name: NodeResourcesFit
    args:
      scoringStrategy:
        type: LeastAllocated
"#;

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
        if let Err(e) = cluster.start_components(opts.nodes, opts.spread).await {
            cluster.stop().await;
            return Err(e);
        }
        Ok(cluster)
    }

    async fn start_components(&mut self, nodes: usize, spread: bool) -> anyhow::Result<()> {
        let server = &self.server;
        let scheduler = rkube_machinery::client::client(
            kube_config(&server.kubeconfig_for_user("system:kube-scheduler", &[])?).await?,
        )?;
        let config = if spread {
            rkube_scheduler::SchedulerConfiguration::from_yaml(SPREAD)?
        } else {
            Default::default()
        };
        let opts = rkube_scheduler::Options::new(scheduler, config);
        self.components.push(spawn("scheduler", move |shutdown| {
            rkube_scheduler::run(opts, shutdown)
        }));
        let manager =
            kube_config(&server.kubeconfig_for_user("system:kube-controller-manager", &[])?)
                .await?;
        let cm = controller_manager_config(manager.clone());
        let client = rkube_machinery::client::client(manager)?;
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
