//! The watch cache: a [`Storage`] over any backend that keeps, per resource prefix, the current
//! objects and a window of recent events in memory, fed by one backend watch. Lists at
//! "any recent revision" (resourceVersion="0") and every watch are served from memory, so a
//! thousand watchers cost one backend watch. Writes, gets, consistent and exact lists go to the
//! backend; a watch older than the window falls back to the backend's own history.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use super::{
    Event, EventKind, IndexValue, KeyValue, ListOptions, ListResult, ReadAt, Result, Revision,
    Storage, StorageError, WatchItem, WatchStream, key_in_range, watch_matches,
};

/// Settings of the watch cache.
#[derive(Clone, Debug)]
pub struct CacheConfig {
    /// Events kept per prefix for watches that start in the recent past.
    pub history: usize,
    /// Bytes of those events (new and previous values) kept per prefix at most: big objects
    /// that change often (Nodes) keep a shorter window. A watch from before the window is
    /// served by the backend's history instead.
    pub history_bytes: usize,
    /// Capacity of the fan-out to watchers; a watcher that falls further behind catches up from
    /// the history window (or is closed and re-watches).
    pub fanout_capacity: usize,
    /// How long a list waits for the cache to reach a requested revision.
    pub freshness_wait: Duration,
    /// How often watchers get a progress notification (bookmark) of the cache's revision.
    pub progress_interval: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            history: 4_096,
            history_bytes: 16 << 20,
            fanout_capacity: 1_024,
            freshness_wait: Duration::from_secs(3),
            progress_interval: Duration::from_secs(5),
        }
    }
}

/// A watch cache over `backend` for the given key prefixes (one cache per prefix, started on
/// first use). Keys outside every prefix pass straight through.
pub struct WatchCache {
    backend: Arc<dyn Storage>,
    prefixes: Vec<String>,
    config: CacheConfig,
    caches: Mutex<HashMap<String, Arc<PrefixCache>>>,
}

impl WatchCache {
    /// Caches `prefixes` (each ending in `/`) of `backend`.
    pub fn new(backend: Arc<dyn Storage>, prefixes: Vec<String>, config: CacheConfig) -> Self {
        Self {
            backend,
            prefixes,
            config,
            caches: Mutex::new(HashMap::new()),
        }
    }

    /// The cache serving `key`, if one of the prefixes covers it.
    fn cache_for(&self, key: &str) -> Option<Arc<PrefixCache>> {
        let prefix = self
            .prefixes
            .iter()
            .filter(|p| key.starts_with(p.as_str()))
            .max_by_key(|p| p.len())?;
        let mut caches = self.caches.lock().expect("caches lock");
        let cache = caches.entry(prefix.clone()).or_insert_with(|| {
            PrefixCache::start(prefix.clone(), self.backend.clone(), &self.config)
        });
        Some(cache.clone())
    }
}

/// The state of one prefix's cache, for `/metrics`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheStats {
    /// The resource (the prefix without `/registry/` and the trailing `/`).
    pub resource: String,
    /// Watches it serves.
    pub watchers: usize,
    /// Events the slowest of them has not read yet.
    pub queued: usize,
    /// Objects it holds.
    pub objects: usize,
    /// Events in its window of recent history.
    pub window_events: usize,
    /// Bytes of those events (keys, new and previous values).
    pub window_bytes: usize,
    /// The newest revision it has seen.
    pub revision: Revision,
}

impl WatchCache {
    /// The state of every prefix cache started so far, by resource.
    pub fn stats(&self) -> Vec<CacheStats> {
        let caches: Vec<Arc<PrefixCache>> = self
            .caches
            .lock()
            .expect("caches lock")
            .values()
            .cloned()
            .collect();
        let mut out: Vec<CacheStats> = caches
            .iter()
            .map(|c| {
                let st = c.state.read().expect("state lock");
                CacheStats {
                    resource: c
                        .prefix
                        .trim_start_matches("/registry/")
                        .trim_end_matches('/')
                        .to_string(),
                    watchers: c.tx.receiver_count()
                        + st.by_value
                            .values()
                            .map(|t| t.receiver_count())
                            .sum::<usize>(),
                    queued: c.tx.len() + st.by_value.values().map(|t| t.len()).sum::<usize>(),
                    objects: st.items.len(),
                    window_events: st.events.len(),
                    window_bytes: st.events_bytes,
                    revision: st.revision,
                }
            })
            .collect();
        out.sort_by(|a, b| a.resource.cmp(&b.resource));
        out
    }

    /// Stops the feeding tasks and waits for them, releasing the backend.
    pub async fn close(&self) {
        let tasks: Vec<JoinHandle<()>> = self
            .caches
            .lock()
            .expect("caches lock")
            .values()
            .filter_map(|c| c.task.lock().expect("task lock").take())
            .collect();
        for t in tasks {
            t.abort();
            let _ = t.await;
        }
    }
}

impl Drop for WatchCache {
    fn drop(&mut self) {
        for cache in self.caches.lock().expect("caches lock").values() {
            if let Some(task) = cache.task.lock().expect("task lock").take() {
                task.abort();
            }
        }
    }
}

/// Capacity of the fan-out to the watchers of one value of an indexed field (a node's
/// kubelet): small, since one is made per value watched; a watcher that falls behind catches
/// up from the window.
const INDEXED_FANOUT_CAPACITY: usize = 64;

/// A field of a prefix's objects whose watchers are told only of the changes of objects
/// with their value (old or new), as Kubernetes' watch cache indexes pods by
/// `spec.nodeName`: each kubelet watches its node's pods, and a change of one pod then
/// wakes one kubelet's watch, not every kubelet's.
#[derive(Clone, Copy)]
struct Index {
    field: &'static str,
    /// The field's value in a stored object (`None`: unset or not readable).
    of: fn(&[u8]) -> Option<String>,
}

impl Index {
    /// The object's values after and before the change (each once): its watchers, including
    /// one that sees the object leave (as DELETED).
    fn values(&self, ev: &Event) -> Vec<String> {
        let now = (self.of)(&ev.kv.value);
        let before = ev.prev.as_ref().and_then(|p| (self.of)(&p.value));
        let before = before.filter(|b| Some(b) != now.as_ref());
        now.into_iter().chain(before).collect()
    }
}

/// The index of a prefix, if it has one.
fn index_of(prefix: &str) -> Option<Index> {
    (prefix == crate::resources::PODS.prefix()).then_some(Index {
        field: "spec.nodeName",
        of: pod_node_name,
    })
}

/// `spec.nodeName` of a stored pod.
fn pod_node_name(value: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Spec {
        #[serde(rename = "nodeName")]
        node_name: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Pod {
        spec: Option<Spec>,
    }
    serde_json::from_slice::<Pod>(value)
        .ok()?
        .spec?
        .node_name
        .filter(|n| !n.is_empty())
}

/// What the fan-out carries.
#[derive(Clone, Debug)]
enum Msg {
    Item(WatchItem),
    /// The cache relisted: its watchers must re-watch.
    Reset,
}

struct State {
    items: BTreeMap<String, KeyValue>,
    revision: Revision,
    events: VecDeque<Arc<Event>>,
    /// The bytes of `events`, as [`event_bytes`] counts them.
    events_bytes: usize,
    /// Every event after this revision is in `events`.
    oldest: Revision,
    ready: bool,
    /// The fan-out to the watchers of each value of the prefix's index.
    by_value: HashMap<String, broadcast::Sender<Msg>>,
}

impl State {
    /// Sends to the watchers of these values of the index, forgetting values nobody
    /// watches any more.
    fn send_indexed<'a>(&mut self, values: impl IntoIterator<Item = &'a str>, msg: &Msg) {
        for v in values {
            if let Some(tx) = self.by_value.get(v)
                && tx.send(msg.clone()).is_err()
            {
                self.by_value.remove(v);
            }
        }
    }

    /// Sends to the watchers of every value of the index.
    fn send_all_indexed(&mut self, msg: &Msg) {
        self.by_value.retain(|_, tx| tx.send(msg.clone()).is_ok());
    }
}

struct PrefixCache {
    prefix: String,
    index: Option<Index>,
    history: usize,
    history_bytes: usize,
    freshness_wait: Duration,
    progress_interval: Duration,
    state: RwLock<State>,
    tx: broadcast::Sender<Msg>,
    /// The cache's revision, for waiting until it is fresh enough (`None` until the first list).
    revision: watch::Sender<Option<Revision>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl PrefixCache {
    fn start(prefix: String, backend: Arc<dyn Storage>, config: &CacheConfig) -> Arc<Self> {
        let cache = Arc::new(Self {
            index: index_of(&prefix),
            prefix,
            history: config.history.max(1),
            history_bytes: config.history_bytes,
            freshness_wait: config.freshness_wait,
            progress_interval: config.progress_interval,
            state: RwLock::new(State {
                items: BTreeMap::new(),
                revision: 0,
                events: VecDeque::new(),
                events_bytes: 0,
                oldest: 0,
                ready: false,
                by_value: HashMap::new(),
            }),
            tx: broadcast::channel(config.fanout_capacity.max(16)).0,
            revision: watch::channel(None).0,
            task: Mutex::new(None),
        });
        let task = tokio::spawn(feed(Arc::downgrade(&cache), backend));
        *cache.task.lock().expect("task lock") = Some(task);
        cache
    }

    /// Waits until the cache holds state at `at` or newer.
    async fn wait_for(&self, at: Revision) -> Result<()> {
        let mut rx = self.revision.subscribe();
        let fresh = rx.wait_for(|r| r.is_some_and(|r| r >= at));
        match tokio::time::timeout(self.freshness_wait, fresh).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(StorageError::Unavailable("watch cache stopped".into())),
            Err(_) => {
                let current = self.state.read().expect("state lock").revision;
                if self.state.read().expect("state lock").ready {
                    Err(StorageError::FutureRevision {
                        requested: at,
                        current,
                    })
                } else {
                    Err(StorageError::Unavailable(format!(
                        "watch cache for {} is not ready",
                        self.prefix
                    )))
                }
            }
        }
    }

    fn reset(&self, list: ListResult) {
        let mut st = self.state.write().expect("state lock");
        let was_ready = st.ready;
        st.items = list
            .items
            .into_iter()
            .map(|kv| (kv.key.clone(), kv))
            .collect();
        st.revision = list.revision;
        st.events.clear();
        st.events_bytes = 0;
        st.oldest = list.revision;
        st.ready = true;
        if was_ready {
            let _ = self.tx.send(Msg::Reset);
            st.send_all_indexed(&Msg::Reset);
        }
        self.revision.send_replace(Some(list.revision));
    }

    /// Tells every watcher that everything up to the cache's revision has been delivered.
    fn bookmark(&self) {
        let mut st = self.state.write().expect("state lock");
        if st.ready {
            let msg = Msg::Item(WatchItem::Progress(st.revision));
            st.send_all_indexed(&msg);
            let _ = self.tx.send(msg);
        }
    }

    fn apply(&self, item: WatchItem) {
        let mut st = self.state.write().expect("state lock");
        match &item {
            WatchItem::Event(ev) => {
                if ev.revision() <= st.revision {
                    return;
                }
                match ev.kind {
                    EventKind::Deleted => {
                        st.items.remove(&ev.kv.key);
                    }
                    EventKind::Added | EventKind::Modified => {
                        st.items.insert(ev.kv.key.clone(), ev.kv.clone());
                    }
                }
                st.revision = ev.revision();
                st.events_bytes += event_bytes(ev);
                st.events.push_back(ev.clone());
                while st.events.len() > self.history
                    || (st.events_bytes > self.history_bytes && st.events.len() > 1)
                {
                    if let Some(old) = st.events.pop_front() {
                        st.events_bytes -= event_bytes(&old);
                        st.oldest = old.revision();
                    }
                }
            }
            WatchItem::Progress(rev) => {
                if *rev <= st.revision {
                    return;
                }
                st.revision = *rev;
            }
        }
        let msg = Msg::Item(item);
        if !st.by_value.is_empty() {
            match (&msg, self.index) {
                (Msg::Item(WatchItem::Event(ev)), Some(index)) => {
                    let values = index.values(ev);
                    st.send_indexed(values.iter().map(String::as_str), &msg);
                }
                _ => st.send_all_indexed(&msg),
            }
        }
        let _ = self.tx.send(msg);
        self.revision.send_replace(Some(st.revision));
    }
}

/// What an event in the window costs: its key and its new and previous values.
fn event_bytes(ev: &Event) -> usize {
    ev.kv.key.len() + ev.kv.value.len() + ev.prev.as_ref().map_or(0, |p| p.value.len())
}

/// Keeps one prefix cache in step with the backend: list, then watch from the list's revision;
/// re-watch after a broken stream, relist after compaction.
async fn feed(cache: std::sync::Weak<PrefixCache>, backend: Arc<dyn Storage>) {
    let mut backoff = Duration::from_millis(100);
    let prefix = match cache.upgrade() {
        Some(c) => c.prefix.clone(),
        None => return,
    };
    'relist: loop {
        let list = match backend.list(&prefix, ListOptions::default()).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(%prefix, error = %e, "watch cache list failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        let Some(c) = cache.upgrade() else { return };
        c.reset(list);
        drop(c);
        loop {
            let from = match cache.upgrade() {
                Some(c) => c.state.read().expect("state lock").revision,
                None => return,
            };
            let mut stream = match backend.watch(&prefix, true, from).await {
                Ok(s) => s,
                Err(StorageError::Compacted { .. }) => continue 'relist,
                Err(e) => {
                    tracing::warn!(%prefix, error = %e, "watch cache watch failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            let Some(interval) = cache.upgrade().map(|c| c.progress_interval) else {
                return;
            };
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let item = tokio::select! {
                    item = stream.next() => item,
                    _ = ticker.tick() => {
                        let Some(c) = cache.upgrade() else { return };
                        c.bookmark();
                        continue;
                    }
                };
                let Some(item) = item else { break };
                let Some(c) = cache.upgrade() else { return };
                match item {
                    Ok(item) => {
                        backoff = Duration::from_millis(100);
                        c.apply(item);
                    }
                    Err(StorageError::Compacted { .. }) => continue 'relist,
                    Err(e) => {
                        tracing::warn!(%prefix, error = %e, "watch cache stream failed");
                        break;
                    }
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}

/// One watch served from a prefix cache.
struct CacheWatch {
    cache: Arc<PrefixCache>,
    key: String,
    recursive: bool,
    /// The newest revision seen (delivered or filtered out).
    last: Revision,
    /// The newest revision the consumer was told about.
    reported: Revision,
    /// The newest progress notification sent.
    progressed: Revision,
    backlog: VecDeque<Arc<Event>>,
    rx: broadcast::Receiver<Msg>,
    /// The value of the prefix's index this watcher's fan-out carries (`None`: every change).
    indexed: Option<String>,
    done: bool,
}

impl CacheWatch {
    /// Subscribes after `last`: the events after it from the window, then the live fan-out.
    /// `None` when `last` is older than the window.
    /// With `indexed`, the backlog and the fan-out carry only the changes of objects with
    /// that value of the prefix's index.
    fn subscribe(
        cache: &Arc<PrefixCache>,
        last: Revision,
        indexed: Option<&str>,
    ) -> Option<(VecDeque<Arc<Event>>, broadcast::Receiver<Msg>, Revision)> {
        let subscribed = |st: &State| {
            let start = if last == 0 { st.revision } else { last };
            if start < st.oldest {
                return None;
            }
            let at = st.events.partition_point(|e| e.revision() <= start);
            let backlog = st.events.range(at..);
            let backlog = match (indexed, cache.index) {
                (Some(value), Some(index)) => backlog
                    .filter(|e| index.values(e).iter().any(|v| v == value))
                    .cloned()
                    .collect(),
                _ => backlog.cloned().collect(),
            };
            Some((backlog, start))
        };
        match indexed {
            Some(value) => {
                let mut st = cache.state.write().expect("state lock");
                let (backlog, start) = subscribed(&st)?;
                let rx = st
                    .by_value
                    .entry(value.to_string())
                    .or_insert_with(|| broadcast::channel(INDEXED_FANOUT_CAPACITY).0)
                    .subscribe();
                Some((backlog, rx, start))
            }
            None => {
                let st = cache.state.read().expect("state lock");
                let (backlog, start) = subscribed(&st)?;
                Some((backlog, cache.tx.subscribe(), start))
            }
        }
    }

    async fn next(&mut self) -> Option<Result<WatchItem>> {
        loop {
            if self.done {
                return None;
            }
            if let Some(ev) = self.backlog.pop_front() {
                self.last = ev.revision();
                if watch_matches(&self.key, self.recursive, &ev.kv.key) {
                    self.reported = self.last;
                    return Some(Ok(WatchItem::Event(ev)));
                }
                continue;
            }
            match self.rx.recv().await {
                Ok(Msg::Item(WatchItem::Event(ev))) => {
                    if ev.revision() <= self.last {
                        continue;
                    }
                    self.last = ev.revision();
                    if watch_matches(&self.key, self.recursive, &ev.kv.key) {
                        self.reported = self.last;
                        return Some(Ok(WatchItem::Event(ev)));
                    }
                }
                Ok(Msg::Item(WatchItem::Progress(rev))) => {
                    // Bookmarks go out even after events the consumer may filter away itself.
                    if rev > self.progressed && rev >= self.last {
                        self.last = rev;
                        self.reported = rev;
                        self.progressed = rev;
                        return Some(Ok(WatchItem::Progress(rev)));
                    }
                }
                Ok(Msg::Reset) => {
                    self.done = true;
                    return Some(Err(StorageError::WatchClosed(
                        "watch cache was reinitialised; watch again".into(),
                    )));
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    match Self::subscribe(&self.cache, self.last, self.indexed.as_deref()) {
                        Some((backlog, rx, _)) => {
                            self.backlog = backlog;
                            self.rx = rx;
                        }
                        None => {
                            self.done = true;
                            return Some(Err(StorageError::WatchClosed(
                                "watcher fell behind the watch cache; watch again".into(),
                            )));
                        }
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

#[async_trait]
impl Storage for WatchCache {
    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue> {
        self.backend.create(key, value).await
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        self.backend.get(key).await
    }

    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult> {
        let ReadAt::NotOlderThan(at) = opts.read_at else {
            return self.backend.list(prefix, opts).await;
        };
        let Some(cache) = self.cache_for(prefix) else {
            return self.backend.list(prefix, opts).await;
        };
        cache.wait_for(at).await?;
        let st = cache.state.read().expect("state lock");
        let start = opts
            .start_after
            .as_deref()
            .filter(|s| *s >= prefix)
            .unwrap_or(prefix);
        let limit = opts.limit.unwrap_or(usize::MAX);
        let mut items = Vec::new();
        let mut remaining = 0u64;
        let in_range = st
            .items
            .range::<str, _>((std::ops::Bound::Included(start), std::ops::Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix))
            .filter(|(key, _)| key_in_range(prefix, opts.start_after.as_deref(), key));
        for (_, kv) in in_range {
            if items.len() < limit {
                items.push(kv.clone());
                continue;
            }
            // The page is full: the rest is only counted, if asked.
            remaining += 1;
            if !opts.count_remaining {
                break;
            }
        }
        Ok(ListResult {
            items,
            revision: st.revision,
            more: remaining > 0,
            remaining: if opts.count_remaining { remaining } else { 0 },
        })
    }

    async fn update(&self, key: &str, expected: Revision, value: Bytes) -> Result<KeyValue> {
        self.backend.update(key, expected, value).await
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue> {
        self.backend.delete(key, expected).await
    }

    async fn watch(&self, key: &str, recursive: bool, from: Revision) -> Result<WatchStream> {
        self.watch_indexed(key, recursive, from, None).await
    }

    async fn watch_indexed(
        &self,
        key: &str,
        recursive: bool,
        from: Revision,
        index: Option<&IndexValue>,
    ) -> Result<WatchStream> {
        let Some(cache) = self.cache_for(key) else {
            return self.backend.watch(key, recursive, from).await;
        };
        cache.wait_for(0).await?;
        let indexed = index
            .filter(|i| cache.index.is_some_and(|c| c.field == i.field))
            .map(|i| i.value.clone());
        let Some((backlog, rx, start)) = CacheWatch::subscribe(&cache, from, indexed.as_deref())
        else {
            // Older than the window: the backend still has the history (or says Compacted).
            return self.backend.watch(key, recursive, from).await;
        };
        let watch = CacheWatch {
            cache,
            key: key.to_owned(),
            recursive,
            last: start,
            reported: start,
            progressed: start,
            backlog,
            rx,
            indexed,
            done: false,
        };
        Ok(Box::pin(futures::stream::unfold(
            watch,
            |mut w| async move { w.next().await.map(|item| (item, w)) },
        )))
    }

    async fn current_revision(&self) -> Result<Revision> {
        self.backend.current_revision().await
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.backend.compact(revision).await
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        self.backend.compacted_revision().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::embedded::{EmbeddedConfig, EmbeddedStorage};

    async fn next_event(w: &mut WatchStream) -> Arc<Event> {
        loop {
            match tokio::time::timeout(Duration::from_secs(5), w.next()).await {
                Ok(Some(Ok(WatchItem::Event(ev)))) => return ev,
                Ok(Some(Ok(WatchItem::Progress(_)))) => continue,
                other => panic!("expected an event, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn the_window_is_bounded_by_bytes_and_older_watches_still_see_every_event() {
        let dir = tempfile::tempdir().unwrap();
        let backend: Arc<dyn Storage> =
            Arc::new(EmbeddedStorage::open(EmbeddedConfig::new(dir.path().join("db"))).unwrap());
        let cache = WatchCache::new(
            backend,
            vec!["/registry/nodes/".into()],
            CacheConfig {
                history: 1_000,
                history_bytes: 10_000,
                ..CacheConfig::default()
            },
        );
        // Start the prefix cache, then write 50 updates of a 1 KB object.
        let first = cache
            .create("/registry/nodes/n1", Bytes::from(vec![b'a'; 1_000]))
            .await
            .unwrap();
        let mut w = cache
            .watch("/registry/nodes/", true, first.mod_revision)
            .await
            .unwrap();
        let mut rev = first.mod_revision;
        for i in 0..50u8 {
            rev = cache
                .update(
                    "/registry/nodes/n1",
                    rev,
                    Bytes::from(vec![b'b' + i % 20; 1_000]),
                )
                .await
                .unwrap()
                .mod_revision;
        }
        for _ in 0..50 {
            next_event(&mut w).await;
        }
        let stats = cache.stats();
        let nodes = stats.iter().find(|s| s.resource == "nodes").unwrap();
        // Each event holds ~2 KB (new and previous value): 5 fit in 10 KB, not 51.
        assert!(nodes.window_bytes <= 10_000, "{nodes:?}");
        assert!((4..=5).contains(&nodes.window_events), "{nodes:?}");
        // A watch from the first write, older than the window, still gets every change in
        // order (from the store's own history).
        let mut old = cache
            .watch("/registry/nodes/", true, first.mod_revision)
            .await
            .unwrap();
        let mut last = first.mod_revision;
        for _ in 0..50 {
            let ev = next_event(&mut old).await;
            assert_eq!(ev.revision(), last + 1);
            last = ev.revision();
        }
        assert_eq!(last, rev);
        cache.close().await;
    }

    fn pod(node: &str, n: u32) -> Bytes {
        Bytes::from(format!(
            r#"{{"metadata":{{"labels":{{"nodeName":"x"}}}},"spec":{{"nodeName":"{node}"}},"n":{n}}}"#
        ))
    }

    /// A watch indexed by `spec.nodeName` gets the changes of its node's pods — including a
    /// pod bound to it, a pod deleted from it, a burst longer than its fan-out — in order,
    /// and bookmarks; other nodes' and unscheduled pods' changes do not reach it.
    #[tokio::test]
    async fn indexed_watches_get_their_values_changes() {
        let dir = tempfile::tempdir().unwrap();
        let backend: Arc<dyn Storage> =
            Arc::new(EmbeddedStorage::open(EmbeddedConfig::new(dir.path().join("db"))).unwrap());
        let cache = WatchCache::new(
            backend,
            vec!["/registry/pods/".into()],
            CacheConfig {
                progress_interval: Duration::from_millis(200),
                ..CacheConfig::default()
            },
        );
        let on = |node: &str| IndexValue {
            field: "spec.nodeName",
            value: node.into(),
        };
        let mut a = cache
            .watch_indexed("/registry/pods/", true, 0, Some(&on("a")))
            .await
            .unwrap();
        let mut everything = cache.watch("/registry/pods/", true, 0).await.unwrap();
        let key = |n: &str| format!("/registry/pods/default/{n}");
        cache.create(&key("on-b"), pod("b", 0)).await.unwrap();
        let pending = cache.create(&key("bound"), pod("", 0)).await.unwrap();
        let on_a = cache.create(&key("on-a"), pod("a", 0)).await.unwrap();
        let bound = cache
            .update(&key("bound"), pending.mod_revision, pod("a", 1))
            .await
            .unwrap();
        // A burst past the fan-out's capacity: the watcher catches up from the window.
        let mut rev = on_a.mod_revision;
        for i in 0..(INDEXED_FANOUT_CAPACITY as u32 + 20) {
            rev = cache
                .update(&key("on-a"), rev, pod("a", i + 1))
                .await
                .unwrap()
                .mod_revision;
        }
        cache.create(&key("on-c"), pod("c", 0)).await.unwrap();
        let gone = cache.delete(&key("bound"), None).await.unwrap();

        let mut seen = Vec::new();
        while seen.last() != Some(&gone.mod_revision) {
            let ev = next_event(&mut a).await;
            assert!(
                ev.kv.key.ends_with("/on-a") || ev.kv.key.ends_with("/bound"),
                "{ev:?}"
            );
            seen.push(ev.revision());
        }
        let mut want = vec![on_a.mod_revision, bound.mod_revision];
        want.extend(on_a.mod_revision + 2..=rev);
        want.push(gone.mod_revision);
        assert_eq!(seen, want);
        // The unindexed watch got everything.
        let mut all = 0;
        while next_event(&mut everything).await.revision() != gone.mod_revision {
            all += 1;
        }
        assert_eq!(all as usize, INDEXED_FANOUT_CAPACITY + 20 + 5);
        // Bookmarks reach indexed watchers.
        let progress = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if let Some(Ok(WatchItem::Progress(r))) = a.next().await {
                    return r;
                }
            }
        })
        .await
        .unwrap();
        assert!(progress >= gone.mod_revision);
        assert_eq!(cache.stats()[0].watchers, 2);
        cache.close().await;
    }
}
