//! The scheduler's cache of nodes and the pods bound (or being bound) to them, and the
//! per-cycle [`Snapshot`] taken from it.
//!
//! A pod is *assumed* on a node as soon as the scheduler decides to bind it: it counts against
//! the node at once, so the next cycle sees the node fuller, while the binding request is still
//! in flight. When the watch later shows the pod bound, the assumption is confirmed; if the
//! binding fails the pod is forgotten.
//!
//! Node infos are shared with the snapshot copy-on-write (`Arc::make_mut`): updating the
//! snapshot only swaps the `Arc`s of the nodes that changed since the last update, and the
//! cache copies a node info only when it changes one the snapshot still holds.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Taint};

use crate::pod_info::{HostPort, Labels, PodInfo, PodKey};
use crate::resources::Resource;

/// Why a cache operation was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CacheError {
    /// The pod is already in the cache (assumed or bound).
    #[error("pod {0} is already in the cache")]
    AlreadyAssumed(PodKey),
    /// The pod is not assumed.
    #[error("pod {0} is not assumed")]
    NotAssumed(PodKey),
    /// The node is not in the cache.
    #[error("node {0} is not in the cache")]
    NoSuchNode(String),
}

/// The state of a node's `Ready` condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// `Ready=True`.
    Ready,
    /// `Ready=False`.
    NotReady,
    /// `Ready=Unknown` (the node stopped reporting).
    Unknown,
    /// No `Ready` condition was ever reported.
    Missing,
}

/// Adds a normalized image name (`name:latest` when no tag or digest is given).
pub fn normalized_image_name(name: &str) -> String {
    if name.rfind(':').unwrap_or(0) <= name.rfind('/').unwrap_or(0) && !name.contains('@') {
        format!("{name}:latest")
    } else {
        name.to_string()
    }
}

/// A node and what is placed on it.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    /// The node's name.
    pub name: String,
    /// The node object.
    pub node: Arc<Node>,
    /// The node's labels.
    pub labels: Labels,
    /// What the node offers (`status.allocatable`, else `status.capacity`).
    pub allocatable: Resource,
    /// Sum of the requests of its pods.
    pub requested: Resource,
    /// Sum of the requests of its pods with cpu and memory never 0 (for scoring).
    pub non_zero_requested: Resource,
    /// Pods bound or assumed on the node.
    pub pods: Vec<Arc<PodInfo>>,
    /// How many of them have pod affinity or anti-affinity terms.
    pub pods_with_affinity: usize,
    /// How many of them have required anti-affinity terms.
    pub pods_with_required_anti_affinity: usize,
    /// Host ports in use.
    pub used_ports: Vec<HostPort>,
    /// Images on the node: normalized name → size in bytes.
    pub images: Arc<HashMap<String, i64>>,
    /// The node's Ready condition.
    pub readiness: Readiness,
    /// `spec.taints`, kept here so that filters read only the node info (every cycle touches
    /// hundreds of nodes: one object per node instead of two saves cache misses).
    taints: Vec<Taint>,
    /// `spec.unschedulable`.
    unschedulable: bool,
    /// Bumped on every change.
    pub generation: u64,
}

impl NodeInfo {
    /// A node info for a node without pods.
    pub fn new(node: Arc<Node>) -> Self {
        let mut info = NodeInfo {
            name: node.metadata.name.clone().unwrap_or_default(),
            node: node.clone(),
            labels: Arc::default(),
            allocatable: Resource::default(),
            requested: Resource::default(),
            non_zero_requested: Resource::default(),
            pods: Vec::new(),
            pods_with_affinity: 0,
            pods_with_required_anti_affinity: 0,
            used_ports: Vec::new(),
            images: Arc::default(),
            readiness: Readiness::Missing,
            taints: Vec::new(),
            unschedulable: false,
            generation: 0,
        };
        info.set_node(node);
        info
    }

    /// Replaces the node object (keeping the pods).
    pub fn set_node(&mut self, node: Arc<Node>) {
        let status = node.status.as_ref();
        let alloc = status
            .and_then(|s| s.allocatable.as_ref().or(s.capacity.as_ref()))
            .map(Resource::from_list)
            .unwrap_or_default();
        self.allocatable = alloc;
        self.labels = Arc::new(node.metadata.labels.clone().unwrap_or_default());
        self.readiness = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
            .map(|c| match c.status.as_str() {
                "True" => Readiness::Ready,
                "False" => Readiness::NotReady,
                _ => Readiness::Unknown,
            })
            .unwrap_or(Readiness::Missing);
        let mut images = HashMap::new();
        for img in status.and_then(|s| s.images.as_ref()).into_iter().flatten() {
            for name in img.names.iter().flatten() {
                images.insert(normalized_image_name(name), img.size_bytes.unwrap_or(0));
            }
        }
        if *self.images != images {
            self.images = Arc::new(images);
        }
        let spec = node.spec.as_ref();
        self.taints = spec.and_then(|s| s.taints.clone()).unwrap_or_default();
        self.unschedulable = spec.and_then(|s| s.unschedulable).unwrap_or(false);
        self.node = node;
    }

    /// The node's taints.
    pub fn taints(&self) -> &[Taint] {
        &self.taints
    }

    /// `spec.unschedulable`.
    pub fn unschedulable(&self) -> bool {
        self.unschedulable
    }

    /// Adds a pod.
    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        self.requested.add(&pod.requests);
        self.non_zero_requested.milli_cpu += pod.non_zero_requests.milli_cpu;
        self.non_zero_requested.memory += pod.non_zero_requests.memory;
        if pod.has_affinity() {
            self.pods_with_affinity += 1;
        }
        if !pod.required_anti_affinity.is_empty() {
            self.pods_with_required_anti_affinity += 1;
        }
        self.used_ports.extend(pod.host_ports.iter().cloned());
        self.pods.push(pod);
        self.generation += 1;
    }

    /// Removes a pod; returns it if it was there.
    pub fn remove_pod(&mut self, key: &PodKey) -> Option<Arc<PodInfo>> {
        let i = self.pods.iter().position(|p| &p.key == key)?;
        let pod = self.pods.swap_remove(i);
        self.requested.sub(&pod.requests);
        self.non_zero_requested.milli_cpu -= pod.non_zero_requests.milli_cpu;
        self.non_zero_requested.memory -= pod.non_zero_requests.memory;
        if pod.has_affinity() {
            self.pods_with_affinity -= 1;
        }
        if !pod.required_anti_affinity.is_empty() {
            self.pods_with_required_anti_affinity -= 1;
        }
        for hp in &pod.host_ports {
            if let Some(j) = self.used_ports.iter().position(|u| u == hp) {
                self.used_ports.swap_remove(j);
            }
        }
        self.generation += 1;
        Some(pod)
    }
}

/// What changed about a node, for re-queueing unschedulable pods.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeChange {
    /// The node is new.
    pub added: bool,
    /// Allocatable resources changed.
    pub allocatable: bool,
    /// Labels changed.
    pub labels: bool,
    /// Taints changed.
    pub taints: bool,
    /// Conditions changed (readiness).
    pub conditions: bool,
    /// `spec.unschedulable` changed.
    pub unschedulable: bool,
    /// Images changed.
    pub images: bool,
}

impl NodeChange {
    /// Whether anything the scheduler looks at changed.
    pub fn any(&self) -> bool {
        self.added
            || self.allocatable
            || self.labels
            || self.taints
            || self.conditions
            || self.unschedulable
            || self.images
    }
}

struct PodState {
    pod: Arc<PodInfo>,
    node: String,
    assumed: bool,
}

struct NodeEntry {
    info: Arc<NodeInfo>,
    /// Whether the node object is known (pods can arrive before their node).
    has_node: bool,
}

/// Nodes, their pods, assumed pods, nominated pods and namespace labels.
#[derive(Default)]
pub struct Cache {
    nodes: HashMap<String, NodeEntry>,
    pods: HashMap<PodKey, PodState>,
    assumed: usize,
    /// Nodes changed since the last snapshot update.
    /// (Ordered, so that a snapshot built from scratch lists nodes by name: runs with the same
    /// seed make the same choices.)
    dirty: BTreeSet<String>,
    /// Images: normalized name → number of nodes that have it.
    image_nodes: Arc<HashMap<String, usize>>,
    images_dirty: bool,
    /// Pods nominated to nodes by preemption: node → pods.
    nominated: Arc<HashMap<String, Vec<Arc<PodInfo>>>>,
    nominated_of: HashMap<PodKey, String>,
    nominated_dirty: bool,
    namespaces: Arc<HashMap<String, Labels>>,
    namespaces_dirty: bool,
    generation: u64,
}

impl Cache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    fn bump(&mut self) -> u64 {
        self.generation += 1;
        self.generation
    }

    fn count_images(&mut self, images: &HashMap<String, i64>, delta: isize) {
        if images.is_empty() {
            return;
        }
        let map = Arc::make_mut(&mut self.image_nodes);
        for name in images.keys() {
            let n = map.entry(name.clone()).or_insert(0);
            *n = n.saturating_add_signed(delta);
            if *n == 0 {
                map.remove(name);
            }
        }
        self.images_dirty = true;
    }

    /// Adds or updates a node; says what changed.
    pub fn add_or_update_node(&mut self, node: Node) -> NodeChange {
        let name = node.metadata.name.clone().unwrap_or_default();
        let node = Arc::new(node);
        let generation = self.bump();
        let mut change = NodeChange::default();
        let mut images_before = None;
        match self.nodes.get_mut(&name) {
            Some(entry) => {
                let info = Arc::make_mut(&mut entry.info);
                if entry.has_node {
                    let old = info.node.clone();
                    let (os, ns) = (old.spec.as_ref(), node.spec.as_ref());
                    let before = (
                        info.allocatable.clone(),
                        info.readiness,
                        info.images.clone(),
                    );
                    change.labels = old.metadata.labels != node.metadata.labels;
                    change.taints =
                        os.and_then(|s| s.taints.as_ref()) != ns.and_then(|s| s.taints.as_ref());
                    change.unschedulable =
                        os.and_then(|s| s.unschedulable) != ns.and_then(|s| s.unschedulable);
                    info.set_node(node);
                    change.allocatable = before.0 != info.allocatable;
                    change.conditions = before.1 != info.readiness;
                    change.images = !Arc::ptr_eq(&before.2, &info.images);
                    if change.images {
                        images_before = Some(before.2);
                    }
                } else {
                    info.set_node(node);
                    entry.has_node = true;
                    change.added = true;
                }
                info.generation = generation;
            }
            None => {
                let mut info = NodeInfo::new(node);
                info.generation = generation;
                self.nodes.insert(
                    name.clone(),
                    NodeEntry {
                        info: Arc::new(info),
                        has_node: true,
                    },
                );
                change.added = true;
            }
        }
        let images_now = self.nodes[&name].info.images.clone();
        if let Some(before) = images_before {
            self.count_images(&before, -1);
            self.count_images(&images_now, 1);
        } else if change.added {
            self.count_images(&images_now, 1);
        }
        self.dirty.insert(name);
        change
    }

    /// Removes a node. Its pods stay in the cache until they are deleted (as in Kubernetes).
    pub fn remove_node(&mut self, name: &str) {
        let Some(entry) = self.nodes.get_mut(name) else {
            return;
        };
        let images = entry.has_node.then(|| entry.info.images.clone());
        if entry.info.pods.is_empty() {
            self.nodes.remove(name);
        } else {
            entry.has_node = false;
        }
        if let Some(images) = images {
            self.count_images(&images, -1);
        }
        self.dirty.insert(name.to_string());
    }

    fn entry_for(&mut self, node: &str) -> &mut NodeEntry {
        self.nodes.entry(node.to_string()).or_insert_with(|| {
            let mut n = Node::default();
            n.metadata.name = Some(node.to_string());
            NodeEntry {
                info: Arc::new(NodeInfo::new(Arc::new(n))),
                has_node: false,
            }
        })
    }

    fn place(&mut self, pod: Arc<PodInfo>, node: &str) {
        let generation = self.bump();
        let entry = self.entry_for(node);
        let info = Arc::make_mut(&mut entry.info);
        info.add_pod(pod);
        info.generation = generation;
        self.dirty.insert(node.to_string());
    }

    fn unplace(&mut self, key: &PodKey, node: &str) {
        let generation = self.bump();
        if let Some(entry) = self.nodes.get_mut(node) {
            let info = Arc::make_mut(&mut entry.info);
            info.remove_pod(key);
            info.generation = generation;
            if !entry.has_node && info.pods.is_empty() {
                self.nodes.remove(node);
            }
            self.dirty.insert(node.to_string());
        }
    }

    /// Assumes a pod on a node while its binding is in flight.
    pub fn assume_pod(&mut self, pod: Arc<PodInfo>, node: &str) -> Result<(), CacheError> {
        if self.pods.contains_key(&pod.key) {
            return Err(CacheError::AlreadyAssumed(pod.key.clone()));
        }
        self.place(pod.clone(), node);
        self.pods.insert(
            pod.key.clone(),
            PodState {
                pod,
                node: node.to_string(),
                assumed: true,
            },
        );
        self.assumed += 1;
        Ok(())
    }

    /// Forgets an assumed pod whose binding failed.
    pub fn forget_pod(&mut self, key: &PodKey) -> Result<(), CacheError> {
        match self.pods.get(key) {
            Some(s) if s.assumed => {
                let node = s.node.clone();
                self.pods.remove(key);
                self.assumed -= 1;
                self.unplace(key, &node);
                Ok(())
            }
            _ => Err(CacheError::NotAssumed(key.clone())),
        }
    }

    /// Whether the pod is assumed (binding sent, not yet seen bound).
    pub fn is_assumed(&self, key: &PodKey) -> bool {
        self.pods.get(key).is_some_and(|s| s.assumed)
    }

    /// A pod in the cache and whether it is assumed.
    pub fn pod(&self, key: &PodKey) -> Option<(&Arc<PodInfo>, bool)> {
        self.pods.get(key).map(|s| (&s.pod, s.assumed))
    }

    /// The node a pod is assumed or bound on.
    pub fn node_of(&self, key: &PodKey) -> Option<&str> {
        self.pods.get(key).map(|s| s.node.as_str())
    }

    /// Adds or updates a bound pod seen on the watch (confirming an assumed one).
    pub fn add_or_update_pod(&mut self, pod: Arc<PodInfo>) {
        let Some(node) = pod.node_name.clone() else {
            return;
        };
        if let Some(state) = self.pods.get(&pod.key) {
            if state.assumed {
                self.assumed -= 1;
            }
            let old_node = state.node.clone();
            self.unplace(&pod.key, &old_node);
        }
        self.place(pod.clone(), &node);
        self.pods.insert(
            pod.key.clone(),
            PodState {
                pod,
                node,
                assumed: false,
            },
        );
    }

    /// Removes a pod (deleted or finished); returns it if it was in the cache.
    pub fn remove_pod(&mut self, key: &PodKey) -> Option<Arc<PodInfo>> {
        let state = self.pods.remove(key)?;
        if state.assumed {
            self.assumed -= 1;
        }
        self.unplace(key, &state.node);
        Some(state.pod)
    }

    /// Records that `pod` is nominated to `node` (or clears its nomination with `None`).
    pub fn set_nominated(&mut self, pod: &Arc<PodInfo>, node: Option<&str>) {
        if self.nominated_of.get(&pod.key).map(String::as_str) == node && node.is_none() {
            return;
        }
        let map = Arc::make_mut(&mut self.nominated);
        if let Some(old) = self.nominated_of.remove(&pod.key)
            && let Some(list) = map.get_mut(&old)
        {
            list.retain(|p| p.key != pod.key);
            if list.is_empty() {
                map.remove(&old);
            }
        }
        if let Some(node) = node {
            map.entry(node.to_string()).or_default().push(pod.clone());
            self.nominated_of.insert(pod.key.clone(), node.to_string());
        }
        self.nominated_dirty = true;
    }

    /// Clears a pod's nomination (bound or deleted).
    pub fn clear_nominated(&mut self, key: &PodKey) {
        if let Some(node) = self.nominated_of.remove(key) {
            let map = Arc::make_mut(&mut self.nominated);
            if let Some(list) = map.get_mut(&node) {
                list.retain(|p| &p.key != key);
                if list.is_empty() {
                    map.remove(&node);
                }
            }
            self.nominated_dirty = true;
        }
    }

    /// The node a pod is nominated to.
    pub fn nominated_node(&self, key: &PodKey) -> Option<&str> {
        self.nominated_of.get(key).map(String::as_str)
    }

    /// Pods nominated to a node.
    pub fn nominated_on(&self, node: &str) -> Vec<Arc<PodInfo>> {
        self.nominated.get(node).cloned().unwrap_or_default()
    }

    /// Sets a namespace's labels (for namespace selectors of affinity terms); says whether
    /// they changed.
    pub fn set_namespace(&mut self, name: &str, labels: BTreeMap<String, String>) -> bool {
        if self.namespaces.get(name).is_some_and(|l| **l == labels) {
            return false;
        }
        Arc::make_mut(&mut self.namespaces).insert(name.to_string(), Arc::new(labels));
        self.namespaces_dirty = true;
        true
    }

    /// Forgets a namespace.
    pub fn remove_namespace(&mut self, name: &str) {
        if self.namespaces.contains_key(name) {
            Arc::make_mut(&mut self.namespaces).remove(name);
            self.namespaces_dirty = true;
        }
    }

    /// Names of the nodes with a node object.
    pub fn node_names(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|(_, e)| e.has_node)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Keys of the pods in the cache.
    pub fn pod_keys(&self) -> Vec<PodKey> {
        self.pods.keys().cloned().collect()
    }

    /// Names of the namespaces known.
    pub fn namespace_names(&self) -> Vec<String> {
        self.namespaces.keys().cloned().collect()
    }

    /// Number of nodes (with a node object).
    pub fn node_count(&self) -> usize {
        self.nodes.values().filter(|e| e.has_node).count()
    }

    /// Number of pods (bound and assumed).
    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }

    /// Number of assumed pods.
    pub fn assumed_count(&self) -> usize {
        self.assumed
    }

    /// The node info of a node.
    pub fn node_info(&self, name: &str) -> Option<Arc<NodeInfo>> {
        self.nodes.get(name).map(|e| e.info.clone())
    }

    /// Brings a snapshot up to date with the nodes changed since its last update.
    pub fn update_snapshot(&mut self, snap: &mut Snapshot) {
        let mut affinity_changed = false;
        for name in std::mem::take(&mut self.dirty) {
            let current = self.nodes.get(&name).filter(|e| e.has_node);
            match (snap.index.get(&name).copied(), current) {
                (Some(i), Some(entry)) => {
                    let old = &snap.nodes[i];
                    affinity_changed |= old.pods_with_affinity != entry.info.pods_with_affinity
                        || old.pods_with_required_anti_affinity
                            != entry.info.pods_with_required_anti_affinity
                        || (entry.info.pods_with_affinity > 0 && old.labels != entry.info.labels);
                    snap.nodes[i] = entry.info.clone();
                }
                (Some(i), None) => {
                    affinity_changed |= snap.nodes[i].pods_with_affinity > 0;
                    snap.index.remove(&name);
                    snap.nodes.swap_remove(i);
                    if i < snap.nodes.len() {
                        let moved = snap.nodes[i].name.clone();
                        snap.index.insert(moved, i);
                    }
                }
                (None, Some(entry)) => {
                    affinity_changed |= entry.info.pods_with_affinity > 0;
                    snap.index.insert(name, snap.nodes.len());
                    snap.nodes.push(entry.info.clone());
                }
                (None, None) => {}
            }
        }
        if affinity_changed || snap.generation == 0 {
            snap.with_affinity = snap
                .nodes
                .iter()
                .filter(|n| n.pods_with_affinity > 0)
                .cloned()
                .collect();
            snap.with_required_anti_affinity = snap
                .nodes
                .iter()
                .filter(|n| n.pods_with_required_anti_affinity > 0)
                .cloned()
                .collect();
        }
        if self.images_dirty {
            snap.image_nodes = self.image_nodes.clone();
            self.images_dirty = false;
        }
        if self.nominated_dirty {
            snap.nominated = self.nominated.clone();
            self.nominated_dirty = false;
        }
        if self.namespaces_dirty {
            snap.namespaces = self.namespaces.clone();
            self.namespaces_dirty = false;
        }
        snap.generation = self.generation.max(1);
    }
}

/// A consistent view of the cluster for one scheduling cycle.
#[derive(Default, Clone)]
pub struct Snapshot {
    nodes: Vec<Arc<NodeInfo>>,
    index: HashMap<String, usize>,
    with_affinity: Vec<Arc<NodeInfo>>,
    with_required_anti_affinity: Vec<Arc<NodeInfo>>,
    image_nodes: Arc<HashMap<String, usize>>,
    nominated: Arc<HashMap<String, Vec<Arc<PodInfo>>>>,
    namespaces: Arc<HashMap<String, Labels>>,
    generation: u64,
}

impl Snapshot {
    /// An empty snapshot.
    pub fn new() -> Self {
        Self::default()
    }

    /// A snapshot of the given nodes and pods (for tests and tools).
    pub fn from_nodes(nodes: Vec<Node>, pods: Vec<Arc<PodInfo>>) -> Self {
        let mut cache = Cache::new();
        for n in nodes {
            cache.add_or_update_node(n);
        }
        for p in pods {
            cache.add_or_update_pod(p);
        }
        let mut snap = Snapshot::new();
        cache.update_snapshot(&mut snap);
        snap
    }

    /// All nodes, in a stable order.
    pub fn nodes(&self) -> &[Arc<NodeInfo>] {
        &self.nodes
    }

    /// One node.
    pub fn get(&self, name: &str) -> Option<&Arc<NodeInfo>> {
        self.index.get(name).map(|&i| &self.nodes[i])
    }

    /// Nodes with pods that have pod affinity or anti-affinity terms.
    pub fn nodes_with_affinity(&self) -> &[Arc<NodeInfo>] {
        &self.with_affinity
    }

    /// Nodes with pods that have required anti-affinity terms.
    pub fn nodes_with_required_anti_affinity(&self) -> &[Arc<NodeInfo>] {
        &self.with_required_anti_affinity
    }

    /// On how many nodes an image (normalized name) is present.
    pub fn image_node_count(&self, image: &str) -> usize {
        self.image_nodes.get(image).copied().unwrap_or(0)
    }

    /// Pods nominated to a node.
    pub fn nominated_pods(&self, node: &str) -> &[Arc<PodInfo>] {
        self.nominated
            .get(node)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Whether any pod is nominated anywhere.
    pub fn has_nominated_pods(&self) -> bool {
        !self.nominated.is_empty()
    }

    /// A namespace's labels.
    pub fn namespace_labels(&self, name: &str) -> Option<Labels> {
        self.namespaces.get(name).cloned()
    }

    /// Every namespace's labels.
    pub fn namespaces(&self) -> Arc<HashMap<String, Labels>> {
        self.namespaces.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{node, pod};

    #[test]
    fn assumed_pods_count_until_forgotten() {
        let mut cache = Cache::new();
        cache.add_or_update_node(node("n1", "4", "8Gi"));
        let p = Arc::new(PodInfo::new(Arc::new(pod("p1", "1", "1Gi"))));
        cache.assume_pod(p.clone(), "n1").unwrap();
        assert!(cache.is_assumed(&p.key));
        assert_eq!(
            cache.assume_pod(p.clone(), "n1"),
            Err(CacheError::AlreadyAssumed(p.key.clone()))
        );
        assert_eq!(cache.node_info("n1").unwrap().requested.milli_cpu, 1000);
        cache.forget_pod(&p.key).unwrap();
        assert_eq!(cache.node_info("n1").unwrap().requested.milli_cpu, 0);
        assert!(cache.forget_pod(&p.key).is_err());
    }

    #[test]
    fn the_watch_confirms_an_assumed_pod() {
        let mut cache = Cache::new();
        cache.add_or_update_node(node("n1", "4", "8Gi"));
        cache.add_or_update_node(node("n2", "4", "8Gi"));
        let p = Arc::new(PodInfo::new(Arc::new(pod("p1", "1", "1Gi"))));
        cache.assume_pod(p.clone(), "n1").unwrap();
        // Someone else bound it to n2 meanwhile: the watch wins.
        let mut bound = pod("p1", "1", "1Gi");
        bound.spec.as_mut().unwrap().node_name = Some("n2".into());
        cache.add_or_update_pod(Arc::new(PodInfo::new(Arc::new(bound))));
        assert!(!cache.is_assumed(&p.key));
        assert_eq!(cache.assumed_count(), 0);
        assert_eq!(cache.node_info("n1").unwrap().requested.milli_cpu, 0);
        assert_eq!(cache.node_info("n2").unwrap().requested.milli_cpu, 1000);
        assert!(cache.remove_pod(&p.key).is_some());
        assert_eq!(cache.node_info("n2").unwrap().pods.len(), 0);
    }

    #[test]
    fn snapshot_updates_only_changed_nodes_and_is_isolated() {
        let mut cache = Cache::new();
        for i in 0..5 {
            cache.add_or_update_node(node(&format!("n{i}"), "4", "8Gi"));
        }
        let mut snap = Snapshot::new();
        cache.update_snapshot(&mut snap);
        assert_eq!(snap.nodes().len(), 5);
        let names: Vec<&str> = snap.nodes().iter().map(|n| n.name.as_str()).collect();
        assert_eq!(
            names,
            ["n0", "n1", "n2", "n3", "n4"],
            "a fresh snapshot is by name"
        );
        let n3_before = snap.get("n3").unwrap().clone();
        let p = Arc::new(PodInfo::new(Arc::new(pod("p", "1", "1Gi"))));
        cache.assume_pod(p, "n3").unwrap();
        // The snapshot is not touched until it is updated.
        assert_eq!(snap.get("n3").unwrap().pods.len(), 0);
        cache.update_snapshot(&mut snap);
        assert_eq!(snap.get("n3").unwrap().pods.len(), 1);
        assert_eq!(n3_before.pods.len(), 0, "copy-on-write kept the old info");
        assert!(
            Arc::ptr_eq(snap.get("n1").unwrap(), &cache.node_info("n1").unwrap()),
            "unchanged nodes are shared"
        );
        cache.remove_node("n0");
        cache.update_snapshot(&mut snap);
        assert_eq!(snap.nodes().len(), 4);
        assert!(snap.get("n0").is_none());
        for (i, n) in snap.nodes().iter().enumerate() {
            assert_eq!(snap.index[&n.name], i);
        }
    }

    #[test]
    fn node_changes_are_classified() {
        let mut cache = Cache::new();
        let mut n = node("n1", "4", "8Gi");
        assert!(cache.add_or_update_node(n.clone()).added);
        assert!(!cache.add_or_update_node(n.clone()).any());
        n.metadata.labels = Some([("zone".to_string(), "a".to_string())].into());
        let c = cache.add_or_update_node(n.clone());
        assert!(c.labels && !c.allocatable && !c.taints);
        n.spec.get_or_insert_with(Default::default).taints = Some(vec![Taint {
            key: "k".into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        }]);
        assert!(cache.add_or_update_node(n.clone()).taints);
        let n2 = node("n1", "8", "8Gi");
        assert!(cache.add_or_update_node(n2).allocatable);
    }

    #[test]
    fn image_names_are_normalized() {
        assert_eq!(normalized_image_name("busybox"), "busybox:latest");
        assert_eq!(normalized_image_name("busybox:1.35"), "busybox:1.35");
        assert_eq!(
            normalized_image_name("localhost:5000/app"),
            "localhost:5000/app:latest"
        );
        assert_eq!(normalized_image_name("a@sha256:00"), "a@sha256:00");
    }
}
