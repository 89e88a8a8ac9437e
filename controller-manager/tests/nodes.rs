//! Node lifecycle, taint-based eviction and node IPAM against a real API server: a node whose
//! lease stops is tainted, its pods are evicted and replaced on the other node (a stand-in
//! scheduler binds them), and the taints go when it reports again.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Node, NodeCondition, NodeStatus, Pod, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

const T: Duration = Duration::from_secs(30);

fn ready_status(now: jiff::Timestamp) -> NodeStatus {
    NodeStatus {
        conditions: Some(vec![NodeCondition {
            type_: "Ready".into(),
            status: "True".into(),
            reason: Some("KubeletReady".into()),
            message: Some("kubelet is posting ready status".into()),
            last_heartbeat_time: Some(Time(now)),
            last_transition_time: Some(Time(now)),
        }]),
        ..Default::default()
    }
}

async fn register_node(c: &Client, name: &str) {
    let nodes: Api<Node> = Api::all(c.clone());
    let node = Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    nodes.create(&PostParams::default(), &node).await.unwrap();
    report_ready(c, name).await.unwrap();
}

/// Posts a Ready condition, as a kubelet does (a merge patch: node IPAM may be writing the
/// node's spec at the same time).
async fn report_ready(c: &Client, name: &str) -> Result<(), kube::Error> {
    let status = serde_json::json!({ "status": ready_status(jiff::Timestamp::now()) });
    Api::<Node>::all(c.clone())
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .map(|_| ())
}

/// Renews a node's Lease every 300 ms while `alive`, and — like a kubelet, whose status
/// changed — reports Ready again when the controller marked the node Unknown (which can happen
/// to a live node too when the machine stalls past the test's short grace period).
fn heartbeat(c: &Client, name: &str, alive: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    let leases: Api<Lease> = Api::namespaced(c.clone(), "kube-node-lease");
    let nodes: Api<Node> = Api::all(c.clone());
    let c = c.clone();
    let name = name.to_string();
    tokio::spawn(async move {
        loop {
            if alive.load(Ordering::SeqCst) {
                if let Ok(n) = nodes.get(&name).await {
                    let ready = n
                        .status
                        .and_then(|s| s.conditions)
                        .unwrap_or_default()
                        .into_iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True");
                    if !ready {
                        let _ = report_ready(&c, &name).await;
                    }
                }
                let now = MicroTime(jiff::Timestamp::now());
                match leases.get_opt(&name).await {
                    Ok(Some(mut l)) => {
                        l.spec.get_or_insert_with(Default::default).renew_time = Some(now);
                        let _ = leases.replace(&name, &PostParams::default(), &l).await;
                    }
                    _ => {
                        let l = Lease {
                            metadata: ObjectMeta {
                                name: Some(name.clone()),
                                ..Default::default()
                            },
                            spec: Some(LeaseSpec {
                                holder_identity: Some(name.clone()),
                                lease_duration_seconds: Some(40),
                                renew_time: Some(now),
                                ..Default::default()
                            }),
                        };
                        let _ = leases.create(&PostParams::default(), &l).await;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
}

/// Binds pending pods of `ns` to the untainted node with the fewest pods.
fn scheduler(c: &Client, ns: &str) -> tokio::task::JoinHandle<()> {
    let c = c.clone();
    let ns = ns.to_string();
    tokio::spawn(async move {
        let pods: Api<Pod> = Api::namespaced(c.clone(), &ns);
        let nodes: Api<Node> = Api::all(c.clone());
        // Backing off after errors: once the API server is gone at the end of the test, an
        // unpaced retry loop would never yield and keep the runtime from shutting down.
        let mut events = watcher(pods.clone(), watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(ev) = events.next().await {
            let pod = match ev {
                Ok(watcher::Event::Apply(p)) | Ok(watcher::Event::InitApply(p)) => p,
                _ => continue,
            };
            if pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_ref())
                .is_some()
                || pod.metadata.deletion_timestamp.is_some()
            {
                continue;
            }
            let all = nodes.list(&Default::default()).await.unwrap().items;
            let running = pods.list(&Default::default()).await.unwrap().items;
            let mut load: BTreeMap<String, usize> = BTreeMap::new();
            for n in &all {
                let tainted = n
                    .spec
                    .as_ref()
                    .and_then(|s| s.taints.as_ref())
                    .is_some_and(|t| t.iter().any(|t| t.effect == "NoSchedule"));
                if !tainted {
                    load.insert(n.name_any(), 0);
                }
            }
            for p in running
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
            {
                if let Some(n) = p.spec.as_ref().and_then(|s| s.node_name.as_ref())
                    && let Some(l) = load.get_mut(n)
                {
                    *l += 1;
                }
            }
            if let Some((node, _)) = load.into_iter().min_by_key(|(_, l)| *l) {
                let _ = bind(&c, &ns, &pod.name_any(), &node).await;
            }
        }
    })
}

fn pods_on<'a>(pods: &'a [Pod], node: &str) -> Vec<&'a Pod> {
    pods.iter()
        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_whose_lease_stops_is_tainted_and_its_pods_move() {
    let cluster = Cluster::start_with(|c| {
        c.cluster_cidr = Some("10.244.0.0/16".parse().unwrap());
        // Long enough that a busy machine does not make the live node miss it too.
        c.node_monitor_grace_period = Duration::from_secs(4);
    })
    .await;
    let c = &cluster.client;
    cluster.namespace("work").await;
    register_node(c, "node-a").await;
    register_node(c, "node-b").await;
    let a_alive = Arc::new(AtomicBool::new(true));
    let b_alive = Arc::new(AtomicBool::new(true));
    let _hb_a = heartbeat(c, "node-a", a_alive.clone());
    let _hb_b = heartbeat(c, "node-b", b_alive.clone());
    let nodes: Api<Node> = Api::all(c.clone());

    // Node IPAM: distinct pod CIDRs from the cluster CIDR.
    let cidrs = wait_for("pod CIDRs", T, || async {
        let a = nodes.get("node-a").await.ok()?.spec?.pod_cidr?;
        let b = nodes.get("node-b").await.ok()?.spec?.pod_cidr?;
        Some((a, b))
    })
    .await;
    assert_ne!(cidrs.0, cidrs.1);
    for cidr in [&cidrs.0, &cidrs.1] {
        let net: ipnet::Ipv4Net = cidr.parse().unwrap();
        assert_eq!(net.prefix_len(), 24);
        assert!(
            "10.244.0.0/16"
                .parse::<ipnet::Ipv4Net>()
                .unwrap()
                .contains(&net)
        );
    }

    let _scheduler = scheduler(c, "work");
    let _kubelet = Kubelet::start(c, "work", Duration::from_millis(20), None);
    let mut d = deployment("spread", 2, "nginx");
    d.spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .tolerations = Some(vec![Toleration {
        key: Some("node.kubernetes.io/unreachable".into()),
        operator: Some("Exists".into()),
        effect: Some("NoExecute".into()),
        toleration_seconds: Some(1),
        value: None,
    }]);
    // A graceful deletion: with no kubelet to finish it, the evicted pod stays Terminating
    // where the test can see how it was deleted.
    d.spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .termination_grace_period_seconds = Some(30);
    Api::<Deployment>::namespaced(c.clone(), "work")
        .create(&PostParams::default(), &d)
        .await
        .unwrap();
    wait_for("one ready pod on each node", T, || async {
        let pods = active_pods(c, "work", "app=spread").await;
        let ready: Vec<Pod> = pods.into_iter().filter(is_ready).collect();
        (pods_on(&ready, "node-a").len() == 1 && pods_on(&ready, "node-b").len() == 1).then_some(())
    })
    .await;
    let doomed = pods_on(&active_pods(c, "work", "app=spread").await, "node-b")[0].name_any();

    // node-b's kubelet stops: after the grace period it is Unknown and tainted.
    b_alive.store(false, Ordering::SeqCst);
    let b = wait_for("node-b to be tainted unreachable", T, || async {
        let n = nodes.get("node-b").await.ok()?;
        let taints = n.spec.as_ref()?.taints.clone()?;
        let has = |effect: &str| {
            taints
                .iter()
                .any(|t| t.key == "node.kubernetes.io/unreachable" && t.effect == effect)
        };
        (has("NoSchedule") && has("NoExecute")).then_some(n)
    })
    .await;
    let ready = b
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_deref()),
        ("Unknown", Some("NodeStatusUnknown"))
    );
    let a = nodes.get("node-a").await.unwrap();
    assert!(
        a.spec.unwrap().taints.unwrap_or_default().is_empty(),
        "the live node is untouched"
    );

    // After its 1 s toleration the pod is evicted and replaced on node-a.
    let pods: Api<Pod> = Api::namespaced(c.clone(), "work");
    let evicted = wait_for("the pod on node-b to be evicted", T, || async {
        let p = pods.get_opt(&doomed).await.ok()??;
        p.metadata.deletion_timestamp.is_some().then_some(p)
    })
    .await;
    let cond = evicted
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "DisruptionTarget");
    assert_eq!(
        cond.and_then(|c| c.reason).as_deref(),
        Some("DeletionByTaintManager")
    );
    wait_for("two ready pods on node-a", T, || async {
        let pods = active_pods(c, "work", "app=spread").await;
        let ready: Vec<Pod> = pods.into_iter().filter(is_ready).collect();
        (pods_on(&ready, "node-a").len() == 2 && ready.len() == 2).then_some(())
    })
    .await;

    // node-b comes back: Ready again, taints gone.
    b_alive.store(true, Ordering::SeqCst);
    wait_for("node-b's taints to go", T, || async {
        let n = nodes.get("node-b").await.ok()?;
        n.spec?.taints.unwrap_or_default().is_empty().then_some(())
    })
    .await;
    drop(a_alive);
}
