//! Store latency: a [`Storage`] that times every operation of the backend under it and keeps
//! one histogram per operation and resource, exposed on `/metrics` as upstream's
//! `etcd_request_duration_seconds{operation, type}` (the embedded store's too, as k3s' kine
//! reports it under the same name), so a user sees how much of a request's time is the store's;
//! on the embedded store also how many writes each of its commits (one `fsync`) carried.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;

use super::{KeyValue, ListOptions, ListResult, Result, Revision, Storage, WatchStream};
use crate::http::metrics::Histogram;

/// Histograms of store operations by (operation, resource).
#[derive(Default)]
pub struct StoreMetrics {
    latency: Mutex<BTreeMap<(&'static str, &'static str), Histogram>>,
    /// The embedded store's commit statistics, when that is the backend.
    commits: Option<Arc<super::embedded::CommitStats>>,
}

impl StoreMetrics {
    /// Metrics that also report the embedded store's commits (`None` on etcd).
    pub fn new(commits: Option<Arc<super::embedded::CommitStats>>) -> Self {
        Self {
            commits,
            ..Default::default()
        }
    }

    fn observe(&self, operation: &'static str, key: &str, started: Instant) {
        let secs = started.elapsed().as_secs_f64();
        let mut lat = self.latency.lock().expect("store metrics lock");
        lat.entry((operation, resource_of(key)))
            .or_default()
            .observe(secs);
    }

    /// The Prometheus text of the histograms.
    pub fn render(&self, out: &mut String) {
        out.push_str("# HELP etcd_request_duration_seconds Store request latency in seconds for each operation and object type.\n");
        out.push_str("# TYPE etcd_request_duration_seconds histogram\n");
        for ((op, ty), h) in self.latency.lock().expect("store metrics lock").iter() {
            h.render(
                out,
                "etcd_request_duration_seconds",
                &format!("operation=\"{op}\",type=\"{ty}\""),
            );
        }
        if let Some(commits) = &self.commits {
            commits.render(out);
        }
    }
}

/// The resource a key belongs to, as its storage segment (`pods`, `apps/deployments`), or
/// `other` for keys of no served resource.
fn resource_of(key: &str) -> &'static str {
    crate::resources::ALL
        .iter()
        .filter(|d| !d.create_only)
        .map(|d| d.storage)
        .filter(|s| {
            key.strip_prefix("/registry/")
                .and_then(|rest| rest.strip_prefix(s))
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
        .max_by_key(|s| s.len())
        .unwrap_or("other")
}

/// A backend whose operations are timed into [`StoreMetrics`].
pub struct MeteredStorage {
    inner: Arc<dyn Storage>,
    metrics: Arc<StoreMetrics>,
}

impl MeteredStorage {
    /// Times the operations of `inner` into `metrics`.
    pub fn new(inner: Arc<dyn Storage>, metrics: Arc<StoreMetrics>) -> Self {
        Self { inner, metrics }
    }
}

#[async_trait]
impl Storage for MeteredStorage {
    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue> {
        let t = Instant::now();
        let r = self.inner.create(key, value).await;
        self.metrics.observe("create", key, t);
        r
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let t = Instant::now();
        let r = self.inner.get(key).await;
        self.metrics.observe("get", key, t);
        r
    }

    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult> {
        let t = Instant::now();
        let r = self.inner.list(prefix, opts).await;
        self.metrics.observe("list", prefix, t);
        r
    }

    async fn update(&self, key: &str, expected: Revision, value: Bytes) -> Result<KeyValue> {
        let t = Instant::now();
        let r = self.inner.update(key, expected, value).await;
        self.metrics.observe("update", key, t);
        r
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue> {
        let t = Instant::now();
        let r = self.inner.delete(key, expected).await;
        self.metrics.observe("delete", key, t);
        r
    }

    async fn watch(&self, key: &str, recursive: bool, from: Revision) -> Result<WatchStream> {
        self.inner.watch(key, recursive, from).await
    }

    async fn current_revision(&self) -> Result<Revision> {
        self.inner.current_revision().await
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.inner.compact(revision).await
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        self.inner.compacted_revision().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::embedded::{EmbeddedConfig, EmbeddedStorage};

    #[test]
    fn keys_name_their_resource() {
        assert_eq!(resource_of("/registry/pods/default/web"), "pods");
        assert_eq!(resource_of("/registry/pods/"), "pods");
        assert_eq!(
            resource_of("/registry/apps/deployments/default/web"),
            "apps/deployments"
        );
        assert_eq!(resource_of("/registry/podsx/a"), "other");
        assert_eq!(resource_of("/elsewhere"), "other");
    }

    #[tokio::test]
    async fn every_operation_is_timed_by_resource() {
        let dir = tempfile::tempdir().unwrap();
        let inner: Arc<dyn Storage> = Arc::new(
            EmbeddedStorage::open(EmbeddedConfig::new(dir.path().join("rkube.db"))).unwrap(),
        );
        let metrics = Arc::new(StoreMetrics::default());
        let s = MeteredStorage::new(inner, metrics.clone());
        let kv = s
            .create("/registry/pods/default/a", Bytes::from_static(b"{}"))
            .await
            .unwrap();
        s.update(
            "/registry/pods/default/a",
            kv.mod_revision,
            Bytes::from_static(b"{}"),
        )
        .await
        .unwrap();
        assert!(s.get("/registry/pods/default/a").await.unwrap().is_some());
        s.list("/registry/pods/", ListOptions::default())
            .await
            .unwrap();
        // A failed operation is timed too.
        assert!(
            s.create("/registry/pods/default/a", Bytes::from_static(b"{}"))
                .await
                .is_err()
        );
        s.delete("/registry/pods/default/a", None).await.unwrap();
        let mut text = String::new();
        metrics.render(&mut text);
        for (op, n) in [
            ("create", 2),
            ("update", 1),
            ("get", 1),
            ("list", 1),
            ("delete", 1),
        ] {
            let line = format!(
                "etcd_request_duration_seconds_count{{operation=\"{op}\",type=\"pods\"}} {n}"
            );
            assert!(text.contains(&line), "{line} missing from\n{text}");
        }
        assert!(text.contains("# TYPE etcd_request_duration_seconds histogram"));
    }
}
