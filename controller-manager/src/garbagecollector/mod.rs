//! The garbage collector: deletes objects whose owners are gone and carries out the deletion
//! policies the API server only records.
//!
//! Monitors ([`monitors`]) watch every resource that can be listed, watched and deleted
//! (events excepted) and feed the dependency [`graph`]. Workers then, as Kubernetes'
//! `attemptToDeleteItem` and `attemptToOrphan` do:
//! - **background**: an object none of whose owners exists any more (checked with a live GET:
//!   gone, or a different UID) is deleted; owners that still exist but are dangling in part are
//!   removed from its references;
//! - **foreground**: an owner deleted with `propagationPolicy: Foreground` carries the
//!   `foregroundDeletion` finalizer; its dependents are deleted (in the foreground themselves
//!   when they have dependents), and the finalizer is removed once no dependent with
//!   `blockOwnerDeletion` remains;
//! - **orphan**: an owner with the `orphan` finalizer has its reference removed from every
//!   dependent, then the finalizer.
//!
//! Deletions carry UID and resourceVersion preconditions; patches carry the resourceVersion.

pub mod graph;
pub mod monitors;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::channel::mpsc;
use futures::future::{BoxFuture, join_all};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    DeleteParams, DynamicObject, Patch, PatchParams, Preconditions, PropagationPolicy,
};
use kube::{Api, Client};

use crate::Shared;
use crate::discovery::Resources;
use crate::metrics::Metrics;
use crate::runner::{is_conflict, is_not_found};
use crate::workqueue::WorkQueue;
use graph::{Event, FOREGROUND, Graph, Identity, ORPHAN, Work};

/// The controller's name.
pub const NAME: &str = "garbage-collector-controller";
/// The ServiceAccount (in kube-system) it acts as with `--use-service-account-credentials`.
pub const ACCOUNT: &str = "generic-garbage-collector";

/// Why an item could not be processed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kind of an object or owner is not served.
    #[error("{api_version}/{kind} is not a known resource")]
    UnknownKind {
        /// apiVersion.
        api_version: String,
        /// kind.
        kind: String,
    },
    /// An API call failed.
    #[error("{what} {identity}: {source}")]
    Api {
        /// The object (boxed: keeps `Result<_, Error>` small).
        identity: Box<Identity>,
        /// What was being done.
        what: &'static str,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// A cluster-scoped object names a namespaced owner: never resolvable.
    #[error("cluster-scoped {0} has a namespaced owner")]
    NamespacedOwnerOfClusterScoped(Identity),
}

/// The collector: its graph, queues and API access.
pub struct GarbageCollector {
    client: Client,
    resources: Resources,
    graph: Mutex<Graph>,
    absent: Mutex<HashSet<Identity>>,
    delete_queue: Arc<WorkQueue<String>>,
    orphan_queue: Arc<WorkQueue<String>>,
    events: mpsc::UnboundedSender<monitors::Msg>,
    metrics: Arc<Metrics>,
    synced: std::sync::atomic::AtomicBool,
}

/// What processing an item asks for.
enum Outcome {
    Done,
    Retry,
}

fn api_for(
    client: &Client,
    r: &crate::discovery::Resource,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    match (r.namespaced, namespace) {
        (true, Some(ns)) => Api::namespaced_with(client.clone(), ns, &r.api),
        _ => Api::all_with(client.clone(), &r.api),
    }
}

impl GarbageCollector {
    /// A collector over `resources`, sending virtual deletes to the graph through `events`.
    pub fn new(
        client: Client,
        resources: Resources,
        events: mpsc::UnboundedSender<monitors::Msg>,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Arc::new(Self {
            client,
            resources,
            graph: Mutex::default(),
            absent: Mutex::default(),
            delete_queue: WorkQueue::new(Duration::from_millis(5), Duration::from_secs(60)),
            orphan_queue: WorkQueue::new(Duration::from_millis(5), Duration::from_secs(60)),
            events,
            metrics,
            synced: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Applies a graph change and queues the work it causes.
    pub fn process(&self, event: Event) {
        let work: Work = self.graph.lock().expect("graph").process(event);
        {
            let mut absent = self.absent.lock().expect("absent");
            if absent.len() > 10_000 {
                absent.clear();
            }
            absent.extend(work.absent);
        }
        for uid in work.delete {
            self.delete_queue.add(uid);
        }
        for uid in work.orphan {
            self.orphan_queue.add(uid);
        }
    }

    fn resource(&self, api_version: &str, kind: &str) -> Result<crate::discovery::Resource, Error> {
        self.resources
            .lookup(api_version, kind)
            .ok_or_else(|| Error::UnknownKind {
                api_version: api_version.into(),
                kind: kind.into(),
            })
    }

    fn api(&self, id: &Identity) -> Result<Api<DynamicObject>, Error> {
        let r = self.resource(&id.api_version, &id.kind)?;
        Ok(api_for(&self.client, &r, id.namespace.as_deref()))
    }

    async fn get(&self, id: &Identity) -> Result<Option<DynamicObject>, Error> {
        self.api(id)?
            .get_opt(&id.name)
            .await
            .map_err(|source| Error::Api {
                identity: Box::new(id.clone()),
                what: "getting",
                source,
            })
    }

    fn virtual_delete(&self, id: &Identity) {
        let _ = self
            .events
            .unbounded_send(monitors::Msg::Event(Event::VirtualDelete(id.clone())));
    }

    /// Whether an owner reference of `item` is dangling (`isDangling`), and the owner if not.
    async fn owner_of(
        &self,
        r: &OwnerReference,
        item: &Identity,
    ) -> Result<Option<DynamicObject>, Error> {
        let res = self.resource(&r.api_version, &r.kind)?;
        if item.namespace.is_none() && res.namespaced {
            return Err(Error::NamespacedOwnerOfClusterScoped(item.clone()));
        }
        let owner_ns = if res.namespaced {
            item.namespace.clone()
        } else {
            None
        };
        let owner_id = Identity {
            api_version: r.api_version.clone(),
            kind: r.kind.clone(),
            namespace: owner_ns.clone(),
            name: r.name.clone(),
            uid: r.uid.clone(),
        };
        if self.absent.lock().expect("absent").contains(&owner_id) {
            return Ok(None);
        }
        let found = api_for(&self.client, &res, owner_ns.as_deref())
            .get_opt(&r.name)
            .await
            .map_err(|source| Error::Api {
                identity: Box::new(owner_id.clone()),
                what: "getting owner",
                source,
            })?;
        match found {
            Some(o) if o.metadata.uid.as_deref() == Some(r.uid.as_str()) => Ok(Some(o)),
            _ => {
                self.absent.lock().expect("absent").insert(owner_id);
                Ok(None)
            }
        }
    }

    /// `attemptToDeleteItem`.
    async fn attempt_to_delete(&self, uid: &str) -> Result<Outcome, Error> {
        let Some(node) = self.graph.lock().expect("graph").get(uid).cloned() else {
            return Ok(Outcome::Done);
        };
        if node.being_deleted && !node.deleting_dependents {
            return Ok(Outcome::Done);
        }
        let id = node.identity.clone();
        let latest = match self.get(&id).await {
            Err(Error::UnknownKind { .. }) if node.virtual_ => {
                // An owner of a kind that is not served cannot exist.
                self.virtual_delete(&id);
                return Ok(Outcome::Done);
            }
            other => other?,
        };
        let Some(latest) = latest.filter(|o| o.metadata.uid.as_deref() == Some(uid)) else {
            self.virtual_delete(&id);
            return Ok(Outcome::Done);
        };
        if node.deleting_dependents {
            return self
                .process_deleting_dependents(&id)
                .await
                .map(|()| Outcome::Done);
        }
        let refs = latest.metadata.owner_references.clone().unwrap_or_default();
        if refs.is_empty() {
            return Ok(Outcome::Done);
        }
        let (mut solid, mut dangling, mut waiting) = (vec![], vec![], vec![]);
        for r in &refs {
            match self.owner_of(r, &id).await? {
                None => dangling.push(r.clone()),
                Some(o) => {
                    let fg = o.metadata.deletion_timestamp.is_some()
                        && o.metadata
                            .finalizers
                            .iter()
                            .flatten()
                            .any(|f| f == FOREGROUND);
                    if fg {
                        waiting.push(r.clone())
                    } else {
                        solid.push(r.clone())
                    }
                }
            }
        }
        let rv = latest.metadata.resource_version.clone();
        if !solid.is_empty() {
            if dangling.is_empty() && waiting.is_empty() {
                return Ok(Outcome::Done);
            }
            let gone: HashSet<&str> = dangling
                .iter()
                .chain(&waiting)
                .map(|r| r.uid.as_str())
                .collect();
            let keep: Vec<&OwnerReference> = refs
                .iter()
                .filter(|r| !gone.contains(r.uid.as_str()))
                .collect();
            tracing::debug!(object = %id, "removing dangling owner references");
            self.patch_owner_refs(&id, rv.as_deref(), &keep).await?;
            return Ok(Outcome::Done);
        }
        let has_dependents = !node.dependents.is_empty();
        let policy = if !waiting.is_empty() && has_dependents {
            // Avoid a cycle of foreground deletions waiting for each other.
            let cycle = {
                let g = self.graph.lock().expect("graph");
                node.dependents
                    .iter()
                    .any(|d| g.get(d).is_some_and(|n| n.deleting_dependents))
            };
            if cycle {
                let unblocked: Vec<OwnerReference> = refs
                    .iter()
                    .cloned()
                    .map(|mut r| {
                        if r.block_owner_deletion == Some(true) {
                            r.block_owner_deletion = Some(false);
                        }
                        r
                    })
                    .collect();
                self.patch_owner_refs(&id, rv.as_deref(), &unblocked.iter().collect::<Vec<_>>())
                    .await?;
                return Ok(Outcome::Retry);
            }
            PropagationPolicy::Foreground
        } else {
            let finalizers = latest.metadata.finalizers.clone().unwrap_or_default();
            if finalizers.iter().any(|f| f == ORPHAN) {
                PropagationPolicy::Orphan
            } else if finalizers.iter().any(|f| f == FOREGROUND) {
                PropagationPolicy::Foreground
            } else {
                PropagationPolicy::Background
            }
        };
        tracing::debug!(object = %id, ?policy, "deleting an object whose owners are gone");
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(id.uid.clone()),
                resource_version: rv,
            }),
            propagation_policy: Some(policy),
            ..Default::default()
        };
        match self.api(&id)?.delete(&id.name, &params).await {
            Ok(_) => Ok(Outcome::Done),
            Err(e) if is_not_found(&e) => Ok(Outcome::Done),
            Err(source) => Err(Error::Api {
                identity: Box::new(id),
                what: "deleting",
                source,
            }),
        }
    }

    /// An owner being deleted in the foreground: finish when no blocking dependent is left,
    /// else make sure its dependents are being deleted (`processDeletingDependentsItem`).
    async fn process_deleting_dependents(&self, id: &Identity) -> Result<(), Error> {
        let blocking: Vec<(String, bool)> = {
            let g = self.graph.lock().expect("graph");
            g.blocking_dependents(&id.uid)
                .into_iter()
                .map(|n| (n.identity.uid.clone(), n.deleting_dependents))
                .collect()
        };
        if blocking.is_empty() {
            tracing::debug!(object = %id, "dependents gone; removing the foregroundDeletion finalizer");
            return self.remove_finalizer(id, FOREGROUND).await;
        }
        for (uid, deleting) in blocking {
            if !deleting {
                self.delete_queue.add(uid);
            }
        }
        Ok(())
    }

    /// Removes the owner from every dependent, then the `orphan` finalizer (`attemptToOrphan`).
    async fn orphan(&self, uid: &str) -> Result<(), Error> {
        let (owner, dependents) = {
            let g = self.graph.lock().expect("graph");
            let Some(n) = g.get(uid) else { return Ok(()) };
            let deps: Vec<Identity> = n
                .dependents
                .iter()
                .filter_map(|d| g.get(d).map(|n| n.identity.clone()))
                .collect();
            (n.identity.clone(), deps)
        };
        let results = join_all(dependents.iter().map(|dep| self.remove_owner_ref(dep, uid))).await;
        if let Some(e) = results.into_iter().find_map(Result::err) {
            return Err(e);
        }
        self.remove_finalizer(&owner, ORPHAN).await
    }

    async fn remove_owner_ref(&self, dep: &Identity, owner_uid: &str) -> Result<(), Error> {
        for _ in 0..5 {
            let Some(latest) = self.get(dep).await? else {
                return Ok(());
            };
            if latest.metadata.uid.as_deref() != Some(dep.uid.as_str()) {
                return Ok(());
            }
            let refs = latest.metadata.owner_references.clone().unwrap_or_default();
            if !refs.iter().any(|r| r.uid == owner_uid) {
                return Ok(());
            }
            let keep: Vec<&OwnerReference> = refs.iter().filter(|r| r.uid != owner_uid).collect();
            match self
                .patch_owner_refs(dep, latest.metadata.resource_version.as_deref(), &keep)
                .await
            {
                Ok(()) => return Ok(()),
                Err(Error::Api { source, .. }) if is_conflict(&source) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn patch_owner_refs(
        &self,
        id: &Identity,
        rv: Option<&str>,
        keep: &[&OwnerReference],
    ) -> Result<(), Error> {
        let refs = if keep.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::to_value(keep).unwrap_or_default()
        };
        let patch = serde_json::json!({"metadata": {"resourceVersion": rv, "uid": id.uid, "ownerReferences": refs}});
        match self
            .api(id)?
            .patch(&id.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(source) => Err(Error::Api {
                identity: Box::new(id.clone()),
                what: "updating owner references of",
                source,
            }),
        }
    }

    async fn remove_finalizer(&self, id: &Identity, finalizer: &str) -> Result<(), Error> {
        for _ in 0..5 {
            let Some(latest) = self.get(id).await? else {
                return Ok(());
            };
            let finalizers = latest.metadata.finalizers.clone().unwrap_or_default();
            if !finalizers.iter().any(|f| f == finalizer) {
                return Ok(());
            }
            let rest: Vec<&String> = finalizers.iter().filter(|f| *f != finalizer).collect();
            let patch = serde_json::json!({"metadata": {
                "resourceVersion": latest.metadata.resource_version,
                "finalizers": if rest.is_empty() { serde_json::Value::Null } else { serde_json::to_value(&rest).unwrap_or_default() },
            }});
            match self
                .api(id)?
                .patch(&id.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if is_not_found(&e) => return Ok(()),
                Err(e) if is_conflict(&e) => continue,
                Err(source) => {
                    return Err(Error::Api {
                        identity: Box::new(id.clone()),
                        what: "removing a finalizer of",
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    async fn delete_worker(self: Arc<Self>) {
        while let Some(uid) = self.delete_queue.get().await {
            let started = Instant::now();
            let res = self.attempt_to_delete(&uid).await;
            self.metrics.observe(NAME, started.elapsed(), res.is_ok());
            match res {
                Ok(Outcome::Done) => self.delete_queue.forget(&uid),
                Ok(Outcome::Retry) => self.delete_queue.add_rate_limited(uid.clone()),
                Err(Error::NamespacedOwnerOfClusterScoped(id)) => {
                    tracing::warn!(object = %id, "cluster-scoped object with a namespaced owner; ignored");
                    self.delete_queue.forget(&uid);
                }
                Err(e) => {
                    if is_conflict(&e) {
                        tracing::debug!(error = %e, "garbage collection conflict; retrying");
                    } else {
                        tracing::warn!(error = %e, "garbage collection failed; retrying");
                    }
                    self.delete_queue.add_rate_limited(uid.clone());
                }
            }
            // A virtual node not yet seen is polled until the monitors see it or it is gone.
            let unobserved = self
                .graph
                .lock()
                .expect("graph")
                .get(&uid)
                .is_some_and(|n| n.virtual_);
            if unobserved {
                self.delete_queue.add_rate_limited(uid.clone());
            }
            self.delete_queue.done(&uid);
        }
    }

    async fn orphan_worker(self: Arc<Self>) {
        while let Some(uid) = self.orphan_queue.get().await {
            let started = Instant::now();
            let res = self.orphan(&uid).await;
            self.metrics.observe(NAME, started.elapsed(), res.is_ok());
            match res {
                Ok(()) => self.orphan_queue.forget(&uid),
                Err(e) => {
                    tracing::warn!(error = %e, "orphaning dependents failed; retrying");
                    self.orphan_queue.add_rate_limited(uid.clone());
                }
            }
            self.orphan_queue.done(&uid);
        }
    }
}

/// Discovers the resources, starts the monitors, waits for their first lists, then runs the
/// workers until shutdown.
pub fn start(shared: &Shared) -> BoxFuture<'static, ()> {
    let client = shared.client_for(ACCOUNT);
    let metrics = shared.metrics.clone();
    let workers = shared.config.concurrent_gc_syncs.max(1);
    let shutdown = shared.shutdown();
    Box::pin(async move {
        let resources = loop {
            match Resources::discover(client.clone()).await {
                Ok(r) => break r,
                Err(e) => {
                    tracing::warn!(error = %e, "garbage collector: discovery failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        () = shutdown.clone() => return,
                    }
                }
            }
        };
        let (tx, rx) = mpsc::unbounded();
        let gc = GarbageCollector::new(
            client.clone(),
            resources.clone(),
            tx.clone(),
            metrics.clone(),
        );
        {
            let q1 = gc.delete_queue.clone();
            let q2 = gc.orphan_queue.clone();
            metrics.register_queue(NAME, move || q1.len() + q2.len());
        }
        let monitored = monitors::start(&client, &resources, tx, shutdown.clone());
        let builder = tokio::spawn(monitors::build_graph(gc.clone(), rx, monitored));
        // Act only on a complete graph.
        let synced = monitors::wait_synced(&gc, Duration::from_secs(60));
        tokio::select! {
            () = synced => {}
            () = shutdown.clone() => { builder.abort(); return; }
        }
        tracing::info!("garbage collector synced");
        let mut tasks = Vec::new();
        for _ in 0..workers {
            tasks.push(tokio::spawn(gc.clone().delete_worker()));
        }
        for _ in 0..2 {
            tasks.push(tokio::spawn(gc.clone().orphan_worker()));
        }
        shutdown.await;
        gc.delete_queue.shut_down();
        gc.orphan_queue.shut_down();
        builder.abort();
        for t in tasks {
            t.abort();
        }
    })
}

impl GarbageCollector {
    /// The graph (tests and the builder).
    pub fn graph(&self) -> std::sync::MutexGuard<'_, Graph> {
        self.graph.lock().expect("graph")
    }
}
