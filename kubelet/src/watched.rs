//! The ConfigMaps and Secrets a node's pods use, each kept current by a watch of that one
//! object (`fieldSelector=metadata.name=…`, what the Node authorizer lets a kubelet list and
//! watch), as the kubelet's watch-based object manager does: after the first read of an
//! object, a pod's syncs (every `sync_frequency`, and at every change of the pod) read the
//! cache instead of asking the API server. A watch starts at the first read of its object and
//! stops once nobody has read it for a while (its pods are gone).

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt as _;
use kube::Resource;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::time::Instant;

/// How long a read waits for a new watch's first list.
const FIRST_LIST: Duration = Duration::from_secs(10);

/// What a watch knows of its object.
#[derive(Clone)]
enum Known<K> {
    /// The first list has not answered yet.
    Pending,
    /// The object as last seen (`None`: it does not exist).
    Synced(Option<Arc<K>>),
    /// The first list failed (the watch keeps retrying).
    Failed(String),
}

struct Entry<K> {
    known: watch::Receiver<Known<K>>,
    /// When the object was last read; the watch stops itself once this is `idle` old.
    last_read: Arc<Mutex<Instant>>,
    task: tokio::task::AbortHandle,
}

impl<K> Entry<K> {
    /// Whether its watch still runs (it stops itself for want of readers).
    fn running(&self) -> bool {
        self.known.has_changed().is_ok()
    }
}

impl<K> Drop for Entry<K> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Objects of kind `K` by namespace and name, each behind a watch of its own.
pub struct WatchedObjects<K> {
    client: kube::Client,
    idle: Duration,
    entries: Mutex<HashMap<(String, String), Entry<K>>>,
}

/// Why an object could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The watch's first list failed (`Forbidden` while the pod is not yet known to be on
    /// this node, an unreachable API server, …).
    #[error("{0}")]
    List(String),
    /// The first list did not answer in time.
    #[error("timed out waiting for the watch of the object to list it")]
    Timeout,
}

impl<K> WatchedObjects<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
    K::DynamicType: Default,
{
    /// Watches through `client`; a watch nobody read for `idle` is stopped.
    pub fn new(client: kube::Client, idle: Duration) -> Self {
        Self {
            client,
            idle,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Objects currently watched (watches that stopped for want of readers not counted).
    pub fn watched(&self) -> usize {
        self.entries
            .lock()
            .map(|e| e.values().filter(|e| e.running()).count())
            .unwrap_or(0)
    }

    /// The object `namespace/name` (`None`: it does not exist), from its watch; the first
    /// read of an object starts the watch and waits for its first list.
    pub async fn get(&self, namespace: &str, name: &str) -> Result<Option<Arc<K>>, WatchError> {
        let mut known = {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            entries.retain(|_, e| e.running());
            let key = (namespace.to_string(), name.to_string());
            let entry = entries
                .entry(key)
                .or_insert_with(|| self.start(namespace, name));
            *entry.last_read.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
            entry.known.clone()
        };
        let first =
            tokio::time::timeout(FIRST_LIST, known.wait_for(|k| !matches!(k, Known::Pending)))
                .await;
        match first {
            Err(_) => Err(WatchError::Timeout),
            Ok(Err(_)) => Err(WatchError::List("the watch stopped".into())),
            Ok(Ok(k)) => match &*k {
                Known::Synced(obj) => Ok(obj.clone()),
                Known::Failed(e) => Err(WatchError::List(e.clone())),
                Known::Pending => Err(WatchError::Timeout),
            },
        }
    }

    fn start(&self, namespace: &str, name: &str) -> Entry<K> {
        let (tx, rx) = watch::channel(Known::Pending);
        let api = kube::Api::<K>::namespaced(self.client.clone(), namespace);
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let last_read = Arc::new(Mutex::new(Instant::now()));
        let read = last_read.clone();
        let idle = self.idle;
        let task = tokio::spawn(async move {
            let mut stream = watcher::watcher(api, config).default_backoff().boxed();
            // Objects of the list in progress (a relist replaces what was known at its end).
            let mut listed: Option<Arc<K>> = None;
            let mut check = tokio::time::interval(idle / 2);
            loop {
                let ev = tokio::select! {
                    ev = stream.next() => ev,
                    _ = check.tick() => {
                        let last = *read.lock().unwrap_or_else(|e| e.into_inner());
                        if last.elapsed() >= idle {
                            return;
                        }
                        continue;
                    }
                };
                let Some(ev) = ev else { return };
                match ev {
                    Ok(Event::Init) => listed = None,
                    Ok(Event::InitApply(obj)) => listed = Some(Arc::new(obj)),
                    Ok(Event::InitDone) => {
                        let _ = tx.send(Known::Synced(listed.take()));
                    }
                    Ok(Event::Apply(obj)) => {
                        let _ = tx.send(Known::Synced(Some(Arc::new(obj))));
                    }
                    Ok(Event::Delete(_)) => {
                        let _ = tx.send(Known::Synced(None));
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "watch of a pod's object failed; retrying");
                        // Readers waiting for a first list learn why; once listed, the last
                        // known object stays.
                        tx.send_if_modified(|k| {
                            if matches!(k, Known::Synced(_)) {
                                return false;
                            }
                            *k = Known::Failed(e.to_string());
                            true
                        });
                    }
                }
            }
        });
        Entry {
            known: rx,
            last_read,
            task: task.abort_handle(),
        }
    }
}
