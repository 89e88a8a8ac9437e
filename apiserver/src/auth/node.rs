//! The Node authorizer and NodeRestriction: a kubelet (`system:node:<name>` in `system:nodes`)
//! may read a Secret, ConfigMap or PersistentVolumeClaim only when a pod bound to its node
//! uses it, request tokens only for the ServiceAccounts of its pods, and modify only its own
//! Node and Lease and the pods bound to it. What it may do besides is up to RBAC
//! (the `system:node` ClusterRole).
//!
//! Which node may read what comes from a graph, as upstream's Node authorizer keeps one: every
//! pod's node and the objects it uses, fed by a watch of the pods, so a kubelet's request costs
//! a lookup, not a read of every pod of the namespace. When the graph says no (it may lag a pod
//! bound a moment ago), the pods of the namespace are read to be sure.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use serde::Deserialize;
use serde_json::Value;

use super::{Attributes, Decision, UserInfo};
use crate::registry::Api;
use crate::resources;
use crate::storage::{EventKind, ListOptions, ReadAt, Storage, WatchItem};

/// The kinds of objects a pod uses, as [`pod_references`] names them.
const KINDS: [&str; 4] = ["secret", "configmap", "pvc", "serviceaccount"];

/// A node's use of an object: (node, kind, namespace, name).
type Edge = (String, &'static str, String, String);

#[derive(Default)]
struct Graph {
    /// Every bound pod (by storage key): the edges it adds.
    pods: HashMap<String, Vec<Edge>>,
    /// How many pods add each edge.
    edges: HashMap<Edge, usize>,
}

impl Graph {
    /// Sets (or with `None`, removes) the pod stored at `key`.
    fn apply(&mut self, key: &str, pod: Option<&PodUses>) {
        if let Some(old) = self.pods.remove(key) {
            for e in old {
                if let Some(n) = self.edges.get_mut(&e) {
                    *n -= 1;
                    if *n == 0 {
                        self.edges.remove(&e);
                    }
                }
            }
        }
        let Some(pod) = pod else { return };
        let Some(node) = pod.node_name() else {
            return;
        };
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        let mut added: Vec<Edge> = KINDS
            .iter()
            .flat_map(|kind| {
                pod_references(pod, kind)
                    .into_iter()
                    .map(|name| (node.to_string(), *kind, namespace.to_string(), name))
            })
            .collect();
        added.sort();
        added.dedup();
        for e in &added {
            *self.edges.entry(e.clone()).or_insert(0) += 1;
        }
        self.pods.insert(key.to_string(), added);
    }
}

/// What the Node authorizer reads of a pod: its namespace, its node and the objects it uses.
/// Deserialized from the stored JSON directly; everything else (the status, managed fields,
/// the rest of the spec) is skipped unparsed, which a `Value` of the whole pod did not.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PodUses {
    metadata: UsesMeta,
    spec: UsesSpec,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct UsesMeta {
    namespace: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct UsesSpec {
    node_name: Option<String>,
    service_account_name: Option<String>,
    volumes: Option<Vec<UsesVolume>>,
    image_pull_secrets: Option<Vec<Named>>,
    containers: Option<Vec<UsesContainer>>,
    init_containers: Option<Vec<UsesContainer>>,
    ephemeral_containers: Option<Vec<UsesContainer>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct UsesVolume {
    secret: Option<SecretVolume>,
    config_map: Option<Named>,
    persistent_volume_claim: Option<ClaimVolume>,
    projected: Option<ProjectedVolume>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct SecretVolume {
    secret_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct ClaimVolume {
    claim_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ProjectedVolume {
    sources: Option<Vec<ProjectedSource>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct ProjectedSource {
    secret: Option<Named>,
    config_map: Option<Named>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct UsesContainer {
    env: Option<Vec<UsesEnv>>,
    env_from: Option<Vec<UsesEnvFrom>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct UsesEnv {
    value_from: Option<UsesEnvSource>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct UsesEnvSource {
    secret_key_ref: Option<Named>,
    config_map_key_ref: Option<Named>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct UsesEnvFrom {
    secret_ref: Option<Named>,
    config_map_ref: Option<Named>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Named {
    name: Option<String>,
}

impl PodUses {
    /// The node the pod is bound to, if any.
    fn node_name(&self) -> Option<&str> {
        self.spec.node_name.as_deref().filter(|n| !n.is_empty())
    }
}

/// A stored pod, parsed, if it may be bound: only bound pods have edges, and a pod whose JSON
/// has no `"nodeName"` key is not bound — the events of pending pods (every create) need no
/// parsing. (Treated as `None`, which drops the key's edges, as an unbound pod does.)
fn parse_bound(raw: &[u8]) -> Option<PodUses> {
    memchr::memmem::find(raw, br#""nodeName""#)?;
    serde_json::from_slice(raw).ok()
}

/// The graph of nodes and the objects their pods use, kept current from storage.
#[derive(Default)]
pub struct NodeGraph {
    graph: RwLock<Graph>,
}

impl NodeGraph {
    /// An empty graph (fill it with [`NodeGraph::spawn`]).
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Whether a pod bound to `node` uses the `kind` object `namespace/name`.
    pub fn uses(&self, node: &str, kind: &'static str, namespace: &str, name: &str) -> bool {
        let edge = (
            node.to_string(),
            kind,
            namespace.to_string(),
            name.to_string(),
        );
        self.graph
            .read()
            .expect("node graph lock")
            .edges
            .contains_key(&edge)
    }

    fn apply(&self, key: &str, value: Option<&[u8]>) {
        let pod = value.and_then(parse_bound);
        self.graph
            .write()
            .expect("node graph lock")
            .apply(key, pod.as_ref());
    }

    /// Keeps the graph in step with the pods in `store` (list, then watch; relists after
    /// errors).
    pub fn spawn(self: &Arc<Self>, store: Arc<dyn Storage>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        let prefix = resources::PODS.prefix();
        tokio::spawn(async move {
            loop {
                let listed = match store.list(&prefix, ListOptions::default()).await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(error = %e, "node graph: list failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                let mut graph = Graph::default();
                for kv in &listed.items {
                    graph.apply(&kv.key, parse_bound(&kv.value).as_ref());
                }
                *me.graph.write().expect("node graph lock") = graph;
                let mut stream = match store.watch(&prefix, true, listed.revision).await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "node graph: watch failed; relisting");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                };
                while let Some(item) = stream.next().await {
                    match item {
                        Ok(WatchItem::Event(ev)) => {
                            let value = (ev.kind != EventKind::Deleted).then_some(&ev.kv.value[..]);
                            me.apply(&ev.kv.key, value);
                        }
                        Ok(WatchItem::Progress(_)) => {}
                        Err(e) => {
                            tracing::debug!(error = %e, "node graph: watch ended; relisting");
                            break;
                        }
                    }
                }
            }
        })
    }
}

const WRITES: &[&str] = &["create", "update", "patch", "delete", "deletecollection"];

/// The name in an optional reference.
fn name(n: &Option<Named>) -> Option<&String> {
    n.as_ref().and_then(|n| n.name.as_ref())
}

/// The names of objects of `kind` ("secret", "configmap", "pvc", "serviceaccount") a pod uses.
fn pod_references(pod: &PodUses, kind: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut push = |v: Option<&String>| {
        if let Some(s) = v.filter(|s| !s.is_empty()) {
            out.push(s.clone());
        }
    };
    let spec = &pod.spec;
    if kind == "serviceaccount" {
        push(spec.service_account_name.as_ref());
        return out;
    }
    for vol in spec.volumes.iter().flatten() {
        match kind {
            "secret" => push(vol.secret.as_ref().and_then(|s| s.secret_name.as_ref())),
            "configmap" => push(name(&vol.config_map)),
            "pvc" => push(
                vol.persistent_volume_claim
                    .as_ref()
                    .and_then(|c| c.claim_name.as_ref()),
            ),
            _ => {}
        }
        let sources = vol.projected.as_ref().and_then(|p| p.sources.as_ref());
        for src in sources.into_iter().flatten() {
            match kind {
                "secret" => push(name(&src.secret)),
                "configmap" => push(name(&src.config_map)),
                _ => {}
            }
        }
    }
    if kind == "secret" {
        for s in spec.image_pull_secrets.iter().flatten() {
            push(s.name.as_ref());
        }
    }
    let containers = [
        &spec.containers,
        &spec.init_containers,
        &spec.ephemeral_containers,
    ]
    .into_iter()
    .flat_map(|c| c.iter().flatten());
    for c in containers {
        for e in c.env.iter().flatten() {
            let from = e.value_from.as_ref();
            match kind {
                "secret" => push(from.and_then(|f| name(&f.secret_key_ref))),
                "configmap" => push(from.and_then(|f| name(&f.config_map_key_ref))),
                _ => {}
            }
        }
        for e in c.env_from.iter().flatten() {
            match kind {
                "secret" => push(name(&e.secret_ref)),
                "configmap" => push(name(&e.config_map_ref)),
                _ => {}
            }
        }
    }
    out
}

/// The pods of `namespace` bound to `node`.
async fn pods_on(api: &Api, namespace: &str, node: &str) -> Vec<PodUses> {
    let prefix = resources::PODS.namespace_prefix(Some(namespace));
    let listed = api
        .store
        .list(
            &prefix,
            ListOptions {
                read_at: ReadAt::NotOlderThan(0),
                ..Default::default()
            },
        )
        .await;
    match listed {
        Ok(l) => l
            .items
            .iter()
            .filter_map(|kv| serde_json::from_slice::<PodUses>(&kv.value).ok())
            .filter(|p| p.node_name() == Some(node))
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "node authorizer: cannot list pods");
            Vec::new()
        }
    }
}

/// Whether a pod bound to `node` uses the `kind` object `namespace/name`: the graph, else
/// (it may not have seen a pod bound a moment ago) the pods of the namespace.
async fn uses(api: &Api, node: &str, kind: &'static str, namespace: &str, name: &str) -> bool {
    if api.node_graph.uses(node, kind, namespace, name) {
        return true;
    }
    pods_on(api, namespace, node)
        .await
        .iter()
        .any(|p| pod_references(p, kind).iter().any(|n| n == name))
}

/// The node a stored pod is bound to.
async fn pod_node(api: &Api, namespace: &str, name: &str) -> Option<String> {
    let kv = api
        .store
        .get(&resources::PODS.key(Some(namespace), name))
        .await
        .ok()??;
    let pod: PodUses = serde_json::from_slice(&kv.value).ok()?;
    pod.spec.node_name
}

fn deny(node: &str, what: &str) -> Decision {
    Decision::Deny(format!("node {node:?} {what}"))
}

/// The Node authorizer's decision: only for kubelet identities, else no opinion.
pub async fn authorize(api: &Api, user: &UserInfo, a: &Attributes) -> Decision {
    let Some(node) = user.node_name() else {
        return Decision::NoOpinion;
    };
    if !a.resource_request {
        return Decision::NoOpinion;
    }
    let write = WRITES.contains(&a.verb.as_str());
    match (a.api_group.as_str(), a.resource.as_str()) {
        ("", "secrets" | "configmaps" | "persistentvolumeclaims") => {
            // Reads of one object: a get, or a list or watch naming it by
            // `fieldSelector=metadata.name=…` (how a kubelet watches what its pods use).
            if !matches!(a.verb.as_str(), "get" | "list" | "watch")
                || a.name.is_empty()
                || !a.subresource.is_empty()
            {
                return deny(
                    node,
                    &format!("can only read individual {} of its pods", a.resource),
                );
            }
            let kind = match a.resource.as_str() {
                "secrets" => "secret",
                "configmaps" => "configmap",
                _ => "pvc",
            };
            if uses(api, node, kind, &a.namespace, &a.name).await {
                Decision::Allow(format!("node {node:?} runs a pod that uses it"))
            } else {
                deny(
                    node,
                    &format!(
                        "has no relationship with {} {:?} in namespace {:?}",
                        kind, a.name, a.namespace
                    ),
                )
            }
        }
        ("", "serviceaccounts") if a.subresource == "token" => {
            if a.verb == "create" && uses(api, node, "serviceaccount", &a.namespace, &a.name).await
            {
                Decision::Allow(format!("node {node:?} runs a pod of the service account"))
            } else {
                deny(
                    node,
                    &format!("runs no pod of service account {:?}", a.name),
                )
            }
        }
        ("", "nodes") if write && !a.name.is_empty() && a.name != node => {
            deny(node, &format!("cannot modify node {:?}", a.name))
        }
        ("", "nodes") if write && a.name.is_empty() && a.verb != "create" => {
            deny(node, "cannot modify other nodes")
        }
        ("coordination.k8s.io", "leases") if write => {
            if a.namespace != "kube-node-lease" || (!a.name.is_empty() && a.name != node) {
                deny(node, &format!("cannot modify lease {:?}", a.name))
            } else if a.name.is_empty() && a.verb != "create" {
                deny(node, "cannot modify other leases")
            } else {
                Decision::NoOpinion
            }
        }
        ("", "pods") if write && a.verb != "create" => {
            if a.name.is_empty() {
                return deny(node, "cannot modify pods it does not run");
            }
            match pod_node(api, &a.namespace, &a.name).await {
                Some(n) if n == node => Decision::NoOpinion,
                // A missing pod: the request fails with 404 anyway.
                None => Decision::NoOpinion,
                Some(_) => deny(
                    node,
                    &format!(
                        "cannot modify pod {:?}: it is bound to another node",
                        a.name
                    ),
                ),
            }
        }
        _ => Decision::NoOpinion,
    }
}

/// NodeRestriction for creates, which name their object in the body: a kubelet may create
/// only its own Node and Lease, and only pods bound to itself (mirror pods).
pub fn admit_create(user: &UserInfo, resource: &str, body: &Value) -> Result<(), String> {
    let Some(node) = user.node_name() else {
        return Ok(());
    };
    let name = body["metadata"]["name"].as_str().unwrap_or_default();
    match resource {
        "nodes" | "leases" if name != node => Err(format!(
            "node {node:?} is not allowed to create {resource} {name:?}"
        )),
        "pods" if body["spec"]["nodeName"].as_str() != Some(node) => Err(format!(
            "node {node:?} can only create pods with spec.nodeName set to itself"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_what_pods_use() {
        let pod: PodUses = serde_json::from_value(json!({"spec": {
            "serviceAccountName": "bot",
            "imagePullSecrets": [{"name": "pull"}],
            "volumes": [
                {"name": "a", "secret": {"secretName": "vol-secret"}},
                {"name": "b", "configMap": {"name": "vol-cm"}},
                {"name": "c", "persistentVolumeClaim": {"claimName": "data"}},
                {"name": "d", "projected": {"sources": [{"secret": {"name": "proj"}}, {"configMap": {"name": "proj-cm"}}]}}
            ],
            "containers": [{"name": "x",
                "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "k"}}}],
                "envFrom": [{"configMapRef": {"name": "env-cm"}}]}],
            "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "init-secret"}}],
                "env": [{"name": "B", "value": "plain"}, {"name": "C", "valueFrom": null}]}]
        }}))
        .unwrap();
        let mut secrets = pod_references(&pod, "secret");
        secrets.sort();
        assert_eq!(
            secrets,
            ["env-secret", "init-secret", "proj", "pull", "vol-secret"]
        );
        let mut cms = pod_references(&pod, "configmap");
        cms.sort();
        assert_eq!(cms, ["env-cm", "proj-cm", "vol-cm"]);
        assert_eq!(pod_references(&pod, "pvc"), ["data"]);
        assert_eq!(pod_references(&pod, "serviceaccount"), ["bot"]);
    }

    #[test]
    fn the_graph_follows_pods_and_counts_shared_uses() {
        let pod = |node: &str, cm: &str| {
            json!({"metadata": {"namespace": "ns"}, "spec": {"nodeName": node,
                "serviceAccountName": "bot",
                "volumes": [{"name": "a", "configMap": {"name": cm}},
                            {"name": "b", "configMap": {"name": cm}}]}})
        };
        let g = NodeGraph::default();
        let set = |key: &str, v: Option<Value>| {
            g.apply(key, v.map(|v| serde_json::to_vec(&v).unwrap()).as_deref())
        };
        set("/registry/pods/ns/p1", Some(pod("n1", "cm")));
        set("/registry/pods/ns/p2", Some(pod("n1", "cm")));
        assert!(g.uses("n1", "configmap", "ns", "cm"));
        assert!(g.uses("n1", "serviceaccount", "ns", "bot"));
        assert!(!g.uses("n2", "configmap", "ns", "cm"));
        assert!(!g.uses("n1", "configmap", "other", "cm"));
        assert!(!g.uses("n1", "secret", "ns", "cm"));
        // One of two pods gone: the other still uses it.
        set("/registry/pods/ns/p1", None);
        assert!(g.uses("n1", "configmap", "ns", "cm"));
        // Rebound elsewhere (an update replaces the pod's edges).
        set("/registry/pods/ns/p2", Some(pod("n2", "other-cm")));
        assert!(!g.uses("n1", "configmap", "ns", "cm"));
        assert!(g.uses("n2", "configmap", "ns", "other-cm"));
        // Unbound pods add nothing, with an empty node name or none at all (those are not
        // even parsed).
        set("/registry/pods/ns/p3", Some(pod("", "cm")));
        assert!(!g.uses("", "configmap", "ns", "cm"));
        let mut pending = pod("x", "pending-cm");
        pending["spec"].as_object_mut().unwrap().remove("nodeName");
        set("/registry/pods/ns/p4", Some(pending.clone()));
        assert!(!g.uses("x", "configmap", "ns", "pending-cm"));
        assert!(
            !g.graph
                .read()
                .unwrap()
                .pods
                .contains_key("/registry/pods/ns/p4")
        );
        // A value without a node drops what the key had, as before.
        set("/registry/pods/ns/p4", Some(pod("n3", "pending-cm")));
        assert!(g.uses("n3", "configmap", "ns", "pending-cm"));
        set("/registry/pods/ns/p4", Some(pending));
        assert!(!g.uses("n3", "configmap", "ns", "pending-cm"));
        set("/registry/pods/ns/p2", None);
        let graph = g.graph.read().unwrap();
        assert!(graph.edges.is_empty(), "{:?}", graph.edges);
        assert_eq!(graph.pods.len(), 0);
    }

    #[test]
    fn node_creates_are_restricted() {
        let n1 = UserInfo::authenticated("system:node:n1", "", vec![super::super::NODES.into()]);
        assert!(admit_create(&n1, "nodes", &json!({"metadata": {"name": "n1"}})).is_ok());
        assert!(admit_create(&n1, "nodes", &json!({"metadata": {"name": "n2"}})).is_err());
        assert!(
            admit_create(
                &n1,
                "pods",
                &json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n2"}})
            )
            .is_err()
        );
        let other = UserInfo::authenticated("jane", "", vec![]);
        assert!(admit_create(&other, "nodes", &json!({"metadata": {"name": "n2"}})).is_ok());
    }
}
