//! Periodic compaction: every interval, drop the history older than the revision seen one
//! interval ago, so between one and two intervals of history stay available for watches that
//! resume and for continue tokens (Kubernetes compacts every 5 minutes the same way).

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::{Revision, Storage};

/// Starts the compactor for `store`. Abort the handle to stop it.
pub fn spawn(store: Arc<dyn Storage>, interval: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut previous: Option<Revision> = None;
        loop {
            ticker.tick().await;
            if let Some(rev) = previous
                && rev > 0
            {
                match store.compact(rev).await {
                    Ok(()) => tracing::debug!(revision = rev, "compacted storage history"),
                    Err(e) => tracing::warn!(revision = rev, error = %e, "compaction failed"),
                }
            }
            previous = match store.current_revision().await {
                Ok(rev) => Some(rev),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the current revision to compact");
                    previous
                }
            };
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::embedded::{EmbeddedConfig, EmbeddedStorage};
    use bytes::Bytes;

    #[tokio::test]
    async fn compacts_to_the_revision_of_the_previous_tick() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            Arc::new(EmbeddedStorage::open(EmbeddedConfig::new(dir.path().join("db"))).unwrap());
        for i in 0..5 {
            store
                .create(&format!("/k/{i}"), Bytes::from_static(b"{}"))
                .await
                .unwrap();
        }
        let rev = store.current_revision().await.unwrap();
        let handle = spawn(store.clone(), Duration::from_millis(50));
        // First tick records the revision after the five writes; a later one compacts to it.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while store.compacted_revision().await.unwrap() < rev {
            assert!(
                tokio::time::Instant::now() < deadline,
                "compactor never ran"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        handle.abort();
        assert_eq!(store.compacted_revision().await.unwrap(), rev);
    }
}
