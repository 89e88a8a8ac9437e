//! Unit tests of node health and taint-based eviction against the fake API with paused time.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    Node, NodeCondition, NodeStatus, Pod, PodCondition, PodSpec, PodStatus, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher::Event;

use super::*;
use crate::fake::{FakeApi, store_of};

fn node(name: &str) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: Some(Default::default()),
        status: Some(NodeStatus {
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                last_heartbeat_time: Some(Time(jiff::Timestamp::now())),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

fn lease(name: &str, renewed: jiff::Timestamp) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("kube-node-lease".into()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            renew_time: Some(MicroTime(renewed)),
            ..Default::default()
        }),
    }
}

fn pod(name: &str, node: &str, tolerate_secs: Option<i64>) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            uid: Some(format!("uid-{name}")),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some(node.into()),
            tolerations: tolerate_secs.map(|s| {
                vec![Toleration {
                    key: Some(taints::UNREACHABLE.into()),
                    operator: Some("Exists".into()),
                    effect: Some("NoExecute".into()),
                    toleration_seconds: Some(s),
                    value: None,
                }]
            }),
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some("Running".into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

fn refill<K>(w: &mut Writer<K>, objs: Vec<K>)
where
    K: kube::runtime::reflector::Lookup<DynamicType = ()> + Clone + 'static,
{
    w.apply_watcher_event(&Event::Init);
    for o in objs {
        w.apply_watcher_event(&Event::InitApply(o));
    }
    w.apply_watcher_event(&Event::InitDone);
}

struct World {
    fake: FakeApi,
    ctx: Arc<Ctx>,
    nodes: Writer<Node>,
    leases: Writer<Lease>,
    pods: Writer<Pod>,
}

impl World {
    fn new(eviction_rate: f64) -> Self {
        let fake = FakeApi::new();
        let (n, nodes) = store_of::<Node>(vec![]);
        let (l, leases) = store_of::<Lease>(vec![]);
        let (p, pods) = store_of::<Pod>(vec![]);
        let (recorder, _) = Recorder::memory("test");
        let settings = Settings {
            grace: Duration::from_secs(40),
            startup_grace: Duration::from_secs(60),
            eviction_rate,
            pod_eviction_timeout: Duration::ZERO,
            lifecycle: true,
            eviction: true,
        };
        let ctx = Arc::new(Ctx::new(
            fake.client(),
            n,
            l,
            p,
            &recorder,
            Clock::new(),
            settings,
        ));
        Self {
            fake,
            ctx,
            nodes,
            leases,
            pods,
        }
    }

    /// Makes the caches show what the API holds.
    fn sync(&mut self) {
        refill(&mut self.nodes, self.fake.list("v1/nodes"));
        refill(
            &mut self.leases,
            self.fake.list("coordination.k8s.io/v1/leases"),
        );
        refill(&mut self.pods, self.fake.list("v1/pods"));
    }

    fn node(&self, name: &str) -> Node {
        self.fake.get("v1/nodes", "", name).unwrap()
    }
}

fn taint_keys(n: &Node) -> Vec<(String, String)> {
    let mut v: Vec<_> = n
        .spec
        .as_ref()
        .unwrap()
        .taints
        .iter()
        .flatten()
        .map(|t| (t.key.clone(), t.effect.clone()))
        .collect();
    v.sort();
    v
}

#[tokio::test(start_paused = true)]
async fn a_node_whose_lease_stops_is_tainted_and_its_pods_evicted() {
    let mut w = World::new(0.1);
    for n in ["a", "b"] {
        w.fake.insert("v1/nodes", &node(n));
        w.fake.insert(
            "coordination.k8s.io/v1/leases",
            &lease(n, jiff::Timestamp::now()),
        );
    }
    w.fake.insert("v1/pods", &pod("untolerant", "b", None));
    w.fake.insert("v1/pods", &pod("patient", "b", Some(30)));
    w.fake.insert("v1/pods", &pod("elsewhere", "a", None));
    w.sync();
    w.ctx.monitor().await.unwrap();
    assert!(
        w.fake.requests().is_empty(),
        "healthy nodes: nothing to write"
    );

    // Node a keeps renewing its lease; b stops.
    for step in 0..9 {
        tokio::time::advance(Duration::from_secs(5)).await;
        let renewed = w.ctx.clock.now();
        w.fake
            .insert("coordination.k8s.io/v1/leases", &lease("a", renewed));
        w.sync();
        w.ctx.monitor().await.unwrap();
        if step < 7 {
            assert_eq!(
                taints::ready_status(&w.node("b")),
                "True",
                "within the grace period ({step})"
            );
        }
    }
    let b = w.node("b");
    assert_eq!(taints::ready_status(&b), "Unknown");
    let ready = taints::condition(&b, "Ready").unwrap();
    assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
    assert_eq!(
        ready.message.as_deref(),
        Some("Kubelet stopped posting node status.")
    );
    assert_eq!(
        taint_keys(&b),
        vec![
            (taints::UNREACHABLE.into(), "NoExecute".into()),
            (taints::UNREACHABLE.into(), "NoSchedule".into())
        ]
    );
    assert_eq!(taints::ready_status(&w.node("a")), "True");
    let patient: Pod = w.fake.get("v1/pods", "ns", "patient").unwrap();
    assert!(
        !crate::podutil::is_ready(&patient),
        "pods of the node are marked not ready"
    );

    // Eviction: the pod without a toleration goes at once, the other after 30 s.
    w.sync();
    let due = w
        .ctx
        .evict()
        .await
        .unwrap()
        .expect("an eviction is scheduled");
    assert_eq!(w.ctx.clock.until(due), Duration::from_secs(30));
    let left: Vec<String> = w
        .fake
        .list::<Pod>("v1/pods")
        .into_iter()
        .map(|p| p.metadata.name.unwrap())
        .collect();
    assert_eq!(left, ["elsewhere", "patient"]);
    tokio::time::advance(Duration::from_secs(31)).await;
    w.sync();
    assert_eq!(w.ctx.evict().await.unwrap(), None);
    let left: Vec<String> = w
        .fake
        .list::<Pod>("v1/pods")
        .into_iter()
        .map(|p| p.metadata.name.unwrap())
        .collect();
    assert_eq!(left, ["elsewhere"]);

    // b reports again: Ready True, taints removed.
    let mut back = w.node("b");
    back.status = node("b").status;
    w.fake.insert("v1/nodes", &back);
    w.fake.insert(
        "coordination.k8s.io/v1/leases",
        &lease("b", w.ctx.clock.now()),
    );
    w.sync();
    w.ctx.monitor().await.unwrap();
    assert!(taint_keys(&w.node("b")).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_fully_disrupted_cluster_is_not_tainted_no_execute() {
    let mut w = World::new(0.1);
    w.fake.insert("v1/nodes", &node("only"));
    w.sync();
    w.ctx.monitor().await.unwrap();
    tokio::time::advance(Duration::from_secs(41)).await;
    w.sync();
    w.ctx.monitor().await.unwrap();
    w.sync();
    w.ctx.monitor().await.unwrap();
    let n = w.node("only");
    assert_eq!(taints::ready_status(&n), "Unknown");
    assert_eq!(
        taint_keys(&n),
        vec![(taints::UNREACHABLE.into(), "NoSchedule".into())],
        "no NoExecute when every zone is down"
    );
}

#[tokio::test(start_paused = true)]
async fn no_execute_taints_are_rate_limited_per_zone() {
    let mut w = World::new(0.1);
    for n in ["a", "b", "c", "d", "e", "f"] {
        w.fake.insert("v1/nodes", &node(n));
    }
    w.sync();
    w.ctx.monitor().await.unwrap();
    tokio::time::advance(Duration::from_secs(41)).await;
    // Only b and c go silent; the others keep reporting.
    for n in ["a", "d", "e", "f"] {
        let mut live = w.node(n);
        live.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].last_heartbeat_time =
            Some(w.ctx.clock.time());
        w.fake.insert("v1/nodes", &live);
    }
    w.sync();
    w.ctx.monitor().await.unwrap();
    w.sync();
    w.ctx.monitor().await.unwrap();
    let tainted = ["b", "c"]
        .iter()
        .filter(|n| taint_keys(&w.node(n)).iter().any(|(_, e)| e == "NoExecute"))
        .count();
    assert_eq!(tainted, 1, "one token: one node per 10 s");
    tokio::time::advance(Duration::from_secs(10)).await;
    for n in ["a", "d", "e", "f"] {
        let mut live = w.node(n);
        live.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].last_heartbeat_time =
            Some(w.ctx.clock.time());
        w.fake.insert("v1/nodes", &live);
    }
    w.sync();
    w.ctx.monitor().await.unwrap();
    let tainted = ["b", "c"]
        .iter()
        .filter(|n| taint_keys(&w.node(n)).iter().any(|(_, e)| e == "NoExecute"))
        .count();
    assert_eq!(tainted, 2);
}
