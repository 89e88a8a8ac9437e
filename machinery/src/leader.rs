//! Leader election through a `coordination.k8s.io/v1` Lease, as Kubernetes components do it:
//! a candidate takes the Lease when it is free or expired, renews it while it leads, and steps
//! down when it cannot renew before the lease runs out. Every write is a compare-and-swap on the
//! Lease's resourceVersion, so two candidates never both lead.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use tokio::sync::watch;

/// Settings of an election.
#[derive(Clone, Debug)]
pub struct LeaderConfig {
    /// Namespace of the Lease (usually `kube-system`).
    pub namespace: String,
    /// Name of the Lease (e.g. `kube-scheduler`).
    pub name: String,
    /// This candidate's identity (hostname plus a unique suffix).
    pub identity: String,
    /// How long a lease lasts without renewal.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it steps down.
    pub renew_deadline: Duration,
    /// How often candidates retry and the leader renews.
    pub retry_period: Duration,
}

impl LeaderConfig {
    /// Kubernetes' defaults (15 s lease, 10 s renew deadline, 2 s retry).
    pub fn new(namespace: &str, name: &str, identity: &str) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// Why an attempt to take or renew the Lease did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// Someone else holds a valid lease.
    #[error("lease {0} is held by {1}")]
    Held(String, String),
    /// The API call failed (including a lost compare-and-swap).
    #[error("lease {name}: {source}")]
    Api {
        /// The lease.
        name: String,
        /// The error.
        #[source]
        source: Box<kube::Error>,
    },
}

fn now() -> MicroTime {
    MicroTime(jiff::Timestamp::now())
}

/// Whether a lease spec is held by someone other than `me` and not yet expired.
fn held_by_other(spec: &LeaseSpec, me: &str, at: jiff::Timestamp) -> Option<String> {
    let holder = spec.holder_identity.clone().filter(|h| !h.is_empty())?;
    if holder == me {
        return None;
    }
    let renewed = spec.renew_time.as_ref().or(spec.acquire_time.as_ref())?.0;
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(15));
    let expires = renewed.as_second() + duration;
    (at.as_second() < expires).then_some(holder)
}

/// One attempt to take or renew the Lease; `Ok(())` means we lead until at least
/// `lease_duration` from now.
pub async fn try_acquire_or_renew(api: &Api<Lease>, cfg: &LeaderConfig) -> Result<(), LeaderError> {
    let wrap = |e: kube::Error| LeaderError::Api {
        name: cfg.name.clone(),
        source: Box::new(e),
    };
    let duration = i32::try_from(cfg.lease_duration.as_secs()).unwrap_or(15);
    match api.get_opt(&cfg.name).await.map_err(wrap)? {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(cfg.name.clone()),
                    namespace: Some(cfg.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(cfg.identity.clone()),
                    lease_duration_seconds: Some(duration),
                    acquire_time: Some(now()),
                    renew_time: Some(now()),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            api.create(&PostParams::default(), &lease)
                .await
                .map_err(wrap)?;
            Ok(())
        }
        Some(mut lease) => {
            let spec = lease.spec.get_or_insert_with(Default::default);
            if let Some(holder) = held_by_other(spec, &cfg.identity, jiff::Timestamp::now()) {
                return Err(LeaderError::Held(cfg.name.clone(), holder));
            }
            if spec.holder_identity.as_deref() != Some(cfg.identity.as_str()) {
                spec.holder_identity = Some(cfg.identity.clone());
                spec.acquire_time = Some(now());
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            }
            spec.renew_time = Some(now());
            spec.lease_duration_seconds = Some(duration);
            // replace carries the resourceVersion: a concurrent writer makes this a 409.
            api.replace(&cfg.name, &PostParams::default(), &lease)
                .await
                .map_err(wrap)?;
            Ok(())
        }
    }
}

/// Runs the election until `shutdown` completes. The returned receiver says whether this
/// candidate currently leads; components do their work only while it is `true`.
pub fn run(
    api: Api<Lease>,
    cfg: LeaderConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> (watch::Receiver<bool>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(async move {
        tokio::pin!(shutdown);
        let mut last_renew: Option<tokio::time::Instant> = None;
        loop {
            match try_acquire_or_renew(&api, &cfg).await {
                Ok(()) => {
                    if !*tx.borrow() {
                        tracing::info!(lease = %cfg.name, identity = %cfg.identity, "became leader");
                    }
                    last_renew = Some(tokio::time::Instant::now());
                    tx.send_replace(true);
                }
                Err(e) => {
                    let leading = *tx.borrow();
                    let overdue = last_renew.is_none_or(|t| t.elapsed() >= cfg.renew_deadline);
                    if leading && overdue {
                        tracing::warn!(lease = %cfg.name, error = %e, "lost leadership");
                        tx.send_replace(false);
                    } else if !leading {
                        tracing::debug!(lease = %cfg.name, error = %e, "not leader");
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(cfg.retry_period) => {}
                _ = &mut shutdown => break,
            }
        }
        // Release the lease on a clean exit so another candidate takes over at once.
        if *tx.borrow()
            && let Ok(Some(mut lease)) = api.get_opt(&cfg.name).await
            && let Some(spec) = lease.spec.as_mut()
            && spec.holder_identity.as_deref() == Some(cfg.identity.as_str())
        {
            spec.holder_identity = None;
            spec.renew_time = None;
            spec.acquire_time = None;
            let _ = api.replace(&cfg.name, &PostParams::default(), &lease).await;
        }
        tx.send_replace(false);
    });
    (rx, task)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: &str, renewed_secs_ago: i64, duration: i32) -> LeaseSpec {
        let at =
            jiff::Timestamp::from_second(jiff::Timestamp::now().as_second() - renewed_secs_ago)
                .unwrap();
        LeaseSpec {
            holder_identity: Some(holder.into()),
            renew_time: Some(MicroTime(at)),
            lease_duration_seconds: Some(duration),
            ..Default::default()
        }
    }

    #[test]
    fn a_fresh_lease_of_another_is_held() {
        let now = jiff::Timestamp::now();
        assert_eq!(held_by_other(&spec("a", 1, 15), "b", now), Some("a".into()));
        assert_eq!(held_by_other(&spec("a", 20, 15), "b", now), None, "expired");
        assert_eq!(held_by_other(&spec("b", 1, 15), "b", now), None, "ours");
        let free = LeaseSpec::default();
        assert_eq!(held_by_other(&free, "b", now), None);
    }
}
