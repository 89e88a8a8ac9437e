//! The etcd backend: keys and JSON values stored as they are in etcd (so
//! `etcdctl get --prefix /registry/` shows them), compare-and-swap through transactions on
//! `mod_revision`, lists at a revision with etcd's MVCC, and watches with progress
//! notifications that reconnect after an etcd restart (resuming from the last revision seen, or
//! reporting `Compacted` so clients relist).

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions, Txn, TxnOp,
    TxnOpResponse, WatchOptions,
};
use tokio_stream::wrappers::ReceiverStream;

use super::{
    Event, EventKind, KeyValue, ListOptions, ListResult, ReadAt, Result, Revision, Storage,
    StorageError, WatchItem, WatchStream, prefix_end,
};
use std::sync::Arc;

/// Where the last compaction revision is recorded (outside `/registry/`).
const COMPACTED_KEY: &str = "/rkube/compacted-revision";

/// The largest gRPC message accepted from etcd (a list of many objects is one message).
const MAX_MESSAGE: usize = 1 << 30;

/// Settings of the etcd backend.
#[derive(Clone, Debug)]
pub struct EtcdConfig {
    /// Client URLs, e.g. `http://127.0.0.1:2379`.
    pub endpoints: Vec<String>,
    /// How long each request may take before it fails as unavailable.
    pub request_timeout: Duration,
    /// How long to keep retrying the first connection before giving up.
    pub connect_deadline: Duration,
    /// How often watches ask etcd for a progress notification when idle.
    pub progress_interval: Duration,
}

impl EtcdConfig {
    /// Defaults for the given endpoints.
    pub fn new(endpoints: Vec<String>) -> Self {
        Self {
            endpoints,
            request_timeout: Duration::from_secs(10),
            connect_deadline: Duration::from_secs(60),
            progress_interval: Duration::from_secs(5),
        }
    }
}

/// The etcd backend. Cheap to clone.
#[derive(Clone)]
pub struct EtcdStorage {
    client: Client,
    config: Arc<EtcdConfig>,
}

fn unavailable(endpoints: &[String], e: impl std::fmt::Display) -> StorageError {
    StorageError::Unavailable(format!("etcd at {}: {e}", endpoints.join(",")))
}

impl EtcdStorage {
    /// Connects, retrying with backoff until `connect_deadline`: a clear error if etcd stays
    /// unreachable.
    pub async fn connect(config: EtcdConfig) -> Result<Self> {
        if config.endpoints.is_empty() {
            return Err(StorageError::Unavailable("no etcd endpoints given".into()));
        }
        let deadline = tokio::time::Instant::now() + config.connect_deadline;
        let mut backoff = Duration::from_millis(100);
        loop {
            match Self::try_connect(&config).await {
                Ok(client) => {
                    return Ok(Self {
                        client,
                        config: Arc::new(config),
                    });
                }
                Err(e) if tokio::time::Instant::now() + backoff < deadline => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "etcd not reachable yet");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn try_connect(config: &EtcdConfig) -> Result<Client> {
        let opts = ConnectOptions::new()
            .with_connect_timeout(config.request_timeout.min(Duration::from_secs(3)))
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
        let fut = async {
            let mut client = Client::connect(&config.endpoints, Some(opts)).await?;
            client.status().await?;
            Ok::<_, etcd_client::Error>(client)
        };
        match tokio::time::timeout(config.request_timeout, fut).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(unavailable(&config.endpoints, e)),
            Err(_) => Err(unavailable(&config.endpoints, "connection timed out")),
        }
    }

    /// A KV client that accepts responses as large as a big list.
    fn kv(&self) -> etcd_client::KvClient {
        self.client
            .kv_client()
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    }

    /// Runs one etcd call with the request timeout, mapping failures to `Unavailable`.
    async fn call<T>(
        &self,
        fut: impl Future<Output = std::result::Result<T, etcd_client::Error>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.config.request_timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(etcd_client::Error::GRpcStatus(s)))
                if s.message().contains("required revision has been compacted") =>
            {
                Err(StorageError::Compacted {
                    requested: 0,
                    compacted: 0,
                })
            }
            Ok(Err(etcd_client::Error::GRpcStatus(s)))
                if s.message()
                    .contains("required revision is a future revision") =>
            {
                Err(StorageError::FutureRevision {
                    requested: 0,
                    current: 0,
                })
            }
            Ok(Err(e)) => Err(unavailable(&self.config.endpoints, e)),
            Err(_) => Err(unavailable(&self.config.endpoints, "request timed out")),
        }
    }

    /// The current state of `key` after a failed compare: NotFound or Conflict.
    fn compare_failed(
        key: &str,
        expected: Revision,
        resp: &etcd_client::TxnResponse,
    ) -> StorageError {
        let current = resp.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(g) => g.kvs().first().map(|kv| kv.mod_revision()),
            _ => None,
        });
        match current {
            None => StorageError::NotFound { key: key.into() },
            Some(stored) => StorageError::Conflict {
                key: key.into(),
                message: format!("expected resourceVersion {expected}, stored {stored}"),
            },
        }
    }
}

fn convert(kv: &etcd_client::KeyValue) -> Result<KeyValue> {
    Ok(KeyValue {
        key: kv
            .key_str()
            .map_err(|e| StorageError::Internal(format!("non-UTF-8 key in etcd: {e}")))?
            .to_owned(),
        value: Bytes::copy_from_slice(kv.value()),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
    })
}

fn header_revision(h: Option<&etcd_client::ResponseHeader>) -> Result<Revision> {
    h.map(|h| h.revision())
        .ok_or_else(|| StorageError::Internal("etcd response without header".into()))
}

#[async_trait]
impl Storage for EtcdStorage {
    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue> {
        let txn = Txn::new()
            .when([Compare::version(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value.to_vec(), None)]);
        let mut client = self.kv();
        let resp = self.call(client.txn(txn)).await?;
        if !resp.succeeded() {
            return Err(StorageError::AlreadyExists { key: key.into() });
        }
        let rev = header_revision(resp.header())?;
        Ok(KeyValue {
            key: key.into(),
            value,
            create_revision: rev,
            mod_revision: rev,
        })
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let mut client = self.kv();
        let resp = self.call(client.get(key, None)).await?;
        resp.kvs().first().map(convert).transpose()
    }

    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult> {
        let start = match &opts.start_after {
            Some(s) if s.as_str() >= prefix => format!("{s}\0"),
            _ => prefix.to_owned(),
        };
        let mut get = GetOptions::new().with_range(prefix_end(prefix.as_bytes()));
        let requested = match opts.read_at {
            ReadAt::Latest => None,
            ReadAt::Exact(r) => Some(r),
            ReadAt::NotOlderThan(_) => None,
        };
        if let Some(r) = requested {
            get = get.with_revision(r);
        }
        if let Some(limit) = opts.limit {
            get = get.with_limit(i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1));
        }
        let mut client = self.kv();
        let resp = match self.call(client.get(start, Some(get))).await {
            Err(StorageError::Compacted { .. }) => {
                let compacted = self.compacted_revision().await.unwrap_or(0);
                return Err(StorageError::Compacted {
                    requested: requested.unwrap_or(0),
                    compacted,
                });
            }
            Err(StorageError::FutureRevision { .. }) => {
                return Err(StorageError::FutureRevision {
                    requested: requested.unwrap_or(0),
                    current: self.current_revision().await.unwrap_or(0),
                });
            }
            other => other?,
        };
        let revision = match requested {
            Some(r) => r,
            None => header_revision(resp.header())?,
        };
        if let ReadAt::NotOlderThan(r) = opts.read_at
            && r > revision
        {
            return Err(StorageError::FutureRevision {
                requested: r,
                current: revision,
            });
        }
        let mut items = resp.kvs().iter().map(convert).collect::<Result<Vec<_>>>()?;
        let mut more = resp.more();
        if let Some(limit) = opts.limit
            && items.len() > limit
        {
            items.truncate(limit);
            more = true;
        }
        // etcd counts every key of the requested range, whatever the limit.
        let remaining = if more && opts.count_remaining {
            u64::try_from(resp.count())
                .unwrap_or(0)
                .saturating_sub(items.len() as u64)
        } else {
            0
        };
        Ok(ListResult {
            items,
            revision,
            more,
            remaining,
        })
    }

    async fn update(&self, key: &str, expected: Revision, value: Bytes) -> Result<KeyValue> {
        let txn = Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, expected)])
            .and_then([TxnOp::put(key, value.to_vec(), None), TxnOp::get(key, None)])
            .or_else([TxnOp::get(key, None)]);
        let mut client = self.kv();
        let resp = self.call(client.txn(txn)).await?;
        if !resp.succeeded() {
            return Err(Self::compare_failed(key, expected, &resp));
        }
        let kv = resp.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(g) => g.kvs().first().map(convert),
            _ => None,
        });
        kv.transpose()?
            .ok_or_else(|| StorageError::Internal(format!("updated {key} but cannot read it")))
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue> {
        let compare = match expected {
            Some(rev) => Compare::mod_revision(key, CompareOp::Equal, rev),
            None => Compare::version(key, CompareOp::Greater, 0),
        };
        let txn = Txn::new()
            .when([compare])
            .and_then([TxnOp::delete(
                key,
                Some(DeleteOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(key, None)]);
        let mut client = self.kv();
        let resp = self.call(client.txn(txn)).await?;
        if !resp.succeeded() {
            return Err(Self::compare_failed(key, expected.unwrap_or(0), &resp));
        }
        let rev = header_revision(resp.header())?;
        let prev = resp.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Delete(d) => d.prev_kvs().first().map(convert),
            _ => None,
        });
        let mut kv = prev
            .transpose()?
            .ok_or_else(|| StorageError::NotFound { key: key.into() })?;
        kv.mod_revision = rev;
        Ok(kv)
    }

    async fn watch(&self, key: &str, recursive: bool, from: Revision) -> Result<WatchStream> {
        let from = if from > 0 {
            let compacted = self.compacted_revision().await?;
            if from < compacted - 1 {
                return Err(StorageError::Compacted {
                    requested: from,
                    compacted,
                });
            }
            from
        } else {
            self.current_revision().await?
        };
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        let task = EtcdWatch {
            storage: self.clone(),
            key: key.to_owned(),
            recursive,
            out: tx,
        };
        tokio::spawn(task.run(from));
        Ok(Box::pin(ReceiverStream::new(rx)))
    }

    async fn current_revision(&self) -> Result<Revision> {
        let mut client = self.kv();
        // A count-only read of one key returns the header revision cheaply.
        let resp = self
            .call(client.get("/", Some(GetOptions::new().with_count_only())))
            .await?;
        header_revision(resp.header())
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        // Record the compaction outside /registry/ so every apiserver (and a restarted one)
        // knows it, as Kubernetes does with its compact_rev_key; then compact.
        let mut client = self.kv();
        self.call(client.put(COMPACTED_KEY, revision.to_string(), None))
            .await?;
        match self.call(client.compact(revision, None)).await {
            Ok(_) | Err(StorageError::Compacted { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        let mut client = self.kv();
        let resp = self.call(client.get(COMPACTED_KEY, None)).await?;
        Ok(resp
            .kvs()
            .first()
            .and_then(|kv| kv.value_str().ok()?.parse().ok())
            .unwrap_or(0))
    }
}

/// One storage-level watch over an etcd watch, re-established after errors.
struct EtcdWatch {
    storage: EtcdStorage,
    key: String,
    recursive: bool,
    out: tokio::sync::mpsc::Sender<Result<WatchItem>>,
}

enum WatchEnd {
    /// The consumer went away.
    Done,
    /// The etcd stream broke; reconnect from the last revision.
    Broken(String),
    /// History was compacted past our position.
    Compacted(Revision),
}

impl EtcdWatch {
    async fn run(self, mut last: Revision) {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.stream_once(&mut last).await {
                WatchEnd::Done => return,
                WatchEnd::Compacted(compacted) => {
                    let _ = self
                        .out
                        .send(Err(StorageError::Compacted {
                            requested: last,
                            compacted,
                        }))
                        .await;
                    return;
                }
                WatchEnd::Broken(reason) => {
                    tracing::warn!(key = %self.key, last, %reason, retry_in = ?backoff,
                        "etcd watch broken, re-establishing");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = self.out.closed() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    async fn stream_once(&self, last: &mut Revision) -> WatchEnd {
        let mut opts = WatchOptions::new()
            .with_start_revision(*last + 1)
            .with_prev_key()
            .with_progress_notify();
        if self.recursive {
            opts = opts.with_range(prefix_end(self.key.as_bytes()));
        }
        let mut client = self
            .storage
            .client
            .watch_client()
            .max_decoding_message_size(MAX_MESSAGE);
        let stream = match tokio::time::timeout(
            self.storage.config.request_timeout,
            client.watch(self.key.as_str(), Some(opts)),
        )
        .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return WatchEnd::Broken(e.to_string()),
            Err(_) => return WatchEnd::Broken("watch request timed out".into()),
        };
        let (mut requests, mut responses) = stream.split();
        let mut ticker = tokio::time::interval(self.storage.config.progress_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        // A keep-alive silence longer than this means the connection is gone.
        let silence = self.storage.config.progress_interval * 3 + Duration::from_secs(5);
        let mut last_heard = tokio::time::Instant::now();
        loop {
            tokio::select! {
                msg = responses.message() => {
                    let resp = match msg {
                        Ok(Some(r)) => r,
                        Ok(None) => return WatchEnd::Broken("etcd closed the watch".into()),
                        Err(e) => return WatchEnd::Broken(e.to_string()),
                    };
                    last_heard = tokio::time::Instant::now();
                    if resp.compact_revision() > 0 {
                        return WatchEnd::Compacted(resp.compact_revision());
                    }
                    if resp.canceled() {
                        return WatchEnd::Broken(format!("cancelled: {}", resp.cancel_reason()));
                    }
                    if resp.events().is_empty() {
                        if resp.created() {
                            continue;
                        }
                        // A progress notification: everything up to the header revision.
                        let rev = resp.header().map(|h| h.revision()).unwrap_or(0);
                        if rev > *last {
                            *last = rev;
                            if self.out.send(Ok(WatchItem::Progress(rev))).await.is_err() {
                                return WatchEnd::Done;
                            }
                        }
                        continue;
                    }
                    for ev in resp.events() {
                        let item = match convert_event(ev) {
                            Ok(item) => item,
                            Err(e) => return WatchEnd::Broken(e.to_string()),
                        };
                        *last = item.revision();
                        if self.out.send(Ok(WatchItem::Event(Arc::new(item)))).await.is_err() {
                            return WatchEnd::Done;
                        }
                    }
                }
                _ = ticker.tick() => {
                    if last_heard.elapsed() > silence {
                        return WatchEnd::Broken("no response from etcd".into());
                    }
                    if let Err(e) = requests.request_progress().await {
                        return WatchEnd::Broken(e.to_string());
                    }
                }
                _ = self.out.closed() => return WatchEnd::Done,
            }
        }
    }
}

fn convert_event(ev: &etcd_client::Event) -> Result<Event> {
    let kv = ev
        .kv()
        .ok_or_else(|| StorageError::Internal("etcd event without key".into()))?;
    let prev = ev.prev_kv().map(convert).transpose()?;
    match ev.event_type() {
        EventType::Put => {
            let kv = convert(kv)?;
            let kind = if kv.create_revision == kv.mod_revision {
                EventKind::Added
            } else {
                EventKind::Modified
            };
            Ok(Event { kind, kv, prev })
        }
        EventType::Delete => {
            // etcd's delete event carries only the key; the last value is in prev_kv.
            let mut last = prev.clone().unwrap_or_else(|| KeyValue {
                key: kv.key_str().unwrap_or_default().to_owned(),
                value: Bytes::new(),
                create_revision: 0,
                mod_revision: 0,
            });
            last.mod_revision = kv.mod_revision();
            Ok(Event {
                kind: EventKind::Deleted,
                kv: last,
                prev,
            })
        }
    }
}
