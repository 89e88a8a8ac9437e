//! What the scenarios share: the cluster they start, waiting for workloads, reading pods, and
//! requests from a client pod.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Endpoints, Pod};
use rkube_e2e::cluster::{Cluster, ClusterSpec};

/// The agents of every scenario's cluster (besides the server, whose node then takes no
/// workloads).
pub const AGENTS: usize = 2;

/// The cluster most scenarios run on.
pub fn spec() -> ClusterSpec {
    ClusterSpec::with_agents(AGENTS)
}

/// The pod's name.
pub fn name(p: &Pod) -> String {
    p.metadata.name.clone().unwrap_or_default()
}

/// The node the pod is bound to.
pub fn node_of(p: &Pod) -> String {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default()
}

/// Whether the pod runs, is Ready, and is not being deleted.
pub fn running_ready(p: &Pod) -> bool {
    let status = p.status.as_ref();
    p.metadata.deletion_timestamp.is_none()
        && status.and_then(|s| s.phase.as_deref()) == Some("Running")
        && status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The first container's (ID, restart count).
pub fn first_container(p: &Pod) -> (String, i32) {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .map(|c| (c.container_id.clone().unwrap_or_default(), c.restart_count))
        .unwrap_or_default()
}

/// Waits until Deployment `ns/name` has rolled out `replicas` pods, all Running and Ready
/// (and no others: none terminating); returns them sorted by name.
pub fn rolled_out(c: &Cluster, ns: &str, name: &str, replicas: usize) -> Vec<Pod> {
    c.eventually(
        &format!("deployment {ns}/{name}: {replicas} pods Running and Ready"),
        |c| {
            let d: Deployment = c.get(&["deployment", "-n", ns, name])?;
            let status = d.status?;
            let done = status.observed_generation == d.metadata.generation
                && status.updated_replicas.unwrap_or(0) as usize == replicas
                && status.ready_replicas.unwrap_or(0) as usize == replicas
                && status.replicas.unwrap_or(0) as usize == replicas;
            if !done {
                return None;
            }
            let selector = d
                .spec?
                .selector
                .match_labels?
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",");
            let mut pods = c.pods(ns, &selector);
            (pods.len() == replicas && pods.iter().all(running_ready)).then(|| {
                pods.sort_by_key(name_of);
                pods
            })
        },
    )
}

fn name_of(p: &Pod) -> String {
    name(p)
}

/// The ready addresses (pod names) of the Service's Endpoints.
pub fn endpoint_pods(c: &Cluster, ns: &str, service: &str) -> Vec<String> {
    let Some(e) = c.get::<Endpoints>(&["endpoints", "-n", ns, service]) else {
        return Vec::new();
    };
    let mut pods: Vec<String> = e
        .subsets
        .unwrap_or_default()
        .into_iter()
        .flat_map(|s| s.addresses.unwrap_or_default())
        .filter_map(|a| a.target_ref.and_then(|r| r.name))
        .collect();
    pods.sort();
    pods
}

/// Waits until the Service's ready endpoints are exactly `pods`.
pub fn wait_endpoints(c: &Cluster, ns: &str, service: &str, pods: &[String]) {
    let mut want = pods.to_vec();
    want.sort();
    c.eventually(
        &format!("service {ns}/{service} with the endpoints {want:?}"),
        |c| (endpoint_pods(c, ns, service) == want).then_some(()),
    );
}

/// A shell loop for a client pod: `n` HTTP requests to `host:port`, one output line each,
/// `TAG BODY-LAST-LINE` or `TAG FAIL`.
pub fn requests(tag: &str, host: &str, port: u16, n: u32) -> String {
    format!(
        "i=0; while [ $i -lt {n} ]; do i=$((i+1)); \
         r=$(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {host} {port} | tail -n 1); \
         echo \"{tag} ${{r:-FAIL}}\"; done"
    )
}

/// Counts of the answers to the requests tagged `tag` in a client's log.
pub fn answers(log: &str, tag: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for line in log.lines() {
        if let Some(rest) = line.strip_prefix(tag).and_then(|r| r.strip_prefix(' ')) {
            *out.entry(rest.trim().to_string()).or_default() += 1;
        }
    }
    out
}
