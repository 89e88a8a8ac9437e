//! Builders of Node and Pod objects for tests and benchmarks: nodes with allocatable
//! resources and a Ready condition (as a kubelet would report them), pods with requests.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    Container, Node, NodeCondition, NodeSpec, NodeStatus, Pod, PodSpec, ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use crate::pod_info::PodInfo;

fn quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
        .collect()
}

/// A node with the given allocatable resources (also its capacity), the label
/// `kubernetes.io/hostname`, and the Ready condition (`None`: no condition at all).
pub fn node_full(name: &str, resources: &[(&str, &str)], ready: Option<&str>) -> Node {
    let alloc = quantities(resources);
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                [("kubernetes.io/hostname".to_string(), name.to_string())]
                    .into_iter()
                    .collect(),
            ),
            ..Default::default()
        },
        spec: Some(NodeSpec::default()),
        status: Some(NodeStatus {
            capacity: Some(alloc.clone()),
            allocatable: Some(alloc),
            conditions: ready.map(|status| {
                vec![NodeCondition {
                    type_: "Ready".into(),
                    status: status.into(),
                    reason: Some("KubeletReady".into()),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        }),
    }
}

/// A Ready node with `cpu`, `memory` and 110 pods allocatable.
pub fn node(name: &str, cpu: &str, memory: &str) -> Node {
    node_full(
        name,
        &[("cpu", cpu), ("memory", memory), ("pods", "110")],
        Some("True"),
    )
}

/// A node with a given Ready condition status.
pub fn node_with_ready(name: &str, cpu: &str, memory: &str, ready: Option<&str>) -> Node {
    node_full(
        name,
        &[("cpu", cpu), ("memory", memory), ("pods", "110")],
        ready,
    )
}

/// A Ready node with the given allocatable resources.
pub fn node_with(name: &str, resources: &[(&str, &str)]) -> Node {
    node_full(name, resources, Some("True"))
}

/// A Ready node of 4 cpu / 8Gi with exactly the given labels.
pub fn labeled_node(name: &str, labels: &[(&str, &str)]) -> Node {
    let mut n = node(name, "4", "8Gi");
    n.metadata.labels = Some(
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    n
}

/// A pending pod in `default` with one container requesting `cpu` and `memory` (an empty
/// string leaves the request out).
pub fn pod(name: &str, cpu: &str, memory: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            uid: Some(format!("uid-{name}")),
            creation_timestamp: Some(Time(jiff::Timestamp::UNIX_EPOCH)),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: Some("registry.k8s.io/pause:3.10".into()),
                resources: Some(ResourceRequirements {
                    requests: Some(quantities(&[("cpu", cpu), ("memory", memory)])),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: None,
    }
}

/// A parsed pod built with [`pod`] and then adjusted by `f`.
pub fn pod_info(name: &str, cpu: &str, memory: &str, f: impl Fn(&mut PodSpec)) -> PodInfo {
    let mut p = pod(name, cpu, memory);
    if let Some(spec) = p.spec.as_mut() {
        f(spec);
    }
    PodInfo::new(Arc::new(p))
}
