//! The Job, CronJob and ttl-after-finished controllers against a real API server, with the
//! garbage collector, and the real kubectl: a stand-in kubelet runs each pod (Running, then the phase
//! the test chooses for it) through the status subresource.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use futures::StreamExt;
use k8s_openapi::api::batch::v1::{CronJob, Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateTerminated, ContainerStatus, Pod, PodSpec, PodStatus,
    PodTemplateSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};

const T: Duration = Duration::from_secs(30);
const TRACKING: &str = "batch.kubernetes.io/job-tracking";

/// What the stand-in kubelet does with the n-th pod it sees (0-based): the phase it ends in,
/// or `None` to keep it running.
type Outcome = Arc<dyn Fn(usize) -> Option<&'static str> + Send + Sync>;

/// Runs the pods of a namespace: Running after `delay`, then after another `delay` the phase
/// `outcome` picks. Also tracks the most pods running at once.
struct JobKubelet {
    max_running: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl JobKubelet {
    fn start(client: &kube::Client, ns: &str, delay: Duration, outcome: Outcome) -> Self {
        let api: Api<Pod> = Api::namespaced(client.clone(), ns);
        let max_running = Arc::new(AtomicUsize::new(0));
        let running = Arc::new(Mutex::new(HashSet::<String>::new()));
        let max = max_running.clone();
        let task = tokio::spawn(async move {
            let mut seen = HashSet::<String>::new();
            let mut events = watcher(api.clone(), watcher::Config::default())
                .default_backoff()
                .boxed();
            while let Some(ev) = events.next().await {
                let pod = match ev {
                    Ok(watcher::Event::Apply(p)) | Ok(watcher::Event::InitApply(p)) => p,
                    Ok(watcher::Event::Delete(p)) => {
                        running
                            .lock()
                            .unwrap()
                            .remove(p.metadata.uid.as_deref().unwrap_or_default());
                        continue;
                    }
                    _ => continue,
                };
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                if pod.metadata.deletion_timestamp.is_some() {
                    running.lock().unwrap().remove(&uid);
                    continue;
                }
                if !seen.insert(uid.clone()) {
                    continue;
                }
                let n = seen.len() - 1;
                let end = outcome(n);
                let api = api.clone();
                let name = pod.metadata.name.clone().unwrap_or_default();
                let running = running.clone();
                let max = max.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    if set_phase(&api, &name, "Running").await {
                        let now = {
                            let mut r = running.lock().unwrap();
                            r.insert(uid.clone());
                            r.len()
                        };
                        max.fetch_max(now, Ordering::SeqCst);
                    }
                    let Some(end) = end else { return };
                    tokio::time::sleep(delay).await;
                    running.lock().unwrap().remove(&uid);
                    set_phase(&api, &name, end).await;
                });
            }
        });
        Self { max_running, task }
    }
}

impl Drop for JobKubelet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reports a pod's phase (with a terminated container for Succeeded and Failed). False if the
/// pod is gone or being deleted.
async fn set_phase(api: &Api<Pod>, name: &str, phase: &str) -> bool {
    for _ in 0..10 {
        let Ok(Some(mut pod)) = api.get_opt(name).await else {
            return false;
        };
        if pod.metadata.deletion_timestamp.is_some() {
            return false;
        }
        let st = pod.status.get_or_insert_with(PodStatus::default);
        st.phase = Some(phase.into());
        let exit = match phase {
            "Succeeded" => Some(0),
            "Failed" => Some(1),
            _ => None,
        };
        st.container_statuses = Some(vec![ContainerStatus {
            name: "work".into(),
            image: "busybox:1.35".into(),
            image_id: String::new(),
            ready: exit.is_none(),
            state: Some(ContainerState {
                terminated: exit.map(|code| ContainerStateTerminated {
                    exit_code: code,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }]);
        match api.replace_status(name, &PostParams::default(), &pod).await {
            Ok(_) => return true,
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(_) => return false,
        }
    }
    false
}

fn job(name: &str, completions: i32, parallelism: i32) -> Job {
    Job {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: Some(JobSpec {
            completions: Some(completions),
            parallelism: Some(parallelism),
            template: PodTemplateSpec {
                metadata: None,
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    termination_grace_period_seconds: Some(0),
                    containers: vec![Container {
                        name: "work".into(),
                        image: Some("busybox:1.35".into()),
                        command: Some(vec!["true".into()]),
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

async fn job_condition(api: &Api<Job>, name: &str, type_: &str) -> Job {
    wait_for(&format!("job {name} to be {type_}"), T, || async {
        let j = api.get(name).await.ok()?;
        j.status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .any(|c| c.type_ == type_ && c.status == "True")
            .then_some(j)
    })
    .await
}

async fn pods_of(c: &kube::Client, ns: &str, job: &str) -> Vec<Pod> {
    Api::<Pod>::namespaced(c.clone(), ns)
        .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}")))
        .await
        .unwrap()
        .items
}

fn reason_of(j: &Job, type_: &str) -> Option<String> {
    j.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)?
        .reason
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_runs_its_completions_two_at_a_time_and_kubectl_sees_it_complete() {
    let cluster = Cluster::start().await;
    let c = &cluster.client;
    cluster.namespace("batch").await;
    let kubelet = JobKubelet::start(
        c,
        "batch",
        Duration::from_millis(300),
        Arc::new(|_| Some("Succeeded")),
    );
    let api: Api<Job> = Api::namespaced(c.clone(), "batch");
    api.create(&PostParams::default(), &job("pi", 3, 2))
        .await
        .unwrap();
    // Pods carry the tracking finalizer while they run.
    let first = wait_for("the first pods", T, || async {
        let pods = pods_of(c, "batch", "pi").await;
        (!pods.is_empty()).then_some(pods)
    })
    .await;
    let owner = first[0].metadata.owner_references.clone().unwrap();
    assert_eq!(owner[0].kind, "Job");
    assert_eq!(owner[0].controller, Some(true));
    assert_eq!(owner[0].block_owner_deletion, Some(true));

    let out = cluster
        .kubectl(&[
            "wait",
            "-n",
            "batch",
            "--for=condition=complete",
            "job/pi",
            "--timeout=30s",
        ])
        .await;
    assert!(out.contains("job.batch/pi condition met"), "{out}");
    let j = api.get("pi").await.unwrap();
    let st = j.status.clone().unwrap();
    assert_eq!(st.succeeded, Some(3));
    assert_eq!(st.failed, None);
    assert_eq!(st.active, None);
    assert!(st.start_time.is_some() && st.completion_time.is_some());
    assert_eq!(
        reason_of(&j, "SuccessCriteriaMet").as_deref(),
        Some("CompletionsReached")
    );
    let pods = pods_of(c, "batch", "pi").await;
    assert_eq!(pods.len(), 3, "exactly the completions");
    for p in &pods {
        assert!(
            !p.metadata
                .finalizers
                .iter()
                .flatten()
                .any(|f| f == TRACKING),
            "counted pods are released"
        );
    }
    let max = kubelet.max_running.load(Ordering::SeqCst);
    assert!(
        (1..=2).contains(&max),
        "never more than parallelism running: {max}"
    );

    // The Table kubectl prints comes from the API server.
    let out = cluster.kubectl(&["get", "jobs", "-n", "batch"]).await;
    let mut lines = out.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]);
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(&row[..3], ["pi", "Complete", "3/3"], "{out}");

    // Deleting a succeeded pod does not lose its count.
    Api::<Pod>::namespaced(c.clone(), "batch")
        .delete(
            pods[0].metadata.name.as_deref().unwrap(),
            &DeleteParams::default(),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        api.get("pi").await.unwrap().status.unwrap().succeeded,
        Some(3)
    );
    assert_eq!(pods_of(c, "batch", "pi").await.len(), 2, "not replaced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failures_past_the_backoff_limit_or_the_deadline_fail_the_job_and_stop_its_pods() {
    let cluster = Cluster::start().await;
    let c = &cluster.client;
    cluster.namespace("fail").await;
    // The first pod fails; every other one runs until stopped.
    let _kubelet = JobKubelet::start(
        c,
        "fail",
        Duration::from_millis(200),
        Arc::new(|n| (n == 0).then_some("Failed")),
    );
    let api: Api<Job> = Api::namespaced(c.clone(), "fail");
    let mut j = job("flaky", 4, 2);
    j.spec.as_mut().unwrap().backoff_limit = Some(0);
    api.create(&PostParams::default(), &j).await.unwrap();
    let j = job_condition(&api, "flaky", "Failed").await;
    assert_eq!(
        reason_of(&j, "Failed").as_deref(),
        Some("BackoffLimitExceeded")
    );
    assert_eq!(
        reason_of(&j, "FailureTarget").as_deref(),
        Some("BackoffLimitExceeded")
    );
    let st = j.status.unwrap();
    assert_eq!(st.active, None);
    assert!(st.failed.unwrap_or(0) >= 1);
    assert!(st.completion_time.is_none());
    let left: Vec<Pod> = pods_of(c, "fail", "flaky").await;
    assert!(
        left.iter()
            .all(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed")),
        "only the failed pod is left: {:?}",
        left.iter().map(|p| &p.metadata.name).collect::<Vec<_>>()
    );

    // A deadline: pods that never finish are stopped after 2 s.
    let mut j = job("slow", 1, 1);
    j.spec.as_mut().unwrap().active_deadline_seconds = Some(2);
    api.create(&PostParams::default(), &j).await.unwrap();
    wait_for("a running pod", T, || async {
        (!pods_of(c, "fail", "slow").await.is_empty()).then_some(())
    })
    .await;
    let j = job_condition(&api, "slow", "Failed").await;
    assert_eq!(reason_of(&j, "Failed").as_deref(), Some("DeadlineExceeded"));
    wait_for("the slow pod to be gone", T, || async {
        pods_of(c, "fail", "slow").await.is_empty().then_some(())
    })
    .await;
    let out = cluster
        .kubectl(&["get", "job", "slow", "-n", "fail", "--no-headers"])
        .await;
    assert!(out.contains(" Failed ") && out.contains("0/1"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn suspend_resume_garbage_collection_adoption_and_ttl() {
    let cluster = Cluster::start().await;
    let c = &cluster.client;
    cluster.namespace("ops").await;
    // Pods of "sleepy" run until stopped; the others succeed.
    let _kubelet = JobKubelet::start(c, "ops", Duration::from_millis(200), Arc::new(|_| None));
    let api: Api<Job> = Api::namespaced(c.clone(), "ops");

    // Suspend deletes the running pods; resume starts new ones.
    api.create(&PostParams::default(), &job("sleepy", 2, 2))
        .await
        .unwrap();
    wait_for("2 pods", T, || async {
        (pods_of(c, "ops", "sleepy").await.len() == 2).then_some(())
    })
    .await;
    let suspend = |on: bool| serde_json::json!({"spec": {"suspend": on}});
    api.patch(
        "sleepy",
        &PatchParams::default(),
        &Patch::Merge(&suspend(true)),
    )
    .await
    .unwrap();
    let j = job_condition(&api, "sleepy", "Suspended").await;
    assert_eq!(reason_of(&j, "Suspended").as_deref(), Some("JobSuspended"));
    wait_for("the suspended job's pods to be gone", T, || async {
        pods_of(c, "ops", "sleepy").await.is_empty().then_some(())
    })
    .await;
    let st = api.get("sleepy").await.unwrap().status.unwrap();
    assert_eq!(
        (st.active, st.failed),
        (None, None),
        "stopped pods are no failures"
    );
    api.patch(
        "sleepy",
        &PatchParams::default(),
        &Patch::Merge(&suspend(false)),
    )
    .await
    .unwrap();
    let pods = wait_for("2 new pods", T, || async {
        let pods = pods_of(c, "ops", "sleepy").await;
        (pods.len() == 2).then_some(pods)
    })
    .await;
    assert!(pods.iter().all(|p| p.metadata.deletion_timestamp.is_none()));

    // Deleting the Job deletes its pods (the garbage collector; their tracking finalizers are
    // released once the Job is gone).
    api.delete("sleepy", &DeleteParams::background())
        .await
        .unwrap();
    wait_for("the deleted job's pods to be gone", T, || async {
        pods_of(c, "ops", "sleepy").await.is_empty().then_some(())
    })
    .await;

    // An orphan pod matching a Job's (manual) selector is adopted and is its one completion.
    let labels: BTreeMap<String, String> = [("app".to_string(), "adoptee".to_string())].into();
    let mut orphan = job("x", 1, 1).spec.unwrap().template;
    let pods_api: Api<Pod> = Api::namespaced(c.clone(), "ops");
    pods_api
        .create(
            &PostParams::default(),
            &Pod {
                metadata: ObjectMeta {
                    name: Some("stray".into()),
                    labels: Some(labels.clone()),
                    ..Default::default()
                },
                spec: orphan.spec.take(),
                status: None,
            },
        )
        .await
        .unwrap();
    let mut j = job("adopter", 1, 1);
    let spec = j.spec.as_mut().unwrap();
    spec.manual_selector = Some(true);
    spec.selector = Some(LabelSelector {
        match_labels: Some(labels.clone()),
        ..Default::default()
    });
    spec.template.metadata = Some(ObjectMeta {
        labels: Some(labels),
        ..Default::default()
    });
    api.create(&PostParams::default(), &j).await.unwrap();
    let stray = wait_for("the orphan to be adopted", T, || async {
        let p = pods_api.get("stray").await.ok()?;
        let owner = p.metadata.owner_references.as_ref()?.first()?.clone();
        (owner.kind == "Job" && owner.name == "adopter").then_some(p)
    })
    .await;
    assert!(
        stray
            .metadata
            .finalizers
            .iter()
            .flatten()
            .any(|f| f == TRACKING),
        "adopted with the tracking finalizer"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all = pods_api
        .list(&ListParams::default().labels("app=adoptee"))
        .await
        .unwrap();
    assert_eq!(all.items.len(), 1, "no pod created beside the adopted one");
    assert!(set_phase(&pods_api, "stray", "Succeeded").await);
    job_condition(&api, "adopter", "Complete").await;

    // ttlSecondsAfterFinished set on the finished Job: it and its pod are deleted a second
    // after it finished. (Set now, not at creation: the Job would be gone before this test
    // saw it Complete — condition times have whole seconds.)
    api.patch(
        "adopter",
        &PatchParams::default(),
        &Patch::Merge(&serde_json::json!({"spec": {"ttlSecondsAfterFinished": 1}})),
    )
    .await
    .unwrap();
    wait_for(
        "the finished job to be deleted after its TTL",
        T,
        || async { api.get_opt("adopter").await.ok()?.is_none().then_some(()) },
    )
    .await;
    wait_for("its pod to be gone", T, || async {
        pods_api
            .get_opt("stray")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_indexed_job_completes_every_index_once() {
    let cluster = Cluster::start().await;
    let c = &cluster.client;
    cluster.namespace("idx").await;
    let _kubelet = JobKubelet::start(
        c,
        "idx",
        Duration::from_millis(200),
        Arc::new(|_| Some("Succeeded")),
    );
    let api: Api<Job> = Api::namespaced(c.clone(), "idx");
    let mut j = job("shards", 3, 3);
    j.spec.as_mut().unwrap().completion_mode = Some("Indexed".into());
    api.create(&PostParams::default(), &j).await.unwrap();
    let j = job_condition(&api, "shards", "Complete").await;
    let st = j.status.unwrap();
    assert_eq!(st.completed_indexes.as_deref(), Some("0-2"));
    assert_eq!(st.succeeded, Some(3));
    let mut indexes: Vec<String> = pods_of(c, "idx", "shards")
        .await
        .iter()
        .map(|p| {
            let index = p.metadata.annotations.as_ref().unwrap()
                ["batch.kubernetes.io/job-completion-index"]
                .clone();
            let spec = p.spec.as_ref().unwrap();
            assert_eq!(spec.hostname, Some(format!("shards-{index}")));
            let env = spec.containers[0].env.as_ref().unwrap();
            assert!(env.iter().any(|e| e.name == "JOB_COMPLETION_INDEX"));
            index
        })
        .collect();
    indexes.sort();
    assert_eq!(indexes, ["0", "1", "2"]);
    let out = cluster
        .kubectl(&["get", "job", "shards", "-n", "idx", "--no-headers"])
        .await;
    assert!(out.contains("3/3"), "{out}");
}

/// A CronJob made by `kubectl create cronjob` runs its Job at the next minute (named after
/// the scheduled minute, owned by the CronJob); the status records the run and its success
/// once the Job completes; a history limit of 0 then deletes the finished Job.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cronjob_runs_its_job_at_the_scheduled_minute() {
    let cluster = Cluster::start().await;
    let c = &cluster.client;
    cluster.namespace("cron").await;
    let _kubelet = JobKubelet::start(
        c,
        "cron",
        Duration::from_millis(200),
        Arc::new(|_| Some("Succeeded")),
    );
    cluster
        .kubectl(&[
            "create",
            "cronjob",
            "tick",
            "-n",
            "cron",
            "--image=busybox:1.35",
            "--schedule=* * * * *",
            "--",
            "true",
        ])
        .await;
    let cronjobs: Api<CronJob> = Api::namespaced(c.clone(), "cron");
    let jobs: Api<Job> = Api::namespaced(c.clone(), "cron");
    // The first run is at the next minute: at most a minute away.
    let status = wait_for(
        "a successful scheduled run",
        Duration::from_secs(100),
        || async {
            let st = cronjobs.get("tick").await.ok()?.status?;
            (st.last_successful_time.is_some() && st.active.is_none()).then_some(st)
        },
    )
    .await;
    let scheduled = status.last_schedule_time.unwrap().0;
    assert_eq!(scheduled.as_second() % 60, 0, "on the minute");
    let listed = jobs.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(listed.len(), 1, "one run per minute");
    let job = &listed[0];
    assert_eq!(
        job.metadata.name.as_deref(),
        Some(format!("tick-{}", scheduled.as_second() / 60).as_str())
    );
    let owner = &job.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("CronJob", "tick")
    );
    assert_eq!(owner.controller, Some(true));
    assert_eq!(
        job.metadata.annotations.as_ref().unwrap()["batch.kubernetes.io/cronjob-scheduled-timestamp"],
        scheduled.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    );
    let row = cluster
        .kubectl(&["get", "cronjob", "tick", "-n", "cron", "--no-headers"])
        .await;
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        &cells[..9],
        ["tick", "*", "*", "*", "*", "*", "<none>", "False", "0"],
        "{row}"
    );

    // No history of successes kept: the finished Job goes.
    cronjobs
        .patch(
            "tick",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"successfulJobsHistoryLimit": 0}})),
        )
        .await
        .unwrap();
    let name = job.metadata.name.clone().unwrap();
    wait_for("the finished job to be deleted", T, || async {
        jobs.get_opt(&name).await.ok()?.is_none().then_some(())
    })
    .await;
}
