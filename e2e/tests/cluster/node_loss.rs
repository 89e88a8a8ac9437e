//! Scenario 4: node loss — an agent killed (SIGKILL: its containerd and containers stay, as on
//! a machine whose rkube crashed) and its machine cut off the network: its node turns
//! NotReady, the node lifecycle controller taints it `node.kubernetes.io/unreachable:NoExecute`,
//! its pods (tolerating that for the server's `--default-unreachable-toleration-seconds`) are
//! evicted and recreated on the other agent, and the Service keeps answering from there. The
//! machine back on the network and its agent started again: the node is Ready, its old pods'
//! containers are removed and their objects gone.
//!
//! The eviction timeout is set short on the server: `--node-monitor-grace-period 20s` (the
//! kubelet renews its Lease every 10 s) and 5 s of default not-ready/unreachable toleration.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use rkube_e2e::cluster::{Cluster, agent_name, node_ready};

use crate::common::{self, name, node_of};

/// How long the node may take to be declared lost and its pods to be recreated: the grace
/// period, the toleration, the controllers' periods — and CI's load.
const EVICTION_LIMIT: Duration = Duration::from_secs(90);

const APP: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: loss
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: loss
spec:
  replicas: 4
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      terminationGracePeriodSeconds: 1
      topologySpreadConstraints:
      - maxSkew: 1
        topologyKey: kubernetes.io/hostname
        whenUnsatisfiable: ScheduleAnyway
        nodeTaintsPolicy: Honor
        labelSelector:
          matchLabels:
            app: web
      containers:
      - name: httpd
        image: busybox:1.35
        command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"]
        readinessProbe:
          tcpSocket:
            port: 8080
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: loss
spec:
  selector:
    app: web
  ports:
  - port: 80
    targetPort: 8080
"#;

fn node(c: &Cluster, name: &str) -> Node {
    c.get(&["node", name])
        .unwrap_or_else(|| panic!("no node {name}"))
}

fn taints(n: &Node) -> Vec<String> {
    n.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .map(|t| {
            t.iter()
                .map(|t| format!("{}:{}", t.key, t.effect))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn lost_node_pods_recreated_elsewhere_then_node_returns() {
    let mut c = Cluster::start(common::spec().server_args(&[
        "--node-monitor-grace-period",
        "20s",
        "--default-not-ready-toleration-seconds",
        "5",
        "--default-unreachable-toleration-seconds",
        "5",
    ]));
    let (kept, lost) = (agent_name(1), agent_name(2));
    c.apply(APP);
    let pods = common::rolled_out(&c, "loss", "web", 4);
    let on_lost: Vec<String> = pods
        .iter()
        .filter(|p| node_of(p) == lost)
        .map(name)
        .collect();
    assert!(!on_lost.is_empty(), "no pod on {lost}");
    let lost_pids: Vec<i32> = on_lost
        .iter()
        .flat_map(|p| c.container_pids("loss", p))
        .collect();
    assert!(!lost_pids.is_empty());

    // The machine dies for the cluster: its rkube killed, its link cut.
    let t = Instant::now();
    c.node_mut(&lost).kill();
    c.cut_link(&lost);
    c.eventually_within(&format!("{lost} NotReady"), EVICTION_LIMIT, |c| {
        (node_ready(&node(c, &lost)) != Some(true)).then_some(())
    });
    let not_ready = t.elapsed();
    let recreated = c.eventually_within(
        &format!("the pods of {lost} recreated on {kept}"),
        EVICTION_LIMIT,
        |c| {
            let pods = c.pods("loss", "app=web");
            let live: Vec<_> = pods
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect();
            (live.len() == 4
                && live
                    .iter()
                    .all(|p| node_of(p) == kept && common::running_ready(p)))
            .then(|| live.iter().map(|p| name(p)).collect::<BTreeSet<_>>())
        },
    );
    eprintln!(
        "TIMING node lost → NotReady {not_ready:.2?}, → its pods Running on {kept} {:.2?}",
        t.elapsed()
    );
    let tainted = taints(&node(&c, &lost));
    assert!(
        tainted.contains(&"node.kubernetes.io/unreachable:NoExecute".to_string()),
        "{tainted:?}"
    );
    let events = c.kubectl_ok(&[
        "get",
        "events",
        "-n",
        "loss",
        "--field-selector",
        "reason=TaintManagerEviction",
        "-o",
        "jsonpath={.items[*].involvedObject.name}",
    ]);
    for p in &on_lost {
        assert!(
            events.contains(p.as_str()),
            "no eviction event for {p}: {events}"
        );
    }
    // The Service answers from the pods left.
    let recreated: Vec<String> = recreated.into_iter().collect();
    common::wait_endpoints(&c, "loss", "web", &recreated);
    let run = c.run_pod(
        "loss",
        "client",
        Some(&kept),
        &common::requests("got", "web", 80, 10),
    );
    let got = common::answers(&run.log, "got");
    assert!(
        !got.contains_key("FAIL") && got.keys().all(|k| recreated.contains(k)),
        "{}",
        run.log
    );

    // The machine comes back: its node Ready again, its old pods' containers removed and their
    // objects gone, the recreated pods untouched.
    c.restore_link(&lost);
    let rkube = c.binaries().rkube.clone();
    c.node_mut(&lost).restart(&rkube);
    c.eventually(&format!("{lost} Ready again"), |c| {
        (node_ready(&node(c, &lost)) == Some(true)).then_some(())
    });
    c.eventually(&format!("the old pods of {lost} removed"), |c| {
        let left: Vec<String> = c.pods("loss", "app=web").iter().map(name).collect();
        let gone = on_lost.iter().all(|p| !left.contains(p));
        let killed = lost_pids
            .iter()
            .all(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists());
        (gone && killed).then_some(())
    });
    let now: BTreeSet<String> = c
        .pods("loss", "app=web")
        .iter()
        .filter(|p| common::running_ready(p))
        .map(name)
        .collect();
    assert_eq!(now.into_iter().collect::<Vec<_>>(), recreated);
    let tainted = taints(&node(&c, &lost));
    assert!(
        !tainted.iter().any(|t| t.starts_with("node.kubernetes.io/")),
        "{tainted:?}"
    );
}
