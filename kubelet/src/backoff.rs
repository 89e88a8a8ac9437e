//! Per-key exponential back-off with Kubernetes' semantics (`k8s.io/client-go/util/flowcontrol`
//! `Backoff`): the first failure is retried at once and starts a window of the initial duration;
//! each later failure within reach doubles it up to the maximum; an entry untouched for twice
//! the maximum is forgotten. Used for crash loops (`CrashLoopBackOff`) and image pulls
//! (`ImagePullBackOff`).

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Clone, Copy, Debug)]
struct Entry {
    backoff: Duration,
    last_update: Instant,
}

/// Back-off state per key.
#[derive(Debug)]
pub struct Backoff<K> {
    initial: Duration,
    max: Duration,
    entries: HashMap<K, Entry>,
}

impl<K: Hash + Eq + Clone> Backoff<K> {
    /// A back-off starting at `initial`, doubling up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            entries: HashMap::new(),
        }
    }

    fn expired(&self, e: &Entry, now: Instant) -> bool {
        now.saturating_duration_since(e.last_update) > self.max * 2
    }

    /// Records a failure now: starts or doubles the window.
    pub fn next(&mut self, key: &K) {
        let now = Instant::now();
        let backoff = match self.entries.get(key) {
            Some(e) if !self.expired(e, now) => (e.backoff * 2).min(self.max),
            _ => self.initial,
        };
        self.entries.insert(
            key.clone(),
            Entry {
                backoff,
                last_update: now,
            },
        );
    }

    /// If `key` is backing off from an event at `since`, when the back-off ends.
    pub fn in_backoff_since(&self, key: &K, since: Instant) -> Option<Instant> {
        let now = Instant::now();
        let e = self.entries.get(key)?;
        if self.expired(e, now) {
            return None;
        }
        let until = since + e.backoff;
        (now < until).then_some(until)
    }

    /// The current window of `key`.
    pub fn current(&self, key: &K) -> Option<Duration> {
        self.entries.get(key).map(|e| e.backoff)
    }

    /// Forgets `key`.
    pub fn reset(&mut self, key: &K) {
        self.entries.remove(key);
    }

    /// Forgets entries untouched for twice the maximum.
    pub fn gc(&mut self) {
        let now = Instant::now();
        let max2 = self.max * 2;
        self.entries
            .retain(|_, e| now.saturating_duration_since(e.last_update) <= max2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn doubles_to_the_maximum_and_expires() {
        let mut b = Backoff::new(Duration::from_secs(10), Duration::from_secs(300));
        let k = "pod/c".to_string();
        // Never failed: not backing off.
        assert!(b.in_backoff_since(&k, Instant::now()).is_none());
        b.next(&k);
        assert_eq!(b.current(&k), Some(Duration::from_secs(10)));
        // A crash right now backs off for 10 s.
        let crash = Instant::now();
        let until = b.in_backoff_since(&k, crash).unwrap();
        assert_eq!(until - crash, Duration::from_secs(10));
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(b.in_backoff_since(&k, crash).is_some());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(b.in_backoff_since(&k, crash).is_none());
        let mut seen = Vec::new();
        for _ in 0..7 {
            b.next(&k);
            seen.push(b.current(&k).unwrap().as_secs());
        }
        assert_eq!(seen, [20, 40, 80, 160, 300, 300, 300]);
        // Untouched for more than twice the maximum: forgotten.
        tokio::time::advance(Duration::from_secs(601)).await;
        assert!(b.in_backoff_since(&k, Instant::now()).is_none());
        b.next(&k);
        assert_eq!(b.current(&k), Some(Duration::from_secs(10)));
        tokio::time::advance(Duration::from_secs(601)).await;
        b.gc();
        assert!(b.current(&k).is_none());
    }
}
