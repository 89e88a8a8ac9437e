//! rkube's controller manager: the control loops that turn desired state into actual state —
//! ReplicaSets, Deployments, Jobs (and finished Jobs' TTL), CronJobs, Endpoints and EndpointSlices, the
//! status of PodDisruptionBudgets, the garbage collector, namespace deletion, node health and pod
//! eviction, node pod CIDRs, default ServiceAccounts, and the approval and signing of
//! CertificateSigningRequests.
//!
//! Every controller is a `kube::runtime` controller (or, where Kubernetes runs a periodic loop
//! or a graph, a loop of its own) over shared informers ([`informer`]): it reads only from the
//! local caches, is level-triggered and idempotent, and writes through the API with
//! resourceVersion preconditions. [`run`] starts the enabled controllers — after winning the
//! leader election when asked — and serves `/healthz`, `/readyz` and `/metrics`.

pub mod clock;
pub mod config;
pub mod controller_ref;
pub mod credentials;
pub mod cronjob;
pub mod csr;
pub mod csrapproving;
pub mod csrsigning;
pub mod deployment;
pub mod discovery;
pub mod disruption;
pub mod endpoints;
pub mod endpointslice;
pub mod events;
pub mod expectations;
pub mod garbagecollector;
pub mod informer;
pub mod job;
pub mod metrics;
pub mod namespace;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod podutil;
pub mod replicaset;
pub mod resourcequota;
pub mod runner;
pub mod server;
pub mod serviceaccount;
pub mod ttlafterfinished;
pub mod workqueue;

#[cfg(test)]
pub(crate) mod fake;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared as SharedFuture};
use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use rkube_machinery::leader::{self, LeaderConfig};

pub use config::Config;
use events::Recorder;
use informer::Informers;
use metrics::Metrics;

/// A shutdown signal every task can wait on.
pub type Shutdown = SharedFuture<BoxFuture<'static, ()>>;

/// What the controllers share: the client, the informers, metrics, events, settings.
pub struct Shared {
    /// The controller manager's own API client (informers, events, leader election).
    pub client: Client,
    /// The controllers' clients by ServiceAccount, with `--use-service-account-credentials`.
    clients: std::collections::HashMap<&'static str, Client>,
    /// The shared informers.
    pub informers: Arc<Informers>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The event writer.
    pub recorder: Recorder,
    /// Settings.
    pub config: Config,
    stop: Shutdown,
}

impl Shared {
    /// The client a controller writes with: as its ServiceAccount `kube-system/<account>` with
    /// `--use-service-account-credentials`, else the controller manager's own.
    pub fn client_for(&self, account: &str) -> Client {
        self.clients
            .get(account)
            .cloned()
            .unwrap_or_else(|| self.client.clone())
    }

    /// Completes when the controllers must stop.
    pub fn shutdown(&self) -> Shutdown {
        self.stop.clone()
    }
}

/// Why the controller manager stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Invalid settings.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// Another instance took the lease: the controllers stopped.
    #[error("leader election lost")]
    LostLeadership,
    /// The signing CA (`--cluster-signing-cert-file`, `--cluster-signing-key-file`) is
    /// unusable.
    #[error("the cluster signing CA: {0}")]
    SigningCa(#[from] rkube_machinery::certificates::CertificateError),
    /// The health/metrics endpoint failed.
    #[error("serving health and metrics: {0}")]
    Serve(#[source] std::io::Error),
}

/// Runs the controller manager until `shutdown` completes: serves health and metrics on
/// `listener` (if given), takes part in the leader election when `config.leader_elect`, and
/// runs the enabled controllers while it leads.
pub async fn run(
    config: Config,
    client: Client,
    listener: Option<tokio::net::TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    config.validate()?;
    // The signing CA is read once at start: a bad file is an error now, not at the first CSR.
    let signing_ca = match (
        &config.cluster_signing_cert_file,
        &config.cluster_signing_key_file,
    ) {
        (Some(cert), Some(key)) if config.enabled("csrsigning") => Some(
            rkube_machinery::certificates::CertificateAuthority::load(cert, key)?,
        ),
        _ => None,
    };
    let metrics = Metrics::new();
    let ready = Arc::new(AtomicBool::new(false));
    let shutdown: Shutdown = shutdown.boxed().shared();
    let server = listener.map(|l| {
        tokio::spawn(server::serve(
            l,
            metrics.clone(),
            ready.clone(),
            shutdown.clone(),
        ))
    });

    let mut election = None;
    let stop: Shutdown = if config.leader_elect {
        let (t1, t2, t3) = config.leader_timings;
        let cfg = LeaderConfig {
            lease_duration: t1,
            renew_deadline: t2,
            retry_period: t3,
            ..LeaderConfig::new(
                "kube-system",
                &config.leader_lease_name,
                &config.leader_identity,
            )
        };
        let (mut leading, task) = leader::run(
            Api::<Lease>::namespaced(client.clone(), "kube-system"),
            cfg,
            shutdown.clone(),
        );
        election = Some(task);
        tracing::info!(identity = %config.leader_identity, "waiting to become leader");
        tokio::select! {
            ok = leading.wait_for(|l| *l).map(|r| r.is_ok()) => { if !ok { return Ok(()); } }
            () = shutdown.clone() => {
                if let Some(t) = election { let _ = t.await; }
                return Ok(());
            }
        }
        let shutdown = shutdown.clone();
        async move {
            tokio::select! {
                _ = leading.wait_for(|l| !*l).map(|r| r.is_ok()) => {}
                () = shutdown => {}
            }
        }
        .boxed()
        .shared()
    } else {
        shutdown.clone()
    };
    metrics.set_leader(true);
    let lost = Arc::new(AtomicBool::new(false));
    {
        let lost = lost.clone();
        let stop = stop.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            stop.await;
            if shutdown.peek().is_none() {
                lost.store(true, Ordering::SeqCst);
            }
        });
    }

    let clients = match &config.service_account_credentials {
        Some(base) => {
            let accounts = controller_accounts(&config);
            tracing::info!(
                ?accounts,
                "controllers use their ServiceAccounts' credentials"
            );
            credentials::service_account_clients(base, &client, &accounts, stop.clone()).await
        }
        None => Default::default(),
    };
    let informers = Arc::new(Informers::new(client.clone()));
    let shared = Shared {
        client: client.clone(),
        clients,
        informers: informers.clone(),
        metrics: metrics.clone(),
        recorder: Recorder::new(client.clone(), "kube-controller-manager"),
        config: config.clone(),
        stop: stop.clone(),
    };
    let controllers = start_controllers(&shared, signing_ca);
    informers.start(stop.clone());
    tokio::select! {
        () = informers.wait_synced() => {}
        () = stop.clone() => {}
    }
    if stop.peek().is_none() {
        tracing::info!(
            controllers = controllers.len(),
            "caches synced; controllers running"
        );
        ready.store(true, Ordering::SeqCst);
    }
    futures::future::join_all(controllers).await;
    ready.store(false, Ordering::SeqCst);
    metrics.set_leader(false);
    if let Some(t) = election {
        let _ = t.await;
    }
    if let Some(s) = server {
        shutdown.clone().await;
        if let Ok(Err(e)) = s.await {
            return Err(Error::Serve(e));
        }
    }
    if lost.load(Ordering::SeqCst) {
        return Err(Error::LostLeadership);
    }
    Ok(())
}

/// The controllers (their `--controllers` short names) and the ServiceAccount in `kube-system`
/// each acts as with `--use-service-account-credentials` — Kubernetes' names.
const ACCOUNTS: &[(&str, &str)] = &[
    ("replicaset", replicaset::ACCOUNT),
    ("deployment", deployment::ACCOUNT),
    ("endpoints", endpoints::ACCOUNT),
    ("endpointslice", endpointslice::ACCOUNT),
    ("garbage-collector", garbagecollector::ACCOUNT),
    ("namespace", namespace::ACCOUNT),
    ("node-lifecycle", nodelifecycle::ACCOUNT),
    ("taint-eviction", nodelifecycle::ACCOUNT),
    ("node-ipam", nodeipam::ACCOUNT),
    ("serviceaccount", serviceaccount::ACCOUNT),
    ("csrapproving", csr::ACCOUNT),
    ("csrsigning", csr::ACCOUNT),
    ("job", job::ACCOUNT),
    ("resourcequota", resourcequota::ACCOUNT),
    ("cronjob", cronjob::ACCOUNT),
    ("ttl-after-finished", ttlafterfinished::ACCOUNT),
    ("disruption", disruption::ACCOUNT),
];

/// The ServiceAccounts of the enabled controllers.
fn controller_accounts(config: &Config) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = ACCOUNTS
        .iter()
        .filter(|(c, _)| config.enabled(c))
        .map(|(_, a)| *a)
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Builds every enabled controller (subscribing to the informers they need); csrsigning signs
/// with `signing_ca`.
fn start_controllers(
    shared: &Shared,
    signing_ca: Option<rkube_machinery::certificates::CertificateAuthority>,
) -> Vec<BoxFuture<'static, ()>> {
    let c = &shared.config;
    let mut futs = Vec::new();
    if c.enabled("replicaset") {
        futs.push(replicaset::start(shared));
    }
    if c.enabled("deployment") {
        futs.push(deployment::start(shared));
    }
    if c.enabled("endpoints") {
        futs.push(endpoints::start(shared));
    }
    if c.enabled("endpointslice") {
        futs.push(endpointslice::start(shared));
    }
    if c.enabled("job") {
        futs.push(job::start(shared));
    }
    if c.enabled("resourcequota") {
        futs.push(resourcequota::start(shared));
    }
    if c.enabled("cronjob") {
        futs.push(cronjob::start(shared));
    }
    if c.enabled("ttl-after-finished") {
        futs.push(ttlafterfinished::start(shared));
    }
    if c.enabled("disruption") {
        futs.push(disruption::start(shared));
    }
    if c.enabled("garbage-collector") {
        futs.push(garbagecollector::start(shared));
    }
    if c.enabled("namespace") {
        futs.push(namespace::start(shared));
    }
    if c.enabled("node-lifecycle") || c.enabled("taint-eviction") {
        futs.push(nodelifecycle::start(shared));
    }
    if c.enabled("node-ipam") {
        futs.push(nodeipam::start(shared));
    }
    if c.enabled("serviceaccount") {
        futs.push(serviceaccount::start(shared));
    }
    if c.enabled("csrapproving") {
        futs.push(csrapproving::start(shared));
    }
    match signing_ca {
        Some(ca) => futs.push(csrsigning::start(shared, ca)),
        None => tracing::info!(
            "csrsigning-controller not running: no --cluster-signing-cert-file and --cluster-signing-key-file"
        ),
    }
    futs
}
