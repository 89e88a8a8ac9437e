//! The Job controller: runs a Job's pods to completion — `spec.parallelism` at a time until
//! `spec.completions` of them succeeded (or, without completions, until one succeeded) — and
//! fails the Job when more than `spec.backoffLimit` pods failed or it ran longer than
//! `spec.activeDeadlineSeconds`; `spec.suspend` deletes the active pods until it is cleared.
//!
//! As Kubernetes' controller does, every pod it creates (or adopts) carries the finalizer
//! `batch.kubernetes.io/job-tracking`, so a finished pod cannot disappear before it is counted:
//! a sync first records the UIDs of newly finished pods in `status.uncountedTerminatedPods`,
//! then removes their finalizers, then moves them into `status.succeeded`/`failed`
//! ([`sync::track`]). Status writes carry the cached resourceVersion, so a sync on a stale
//! Job fails with a conflict instead of counting a pod twice, and the UIDs whose finalizer
//! removal is in flight ([`FinalizerExpectations`]) are not counted again while the pod cache
//! catches up. The terminal condition follows 1.33: `FailureTarget` (or `SuccessCriteriaMet`)
//! first, `Failed` (or `Complete`) once no pod is left running or terminating.
//!
//! Both completion modes: NonIndexed, and Indexed ([`indexed`]: one pod per completion index,
//! `status.completedIndexes`). Left out: `podFailurePolicy`, `successPolicy`,
//! `backoffLimitPerIndex`, `maxFailedIndexes`, `managedBy` (such Jobs run as if the field were
//! unset).

pub mod indexed;
pub mod status;
pub mod sync;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use futures::{StreamExt, stream};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client};
use rkube_machinery::selector::LabelSelector;

use crate::Shared;
use crate::clock::Clock;
use crate::controller_ref::ClaimError;
use crate::events::Recorder;
use crate::expectations::Expectations;
use crate::informer::{Change, ref_in};
use crate::podutil::{controller_of, key};
use crate::runner::{Wiring, is_not_found};
use status::{Backoff, TRACKING_FINALIZER, has_tracking_finalizer, is_finished};

/// The controller's name (`--controllers`, events' source).
pub const NAME: &str = "job-controller";
/// The ServiceAccount (in kube-system) it acts as with `--use-service-account-credentials`.
pub const ACCOUNT: &str = "job-controller";
/// Pods created or deleted per sync at most (`MaxPodCreateDeletePerSync`).
pub const MAX_PODS_PER_SYNC: usize = 500;

/// The UIDs of pods whose tracking finalizer the controller is removing, per Job: not counted
/// again while the pod cache still shows the finalizer (`finalizerExpectations`).
#[derive(Debug, Default)]
pub struct FinalizerExpectations {
    uids: Mutex<HashMap<String, HashSet<String>>>,
}

impl FinalizerExpectations {
    /// The removals in flight for a Job.
    pub fn expected(&self, job: &str) -> HashSet<String> {
        self.uids
            .lock()
            .expect("finalizer expectations")
            .get(job)
            .cloned()
            .unwrap_or_default()
    }

    /// Removals about to be issued.
    pub fn expect(&self, job: &str, uids: impl IntoIterator<Item = String>) {
        self.uids
            .lock()
            .expect("finalizer expectations")
            .entry(job.to_string())
            .or_default()
            .extend(uids);
    }

    /// The pod was seen without the finalizer (or gone), or the removal failed.
    pub fn observed(&self, job: &str, uid: &str) {
        let mut m = self.uids.lock().expect("finalizer expectations");
        if let Some(set) = m.get_mut(job) {
            set.remove(uid);
            if set.is_empty() {
                m.remove(job);
            }
        }
    }

    /// Drops a deleted Job's.
    pub fn forget(&self, job: &str) {
        self.uids
            .lock()
            .expect("finalizer expectations")
            .remove(job);
    }
}

/// What a reconcile needs.
pub struct Ctx {
    /// The API.
    pub client: Client,
    /// The shared pod cache.
    pub pods: Store<Pod>,
    /// The shared Job cache.
    pub jobs: Store<Job>,
    /// Pod creations and deletions in flight.
    pub expectations: Arc<Expectations>,
    /// Finalizer removals in flight.
    pub finalizers: Arc<FinalizerExpectations>,
    /// The pod-failure back-off of each Job.
    pub backoff: Mutex<HashMap<String, Backoff>>,
    /// Events.
    pub recorder: Recorder,
    /// The clock (start and completion times, deadlines).
    pub clock: Clock,
}

/// Why a Job could not be reconciled.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Claiming pods failed.
    #[error("job {key}: {source}")]
    Claim {
        /// The Job.
        key: String,
        /// What failed.
        #[source]
        source: ClaimError,
    },
    /// Creating pods failed.
    #[error("job {key}: creating pods: {source}")]
    Create {
        /// The Job.
        key: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Deleting pods failed.
    #[error("job {key}: deleting pods: {source}")]
    Delete {
        /// The Job.
        key: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Removing tracking finalizers failed.
    #[error("job {key}: removing tracking finalizers: {source}")]
    Finalizer {
        /// The Job.
        key: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Writing the status failed.
    #[error("job {key}: updating status: {source}")]
    Status {
        /// The Job.
        key: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

/// One sync of a Job (`syncJob`); see [`sync`].
pub async fn reconcile(job: Arc<Job>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if is_finished(&job) {
        return Ok(Action::await_change());
    }
    let mode = job
        .spec
        .as_ref()
        .and_then(|s| s.completion_mode.as_deref())
        .unwrap_or("NonIndexed");
    if mode != "NonIndexed" && mode != "Indexed" {
        ctx.recorder.warning(
            &*job,
            "UnknownCompletionMode",
            "Skipped Job sync because completion mode is unknown".into(),
        );
        return Ok(Action::await_change());
    }
    sync::sync_job(&job, &ctx).await
}

/// Re-reads the Job (uncached) before the first adoption (`RecheckDeletionTimestamp`).
async fn can_adopt(api: &Api<Job>, job: &Job) -> Result<(), String> {
    let name = job.metadata.name.clone().unwrap_or_default();
    let fresh = api.get(&name).await.map_err(|e| e.to_string())?;
    if fresh.metadata.uid != job.metadata.uid {
        return Err(format!(
            "original Job {} is gone: got uid {}, wanted {}",
            key(&job.metadata),
            fresh.metadata.uid.unwrap_or_default(),
            job.metadata.uid.clone().unwrap_or_default()
        ));
    }
    if fresh.metadata.deletion_timestamp.is_some() {
        return Err(format!("{} has just been deleted", key(&job.metadata)));
    }
    Ok(())
}

/// Whether an owner reference names a batch/v1 Job.
fn is_job_ref(r: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference) -> bool {
    r.kind == "Job" && r.api_version == "batch/v1"
}

/// The Jobs a pod concerns: its controller, or for an orphan every Job in its namespace whose
/// selector matches it.
pub fn jobs_for_pod(jobs: &Store<Job>, pod: &Pod) -> Vec<ObjectRef<Job>> {
    let ns = pod.metadata.namespace.as_deref();
    if let Some(r) = controller_of(&pod.metadata) {
        if is_job_ref(r) {
            return vec![ref_in(ns, &r.name)];
        }
        return vec![];
    }
    jobs.state()
        .into_iter()
        .filter(|j| j.metadata.namespace.as_deref() == ns)
        .filter(|j| {
            j.spec
                .as_ref()
                .and_then(|s| s.selector.as_ref())
                .and_then(|s| LabelSelector::from_k8s(s).ok())
                .is_some_and(|s| !s.is_everything() && s.matches_opt(pod.metadata.labels.as_ref()))
        })
        .map(|j| ObjectRef::from_obj(&*j))
        .collect()
}

/// The Jobs to reconcile for a pod change (old and new owners when labels or the controller
/// reference changed).
pub fn map_pod_change(jobs: &Store<Job>, change: &Change<Pod>) -> Vec<ObjectRef<Job>> {
    let mut refs = jobs_for_pod(jobs, change.object());
    if let Some(old) = change.old() {
        let new = change.object();
        if old.metadata.labels != new.metadata.labels
            || controller_of(&old.metadata) != controller_of(&new.metadata)
        {
            for r in jobs_for_pod(jobs, old) {
                if !refs.contains(&r) {
                    refs.push(r);
                }
            }
        }
    }
    refs
}

/// Lowers the expectations of the Job controlling the pod: creations and deletions seen, and
/// tracking finalizers seen removed.
pub fn observe(
    expectations: &Expectations,
    finalizers: &FinalizerExpectations,
    change: &Change<Pod>,
) {
    let pod = change.object();
    let Some(owner) = controller_of(&pod.metadata).filter(|r| is_job_ref(r)) else {
        return;
    };
    let job_key = format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        owner.name
    );
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    if matches!(change, Change::Deleted(_)) || !has_tracking_finalizer(pod) {
        finalizers.observed(&job_key, &uid);
    }
    match change {
        Change::Added(p) if p.metadata.deletion_timestamp.is_some() => {
            expectations.deletion_observed(&job_key, &uid)
        }
        Change::Added(_) => expectations.creation_observed(&job_key),
        Change::Updated { new, .. } if new.metadata.deletion_timestamp.is_some() => {
            expectations.deletion_observed(&job_key, &uid)
        }
        Change::Updated { .. } => {}
        Change::Deleted(_) => expectations.deletion_observed(&job_key, &uid),
    }
}

/// Whether a pod's tracking finalizer is still some Job's business.
#[derive(Debug, PartialEq, Eq)]
pub enum Orphaned {
    /// Its Job runs (or it is not a Job's pod, or has no finalizer).
    No,
    /// No Job will remove it: the pod has no controller, or its Job is finished.
    Yes,
    /// Its Job is not in the cache: gone, or not seen yet — the API decides.
    Unknown {
        /// The Job's name.
        name: String,
        /// The UID the pod's controller reference names.
        uid: String,
    },
}

/// Whether a pod's tracking finalizer is no Job's business any more (`syncOrphanPod`).
pub fn finalizer_is_orphaned(jobs: &Store<Job>, pod: &Pod) -> Orphaned {
    if !has_tracking_finalizer(pod) {
        return Orphaned::No;
    }
    match controller_of(&pod.metadata) {
        None => Orphaned::Yes,
        Some(r) if !is_job_ref(r) => Orphaned::No,
        Some(r) => {
            let job = jobs.get(&ref_in::<Job>(pod.metadata.namespace.as_deref(), &r.name));
            match job {
                Some(j) if j.metadata.uid.as_deref() == Some(r.uid.as_str()) => {
                    if is_finished(&j) {
                        Orphaned::Yes
                    } else {
                        Orphaned::No
                    }
                }
                _ => Orphaned::Unknown {
                    name: r.name.clone(),
                    uid: r.uid.clone(),
                },
            }
        }
    }
}

/// Removes the tracking finalizer from a pod: a strategic merge patch deleting it from the
/// list (`removeTrackingFinalizerPatch`), which needs no resourceVersion, so it also works on
/// a pod just deleted. A pod already gone is fine.
pub async fn remove_tracking_finalizer(api: &Api<Pod>, pod: &Pod) -> Result<(), kube::Error> {
    let patch = serde_json::json!({
        "metadata": {"$deleteFromPrimitiveList/finalizers": [TRACKING_FINALIZER]}
    });
    let name = pod.metadata.name.clone().unwrap_or_default();
    match api
        .patch(&name, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes the tracking finalizers no Job will remove: pods released or orphaned, and pods of
/// Jobs that are gone (deleted with their pods) or finished. `candidates` are pods that
/// changed, and the pods of a Job just deleted (`true`: their Job is known to be gone). A Job
/// missing from the cache is looked up in the API (the cache may not have caught up yet).
async fn clean_orphan_finalizers(
    client: Client,
    jobs: Store<Job>,
    candidates: impl futures::Stream<Item = (Arc<Pod>, bool)> + Send,
) {
    let mut candidates = std::pin::pin!(candidates);
    while let Some((pod, job_gone)) = candidates.next().await {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let orphaned = match finalizer_is_orphaned(&jobs, &pod) {
            Orphaned::No => job_gone && has_tracking_finalizer(&pod),
            Orphaned::Yes => true,
            Orphaned::Unknown { name, uid } => {
                job_gone
                    || {
                        let api: Api<Job> = Api::namespaced(client.clone(), &namespace);
                        match api.get_opt(&name).await {
                            Ok(Some(j)) => {
                                j.metadata.uid.as_deref() != Some(uid.as_str()) || is_finished(&j)
                            }
                            Ok(None) => true,
                            Err(e) => {
                                tracing::warn!(pod = %key(&pod.metadata), error = %e, "reading the Job of a pod");
                                false
                            }
                        }
                    }
            }
        };
        if !orphaned {
            continue;
        }
        let api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
        if let Err(e) = remove_tracking_finalizer(&api, &pod).await {
            tracing::warn!(pod = %key(&pod.metadata), error = %e, "removing an orphaned tracking finalizer");
        }
    }
}

/// Builds the controller (subscribing to the informers now) and returns the future that runs
/// it.
pub fn start(shared: &Shared) -> BoxFuture<'static, ()> {
    let pods = shared.informers.all::<Pod>();
    let jobs = shared.informers.all::<Job>();
    let wiring = Wiring::new(NAME, &shared.metrics, &jobs);
    let client = shared.client_for(ACCOUNT);
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        pods: pods.store(),
        jobs: jobs.store(),
        expectations: Arc::new(Expectations::default()),
        finalizers: Arc::new(FinalizerExpectations::default()),
        backoff: Mutex::default(),
        recorder: shared.recorder.with_component(NAME),
        clock: Clock::new(),
    });
    let expectations = ctx.expectations.clone();
    let finalizers = ctx.finalizers.clone();
    let job_store = jobs.store();
    let pod_triggers = pods
        .subscribe()
        .inspect(move |c| observe(&expectations, &finalizers, c))
        .flat_map(move |c| stream::iter(map_pod_change(&job_store, &c)));
    let forget = {
        let ctx = ctx.clone();
        jobs.subscribe().filter_map(move |c| {
            if let Change::Deleted(j) = &c {
                let k = key(&j.metadata);
                ctx.expectations.forget(&k);
                ctx.finalizers.forget(&k);
                ctx.backoff.lock().expect("backoff").remove(&k);
            }
            std::future::ready(None)
        })
    };
    // Pods that changed, and the pods of every Job deleted (`deleteJob` in Kubernetes).
    let changed = pods.subscribe().filter_map(|c| {
        std::future::ready(match c {
            Change::Added(p) | Change::Updated { new: p, .. } => Some((p, false)),
            Change::Deleted(_) => None,
        })
    });
    let pod_store = pods.store();
    let of_deleted_jobs = jobs.subscribe().flat_map(move |c| {
        let pods = match &c {
            Change::Deleted(j) => {
                let uid = j.metadata.uid.clone().unwrap_or_default();
                pod_store
                    .state()
                    .into_iter()
                    .filter(|p| p.metadata.namespace == j.metadata.namespace)
                    .filter(|p| controller_of(&p.metadata).is_some_and(|r| r.uid == uid))
                    .map(|p| (p, true))
                    .collect()
            }
            _ => vec![],
        };
        stream::iter(pods)
    });
    let orphans = tokio::spawn(clean_orphan_finalizers(
        client,
        jobs.store(),
        stream::select(changed, of_deleted_jobs),
    ));
    let controller = wiring
        .controller(&jobs)
        .reconcile_on(wiring.track(pod_triggers))
        .reconcile_on(forget);
    let concurrency = shared.config.concurrent_job_syncs;
    let run = wiring.run(controller, concurrency, ctx, reconcile, shared.shutdown());
    Box::pin(async move {
        run.await;
        orphans.abort();
    })
}
