//! The ReplicaSet controller: keeps `spec.replicas` pods running for every ReplicaSet.
//!
//! Each reconcile reads the ReplicaSet's namespace from the shared pod cache, claims the active
//! pods (adopting matching orphans, releasing pods whose labels no longer match — see
//! [`crate::controller_ref`]), and, when its [`Expectations`] are satisfied, creates or deletes
//! pods ([`sync`], ranked by [`rank`]). It then writes the status ([`status`]). Pod changes wake
//! the ReplicaSet that controls the pod (or, for orphans, every ReplicaSet whose selector
//! matches) and lower its expectations before the reconcile runs.

pub mod rank;
pub mod status;
pub mod sync;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{StreamExt, stream};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client};
use rkube_machinery::selector::LabelSelector;

use crate::Shared;
use crate::clock::Clock;
use crate::controller_ref::{ClaimError, claim};
use crate::events::Recorder;
use crate::expectations::Expectations;
use crate::informer::{Change, ref_in};
use crate::podutil::{controller_of, controller_ref, is_active, key};
use crate::runner::Wiring;

/// The controller's name (`--controllers`, events' source).
pub const NAME: &str = "replicaset-controller";
/// The ServiceAccount (in kube-system) it acts as with `--use-service-account-credentials`.
pub const ACCOUNT: &str = "replicaset-controller";

/// What a reconcile needs.
pub struct Ctx {
    /// The API.
    pub client: Client,
    /// The shared pod cache.
    pub pods: Store<Pod>,
    /// The shared ReplicaSet cache.
    pub replicasets: Store<ReplicaSet>,
    /// Creations and deletions in flight.
    pub expectations: Arc<Expectations>,
    /// Events.
    pub recorder: Recorder,
    /// The clock (availability after minReadySeconds).
    pub clock: Clock,
    /// Pods created or deleted per sync at most.
    pub burst_replicas: usize,
}

/// Why a ReplicaSet could not be reconciled.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Claiming pods failed.
    #[error("replicaset {key}: {source}")]
    Claim {
        /// The ReplicaSet.
        key: String,
        /// What failed.
        #[source]
        source: ClaimError,
    },
    /// Creating pods failed.
    #[error("replicaset {key}: creating pods: {source}")]
    Create {
        /// The ReplicaSet.
        key: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Deleting pods failed.
    #[error("replicaset {key}: deleting pods: {source}")]
    Delete {
        /// The ReplicaSet.
        key: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// The template has no labels.
    #[error("replicaset {key}: unable to create pods, no labels")]
    NoLabels {
        /// The ReplicaSet.
        key: String,
    },
    /// Writing the status failed.
    #[error("replicaset {key}: updating status: {source}")]
    Status {
        /// The ReplicaSet.
        key: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

impl Error {
    /// The message for the ReplicaFailure condition (the API's own message).
    fn condition_message(&self) -> String {
        match self {
            Error::Create { source, .. } | Error::Delete { source, .. } => {
                sync::api_message(source)
            }
            Error::NoLabels { .. } => "unable to create pods, no labels".into(),
            other => other.to_string(),
        }
    }
}

/// One sync of a ReplicaSet (`syncReplicaSet`).
pub async fn reconcile(rs: Arc<ReplicaSet>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let rs_key = key(&rs.metadata);
    let needs_sync = ctx.expectations.satisfied(&rs_key);
    let Some(spec) = rs.spec.as_ref() else {
        return Ok(Action::await_change());
    };
    let selector = match LabelSelector::from_k8s(&spec.selector) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(replicaset = %rs_key, error = %e, "invalid selector");
            return Ok(Action::await_change());
        }
    };
    let namespace = rs.metadata.namespace.clone().unwrap_or_default();
    let active: Vec<Arc<Pod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(namespace.as_str()) && is_active(p))
        .collect();
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let rs_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &namespace);
    let deleting = rs.metadata.deletion_timestamp.is_some();
    let owner = controller_ref(&*rs);
    let claimed = claim(
        &pods_api,
        &owner,
        Some(&namespace),
        deleting,
        &selector,
        active,
        || can_adopt(&rs_api, &rs),
    )
    .await
    .map_err(|source| Error::Claim {
        key: rs_key.clone(),
        source,
    })?;

    let manage_error = if needs_sync && !deleting {
        sync::manage_replicas(&ctx, &rs, &claimed).await.err()
    } else {
        None
    };
    let now = ctx.clock.now();
    let new_status = status::calculate(
        &rs,
        &claimed,
        manage_error
            .as_ref()
            .map(Error::condition_message)
            .as_deref(),
        now,
    );
    let updated = status::update(&rs_api, &rs, new_status)
        .await
        .map_err(|source| Error::Status {
            key: rs_key.clone(),
            source,
        })?;
    if let Some(e) = manage_error {
        return Err(e);
    }
    // Wake up when ready pods become available after minReadySeconds.
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let st = updated.status.unwrap_or_default();
    if min_ready > 0 && st.ready_replicas.unwrap_or(0) > st.available_replicas.unwrap_or(0) {
        return Ok(Action::requeue(Duration::from_secs(min_ready as u64 + 1)));
    }
    Ok(Action::await_change())
}

/// Re-reads the ReplicaSet (uncached) before the first adoption (`RecheckDeletionTimestamp`).
async fn can_adopt(api: &Api<ReplicaSet>, rs: &ReplicaSet) -> Result<(), String> {
    let name = rs.metadata.name.clone().unwrap_or_default();
    let fresh = api.get(&name).await.map_err(|e| e.to_string())?;
    if fresh.metadata.uid != rs.metadata.uid {
        return Err(format!(
            "original ReplicaSet {} is gone: got uid {}, wanted {}",
            key(&rs.metadata),
            fresh.metadata.uid.unwrap_or_default(),
            rs.metadata.uid.clone().unwrap_or_default()
        ));
    }
    if fresh.metadata.deletion_timestamp.is_some() {
        return Err(format!("{} has just been deleted", key(&rs.metadata)));
    }
    Ok(())
}

/// The ReplicaSets a pod concerns: its controller, or for an orphan every ReplicaSet in its
/// namespace whose selector matches it.
pub fn replicasets_for_pod(
    replicasets: &Store<ReplicaSet>,
    pod: &Pod,
) -> Vec<ObjectRef<ReplicaSet>> {
    let ns = pod.metadata.namespace.as_deref();
    if let Some(r) = controller_of(&pod.metadata) {
        if r.kind == "ReplicaSet" && r.api_version.starts_with("apps/") {
            return vec![ref_in(ns, &r.name)];
        }
        return vec![];
    }
    replicasets
        .state()
        .into_iter()
        .filter(|rs| rs.metadata.namespace.as_deref() == ns)
        .filter(|rs| {
            rs.spec
                .as_ref()
                .and_then(|s| LabelSelector::from_k8s(&s.selector).ok())
                .is_some_and(|s| !s.is_everything() && s.matches_opt(pod.metadata.labels.as_ref()))
        })
        .map(|rs| ObjectRef::from_obj(&*rs))
        .collect()
}

/// The ReplicaSets to reconcile for a pod change (old and new owners when labels or the
/// controller reference changed).
pub fn map_pod_change(
    replicasets: &Store<ReplicaSet>,
    change: &Change<Pod>,
) -> Vec<ObjectRef<ReplicaSet>> {
    let mut refs = replicasets_for_pod(replicasets, change.object());
    if let Some(old) = change.old() {
        let new = change.object();
        if old.metadata.labels != new.metadata.labels
            || controller_of(&old.metadata) != controller_of(&new.metadata)
        {
            for r in replicasets_for_pod(replicasets, old) {
                if !refs.contains(&r) {
                    refs.push(r);
                }
            }
        }
    }
    refs
}

/// Lowers the expectations of the ReplicaSet controlling the pod (the informer handlers of
/// Kubernetes' ReplicaSet controller).
pub fn observe(expectations: &Expectations, change: &Change<Pod>) {
    let pod = change.object();
    let Some(owner) = controller_of(&pod.metadata).filter(|r| r.kind == "ReplicaSet") else {
        return;
    };
    let rs_key = format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        owner.name
    );
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    match change {
        Change::Added(p) if p.metadata.deletion_timestamp.is_some() => {
            expectations.deletion_observed(&rs_key, &uid)
        }
        Change::Added(_) => expectations.creation_observed(&rs_key),
        Change::Updated { new, .. } if new.metadata.deletion_timestamp.is_some() => {
            expectations.deletion_observed(&rs_key, &uid)
        }
        Change::Updated { .. } => {}
        Change::Deleted(_) => expectations.deletion_observed(&rs_key, &uid),
    }
}

/// Builds the controller (subscribing to the informers now) and returns the future that runs
/// it.
pub fn start(shared: &Shared) -> BoxFuture<'static, ()> {
    let pods = shared.informers.all::<Pod>();
    let replicasets = shared.informers.all::<ReplicaSet>();
    let wiring = Wiring::new(NAME, &shared.metrics, &replicasets);
    let ctx = Arc::new(Ctx {
        client: shared.client_for(ACCOUNT),
        pods: pods.store(),
        replicasets: replicasets.store(),
        expectations: Arc::new(Expectations::default()),
        recorder: shared.recorder.with_component(NAME),
        clock: Clock::new(),
        burst_replicas: shared.config.burst_replicas,
    });
    let expectations = ctx.expectations.clone();
    let rs_store = replicasets.store();
    let pod_triggers = pods
        .subscribe()
        .inspect(move |c| observe(&expectations, c))
        .flat_map(move |c| stream::iter(map_pod_change(&rs_store, &c)));
    let expectations = ctx.expectations.clone();
    let forget = replicasets.subscribe().filter_map(move |c| {
        if let Change::Deleted(rs) = &c {
            expectations.forget(&key(&rs.metadata));
        }
        std::future::ready(None)
    });
    let controller = wiring
        .controller(&replicasets)
        .reconcile_on(wiring.track(pod_triggers))
        .reconcile_on(forget);
    let concurrency = shared.config.concurrent_replicaset_syncs;
    Box::pin(wiring.run(controller, concurrency, ctx, reconcile, shared.shutdown()))
}
