//! The watches that feed the scheduler: nodes into the cache, bound pods into the cache,
//! pending pods of our profiles into the queue, namespaces (for namespace selectors). Each
//! change that may make unschedulable pods schedulable is passed to the queue as a cluster
//! event. A relist (after a watch expired) removes what disappeared meanwhile.

use std::collections::HashSet;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::watch;

use crate::framework::ClusterEvent;
use crate::pod_info::{PodInfo, PodKey};
use crate::queue::QueuedPod;
use crate::scheduler::Shared;

/// Starts the node, pod and namespace watches; `synced` becomes true once all three listed.
pub(crate) fn spawn(
    shared: Arc<Shared>,
    synced: watch::Sender<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<&'static str>(3);
    let synced_task = tokio::spawn(async move {
        let mut done = HashSet::new();
        while let Some(kind) = rx.recv().await {
            done.insert(kind);
            if done.len() == 3 {
                synced.send_replace(true);
            }
        }
        // Keep the flag (and its receivers) alive while the watches run.
        std::future::pending::<()>().await;
    });
    vec![
        tokio::spawn(watch_nodes(shared.clone(), tx.clone())),
        tokio::spawn(watch_pods(shared.clone(), tx.clone())),
        tokio::spawn(watch_namespaces(shared, tx)),
        synced_task,
    ]
}

impl Shared {
    fn event(&self, event: ClusterEvent) {
        self.queue.on_event(event, |qp: &QueuedPod, ev| {
            self.frameworks
                .get(&qp.info.scheduler_name)
                .is_some_and(|f| f.event_may_help(&qp.unschedulable_plugins, ev))
        });
    }

    pub(crate) fn on_node(&self, node: Node) {
        let change = self.cache().add_or_update_node(node);
        let events = [
            (change.added, ClusterEvent::NodeAdd),
            (change.allocatable, ClusterEvent::NodeAllocatable),
            (change.labels, ClusterEvent::NodeLabel),
            (change.taints, ClusterEvent::NodeTaint),
            (change.conditions, ClusterEvent::NodeCondition),
            (change.unschedulable, ClusterEvent::NodeUnschedulable),
        ];
        for (happened, ev) in events {
            if happened {
                self.event(ev);
            }
        }
    }

    pub(crate) fn on_node_delete(&self, name: &str) {
        self.cache().remove_node(name);
    }

    pub(crate) fn on_pod(&self, pod: Pod) {
        let info = PodInfo::new(Arc::new(pod));
        if info.finished {
            self.on_pod_delete(&info.key);
            return;
        }
        if info.node_name.is_some() {
            let info = Arc::new(info.bound());
            self.queue.delete(&info.key);
            let event = {
                let mut cache = self.cache();
                cache.clear_nominated(&info.key);
                let before = cache
                    .pod(&info.key)
                    .filter(|(_, assumed)| !assumed)
                    .map(|(p, _)| p.labels.clone());
                cache.add_or_update_pod(info.clone());
                match before {
                    None => Some(ClusterEvent::AssignedPodAdd),
                    Some(labels) if labels != info.labels => Some(ClusterEvent::AssignedPodUpdate),
                    Some(_) => None,
                }
            };
            if let Some(ev) = event {
                self.event(ev);
            }
            return;
        }
        if info.terminating || !self.frameworks.contains_key(&info.scheduler_name) {
            self.queue.delete(&info.key);
            return;
        }
        let info = Arc::new(info);
        {
            let mut cache = self.cache();
            let nominated = info.nominated_node_name.as_deref();
            if cache.nominated_node(&info.key) != nominated || nominated.is_some() {
                cache.set_nominated(&info, nominated);
            }
        }
        self.queue.add_or_update(info);
    }

    pub(crate) fn on_pod_delete(&self, key: &PodKey) {
        self.queue.delete(key);
        let removed = {
            let mut cache = self.cache();
            cache.clear_nominated(key);
            cache.remove_pod(key).is_some()
        };
        if removed {
            self.event(ClusterEvent::AssignedPodDelete);
        }
    }

    fn on_namespace(&self, ns: Namespace) {
        let name = ns.metadata.name.clone().unwrap_or_default();
        let changed = self
            .cache()
            .set_namespace(&name, ns.metadata.labels.unwrap_or_default());
        if changed {
            self.event(ClusterEvent::NamespaceChange);
        }
    }
}

/// A watch of every `K` in the cluster, retried with back-off. The scheduler never reads
/// managed fields: dropping them from what it keeps (as kube-scheduler's informers do) makes
/// its cache a good deal smaller.
fn watch_all<K>(
    client: &kube::Client,
) -> impl futures::Stream<Item = Result<Event<K>, watcher::Error>> + use<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
{
    watcher::watcher(Api::<K>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .modify(|obj: &mut K| obj.meta_mut().managed_fields = None)
}

/// Folds a watcher stream into handlers, with relist handling.
async fn run_watch<K, F, D, L>(
    stream: impl futures::Stream<Item = Result<Event<K>, watcher::Error>>,
    kind: &'static str,
    synced: tokio::sync::mpsc::Sender<&'static str>,
    key_of: impl Fn(&K) -> String,
    mut apply: F,
    mut delete: D,
    list_keys: L,
) where
    F: FnMut(K),
    D: FnMut(&str),
    L: Fn() -> Vec<String>,
{
    futures::pin_mut!(stream);
    let mut seen: Option<HashSet<String>> = None;
    let mut reported = false;
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(Event::Init) => seen = Some(HashSet::new()),
            Ok(Event::InitApply(obj)) => {
                if let Some(s) = seen.as_mut() {
                    s.insert(key_of(&obj));
                }
                apply(obj);
            }
            Ok(Event::InitDone) => {
                if let Some(s) = seen.take() {
                    for k in list_keys() {
                        if !s.contains(&k) {
                            delete(&k);
                        }
                    }
                }
                if !reported {
                    reported = true;
                    let _ = synced.send(kind).await;
                }
            }
            Ok(Event::Apply(obj)) => apply(obj),
            Ok(Event::Delete(obj)) => delete(&key_of(&obj)),
            Err(e) => tracing::warn!(kind, error = %e, "watch failed; retrying"),
        }
    }
}

async fn watch_nodes(shared: Arc<Shared>, synced: tokio::sync::mpsc::Sender<&'static str>) {
    let stream = watch_all::<Node>(&shared.client);
    run_watch(
        stream,
        "nodes",
        synced,
        |n: &Node| n.metadata.name.clone().unwrap_or_default(),
        |n| shared.on_node(n),
        |name| shared.on_node_delete(name),
        || shared.cache().node_names(),
    )
    .await;
}

async fn watch_pods(shared: Arc<Shared>, synced: tokio::sync::mpsc::Sender<&'static str>) {
    // Pods keep only what scheduling reads: the scheduler writes pods only by binding, status
    // patches and deletes, never from its cached copy.
    let stream = watch_all::<Pod>(&shared.client).modify(rkube_machinery::slim::pod_for_scheduling);
    run_watch(
        stream,
        "pods",
        synced,
        |p: &Pod| PodKey::of(p).as_str().to_string(),
        |p| shared.on_pod(p),
        |key| {
            let (ns, name) = key.split_once('/').unwrap_or(("default", key));
            shared.on_pod_delete(&PodKey::new(ns, name));
        },
        || {
            let mut keys: Vec<String> = shared
                .cache()
                .pod_keys()
                .iter()
                .map(|k| k.as_str().to_string())
                .collect();
            keys.extend(shared.queue.keys().iter().map(|k| k.as_str().to_string()));
            keys
        },
    )
    .await;
}

async fn watch_namespaces(shared: Arc<Shared>, synced: tokio::sync::mpsc::Sender<&'static str>) {
    let stream = watch_all::<Namespace>(&shared.client);
    run_watch(
        stream,
        "namespaces",
        synced,
        |n: &Namespace| n.metadata.name.clone().unwrap_or_default(),
        |n| shared.on_namespace(n),
        |name| shared.cache().remove_namespace(name),
        || shared.cache().namespace_names(),
    )
    .await;
}
