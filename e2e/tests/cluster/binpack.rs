//! Scenario 5: bin-packing — pods with CPU requests fill one node before the scheduler uses
//! the next (its default NodeResourcesFit strategy, MostAllocated), and a pod that fits no
//! node stays Pending with the scheduler's reason.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use rkube_e2e::cluster::Cluster;

use crate::common::{self, name, node_of};

/// Pods of the request that fit on one node.
const PER_NODE: u64 = 3;

/// Millicores of a quantity (`2`, `1500m`).
fn millis(q: &Quantity) -> u64 {
    match q.0.strip_suffix('m') {
        Some(m) => m.parse().expect("millicores"),
        None => (q.0.parse::<f64>().expect("cores") * 1000.0) as u64,
    }
}

fn deployment(replicas: u64, cpu_millis: u64) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: packed
  namespace: pack
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: packed
  template:
    metadata:
      labels:
        app: packed
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: busybox:1.35
        command: ["sleep", "3600"]
        resources:
          requests:
            cpu: {cpu_millis}m
"#
    )
}

#[test]
fn requests_fill_one_node_before_the_next() {
    let c = Cluster::start(common::spec());
    let workers = c.workers();
    // Every worker has the same allocatable CPU (they share the machine); a request that lets
    // PER_NODE pods fit on a node, and not one more.
    let cpu: Vec<u64> = workers
        .iter()
        .map(|w| {
            let n: Node = c.get(&["node", w]).expect("the node");
            millis(&n.status.and_then(|s| s.allocatable).expect("allocatable")["cpu"])
        })
        .collect();
    assert!(cpu.windows(2).all(|w| w[0] == w[1]), "{cpu:?}");
    let request = cpu[0] / PER_NODE;
    assert!(request * (PER_NODE + 1) > cpu[0]);

    // One node's worth and one more.
    c.kubectl_ok(&["create", "namespace", "pack"]);
    c.apply(&deployment(PER_NODE + 1, request));
    let placed = c.eventually("every pod of the Deployment scheduled or refused", |c| {
        let pods = c.pods("pack", "app=packed");
        let mut per_node: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for p in &pods {
            per_node.entry(node_of(p)).or_default().push(name(p));
        }
        let scheduled: usize = per_node
            .iter()
            .filter(|(n, _)| !n.is_empty())
            .map(|(_, p)| p.len())
            .sum();
        let pending = per_node.get("").map_or(0, Vec::len);
        let want_scheduled = (PER_NODE + 1).min(PER_NODE * workers.len() as u64) as usize;
        (pods.len() as u64 == PER_NODE + 1 && scheduled == want_scheduled)
            .then_some((per_node, pending))
    });
    let (per_node, pending) = placed;
    let mut counts: Vec<usize> = per_node
        .iter()
        .filter(|(n, _)| !n.is_empty())
        .map(|(_, p)| p.len())
        .collect();
    counts.sort_unstable();
    if workers.len() == 1 {
        // Full: the last pod fits nowhere.
        assert_eq!(counts, [PER_NODE as usize], "{per_node:?}");
        assert_eq!(pending, 1);
        let pod = &per_node[""][0];
        let message = c.eventually("a FailedScheduling event", |c| {
            let out = c.kubectl_ok(&[
                "get",
                "events",
                "-n",
                "pack",
                "--field-selector",
                &format!("involvedObject.name={pod},reason=FailedScheduling"),
                "-o",
                "jsonpath={.items[*].message}",
            ]);
            (!out.is_empty()).then_some(out)
        });
        assert!(message.contains("Insufficient cpu"), "{message}");
        c.eventually("the pods that fit Running", |c| {
            let pods = c.pods("pack", "app=packed");
            let running = pods.iter().filter(|p| common::running_ready(p)).count();
            (running == PER_NODE as usize).then_some(())
        });
    } else {
        // Packed: one node full, the last pod on another.
        assert_eq!(counts, [1, PER_NODE as usize], "{per_node:?}");
        assert_eq!(pending, 0);
        common::rolled_out(&c, "pack", "packed", (PER_NODE + 1) as usize);
    }
}
