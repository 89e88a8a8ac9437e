//! The storage layer: one narrow [`Storage`] trait with Kubernetes semantics (a revision that
//! only grows, compare-and-swap on it, consistent lists at one revision, watches that resume from
//! a revision) and the backends behind it: [`etcd`] (a real etcd cluster), [`embedded`] (the
//! default on-disk store), [`cache`] (a watch cache over any backend) and [`metered`] (the
//! store's latency, for `/metrics`).
//!
//! Values are opaque bytes (JSON objects in practice). The resourceVersion that clients see is the
//! revision at which a key was last modified (etcd's `mod_revision`); it is not stored inside the
//! value, the layer above sets it when decoding.

pub mod cache;
pub mod compactor;
pub mod embedded;
pub mod etcd;
pub mod metered;

use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;

/// A store revision. Every write gets the next one; it never goes back, also across restarts.
pub type Revision = i64;

/// One stored key with its value and revisions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    /// The full key, e.g. `/registry/apps/deployments/default/web`.
    pub key: String,
    /// The stored bytes.
    pub value: Bytes,
    /// The revision at which the key was created (its current incarnation).
    pub create_revision: Revision,
    /// The revision at which the key was last written: the object's resourceVersion.
    pub mod_revision: Revision,
}

/// What happened to a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The key was created.
    Added,
    /// The key was updated.
    Modified,
    /// The key was deleted.
    Deleted,
}

/// A change to one key, as delivered by [`Storage::watch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Added, Modified or Deleted.
    pub kind: EventKind,
    /// The new state. For `Deleted`: the last value, with `mod_revision` = the deletion's revision.
    pub kv: KeyValue,
    /// The state before the change (`None` for `Added`, or when the backend no longer has it).
    pub prev: Option<KeyValue>,
}

impl Event {
    /// The revision at which this change happened.
    pub fn revision(&self) -> Revision {
        self.kv.mod_revision
    }
}

/// An item of a watch stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchItem {
    /// A change, in revision order.
    Event(Arc<Event>),
    /// Every change up to and including this revision has been delivered (a bookmark).
    Progress(Revision),
}

/// A watch: changes in revision order, progress notifications, and an error that ends it.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchItem, StorageError>> + Send>>;

/// Which revision a list reads at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadAt {
    /// The newest revision (a consistent read: resourceVersion unset).
    #[default]
    Latest,
    /// Exactly this revision (resourceVersionMatch=Exact, and continue tokens).
    Exact(Revision),
    /// Any state at least as new as this revision (resourceVersion="0" is `NotOlderThan(0)`).
    /// A watch cache serves these from memory.
    NotOlderThan(Revision),
}

/// Options for [`Storage::list`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// The revision to read at.
    pub read_at: ReadAt,
    /// At most this many items (`None`: all).
    pub limit: Option<usize>,
    /// Start after this key (exclusive): the position a continue token carries.
    pub start_after: Option<String>,
    /// Count the live keys after a full page ([`ListResult::remaining`]); costs a walk of the
    /// rest of the range, so only lists that report the count ask for it.
    pub count_remaining: bool,
}

/// The result of [`Storage::list`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListResult {
    /// Items in key order.
    pub items: Vec<KeyValue>,
    /// The revision the list was read at; continue with `ReadAt::Exact(revision)`.
    pub revision: Revision,
    /// Whether more items follow the last one returned.
    pub more: bool,
    /// How many live keys of the range follow the last one returned, when
    /// [`ListOptions::count_remaining`] asked (0 otherwise, and when `more` is false): what the
    /// API reports as a list's `metadata.remainingItemCount`.
    pub remaining: u64,
}

/// Conditions a delete must meet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Preconditions {
    /// The object's `metadata.uid` must be this.
    pub uid: Option<String>,
    /// The object's revision (resourceVersion) must be this.
    pub revision: Option<Revision>,
}

/// Storage failures, each naming the key or resource involved.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The key does not exist.
    #[error("key {key} not found")]
    NotFound {
        /// The key.
        key: String,
    },
    /// Create of a key that exists.
    #[error("key {key} already exists")]
    AlreadyExists {
        /// The key.
        key: String,
    },
    /// A compare-and-swap saw another revision (or another uid) than expected.
    #[error("conflict on {key}: {message}")]
    Conflict {
        /// The key.
        key: String,
        /// What differed.
        message: String,
    },
    /// The requested revision was compacted: the client must relist (HTTP 410 Gone).
    #[error("revision {requested} has been compacted (oldest available is {compacted})")]
    Compacted {
        /// The revision asked for.
        requested: Revision,
        /// The compaction revision.
        compacted: Revision,
    },
    /// The requested revision is newer than anything stored.
    #[error("revision {requested} is newer than the current revision {current}")]
    FutureRevision {
        /// The revision asked for.
        requested: Revision,
        /// The store's current revision.
        current: Revision,
    },
    /// A watch fell too far behind and was closed; the client re-watches from its last revision.
    #[error("watch closed: {0}")]
    WatchClosed(String),
    /// The backend cannot be reached (etcd down) or refused the request.
    #[error("storage backend unavailable: {0}")]
    Unavailable(String),
    /// The on-disk store is corrupt, unreadable, or held by another process.
    #[error("storage file {path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// An invariant the backend relies on does not hold.
    #[error("storage internal error: {0}")]
    Internal(String),
}

/// A result of a storage call.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// The storage interface every backend implements. Keys are paths like
/// `/registry/<group>/<resource>/<namespace>/<name>`; a prefix ends with `/`.
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// Stores a new key. Fails with `AlreadyExists` if it is present. Returns the stored entry.
    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue>;

    /// Reads one key at the newest revision (`None` if absent).
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// Lists the keys under `prefix` at one consistent revision, in key order.
    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult>;

    /// Replaces the value of `key` if its current revision is `expected`: `Conflict` otherwise,
    /// `NotFound` if it is absent.
    async fn update(&self, key: &str, expected: Revision, value: Bytes) -> Result<KeyValue>;

    /// Deletes `key`, if `expected` is given only when its revision is that (`Conflict`
    /// otherwise). Returns the deleted entry with `mod_revision` = the deletion's revision.
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue>;

    /// Watches `key` (or every key under it when `recursive`) for changes after `from`
    /// (`0`: from now). Fails with `Compacted` when `from` is older than the history kept.
    async fn watch(&self, key: &str, recursive: bool, from: Revision) -> Result<WatchStream>;

    /// Like [`Storage::watch`], for a watcher that needs only the changes of objects whose
    /// old or new value of an indexed field is `index`'s (Kubernetes' watch-cache triggers:
    /// a kubelet's watch of its node's pods). Only a prefilter: the stream may carry other
    /// changes too, and the caller still applies its selectors. Backends without such an
    /// index send every change.
    async fn watch_indexed(
        &self,
        key: &str,
        recursive: bool,
        from: Revision,
        index: Option<&IndexValue>,
    ) -> Result<WatchStream> {
        let _ = index;
        self.watch(key, recursive, from).await
    }

    /// The newest revision of the store.
    async fn current_revision(&self) -> Result<Revision>;

    /// Drops the history older than `revision` (the state at `revision` stays readable).
    async fn compact(&self, revision: Revision) -> Result<()>;

    /// The latest revision that has been compacted (0 if none).
    async fn compacted_revision(&self) -> Result<Revision>;
}

/// A watcher's value of an indexed field, see [`Storage::watch_indexed`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexValue {
    /// The field (`spec.nodeName`).
    pub field: &'static str,
    /// The value the watcher selects.
    pub value: String,
}

/// What a [`guaranteed_update`] closure decides for the current state.
pub enum Update {
    /// Write this value.
    Write(Bytes),
    /// Leave the object as it is (no write, no new revision).
    Keep,
}

/// Read-modify-write with compare-and-swap: calls `f` with the current state and writes what it
/// returns only if nothing changed in between, retrying on `Conflict`. `f` gets `None` when the
/// key is absent; returning `Write` then creates it.
pub async fn guaranteed_update<F>(store: &dyn Storage, key: &str, mut f: F) -> Result<KeyValue>
where
    F: FnMut(Option<&KeyValue>) -> Result<Update> + Send,
{
    loop {
        let current = store.get(key).await?;
        let outcome = match (f(current.as_ref())?, current) {
            (Update::Keep, Some(cur)) => return Ok(cur),
            (Update::Keep, None) => return Err(StorageError::NotFound { key: key.into() }),
            (Update::Write(value), None) => store.create(key, value).await,
            (Update::Write(value), Some(cur)) => store.update(key, cur.mod_revision, value).await,
        };
        match outcome {
            Err(StorageError::Conflict { .. } | StorageError::AlreadyExists { .. }) => continue,
            Err(StorageError::NotFound { .. }) => continue,
            other => return other,
        }
    }
}

/// Deletes `key` if `pre` holds (uid read from the stored JSON's `metadata.uid`), retrying when
/// the object changes between the check and the delete.
pub async fn delete_with_preconditions(
    store: &dyn Storage,
    key: &str,
    pre: &Preconditions,
) -> Result<KeyValue> {
    loop {
        let current = store
            .get(key)
            .await?
            .ok_or_else(|| StorageError::NotFound { key: key.into() })?;
        check_preconditions(&current, pre)?;
        match store.delete(key, Some(current.mod_revision)).await {
            // Changed under us: re-check the preconditions against the new state.
            Err(StorageError::Conflict { .. }) if pre.revision.is_none() => continue,
            other => return other,
        }
    }
}

/// Checks `pre` against a stored entry: `Conflict` naming what differs.
pub fn check_preconditions(kv: &KeyValue, pre: &Preconditions) -> Result<()> {
    if let Some(rev) = pre.revision
        && rev != kv.mod_revision
    {
        return Err(StorageError::Conflict {
            key: kv.key.clone(),
            message: format!(
                "precondition failed: resourceVersion {rev}, stored {}",
                kv.mod_revision
            ),
        });
    }
    if let Some(uid) = &pre.uid {
        let stored = stored_uid(&kv.value);
        if stored.as_deref() != Some(uid.as_str()) {
            return Err(StorageError::Conflict {
                key: kv.key.clone(),
                message: format!(
                    "precondition failed: uid {uid}, stored {}",
                    stored.as_deref().unwrap_or("<none>")
                ),
            });
        }
    }
    Ok(())
}

fn stored_uid(value: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Meta {
        uid: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Obj {
        metadata: Option<Meta>,
    }
    serde_json::from_slice::<Obj>(value).ok()?.metadata?.uid
}

/// The first key after every key that starts with `prefix` (for range ends).
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff (or empty): no upper bound; "\0" means "to the end" for etcd.
    vec![0]
}

/// Whether a watch on `key` (recursive or exact) sees a change to `changed`.
pub(crate) fn watch_matches(key: &str, recursive: bool, changed: &str) -> bool {
    if recursive {
        changed.starts_with(key)
    } else {
        changed == key
    }
}

/// Whether `key` is inside the range a list or watch covers.
pub(crate) fn key_in_range(prefix: &str, start_after: Option<&str>, key: &str) -> bool {
    key.starts_with(prefix) && start_after.is_none_or(|s| key > s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_last_byte() {
        assert_eq!(prefix_end(b"/registry/pods/"), b"/registry/pods0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b""), vec![0]);
    }

    #[test]
    fn uid_preconditions_read_metadata() {
        let kv = KeyValue {
            key: "/k".into(),
            value: Bytes::from_static(br#"{"metadata":{"uid":"u1"}}"#),
            create_revision: 1,
            mod_revision: 3,
        };
        let ok = Preconditions {
            uid: Some("u1".into()),
            revision: Some(3),
        };
        assert!(check_preconditions(&kv, &ok).is_ok());
        let bad_uid = Preconditions {
            uid: Some("u2".into()),
            revision: None,
        };
        assert!(matches!(
            check_preconditions(&kv, &bad_uid),
            Err(StorageError::Conflict { .. })
        ));
        let bad_rev = Preconditions {
            uid: None,
            revision: Some(2),
        };
        assert!(matches!(
            check_preconditions(&kv, &bad_rev),
            Err(StorageError::Conflict { .. })
        ));
    }

    #[test]
    fn watch_matching() {
        assert!(watch_matches("/a/", true, "/a/b"));
        assert!(!watch_matches("/a/", true, "/ab"));
        assert!(watch_matches("/a/b", false, "/a/b"));
        assert!(!watch_matches("/a/b", false, "/a/bc"));
    }
}
