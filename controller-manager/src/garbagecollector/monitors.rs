//! The garbage collector's monitors: one metadata-only watch per collectable resource (events
//! excepted), turned into graph changes. A relist reports the objects that vanished while the watch was
//! down as deletions. The graph is complete once every monitor has listed once.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt;
use futures::channel::mpsc;
use kube::api::DynamicObject;
use kube::core::PartialObjectMeta;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};

use super::GarbageCollector;
use super::graph::{Event, Identity, Summary};
use crate::Shutdown;
use crate::discovery::{Resource, Resources};

/// What monitors tell the graph builder.
pub enum Msg {
    /// A change.
    Event(Event),
    /// A (re)list of one resource finished with these UIDs.
    Listed {
        /// apiVersion of the resource.
        api_version: String,
        /// Kind.
        kind: String,
        /// UIDs listed.
        uids: HashSet<String>,
    },
}

/// The summary of an object of resource `r`.
pub fn summary(r: &Resource, o: &PartialObjectMeta<DynamicObject>) -> Summary {
    let m = &o.metadata;
    Summary {
        identity: Identity {
            api_version: r.api.api_version.clone(),
            kind: r.api.kind.clone(),
            namespace: m.namespace.clone().filter(|n| !n.is_empty()),
            name: m.name.clone().unwrap_or_default(),
            uid: m.uid.clone().unwrap_or_default(),
        },
        owners: m.owner_references.clone().unwrap_or_default(),
        being_deleted: m.deletion_timestamp.is_some(),
        finalizers: m.finalizers.clone().unwrap_or_default(),
    }
}

/// Whether the collector ignores a resource (events, as Kubernetes does).
fn ignored(r: &Resource) -> bool {
    r.api.plural == "events" && (r.api.group.is_empty() || r.api.group == "events.k8s.io")
}

/// Starts a monitor per collectable resource; returns how many.
pub fn start(
    client: &Client,
    resources: &Resources,
    tx: mpsc::UnboundedSender<Msg>,
    shutdown: Shutdown,
) -> usize {
    let mut n = 0;
    for r in resources.collectable().filter(|r| !ignored(r)) {
        n += 1;
        let r = r.clone();
        // Metadata only (`as=PartialObjectMetadata`), as Kubernetes' collector watches: the
        // graph needs names, UIDs, owners and finalizers, not the objects.
        let api: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(client.clone(), &r.api);
        let tx = tx.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut stream = watcher(api, watcher::Config::default())
                .default_backoff()
                .boxed();
            let mut listing: Option<HashSet<String>> = None;
            loop {
                let ev = tokio::select! {
                    ev = stream.next() => match ev { Some(ev) => ev, None => break },
                    () = shutdown.clone() => break,
                };
                let msg = match ev {
                    Ok(watcher::Event::Apply(o)) => Msg::Event(Event::Upsert(summary(&r, &o))),
                    Ok(watcher::Event::Delete(o)) => Msg::Event(Event::Delete(summary(&r, &o))),
                    Ok(watcher::Event::Init) => {
                        listing = Some(HashSet::new());
                        continue;
                    }
                    Ok(watcher::Event::InitApply(o)) => {
                        if let (Some(l), Some(uid)) = (listing.as_mut(), o.metadata.uid.clone()) {
                            l.insert(uid);
                        }
                        Msg::Event(Event::Upsert(summary(&r, &o)))
                    }
                    Ok(watcher::Event::InitDone) => Msg::Listed {
                        api_version: r.api.api_version.clone(),
                        kind: r.api.kind.clone(),
                        uids: listing.take().unwrap_or_default(),
                    },
                    Err(e) => {
                        tracing::debug!(resource = %r.api.plural, error = %e, "garbage collector monitor: watch failed");
                        continue;
                    }
                };
                if tx.unbounded_send(msg).is_err() {
                    break;
                }
            }
        });
    }
    n
}

/// Applies the monitors' messages to the graph; marks the collector synced once every one of
/// the `monitors` has listed.
pub async fn build_graph(
    gc: Arc<GarbageCollector>,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    monitors: usize,
) {
    let mut listed: HashSet<(String, String)> = HashSet::new();
    if monitors == 0 {
        gc.synced.store(true, Ordering::SeqCst);
    }
    while let Some(msg) = rx.next().await {
        match msg {
            Msg::Event(e) => gc.process(e),
            Msg::Listed {
                api_version,
                kind,
                uids,
            } => {
                let gone: Vec<Identity> = gc
                    .graph()
                    .observed_of(&api_version, &kind)
                    .into_iter()
                    .filter(|id| !uids.contains(&id.uid))
                    .collect();
                for id in gone {
                    gc.process(Event::Delete(Summary {
                        identity: id,
                        owners: vec![],
                        being_deleted: true,
                        finalizers: vec![],
                    }));
                }
                listed.insert((api_version, kind));
                if listed.len() >= monitors {
                    gc.synced.store(true, Ordering::SeqCst);
                }
            }
        }
    }
}

/// Waits until the graph is complete (or `timeout`, after which the collector starts anyway).
pub async fn wait_synced(gc: &GarbageCollector, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !gc.synced.load(Ordering::SeqCst) {
        if tokio::time::Instant::now() > deadline {
            tracing::warn!("garbage collector: not every resource listed in time; starting anyway");
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
