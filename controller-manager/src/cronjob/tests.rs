//! Tests of the CronJob controller against the in-memory API, with the clock set to chosen
//! times.

use std::sync::Mutex;

use k8s_openapi::api::batch::v1::{
    CronJobSpec, CronJobStatus, JobCondition, JobSpec, JobStatus, JobTemplateSpec,
};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use serde_json::json;

use super::*;
use crate::events::Recorded;
use crate::fake::{FakeApi, store_of};

const CRONJOBS: &str = "batch/v1/cronjobs";
const JOBS: &str = "batch/v1/jobs";

fn at(s: &str) -> jiff::Timestamp {
    s.parse().expect("timestamp")
}

fn cronjob(schedule: &str, created: &str) -> CronJob {
    CronJob {
        metadata: ObjectMeta {
            name: Some("report".into()),
            namespace: Some("ns".into()),
            uid: Some("cj-uid".into()),
            creation_timestamp: Some(Time(at(created))),
            ..Default::default()
        },
        spec: Some(CronJobSpec {
            schedule: schedule.into(),
            concurrency_policy: Some("Allow".into()),
            suspend: Some(false),
            successful_jobs_history_limit: Some(3),
            failed_jobs_history_limit: Some(1),
            job_template: JobTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some([("app".to_string(), "report".to_string())].into()),
                    ..Default::default()
                }),
                spec: Some(JobSpec {
                    template: PodTemplateSpec {
                        spec: Some(PodSpec {
                            containers: vec![Container {
                                name: "c".into(),
                                image: Some("busybox".into()),
                                ..Default::default()
                            }],
                            restart_policy: Some("OnFailure".into()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    }
}

/// A Job of the CronJob, scheduled at `scheduled`, finished as `outcome` (`Complete`,
/// `Failed`) at `finished`, or running.
fn job_of(cj: &CronJob, scheduled: &str, outcome: Option<(&str, &str)>) -> Job {
    let mut job = job_for(cj, at(scheduled), &jiff::tz::TimeZone::UTC);
    let name = job.metadata.name.clone().unwrap_or_default();
    job.metadata.uid = Some(format!("uid-{name}"));
    job.metadata.creation_timestamp = Some(Time(at(scheduled)));
    job.status = Some(JobStatus {
        start_time: Some(Time(at(scheduled))),
        completion_time: outcome
            .filter(|(c, _)| *c == "Complete")
            .map(|(_, t)| Time(at(t))),
        conditions: outcome.map(|(c, t)| {
            vec![JobCondition {
                type_: c.into(),
                status: "True".into(),
                last_transition_time: Some(Time(at(t))),
                ..Default::default()
            }]
        }),
        ..Default::default()
    });
    job
}

struct Setup {
    fake: FakeApi,
    ctx: Arc<Ctx>,
    events: Arc<Mutex<Vec<Recorded>>>,
}

fn setup(cj: &CronJob, jobs: Vec<Job>, now: &str) -> Setup {
    let fake = FakeApi::new();
    fake.insert(CRONJOBS, cj);
    for j in &jobs {
        fake.insert(JOBS, j);
    }
    let (store, writer) = store_of(jobs);
    std::mem::forget(writer);
    let (recorder, events) = Recorder::memory(NAME);
    let ctx = Arc::new(Ctx {
        client: fake.client(),
        jobs: store,
        recorder,
        clock: Clock::at(at(now)),
    });
    Setup { fake, ctx, events }
}

impl Setup {
    fn reasons(&self) -> Vec<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.reason.clone())
            .collect()
    }

    /// The CronJob as stored.
    fn stored(&self) -> CronJob {
        self.fake.get(CRONJOBS, "ns", "report").expect("cronjob")
    }

    /// The Jobs as stored.
    fn jobs(&self) -> Vec<Job> {
        self.fake.list(JOBS)
    }
}

#[tokio::test(start_paused = true)]
async fn the_job_of_the_most_recent_time_is_created_once() {
    let cj = cronjob("*/5 * * * *", "2026-03-01T10:02:00Z");
    let s = setup(&cj, vec![], "2026-03-01T10:05:30Z");
    let action = reconcile(Arc::new(cj.clone()), s.ctx.clone())
        .await
        .unwrap();
    // Next run at 10:10: 4.5 minutes away.
    assert_eq!(
        action,
        Action::requeue(Duration::from_secs(270) + REQUEUE_SLACK)
    );
    let jobs = s.jobs();
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    let minutes = at("2026-03-01T10:05:00Z").as_second() / 60;
    assert_eq!(
        job.metadata.name.as_deref(),
        Some(format!("report-{minutes}").as_str())
    );
    assert_eq!(
        job.metadata.annotations.as_ref().unwrap()[SCHEDULED_TIMESTAMP],
        "2026-03-01T10:05:00Z"
    );
    assert_eq!(job.metadata.labels.as_ref().unwrap()["app"], "report");
    let owner = controller_of(&job.metadata).unwrap();
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("CronJob", "cj-uid")
    );
    let status = s.stored().status.unwrap();
    assert_eq!(
        status.last_schedule_time,
        Some(Time(at("2026-03-01T10:05:00Z")))
    );
    let active = status.active.unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].name, job.metadata.name);
    assert_eq!(s.reasons(), ["SuccessfulCreate"]);

    // Synced again with the Job in the cache and the status written: nothing new.
    let stored = s.stored();
    let (store, writer) = store_of(s.jobs());
    std::mem::forget(writer);
    let ctx = Arc::new(Ctx {
        client: s.fake.client(),
        jobs: store,
        recorder: Recorder::memory(NAME).0,
        clock: Clock::at(at("2026-03-01T10:06:00Z")),
    });
    s.fake.clear_requests();
    reconcile(Arc::new(stored), ctx).await.unwrap();
    assert_eq!(s.jobs().len(), 1);
    assert_eq!(s.fake.count("POST", "/jobs"), 0);
    assert_eq!(s.fake.count("PUT", "/cronjobs"), 0, "status unchanged");
}

#[tokio::test(start_paused = true)]
async fn nothing_runs_before_the_first_time_after_creation() {
    let cj = cronjob("0 * * * *", "2026-03-01T10:02:00Z");
    let s = setup(&cj, vec![], "2026-03-01T10:30:00Z");
    let action = reconcile(Arc::new(cj), s.ctx.clone()).await.unwrap();
    assert_eq!(
        action,
        Action::requeue(Duration::from_secs(1800) + REQUEUE_SLACK)
    );
    assert!(s.jobs().is_empty());
    assert!(s.fake.requests().is_empty(), "no status write either");
}

#[tokio::test(start_paused = true)]
async fn forbid_skips_while_a_job_runs_and_replace_replaces_it() {
    let mut cj = cronjob("*/5 * * * *", "2026-03-01T10:00:00Z");
    let running = job_of(&cj, "2026-03-01T10:05:00Z", None);
    cj.status = Some(CronJobStatus {
        active: Some(vec![reference(&running)]),
        last_schedule_time: Some(Time(at("2026-03-01T10:05:00Z"))),
        ..Default::default()
    });
    cj.spec.as_mut().unwrap().concurrency_policy = Some("Forbid".into());
    let s = setup(&cj, vec![running.clone()], "2026-03-01T10:10:01Z");
    reconcile(Arc::new(cj.clone()), s.ctx.clone())
        .await
        .unwrap();
    assert_eq!(s.jobs().len(), 1);
    assert_eq!(s.reasons(), ["JobAlreadyActive"]);

    cj.spec.as_mut().unwrap().concurrency_policy = Some("Replace".into());
    let s = setup(&cj, vec![running.clone()], "2026-03-01T10:10:01Z");
    reconcile(Arc::new(cj.clone()), s.ctx.clone())
        .await
        .unwrap();
    let names: Vec<String> = s
        .jobs()
        .iter()
        .filter_map(|j| j.metadata.name.clone())
        .collect();
    let new_name = job_name(&cj, at("2026-03-01T10:10:00Z"));
    assert_eq!(
        names,
        std::slice::from_ref(&new_name),
        "the running one was deleted"
    );
    assert_eq!(s.reasons(), ["SuccessfulDelete", "SuccessfulCreate"]);
    let active = s.stored().status.unwrap().active.unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].name.as_deref(), Some(new_name.as_str()));

    // Allow runs alongside.
    cj.spec.as_mut().unwrap().concurrency_policy = Some("Allow".into());
    let s = setup(&cj, vec![running], "2026-03-01T10:10:01Z");
    reconcile(Arc::new(cj), s.ctx.clone()).await.unwrap();
    assert_eq!(s.jobs().len(), 2);
    assert_eq!(s.stored().status.unwrap().active.unwrap().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_time_missed_beyond_the_starting_deadline_is_not_run() {
    let mut cj = cronjob("*/5 * * * *", "2026-03-01T10:00:00Z");
    cj.spec.as_mut().unwrap().starting_deadline_seconds = Some(60);
    // 10:05 passed two minutes ago; with a 60 s deadline it is not looked at.
    let s = setup(&cj, vec![], "2026-03-01T10:07:00Z");
    reconcile(Arc::new(cj.clone()), s.ctx.clone())
        .await
        .unwrap();
    assert!(s.jobs().is_empty());
    // Within the deadline it runs.
    let s = setup(&cj, vec![], "2026-03-01T10:05:50Z");
    reconcile(Arc::new(cj), s.ctx.clone()).await.unwrap();
    assert_eq!(s.jobs().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_suspended_cronjob_runs_nothing_and_waits() {
    let mut cj = cronjob("* * * * *", "2026-03-01T10:00:00Z");
    cj.spec.as_mut().unwrap().suspend = Some(true);
    let s = setup(&cj, vec![], "2026-03-01T10:30:00Z");
    let action = reconcile(Arc::new(cj), s.ctx.clone()).await.unwrap();
    assert_eq!(action, Action::await_change());
    assert!(s.jobs().is_empty());
}

#[tokio::test(start_paused = true)]
async fn finished_jobs_leave_active_and_the_history_is_trimmed() {
    let mut cj = cronjob("0 * * * *", "2026-03-01T00:00:00Z");
    let mut jobs = Vec::new();
    for h in 1..=5 {
        let t = format!("2026-03-01T{h:02}:00:00Z");
        let done = format!("2026-03-01T{h:02}:00:30Z");
        jobs.push(job_of(&cj, &t, Some(("Complete", &done))));
    }
    jobs.push(job_of(
        &cj,
        "2026-03-01T06:00:00Z",
        Some(("Failed", "2026-03-01T06:01:00Z")),
    ));
    jobs.push(job_of(
        &cj,
        "2026-03-01T07:00:00Z",
        Some(("Failed", "2026-03-01T07:01:00Z")),
    ));
    let last = jobs.last().unwrap().clone();
    cj.status = Some(CronJobStatus {
        active: Some(vec![reference(&last)]),
        last_schedule_time: Some(Time(at("2026-03-01T07:00:00Z"))),
        ..Default::default()
    });
    let s = setup(&cj, jobs, "2026-03-01T07:30:00Z");
    reconcile(Arc::new(cj), s.ctx.clone()).await.unwrap();
    let status = s.stored().status.unwrap();
    assert_eq!(status.active, None);
    assert_eq!(
        status.last_successful_time,
        Some(Time(at("2026-03-01T05:00:30Z")))
    );
    let mut left: Vec<String> = s
        .jobs()
        .iter()
        .filter_map(|j| {
            j.metadata
                .annotations
                .as_ref()?
                .get(SCHEDULED_TIMESTAMP)
                .cloned()
        })
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            "2026-03-01T03:00:00Z",
            "2026-03-01T04:00:00Z",
            "2026-03-01T05:00:00Z",
            "2026-03-01T07:00:00Z"
        ],
        "three successful and one failed Job are kept"
    );
    let reasons = s.reasons();
    assert_eq!(
        reasons.iter().filter(|r| *r == "SuccessfulDelete").count(),
        3
    );
    assert!(reasons.contains(&"SawCompletedJob".to_string()));
}

#[tokio::test(start_paused = true)]
async fn an_active_job_gone_from_the_api_is_dropped() {
    let mut cj = cronjob("0 * * * *", "2026-03-01T00:00:00Z");
    let gone = job_of(&cj, "2026-03-01T01:00:00Z", None);
    cj.status = Some(CronJobStatus {
        active: Some(vec![reference(&gone)]),
        last_schedule_time: Some(Time(at("2026-03-01T01:00:00Z"))),
        ..Default::default()
    });
    let s = setup(&cj, vec![], "2026-03-01T01:30:00Z");
    reconcile(Arc::new(cj), s.ctx.clone()).await.unwrap();
    assert_eq!(s.stored().status.unwrap().active, None);
    assert_eq!(s.reasons(), ["MissingJob"]);
}

#[tokio::test(start_paused = true)]
async fn the_schedule_runs_in_the_time_zone() {
    let mut cj = cronjob("0 9 * * *", "2026-01-10T00:00:00Z");
    cj.spec.as_mut().unwrap().time_zone = Some("Europe/Berlin".into());
    // 09:00 in Berlin in January is 08:00 UTC.
    let s = setup(&cj, vec![], "2026-01-10T08:00:20Z");
    reconcile(Arc::new(cj), s.ctx.clone()).await.unwrap();
    let jobs = s.jobs();
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        jobs[0].metadata.annotations.as_ref().unwrap()[SCHEDULED_TIMESTAMP],
        "2026-01-10T09:00:00+01:00"
    );
}

#[tokio::test(start_paused = true)]
async fn an_unparseable_schedule_is_reported_not_retried() {
    let cj = cronjob("every day", "2026-03-01T00:00:00Z");
    let s = setup(&cj, vec![], "2026-03-01T01:00:00Z");
    let action = reconcile(Arc::new(cj), s.ctx.clone()).await.unwrap();
    assert_eq!(action, Action::await_change());
    assert_eq!(s.reasons(), ["UnparseableSchedule"]);
    assert!(s.jobs().is_empty());
}

#[test]
fn many_missed_times_give_the_latest() {
    let schedule = Schedule::parse("* * * * *").unwrap();
    let (t, n) = most_recent(
        &schedule,
        &jiff::tz::TimeZone::UTC,
        at("2026-03-01T00:00:00Z"),
        at("2026-03-02T12:34:56Z"),
    );
    assert_eq!(t, Some(at("2026-03-02T12:34:00Z")));
    assert!(n > TOO_MANY_MISSED);
    let (t, n) = most_recent(
        &schedule,
        &jiff::tz::TimeZone::UTC,
        at("2026-03-02T12:31:30Z"),
        at("2026-03-02T12:34:56Z"),
    );
    assert_eq!((t, n), (Some(at("2026-03-02T12:34:00Z")), 3));
}

#[test]
fn the_job_name_and_body_follow_kubernetes() {
    let cj = cronjob("*/5 * * * *", "2026-03-01T10:02:00Z");
    let job = job_for(&cj, at("2026-03-01T10:05:00Z"), &jiff::tz::TimeZone::UTC);
    let v = serde_json::to_value(&job).unwrap();
    assert_eq!(v["metadata"]["name"], json!("report-29539325"));
    assert_eq!(
        v["metadata"]["ownerReferences"][0]["controller"],
        json!(true)
    );
    assert_eq!(
        v["metadata"]["ownerReferences"][0]["blockOwnerDeletion"],
        json!(true)
    );
    assert_eq!(
        v["spec"]["template"]["spec"]["restartPolicy"],
        json!("OnFailure")
    );
}
