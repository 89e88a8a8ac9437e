//! The CronJob controller: creates a Job from a CronJob's `jobTemplate` at each time of its
//! `schedule` (in `timeZone`, UTC without one), as Kubernetes' `cronjob-controller` (v2) does:
//!
//! - the Job is named `<cronjob>-<scheduled time in minutes since the epoch>`, so a time is
//!   never run twice (an existing Job of that name means it already ran), is controlled by
//!   the CronJob and carries the scheduled time in
//!   `batch.kubernetes.io/cronjob-scheduled-timestamp`;
//! - only the most recent missed time runs (a controller that was down does not catch up on
//!   each), and not at all once `startingDeadlineSeconds` have passed since it;
//! - `concurrencyPolicy`: `Allow` runs alongside active Jobs, `Forbid` skips the time while one
//!   is active, `Replace` deletes the active ones first;
//! - `status.active` lists the unfinished Jobs, `lastScheduleTime` the last time run,
//!   `lastSuccessfulTime` the last successful Job's completion;
//! - finished Jobs beyond `successfulJobsHistoryLimit` and `failedJobsHistoryLimit` are deleted,
//!   oldest first;
//! - `suspend` stops new runs; the reconcile requeues itself for the next scheduled time.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{StreamExt, stream};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{DeleteParams, PostParams, PropagationPolicy};
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use kube::{Api, Client};
use rkube_machinery::cron::Schedule;

use crate::Shared;
use crate::clock::Clock;
use crate::events::Recorder;
use crate::informer::ref_in;
use crate::job::status::{has_true, is_finished};
use crate::podutil::{controller_of, controller_ref, key};
use crate::runner::{Wiring, is_already_exists, is_not_found};

/// The controller's name (`--controllers`, events' source).
pub const NAME: &str = "cronjob-controller";
/// The ServiceAccount (in kube-system) it acts as with `--use-service-account-credentials`.
pub const ACCOUNT: &str = "cronjob-controller";
/// The annotation with the time a Job was scheduled for.
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// Missed times beyond which a warning is recorded (Kubernetes' 100).
const TOO_MANY_MISSED: usize = 100;
/// Added to requeues so that the scheduled time has surely passed when the reconcile runs.
const REQUEUE_SLACK: Duration = Duration::from_millis(100);

/// What a reconcile needs.
pub struct Ctx {
    /// The API.
    pub client: Client,
    /// The shared Job cache.
    pub jobs: Store<Job>,
    /// Events.
    pub recorder: Recorder,
    /// The clock.
    pub clock: Clock,
}

/// Why a CronJob could not be synced.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the API failed.
    #[error("cronjob {key}: {what}: {source}")]
    Api {
        /// The CronJob.
        key: String,
        /// What was being done.
        what: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

/// The schedule and time zone of a CronJob, or why they cannot be used.
fn schedule_of(cj: &CronJob) -> Result<(Schedule, jiff::tz::TimeZone), (&'static str, String)> {
    let spec = cj
        .spec
        .as_ref()
        .ok_or(("UnparseableSchedule", "no spec".into()))?;
    let tz = match spec.time_zone.as_deref() {
        None => jiff::tz::TimeZone::UTC,
        Some(name) => jiff::tz::TimeZone::get(name)
            .map_err(|_| ("UnknownTimeZone", format!("invalid timeZone: {name:?}")))?,
    };
    let schedule = Schedule::parse(&spec.schedule).map_err(|e| {
        (
            "UnparseableSchedule",
            format!("unparseable schedule {:?}: {e}", spec.schedule),
        )
    })?;
    Ok((schedule, tz))
}

/// The most recent scheduled time after `earliest` and not after `now`, and how many there
/// were (counted up to [`TOO_MANY_MISSED`] + 1).
pub fn most_recent(
    schedule: &Schedule,
    tz: &jiff::tz::TimeZone,
    earliest: jiff::Timestamp,
    now: jiff::Timestamp,
) -> (Option<jiff::Timestamp>, usize) {
    let next = |t| schedule.next_after(t, tz).filter(|n| *n <= now);
    let Some(mut t) = next(earliest) else {
        return (None, 0);
    };
    let mut count = 1;
    while count <= TOO_MANY_MISSED {
        match next(t) {
            Some(n) => {
                t = n;
                count += 1;
            }
            None => return (Some(t), count),
        }
    }
    // Many missed: look back from `now` over a window that doubles until it holds a time, then
    // walk forward to the last one.
    let mut window = jiff::SignedDuration::from_secs(60);
    let mut recent = t;
    for _ in 0..40 {
        let Some(start) = now.checked_sub(window).ok() else {
            break;
        };
        if let Some(found) = next(start.max(t)) {
            recent = found;
            break;
        }
        window = window.checked_mul(2).unwrap_or(window);
    }
    while let Some(n) = next(recent) {
        recent = n;
    }
    (Some(recent), count)
}

/// The name of the Job for `scheduled`: the CronJob's name and the minutes since the epoch.
pub fn job_name(cj: &CronJob, scheduled: jiff::Timestamp) -> String {
    format!(
        "{}-{}",
        cj.metadata.name.as_deref().unwrap_or_default(),
        scheduled.as_second().div_euclid(60)
    )
}

/// `t` in RFC 3339 in `tz`, as Go prints it (`Z` for UTC).
fn rfc3339_in(t: jiff::Timestamp, tz: &jiff::tz::TimeZone) -> String {
    let zoned = t.to_zoned(tz.clone());
    if zoned.offset().seconds() == 0 {
        t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        zoned.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }
}

/// The Job a CronJob runs at `scheduled`.
pub fn job_for(cj: &CronJob, scheduled: jiff::Timestamp, tz: &jiff::tz::TimeZone) -> Job {
    let template = cj
        .spec
        .as_ref()
        .map(|s| s.job_template.clone())
        .unwrap_or_default();
    let meta = template.metadata.unwrap_or_default();
    let mut annotations = meta.annotations.unwrap_or_default();
    annotations.insert(SCHEDULED_TIMESTAMP.into(), rfc3339_in(scheduled, tz));
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(cj, scheduled)),
            namespace: cj.metadata.namespace.clone(),
            labels: meta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![controller_ref(cj)]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

/// A reference to a Job for `status.active`.
fn reference(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        namespace: job.metadata.namespace.clone(),
        name: job.metadata.name.clone(),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        ..Default::default()
    }
}

fn is_succeeded(job: &Job) -> bool {
    has_true(job, "Complete")
}

/// When a Job started, for ordering the history (start time, else creation).
fn started(job: &Job) -> Option<jiff::Timestamp> {
    job.status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .or(job.metadata.creation_timestamp.as_ref())
        .map(|t| t.0)
}

/// The finished Jobs to delete: the oldest of each kind beyond its history limit.
pub fn beyond_history(cj: &CronJob, jobs: &[Arc<Job>]) -> Vec<Arc<Job>> {
    let spec = cj.spec.clone().unwrap_or_default();
    let mut out = Vec::new();
    for (succeeded, limit) in [
        (true, spec.successful_jobs_history_limit),
        (false, spec.failed_jobs_history_limit),
    ] {
        let Some(limit) = limit else { continue };
        let mut finished: Vec<&Arc<Job>> = jobs
            .iter()
            .filter(|j| is_finished(j) && is_succeeded(j) == succeeded)
            .filter(|j| j.metadata.deletion_timestamp.is_none())
            .collect();
        let keep = usize::try_from(limit.max(0)).unwrap_or(0);
        if finished.len() <= keep {
            continue;
        }
        finished.sort_by_key(|j| started(j));
        let extra = finished.len() - keep;
        out.extend(finished.into_iter().take(extra).cloned());
    }
    out
}

/// Syncs one CronJob: its status from its Jobs, the Job due now, the history; requeues for
/// the next scheduled time.
pub async fn reconcile(cj: Arc<CronJob>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if cj.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let cj_key = key(&cj.metadata);
    let err = |what: &str| {
        let key = cj_key.clone();
        let what = what.to_string();
        move |source| Error::Api { key, what, source }
    };
    let namespace = cj.metadata.namespace.clone().unwrap_or_default();
    let uid = cj.metadata.uid.clone().unwrap_or_default();
    let jobs: Vec<Arc<Job>> = ctx
        .jobs
        .state()
        .into_iter()
        .filter(|j| j.metadata.namespace.as_deref() == Some(namespace.as_str()))
        .filter(|j| controller_of(&j.metadata).is_some_and(|r| r.uid == uid))
        .collect();
    let job_api: Api<Job> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut next = (*cj).clone();
    let status = next.status.get_or_insert_with(Default::default);
    let mut active = status.active.clone().unwrap_or_default();

    // Status from the Jobs: finished ones leave `active`, unfinished ones of ours join it,
    // the latest success is recorded.
    for job in &jobs {
        let job_uid = job.metadata.uid.as_deref();
        let listed = active.iter().any(|r| r.uid.as_deref() == job_uid);
        if is_finished(job) {
            if listed {
                active.retain(|r| r.uid.as_deref() != job_uid);
                let condition = if is_succeeded(job) {
                    "Complete"
                } else {
                    "Failed"
                };
                ctx.recorder.normal(
                    &*cj,
                    "SawCompletedJob",
                    format!(
                        "Saw completed job: {}, condition: {condition}",
                        job.metadata.name.as_deref().unwrap_or_default()
                    ),
                );
            }
            if is_succeeded(job)
                && let Some(done) = job.status.as_ref().and_then(|s| s.completion_time.clone())
                && status
                    .last_successful_time
                    .as_ref()
                    .is_none_or(|t| t.0 < done.0)
            {
                status.last_successful_time = Some(done);
            }
        } else if !listed {
            active.push(reference(job));
        }
    }
    // Jobs in `active` that are gone: checked against the API, not the cache, which may lag.
    let mut kept = Vec::with_capacity(active.len());
    for r in active {
        let in_cache = jobs.iter().any(|j| j.metadata.uid == r.uid);
        if in_cache {
            kept.push(r);
            continue;
        }
        match job_api.get(r.name.as_deref().unwrap_or_default()).await {
            Ok(j) if j.metadata.uid == r.uid && !is_finished(&j) => kept.push(r),
            Ok(_) => {}
            Err(e) if is_not_found(&e) => ctx.recorder.normal(
                &*cj,
                "MissingJob",
                format!(
                    "Active job went missing: {}",
                    r.name.as_deref().unwrap_or_default()
                ),
            ),
            Err(e) => return Err(err("reading an active job")(e)),
        }
    }
    let mut active = kept;

    let spec = cj.spec.clone().unwrap_or_default();
    let now = ctx.clock.now();
    let mut requeue = None;
    if spec.suspend != Some(true) {
        match schedule_of(&cj) {
            Err((reason, message)) => ctx.recorder.warning(&*cj, reason, message),
            Ok((schedule, tz)) => {
                let created = cj.metadata.creation_timestamp.as_ref().map_or(now, |t| t.0);
                let mut earliest = status.last_schedule_time.as_ref().map_or(created, |t| t.0);
                if let Some(deadline) = spec.starting_deadline_seconds {
                    let cutoff = now
                        .checked_sub(jiff::SignedDuration::from_secs(deadline))
                        .unwrap_or(now);
                    earliest = earliest.max(cutoff);
                }
                let (due, missed) = most_recent(&schedule, &tz, earliest, now);
                if missed > TOO_MANY_MISSED {
                    ctx.recorder.warning(
                        &*cj,
                        "TooManyMissedTimes",
                        "too many missed start times, set or decrease .spec.startingDeadlineSeconds or check clock skew".into(),
                    );
                }
                if let Some(scheduled) = due {
                    run_due(&ctx, &cj, &job_api, &jobs, &mut active, scheduled, &tz)
                        .await?
                        .inspect(|t| status.last_schedule_time = Some(Time(*t)));
                }
                requeue = schedule
                    .next_after(now, &tz)
                    .map(|t| ctx.clock.until(t) + REQUEUE_SLACK);
            }
        }
    }
    status.active = (!active.is_empty()).then_some(active);

    if next.status.clone().unwrap_or_default() != cj.status.clone().unwrap_or_default() {
        let api: Api<CronJob> = Api::namespaced(ctx.client.clone(), &namespace);
        let name = cj.metadata.name.clone().unwrap_or_default();
        api.replace_status(&name, &PostParams::default(), &next)
            .await
            .map_err(err("updating status"))?;
    }

    for job in beyond_history(&cj, &jobs) {
        let name = job.metadata.name.clone().unwrap_or_default();
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        };
        match job_api.delete(&name, &params).await {
            Ok(_) => ctx
                .recorder
                .normal(&*cj, "SuccessfulDelete", format!("Deleted job {name}")),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(err("deleting an old job")(e)),
        }
    }

    Ok(match requeue {
        Some(d) => Action::requeue(d),
        None => Action::await_change(),
    })
}

/// Runs the Job of `scheduled` unless it ran already or the policy says no; answers the
/// scheduled time when it is now handled (run, or found run) for `lastScheduleTime`.
async fn run_due(
    ctx: &Ctx,
    cj: &Arc<CronJob>,
    job_api: &Api<Job>,
    jobs: &[Arc<Job>],
    active: &mut Vec<ObjectReference>,
    scheduled: jiff::Timestamp,
    tz: &jiff::tz::TimeZone,
) -> Result<Option<jiff::Timestamp>, Error> {
    let spec = cj.spec.clone().unwrap_or_default();
    let cj_key = key(&cj.metadata);
    let err = |what: &'static str| {
        let key = cj_key.clone();
        move |source| Error::Api {
            key,
            what: what.into(),
            source,
        }
    };
    let name = job_name(cj, scheduled);
    if jobs
        .iter()
        .any(|j| j.metadata.name.as_deref() == Some(name.as_str()))
        || active
            .iter()
            .any(|r| r.name.as_deref() == Some(name.as_str()))
    {
        return Ok(Some(scheduled));
    }
    let now = ctx.clock.now();
    if let Some(deadline) = spec.starting_deadline_seconds
        && scheduled
            .checked_add(jiff::SignedDuration::from_secs(deadline))
            .is_ok_and(|latest| latest < now)
    {
        ctx.recorder.warning(
            &**cj,
            "MissSchedule",
            format!(
                "Missed scheduled time to start a job: {}",
                rfc3339_in(scheduled, tz)
            ),
        );
        return Ok(None);
    }
    match spec.concurrency_policy.as_deref() {
        Some("Forbid") if !active.is_empty() => {
            ctx.recorder.normal(
                &**cj,
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid".into(),
            );
            return Ok(None);
        }
        Some("Replace") => {
            for r in std::mem::take(active) {
                let old = r.name.clone().unwrap_or_default();
                let params = DeleteParams {
                    propagation_policy: Some(PropagationPolicy::Background),
                    ..Default::default()
                };
                match job_api.delete(&old, &params).await {
                    Ok(_) => {
                        ctx.recorder
                            .normal(&**cj, "SuccessfulDelete", format!("Deleted job {old}"))
                    }
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(err("deleting an active job for Replace")(e)),
                }
            }
        }
        _ => {}
    }
    let job = job_for(cj, scheduled, tz);
    match job_api.create(&PostParams::default(), &job).await {
        Ok(created) => {
            ctx.recorder
                .normal(&**cj, "SuccessfulCreate", format!("Created job {name}"));
            active.push(reference(&created));
            Ok(Some(scheduled))
        }
        Err(e) if is_already_exists(&e) => {
            // Created by an earlier sync whose status write failed: take it if it is ours.
            match job_api.get(&name).await {
                Ok(j) if controller_of(&j.metadata).map(|r| &r.uid) == cj.metadata.uid.as_ref() => {
                    if !is_finished(&j) {
                        active.push(reference(&j));
                    }
                    Ok(Some(scheduled))
                }
                Ok(_) => {
                    ctx.recorder.warning(
                        &**cj,
                        "FailedCreate",
                        format!("Error creating job: a job named {name} exists and is not owned by this CronJob"),
                    );
                    Ok(None)
                }
                Err(e) => Err(err("reading an existing job")(e)),
            }
        }
        Err(e) => {
            ctx.recorder
                .warning(&**cj, "FailedCreate", format!("Error creating job: {e}"));
            Err(err("creating a job")(e))
        }
    }
}

/// Builds the controller and returns the future that runs it: a CronJob is synced when it
/// changes, when one of its Jobs changes, and at its next scheduled time.
pub fn start(shared: &Shared) -> BoxFuture<'static, ()> {
    let cronjobs = shared.informers.all::<CronJob>();
    let jobs = shared.informers.all::<Job>();
    let wiring = Wiring::new(NAME, &shared.metrics, &cronjobs);
    let ctx = Arc::new(Ctx {
        client: shared.client_for(ACCOUNT),
        jobs: jobs.store(),
        recorder: shared.recorder.with_component(NAME),
        clock: Clock::new(),
    });
    let owners = jobs.subscribe().flat_map(|c| {
        let job = c.object();
        let owner = controller_of(&job.metadata)
            .filter(|r| r.kind == "CronJob" && r.api_version == "batch/v1")
            .map(|r| ref_in::<CronJob>(job.metadata.namespace.as_deref(), &r.name));
        stream::iter(owner)
    });
    let controller = wiring
        .controller(&cronjobs)
        .reconcile_on(wiring.track(owners));
    let concurrency = shared.config.concurrent_cron_job_syncs;
    Box::pin(wiring.run(controller, concurrency, ctx, reconcile, shared.shutdown()))
}

#[cfg(test)]
mod tests;
