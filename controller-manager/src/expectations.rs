//! Controller expectations (Kubernetes' `UIDTrackingControllerExpectations`): what a controller
//! has asked the API server to create or delete and has not yet seen in its cache. A controller
//! acts on an object only when its expectations are satisfied, so it never creates the same pods
//! twice because the watch had not caught up with its own writes. Creations are counted;
//! deletions are tracked by UID. Expectations expire after five minutes, so a lost watch event
//! cannot wedge a controller.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// How long expectations hold before they are considered stale (Kubernetes' ExpectationsTimeout).
pub const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(5 * 60);

#[derive(Debug)]
struct Record {
    adds: i64,
    deletes: HashSet<String>,
    set_at: Instant,
}

/// Per-controller-key expectations.
#[derive(Debug)]
pub struct Expectations {
    records: Mutex<HashMap<String, Record>>,
    timeout: Duration,
}

impl Default for Expectations {
    fn default() -> Self {
        Self::new(EXPECTATIONS_TIMEOUT)
    }
}

impl Expectations {
    /// Expectations that expire after `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Self {
            records: Mutex::default(),
            timeout,
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, Record>) -> R) -> R {
        f(&mut self.records.lock().expect("expectations"))
    }

    /// Whether the controller may act on `key`: nothing expected, everything observed, or the
    /// expectations expired.
    pub fn satisfied(&self, key: &str) -> bool {
        self.with(|r| match r.get(key) {
            None => true,
            Some(rec) => {
                (rec.adds <= 0 && rec.deletes.is_empty()) || rec.set_at.elapsed() > self.timeout
            }
        })
    }

    /// Expects `n` creations (replacing earlier expectations, which must have been satisfied).
    pub fn expect_creations(&self, key: &str, n: usize) {
        self.with(|r| {
            r.insert(
                key.to_string(),
                Record {
                    adds: n as i64,
                    deletes: HashSet::new(),
                    set_at: Instant::now(),
                },
            );
        });
    }

    /// Expects the deletion of these UIDs.
    pub fn expect_deletions(&self, key: &str, uids: impl IntoIterator<Item = String>) {
        self.with(|r| {
            r.insert(
                key.to_string(),
                Record {
                    adds: 0,
                    deletes: uids.into_iter().collect(),
                    set_at: Instant::now(),
                },
            );
        });
    }

    /// One expected creation was seen (or will never happen because the create failed).
    pub fn creation_observed(&self, key: &str) {
        self.with(|r| {
            if let Some(rec) = r.get_mut(key) {
                rec.adds -= 1;
            }
        });
    }

    /// The deletion of `uid` was seen (or will never happen because the delete failed).
    pub fn deletion_observed(&self, key: &str, uid: &str) {
        self.with(|r| {
            if let Some(rec) = r.get_mut(key) {
                rec.deletes.remove(uid);
            }
        });
    }

    /// Outstanding (creations, deletions) for `key`.
    pub fn pending(&self, key: &str) -> (i64, usize) {
        self.with(|r| {
            r.get(key)
                .map(|rec| (rec.adds.max(0), rec.deletes.len()))
                .unwrap_or((0, 0))
        })
    }

    /// Drops the expectations of a deleted controller.
    pub fn forget(&self, key: &str) {
        self.with(|r| {
            r.remove(key);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn creations_and_deletions_must_be_observed() {
        let e = Expectations::default();
        assert!(e.satisfied("ns/rs"), "nothing expected");
        e.expect_creations("ns/rs", 2);
        assert!(!e.satisfied("ns/rs"));
        e.creation_observed("ns/rs");
        assert!(!e.satisfied("ns/rs"));
        assert_eq!(e.pending("ns/rs"), (1, 0));
        e.creation_observed("ns/rs");
        assert!(e.satisfied("ns/rs"));

        e.expect_deletions("ns/rs", ["u1".to_string(), "u2".to_string()]);
        assert!(!e.satisfied("ns/rs"));
        e.deletion_observed("ns/rs", "u1");
        e.deletion_observed("ns/rs", "u1");
        assert!(!e.satisfied("ns/rs"), "u2 is still expected");
        e.deletion_observed("ns/rs", "other");
        assert!(!e.satisfied("ns/rs"));
        e.deletion_observed("ns/rs", "u2");
        assert!(e.satisfied("ns/rs"));
        assert!(e.satisfied("ns/other"), "keys are independent");
    }

    #[tokio::test(start_paused = true)]
    async fn expectations_expire() {
        let e = Expectations::default();
        e.expect_creations("ns/rs", 3);
        tokio::time::advance(EXPECTATIONS_TIMEOUT - Duration::from_secs(1)).await;
        assert!(!e.satisfied("ns/rs"));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(
            e.satisfied("ns/rs"),
            "a lost watch event does not wedge the controller"
        );
        e.forget("ns/rs");
        assert_eq!(e.pending("ns/rs"), (0, 0));
    }
}
