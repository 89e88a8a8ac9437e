//! The pod manager: the pods bound to this node as the API server reports them (a watch with
//! `spec.nodeName=<node>`), admission (max pods, CPU and memory requests against allocatable;
//! a rejected pod is marked Failed with `OutOfpods` / `OutOfcpu` / `OutOfmemory`), one worker per
//! admitted pod, and housekeeping: runtime objects and pod directories of pods that no longer
//! exist — left behind by a crashed kubelet or a force deletion — are removed.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, PodSpec};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};

use crate::context::Context;
use crate::events::EventType;
use crate::pod_worker::{self, Handle, Msg};
use crate::qos;
use crate::runtime::{PodRuntime, State};

/// A pod's spec, borrowed (the default spec when the pod has none): the status, sandbox and
/// container code read it at every sync, and copying a whole spec each time was measurable.
pub fn spec_of(pod: &Pod) -> &PodSpec {
    static EMPTY: std::sync::LazyLock<PodSpec> = std::sync::LazyLock::new(PodSpec::default);
    pod.spec.as_ref().unwrap_or(&EMPTY)
}

struct Entry {
    handle: Handle,
    pod: Arc<Pod>,
}

/// The pods of this node and their workers.
#[derive(Default)]
pub struct PodManager {
    workers: Mutex<HashMap<String, Entry>>,
    rejected: Mutex<HashMap<String, Arc<Pod>>>,
    cleaning: Arc<Mutex<HashSet<String>>>,
    synced: AtomicBool,
    generation: AtomicU64,
}

fn uid_of(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

fn terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

impl PodManager {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.workers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the initial pod list has been processed.
    pub fn synced(&self) -> bool {
        self.synced.load(Ordering::SeqCst)
    }

    /// Every pod the kubelet runs (or ran and still reports).
    pub fn pods(&self) -> Vec<Arc<Pod>> {
        self.lock().values().map(|e| e.pod.clone()).collect()
    }

    /// A pod by namespace and name.
    pub fn by_name(&self, namespace: &str, name: &str) -> Option<Arc<Pod>> {
        self.lock()
            .values()
            .map(|e| e.pod.clone())
            .chain(
                self.rejected
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .values()
                    .cloned(),
            )
            .find(|p| {
                p.metadata.namespace.as_deref() == Some(namespace)
                    && p.metadata.name.as_deref() == Some(name)
            })
    }

    /// Wakes a pod's worker.
    pub fn wake(&self, uid: &str) {
        if let Some(e) = self.lock().get(uid) {
            let _ = e.handle.tx.send(Msg::Wake);
        }
    }

    /// Tells a pod's worker the state the PLEG's relist found its sandboxes and containers in
    /// (it syncs unless that is the state it last reported on).
    pub fn relisted(&self, uid: &str, fingerprint: Vec<(String, u8)>) {
        if let Some(e) = self.lock().get(uid) {
            let _ = e.handle.tx.send(Msg::Relisted(fingerprint));
        }
    }

    /// A worker finished (its pod is gone).
    pub fn worker_done(&self, uid: &str, generation: u64) {
        let mut w = self.lock();
        if w.get(uid)
            .is_some_and(|e| e.handle.generation == generation)
        {
            w.remove(uid);
        }
    }

    /// Why the node cannot take the pod, if it cannot.
    fn admit(&self, ctx: &Context, pod: &Pod) -> Option<(String, String)> {
        let active: Vec<Arc<Pod>> = self
            .lock()
            .values()
            .filter(|e| !terminal(&e.pod) && e.pod.metadata.deletion_timestamp.is_none())
            .map(|e| e.pod.clone())
            .collect();
        let max = ctx.config.max_pods as usize;
        if active.len() >= max {
            return Some((
                "OutOfpods".into(),
                format!(
                    "Pod was rejected: Node didn't have enough resource: pods, requested: 1, used: {}, capacity: {max}",
                    active.len()
                ),
            ));
        }
        let node = ctx.node();
        let (cpu, mem) = qos::pod_requests(pod);
        let (used_cpu, used_mem) = active
            .iter()
            .map(|p| qos::pod_requests(p))
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
        if cpu > 0 && node.cpu_milli > 0 && used_cpu + cpu > node.cpu_milli {
            return Some((
                "OutOfcpu".into(),
                format!(
                    "Pod was rejected: Node didn't have enough resource: cpu, requested: {cpu}, used: {used_cpu}, capacity: {}",
                    node.cpu_milli
                ),
            ));
        }
        if mem > 0 && node.memory > 0 && used_mem + mem > node.memory {
            return Some((
                "OutOfmemory".into(),
                format!(
                    "Pod was rejected: Node didn't have enough resource: memory, requested: {mem}, used: {used_mem}, capacity: {}",
                    node.memory
                ),
            ));
        }
        None
    }

    /// A pod was added or changed.
    pub fn upsert(&self, ctx: &Arc<Context>, pod: Pod) {
        let uid = uid_of(&pod);
        if uid.is_empty() {
            return;
        }
        let pod = Arc::new(pod);
        {
            let mut w = self.lock();
            if let Some(e) = w.get_mut(&uid) {
                e.pod = pod.clone();
                let _ = e.handle.tx.send(Msg::Update(pod));
                return;
            }
        }
        {
            let mut r = self.rejected.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(known) = r.get_mut(&uid) {
                *known = pod;
                return;
            }
        }
        if !terminal(&pod)
            && pod.metadata.deletion_timestamp.is_none()
            && let Some((reason, message)) = self.admit(ctx, &pod)
        {
            self.reject(ctx, pod, reason, message);
            return;
        }
        let generation = self.generation.fetch_add(1, Ordering::SeqCst);
        let handle = pod_worker::spawn(ctx.clone(), pod.clone(), generation);
        self.lock().insert(uid, Entry { handle, pod });
    }

    fn reject(&self, ctx: &Arc<Context>, pod: Arc<Pod>, reason: String, message: String) {
        let uid = uid_of(&pod);
        ctx.metrics.rejected();
        ctx.events
            .pod(&pod, None, EventType::Warning, &reason, &message);
        self.rejected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(uid.clone(), pod.clone());
        let client = ctx.client.clone();
        tokio::spawn(async move {
            let api: Api<Pod> = Api::namespaced(
                client,
                pod.metadata.namespace.as_deref().unwrap_or_default(),
            );
            let patch = serde_json::json!({
                "metadata": {"uid": uid},
                "status": {"phase": "Failed", "reason": reason, "message": message},
            });
            if let Err(e) = api
                .patch_status(
                    pod.metadata.name.as_deref().unwrap_or_default(),
                    &PatchParams::default(),
                    &Patch::Merge(patch),
                )
                .await
            {
                tracing::warn!(error = %e, "marking a rejected pod Failed");
            }
        });
    }

    /// A pod was deleted from the API.
    pub fn delete(&self, uid: &str) {
        self.rejected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(uid);
        if let Some(e) = self.lock().get(uid) {
            let _ = e.handle.tx.send(Msg::Removed);
        }
    }

    /// The full list after a (re)list: admits in creation order and tells the workers of pods
    /// that are gone.
    pub fn resync(&self, ctx: &Arc<Context>, mut pods: Vec<Pod>) {
        let present: HashSet<String> = pods.iter().map(uid_of).collect();
        let gone: Vec<String> = self
            .lock()
            .keys()
            .filter(|u| !present.contains(*u))
            .cloned()
            .collect();
        for uid in gone {
            self.delete(&uid);
        }
        self.rejected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|u, _| present.contains(u));
        pods.sort_by(|a, b| {
            a.metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0)
                .cmp(&b.metadata.creation_timestamp.as_ref().map(|t| t.0))
        });
        for p in pods {
            self.upsert(ctx, p);
        }
        self.synced.store(true, Ordering::SeqCst);
    }

    /// Removes what pods unknown to the API left: runtime objects and pod directories.
    pub fn housekeeping(&self, ctx: &Arc<Context>, runtime: &HashMap<String, PodRuntime>) {
        if !self.synced() {
            return;
        }
        let known: HashSet<String> = self
            .lock()
            .keys()
            .cloned()
            .chain(
                self.rejected
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .keys()
                    .cloned(),
            )
            .collect();
        let mut orphans: Vec<(String, PodRuntime)> = runtime
            .iter()
            .filter(|(uid, _)| !known.contains(*uid))
            .map(|(u, p)| (u.clone(), p.clone()))
            .collect();
        for uid in ctx.volumes.pod_dirs() {
            if !known.contains(&uid) && !runtime.contains_key(&uid) {
                orphans.push((uid, PodRuntime::default()));
            }
        }
        for (uid, rt) in orphans {
            {
                let mut c = self.cleaning.lock().unwrap_or_else(|e| e.into_inner());
                if !c.insert(uid.clone()) {
                    continue;
                }
            }
            let (ctx, cleaning) = (ctx.clone(), self.cleaning.clone());
            let tasks = ctx.runtime_tasks.clone();
            tasks.spawn(async move {
                if !rt.is_empty() {
                    tracing::info!(
                        pod = %format!("{}/{}", rt.namespace, rt.name),
                        uid = %uid,
                        "removing an orphaned pod's containers and sandboxes"
                    );
                }
                // Stop gracefully with the pod's own grace period, then remove.
                let futs = rt
                    .containers
                    .iter()
                    .filter(|c| matches!(c.state, State::Running | State::Created | State::Unknown))
                    .map(|c| {
                        let grace: i64 = c
                            .annotations
                            .get(crate::labels::GRACE_PERIOD)
                            .and_then(|g| g.parse().ok())
                            .unwrap_or(30)
                            .min(30);
                        let cri = ctx.cri.clone();
                        let id = c.id.clone();
                        async move {
                            let _ = cri.stop_container(&id, grace).await;
                        }
                    });
                futures::future::join_all(futs).await;
                pod_worker::cleanup(&ctx, &uid, &rt, None).await;
                if !rt.is_empty() {
                    tracing::info!(
                        pod = %format!("{}/{}", rt.namespace, rt.name),
                        uid = %uid,
                        "removed an orphaned pod's containers and sandboxes"
                    );
                }
                cleaning
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&uid);
            });
        }
    }
}

/// Watches the pods bound to this node and feeds the manager until shutdown.
pub async fn watch(ctx: Arc<Context>) {
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let cfg = watcher::Config::default().fields(&format!("spec.nodeName={}", ctx.config.node_name));
    // The kubelet writes pods by status patches and deletes only, and never reads their
    // managed fields: its pod workers keep them without.
    let mut stream = watcher::watcher(api, cfg)
        .default_backoff()
        .modify(|p: &mut Pod| p.metadata.managed_fields = None)
        .boxed();
    let mut initial = Vec::new();
    loop {
        let ev = tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            ev = stream.next() => ev,
        };
        match ev {
            Some(Ok(Event::Init)) => initial.clear(),
            Some(Ok(Event::InitApply(p))) => initial.push(p),
            Some(Ok(Event::InitDone)) => ctx.pods.resync(&ctx, std::mem::take(&mut initial)),
            Some(Ok(Event::Apply(p))) => ctx.pods.upsert(&ctx, p),
            Some(Ok(Event::Delete(p))) => ctx.pods.delete(&uid_of(&p)),
            Some(Err(e)) => tracing::warn!(error = %e, "pod watch failed; retrying"),
            None => return,
        }
    }
}
