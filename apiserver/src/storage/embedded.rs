//! The embedded store (the default backend): one on-disk redb file holding an MVCC log of every
//! revision, so lists can read at an older revision, continue tokens stay consistent while writes
//! go on, and watches resume from a revision — also after a restart — until compaction.
//!
//! Layout (three redb tables):
//! - `log`: revision → record (key, value, create revision, previous revision of the key, whether
//!   it is a deletion). One row per write: the event history.
//! - `index`: (key, revision) → (): every revision of every key, to find the version of a key
//!   at a revision and to list a prefix in key order.
//! - `meta`: the current and the compacted revision, and a format marker.
//!
//! Writes go through one writer thread that commits in groups: it takes every request waiting,
//! applies them in one transaction and commits once (an fsync), then publishes the events and
//! answers. Every acknowledged write is durable. Watches fan out in-process from a broadcast
//! channel; a watcher that starts in the past (or falls behind) replays from the `log` table.

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::{broadcast, oneshot};
use tokio_stream::wrappers::ReceiverStream;

use super::{
    Event, EventKind, KeyValue, ListOptions, ListResult, ReadAt, Result, Revision, Storage,
    StorageError, WatchItem, WatchStream, key_in_range, prefix_end, watch_matches,
};

const LOG: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("log");
const INDEX: TableDefinition<'_, (&[u8], u64), ()> = TableDefinition::new("index");
const META: TableDefinition<'_, &str, i64> = TableDefinition::new("meta");
const META_REV: &str = "revision";
const META_COMPACTED: &str = "compacted";
const META_FORMAT: &str = "format:rkube-embedded-v1";

/// How many log records one compaction step removes before letting other writes in.
const COMPACT_STEP: usize = 5_000;
/// How many records a replaying watcher reads per transaction.
const REPLAY_CHUNK: usize = 1_000;

/// Settings of the embedded store.
#[derive(Clone, Debug)]
pub struct EmbeddedConfig {
    /// The database file (created if missing).
    pub path: PathBuf,
    /// How often an idle watch reports progress (a bookmark of the current revision).
    pub progress_interval: Duration,
    /// The most writes committed together in one transaction.
    pub max_batch: usize,
    /// How long the writer waits for more writes before committing a group when several
    /// arrived at once (a single write, as in a quiet cluster, is committed at once); never
    /// longer than the last commit took.
    pub linger: Duration,
    /// Capacity of the in-process event fan-out before a slow watcher replays from disk.
    pub fanout_capacity: usize,
    /// Bytes of database pages kept in memory (redb's cache; the file's other pages are read
    /// through the OS page cache). redb's own default, 1 GiB, would let a big cluster's store
    /// grow the API server's resident memory by that much; reads that need speed are served
    /// by the watch cache above the store anyway.
    pub cache_size: usize,
}

/// The default of [`EmbeddedConfig::cache_size`].
pub const DEFAULT_CACHE_SIZE: usize = 32 << 20;

impl EmbeddedConfig {
    /// Defaults for a store at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            progress_interval: Duration::from_secs(5),
            max_batch: 1_000,
            linger: Duration::from_micros(500),
            fanout_capacity: 4_096,
            cache_size: DEFAULT_CACHE_SIZE,
        }
    }
}

/// Upper bounds of the buckets of [`CommitStats`]' writes-per-commit histogram.
const WRITES_PER_COMMIT_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1_000.0,
];

/// What the writer's commits cost: how many writes each carried (the grouping that shares
/// one `fsync` among writes that arrive together), and the time spent committing. On
/// `/metrics` as `rkube_embedded_store_commit_writes` (a histogram) and
/// `rkube_embedded_store_commit_seconds_total`.
#[derive(Debug)]
pub struct CommitStats {
    writes: Mutex<crate::http::metrics::Histogram>,
    nanos: AtomicU64,
}

impl Default for CommitStats {
    fn default() -> Self {
        Self {
            writes: Mutex::new(crate::http::metrics::Histogram::with_bounds(
                WRITES_PER_COMMIT_BUCKETS,
            )),
            nanos: AtomicU64::new(0),
        }
    }
}

impl CommitStats {
    fn record(&self, writes: usize, took: Duration) {
        self.writes
            .lock()
            .expect("commit stats lock")
            .observe(writes as f64);
        self.nanos.fetch_add(
            u64::try_from(took.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Commits so far and the writes they carried.
    pub fn totals(&self) -> (u64, u64) {
        let (commits, writes) = self.writes.lock().expect("commit stats lock").totals();
        (commits, writes as u64)
    }

    /// The Prometheus text of the statistics.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        let name = "rkube_embedded_store_commit_writes";
        let _ = writeln!(
            out,
            "# HELP {name} Writes the embedded store committed together in one transaction (one fsync).\n# TYPE {name} histogram"
        );
        self.writes
            .lock()
            .expect("commit stats lock")
            .render(out, name, "");
        let name = "rkube_embedded_store_commit_seconds_total";
        let _ = writeln!(
            out,
            "# HELP {name} Time the embedded store's writer spent committing (writing and syncing the file).\n# TYPE {name} counter\n{name} {}",
            self.nanos.load(Ordering::Relaxed) as f64 / 1e9
        );
    }
}

/// The embedded on-disk backend. Cheap to clone; the file closes when the last clone (and every
/// watch) is dropped.
#[derive(Clone)]
pub struct EmbeddedStorage {
    inner: Arc<Inner>,
}

struct Inner {
    db: Arc<Database>,
    path: String,
    writer: Mutex<Option<mpsc::Sender<Request>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    hub: Arc<Hub>,
    progress_interval: Duration,
    commits: Arc<CommitStats>,
}

/// In-process fan-out of committed events.
struct Hub {
    tx: broadcast::Sender<Arc<Event>>,
    /// Serialises "publish events + advance revision" against "subscribe + read revision".
    lock: Mutex<()>,
    /// The newest committed (and published) revision.
    revision: AtomicI64,
    /// The newest compaction revision.
    compacted: AtomicI64,
}

enum Op {
    Create(Bytes),
    Update(Revision, Bytes),
    Delete(Option<Revision>),
}

enum Request {
    Write {
        key: String,
        op: Op,
        reply: oneshot::Sender<Result<KeyValue>>,
    },
    Compact {
        revision: Revision,
        reply: oneshot::Sender<Result<()>>,
    },
}

/// One row of the `log` table.
#[derive(Clone, Debug)]
struct Record {
    deleted: bool,
    create_revision: Revision,
    /// The revision of the previous version of this key (0: none).
    prev_revision: Revision,
    key: String,
    value: Bytes,
}

impl Record {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(21 + self.key.len() + self.value.len());
        out.push(u8::from(self.deleted));
        out.extend_from_slice(&self.create_revision.to_be_bytes());
        out.extend_from_slice(&self.prev_revision.to_be_bytes());
        out.extend_from_slice(&(self.key.len() as u32).to_be_bytes());
        out.extend_from_slice(self.key.as_bytes());
        out.extend_from_slice(&self.value);
        out
    }

    fn decode(rev: u64, raw: &[u8]) -> Result<Self> {
        let bad = || StorageError::Internal(format!("log record {rev} is malformed"));
        if raw.len() < 21 {
            return Err(bad());
        }
        let int = |at: usize| i64::from_be_bytes(raw[at..at + 8].try_into().expect("8 bytes"));
        let key_len = u32::from_be_bytes(raw[17..21].try_into().expect("4 bytes")) as usize;
        if raw.len() < 21 + key_len {
            return Err(bad());
        }
        let key = std::str::from_utf8(&raw[21..21 + key_len]).map_err(|_| bad())?;
        Ok(Self {
            deleted: raw[0] != 0,
            create_revision: int(1),
            prev_revision: int(9),
            key: key.to_owned(),
            value: Bytes::copy_from_slice(&raw[21 + key_len..]),
        })
    }

    fn kv(&self, mod_revision: Revision) -> KeyValue {
        KeyValue {
            key: self.key.clone(),
            value: self.value.clone(),
            create_revision: self.create_revision,
            mod_revision,
        }
    }
}

fn rev_key(rev: Revision) -> u64 {
    u64::try_from(rev).unwrap_or(0)
}

impl EmbeddedStorage {
    /// Opens (or creates) the store. Fails with a clear error naming the file when it is
    /// corrupt, unreadable, not an rkube store, or held by another process.
    pub fn open(config: EmbeddedConfig) -> Result<Self> {
        let path_str = config.path.display().to_string();
        let file_err = |message: String| StorageError::File {
            path: path_str.clone(),
            message,
        };
        if let Some(parent) = config.path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)
                .map_err(|e| file_err(format!("cannot create directory: {e}")))?;
        }
        if config.path.is_dir() {
            return Err(file_err("is a directory, not a database file".into()));
        }
        let db = Database::builder()
            .set_cache_size(config.cache_size)
            .create(&config.path)
            .map_err(|e| file_err(describe_open_error(e)))?;
        let (revision, compacted) = init_tables(&db).map_err(|e| file_err(e.to_string()))?;
        let hub = Arc::new(Hub {
            tx: broadcast::channel(config.fanout_capacity.max(16)).0,
            lock: Mutex::new(()),
            revision: AtomicI64::new(revision),
            compacted: AtomicI64::new(compacted),
        });
        let db = Arc::new(db);
        let (tx, rx) = mpsc::channel();
        let commits = Arc::new(CommitStats::default());
        let writer = Writer {
            db: db.clone(),
            hub: hub.clone(),
            path: path_str.clone(),
            max_batch: config.max_batch.max(1),
            linger: config.linger,
            commits: commits.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("rkube-embedded-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StorageError::Internal(format!("cannot start writer thread: {e}")))?;
        tracing::info!(path = %path_str, revision, "opened embedded store");
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                path: path_str,
                writer: Mutex::new(Some(tx)),
                thread: Mutex::new(Some(thread)),
                hub,
                progress_interval: config.progress_interval,
                commits,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &str {
        &self.inner.path
    }

    /// What the writer's commits have cost so far.
    pub fn commit_stats(&self) -> Arc<CommitStats> {
        self.inner.commits.clone()
    }

    async fn write(&self, key: &str, op: Op) -> Result<KeyValue> {
        let (reply, rx) = oneshot::channel();
        self.inner.send(Request::Write {
            key: key.to_owned(),
            op,
            reply,
        })?;
        rx.await
            .map_err(|_| StorageError::Unavailable("embedded store writer stopped".into()))?
    }

    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T> + Send + 'static,
    {
        let db = self.inner.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| StorageError::Internal(format!("read task failed: {e}")))?
    }
}

impl Inner {
    fn send(&self, req: Request) -> Result<()> {
        let guard = self.writer.lock().expect("writer lock");
        let tx = guard
            .as_ref()
            .ok_or_else(|| StorageError::Unavailable("embedded store is closed".into()))?;
        tx.send(req)
            .map_err(|_| StorageError::Unavailable("embedded store writer stopped".into()))
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Close the queue and wait for the writer to finish what it accepted.
        self.writer.lock().expect("writer lock").take();
        if let Some(t) = self.thread.lock().expect("thread lock").take() {
            let _ = t.join();
        }
        // Reads run on blocking threads and go on when the future that asked for them is
        // dropped (an aborted task's list, a watch's replay): let them finish, briefly, so the
        // file is released when the store is dropped and can be opened again at once.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while Arc::strong_count(&self.db) > 1 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

fn describe_open_error(e: redb::DatabaseError) -> String {
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen => {
            "already open: held by another process (or opened twice in this one)".into()
        }
        redb::DatabaseError::Storage(redb::StorageError::Corrupted(m)) => {
            format!("corrupt or not a database file: {m}")
        }
        redb::DatabaseError::Storage(redb::StorageError::Io(io))
            if matches!(
                io.kind(),
                std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
            ) =>
        {
            format!("corrupt or not a database file: {io}")
        }
        redb::DatabaseError::Storage(redb::StorageError::Io(io)) => {
            format!("cannot read or write: {io}")
        }
        other => format!("cannot open: {other}"),
    }
}

/// Creates the tables of a new store, or checks an existing one; returns (revision, compacted).
fn init_tables(db: &Database) -> std::result::Result<(i64, i64), String> {
    let txn = db.begin_write().map_err(|e| e.to_string())?;
    let out = {
        let mut meta = txn.open_table(META).map_err(|e| e.to_string())?;
        let format = meta
            .get(META_FORMAT)
            .map_err(|e| e.to_string())?
            .map(|v| v.value());
        let revision = meta
            .get(META_REV)
            .map_err(|e| e.to_string())?
            .map(|v| v.value());
        if format.is_none() {
            if revision.is_some() {
                return Err("not an rkube store (no format marker)".into());
            }
            meta.insert(META_FORMAT, 1).map_err(|e| e.to_string())?;
            meta.insert(META_COMPACTED, 0).map_err(|e| e.to_string())?;
        }
        // A new store starts at revision 1, as a new etcd does: revision 0 means "now" to a
        // watch, so a store still at 0 could not be watched from its own current revision (a
        // write landing between a list at 0 and a watch from 0 would be missed).
        let revision = match revision {
            Some(r) if r > 0 => r,
            _ => {
                meta.insert(META_REV, 1).map_err(|e| e.to_string())?;
                1
            }
        };
        let compacted = meta
            .get(META_COMPACTED)
            .map_err(|e| e.to_string())?
            .map(|v| v.value())
            .unwrap_or(0);
        txn.open_table(LOG).map_err(|e| e.to_string())?;
        txn.open_table(INDEX).map_err(|e| e.to_string())?;
        (revision, compacted)
    };
    txn.commit().map_err(|e| e.to_string())?;
    Ok(out)
}

fn internal(e: impl std::fmt::Display) -> StorageError {
    StorageError::Internal(e.to_string())
}

/// The newest version of `key` at or before `at` (a deletion counts as a version).
fn version_at(
    index: &impl ReadableTable<(&'static [u8], u64), ()>,
    log: &impl ReadableTable<u64, &'static [u8]>,
    key: &str,
    at: u64,
) -> Result<Option<(Revision, Record)>> {
    let k = key.as_bytes();
    let mut range = index.range((k, 0u64)..=(k, at)).map_err(internal)?;
    let Some(last) = range.next_back() else {
        return Ok(None);
    };
    let (entry, _) = last.map_err(internal)?;
    let rev = entry.value().1;
    let raw = log
        .get(rev)
        .map_err(internal)?
        .ok_or_else(|| StorageError::Internal(format!("index names missing revision {rev}")))?;
    Ok(Some((rev as Revision, Record::decode(rev, raw.value())?)))
}

/// The live (not deleted) version of `key` at `at`.
fn live_at(
    index: &impl ReadableTable<(&'static [u8], u64), ()>,
    log: &impl ReadableTable<u64, &'static [u8]>,
    key: &str,
    at: u64,
) -> Result<Option<KeyValue>> {
    Ok(version_at(index, log, key, at)?
        .filter(|(_, r)| !r.deleted)
        .map(|(rev, r)| r.kv(rev)))
}

fn read_meta(meta: &impl ReadableTable<&'static str, i64>, name: &str) -> Result<i64> {
    Ok(meta
        .get(name)
        .map_err(internal)?
        .map(|v| v.value())
        .unwrap_or(0))
}

fn list_at(db: &Database, prefix: &str, opts: &ListOptions) -> Result<ListResult> {
    let txn = db.begin_read().map_err(internal)?;
    let meta = txn.open_table(META).map_err(internal)?;
    let current = read_meta(&meta, META_REV)?;
    let compacted = read_meta(&meta, META_COMPACTED)?;
    let at = match opts.read_at {
        ReadAt::Latest => current,
        ReadAt::NotOlderThan(r) | ReadAt::Exact(r) if r > current => {
            return Err(StorageError::FutureRevision {
                requested: r,
                current,
            });
        }
        ReadAt::NotOlderThan(_) => current,
        ReadAt::Exact(r) if r < compacted => {
            return Err(StorageError::Compacted {
                requested: r,
                compacted,
            });
        }
        ReadAt::Exact(r) => r,
    };
    let index = txn.open_table(INDEX).map_err(internal)?;
    let log = txn.open_table(LOG).map_err(internal)?;
    let start: &[u8] = match &opts.start_after {
        Some(s) if s.as_str() >= prefix => s.as_bytes(),
        _ => prefix.as_bytes(),
    };
    let end = prefix_end(prefix.as_bytes());
    let limit = opts.limit.unwrap_or(usize::MAX);
    let mut items = Vec::new();
    let mut more = false;
    // Adds the version at `rev` if it is live and in range; `false` when the page is full.
    let emit = |rev: u64, items: &mut Vec<KeyValue>| -> Result<bool> {
        let raw = log
            .get(rev)
            .map_err(internal)?
            .ok_or_else(|| StorageError::Internal(format!("index names missing revision {rev}")))?;
        let rec = Record::decode(rev, raw.value())?;
        if rec.deleted || !key_in_range(prefix, opts.start_after.as_deref(), &rec.key) {
            return Ok(true);
        }
        if items.len() == limit {
            return Ok(false);
        }
        items.push(rec.kv(rev as Revision));
        Ok(true)
    };
    let range = if end == [0] {
        index.range((start, 0u64)..).map_err(internal)?
    } else {
        index
            .range((start, 0u64)..(end.as_slice(), 0u64))
            .map_err(internal)?
    };
    // Whether the version at `rev` is live (not a deletion), read from its first byte only.
    let live = |rev: u64| -> Result<bool> {
        let raw = log
            .get(rev)
            .map_err(internal)?
            .ok_or_else(|| StorageError::Internal(format!("index names missing revision {rev}")))?;
        Ok(raw.value().first().is_some_and(|d| *d == 0))
    };
    // Once the page is full, the keys after it are only counted.
    let mut remaining = 0u64;
    // `false` when the walk can stop: the page is full and nobody asked for the count.
    let mut take = |r: u64, items: &mut Vec<KeyValue>, more: &mut bool| -> Result<bool> {
        if *more {
            remaining += u64::from(live(r)?);
        } else if !emit(r, items)? {
            // `emit` refuses only a live key in range: the first one after the page.
            *more = true;
            remaining = 1;
        }
        Ok(opts.count_remaining || !*more)
    };
    // Walk every (key, revision) in range; for each key take its newest revision <= at.
    let mut current_key: Option<Vec<u8>> = None;
    let mut newest: Option<u64> = None;
    for entry in range {
        let (entry, _) = entry.map_err(internal)?;
        let (key, rev) = entry.value();
        if current_key.as_deref() != Some(key) {
            if let Some(r) = newest.take()
                && !take(r, &mut items, &mut more)?
            {
                break;
            }
            current_key = Some(key.to_vec());
        }
        if rev <= rev_key(at) {
            newest = Some(rev);
        }
    }
    if let Some(r) = newest {
        take(r, &mut items, &mut more)?;
    }
    Ok(ListResult {
        items,
        revision: at,
        more,
        remaining: if opts.count_remaining { remaining } else { 0 },
    })
}

/// Reads the events after `from` up to `to` (at most `REPLAY_CHUNK`) that match the watch.
fn replay_chunk(
    db: &Database,
    key: &str,
    recursive: bool,
    from: Revision,
    to: Revision,
) -> Result<(Vec<Arc<Event>>, Revision)> {
    let txn = db.begin_read().map_err(internal)?;
    let meta = txn.open_table(META).map_err(internal)?;
    let compacted = read_meta(&meta, META_COMPACTED)?;
    if from < compacted - 1 {
        return Err(StorageError::Compacted {
            requested: from,
            compacted,
        });
    }
    let log = txn.open_table(LOG).map_err(internal)?;
    let mut out = Vec::new();
    let mut last = to;
    for (n, entry) in log
        .range(rev_key(from + 1)..=rev_key(to))
        .map_err(internal)?
        .enumerate()
    {
        let (rev, raw) = entry.map_err(internal)?;
        let rev = rev.value();
        if n == REPLAY_CHUNK {
            last = rev as Revision - 1;
            break;
        }
        let rec = Record::decode(rev, raw.value())?;
        if !watch_matches(key, recursive, &rec.key) {
            continue;
        }
        let prev = if rec.prev_revision > 0 {
            log.get(rev_key(rec.prev_revision))
                .map_err(internal)?
                .map(|raw| Record::decode(rev_key(rec.prev_revision), raw.value()))
                .transpose()?
                .map(|r| r.kv(rec.prev_revision))
        } else {
            None
        };
        let kind = if rec.deleted {
            EventKind::Deleted
        } else if rec.create_revision == rev as Revision {
            EventKind::Added
        } else {
            EventKind::Modified
        };
        out.push(Arc::new(Event {
            kind,
            kv: rec.kv(rev as Revision),
            prev,
        }));
    }
    Ok((out, last))
}

/// The writer thread: applies queued writes in groups, one fsync per group.
struct Writer {
    db: Arc<Database>,
    hub: Arc<Hub>,
    path: String,
    max_batch: usize,
    linger: Duration,
    commits: Arc<CommitStats>,
}

struct Staged {
    reply: oneshot::Sender<Result<KeyValue>>,
    result: Result<KeyValue>,
    event: Option<Event>,
}

impl Writer {
    fn run(self, rx: mpsc::Receiver<Request>) {
        let mut pending_compactions: Vec<(Revision, oneshot::Sender<Result<()>>)> = Vec::new();
        // How long the last group of writes took to commit (bounds the wait for more).
        let mut last_commit = self.linger;
        loop {
            let first = if pending_compactions.is_empty() {
                match rx.recv() {
                    Ok(r) => Some(r),
                    Err(_) => break,
                }
            } else {
                rx.try_recv().ok()
            };
            let mut batch: Vec<Request> = first.into_iter().collect();
            while batch.len() < self.max_batch {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            // Writes arriving together mean more are coming: wait a little for them, so that
            // one commit (and its fsync, the bulk of its cost) serves more of them. Never
            // longer than the last commit took: where commits are cheap (a fast disk), so is
            // committing without waiting. One sleep, not a wait per arriving write: each
            // wake-up is a context switch.
            let writes_queued = batch
                .iter()
                .filter(|r| matches!(r, Request::Write { .. }))
                .count();
            let wait = self.linger.min(last_commit);
            if writes_queued > 1 && batch.len() < self.max_batch && !wait.is_zero() {
                std::thread::sleep(wait);
                while batch.len() < self.max_batch {
                    match rx.try_recv() {
                        Ok(r) => batch.push(r),
                        Err(_) => break,
                    }
                }
            }
            let mut writes = Vec::new();
            for req in batch {
                match req {
                    Request::Write { key, op, reply } => writes.push((key, op, reply)),
                    Request::Compact { revision, reply } => {
                        pending_compactions.push((revision, reply))
                    }
                }
            }
            if !writes.is_empty() {
                last_commit = self.commit_writes(writes);
            }
            if let Some((revision, reply)) = pending_compactions.pop() {
                match self.compact_step(revision) {
                    Ok(true) => {
                        let _ = reply.send(Ok(()));
                    }
                    Ok(false) => pending_compactions.push((revision, reply)),
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
        }
        tracing::debug!(path = %self.path, "embedded store writer stopped");
    }

    /// Commits `writes` in one transaction and answers each; answers how long the commit took
    /// (recorded in the commit figures before any writer hears back, so a writer that reads
    /// them sees its own commit counted).
    fn commit_writes(
        &self,
        writes: Vec<(String, Op, oneshot::Sender<Result<KeyValue>>)>,
    ) -> Duration {
        let started = std::time::Instant::now();
        let count = writes.len();
        let mut staged: Vec<Staged> = Vec::with_capacity(writes.len());
        let outcome = (|| -> Result<Revision> {
            let txn = self.db.begin_write().map_err(internal)?;
            let mut revision;
            {
                let mut meta = txn.open_table(META).map_err(internal)?;
                let mut log = txn.open_table(LOG).map_err(internal)?;
                let mut index = txn.open_table(INDEX).map_err(internal)?;
                revision = read_meta(&meta, META_REV)?;
                for (key, op, reply) in writes {
                    let cur = live_at(&index, &log, &key, u64::MAX)?;
                    let applied = apply(&key, op, cur, revision + 1);
                    let (result, event, record) = match applied {
                        Ok((kv, event, record)) => (Ok(kv), Some(event), Some(record)),
                        Err(e) => (Err(e), None, None),
                    };
                    if let Some(record) = record {
                        revision += 1;
                        let r = rev_key(revision);
                        log.insert(r, record.encode().as_slice())
                            .map_err(internal)?;
                        index.insert((key.as_bytes(), r), ()).map_err(internal)?;
                    }
                    staged.push(Staged {
                        reply,
                        result,
                        event,
                    });
                }
                meta.insert(META_REV, revision).map_err(internal)?;
            }
            txn.commit().map_err(|e| StorageError::File {
                path: self.path.clone(),
                message: format!("commit failed: {e}"),
            })?;
            Ok(revision)
        })();
        let took = started.elapsed();
        self.commits.record(count, took);
        match outcome {
            Ok(revision) => {
                {
                    let _g = self.hub.lock.lock().expect("hub lock");
                    for s in &mut staged {
                        if let Some(ev) = s.event.take() {
                            let _ = self.hub.tx.send(Arc::new(ev));
                        }
                    }
                    self.hub.revision.store(revision, Ordering::Release);
                }
                for s in staged {
                    let _ = s.reply.send(s.result);
                }
            }
            Err(e) => {
                tracing::error!(path = %self.path, error = %e, "embedded store write failed");
                for s in staged {
                    let err = match s.result {
                        Ok(_) => StorageError::Unavailable(e.to_string()),
                        Err(own) => own,
                    };
                    let _ = s.reply.send(Err(err));
                }
            }
        }
        took
    }

    /// Removes up to `COMPACT_STEP` superseded log records below `target`; `true` when done.
    fn compact_step(&self, target: Revision) -> Result<bool> {
        let txn = self.db.begin_write().map_err(internal)?;
        let done;
        let new_compacted;
        {
            let mut meta = txn.open_table(META).map_err(internal)?;
            let mut log = txn.open_table(LOG).map_err(internal)?;
            let mut index = txn.open_table(INDEX).map_err(internal)?;
            let current = read_meta(&meta, META_REV)?;
            let compacted = read_meta(&meta, META_COMPACTED)?;
            if target > current {
                return Err(StorageError::FutureRevision {
                    requested: target,
                    current,
                });
            }
            if target <= compacted {
                return Ok(true);
            }
            // Records in [compacted, target) that a newer version at or before target replaces,
            // or deletions that are the final state at target, are no longer needed.
            let mut scanned = 0usize;
            let mut last_scanned = compacted;
            let mut doomed: Vec<(u64, String)> = Vec::new();
            for entry in log
                .range(rev_key(compacted.max(1))..rev_key(target))
                .map_err(internal)?
            {
                let (rev, raw) = entry.map_err(internal)?;
                let rev = rev.value();
                let rec = Record::decode(rev, raw.value())?;
                scanned += 1;
                last_scanned = rev as Revision;
                let newest = version_at(&index, &log, &rec.key, rev_key(target))?;
                let superseded = newest.is_some_and(|(r, _)| r != rev as Revision);
                // A version kept by an earlier compaction (below it) that this one replaces.
                if rec.prev_revision > 0 && rec.prev_revision < compacted {
                    doomed.push((rev_key(rec.prev_revision), rec.key.clone()));
                }
                if superseded || rec.deleted {
                    doomed.push((rev, rec.key));
                }
                if scanned >= COMPACT_STEP {
                    break;
                }
            }
            for (rev, key) in &doomed {
                log.remove(*rev).map_err(internal)?;
                index.remove((key.as_bytes(), *rev)).map_err(internal)?;
            }
            done = scanned < COMPACT_STEP;
            new_compacted = if done { target } else { last_scanned + 1 };
            meta.insert(META_COMPACTED, new_compacted)
                .map_err(internal)?;
        }
        txn.commit().map_err(|e| StorageError::File {
            path: self.path.clone(),
            message: format!("compaction commit failed: {e}"),
        })?;
        self.hub.compacted.store(new_compacted, Ordering::Release);
        Ok(done)
    }
}

/// Applies one write to the current state of its key: the result, the event and the new record.
fn apply(
    key: &str,
    op: Op,
    cur: Option<KeyValue>,
    rev: Revision,
) -> Result<(KeyValue, Event, Record)> {
    match (op, cur) {
        (Op::Create(_), Some(_)) => Err(StorageError::AlreadyExists { key: key.into() }),
        (Op::Create(value), None) => {
            let record = Record {
                deleted: false,
                create_revision: rev,
                prev_revision: 0,
                key: key.into(),
                value,
            };
            let kv = record.kv(rev);
            let event = Event {
                kind: EventKind::Added,
                kv: kv.clone(),
                prev: None,
            };
            Ok((kv, event, record))
        }
        (Op::Update(..) | Op::Delete(_), None) => Err(StorageError::NotFound { key: key.into() }),
        (Op::Update(expected, _) | Op::Delete(Some(expected)), Some(cur))
            if cur.mod_revision != expected =>
        {
            Err(StorageError::Conflict {
                key: key.into(),
                message: format!(
                    "expected resourceVersion {expected}, stored {}",
                    cur.mod_revision
                ),
            })
        }
        (Op::Update(_, value), Some(cur)) => {
            let record = Record {
                deleted: false,
                create_revision: cur.create_revision,
                prev_revision: cur.mod_revision,
                key: key.into(),
                value,
            };
            let kv = record.kv(rev);
            let event = Event {
                kind: EventKind::Modified,
                kv: kv.clone(),
                prev: Some(cur),
            };
            Ok((kv, event, record))
        }
        (Op::Delete(_), Some(cur)) => {
            let record = Record {
                deleted: true,
                create_revision: cur.create_revision,
                prev_revision: cur.mod_revision,
                key: key.into(),
                value: cur.value.clone(),
            };
            let kv = record.kv(rev);
            let event = Event {
                kind: EventKind::Deleted,
                kv: kv.clone(),
                prev: Some(cur),
            };
            Ok((kv, event, record))
        }
    }
}

#[async_trait]
impl Storage for EmbeddedStorage {
    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue> {
        self.write(key, Op::Create(value)).await
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let key = key.to_owned();
        self.read(move |db| {
            let txn = db.begin_read().map_err(internal)?;
            let index = txn.open_table(INDEX).map_err(internal)?;
            let log = txn.open_table(LOG).map_err(internal)?;
            live_at(&index, &log, &key, u64::MAX)
        })
        .await
    }

    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult> {
        let prefix = prefix.to_owned();
        self.read(move |db| list_at(db, &prefix, &opts)).await
    }

    async fn update(&self, key: &str, expected: Revision, value: Bytes) -> Result<KeyValue> {
        self.write(key, Op::Update(expected, value)).await
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue> {
        self.write(key, Op::Delete(expected)).await
    }

    async fn watch(&self, key: &str, recursive: bool, from: Revision) -> Result<WatchStream> {
        let compacted = self.inner.hub.compacted.load(Ordering::Acquire);
        if from > 0 && from < compacted - 1 {
            return Err(StorageError::Compacted {
                requested: from,
                compacted,
            });
        }
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        let watcher = Watcher {
            inner: Arc::downgrade(&self.inner),
            key: key.to_owned(),
            recursive,
            progress_interval: self.inner.progress_interval,
            out: tx,
        };
        let start = if from > 0 {
            from
        } else {
            self.inner.hub.revision.load(Ordering::Acquire)
        };
        tokio::spawn(watcher.run(start));
        Ok(Box::pin(ReceiverStream::new(rx)))
    }

    async fn current_revision(&self) -> Result<Revision> {
        Ok(self.inner.hub.revision.load(Ordering::Acquire))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.inner.send(Request::Compact { revision, reply })?;
        rx.await
            .map_err(|_| StorageError::Unavailable("embedded store writer stopped".into()))?
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        Ok(self.inner.hub.compacted.load(Ordering::Acquire))
    }
}

/// One watch: replays history from disk, then follows the live fan-out. It holds the store only
/// weakly, so closing the store ends its watches.
struct Watcher {
    inner: Weak<Inner>,
    key: String,
    recursive: bool,
    progress_interval: Duration,
    out: tokio::sync::mpsc::Sender<Result<WatchItem>>,
}

/// Why the live phase of a watch stopped.
enum Live {
    /// The consumer or the store is gone.
    Done,
    /// The watcher fell behind the fan-out: replay from disk.
    Lagged,
}

impl Watcher {
    async fn run(self, from: Revision) {
        if let Err(e) = self.follow(from).await {
            let _ = self.out.send(Err(e)).await;
        }
    }

    fn hub(&self) -> Option<Arc<Hub>> {
        self.inner.upgrade().map(|i| i.hub.clone())
    }

    async fn send(&self, item: WatchItem) -> bool {
        self.out.send(Ok(item)).await.is_ok()
    }

    /// Sends everything after `last`; returns on error or when the consumer or store is gone.
    async fn follow(&self, mut last: Revision) -> Result<()> {
        loop {
            // Subscribe first, then read history up to the revision published at that moment:
            // nothing falls in between.
            let Some((mut rx, published)) = self.hub().map(|hub| {
                let _g = hub.lock.lock().expect("hub lock");
                (hub.tx.subscribe(), hub.revision.load(Ordering::Acquire))
            }) else {
                return Ok(());
            };
            while last < published {
                let Some(inner) = self.inner.upgrade() else {
                    return Ok(());
                };
                let db = inner.db.clone();
                drop(inner);
                let (key, recursive) = (self.key.clone(), self.recursive);
                let (events, upto) = tokio::task::spawn_blocking(move || {
                    replay_chunk(&db, &key, recursive, last, published)
                })
                .await
                .map_err(|e| StorageError::Internal(format!("replay task failed: {e}")))??;
                for ev in events {
                    if !self.send(WatchItem::Event(ev)).await {
                        return Ok(());
                    }
                }
                last = upto;
            }
            match self.live(&mut rx, &mut last).await {
                Live::Done => return Ok(()),
                Live::Lagged => continue,
            }
        }
    }

    /// Forwards live events after `last`, with a progress notification when idle.
    async fn live(&self, rx: &mut broadcast::Receiver<Arc<Event>>, last: &mut Revision) -> Live {
        let mut reported = *last;
        let mut ticker = tokio::time::interval(self.progress_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Ok(ev) => {
                        if ev.revision() <= *last {
                            continue;
                        }
                        *last = ev.revision();
                        if watch_matches(&self.key, self.recursive, &ev.kv.key) {
                            reported = *last;
                            if !self.send(WatchItem::Event(ev)).await {
                                return Live::Done;
                            }
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => return Live::Lagged,
                    Err(broadcast::error::RecvError::Closed) => return Live::Done,
                },
                _ = ticker.tick() => {
                    let Some(hub) = self.hub() else { return Live::Done };
                    let published = hub.revision.load(Ordering::Acquire);
                    drop(hub);
                    // Deliver what was published up to that revision before vouching for it.
                    loop {
                        match rx.try_recv() {
                            Ok(ev) if ev.revision() > *last => {
                                *last = ev.revision();
                                if watch_matches(&self.key, self.recursive, &ev.kv.key)
                                    && !self.send(WatchItem::Event(ev)).await
                                {
                                    return Live::Done;
                                }
                            }
                            Ok(_) => {}
                            Err(broadcast::error::TryRecvError::Empty) => break,
                            Err(broadcast::error::TryRecvError::Lagged(_)) => return Live::Lagged,
                            Err(broadcast::error::TryRecvError::Closed) => return Live::Done,
                        }
                    }
                    let progress = published.max(*last);
                    if progress > reported {
                        reported = progress;
                        *last = progress;
                        if !self.send(WatchItem::Progress(progress)).await {
                            return Live::Done;
                        }
                    }
                }
                _ = self.out.closed() => return Live::Done,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A read whose caller went away (an aborted task's list) goes on on its blocking thread;
    /// dropping the store waits for it, so the file can be opened again at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn drop_waits_for_abandoned_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rkube.db");
        let store = EmbeddedStorage::open(EmbeddedConfig::new(&path)).unwrap();
        let (started_tx, started) = std::sync::mpsc::channel();
        let reader = store.clone();
        let task = tokio::spawn(async move {
            reader
                .read(move |_db| {
                    started_tx.send(()).unwrap();
                    std::thread::sleep(Duration::from_millis(300));
                    Ok(())
                })
                .await
        });
        tokio::task::spawn_blocking(move || started.recv().unwrap())
            .await
            .unwrap();
        task.abort();
        let _ = task.await;
        drop(store);
        EmbeddedStorage::open(EmbeddedConfig::new(&path)).expect("the file is released");
    }

    /// A store in `dir` whose writer waits up to `linger` for more writes.
    fn waiting_store(dir: &tempfile::TempDir, linger: Duration) -> EmbeddedStorage {
        let mut config = EmbeddedConfig::new(dir.path().join("rkube.db"));
        config.linger = linger;
        EmbeddedStorage::open(config).unwrap()
    }

    /// The writer waits for more writes only when several arrived together: a lone write
    /// (a quiet cluster's) is committed at once, however long the wait is set.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lone_write_does_not_wait() {
        let dir = tempfile::tempdir().unwrap();
        let store = waiting_store(&dir, Duration::from_secs(30));
        let written = tokio::time::timeout(
            Duration::from_secs(15),
            store.create("/registry/a", Bytes::from_static(b"{}")),
        )
        .await
        .expect("committed without waiting for the linger")
        .unwrap();
        assert_eq!(written.create_revision, written.mod_revision);
    }

    /// Writes that wait together are committed together, each with its own revision, in
    /// order, and each answered.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_arriving_together_get_their_own_revisions() {
        let dir = tempfile::tempdir().unwrap();
        let store = waiting_store(&dir, Duration::from_millis(50));
        let writes = (0..64).map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .create(&format!("/registry/k{i}"), Bytes::from(format!("{i}")))
                    .await
            })
        });
        let mut revisions = Vec::new();
        for w in writes.collect::<Vec<_>>() {
            revisions.push(w.await.unwrap().unwrap().mod_revision);
        }
        revisions.sort_unstable();
        revisions.dedup();
        assert_eq!(revisions.len(), 64, "one revision per write");
        assert_eq!(revisions[63] - revisions[0], 63, "no revision skipped");
        let dup = store
            .create("/registry/k0", Bytes::from_static(b"again"))
            .await;
        assert!(dup.is_err(), "a second create of a key is refused");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn commit_stats_count_writes_and_commits() {
        let dir = tempfile::tempdir().unwrap();
        let store = waiting_store(&dir, Duration::from_millis(50));
        store
            .create("/registry/first", Bytes::from_static(b"1"))
            .await
            .unwrap();
        assert_eq!(
            store.commit_stats().totals(),
            (1, 1),
            "a lone write, a commit"
        );
        let writes: Vec<_> = (0..32)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .create(&format!("/registry/k{i}"), Bytes::from(format!("{i}")))
                        .await
                })
            })
            .collect();
        for w in writes {
            w.await.unwrap().unwrap();
        }
        // A refused write is counted too: it was part of a commit's work.
        assert!(store.create("/registry/k0", Bytes::new()).await.is_err());
        let (commits, writes) = store.commit_stats().totals();
        assert_eq!(writes, 34);
        assert!(
            (3..34).contains(&commits),
            "writes arriving together share commits: {commits} commits"
        );
        let mut text = String::new();
        store.commit_stats().render(&mut text);
        assert!(
            text.contains("rkube_embedded_store_commit_writes_bucket{le=\"1\"} "),
            "{text}"
        );
        assert!(text.contains(&format!("rkube_embedded_store_commit_writes_sum 34\nrkube_embedded_store_commit_writes_count {commits}\n")), "{text}");
        assert!(
            text.contains("rkube_embedded_store_commit_seconds_total "),
            "{text}"
        );
    }
}
