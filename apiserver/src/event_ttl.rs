//! Event expiry (`--event-ttl`, one hour by default): Events are deleted once they have not
//! been written for that long, as kube-apiserver does by attaching an etcd lease to every
//! write of an Event. The [`Storage`] trait has no leases, so a sweeper lists the stored Events
//! every interval (a sixtieth of the TTL, between one second and a minute — kube-apiserver
//! reuses a lease for writes within about that window) and deletes those whose newest
//! timestamp is older than the TTL, each only if it is unchanged since it was listed.
//!
//! An Event's last write is read from the object: the newest of `metadata.creationTimestamp`
//! (set by the API server at creation), `lastTimestamp`, `eventTime` and
//! `series.lastObservedTime` — the fields every recorder (client-go, kube-rs, the kubelet)
//! advances when it writes an Event again. Both APIs (`v1` and `events.k8s.io/v1`) store their
//! Events under the same prefix in the `v1` form, so one sweep covers both.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::task::JoinHandle;

use crate::storage::{KeyValue, ListOptions, ReadAt, Storage, StorageError};

/// Where Events are stored (both APIs).
pub const PREFIX: &str = "/registry/events/";

/// Events read per list page of a sweep.
const PAGE: usize = 500;

/// kube-apiserver's default `--event-ttl`.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

/// How often the sweeper runs for a TTL.
pub fn interval(ttl: Duration) -> Duration {
    (ttl / 60).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// Starts the sweeper over `store` (decrypted values). Abort the handle to stop it.
pub fn spawn(store: Arc<dyn Storage>, ttl: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval(ttl));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match sweep(store.as_ref(), ttl, jiff::Timestamp::now()).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(deleted = n, "expired events"),
                // The next tick tries again (a compaction between pages, an unreachable etcd).
                Err(e) => tracing::warn!(error = %e, "expiring events"),
            }
        }
    })
}

/// Deletes every Event last written before `now - ttl`; how many it deleted.
pub async fn sweep(
    store: &dyn Storage,
    ttl: Duration,
    now: jiff::Timestamp,
) -> Result<usize, StorageError> {
    let span = jiff::SignedDuration::try_from(ttl).unwrap_or(jiff::SignedDuration::MAX);
    let cutoff = now.checked_sub(span).unwrap_or(jiff::Timestamp::MIN);
    let mut opts = ListOptions {
        read_at: ReadAt::Latest,
        limit: Some(PAGE),
        ..Default::default()
    };
    let mut deleted = 0;
    loop {
        let page = store.list(PREFIX, opts.clone()).await?;
        deleted += expire(store, &page.items, cutoff).await?;
        match page.items.last() {
            Some(last) if page.more => {
                opts.read_at = ReadAt::Exact(page.revision);
                opts.start_after = Some(last.key.clone());
            }
            _ => return Ok(deleted),
        }
    }
}

/// Deletes the listed Events last written before `cutoff`, each only at the revision listed.
async fn expire(
    store: &dyn Storage,
    items: &[KeyValue],
    cutoff: jiff::Timestamp,
) -> Result<usize, StorageError> {
    let mut deleted = 0;
    for kv in items {
        if last_written(&kv.value).is_none_or(|t| t >= cutoff) {
            continue;
        }
        match store.delete(&kv.key, Some(kv.mod_revision)).await {
            Ok(_) => deleted += 1,
            // Written again since the list (it lives on) or deleted by someone else.
            Err(StorageError::Conflict { .. } | StorageError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(deleted)
}

/// The timestamps of a stored Event that tell when it was last written.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Stamps {
    #[serde(default)]
    metadata: MetaStamps,
    last_timestamp: Option<String>,
    event_time: Option<String>,
    series: Option<SeriesStamps>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetaStamps {
    creation_timestamp: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SeriesStamps {
    last_observed_time: Option<String>,
}

/// The newest of an Event's timestamps; `None` when it has none that parses (never expired).
fn last_written(raw: &[u8]) -> Option<jiff::Timestamp> {
    let s: Stamps = serde_json::from_slice(raw).ok()?;
    [
        s.metadata.creation_timestamp,
        s.last_timestamp,
        s.event_time,
        s.series.and_then(|x| x.last_observed_time),
    ]
    .into_iter()
    .flatten()
    .filter_map(|t| t.parse::<jiff::Timestamp>().ok())
    .max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::embedded::{EmbeddedConfig, EmbeddedStorage};
    use bytes::Bytes;

    fn at(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    fn event(created: &str, extra: serde_json::Value) -> Bytes {
        let mut v = serde_json::json!({
            "kind": "Event",
            "apiVersion": "v1",
            "metadata": {"creationTimestamp": created},
        });
        if let (Some(o), Some(x)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(x.clone());
        }
        Bytes::from(serde_json::to_vec(&v).unwrap())
    }

    #[test]
    fn the_newest_timestamp_counts() {
        let raw = event(
            "2026-01-01T00:00:00Z",
            serde_json::json!({
                "lastTimestamp": "2026-01-01T02:00:00Z",
                "eventTime": "2026-01-01T01:00:00.123456Z",
                "series": {"count": 3, "lastObservedTime": "2026-01-01T03:00:00.000001Z"},
            }),
        );
        assert_eq!(last_written(&raw), Some(at("2026-01-01T03:00:00.000001Z")));
        let raw = event(
            "2026-01-01T00:00:00Z",
            serde_json::json!({"lastTimestamp": null}),
        );
        assert_eq!(last_written(&raw), Some(at("2026-01-01T00:00:00Z")));
        assert_eq!(last_written(b"{\"kind\":\"Event\"}"), None);
        assert_eq!(last_written(b"not json"), None);
    }

    #[test]
    fn sweeps_sixty_times_a_ttl_within_bounds() {
        assert_eq!(interval(DEFAULT_TTL), Duration::from_secs(60));
        assert_eq!(interval(Duration::from_secs(600)), Duration::from_secs(10));
        assert_eq!(interval(Duration::from_secs(5)), Duration::from_secs(1));
        assert_eq!(
            interval(Duration::from_secs(86_400)),
            Duration::from_secs(60)
        );
    }

    #[tokio::test]
    async fn deletes_only_events_older_than_the_ttl_across_pages() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStorage::open(EmbeddedConfig::new(dir.path().join("db"))).unwrap();
        // More than a page of old events, a few recent ones, one refreshed by a later write,
        // one without timestamps, and an object of another resource.
        for i in 0..(PAGE + 20) {
            let key = format!("{PREFIX}default/old-{i:04}");
            store
                .create(&key, event("2026-01-01T00:00:00Z", serde_json::json!({})))
                .await
                .unwrap();
        }
        for i in 0..3 {
            let key = format!("{PREFIX}kube-system/new-{i}");
            store
                .create(&key, event("2026-01-01T00:50:00Z", serde_json::json!({})))
                .await
                .unwrap();
        }
        let refreshed = format!("{PREFIX}default/refreshed");
        store
            .create(
                &refreshed,
                event(
                    "2026-01-01T00:00:00Z",
                    serde_json::json!({"lastTimestamp": "2026-01-01T00:59:00Z"}),
                ),
            )
            .await
            .unwrap();
        let undated = format!("{PREFIX}default/undated");
        store
            .create(&undated, Bytes::from_static(b"{\"kind\":\"Event\"}"))
            .await
            .unwrap();
        let pod = "/registry/pods/default/p";
        store
            .create(pod, event("2020-01-01T00:00:00Z", serde_json::json!({})))
            .await
            .unwrap();

        let n = sweep(&store, DEFAULT_TTL, at("2026-01-01T01:30:00Z"))
            .await
            .unwrap();
        assert_eq!(n, PAGE + 20);
        let left = store.list(PREFIX, ListOptions::default()).await.unwrap();
        let keys: Vec<&str> = left.items.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                refreshed.as_str(),
                undated.as_str(),
                &format!("{PREFIX}kube-system/new-0"),
                &format!("{PREFIX}kube-system/new-1"),
                &format!("{PREFIX}kube-system/new-2"),
            ]
        );
        assert!(store.get(pod).await.unwrap().is_some(), "not an event");

        // An hour after the refresh, the rest go too (the undated one stays).
        let n = sweep(&store, DEFAULT_TTL, at("2026-01-01T02:00:00Z"))
            .await
            .unwrap();
        assert_eq!(n, 4);
        let left = store.list(PREFIX, ListOptions::default()).await.unwrap();
        assert_eq!(left.items.len(), 1);
    }

    #[tokio::test]
    async fn an_event_written_after_the_list_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStorage::open(EmbeddedConfig::new(dir.path().join("db"))).unwrap();
        let key = format!("{PREFIX}default/e");
        let old = event("2026-01-01T00:00:00Z", serde_json::json!({}));
        let listed = store.create(&key, old).await.unwrap();
        // A recorder writes it again (count + 1) between the sweep's list and its delete.
        let again = event(
            "2026-01-01T00:00:00Z",
            serde_json::json!({"lastTimestamp": "2026-01-01T01:29:00Z", "count": 2}),
        );
        store
            .update(&key, listed.mod_revision, again)
            .await
            .unwrap();
        let n = expire(&store, &[listed], at("2026-01-01T00:30:00Z"))
            .await
            .unwrap();
        assert_eq!(n, 0);
        assert!(store.get(&key).await.unwrap().is_some());
    }
}
