//! Wiring: the scheduler's shared state (cache, queue, one framework per profile, metrics,
//! event recorder), its watches, leader election, the health/metrics server and the scheduling
//! loop, started by [`Scheduler::run`] and stopped by the shutdown future.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use rkube_machinery::leader::{self, LeaderConfig};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::cache::Cache;
use crate::config::SchedulerConfiguration;
use crate::events::EventRecorder;
use crate::framework::registry::{Handle, Registry};
use crate::framework::runtime::Framework;
use crate::metrics::{CacheSizes, Metrics};
use crate::queue::SchedulingQueue;

/// What the scheduler needs to run.
pub struct Options {
    /// The API client.
    pub client: kube::Client,
    /// The configuration (profiles, backoff, leader election).
    pub config: SchedulerConfiguration,
    /// Plugins available to the profiles.
    pub registry: Registry,
    /// This instance's identity (leader election, events' reportingInstance).
    pub identity: String,
    /// Where to serve `/healthz`, `/readyz` and `/metrics` (none: not served).
    pub listener: Option<tokio::net::TcpListener>,
    /// Binding requests in flight at most.
    pub max_in_flight_binds: usize,
    /// Seed of the score tie-breaker (`None`: from the clock).
    pub seed: Option<u64>,
}

impl Options {
    /// Defaults: the in-tree plugins, 256 binds in flight, no health server.
    pub fn new(client: kube::Client, config: SchedulerConfiguration) -> Self {
        Options {
            client,
            config,
            registry: Registry::in_tree(),
            identity: default_identity(),
            listener: None,
            max_in_flight_binds: 256,
            seed: None,
        }
    }
}

/// `hostname_<random>`, as Kubernetes components name themselves for leader election.
pub fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "rkube-scheduler".into());
    format!("{host}_{:016x}", rand::random::<u64>())
}

/// The state shared by the watches, the scheduling loop and the bind tasks.
pub(crate) struct Shared {
    pub client: kube::Client,
    pub cache: Mutex<Cache>,
    pub queue: SchedulingQueue,
    pub frameworks: HashMap<String, Arc<Framework>>,
    pub metrics: Arc<Metrics>,
    pub recorder: EventRecorder,
}

impl Shared {
    pub fn cache(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn cache_sizes(&self) -> CacheSizes {
        let c = self.cache();
        CacheSizes {
            nodes: c.node_count(),
            pods: c.pod_count(),
            assumed: c.assumed_count(),
        }
    }
}

/// What a caller can watch while the scheduler runs.
#[derive(Clone)]
pub struct SchedulerHandle {
    /// Counters and histograms.
    pub metrics: Arc<Metrics>,
    /// Becomes `true` once the watches have listed nodes, pods and namespaces.
    pub synced: watch::Receiver<bool>,
    /// Whether this instance currently leads (always `true` without leader election).
    pub leading: watch::Receiver<bool>,
}

/// A configured scheduler, ready to run.
pub struct Scheduler {
    opts: Options,
    frameworks: HashMap<String, Arc<Framework>>,
    metrics: Arc<Metrics>,
    synced: (watch::Sender<bool>, watch::Receiver<bool>),
    leading: (watch::Sender<bool>, watch::Receiver<bool>),
}

impl Scheduler {
    /// Validates the configuration and builds every profile's plugins.
    pub fn new(opts: Options) -> Result<Self, Error> {
        opts.config.validate()?;
        let handle = Handle {
            client: Some(opts.client.clone()),
        };
        let threads = opts.config.threads();
        let mut frameworks = HashMap::new();
        for profile in &opts.config.profiles {
            let fwk = Framework::new(
                profile,
                &opts.registry,
                &handle,
                opts.config.percentage_of_nodes_to_score,
                threads,
            )?;
            frameworks.insert(profile.scheduler_name.clone(), Arc::new(fwk));
        }
        Ok(Scheduler {
            opts,
            frameworks,
            metrics: Arc::new(Metrics::default()),
            synced: watch::channel(false),
            leading: watch::channel(false),
        })
    }

    /// Metrics and readiness, for callers that run the scheduler in-process.
    pub fn handle(&self) -> SchedulerHandle {
        SchedulerHandle {
            metrics: self.metrics.clone(),
            synced: self.synced.1.clone(),
            leading: self.leading.1.clone(),
        }
    }

    /// Runs until `shutdown` completes. With leader election it schedules only while it leads,
    /// and returns [`Error::LostLeadership`] if it stops leading (as kube-scheduler exits).
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let Scheduler {
            mut opts,
            frameworks,
            metrics,
            synced,
            leading,
        } = self;
        let stop = CancellationToken::new();
        let stop_on_shutdown = stop.clone();
        let shutdown_task = tokio::spawn(async move {
            shutdown.await;
            stop_on_shutdown.cancel();
        });
        let (recorder, recorder_task) =
            EventRecorder::start(opts.client.clone(), opts.identity.clone(), metrics.clone());
        let (initial, max) = opts.config.backoff();
        let shared = Arc::new(Shared {
            client: opts.client.clone(),
            cache: Mutex::new(Cache::new()),
            queue: SchedulingQueue::new(
                initial,
                max,
                Duration::from_secs(opts.config.pod_max_in_unschedulable_pods_seconds.max(1) as u64),
            ),
            frameworks,
            metrics: metrics.clone(),
            recorder,
        });

        let informers = crate::informer::spawn(shared.clone(), synced.0);

        let server = opts.listener.take().map(|listener| {
            let shared = shared.clone();
            let synced = synced.1.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                crate::server::serve(listener, shared, synced, stop.cancelled_owned()).await
            })
        });

        // Leadership: a Lease election, or always leading.
        let le = &opts.config.leader_election;
        let (mut leading_rx, election) = if le.leader_elect {
            let mut cfg =
                LeaderConfig::new(&le.resource_namespace, &le.resource_name, &opts.identity);
            cfg.lease_duration = le.lease_duration.0;
            cfg.renew_deadline = le.renew_deadline.0;
            cfg.retry_period = le.retry_period.0;
            let api: Api<Lease> = Api::namespaced(opts.client.clone(), &le.resource_namespace);
            let (rx, task) = leader::run(api, cfg, stop.clone().cancelled_owned());
            (rx, Some(task))
        } else {
            let (tx, rx) = watch::channel(true);
            // Keep the sender alive for the whole run.
            let stop = stop.clone();
            tokio::spawn(async move {
                stop.cancelled().await;
                drop(tx);
            });
            (rx, None)
        };
        let lease_name = le.resource_name.clone();

        let result = async {
            // Wait to lead.
            tokio::select! {
                r = leading_rx.wait_for(|l| *l) => { if r.is_err() { return Ok(()); } }
                _ = stop.cancelled() => return Ok(()),
            }
            leading.0.send_replace(true);
            tracing::info!(identity = %opts.identity, "scheduling");
            // Wait for the caches.
            let mut synced_rx = synced.1.clone();
            tokio::select! {
                _ = synced_rx.wait_for(|s| *s) => {}
                _ = stop.cancelled() => return Ok(()),
            }
            let lost = CancellationToken::new();
            let lost_set = lost.clone();
            let mut watch_leading = leading_rx.clone();
            let stop_watch = stop.clone();
            let leading_tx = leading.0.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = watch_leading.wait_for(|l| !*l) => {
                        leading_tx.send_replace(false);
                        lost_set.cancel();
                    }
                    _ = stop_watch.cancelled() => {}
                }
            });
            crate::schedule_one::scheduling_loop(
                shared.clone(),
                opts.seed,
                opts.max_in_flight_binds.max(1),
                stop.clone(),
                lost.clone(),
            )
            .await;
            if lost.is_cancelled() && !stop.is_cancelled() {
                return Err(Error::LostLeadership(lease_name));
            }
            Ok(())
        }
        .await;

        stop.cancel();
        shared.queue.close();
        leading.0.send_replace(false);
        for t in informers {
            t.abort();
        }
        if let Some(t) = election {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
        if let Some(s) = server
            && let Ok(Ok(Err(e))) = tokio::time::timeout(Duration::from_secs(10), s).await
        {
            return Err(Error::Serve(e));
        }
        shutdown_task.abort();
        drop(shared);
        recorder_task.abort();
        result
    }
}
