//! Unit tests of the Deployment reconcile against in-memory stores and the fake API, with
//! paused time: a simulated ReplicaSet controller makes the pods of each ReplicaSet available
//! between reconciles.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, ReplicaSet, ReplicaSetStatus,
    RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use kube::runtime::controller::Action;

use super::util::{self, reason};
use super::*;
use crate::events::Recorded;
use crate::fake::{FakeApi, store_of};

const DS: &str = "apps/v1/deployments";
const RSS: &str = "apps/v1/replicasets";

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn deployment(replicas: i32, image: &str) -> Deployment {
    Deployment {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("ns".into()),
            uid: Some("d-uid".into()),
            generation: Some(1),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(labels(&[("app", "web")])),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(&[("app", "web")])),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "app".into(),
                        image: Some(image.into()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::String("25%".into())),
                    max_unavailable: Some(IntOrString::String("25%".into())),
                }),
            }),
            revision_history_limit: Some(10),
            progress_deadline_seconds: Some(600),
            ..Default::default()
        }),
        status: None,
    }
}

struct World {
    fake: FakeApi,
    events: Arc<Mutex<Vec<Recorded>>>,
    recorder: Recorder,
    clock: Clock,
    pods: Vec<Pod>,
}

impl World {
    fn new(d: &Deployment) -> Self {
        let fake = FakeApi::new();
        fake.insert(DS, d);
        let (recorder, events) = Recorder::memory(NAME);
        Self {
            fake,
            events,
            recorder,
            // Whole seconds, as condition times are kept.
            clock: Clock::at(
                jiff::Timestamp::from_second(jiff::Timestamp::now().as_second()).unwrap(),
            ),
            pods: vec![],
        }
    }

    fn deployment(&self) -> Deployment {
        self.fake.get(DS, "ns", "web").unwrap()
    }

    fn replicasets(&self) -> Vec<ReplicaSet> {
        let mut v: Vec<ReplicaSet> = self.fake.list(RSS);
        v.sort_by_key(util::revision);
        v
    }

    /// Edits the stored Deployment's spec (bumping its generation, as the API server does).
    fn edit(&self, f: impl FnOnce(&mut DeploymentSpec)) {
        let mut d = self.deployment();
        f(d.spec.as_mut().unwrap());
        d.metadata.generation = Some(d.metadata.generation.unwrap_or(1) + 1);
        self.fake.insert(DS, &d);
    }

    async fn reconcile(&self) -> Action {
        let (rs_store, _) = store_of(self.fake.list::<ReplicaSet>(RSS));
        let (pod_store, _) = store_of(self.pods.clone());
        let ctx = Arc::new(Ctx {
            client: self.fake.client(),
            replicasets: rs_store,
            pods: pod_store,
            recorder: self.recorder.clone(),
            clock: self.clock,
        });
        Box::pin(reconcile(Arc::new(self.deployment()), ctx))
            .await
            .unwrap()
    }

    /// What the ReplicaSet controller would report: `available` of each ReplicaSet's pods up.
    fn settle(&self, available: impl Fn(&ReplicaSet) -> i32) {
        for mut rs in self.fake.list::<ReplicaSet>(RSS) {
            let n = util::rs_replicas(&rs);
            let a = available(&rs).min(n);
            rs.status = Some(ReplicaSetStatus {
                replicas: n,
                ready_replicas: Some(a),
                available_replicas: Some(a),
                observed_generation: rs.metadata.generation,
                ..Default::default()
            });
            self.fake.insert(RSS, &rs);
        }
    }

    fn messages(&self) -> Vec<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.message.clone())
            .collect()
    }
}

fn condition(d: &Deployment, t: &str) -> (String, String, String) {
    let c = util::get_condition(d.status.as_ref().unwrap(), t).unwrap();
    (
        c.status.clone(),
        c.reason.clone().unwrap_or_default(),
        c.message.clone().unwrap_or_default(),
    )
}

#[tokio::test(start_paused = true)]
async fn a_new_deployment_gets_a_hashed_replica_set_at_revision_1() {
    let w = World::new(&deployment(3, "nginx:1"));
    w.reconcile().await;
    let rses = w.replicasets();
    assert_eq!(rses.len(), 1);
    let rs = &rses[0];
    let hash = rs.metadata.labels.as_ref().unwrap()[util::POD_TEMPLATE_HASH].clone();
    assert_eq!(
        rs.metadata.name.as_deref(),
        Some(format!("web-{hash}").as_str())
    );
    let spec = rs.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(3));
    assert_eq!(
        spec.selector.match_labels.as_ref().unwrap()[util::POD_TEMPLATE_HASH],
        hash
    );
    let tl = spec
        .template
        .as_ref()
        .unwrap()
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .as_ref()
        .unwrap();
    assert_eq!(tl[util::POD_TEMPLATE_HASH], hash);
    let a = rs.metadata.annotations.as_ref().unwrap();
    assert_eq!(
        (
            a[util::REVISION].as_str(),
            a[util::DESIRED_REPLICAS].as_str(),
            a[util::MAX_REPLICAS].as_str()
        ),
        ("1", "3", "4")
    );
    assert!(crate::podutil::is_controlled_by(&rs.metadata, "d-uid"));
    let d = w.deployment();
    assert_eq!(
        d.metadata.annotations.as_ref().unwrap()[util::REVISION],
        "1"
    );
    let (st, why, msg) = condition(&d, reason::PROGRESSING);
    assert_eq!(
        (st.as_str(), why.as_str()),
        ("True", reason::NEW_RS_CREATED)
    );
    assert_eq!(msg, format!("Created new replica set \"web-{hash}\""));
    assert_eq!(
        w.messages(),
        [format!("Scaled up replica set web-{hash} from 0 to 3")]
    );

    // Pods come up: the Deployment becomes Available and the rollout complete.
    w.settle(util::rs_replicas);
    w.reconcile().await;
    let d = w.deployment();
    let st = d.status.clone().unwrap();
    assert_eq!(
        (
            st.replicas,
            st.updated_replicas,
            st.available_replicas,
            st.ready_replicas
        ),
        (Some(3), Some(3), Some(3), Some(3))
    );
    assert_eq!(st.observed_generation, Some(1));
    assert_eq!(condition(&d, reason::AVAILABLE).1, reason::MIN_AVAILABLE);
    let (_, why, msg) = condition(&d, reason::PROGRESSING);
    assert_eq!(why, reason::NEW_RS_AVAILABLE);
    assert_eq!(
        msg,
        format!("ReplicaSet \"web-{hash}\" has successfully progressed.")
    );
}

/// A template change rolled with maxSurge 1 / maxUnavailable 0: never more than 4 pods, never
/// fewer than 3 available, and the old ReplicaSet kept at 0 replicas as revision 1.
#[tokio::test(start_paused = true)]
async fn a_rolling_update_never_exceeds_surge_or_unavailability() {
    let mut d = deployment(3, "nginx:1");
    d.spec
        .as_mut()
        .unwrap()
        .strategy
        .as_mut()
        .unwrap()
        .rolling_update = Some(RollingUpdateDeployment {
        max_surge: Some(IntOrString::Int(1)),
        max_unavailable: Some(IntOrString::Int(0)),
    });
    let w = World::new(&d);
    w.reconcile().await;
    w.settle(util::rs_replicas);
    w.reconcile().await;
    w.edit(|s| s.template.spec.as_mut().unwrap().containers[0].image = Some("nginx:2".into()));
    let mut steps = 0;
    loop {
        w.reconcile().await;
        let rses = w.replicasets();
        let total: i32 = rses.iter().map(util::rs_replicas).sum();
        assert!(total <= 4, "at most replicas + maxSurge pods: {total}");
        // Only pods that existed before this step are available; new ones come up afterwards.
        let available: i32 = rses.iter().map(util::rs_available).sum();
        assert!(
            available >= 3,
            "at least replicas - maxUnavailable available: {available}"
        );
        w.settle(util::rs_replicas);
        steps += 1;
        if rses.len() == 2 && util::rs_replicas(&rses[0]) == 0 && util::rs_replicas(&rses[1]) == 3 {
            break;
        }
        assert!(steps < 20, "rollout stuck: {rses:?}");
    }
    w.reconcile().await;
    let d = w.deployment();
    assert_eq!(
        d.metadata.annotations.as_ref().unwrap()[util::REVISION],
        "2"
    );
    assert_eq!(util::revision(&w.replicasets()[1]), 2);
    let st = d.status.clone().unwrap();
    assert_eq!(
        (st.updated_replicas, st.replicas, st.available_replicas),
        (Some(3), Some(3), Some(3))
    );
    assert_eq!(
        condition(&d, reason::PROGRESSING).1,
        reason::NEW_RS_AVAILABLE
    );
    let scaled: Vec<String> = w
        .messages()
        .into_iter()
        .filter(|m| m.contains("Scaled"))
        .collect();
    assert!(
        scaled
            .iter()
            .any(|m| m.starts_with("Scaled down replica set") && m.ends_with("from 3 to 2")),
        "{scaled:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stuck_rollout_exceeds_its_progress_deadline() {
    let mut d = deployment(2, "nginx:1");
    d.spec.as_mut().unwrap().progress_deadline_seconds = Some(10);
    let w = World::new(&d);
    w.reconcile().await;
    // The pods never become available.
    w.settle(|_| 0);
    // The first sync writes the new counters; the next one sees no progress.
    w.reconcile().await;
    let action = w.reconcile().await;
    assert_eq!(
        action,
        Action::requeue(Duration::from_secs(10)),
        "look again at the deadline"
    );
    tokio::time::advance(Duration::from_secs(11)).await;
    w.reconcile().await;
    let d = w.deployment();
    let (st, why, msg) = condition(&d, reason::PROGRESSING);
    assert_eq!((st.as_str(), why.as_str()), ("False", reason::TIMED_OUT));
    assert!(msg.ends_with("has timed out progressing."), "{msg}");
    assert_eq!(condition(&d, reason::AVAILABLE).1, reason::MIN_UNAVAILABLE);
}

#[tokio::test(start_paused = true)]
async fn scaling_during_a_rollout_is_proportional() {
    // The documented example: 10 replicas, maxSurge 3, maxUnavailable 2; a rollout stuck at 8
    // old and 5 new pods is scaled to 15.
    let mut d = deployment(10, "nginx:1");
    d.spec
        .as_mut()
        .unwrap()
        .strategy
        .as_mut()
        .unwrap()
        .rolling_update = Some(RollingUpdateDeployment {
        max_surge: Some(IntOrString::Int(3)),
        max_unavailable: Some(IntOrString::Int(2)),
    });
    let w = World::new(&d);
    w.reconcile().await;
    w.settle(util::rs_replicas);
    w.reconcile().await;
    w.edit(|s| s.template.spec.as_mut().unwrap().containers[0].image = Some("nginx:broken".into()));
    for _ in 0..5 {
        w.reconcile().await;
        // New pods never become available; old ones are.
        w.settle(|rs| {
            if util::revision(rs) == 1 {
                util::rs_replicas(rs)
            } else {
                0
            }
        });
    }
    let sizes: Vec<i32> = w.replicasets().iter().map(util::rs_replicas).collect();
    assert_eq!(sizes, vec![8, 5]);
    w.edit(|s| s.replicas = Some(15));
    w.reconcile().await;
    let sizes: Vec<i32> = w.replicasets().iter().map(util::rs_replicas).collect();
    assert_eq!(
        sizes,
        vec![11, 7],
        "3 to the old and 2 to the new ReplicaSet"
    );
}

#[tokio::test(start_paused = true)]
async fn recreate_removes_old_pods_before_creating_new_ones() {
    let mut d = deployment(2, "nginx:1");
    d.spec.as_mut().unwrap().strategy = Some(DeploymentStrategy {
        type_: Some("Recreate".into()),
        rolling_update: None,
    });
    let mut w = World::new(&d);
    w.reconcile().await;
    w.settle(util::rs_replicas);
    let old = w.replicasets()[0].clone();
    // One pod of the old ReplicaSet still runs.
    w.pods = vec![Pod {
        metadata: ObjectMeta {
            name: Some("old-pod".into()),
            namespace: Some("ns".into()),
            labels: Some(labels(&[("app", "web")])),
            owner_references: Some(vec![crate::podutil::controller_ref(&old)]),
            ..Default::default()
        },
        spec: Some(PodSpec::default()),
        status: Some(k8s_openapi::api::core::v1::PodStatus {
            phase: Some("Running".into()),
            ..Default::default()
        }),
    }];
    w.edit(|s| s.template.spec.as_mut().unwrap().containers[0].image = Some("nginx:2".into()));
    w.reconcile().await;
    assert_eq!(
        w.replicasets().len(),
        1,
        "no new ReplicaSet while old pods run"
    );
    assert_eq!(
        util::rs_replicas(&w.replicasets()[0]),
        0,
        "old scaled to zero"
    );
    w.settle(|_| 0);
    w.reconcile().await;
    assert_eq!(w.replicasets().len(), 1, "the old pod is still there");
    w.pods.clear();
    w.reconcile().await;
    let rses = w.replicasets();
    assert_eq!(rses.len(), 2);
    assert_eq!(util::rs_replicas(&rses[1]), 2);
}

#[tokio::test(start_paused = true)]
async fn pausing_holds_the_rollout_and_rollback_to_restores_a_revision() {
    let w = World::new(&deployment(2, "nginx:1"));
    w.reconcile().await;
    w.settle(util::rs_replicas);
    w.edit(|s| s.paused = Some(true));
    w.reconcile().await;
    let (st, why, _) = condition(&w.deployment(), reason::PROGRESSING);
    assert_eq!((st.as_str(), why.as_str()), ("Unknown", reason::PAUSED));
    w.edit(|s| s.template.spec.as_mut().unwrap().containers[0].image = Some("nginx:2".into()));
    w.reconcile().await;
    assert_eq!(w.replicasets().len(), 1, "paused: no rollout");
    w.edit(|s| s.paused = Some(false));
    w.reconcile().await;
    // Resumed, the rollout of the template changed while paused starts at once.
    assert_eq!(
        condition(&w.deployment(), reason::PROGRESSING).1,
        reason::NEW_RS_CREATED
    );
    assert_eq!(w.replicasets().len(), 2);
    for _ in 0..6 {
        w.reconcile().await;
        w.settle(util::rs_replicas);
    }
    assert_eq!(w.replicasets().len(), 2);
    // Roll back to revision 1 through the annotation.
    let mut d = w.deployment();
    d.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(util::ROLLBACK_TO.into(), "1".into());
    w.fake.insert(DS, &d);
    w.reconcile().await;
    let d = w.deployment();
    assert!(
        !d.metadata
            .annotations
            .as_ref()
            .unwrap()
            .contains_key(util::ROLLBACK_TO)
    );
    assert_eq!(
        d.spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
            .image
            .as_deref(),
        Some("nginx:1")
    );
    assert!(
        w.messages()
            .iter()
            .any(|m| m == "Rolled back deployment \"web\" to revision 1")
    );
    // The old ReplicaSet becomes the new one at revision 3, remembering revision 1.
    for _ in 0..6 {
        w.reconcile().await;
        w.settle(util::rs_replicas);
    }
    let first = w
        .replicasets()
        .into_iter()
        .find(|r| {
            r.metadata
                .annotations
                .as_ref()
                .unwrap()
                .contains_key(util::REVISION_HISTORY)
        })
        .unwrap();
    let a = first.metadata.annotations.clone().unwrap();
    assert_eq!(
        (
            a[util::REVISION].as_str(),
            a[util::REVISION_HISTORY].as_str()
        ),
        ("3", "1")
    );
    assert_eq!(util::rs_replicas(&first), 2);
}

#[tokio::test(start_paused = true)]
async fn old_replica_sets_beyond_the_history_limit_are_deleted() {
    let mut d = deployment(1, "v0");
    d.spec.as_mut().unwrap().revision_history_limit = Some(1);
    let w = World::new(&d);
    for v in 1..=4 {
        for _ in 0..6 {
            w.reconcile().await;
            w.settle(util::rs_replicas);
        }
        w.edit(|s| s.template.spec.as_mut().unwrap().containers[0].image = Some(format!("v{v}")));
    }
    for _ in 0..6 {
        w.reconcile().await;
        w.settle(util::rs_replicas);
    }
    let revisions: Vec<i64> = w.replicasets().iter().map(util::revision).collect();
    assert_eq!(
        revisions,
        vec![4, 5],
        "one old revision kept besides the current"
    );
}

#[tokio::test(start_paused = true)]
async fn a_deployment_selecting_everything_is_refused() {
    let mut d = deployment(1, "nginx");
    d.spec.as_mut().unwrap().selector = LabelSelector::default();
    let w = World::new(&d);
    w.reconcile().await;
    assert!(w.replicasets().is_empty());
    assert_eq!(w.events.lock().unwrap()[0].reason, "SelectingAll");
    assert_eq!(w.deployment().status.unwrap().observed_generation, Some(1));
}
