//! Unit tests of the ReplicaSet reconcile against in-memory stores and the fake API, with
//! paused time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::{
    Container, Pod, PodCondition, PodSpec, PodStatus, PodTemplateSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher::Event;

use super::*;
use crate::events::Recorded;
use crate::fake::{FakeApi, store_of};

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn replicaset(replicas: i32) -> ReplicaSet {
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("ns".into()),
            uid: Some("rs-uid".into()),
            generation: Some(1),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(labels(&[("app", "web")])),
                ..Default::default()
            },
            template: Some(PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(&[("app", "web"), ("tier", "front")])),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "app".into(),
                        image: Some("nginx".into()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }),
        status: None,
    }
}

struct PodOpts {
    owned: bool,
    node: Option<&'static str>,
    phase: &'static str,
    ready_since: Option<jiff::Timestamp>,
    labels: &'static [(&'static str, &'static str)],
}

impl Default for PodOpts {
    fn default() -> Self {
        Self {
            owned: true,
            node: Some("n1"),
            phase: "Running",
            ready_since: None,
            labels: &[("app", "web"), ("tier", "front")],
        }
    }
}

fn pod(name: &str, rs: &ReplicaSet, o: PodOpts) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            uid: Some(format!("uid-{name}")),
            labels: Some(labels(o.labels)),
            owner_references: o.owned.then(|| vec![controller_ref(rs)]),
            creation_timestamp: Some(Time(jiff::Timestamp::now())),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: o.node.map(String::from),
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some(o.phase.into()),
            conditions: o.ready_since.map(|t| {
                vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    last_transition_time: Some(Time(t)),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        }),
    }
}

struct Setup {
    fake: FakeApi,
    ctx: Arc<Ctx>,
    pod_writer: Writer<Pod>,
    events: Arc<std::sync::Mutex<Vec<Recorded>>>,
}

fn setup(rs: &ReplicaSet, pods: Vec<Pod>) -> Setup {
    let fake = FakeApi::new();
    let stored = fake.insert("apps/v1/replicasets", rs);
    for p in &pods {
        fake.insert("v1/pods", p);
    }
    let _ = stored;
    let (pod_store, pod_writer) = store_of(pods);
    let (rs_store, _) = store_of(vec![rs.clone()]);
    let (recorder, events) = Recorder::memory(NAME);
    let ctx = Arc::new(Ctx {
        client: fake.client(),
        pods: pod_store,
        replicasets: rs_store,
        expectations: Arc::new(Expectations::default()),
        recorder,
        clock: Clock::new(),
        burst_replicas: 500,
    });
    Setup {
        fake,
        ctx,
        pod_writer,
        events,
    }
}

/// The ReplicaSet as the fake API holds it (with its resourceVersion).
fn stored_rs(fake: &FakeApi) -> Arc<ReplicaSet> {
    Arc::new(fake.get("apps/v1/replicasets", "ns", "web").unwrap())
}

#[tokio::test(start_paused = true)]
async fn creates_missing_pods_once_until_the_cache_sees_them() {
    let rs = replicaset(3);
    let mut s = setup(&rs, vec![]);
    reconcile(stored_rs(&s.fake), s.ctx.clone()).await.unwrap();
    let created: Vec<Pod> = s.fake.list("v1/pods");
    assert_eq!(created.len(), 3);
    for p in &created {
        assert!(p.metadata.name.as_deref().unwrap().starts_with("web-"));
        assert_eq!(
            p.metadata.labels,
            Some(labels(&[("app", "web"), ("tier", "front")]))
        );
        let owner = controller_of(&p.metadata).unwrap();
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("ReplicaSet", "rs-uid")
        );
        assert_eq!(owner.block_owner_deletion, Some(true));
    }
    let reasons: Vec<String> = s
        .events
        .lock()
        .unwrap()
        .iter()
        .map(|e| e.reason.clone())
        .collect();
    assert_eq!(reasons, ["SuccessfulCreate"; 3]);
    assert_eq!(s.ctx.expectations.pending("ns/web"), (3, 0));

    // The watch has not delivered the pods yet: a second sync must not create more.
    reconcile(stored_rs(&s.fake), s.ctx.clone()).await.unwrap();
    assert_eq!(s.fake.list::<Pod>("v1/pods").len(), 3, "no double creates");

    // The informer delivers them: expectations are met and the cache is complete.
    for p in &created {
        observe(&s.ctx.expectations, &Change::Added(Arc::new(p.clone())));
        s.pod_writer.apply_watcher_event(&Event::Apply(p.clone()));
    }
    assert!(s.ctx.expectations.satisfied("ns/web"));
    s.fake.clear_requests();
    reconcile(stored_rs(&s.fake), s.ctx.clone()).await.unwrap();
    assert_eq!(s.fake.count("POST", "/pods"), 0);
    let st = stored_rs(&s.fake).status.clone().unwrap();
    assert_eq!(st.replicas, 3);
    assert_eq!(st.fully_labeled_replicas, Some(3));
    assert_eq!(st.ready_replicas, Some(0));
    assert_eq!(st.observed_generation, Some(1));
}

#[tokio::test(start_paused = true)]
async fn a_failing_template_fails_once_not_a_thousand_times() {
    let rs = replicaset(1000);
    let s = setup(&rs, vec![]);
    s.fake
        .fail_when(|m, p| (m == "POST" && p.ends_with("/pods")).then(|| (403, "Forbidden".into())));
    let err = reconcile(stored_rs(&s.fake), s.ctx.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Create { .. }), "{err}");
    assert_eq!(s.fake.count("POST", "/pods"), 1, "slow start: one attempt");
    assert!(
        s.ctx.expectations.satisfied("ns/web"),
        "failed creates are not expected"
    );
    let st = stored_rs(&s.fake).status.clone().unwrap();
    let cond = &st.conditions.unwrap()[0];
    assert_eq!(cond.type_, "ReplicaFailure");
    assert_eq!(cond.reason.as_deref(), Some("FailedCreate"));
    assert_eq!(cond.message.as_deref(), Some("injected failure: Forbidden"));
    let ev = s.events.lock().unwrap()[0].clone();
    assert_eq!(
        (ev.reason.as_str(), ev.type_),
        ("FailedCreate", crate::events::EventType::Warning)
    );
    assert_eq!(ev.message, "Error creating: injected failure: Forbidden");

    // Once creates work again the condition goes away.
    s.fake.clear_failures();
    reconcile(stored_rs(&s.fake), s.ctx.clone()).await.unwrap();
    assert_eq!(
        s.fake.list::<Pod>("v1/pods").len(),
        500,
        "burst limit per sync"
    );
    let in_flight = s.fake.max_in_flight();
    assert!(
        (2..=256).contains(&in_flight),
        "batches of 1, 2, 4 … 256: {in_flight} at once"
    );
    assert!(
        stored_rs(&s.fake)
            .status
            .clone()
            .unwrap()
            .conditions
            .is_none()
    );
}

#[tokio::test(start_paused = true)]
async fn scale_down_deletes_the_least_useful_pods() {
    let rs = replicaset(1);
    let now = jiff::Timestamp::now();
    let pods = vec![
        pod(
            "ready",
            &rs,
            PodOpts {
                ready_since: Some(now),
                ..Default::default()
            },
        ),
        pod(
            "pending",
            &rs,
            PodOpts {
                phase: "Pending",
                ..Default::default()
            },
        ),
        pod(
            "unscheduled",
            &rs,
            PodOpts {
                phase: "Pending",
                node: None,
                ..Default::default()
            },
        ),
    ];
    let s = setup(&rs, pods);
    reconcile(stored_rs(&s.fake), s.ctx.clone()).await.unwrap();
    let left: Vec<String> = s
        .fake
        .list::<Pod>("v1/pods")
        .iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(left, ["ready"]);
    assert_eq!(s.ctx.expectations.pending("ns/web"), (0, 2));
    let mut msgs: Vec<String> = s
        .events
        .lock()
        .unwrap()
        .iter()
        .map(|e| e.message.clone())
        .collect();
    msgs.sort();
    assert_eq!(msgs, ["Deleted pod: pending", "Deleted pod: unscheduled"]);
    // Deletions seen through updates (deletionTimestamp) or deletes satisfy the expectations.
    let mut gone = pod("pending", &rs, PodOpts::default());
    gone.metadata.deletion_timestamp = Some(Time(now));
    observe(
        &s.ctx.expectations,
        &Change::Updated {
            old: Arc::new(gone.clone()),
            new: Arc::new(gone),
        },
    );
    observe(
        &s.ctx.expectations,
        &Change::Deleted(Arc::new(pod("unscheduled", &rs, PodOpts::default()))),
    );
    assert!(s.ctx.expectations.satisfied("ns/web"));
}

#[tokio::test(start_paused = true)]
async fn adopts_matching_orphans_and_releases_pods_that_stopped_matching() {
    let rs = replicaset(2);
    let pods = vec![
        pod(
            "orphan",
            &rs,
            PodOpts {
                owned: false,
                ..Default::default()
            },
        ),
        pod(
            "relabeled",
            &rs,
            PodOpts {
                labels: &[("app", "other")],
                ..Default::default()
            },
        ),
        pod("mine", &rs, PodOpts::default()),
        pod(
            "stranger",
            &rs,
            PodOpts {
                owned: false,
                labels: &[("app", "other")],
                ..Default::default()
            },
        ),
    ];
    let s = setup(&rs, pods);
    reconcile(stored_rs(&s.fake), s.ctx.clone()).await.unwrap();
    let get = |n: &str| s.fake.get::<Pod>("v1/pods", "ns", n).unwrap();
    assert!(is_controlled_by_rs(&get("orphan")), "adopted");
    assert!(
        controller_of(&get("relabeled").metadata).is_none(),
        "released"
    );
    assert!(
        controller_of(&get("stranger").metadata).is_none(),
        "left alone"
    );
    // Two pods are claimed: nothing to create or delete.
    assert_eq!(s.fake.count("POST", "/pods"), 0);
    assert_eq!(s.fake.count("DELETE", "/pods"), 0);
    assert_eq!(stored_rs(&s.fake).status.clone().unwrap().replicas, 2);
}

fn is_controlled_by_rs(p: &Pod) -> bool {
    crate::podutil::is_controlled_by(&p.metadata, "rs-uid")
}

#[tokio::test(start_paused = true)]
async fn pods_become_available_after_min_ready_seconds() {
    let mut rs = replicaset(1);
    rs.spec.as_mut().unwrap().min_ready_seconds = Some(10);
    let clock = Clock::new();
    let p = pod(
        "p",
        &rs,
        PodOpts {
            ready_since: Some(clock.now()),
            ..Default::default()
        },
    );
    let s = setup(&rs, vec![p]);
    let action = reconcile(stored_rs(&s.fake), s.ctx.clone()).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(11)));
    let st = stored_rs(&s.fake).status.clone().unwrap();
    assert_eq!(
        (st.ready_replicas, st.available_replicas),
        (Some(1), Some(0))
    );
    tokio::time::advance(Duration::from_secs(11)).await;
    let action = reconcile(stored_rs(&s.fake), s.ctx.clone()).await.unwrap();
    assert_eq!(action, Action::await_change());
    let st = stored_rs(&s.fake).status.clone().unwrap();
    assert_eq!(st.available_replicas, Some(1));
}

#[tokio::test(start_paused = true)]
async fn a_replicaset_being_deleted_creates_nothing() {
    let mut rs = replicaset(3);
    rs.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::now()));
    rs.metadata.finalizers = Some(vec!["foregroundDeletion".into()]);
    let s = setup(&rs, vec![]);
    reconcile(stored_rs(&s.fake), s.ctx.clone()).await.unwrap();
    assert_eq!(s.fake.count("POST", "/pods"), 0);
}

#[test]
fn pod_changes_map_to_owners_and_matching_replicasets() {
    let rs = replicaset(1);
    let (store, _w) = store_of(vec![rs.clone()]);
    let owned = Arc::new(pod("a", &rs, PodOpts::default()));
    assert_eq!(
        replicasets_for_pod(&store, &owned),
        vec![ObjectRef::from_obj(&rs)]
    );
    let orphan = Arc::new(pod(
        "b",
        &rs,
        PodOpts {
            owned: false,
            ..Default::default()
        },
    ));
    assert_eq!(
        replicasets_for_pod(&store, &orphan),
        vec![ObjectRef::from_obj(&rs)]
    );
    let other = Arc::new(pod(
        "c",
        &rs,
        PodOpts {
            owned: false,
            labels: &[("app", "x")],
            ..Default::default()
        },
    ));
    assert!(replicasets_for_pod(&store, &other).is_empty());
    // A relabeled orphan wakes the ReplicaSet it used to match.
    let change = Change::Updated {
        old: orphan.clone(),
        new: other.clone(),
    };
    assert_eq!(
        map_pod_change(&store, &change),
        vec![ObjectRef::from_obj(&rs)]
    );
}
