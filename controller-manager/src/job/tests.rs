//! Unit tests of the Job reconcile against in-memory stores and the fake API, with paused
//! time. The pod cache is refilled from the fake API between syncs, as the informer would.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodStatus, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher::Event;

use super::*;
use crate::events::Recorded;
use crate::fake::{FakeApi, store_of};
use crate::podutil::controller_ref;
use status::{COMPLETE, FAILED, FAILURE_TARGET, SUCCESS_CRITERIA_MET, SUSPENDED};

fn labels() -> BTreeMap<String, String> {
    [(
        "batch.kubernetes.io/controller-uid".to_string(),
        "job-uid".to_string(),
    )]
    .into()
}

fn job(completions: Option<i32>, parallelism: i32) -> Job {
    Job {
        metadata: ObjectMeta {
            name: Some("pi".into()),
            namespace: Some("ns".into()),
            uid: Some("job-uid".into()),
            ..Default::default()
        },
        spec: Some(JobSpec {
            completions,
            parallelism: Some(parallelism),
            backoff_limit: Some(6),
            completion_mode: Some("NonIndexed".into()),
            suspend: Some(false),
            selector: Some(LabelSelector {
                match_labels: Some(labels()),
                ..Default::default()
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels()),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    containers: vec![Container {
                        name: "pi".into(),
                        image: Some("busybox".into()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    }
}

struct Setup {
    fake: FakeApi,
    ctx: Arc<Ctx>,
    pod_writer: Writer<Pod>,
    events: Arc<std::sync::Mutex<Vec<Recorded>>>,
}

fn setup(job: &Job) -> Setup {
    let fake = FakeApi::new();
    fake.insert("batch/v1/jobs", job);
    let (pod_store, pod_writer) = store_of(vec![]);
    let (job_store, _) = store_of(vec![job.clone()]);
    let (recorder, events) = Recorder::memory(NAME);
    let ctx = Arc::new(Ctx {
        client: fake.client(),
        pods: pod_store,
        jobs: job_store,
        expectations: Arc::new(Expectations::default()),
        finalizers: Arc::new(FinalizerExpectations::default()),
        backoff: Mutex::default(),
        recorder,
        clock: Clock::new(),
    });
    Setup {
        fake,
        ctx,
        pod_writer,
        events,
    }
}

impl Setup {
    /// The Job as the API holds it.
    fn job(&self) -> Arc<Job> {
        Arc::new(self.fake.get("batch/v1/jobs", "ns", "pi").unwrap())
    }

    fn pods(&self) -> Vec<Pod> {
        self.fake.list("v1/pods")
    }

    /// The informer catches up: the cache holds what the API holds, and the changes lower the
    /// expectations.
    fn catch_up(&mut self) {
        let before: Vec<Arc<Pod>> = self.ctx.pods.state();
        let now = self.pods();
        for p in &now {
            let old = before
                .iter()
                .find(|o| o.metadata.uid == p.metadata.uid)
                .cloned();
            let change = match old {
                Some(old) => Change::Updated {
                    old,
                    new: Arc::new(p.clone()),
                },
                None => Change::Added(Arc::new(p.clone())),
            };
            observe(&self.ctx.expectations, &self.ctx.finalizers, &change);
        }
        for o in &before {
            if !now.iter().any(|p| p.metadata.uid == o.metadata.uid) {
                observe(
                    &self.ctx.expectations,
                    &self.ctx.finalizers,
                    &Change::Deleted(o.clone()),
                );
            }
        }
        self.pod_writer.apply_watcher_event(&Event::Init);
        for p in now {
            self.pod_writer.apply_watcher_event(&Event::InitApply(p));
        }
        self.pod_writer.apply_watcher_event(&Event::InitDone);
    }

    /// A kubelet reports a pod finished.
    fn finish(&self, name: &str, phase: &str) {
        let mut p: Pod = self.fake.get("v1/pods", "ns", name).unwrap();
        p.status = Some(PodStatus {
            phase: Some(phase.into()),
            ..Default::default()
        });
        self.fake.insert("v1/pods", &p);
    }

    fn pod_names(&self) -> Vec<String> {
        self.pods()
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect()
    }

    fn reasons(&self) -> Vec<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.reason.clone())
            .collect()
    }
}

fn cond<'a>(job: &'a Job, type_: &str) -> Option<&'a k8s_openapi::api::batch::v1::JobCondition> {
    status::condition(job, type_)
}

#[tokio::test(start_paused = true)]
async fn runs_parallelism_pods_until_completions_succeeded_counting_each_once() {
    let mut s = setup(&job(Some(3), 2));
    reconcile(s.job(), s.ctx.clone()).await.unwrap();
    let pods = s.pods();
    assert_eq!(pods.len(), 2, "parallelism 2");
    for p in &pods {
        assert!(p.metadata.name.as_deref().unwrap().starts_with("pi-"));
        assert_eq!(
            p.metadata.finalizers.as_deref(),
            Some(&[TRACKING_FINALIZER.to_string()][..])
        );
        let owner = controller_of(&p.metadata).unwrap();
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("Job", "job-uid")
        );
        assert_eq!(owner.block_owner_deletion, Some(true));
        assert_eq!(p.metadata.labels, Some(labels()));
    }
    let st = s.job().status.clone().unwrap();
    assert_eq!(st.active, Some(2));
    assert!(st.start_time.is_some());
    assert_eq!(st.ready, Some(0));

    // Before the cache sees the pods, nothing more is created.
    reconcile(s.job(), s.ctx.clone()).await.unwrap();
    assert_eq!(s.pods().len(), 2, "no double creates");

    // One succeeds: counted, its finalizer removed, and one more pod (3 - 1 = 2 wanted).
    s.catch_up();
    let first = s.pod_names()[0].clone();
    s.finish(&first, "Succeeded");
    s.catch_up();
    reconcile(s.job(), s.ctx.clone()).await.unwrap();
    let done: Pod = s.fake.get("v1/pods", "ns", &first).unwrap();
    assert!(!has_tracking_finalizer(&done), "counted, so released");
    let st = s.job().status.clone().unwrap();
    assert_eq!(st.succeeded, Some(1));
    assert!(status::Uncounted::of(&st).is_empty());
    assert_eq!(s.pods().len(), 3);
    assert_eq!(st.active, Some(2));

    // A sync on the stale cache (the finalizer still shown) does not count it again.
    reconcile(s.job(), s.ctx.clone()).await.unwrap();
    assert_eq!(s.job().status.clone().unwrap().succeeded, Some(1));

    // The succeeded pod is garbage-collected: still counted.
    s.fake.remove("v1/pods", "ns", &first);
    s.catch_up();
    for name in s.pod_names() {
        s.finish(&name, "Succeeded");
    }
    s.catch_up();
    reconcile(s.job(), s.ctx.clone()).await.unwrap();
    let j = s.job();
    let st = j.status.clone().unwrap();
    assert_eq!(st.succeeded, Some(3));
    assert_eq!(st.active, None);
    assert_eq!(
        cond(&j, SUCCESS_CRITERIA_MET).unwrap().reason.as_deref(),
        Some("CompletionsReached")
    );
    let complete = cond(&j, COMPLETE).unwrap();
    assert_eq!(complete.status, "True");
    assert_eq!(complete.reason.as_deref(), Some("CompletionsReached"));
    assert!(st.completion_time.is_some());
    assert!(s.pods().iter().all(|p| !has_tracking_finalizer(p)));
    assert_eq!(s.pods().len(), 2, "no pod beyond the completions");
    assert_eq!(
        s.reasons()
            .iter()
            .filter(|r| *r == "SuccessfulCreate")
            .count(),
        3
    );
    assert!(s.reasons().contains(&"Completed".to_string()));
    // A finished Job is left alone.
    s.fake.clear_requests();
    reconcile(s.job(), s.ctx.clone()).await.unwrap();
    assert!(s.fake.requests().is_empty());
}

#[tokio::test(start_paused = true)]
async fn exceeding_the_backoff_limit_fails_the_job_and_deletes_its_active_pods() {
    let mut j = job(Some(4), 2);
    j.spec.as_mut().unwrap().backoff_limit = Some(0);
    let mut s = setup(&j);
    reconcile(s.job(), s.ctx.clone()).await.unwrap();
    s.catch_up();
    let names = s.pod_names();
    s.finish(&names[0], "Failed");
    s.catch_up();
    reconcile(s.job(), s.ctx.clone()).await.unwrap();
    let j = s.job();
    let target = cond(&j, FAILURE_TARGET).unwrap();
    assert_eq!(target.reason.as_deref(), Some("BackoffLimitExceeded"));
    assert!(cond(&j, FAILED).is_none(), "a pod is still terminating");
    let st = j.status.clone().unwrap();
    assert_eq!(st.failed, Some(2), "the failed pod and the one stopped");
    assert_eq!(st.terminating, Some(1));
    assert_eq!(s.fake.count("DELETE", &names[1]), 1);
    // Counted: no finalizer holds either pod, so the deleted one is gone.
    assert_eq!(s.pod_names(), vec![names[0].clone()]);

    s.catch_up();
    reconcile(s.job(), s.ctx.clone()).await.unwrap();
    let j = s.job();
    let failed = cond(&j, FAILED).unwrap();
    assert_eq!(failed.status, "True");
    assert_eq!(failed.reason.as_deref(), Some("BackoffLimitExceeded"));
    assert_eq!(
        failed.message.as_deref(),
        Some("Job has reached the specified backoff limit")
    );
    let st = j.status.clone().unwrap();
    assert_eq!(
        (st.failed, st.terminating, st.active),
        (Some(2), Some(0), None)
    );
    assert!(st.completion_time.is_none());
    assert!(s.reasons().contains(&"BackoffLimitExceeded".to_string()));
}

#[tokio::test(start_paused = true)]
async fn failed_pods_are_replaced_after_the_backoff() {
    let mut s = setup(&job(Some(1), 1));
    reconcile(s.job(), s.ctx.clone()).await.unwrap();
    s.catch_up();
    let first = s.pod_names()[0].clone();
    s.finish(&first, "Failed");
    s.catch_up();
    let action = reconcile(s.job(), s.ctx.clone()).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(10)));
    assert_eq!(s.pods().len(), 1, "no replacement yet");
    assert_eq!(s.job().status.clone().unwrap().failed, Some(1));
    tokio::time::advance(Duration::from_secs(10)).await;
    s.catch_up();
    reconcile(s.job(), s.ctx.clone()).await.unwrap();
    assert_eq!(s.pods().len(), 2, "replaced after 10 s");
    assert_eq!(
        s.job().status.clone().unwrap().failed,
        Some(1),
        "counted once"
    );
}

#[tokio::test(start_paused = true)]
async fn the_active_deadline_fails_the_job() {
    let mut j = job(Some(1), 1);
    j.spec.as_mut().unwrap().active_deadline_seconds = Some(30);
    let mut s = setup(&j);
    let action = reconcile(s.job(), s.ctx.clone()).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(30)));
    s.catch_up();
    tokio::time::advance(Duration::from_secs(30)).await;
    reconcile(s.job(), s.ctx.clone()).await.unwrap();
    let j = s.job();
    assert_eq!(
        cond(&j, FAILURE_TARGET).unwrap().reason.as_deref(),
        Some("DeadlineExceeded")
    );
    assert!(s.pods().is_empty(), "the running pod is deleted");
    s.catch_up();
    reconcile(s.job(), s.ctx.clone()).await.unwrap();
    let j = s.job();
    let failed = cond(&j, FAILED).unwrap();
    assert_eq!(failed.reason.as_deref(), Some("DeadlineExceeded"));
    assert_eq!(
        failed.message.as_deref(),
        Some("Job was active longer than specified deadline")
    );
    assert_eq!(j.status.clone().unwrap().failed, Some(1));
}

#[tokio::test(start_paused = true)]
async fn suspending_deletes_active_pods_without_counting_them_and_resuming_restarts() {
    let mut s = setup(&job(Some(2), 2));
    reconcile(s.job(), s.ctx.clone()).await.unwrap();
    s.catch_up();
    let started = s.job().status.clone().unwrap().start_time.unwrap();
    let mut j = (*s.job()).clone();
    j.spec.as_mut().unwrap().suspend = Some(true);
    s.fake.insert("batch/v1/jobs", &j);
    reconcile(s.job(), s.ctx.clone()).await.unwrap();
    assert!(s.pods().is_empty(), "finalizers removed, pods deleted");
    let j = s.job();
    let suspended = cond(&j, SUSPENDED).unwrap();
    assert_eq!(
        (suspended.status.as_str(), suspended.reason.as_deref()),
        ("True", Some("JobSuspended"))
    );
    let st = j.status.clone().unwrap();
    assert_eq!((st.active, st.failed), (None, None), "not failures");
    s.catch_up();
    reconcile(s.job(), s.ctx.clone()).await.unwrap();
    assert!(s.pods().is_empty(), "no pods while suspended");

    tokio::time::advance(Duration::from_secs(5)).await;
    let mut j = (*s.job()).clone();
    j.spec.as_mut().unwrap().suspend = Some(false);
    s.fake.insert("batch/v1/jobs", &j);
    reconcile(s.job(), s.ctx.clone()).await.unwrap();
    assert_eq!(s.pods().len(), 2);
    let j = s.job();
    let resumed = cond(&j, SUSPENDED).unwrap();
    assert_eq!(
        (resumed.status.as_str(), resumed.reason.as_deref()),
        ("False", Some("JobResumed"))
    );
    assert!(j.status.clone().unwrap().start_time.unwrap().0 > started.0);
    let reasons = s.reasons();
    assert!(reasons.contains(&"Suspended".to_string()) && reasons.contains(&"Resumed".to_string()));
}

#[tokio::test(start_paused = true)]
async fn a_job_created_suspended_waits_without_a_start_time() {
    let mut j = job(Some(1), 1);
    j.spec.as_mut().unwrap().suspend = Some(true);
    j.spec.as_mut().unwrap().active_deadline_seconds = Some(5);
    let s = setup(&j);
    let action = reconcile(s.job(), s.ctx.clone()).await.unwrap();
    assert_eq!(
        action,
        Action::await_change(),
        "no deadline while suspended"
    );
    assert!(s.pods().is_empty());
    let j = s.job();
    let st = j.status.clone().unwrap();
    assert!(st.start_time.is_none());
    assert_eq!(cond(&j, SUSPENDED).unwrap().status, "True");
    assert_eq!(s.reasons(), ["Suspended"]);
}

#[tokio::test(start_paused = true)]
async fn matching_orphans_are_adopted_with_the_tracking_finalizer() {
    let mut s = setup(&job(Some(1), 1));
    let orphan = Pod {
        metadata: ObjectMeta {
            name: Some("stray".into()),
            namespace: Some("ns".into()),
            labels: Some(labels()),
            ..Default::default()
        },
        spec: Some(PodSpec::default()),
        status: Some(PodStatus {
            phase: Some("Running".into()),
            ..Default::default()
        }),
    };
    s.fake.insert("v1/pods", &orphan);
    s.catch_up();
    reconcile(s.job(), s.ctx.clone()).await.unwrap();
    let pods = s.pods();
    assert_eq!(pods.len(), 1, "the adopted pod is the one wanted");
    let p = &pods[0];
    assert_eq!(controller_of(&p.metadata).unwrap().uid, "job-uid");
    assert_eq!(
        p.metadata.finalizers.as_deref(),
        Some(&[TRACKING_FINALIZER.to_string()][..])
    );
    assert_eq!(s.job().status.clone().unwrap().active, Some(1));
}

#[test]
fn orphaned_tracking_finalizers_are_recognised() {
    let j = job(Some(1), 1);
    let (jobs, _) = store_of(vec![j.clone()]);
    let mut pod = Pod::default();
    pod.metadata.namespace = Some("ns".into());
    assert_eq!(
        finalizer_is_orphaned(&jobs, &pod),
        Orphaned::No,
        "no finalizer"
    );
    pod.metadata.finalizers = Some(vec![TRACKING_FINALIZER.into()]);
    assert_eq!(
        finalizer_is_orphaned(&jobs, &pod),
        Orphaned::Yes,
        "no controller"
    );
    pod.metadata.owner_references = Some(vec![controller_ref(&j)]);
    assert_eq!(
        finalizer_is_orphaned(&jobs, &pod),
        Orphaned::No,
        "its Job runs"
    );
    let mut other = controller_ref(&j);
    other.uid = "older-job".into();
    pod.metadata.owner_references = Some(vec![other]);
    assert_eq!(
        finalizer_is_orphaned(&jobs, &pod),
        Orphaned::Unknown {
            name: "pi".into(),
            uid: "older-job".into()
        },
        "not the cached Job: ask the API"
    );
    let mut done = j.clone();
    done.status = Some(k8s_openapi::api::batch::v1::JobStatus {
        conditions: Some(vec![status::new_condition(
            COMPLETE,
            "",
            "",
            jiff::Timestamp::now(),
        )]),
        ..Default::default()
    });
    let (jobs, _) = store_of(vec![done]);
    pod.metadata.owner_references = Some(vec![controller_ref(&j)]);
    assert_eq!(
        finalizer_is_orphaned(&jobs, &pod),
        Orphaned::Yes,
        "its Job finished"
    );
}

#[tokio::test(start_paused = true)]
async fn indexed_jobs_run_one_pod_per_index_and_list_the_completed_ones() {
    let mut j = job(Some(3), 2);
    j.spec.as_mut().unwrap().completion_mode = Some("Indexed".into());
    let mut s = setup(&j);
    reconcile(s.job(), s.ctx.clone()).await.unwrap();
    let index =
        |p: &Pod| p.metadata.annotations.as_ref().unwrap()[indexed::COMPLETION_INDEX].clone();
    let mut indexes: Vec<String> = s.pods().iter().map(index).collect();
    indexes.sort();
    assert_eq!(indexes, ["0", "1"], "the first pending indexes");
    for p in s.pods() {
        let i = index(&p);
        assert!(p.metadata.name.unwrap().starts_with(&format!("pi-{i}-")));
        assert_eq!(p.metadata.labels.unwrap()[indexed::COMPLETION_INDEX], i);
        assert_eq!(p.spec.unwrap().hostname, Some(format!("pi-{i}")));
    }
    s.catch_up();
    let by_index = |s: &Setup, i: &str| {
        s.pods()
            .into_iter()
            .find(|p| index(p) == i)
            .unwrap()
            .metadata
            .name
            .unwrap()
    };
    s.finish(&by_index(&s, "1"), "Succeeded");
    s.catch_up();
    reconcile(s.job(), s.ctx.clone()).await.unwrap();
    let st = s.job().status.clone().unwrap();
    assert_eq!(st.completed_indexes.as_deref(), Some("1"));
    assert_eq!(st.succeeded, Some(1));
    assert!(
        status::Uncounted::of(&st).is_empty(),
        "indexes count, not UIDs"
    );
    assert!(
        s.pods().iter().any(|p| index(p) == "2"),
        "index 2 started in place of 1"
    );

    // A failed index is run again.
    s.catch_up();
    s.finish(&by_index(&s, "0"), "Failed");
    s.catch_up();
    reconcile(s.job(), s.ctx.clone()).await.unwrap();
    assert_eq!(s.job().status.clone().unwrap().failed, Some(1));
    tokio::time::advance(Duration::from_secs(10)).await;
    s.catch_up();
    reconcile(s.job(), s.ctx.clone()).await.unwrap();
    let zeros = s.pods().into_iter().filter(|p| index(p) == "0").count();
    assert_eq!(zeros, 2, "the failed pod and its replacement");

    s.catch_up();
    for p in s.pods() {
        if p.status.as_ref().and_then(|st| st.phase.as_deref()) != Some("Failed") {
            s.finish(p.metadata.name.as_deref().unwrap(), "Succeeded");
        }
    }
    s.catch_up();
    reconcile(s.job(), s.ctx.clone()).await.unwrap();
    let j = s.job();
    let st = j.status.clone().unwrap();
    assert_eq!(st.completed_indexes.as_deref(), Some("0-2"));
    assert_eq!(st.succeeded, Some(3));
    assert_eq!(cond(&j, COMPLETE).unwrap().status, "True");
}
