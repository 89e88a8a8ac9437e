//! One sync of a Job (Kubernetes' `syncJob`, `manageJob`, `trackJobStatusAndRemoveFinalizers`):
//! claim the pods, count the newly finished ones, decide whether the Job has failed (back-off
//! limit, deadline) or succeeded, create or delete pods towards `parallelism` (at most the
//! remaining completions, none while suspended or backing off after failures), and write the
//! status, counting finished pods through `uncountedTerminatedPods` and their finalizers.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Api;
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::runtime::controller::Action;
use rkube_machinery::selector::LabelSelector;

use super::status::{
    self, BACKOFF_LIMIT_EXCEEDED, COMPLETE, COMPLETIONS_REACHED, DEADLINE_EXCEEDED, FAILED,
    FAILURE_TARGET, SUCCESS_CRITERIA_MET, SUSPENDED, TRACKING_FINALIZER, Uncounted,
    has_tracking_finalizer, is_pod_failed, is_suspended, is_terminating, nonzero,
};
use super::{Ctx, Error, MAX_PODS_PER_SYNC, can_adopt, indexed, remove_tracking_finalizer};
use crate::controller_ref::claim_with_finalizer;
use crate::podutil::{controller_ref, is_active, is_ready, key, phase};
use crate::replicaset::rank;
use crate::replicaset::sync::{api_message, create_pod, pod_from_template, slow_start_batch};
use crate::runner::is_not_found;

/// What one sync works with (`syncJobCtx`).
struct JobCtx {
    /// The Job as it will be written.
    job: Job,
    /// Every pod it controls, terminal ones included.
    pods: Vec<Arc<Pod>>,
    /// Those neither finished nor being deleted.
    active: Vec<Arc<Pod>>,
    /// Ready among the active.
    ready: i32,
    /// Being deleted, not finished.
    terminating: i32,
    /// Succeeded pods counted or about to be (Indexed: succeeded indexes).
    succeeded: i32,
    /// Indexed: the completion count, the indexes `status.completedIndexes` lists, and those
    /// with a succeeded pod besides.
    indexes: Option<Indexes>,
    /// The condition the Job is heading for.
    finished: Option<JobCondition>,
    /// Finalizer removals in flight.
    expected_rm: HashSet<String>,
    /// The pod-failure back-off after this sync.
    backoff: status::Backoff,
}

/// The succeeded indexes of an Indexed Job.
struct Indexes {
    completions: i32,
    recorded: BTreeSet<i32>,
    succeeded: BTreeSet<i32>,
}

/// Syncs a Job that is not finished.
pub async fn sync_job(shared_job: &Job, ctx: &Ctx) -> Result<Action, Error> {
    let job_key = key(&shared_job.metadata);
    let namespace = shared_job.metadata.namespace.clone().unwrap_or_default();
    let mut job = shared_job.clone();
    let spec = job.spec.clone().unwrap_or_default();
    let status = job.status.get_or_insert_with(JobStatus::default);
    if status.uncounted_terminated_pods.is_none() {
        Uncounted::default().store(status);
    }
    // Expectations before pods: a pod that appears after the check defers the sync.
    let satisfied = ctx.expectations.satisfied(&job_key);
    let selector = match spec.selector.as_ref().map(LabelSelector::from_k8s) {
        Some(Ok(s)) => s,
        other => {
            tracing::warn!(job = %job_key, error = ?other.and_then(Result::err), "invalid or missing selector");
            return Ok(Action::await_change());
        }
    };
    let candidates: Vec<Arc<Pod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(namespace.as_str()))
        .collect();
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), &namespace);
    let pods = claim_with_finalizer(
        &pods_api,
        &controller_ref(shared_job),
        Some(&namespace),
        job.metadata.deletion_timestamp.is_some(),
        &selector,
        candidates,
        || can_adopt(&jobs_api, shared_job),
        Some(TRACKING_FINALIZER),
    )
    .await
    .map_err(|source| Error::Claim {
        key: job_key.clone(),
        source,
    })?;
    let active: Vec<Arc<Pod>> = pods.iter().filter(|p| is_active(p)).cloned().collect();
    let expected_rm = ctx.finalizers.expected(&job_key);
    let uncounted = Uncounted::of(job.status.as_ref().expect("status"));
    let fresh = |p: &&Arc<Pod>| {
        let uid = p.metadata.uid.as_deref().unwrap_or_default();
        has_tracking_finalizer(p) && !uncounted.has(uid) && !expected_rm.contains(uid)
    };
    let new_succeeded = pods
        .iter()
        .filter(fresh)
        .filter(|p| phase(p) == "Succeeded")
        .count();
    let new_failed = pods
        .iter()
        .filter(fresh)
        .filter(|p| is_pod_failed(p, &job))
        .count();
    let st = job.status.as_ref().expect("status");
    let mut succeeded =
        st.succeeded.unwrap_or(0) + new_succeeded as i32 + uncounted.succeeded.len() as i32;
    let indexes = (spec.completion_mode.as_deref() == Some("Indexed")).then(|| {
        let completions = spec.completions.unwrap_or(0);
        let recorded = indexed::parse(
            st.completed_indexes.as_deref().unwrap_or_default(),
            completions,
        );
        let mut all = recorded.clone();
        all.extend(
            pods.iter()
                .filter(|p| phase(p) == "Succeeded")
                .filter_map(|p| indexed::index_of(p, completions)),
        );
        succeeded = all.len() as i32;
        Indexes {
            completions,
            recorded,
            succeeded: all,
        }
    });
    let failed = st.failed.unwrap_or(0) + new_failed as i32 + uncounted.failed.len() as i32;
    let now = ctx.clock.now();
    let backoff = ctx
        .backoff
        .lock()
        .expect("backoff")
        .get(&job_key)
        .copied()
        .unwrap_or_default()
        .next(new_succeeded, new_failed, tokio::time::Instant::now());
    let mut jc = JobCtx {
        ready: active.iter().filter(|p| is_ready(p)).count() as i32,
        terminating: pods.iter().filter(|p| is_terminating(p)).count() as i32,
        active,
        pods,
        succeeded,
        indexes,
        finished: None,
        expected_rm,
        backoff,
        job,
    };

    // First start: the start time, unless created suspended.
    let mut needs_update = false;
    let suspended = is_suspended(&jc.job);
    let st = jc.job.status.as_mut().expect("status");
    if st.start_time.is_none() && !suspended {
        st.start_time = Some(Time(now));
        needs_update = true;
    }

    let mut requeue: Option<Duration> = None;
    if status::has_true(&jc.job, SUCCESS_CRITERIA_MET) {
        jc.finished = status::condition(&jc.job, SUCCESS_CRITERIA_MET).cloned();
    } else if let Some(target) =
        status::condition(&jc.job, FAILURE_TARGET).filter(|c| c.status == "True")
    {
        jc.finished = Some(status::new_condition(
            FAILED,
            target.reason.as_deref().unwrap_or_default(),
            target.message.as_deref().unwrap_or_default(),
            now,
        ));
    } else if failed > spec.backoff_limit.unwrap_or(6)
        || status::past_backoff_limit_on_failure(&jc.job, &jc.pods)
    {
        jc.finished = Some(status::new_condition(
            FAILURE_TARGET,
            BACKOFF_LIMIT_EXCEEDED,
            "Job has reached the specified backoff limit",
            now,
        ));
    } else if let (Some(deadline), Some(start), false) = (
        spec.active_deadline_seconds,
        jc.job
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0),
        is_suspended(&jc.job),
    ) {
        let due = crate::clock::plus_secs(start, deadline);
        if now >= due {
            jc.finished = Some(status::new_condition(
                FAILURE_TARGET,
                DEADLINE_EXCEEDED,
                "Job was active longer than specified deadline",
                now,
            ));
        } else {
            requeue = Some(ctx.clock.until(due).max(Duration::from_millis(1)));
        }
    }

    let mut manage_error = None;
    let mut suspend_changed = false;
    let mut active = jc.active.len() as i32;
    if jc.finished.is_some() {
        // Failing (or complete by an earlier sync's criteria): stop what still runs.
        let (deleted_ready, deleted, err) = delete_active_pods(ctx, &jc.job, &jc.active).await;
        if deleted != active || !satisfied {
            // Pods remain, or the cache may not show them all yet.
            jc.finished = None;
        }
        active -= deleted;
        jc.terminating += deleted;
        jc.ready -= deleted_ready;
        manage_error = err;
    } else {
        let mut managed = false;
        if satisfied && jc.job.metadata.deletion_timestamp.is_none() {
            let (a, wait, err) = manage_job(ctx, &mut jc).await;
            active = a;
            if let Some(w) = wait {
                requeue = Some(requeue.map_or(w, |r| r.min(w)));
            }
            manage_error = err;
            managed = true;
        }
        let complete = match spec.completions {
            None => jc.succeeded > 0 && active == 0,
            Some(c) => jc.succeeded >= c && active == 0,
        };
        if complete {
            jc.finished = Some(status::new_condition(
                SUCCESS_CRITERIA_MET,
                COMPLETIONS_REACHED,
                "Reached expected number of succeeded pods",
                now,
            ));
        } else if managed {
            let st = jc.job.status.as_mut().expect("status");
            let conds = st.conditions.get_or_insert_with(Vec::new);
            if is_suspended(shared_job) {
                if status::ensure_condition(
                    conds,
                    SUSPENDED,
                    "True",
                    "JobSuspended",
                    "Job suspended",
                    now,
                ) {
                    suspend_changed = true;
                    ctx.recorder
                        .normal(shared_job, "Suspended", "Job suspended".into());
                }
            } else if status::ensure_condition(
                conds,
                SUSPENDED,
                "False",
                "JobResumed",
                "Job resumed",
                now,
            ) {
                suspend_changed = true;
                ctx.recorder
                    .normal(shared_job, "Resumed", "Job resumed".into());
                // The deadline counts from the resumption.
                st.start_time = Some(Time(now));
            }
            if st.conditions.as_ref().is_some_and(Vec::is_empty) {
                st.conditions = None;
            }
        }
    }

    let st = jc.job.status.as_mut().expect("status");
    needs_update = needs_update
        || suspend_changed
        || st.active.unwrap_or(0) != active
        || st.ready != Some(jc.ready)
        || st.terminating != Some(jc.terminating);
    st.active = nonzero(active);
    st.ready = Some(jc.ready);
    st.terminating = Some(jc.terminating);
    track(ctx, &mut jc, &jobs_api, &pods_api, needs_update).await?;
    ctx.backoff
        .lock()
        .expect("backoff")
        .insert(job_key.clone(), jc.backoff);
    if let Some(e) = manage_error {
        return Err(e);
    }
    Ok(match requeue {
        Some(d) => Action::requeue(d),
        None => Action::await_change(),
    })
}

/// Creates or deletes pods towards the wanted number of active ones (`manageJob`). Returns the
/// active count after it, how long to wait before creating pods (back-off), and the error.
async fn manage_job(ctx: &Ctx, jc: &mut JobCtx) -> (i32, Option<Duration>, Option<Error>) {
    let job = &jc.job;
    let job_key = key(&job.metadata);
    let spec = job.spec.clone().unwrap_or_default();
    let active = jc.active.len() as i32;
    let parallelism = spec.parallelism.unwrap_or(1);
    if is_suspended(job) {
        let victims = jc.active.clone();
        let (ready, removed, err) = delete_job_pods(ctx, job, &job_key, &victims).await;
        jc.terminating += removed;
        jc.ready -= ready;
        return (active - removed, None, err);
    }
    let want = match spec.completions {
        None if jc.succeeded > 0 => active,
        None => parallelism,
        Some(c) => (c - jc.succeeded).clamp(0, parallelism),
    };
    // Indexed: pods without a valid index, or holding one twice, go first.
    let mut victims = match &jc.indexes {
        Some(ix) => indexed::invalid_or_duplicate(&jc.active, ix.completions),
        None => Vec::new(),
    };
    let valid = active - victims.len() as i32;
    if valid > want {
        let rest: Vec<Arc<Pod>> = jc
            .active
            .iter()
            .filter(|p| !victims.iter().any(|v| Arc::ptr_eq(v, p)))
            .cloned()
            .collect();
        victims.extend(rank::pods_to_delete(
            &rest,
            &[],
            (valid - want) as usize,
            ctx.clock.now(),
        ));
    }
    if !victims.is_empty() {
        victims.truncate(MAX_PODS_PER_SYNC);
        let (ready, removed, err) = delete_job_pods(ctx, job, &job_key, &victims).await;
        jc.terminating += removed;
        jc.ready -= ready;
        return (active - removed, None, err);
    }
    let terminating = if status::only_replace_failed(job) {
        jc.terminating
    } else {
        0
    };
    let diff = want - terminating - active;
    if diff <= 0 {
        return (active, None, None);
    }
    let wait = jc.backoff.remaining(tokio::time::Instant::now());
    if !wait.is_zero() {
        return (active, Some(wait), None);
    }
    let mut diff = (diff as usize).min(MAX_PODS_PER_SYNC);
    let index_list = jc
        .indexes
        .as_ref()
        .map(|ix| indexed::pending(ix.completions, &ix.succeeded, &jc.active, diff));
    if let Some(list) = &index_list {
        diff = list.len();
        if diff == 0 {
            return (active, None, None);
        }
    }
    let next = AtomicUsize::new(0);
    let namespace = job.metadata.namespace.clone().unwrap_or_default();
    let name = job.metadata.name.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let owner = controller_ref(job);
    ctx.expectations.expect_creations(&job_key, diff);
    let create = || {
        let mut pod = pod_from_template(&spec.template, &namespace, &name, owner.clone());
        let i = next.fetch_add(1, Ordering::SeqCst);
        if let Some(index) = index_list.as_ref().and_then(|l| l.get(i)) {
            indexed::decorate(&mut pod, &name, *index);
        }
        pod.metadata
            .finalizers
            .get_or_insert_with(Vec::new)
            .push(TRACKING_FINALIZER.into());
        let api = api.clone();
        async move { create_pod(&api, &ctx.recorder, job, &pod).await }
    };
    let (created, err) = slow_start_batch(diff, 1, create).await;
    for _ in created..diff {
        ctx.expectations.creation_observed(&job_key);
    }
    let err = err.map(|source| Error::Create {
        key: job_key,
        source,
    });
    (active + created as i32, None, err)
}

/// Deletes pods the Job no longer wants (parallelism lowered, suspended), removing their
/// tracking finalizer first: they are not counted as failures (`deleteJobPods`). Returns the
/// ready and total pods deleted, and the first error.
async fn delete_job_pods(
    ctx: &Ctx,
    job: &Job,
    job_key: &str,
    pods: &[Arc<Pod>],
) -> (i32, i32, Option<Error>) {
    if pods.is_empty() {
        return (0, 0, None);
    }
    let namespace = job.metadata.namespace.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    ctx.expectations
        .expect_deletions(job_key, pods.iter().filter_map(|p| p.metadata.uid.clone()));
    let results = join_all(pods.iter().map(|pod| {
        let api = api.clone();
        async move {
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            let mut res = Ok(());
            if has_tracking_finalizer(pod) {
                res = remove_tracking_finalizer(&api, pod).await;
            }
            if res.is_ok() {
                res = delete_pod(ctx, job, &api, pod).await;
            }
            if res.is_err() {
                ctx.expectations.deletion_observed(job_key, &uid);
            }
            (is_ready(pod), res)
        }
    }))
    .await;
    tally(job_key, results)
}

/// Deletes the active pods of a failing Job, keeping their finalizers: they are counted as
/// failed once their deletion is seen (`deleteActivePods`).
async fn delete_active_pods(ctx: &Ctx, job: &Job, pods: &[Arc<Pod>]) -> (i32, i32, Option<Error>) {
    let namespace = job.metadata.namespace.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let results = join_all(pods.iter().map(|pod| {
        let api = api.clone();
        async move { (is_ready(pod), delete_pod(ctx, job, &api, pod).await) }
    }))
    .await;
    tally(&key(&job.metadata), results)
}

fn tally(
    job_key: &str,
    results: Vec<(bool, Result<(), kube::Error>)>,
) -> (i32, i32, Option<Error>) {
    let mut ready = 0;
    let mut deleted = 0;
    let mut first = None;
    for (was_ready, res) in results {
        match res {
            Ok(()) => {
                deleted += 1;
                ready += i32::from(was_ready);
            }
            Err(source) => {
                first.get_or_insert(Error::Delete {
                    key: job_key.to_string(),
                    source,
                });
            }
        }
    }
    (ready, deleted, first)
}

/// Deletes one pod (its UID as precondition), with the events Kubernetes writes. Gone is fine.
async fn delete_pod(ctx: &Ctx, job: &Job, api: &Api<Pod>, pod: &Pod) -> Result<(), kube::Error> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: pod.metadata.uid.clone(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(&name, &params).await {
        Ok(_) => {
            ctx.recorder
                .normal(job, "SuccessfulDelete", format!("Deleted pod: {name}"));
            Ok(())
        }
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => {
            ctx.recorder.warning(
                job,
                "FailedDelete",
                format!("Error deleting: {}", api_message(&e)),
            );
            Err(e)
        }
    }
}

/// Writes the status with the Job's resourceVersion: a stale Job fails with a conflict.
async fn write_status(api: &Api<Job>, job: &Job) -> Result<Job, Error> {
    let name = job.metadata.name.clone().unwrap_or_default();
    api.replace_status(&name, &PostParams::default(), job)
        .await
        .map_err(|source| Error::Status {
            key: key(&job.metadata),
            source,
        })
}

/// Counts finished pods and removes their finalizers, then sets the terminal condition when
/// nothing is left uncounted or terminating (`trackJobStatusAndRemoveFinalizers`).
async fn track(
    ctx: &Ctx,
    jc: &mut JobCtx,
    jobs_api: &Api<Job>,
    pods_api: &Api<Pod>,
    mut needs_flush: bool,
) -> Result<(), Error> {
    let job_key = key(&jc.job.metadata);
    let now = ctx.clock.now();
    let mut with_finalizer: HashSet<String> = jc
        .pods
        .iter()
        .filter(|p| has_tracking_finalizer(p))
        .filter_map(|p| p.metadata.uid.clone())
        .filter(|u| !jc.expected_rm.contains(u))
        .collect();
    let status = jc.job.status.as_mut().expect("status");
    needs_flush |= status::count_uncounted(status, &with_finalizer);
    let mut uncounted = Uncounted::of(status);
    let deleting = jc.job.metadata.deletion_timestamp.is_some();
    let failing = jc
        .finished
        .as_ref()
        .is_some_and(|c| c.type_ != SUCCESS_CRITERIA_MET);
    let mut to_release = Vec::new();
    for pod in &jc.pods {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if !has_tracking_finalizer(pod) || jc.expected_rm.contains(&uid) {
            continue;
        }
        let failed = is_pod_failed(pod, &jc.job);
        let succeeded = phase(pod) == "Succeeded";
        if !(deleting || jc.finished.is_some() || succeeded || failed) {
            continue;
        }
        to_release.push(pod.clone());
        if succeeded && jc.indexes.is_some() {
            // Counted by its index in `completedIndexes`, below.
        } else if succeeded && !uncounted.failed.contains(&uid) {
            if !uncounted.succeeded.contains(&uid) {
                uncounted.succeeded.push(uid);
                needs_flush = true;
            }
        } else if (failed || failing) && !uncounted.failed.contains(&uid) {
            // A failing Job counts every pod that did not succeed as failed.
            uncounted.failed.push(uid);
            needs_flush = true;
        }
    }
    let status = jc.job.status.as_mut().expect("status");
    uncounted.store(status);
    if let Some(ix) = &jc.indexes {
        let listed = indexed::format(&ix.succeeded);
        if status.completed_indexes.as_deref().unwrap_or_default() != listed
            || ix.succeeded != ix.recorded
        {
            needs_flush = true;
        }
        status.completed_indexes = Some(listed);
        status.succeeded = nonzero(ix.succeeded.len() as i32);
    }
    // The interim condition goes in before any finalizer is removed.
    if let Some(cond) = jc.finished.take() {
        let conds = status.conditions.get_or_insert_with(Vec::new);
        let terminal = match cond.type_.as_str() {
            FAILURE_TARGET => {
                conds.push(cond.clone());
                needs_flush = true;
                FAILED
            }
            SUCCESS_CRITERIA_MET => {
                if !conds.iter().any(|c| c.type_ == SUCCESS_CRITERIA_MET) {
                    conds.push(cond.clone());
                    needs_flush = true;
                }
                COMPLETE
            }
            other => {
                debug_assert_eq!(other, FAILED);
                FAILED
            }
        };
        jc.finished = Some(status::new_condition(
            terminal,
            cond.reason.as_deref().unwrap_or_default(),
            cond.message.as_deref().unwrap_or_default(),
            now,
        ));
    }
    if needs_flush {
        jc.job = write_status(jobs_api, &jc.job).await?;
        needs_flush = false;
    }

    // Remove the finalizers of the pods now recorded.
    let mut rm_error = None;
    if !to_release.is_empty() {
        ctx.finalizers.expect(
            &job_key,
            to_release.iter().filter_map(|p| p.metadata.uid.clone()),
        );
        let results = join_all(
            to_release
                .iter()
                .map(|p| async move { (p, remove_tracking_finalizer(pods_api, p).await) }),
        )
        .await;
        for (pod, res) in results {
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            match res {
                Ok(()) => {
                    with_finalizer.remove(&uid);
                }
                Err(source) => {
                    ctx.finalizers.observed(&job_key, &uid);
                    rm_error.get_or_insert(Error::Finalizer {
                        key: job_key.clone(),
                        source,
                    });
                }
            }
        }
    }
    let status = jc.job.status.get_or_insert_with(JobStatus::default);
    needs_flush |= status::count_uncounted(status, &with_finalizer);
    if let Some(e) = rm_error {
        if needs_flush {
            write_status(jobs_api, &jc.job).await?;
        }
        return Err(e);
    }

    // Finished once every pod is counted and none is still terminating.
    let mut finished = None;
    if let Some(cond) = jc.finished.clone()
        && Uncounted::of(status).is_empty()
        && jc.terminating == 0
    {
        let conds = status.conditions.get_or_insert_with(Vec::new);
        status::ensure_condition(
            conds,
            &cond.type_,
            "True",
            cond.reason.as_deref().unwrap_or_default(),
            cond.message.as_deref().unwrap_or_default(),
            now,
        );
        if cond.type_ == COMPLETE {
            status.completion_time = Some(Time(now));
        }
        needs_flush = true;
        finished = Some(cond);
    }
    if needs_flush {
        jc.job = write_status(jobs_api, &jc.job).await?;
    }
    if let Some(cond) = finished {
        let job = &jc.job;
        if cond.type_ == COMPLETE {
            let completions = job.spec.as_ref().and_then(|s| s.completions);
            let succeeded = job.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0);
            if completions.is_some_and(|c| succeeded > c) {
                ctx.recorder.warning(
                    job,
                    "TooManySucceededPods",
                    "Too many succeeded pods running after completion count reached".into(),
                );
            }
            ctx.recorder
                .normal(job, "Completed", "Job completed".into());
        } else {
            ctx.recorder.warning(
                job,
                cond.reason.as_deref().unwrap_or_default(),
                cond.message.clone().unwrap_or_default(),
            );
        }
    }
    Ok(())
}
