//! A work queue in the manner of client-go's: an item is queued at most once, is never handed
//! to two workers at a time (re-added while in process, it is queued again when done), can be
//! added after a delay, and is retried with per-item exponential backoff. Used where the work is
//! not one kind of object a `kube::runtime::Controller` could own (the garbage collector's
//! graph items).

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Notify;

struct State<T> {
    queue: VecDeque<T>,
    dirty: HashSet<T>,
    processing: HashSet<T>,
    failures: HashMap<T, u32>,
    shut_down: bool,
}

/// The queue.
pub struct WorkQueue<T> {
    state: Mutex<State<T>>,
    notify: Notify,
    base: Duration,
    max: Duration,
}

impl<T: Clone + Eq + Hash + Send + 'static> WorkQueue<T> {
    /// A queue retrying failures after `base` · 2ⁿ, at most `max`.
    pub fn new(base: Duration, max: Duration) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                dirty: HashSet::new(),
                processing: HashSet::new(),
                failures: HashMap::new(),
                shut_down: false,
            }),
            notify: Notify::new(),
            base,
            max,
        })
    }

    /// Queues an item (once).
    pub fn add(&self, item: T) {
        let mut s = self.state.lock().expect("queue");
        if s.shut_down || s.dirty.contains(&item) {
            return;
        }
        s.dirty.insert(item.clone());
        if s.processing.contains(&item) {
            return;
        }
        s.queue.push_back(item);
        drop(s);
        self.notify.notify_one();
    }

    /// Queues an item after `delay`.
    pub fn add_after(self: &Arc<Self>, item: T, delay: Duration) {
        if delay.is_zero() {
            self.add(item);
            return;
        }
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if let Some(q) = weak.upgrade() {
                q.add(item);
            }
        });
    }

    /// Queues an item after its next backoff delay.
    pub fn add_rate_limited(self: &Arc<Self>, item: T) {
        let n = {
            let mut s = self.state.lock().expect("queue");
            let n = s.failures.entry(item.clone()).or_insert(0);
            *n += 1;
            *n
        };
        let delay = self.base.saturating_mul(1 << (n - 1).min(24)).min(self.max);
        self.add_after(item, delay);
    }

    /// Resets an item's backoff.
    pub fn forget(&self, item: &T) {
        self.state.lock().expect("queue").failures.remove(item);
    }

    /// How often the item failed in a row.
    pub fn failures(&self, item: &T) -> u32 {
        self.state
            .lock()
            .expect("queue")
            .failures
            .get(item)
            .copied()
            .unwrap_or(0)
    }

    /// The next item, waiting for one; `None` once shut down.
    pub async fn get(&self) -> Option<T> {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut s = self.state.lock().expect("queue");
                if let Some(item) = s.queue.pop_front() {
                    s.dirty.remove(&item);
                    s.processing.insert(item.clone());
                    let more = !s.queue.is_empty();
                    drop(s);
                    if more {
                        self.notify.notify_one();
                    }
                    return Some(item);
                }
                if s.shut_down {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// Marks an item processed (re-queuing it if it was added meanwhile).
    pub fn done(&self, item: &T) {
        let mut s = self.state.lock().expect("queue");
        s.processing.remove(item);
        if s.dirty.contains(item) {
            s.queue.push_back(item.clone());
            drop(s);
            self.notify.notify_one();
        }
    }

    /// Items waiting.
    pub fn len(&self) -> usize {
        self.state.lock().expect("queue").queue.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Wakes every waiting worker with `None`.
    pub fn shut_down(&self) {
        self.state.lock().expect("queue").shut_down = true;
        self.notify.notify_waiters();
        self.notify.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn items_are_deduplicated_and_never_processed_twice_at_once() {
        let q = WorkQueue::new(Duration::from_millis(5), Duration::from_secs(60));
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.len(), 2);
        let a = q.get().await.unwrap();
        assert_eq!(a, "a");
        // Re-added while processing: not handed out until done.
        q.add("a");
        assert_eq!(q.get().await, Some("b"));
        assert!(q.is_empty());
        q.done(&"a");
        assert_eq!(q.get().await, Some("a"));
        q.done(&"a");
        q.done(&"b");
        assert!(q.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn failures_back_off_exponentially() {
        let q = WorkQueue::new(Duration::from_millis(100), Duration::from_secs(1));
        q.add_rate_limited("x");
        assert!(q.is_empty());
        tokio::time::sleep(Duration::from_millis(101)).await;
        assert_eq!(q.get().await, Some("x"));
        q.done(&"x");
        q.add_rate_limited("x");
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(q.is_empty(), "second retry waits 200 ms");
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(q.len(), 1);
        assert_eq!(q.failures(&"x"), 2);
        q.forget(&"x");
        assert_eq!(q.failures(&"x"), 0);
        q.shut_down();
        assert_eq!(
            q.get().await,
            Some("x"),
            "queued items are still handed out"
        );
        assert_eq!(q.get().await, None);
    }
}
