//! rkube-proxy: watches Services, EndpointSlices and Nodes with kube-rs reflectors, computes the
//! desired dataplane with a pure function ([`rules`]) and programs it — in nftables ([`nft`]) or,
//! without root or `nft`, as a userspace forwarder ([`userspace`]) — plus host-gw routes to other
//! nodes' pod CIDRs ([`routes`]) and `/healthz` + `/metrics` ([`health`]).

pub mod conntrack;
pub mod health;
pub mod netns;
pub mod nft;
pub mod routes;
pub mod rules;
pub mod testnet;
pub mod userspace;

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{BoxStream, SelectAll};
use futures::{FutureExt, StreamExt};
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::time::Instant;

use crate::health::Metrics;
use crate::netns::Netns;
use crate::nft::{NftConfig, NftProxier};
use crate::rules::{RuleSet, ServiceKey};
use crate::userspace::{UserspaceConfig, UserspaceProxier};

/// Errors of the proxy.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// nftables failed.
    #[error(transparent)]
    Nft(#[from] nft::Error),
    /// Routes could not be managed.
    #[error(transparent)]
    Routes(#[from] routes::Error),
    /// The userspace proxier failed.
    #[error(transparent)]
    Userspace(#[from] userspace::Error),
    /// The health server failed.
    #[error("health server: {0}")]
    Health(std::io::Error),
    /// nftables mode was asked for but `nft` cannot be used.
    #[error("nftables mode needs root and a working `nft` in the dataplane namespace")]
    NftUnavailable,
    /// A previous sync panicked and took the dataplane with it.
    #[error("the dataplane was lost in a failed sync")]
    BackendLost,
    /// A blocking task panicked.
    #[error("a blocking sync task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// How Services are implemented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// In the kernel: one nftables table.
    Nftables,
    /// In this process: listeners that forward connections.
    Userspace,
}

impl Mode {
    /// nftables when running as root with a working `nft`, userspace otherwise.
    pub fn detect(netns: &Netns) -> Self {
        if nix::unistd::geteuid().is_root() && NftProxier::available(netns) {
            Self::Nftables
        } else {
            Self::Userspace
        }
    }

    /// `nftables` / `userspace`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nftables => "nftables",
            Self::Userspace => "userspace",
        }
    }
}

/// Settings of [`run`].
pub struct Config {
    /// The API client.
    pub client: kube::Client,
    /// This node's name (for local endpoints and to skip its own route).
    pub node_name: String,
    /// The mode; `None` detects it.
    pub mode: Option<Mode>,
    /// Pod addresses; ClusterIP clients outside it are masqueraded.
    pub cluster_cidr: Option<Ipv4Net>,
    /// NodePorts answer on local addresses in these ranges; empty = all but loopback.
    pub nodeport_cidrs: Vec<Ipv4Net>,
    /// The network namespace to program (the process's own in production).
    pub netns: Netns,
    /// Where `/healthz` and `/metrics` are served, if anywhere.
    pub health_listener: Option<tokio::net::TcpListener>,
    /// How often everything is rewritten even without changes.
    pub full_resync_interval: Duration,
    /// The shortest time between two syncs (changes in between are batched).
    pub min_sync_interval: Duration,
    /// Whether to install host-gw routes to other nodes' pod CIDRs.
    pub routes: bool,
    /// Shared health and metrics (created by [`run`] when `None`).
    pub metrics: Option<Arc<Metrics>>,
}

impl Config {
    /// Defaults: mode detected, cluster CIDR 10.244.0.0/16, NodePorts on all addresses, the
    /// process's namespace, full re-sync every 60 s, syncs at most every 50 ms, routes on.
    pub fn new(client: kube::Client, node_name: impl Into<String>) -> Self {
        Self {
            client,
            node_name: node_name.into(),
            mode: None,
            cluster_cidr: Some(
                Ipv4Net::new(std::net::Ipv4Addr::new(10, 244, 0, 0), 16).unwrap_or_default(),
            ),
            nodeport_cidrs: Vec::new(),
            netns: Netns::current(),
            health_listener: None,
            full_resync_interval: Duration::from_secs(60),
            min_sync_interval: Duration::from_millis(50),
            routes: true,
            metrics: None,
        }
    }
}

/// Removes everything the proxy installs (its nftables table and its routes) from `netns`.
pub fn cleanup(netns: &Netns) -> Result<(), Error> {
    nft::cleanup(netns)?;
    routes::RouteManager::new(netns.clone()).cleanup()?;
    Ok(())
}

enum Change {
    Service(Box<watcher::Event<Service>>),
    Slice(Box<watcher::Event<EndpointSlice>>),
    Node(Box<watcher::Event<Node>>),
    Failed(&'static str, watcher::Error),
}

/// What an nftables sync applies.
enum Work {
    Full(RuleSet),
    Changes(Vec<(ServiceKey, Vec<rules::Frontend>)>),
}

/// Runs an nftables sync on the blocking pool (it waits for `nft`).
async fn nft_blocking(
    mut p: Box<NftProxier>,
    work: Work,
) -> Result<(Box<NftProxier>, Result<nft::SyncStats, Error>), Error> {
    Ok(tokio::task::spawn_blocking(move || {
        let r = match &work {
            Work::Full(all) => p.sync_full(all),
            Work::Changes(c) => p.sync_changes(c),
        };
        (p, r.map_err(Error::from))
    })
    .await?)
}

enum Backend {
    Nft(Box<NftProxier>),
    Userspace(UserspaceProxier),
}

/// The sync loop's state.
struct Syncer {
    node_name: String,
    services: Store<Service>,
    slices: Store<EndpointSlice>,
    nodes: Store<Node>,
    backend: Option<Backend>,
    routes: Option<routes::RouteManager>,
    metrics: Arc<Metrics>,
}

impl Syncer {
    fn compute_all(&self) -> RuleSet {
        let services = self.services.state();
        let slices = self.slices.state();
        rules::compute(
            services.iter().map(|s| s.as_ref()),
            slices.iter().map(|s| s.as_ref()),
            &self.node_name,
        )
    }

    fn compute_changes(
        &self,
        dirty: &BTreeSet<ServiceKey>,
    ) -> Vec<(ServiceKey, Vec<rules::Frontend>)> {
        let slices = self.slices.state();
        let mut by_service: HashMap<&ServiceKey, Vec<&EndpointSlice>> = HashMap::new();
        for s in &slices {
            if let Some(k) = ServiceKey::of_slice(s)
                && let Some(d) = dirty.get(&k)
            {
                by_service.entry(d).or_default().push(s.as_ref());
            }
        }
        dirty
            .iter()
            .map(|key| {
                let obj = ObjectRef::<Service>::new(&key.name).within(&key.namespace);
                let fronts = match self.services.get(&obj) {
                    Some(svc) => rules::service_frontends(
                        &svc,
                        by_service.get(key).map(Vec::as_slice).unwrap_or(&[]),
                        &self.node_name,
                    ),
                    None => Vec::new(),
                };
                (key.clone(), fronts)
            })
            .collect()
    }

    /// One sync: everything when `full`, else the `dirty` Services (falling back to a full
    /// sync when the partial one fails).
    async fn sync(&mut self, full: bool, dirty: &BTreeSet<ServiceKey>) -> Result<(), Error> {
        let start = std::time::Instant::now();
        let backend = self.backend.take().ok_or(Error::BackendLost)?;
        let (backend, result) = match backend {
            Backend::Nft(p) => {
                let work = if full {
                    Work::Full(self.compute_all())
                } else {
                    Work::Changes(self.compute_changes(dirty))
                };
                let (p, r) = nft_blocking(p, work).await?;
                match r {
                    Err(e) if !full => {
                        if matches!(e, Error::Nft(nft::Error::Conflict { .. })) {
                            tracing::info!(error = %e, "partial sync impossible; doing a full sync");
                        } else {
                            tracing::warn!(error = %e, "partial sync failed; doing a full sync");
                        }
                        let (p, r) = nft_blocking(p, Work::Full(self.compute_all())).await?;
                        let summary = p.summary();
                        (Backend::Nft(p), r.map(|s| (s.full, s.rules, summary)))
                    }
                    r => {
                        let summary = p.summary();
                        (Backend::Nft(p), r.map(|s| (s.full, s.rules, summary)))
                    }
                }
            }
            Backend::Userspace(mut p) => {
                let all = self.compute_all();
                let r = p
                    .sync(&all)
                    .map(|s| (true, s.listeners, rules::summarize(&all)));
                (Backend::Userspace(p), r.map_err(Error::from))
            }
        };
        self.backend = Some(backend);
        let (was_full, rules_count, summary) = result?;
        let elapsed = start.elapsed();
        self.metrics.synced(was_full, elapsed, rules_count, summary);
        tracing::debug!(
            full = was_full,
            services = dirty.len(),
            elapsed_ms = elapsed.as_secs_f64() * 1e3,
            "synced"
        );
        Ok(())
    }

    fn sync_routes(&mut self) {
        let Some(mgr) = &mut self.routes else { return };
        let nodes = self.nodes.state();
        let want = routes::desired_routes(nodes.iter().map(|n| n.as_ref()), &self.node_name);
        match mgr.sync(&want) {
            Ok(s) => self.metrics.routes(s.installed),
            Err(e) => tracing::warn!(error = %e, "pod route sync failed"),
        }
    }

    fn shutdown(&mut self) {
        match self.backend.take() {
            Some(Backend::Nft(mut p)) => match p.cleanup() {
                Ok(()) => tracing::info!("nftables table removed"),
                Err(e) => tracing::warn!(error = %e, "could not remove the nftables table"),
            },
            Some(Backend::Userspace(mut p)) => p.cleanup(),
            None => {}
        }
    }
}

/// What the watches have told the sync loop so far.
struct LoopState {
    services_ready: bool,
    slices_ready: bool,
    nodes_ready: bool,
    full_needed: bool,
    routes_dirty: bool,
    dirty: BTreeSet<ServiceKey>,
}

impl LoopState {
    /// Whether a sync is due (and possible: every watch has listed once).
    fn pending(&self) -> bool {
        self.services_ready
            && self.slices_ready
            && self.nodes_ready
            && (self.full_needed || !self.dirty.is_empty() || self.routes_dirty)
    }

    fn handle(&mut self, c: Change) {
        match c {
            Change::Service(ev) => match *ev {
                watcher::Event::Apply(s) | watcher::Event::Delete(s) => {
                    self.dirty.insert(ServiceKey::of_service(&s));
                }
                watcher::Event::InitDone => {
                    self.services_ready = true;
                    self.full_needed = true;
                }
                watcher::Event::Init | watcher::Event::InitApply(_) => {}
            },
            Change::Slice(ev) => match *ev {
                watcher::Event::Apply(s) | watcher::Event::Delete(s) => {
                    if let Some(k) = ServiceKey::of_slice(&s) {
                        self.dirty.insert(k);
                    }
                }
                watcher::Event::InitDone => {
                    self.slices_ready = true;
                    self.full_needed = true;
                }
                watcher::Event::Init | watcher::Event::InitApply(_) => {}
            },
            Change::Node(ev) => match *ev {
                watcher::Event::Apply(_) | watcher::Event::Delete(_) => self.routes_dirty = true,
                watcher::Event::InitDone => {
                    self.nodes_ready = true;
                    self.routes_dirty = true;
                }
                watcher::Event::Init | watcher::Event::InitApply(_) => {}
            },
            Change::Failed(what, e) => {
                tracing::warn!(watch = what, error = %e, "watch failed; retrying");
            }
        }
    }
}

fn watch<K>(
    api: Api<K>,
    writer: reflector::store::Writer<K>,
) -> BoxStream<'static, Result<watcher::Event<K>, watcher::Error>>
where
    K: kube::Resource
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    reflector::reflector(
        writer,
        watcher(api, watcher::Config::default()).default_backoff(),
    )
    .boxed()
}

/// Runs the proxy until `shutdown` completes; then removes its table (nftables mode) or closes
/// its listeners (userspace mode).
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    let netns = config.netns.clone();
    let mode = match config.mode {
        Some(m) => m,
        None => {
            let ns = netns.clone();
            tokio::task::spawn_blocking(move || Mode::detect(&ns)).await?
        }
    };
    if mode == Mode::Nftables {
        let ns = netns.clone();
        if !tokio::task::spawn_blocking(move || NftProxier::available(&ns)).await? {
            return Err(Error::NftUnavailable);
        }
    }
    tracing::info!(mode = mode.as_str(), node = %config.node_name, "rkube-proxy starting");
    let metrics = config.metrics.clone().unwrap_or_else(|| {
        Arc::new(Metrics::new(
            mode.as_str(),
            config.full_resync_interval * 2 + Duration::from_secs(30),
        ))
    });
    let (health_stop, health_stopped) = tokio::sync::oneshot::channel::<()>();
    let health_task = config.health_listener.map(|listener| {
        let app = health::router(metrics.clone());
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = health_stopped.await;
                })
                .await
        })
    });

    let backend = match mode {
        Mode::Nftables => Backend::Nft(Box::new(NftProxier::new(
            NftConfig {
                cluster_cidr: config.cluster_cidr,
                nodeport_cidrs: config.nodeport_cidrs.clone(),
                ..Default::default()
            },
            netns.clone(),
        ))),
        Mode::Userspace => Backend::Userspace(UserspaceProxier::new(
            UserspaceConfig {
                nodeport_cidrs: config.nodeport_cidrs.clone(),
            },
            netns.clone(),
        )),
    };
    // Routes need root; in userspace mode the proxy usually has none.
    let manage_routes = config.routes && mode == Mode::Nftables;

    let (services, svc_writer) = reflector::store();
    let (slices, slice_writer) = reflector::store();
    let (nodes, node_writer) = reflector::store();
    let client = config.client.clone();
    let mut events: SelectAll<BoxStream<'static, Change>> = SelectAll::new();
    events.push(
        watch(Api::<Service>::all(client.clone()), svc_writer)
            .map(|r| {
                r.map_or_else(
                    |e| Change::Failed("services", e),
                    |ev| Change::Service(Box::new(ev)),
                )
            })
            .boxed(),
    );
    events.push(
        watch(Api::<EndpointSlice>::all(client.clone()), slice_writer)
            .map(|r| {
                r.map_or_else(
                    |e| Change::Failed("endpointslices", e),
                    |ev| Change::Slice(Box::new(ev)),
                )
            })
            .boxed(),
    );
    if manage_routes {
        events.push(
            watch(Api::<Node>::all(client.clone()), node_writer)
                .map(|r| {
                    r.map_or_else(
                        |e| Change::Failed("nodes", e),
                        |ev| Change::Node(Box::new(ev)),
                    )
                })
                .boxed(),
        );
    }

    let mut syncer = Syncer {
        node_name: config.node_name.clone(),
        services,
        slices,
        nodes,
        backend: Some(backend),
        routes: manage_routes.then(|| routes::RouteManager::new(netns.clone())),
        metrics: metrics.clone(),
    };

    let mut shutdown = pin!(shutdown);
    let mut st = LoopState {
        services_ready: false,
        slices_ready: false,
        nodes_ready: !manage_routes,
        full_needed: true,
        routes_dirty: manage_routes,
        dirty: BTreeSet::new(),
    };
    let mut last_sync = Instant::now() - config.min_sync_interval;
    let mut next_full = Instant::now() + config.full_resync_interval;
    let mut retry_at: Option<Instant> = None;
    let result = loop {
        let sync_at = (last_sync + config.min_sync_interval).max(retry_at.unwrap_or(last_sync));
        let pending = st.pending();
        tokio::select! {
            _ = &mut shutdown => break Ok(()),
            ev = events.next() => {
                match ev {
                    Some(c) => {
                        st.handle(c);
                        // Batch whatever else is already there.
                        for _ in 0..10_000 {
                            match events.next().now_or_never() {
                                Some(Some(c)) => st.handle(c),
                                _ => break,
                            }
                        }
                    }
                    None => break Ok(()),
                }
            }
            _ = tokio::time::sleep_until(next_full) => {
                st.full_needed = true;
                st.routes_dirty = manage_routes;
                next_full = Instant::now() + config.full_resync_interval;
            }
            _ = tokio::time::sleep_until(sync_at), if pending => {
                let full = st.full_needed;
                let batch = std::mem::take(&mut st.dirty);
                st.full_needed = false;
                last_sync = Instant::now();
                if full || !batch.is_empty() {
                    match syncer.sync(full, &batch).await {
                        Ok(()) => {
                            retry_at = None;
                            if full {
                                next_full = Instant::now() + config.full_resync_interval;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "sync failed; retrying with a full sync");
                            metrics.failed();
                            st.full_needed = true;
                            retry_at = Some(Instant::now() + Duration::from_secs(1));
                        }
                    }
                }
                if st.routes_dirty {
                    st.routes_dirty = false;
                    syncer.sync_routes();
                }
            }
        }
    };
    tracing::info!("rkube-proxy stopping");
    syncer.shutdown();
    let _ = health_stop.send(());
    if let Some(t) = health_task {
        match t.await {
            Ok(Err(e)) => return Err(Error::Health(e)),
            Err(e) => return Err(Error::Join(e)),
            Ok(Ok(())) => {}
        }
    }
    result
}
