//! Tests of the disruption controller against the in-memory API: the status it computes for
//! budgets over Deployments, ReplicaSets, StatefulSets and unmanaged pods, recently disrupted
//! and terminating pods, the fail-safe, and the stale `DisruptionTarget` loop.

use std::sync::Mutex;

use k8s_openapi::api::core::v1::PodStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Value, json};

use super::*;
use crate::events::{EventType, Recorded};
use crate::fake::{FakeApi, store_of};

const PDBS: &str = "policy/v1/poddisruptionbudgets";

fn at(s: &str) -> jiff::Timestamp {
    s.parse().expect("timestamp")
}

const T0: &str = "2025-06-01T12:00:00Z";

fn owner(api_version: &str, kind: &str, name: &str) -> OwnerReference {
    OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name: name.into(),
        uid: format!("uid-{name}"),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn pod(name: &str, ready: bool, owner: Option<OwnerReference>) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            uid: Some(format!("uid-{name}")),
            labels: Some([("app".to_string(), "web".to_string())].into()),
            owner_references: owner.map(|o| vec![o]),
            ..Default::default()
        },
        spec: None,
        status: Some(PodStatus {
            phase: Some("Running".into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

/// Stores a budget in the fake API and returns it as the cache would hold it.
fn budget(fake: &FakeApi, spec: Value, status: Value) -> PodDisruptionBudget {
    let v = json!({
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": "web", "namespace": "ns", "uid": "uid-web", "generation": 1},
        "spec": spec,
        "status": status,
    });
    let stored = fake.insert(PDBS, &v);
    serde_json::from_value(stored).unwrap()
}

struct Fixture {
    fake: FakeApi,
    ctx: Arc<Ctx>,
    events: Arc<Mutex<Vec<Recorded>>>,
}

fn fixture(
    pods: Vec<Pod>,
    replicasets: Vec<ReplicaSet>,
    deployments: Vec<Deployment>,
    statefulsets: Vec<StatefulSet>,
) -> Fixture {
    let fake = FakeApi::new();
    let (recorder, events) = Recorder::memory(COMPONENT);
    let ctx = Arc::new(Ctx {
        client: fake.client(),
        pods: store_of(pods).0,
        replicasets: store_of(replicasets).0,
        deployments: store_of(deployments).0,
        statefulsets: store_of(statefulsets).0,
        scales: Scales::default(),
        recorder,
        clock: Clock::at(at(T0)),
    });
    Fixture { fake, ctx, events }
}

impl Fixture {
    fn status(&self) -> PodDisruptionBudgetStatus {
        self.fake
            .get::<PodDisruptionBudget>(PDBS, "ns", "web")
            .unwrap()
            .status
            .unwrap()
    }

    fn reasons(&self) -> Vec<(EventType, String)> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|e| (e.type_, e.reason.clone()))
            .collect()
    }
}

fn allowed_condition_of(st: &PodDisruptionBudgetStatus) -> (String, String, String) {
    let c = st
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "DisruptionAllowed")
        .expect("DisruptionAllowed condition");
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

fn replicaset(name: &str, replicas: i32, owner: Option<OwnerReference>) -> ReplicaSet {
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            uid: Some(format!("uid-{name}")),
            owner_references: owner.map(|o| vec![o]),
            ..Default::default()
        },
        spec: Some(k8s_openapi::api::apps::v1::ReplicaSetSpec {
            replicas: Some(replicas),
            ..Default::default()
        }),
        status: None,
    }
}

#[tokio::test(start_paused = true)]
async fn a_percentage_counts_the_scale_of_the_pods_deployment() {
    let rs_owner = owner("apps/v1", "ReplicaSet", "web-1");
    let mut pods: Vec<Pod> = (0..3)
        .map(|i| pod(&format!("p{i}"), true, Some(rs_owner.clone())))
        .collect();
    pods.push(pod("p3", false, Some(rs_owner.clone())));
    // Not selected: another namespace, other labels.
    let mut elsewhere = pod("x", true, None);
    elsewhere.metadata.namespace = Some("other".into());
    let mut other = pod("y", true, None);
    other.metadata.labels = Some([("app".to_string(), "db".to_string())].into());
    pods.extend([elsewhere, other]);
    let deployment = Deployment {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("ns".into()),
            uid: Some("uid-web".into()),
            ..Default::default()
        },
        spec: Some(k8s_openapi::api::apps::v1::DeploymentSpec {
            replicas: Some(5),
            ..Default::default()
        }),
        status: None,
    };
    let f = fixture(
        pods,
        vec![replicaset(
            "web-1",
            4,
            Some(owner("apps/v1", "Deployment", "web")),
        )],
        vec![deployment],
        vec![],
    );
    let pdb = budget(
        &f.fake,
        json!({"minAvailable": "50%", "selector": {"matchLabels": {"app": "web"}}}),
        json!({}),
    );
    let action = reconcile(Arc::new(pdb), f.ctx.clone()).await.unwrap();
    assert_eq!(action, Action::await_change());
    let st = f.status();
    // The Deployment's 5 replicas (not the ReplicaSet's 4, not the 4 pods); 50% of 5 rounded
    // up is 3; 3 pods are Ready.
    assert_eq!(
        (
            st.expected_pods,
            st.desired_healthy,
            st.current_healthy,
            st.disruptions_allowed
        ),
        (5, 3, 3, 0)
    );
    assert_eq!(st.observed_generation, Some(1));
    assert_eq!(
        allowed_condition_of(&st),
        ("False".into(), "InsufficientPods".into(), String::new())
    );

    // Once up to date, a sync writes nothing.
    let puts = f.fake.count("PUT", "/poddisruptionbudgets/");
    let fresh: PodDisruptionBudget = f.fake.get(PDBS, "ns", "web").unwrap();
    reconcile(Arc::new(fresh), f.ctx.clone()).await.unwrap();
    assert_eq!(f.fake.count("PUT", "/poddisruptionbudgets/"), puts);
}

#[tokio::test(start_paused = true)]
async fn an_integer_min_available_counts_the_selected_pods_and_disrupted_pods_are_not_healthy() {
    let mut deleting = pod("p3", true, None);
    deleting.metadata.deletion_timestamp = Some(Time(at(T0)));
    let pods = vec![
        pod("p0", true, None),
        pod("p1", true, None),
        pod("p2", true, None),
        deleting,
    ];
    let f = fixture(pods, vec![], vec![], vec![]);
    let pdb = budget(
        &f.fake,
        json!({"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}),
        json!({"observedGeneration": 1, "disruptedPods": {
            // Evicted 30 s ago: not healthy, kept.
            "p0": "2025-06-01T11:59:30Z",
            // Evicted 200 s ago and still not deleted: dropped, counted again.
            "p1": "2025-06-01T11:56:40Z",
            // Gone.
            "gone": "2025-06-01T11:59:50Z",
            // Being deleted.
            "p3": "2025-06-01T11:59:50Z",
        }}),
    );
    let action = reconcile(Arc::new(pdb), f.ctx.clone()).await.unwrap();
    // Synced again when p0's entry expires (120 s after 11:59:30).
    assert_eq!(action, Action::requeue(Duration::from_secs(90)));
    let st = f.status();
    assert_eq!(
        (
            st.expected_pods,
            st.desired_healthy,
            st.current_healthy,
            st.disruptions_allowed
        ),
        (4, 1, 2, 1)
    );
    assert_eq!(
        st.disrupted_pods
            .as_ref()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["p0"]
    );
    assert_eq!(
        allowed_condition_of(&st),
        ("True".into(), "SufficientPods".into(), String::new())
    );
    let events = f.events.lock().unwrap().clone();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].reason, "NotDeleted");
    assert_eq!(events[0].involved.name.as_deref(), Some("p1"));
    assert_eq!(events[0].component, "controllermanager");
}

#[tokio::test(start_paused = true)]
async fn max_unavailable_comes_off_the_statefulset_or_replicaset_scale() {
    let ss_owner = owner("apps/v1", "StatefulSet", "db");
    let pods = (0..5)
        .map(|i| pod(&format!("db-{i}"), true, Some(ss_owner.clone())))
        .collect();
    let ss = StatefulSet {
        metadata: ObjectMeta {
            name: Some("db".into()),
            namespace: Some("ns".into()),
            uid: Some("uid-db".into()),
            ..Default::default()
        },
        spec: Some(k8s_openapi::api::apps::v1::StatefulSetSpec {
            replicas: Some(5),
            ..Default::default()
        }),
        status: None,
    };
    let f = fixture(pods, vec![], vec![], vec![ss]);
    let pdb = budget(
        &f.fake,
        json!({"maxUnavailable": "30%", "selector": {"matchLabels": {"app": "web"}}}),
        json!({}),
    );
    reconcile(Arc::new(pdb), f.ctx.clone()).await.unwrap();
    let st = f.status();
    // 30% of 5 rounded up is 2 unavailable: 3 desired, 2 allowed.
    assert_eq!(
        (
            st.expected_pods,
            st.desired_healthy,
            st.current_healthy,
            st.disruptions_allowed
        ),
        (5, 3, 5, 2)
    );

    // A ReplicaSet without Deployment: its own replicas.
    let rs_owner = owner("apps/v1", "ReplicaSet", "web-1");
    let pods = (0..2)
        .map(|i| pod(&format!("w{i}"), true, Some(rs_owner.clone())))
        .collect();
    let f = fixture(pods, vec![replicaset("web-1", 3, None)], vec![], vec![]);
    let pdb = budget(
        &f.fake,
        json!({"maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}}),
        json!({}),
    );
    reconcile(Arc::new(pdb), f.ctx.clone()).await.unwrap();
    let st = f.status();
    assert_eq!(
        (
            st.expected_pods,
            st.desired_healthy,
            st.current_healthy,
            st.disruptions_allowed
        ),
        (3, 2, 2, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn budgets_fail_safe_when_the_expected_pods_cannot_be_counted() {
    // A Job's pods: the fake API serves no discovery, so the kind is unknown.
    let job_owner = owner("batch/v1", "Job", "pi");
    let f = fixture(
        vec![pod("pi-1", true, Some(job_owner))],
        vec![],
        vec![],
        vec![],
    );
    let pdb = budget(
        &f.fake,
        json!({"minAvailable": "50%", "selector": {"matchLabels": {"app": "web"}}}),
        json!({"observedGeneration": 1, "disruptionsAllowed": 3, "currentHealthy": 4,
               "desiredHealthy": 1, "expectedPods": 4}),
    );
    let action = reconcile(Arc::new(pdb), f.ctx.clone()).await.unwrap();
    assert_eq!(action, Action::await_change());
    let st = f.status();
    assert_eq!(st.disruptions_allowed, 0);
    assert_eq!(
        st.current_healthy, 4,
        "the rest of the status is left alone"
    );
    assert_eq!(
        allowed_condition_of(&st),
        (
            "False".into(),
            "SyncFailed".into(),
            r#"no matches for kind "Job" in version "batch/v1""#.into()
        )
    );
    assert_eq!(
        f.reasons(),
        [(EventType::Warning, "CalculateExpectedPodCountFailed".into())]
    );

    // A pod without controller under a percentage: counted as no expected pod, with a warning.
    let f = fixture(vec![pod("lone", true, None)], vec![], vec![], vec![]);
    let pdb = budget(
        &f.fake,
        json!({"minAvailable": "50%", "selector": {"matchLabels": {"app": "web"}}}),
        json!({}),
    );
    reconcile(Arc::new(pdb), f.ctx.clone()).await.unwrap();
    let st = f.status();
    assert_eq!(
        (st.expected_pods, st.current_healthy, st.disruptions_allowed),
        (0, 1, 0)
    );
    assert_eq!(f.reasons(), [(EventType::Warning, "UnmanagedPods".into())]);
}

#[tokio::test(start_paused = true)]
async fn a_budget_without_pods_allows_nothing_and_conflicts_are_retried_not_failed_safe() {
    let f = fixture(vec![pod("a", true, None)], vec![], vec![], vec![]);
    // No selector: no pods.
    let pdb = budget(&f.fake, json!({"maxUnavailable": 1}), json!({}));
    reconcile(Arc::new(pdb.clone()), f.ctx.clone())
        .await
        .unwrap();
    let st = f.status();
    assert_eq!(
        (st.expected_pods, st.current_healthy, st.disruptions_allowed),
        (0, 0, 0)
    );
    assert_eq!(f.reasons(), [(EventType::Normal, "NoPods".into())]);

    // The cached budget is stale now: the write conflicts and the reconcile fails (to be
    // retried on the newer budget) without a fail-safe write.
    f.fake.clear_requests();
    let mut stale = pdb;
    stale.spec.as_mut().unwrap().selector = Some(Default::default());
    let err = reconcile(Arc::new(stale), f.ctx.clone()).await.unwrap_err();
    assert!(crate::runner::is_conflict(&err), "{err}");
    assert_eq!(f.fake.count("PUT", "/poddisruptionbudgets/"), 1);
}

#[test]
fn pod_changes_wake_the_budgets_that_select_them_before_and_after() {
    let mk = |name: &str, app: &str| -> PodDisruptionBudget {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"selector": {"matchLabels": {"app": app}}},
        }))
        .unwrap()
    };
    let mut all: PodDisruptionBudget = serde_json::from_value(json!({
        "metadata": {"name": "all", "namespace": "ns"}, "spec": {"selector": {}}}))
    .unwrap();
    let (budgets, _w) = store_of(vec![mk("web", "web"), mk("db", "db"), all.clone()]);
    let names = |refs: Vec<ObjectRef<PodDisruptionBudget>>| {
        let mut n: Vec<String> = refs.into_iter().map(|r| r.name).collect();
        n.sort();
        n
    };
    let web = Arc::new(pod("p", true, None));
    assert_eq!(
        names(budgets_for_change(&Change::Added(web.clone()), &budgets)),
        ["all", "web"]
    );
    let mut db = pod("p", true, None);
    db.metadata.labels = Some([("app".to_string(), "db".to_string())].into());
    let moved = Change::Updated {
        old: web.clone(),
        new: Arc::new(db),
    };
    assert_eq!(
        names(budgets_for_change(&moved, &budgets)),
        ["all", "db", "web"]
    );
    // Another namespace's budgets are not concerned.
    all.metadata.namespace = Some("other".into());
    let (budgets, _w) = store_of(vec![all]);
    assert!(budgets_for_change(&Change::Deleted(web), &budgets).is_empty());
}

#[test]
fn percentages_scale_like_kubernetes() {
    let pct = |s: &str| IntOrString::String(s.into());
    assert_eq!(scaled_value(&pct("50%"), 3, true).unwrap(), 2);
    assert_eq!(scaled_value(&pct("50%"), 3, false).unwrap(), 1);
    assert_eq!(scaled_value(&pct("0%"), 7, true).unwrap(), 0);
    assert_eq!(scaled_value(&pct("100%"), 7, true).unwrap(), 7);
    assert_eq!(scaled_value(&IntOrString::Int(4), 2, true).unwrap(), 4);
    assert!(scaled_value(&pct("half"), 2, true).is_err());
}

fn with_disruption_target(mut p: Pod, set_at: &str, reason: &str) -> Pod {
    p.status
        .as_mut()
        .unwrap()
        .conditions
        .as_mut()
        .unwrap()
        .push(PodCondition {
            type_: "DisruptionTarget".into(),
            status: "True".into(),
            reason: Some(reason.into()),
            message: Some("Eviction API: evicting".into()),
            last_transition_time: Some(Time(at(set_at))),
            ..Default::default()
        });
    p
}

#[tokio::test(start_paused = true)]
async fn stale_disruption_targets_are_cleared_after_two_minutes() {
    let f = fixture(vec![], vec![], vec![], vec![]);
    let recent = with_disruption_target(
        pod("a", true, None),
        "2025-06-01T11:59:30Z",
        "EvictionByEvictionAPI",
    );
    let action = reconcile_stale_pod(Arc::new(recent), f.ctx.clone())
        .await
        .unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(90)));
    assert!(f.fake.requests().is_empty());

    let old = with_disruption_target(
        pod("b", true, None),
        "2025-06-01T11:57:00Z",
        "EvictionByEvictionAPI",
    );
    let stored: Pod = serde_json::from_value(f.fake.insert(
        "v1/pods",
        &json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": old.metadata, "status": old.status}),
    ))
    .unwrap();
    reconcile_stale_pod(Arc::new(stored), f.ctx.clone())
        .await
        .unwrap();
    let now: Pod = f.fake.get("v1/pods", "ns", "b").unwrap();
    let cond = crate::podutil::condition(&now, "DisruptionTarget")
        .unwrap()
        .clone();
    assert_eq!(cond.status, "False");
    assert_eq!(cond.reason, None);
    assert_eq!(cond.last_transition_time, Some(Time(at(T0))));
    assert!(crate::podutil::is_ready(&now), "other conditions are kept");

    // Terminating pods, and conditions the kubelet set, are not stale.
    let mut going = with_disruption_target(
        pod("c", true, None),
        "2025-06-01T11:50:00Z",
        "EvictionByEvictionAPI",
    );
    going.metadata.deletion_timestamp = Some(Time(at(T0)));
    assert!(stale_disruption_target(&going).is_none());
    let kubelet = with_disruption_target(
        pod("d", true, None),
        "2025-06-01T11:50:00Z",
        "TerminationByKubelet",
    );
    assert!(stale_disruption_target(&kubelet).is_none());
}
