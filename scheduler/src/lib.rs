//! rkube's scheduler: watches pods and nodes through the API server, and binds each pending
//! pod of its profiles to a node — bin-packing by default (NodeResourcesFit with the
//! MostAllocated strategy).
//!
//! The pieces, in the order a pod meets them: the [`queue`] (active / backoff /
//! unschedulable), the [`cache`] of nodes with assumed pods and its per-cycle snapshot, the
//! [`framework`] of PreFilter / Filter / PostFilter / PreScore / Score / Bind plugins (the
//! in-tree ones in [`plugins`], configured per profile by [`config`]), and the cycle in
//! `schedule_one`, which binds in the background through `pods/binding`. Events, the
//! PodScheduled condition, preemption, leader election and `/metrics` complete it.
//!
//! Run it with [`run`] (or [`Scheduler`] for access to metrics while it runs).

pub mod cache;
pub mod config;
pub mod events;
pub mod framework;
mod informer;
pub mod metrics;
pub mod parallel;
pub mod plugins;
pub mod pod_info;
pub mod queue;
pub mod resources;
mod schedule_one;
pub mod scheduler;
mod server;
pub mod testing;

pub use config::SchedulerConfiguration;
pub use scheduler::{Options, Scheduler, SchedulerHandle};

/// Why the scheduler stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The health/metrics server failed.
    #[error("serving health and metrics: {0}")]
    Serve(#[source] std::io::Error),
    /// This instance stopped leading (another one took the lease).
    #[error("lost leadership of lease {0}")]
    LostLeadership(String),
}

/// Runs a scheduler until `shutdown` completes.
pub async fn run(
    opts: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    Scheduler::new(opts)?.run(shutdown).await
}
