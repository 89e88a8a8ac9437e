//! The scheduling queue. Pending pods wait in one of three places:
//!
//! - the **active** queue, ordered by priority (highest first) then by the time they were
//!   queued — the scheduling loop pops from here;
//! - the **backoff** queue, after a failed attempt: 1 s, doubling per attempt up to 10 s
//!   (configurable), then back to active;
//! - the **unschedulable** set, for pods no node fits: they move back when a cluster event
//!   that may help them happens (a node added or changed, a pod deleted — each plugin names
//!   the events that can undo its rejections), and in any case after 60 s.
//!
//! A popped pod is *in flight* until the scheduler reports the outcome; a pod deleted or bound
//! meanwhile is not re-queued. All timers use `tokio::time`, so tests run with paused time.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::framework::ClusterEvent;
use crate::pod_info::{PodInfo, PodKey};

/// A pod in the queue with its scheduling history.
#[derive(Clone, Debug)]
pub struct QueuedPod {
    /// The pod.
    pub info: Arc<PodInfo>,
    /// When it was last put in the active queue (its place among equal priorities).
    pub timestamp: Instant,
    /// When it first entered the queue (for the end-to-end scheduling latency).
    pub added: Instant,
    /// Scheduling attempts so far.
    pub attempts: u32,
    /// Plugins that rejected it in its last attempt.
    pub unschedulable_plugins: HashSet<&'static str>,
    /// When its last attempt failed.
    pub last_failure: Option<Instant>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    Active,
    Backoff,
    Unschedulable,
    InFlight,
}

struct Entry {
    pod: QueuedPod,
    place: Place,
    /// Changes whenever the entry moves: heap items with another seq are stale.
    seq: u64,
    /// When it entered the unschedulable set.
    unschedulable_since: Option<Instant>,
}

struct ActiveItem {
    priority: i32,
    timestamp: Instant,
    seq: u64,
    key: PodKey,
}

impl PartialEq for ActiveItem {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for ActiveItem {}
impl PartialOrd for ActiveItem {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for ActiveItem {
    /// Greater pops first: higher priority, then earlier timestamp, then earlier seq.
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority
            .cmp(&other.priority)
            .then(other.timestamp.cmp(&self.timestamp))
            .then(other.seq.cmp(&self.seq))
    }
}

type TimedHeap = BinaryHeap<Reverse<(Instant, u64, PodKey)>>;

struct Inner {
    entries: HashMap<PodKey, Entry>,
    active: BinaryHeap<ActiveItem>,
    backoff: TimedHeap,
    unschedulable: TimedHeap,
    counts: [usize; 4],
    seq: u64,
    scheduling_cycle: u64,
    move_request_cycle: u64,
    closed: bool,
}

/// Queue sizes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueLengths {
    /// Ready to be scheduled.
    pub active: usize,
    /// Waiting out a backoff.
    pub backoff: usize,
    /// Waiting for a cluster event.
    pub unschedulable: usize,
    /// Being scheduled or bound.
    pub in_flight: usize,
}

/// The scheduling queue (see the module doc).
pub struct SchedulingQueue {
    inner: Mutex<Inner>,
    notify: Notify,
    initial_backoff: Duration,
    max_backoff: Duration,
    max_unschedulable: Duration,
}

fn idx(p: Place) -> usize {
    match p {
        Place::Active => 0,
        Place::Backoff => 1,
        Place::Unschedulable => 2,
        Place::InFlight => 3,
    }
}

impl Inner {
    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn set_place(&mut self, key: &PodKey, place: Place, backoff: (Duration, Duration)) {
        let seq = self.next_seq();
        let Some(e) = self.entries.get_mut(key) else {
            return;
        };
        self.counts[idx(e.place)] -= 1;
        self.counts[idx(place)] += 1;
        e.place = place;
        e.seq = seq;
        let now = Instant::now();
        match place {
            Place::Active => {
                e.pod.timestamp = now;
                e.unschedulable_since = None;
                self.active.push(ActiveItem {
                    priority: e.pod.info.priority,
                    timestamp: now,
                    seq,
                    key: key.clone(),
                });
            }
            Place::Backoff => {
                e.unschedulable_since = None;
                let at = backoff_expiry(&e.pod, backoff.0, backoff.1);
                self.backoff.push(Reverse((at, seq, key.clone())));
            }
            Place::Unschedulable => {
                e.unschedulable_since = Some(now);
                self.unschedulable.push(Reverse((now, seq, key.clone())));
            }
            Place::InFlight => {
                e.unschedulable_since = None;
            }
        }
    }

    fn insert(&mut self, pod: QueuedPod, place: Place, backoff: (Duration, Duration)) {
        let key = pod.info.key.clone();
        self.counts[idx(Place::InFlight)] += 1;
        self.entries.insert(
            key.clone(),
            Entry {
                pod,
                place: Place::InFlight,
                seq: 0,
                unschedulable_since: None,
            },
        );
        self.set_place(&key, place, backoff);
    }

    fn remove(&mut self, key: &PodKey) -> Option<Entry> {
        let e = self.entries.remove(key)?;
        self.counts[idx(e.place)] -= 1;
        Some(e)
    }

    /// Moves pods whose backoff or unschedulable time is over; returns the next deadline.
    fn flush(
        &mut self,
        now: Instant,
        b: (Duration, Duration),
        max_unsched: Duration,
    ) -> Option<Instant> {
        while let Some(Reverse((at, seq, key))) = self.backoff.peek().cloned() {
            let live = self
                .entries
                .get(&key)
                .is_some_and(|e| e.seq == seq && e.place == Place::Backoff);
            if !live {
                self.backoff.pop();
                continue;
            }
            if at > now {
                break;
            }
            self.backoff.pop();
            self.set_place(&key, Place::Active, b);
        }
        while let Some(Reverse((since, seq, key))) = self.unschedulable.peek().cloned() {
            let live = self
                .entries
                .get(&key)
                .is_some_and(|e| e.seq == seq && e.place == Place::Unschedulable);
            if !live {
                self.unschedulable.pop();
                continue;
            }
            if since + max_unsched > now {
                break;
            }
            self.unschedulable.pop();
            let place = self.place_after_wait(&key, now, b);
            self.set_place(&key, place, b);
        }
        let next_backoff = self.backoff.peek().map(|Reverse((at, _, _))| *at);
        let next_unsched = self
            .unschedulable
            .peek()
            .map(|Reverse((since, _, _))| *since + max_unsched);
        match (next_backoff, next_unsched) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Where a pod leaving the unschedulable set goes: backoff if its backoff is not over.
    fn place_after_wait(&self, key: &PodKey, now: Instant, b: (Duration, Duration)) -> Place {
        match self.entries.get(key) {
            Some(e) if backoff_expiry(&e.pod, b.0, b.1) > now => Place::Backoff,
            _ => Place::Active,
        }
    }
}

/// The backoff after `attempts` failures: `initial × 2^(attempts-1)`, at most `max`.
pub fn backoff_duration(attempts: u32, initial: Duration, max: Duration) -> Duration {
    let mut d = initial;
    for _ in 1..attempts {
        d = d.saturating_mul(2);
        if d >= max {
            return max;
        }
    }
    d.min(max)
}

fn backoff_expiry(pod: &QueuedPod, initial: Duration, max: Duration) -> Instant {
    let from = pod.last_failure.unwrap_or(pod.timestamp);
    from + backoff_duration(pod.attempts.max(1), initial, max)
}

impl SchedulingQueue {
    /// A queue with backoff bounds and the longest wait of an unschedulable pod.
    pub fn new(
        initial_backoff: Duration,
        max_backoff: Duration,
        max_unschedulable: Duration,
    ) -> Self {
        SchedulingQueue {
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                active: BinaryHeap::new(),
                backoff: BinaryHeap::new(),
                unschedulable: BinaryHeap::new(),
                counts: [0; 4],
                seq: 0,
                scheduling_cycle: 0,
                move_request_cycle: 0,
                closed: false,
            }),
            notify: Notify::new(),
            initial_backoff,
            max_backoff,
            max_unschedulable,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn b(&self) -> (Duration, Duration) {
        (self.initial_backoff, self.max_backoff)
    }

    /// Adds a pending pod, or updates it if queued. An update that changes the pod's spec or
    /// labels moves it out of the unschedulable set.
    pub fn add_or_update(&self, info: Arc<PodInfo>) {
        let mut inner = self.lock();
        let b = self.b();
        let key = info.key.clone();
        match inner.entries.get_mut(&key) {
            Some(e) => {
                let changed = e.pod.info.spec() != info.spec() || e.pod.info.labels != info.labels;
                let priority_changed = e.pod.info.priority != info.priority;
                e.pod.info = info;
                let place = e.place;
                if place == Place::Unschedulable && changed {
                    let now = Instant::now();
                    let to = inner.place_after_wait(&key, now, b);
                    inner.set_place(&key, to, b);
                    self.notify.notify_one();
                } else if place == Place::Active && priority_changed {
                    inner.set_place(&key, Place::Active, b);
                }
            }
            None => {
                let now = Instant::now();
                inner.insert(
                    QueuedPod {
                        info,
                        timestamp: now,
                        added: now,
                        attempts: 0,
                        unschedulable_plugins: HashSet::new(),
                        last_failure: None,
                    },
                    Place::Active,
                    b,
                );
                self.notify.notify_one();
            }
        }
    }

    /// Removes a pod (deleted, or bound by someone).
    pub fn delete(&self, key: &PodKey) {
        self.lock().remove(key);
    }

    /// Whether the pod is in the queue (in any place, or in flight).
    pub fn contains(&self, key: &PodKey) -> bool {
        self.lock().entries.contains_key(key)
    }

    /// Waits for the next pod to schedule; `None` once closed. Returns the pod and the
    /// scheduling cycle number.
    pub async fn pop(&self) -> Option<(QueuedPod, u64)> {
        loop {
            let wake = {
                let mut inner = self.lock();
                if inner.closed {
                    return None;
                }
                let now = Instant::now();
                let wake = inner.flush(now, self.b(), self.max_unschedulable);
                while let Some(item) = inner.active.pop() {
                    let live = inner
                        .entries
                        .get(&item.key)
                        .is_some_and(|e| e.seq == item.seq && e.place == Place::Active);
                    if !live {
                        continue;
                    }
                    inner.set_place(&item.key, Place::InFlight, self.b());
                    inner.scheduling_cycle += 1;
                    let cycle = inner.scheduling_cycle;
                    let e = inner.entries.get_mut(&item.key).expect("live entry");
                    e.pod.attempts += 1;
                    return Some((e.pod.clone(), cycle));
                }
                wake
            };
            match wake {
                Some(at) => {
                    tokio::select! {
                        _ = self.notify.notified() => {}
                        _ = tokio::time::sleep_until(at) => {}
                    }
                }
                None => self.notify.notified().await,
            }
        }
    }

    /// The pod left the queue (bound, or given up on).
    pub fn done(&self, key: &PodKey) {
        let mut inner = self.lock();
        if inner
            .entries
            .get(key)
            .is_some_and(|e| e.place == Place::InFlight)
        {
            inner.remove(key);
        }
    }

    /// An in-flight pod could not be scheduled: to the unschedulable set (or to backoff if a
    /// cluster event happened during its attempt, or `error` is set). Ignored if the pod was
    /// deleted or bound meanwhile.
    pub fn requeue(&self, key: &PodKey, plugins: HashSet<&'static str>, cycle: u64, error: bool) {
        let mut inner = self.lock();
        let b = self.b();
        let move_request_cycle = inner.move_request_cycle;
        let Some(e) = inner.entries.get_mut(key) else {
            return;
        };
        if e.place != Place::InFlight {
            return;
        }
        e.pod.last_failure = Some(Instant::now());
        e.pod.unschedulable_plugins = plugins;
        let place = if error || move_request_cycle >= cycle {
            Place::Backoff
        } else {
            Place::Unschedulable
        };
        inner.set_place(key, place, b);
        self.notify.notify_one();
    }

    /// A cluster event happened: unschedulable pods it may help move to backoff or active.
    /// `may_help` says whether the event can help a pod (given the plugins that rejected it).
    pub fn on_event(
        &self,
        event: ClusterEvent,
        may_help: impl Fn(&QueuedPod, ClusterEvent) -> bool,
    ) {
        let mut inner = self.lock();
        let b = self.b();
        inner.move_request_cycle = inner.scheduling_cycle;
        if inner.counts[idx(Place::Unschedulable)] == 0 {
            return;
        }
        let now = Instant::now();
        let keys: Vec<PodKey> = inner
            .entries
            .iter()
            .filter(|(_, e)| e.place == Place::Unschedulable && may_help(&e.pod, event))
            .map(|(k, _)| k.clone())
            .collect();
        if keys.is_empty() {
            return;
        }
        for k in keys {
            let place = inner.place_after_wait(&k, now, b);
            inner.set_place(&k, place, b);
        }
        self.notify.notify_one();
    }

    /// Sizes of the queues.
    pub fn lengths(&self) -> QueueLengths {
        let inner = self.lock();
        QueueLengths {
            active: inner.counts[0],
            backoff: inner.counts[1],
            unschedulable: inner.counts[2],
            in_flight: inner.counts[3],
        }
    }

    /// Keys of every queued pod.
    pub fn keys(&self) -> Vec<PodKey> {
        self.lock().entries.keys().cloned().collect()
    }

    /// Pods currently waiting in the unschedulable set.
    pub fn unschedulable_pods(&self) -> Vec<Arc<PodInfo>> {
        self.lock()
            .entries
            .values()
            .filter(|e| e.place == Place::Unschedulable)
            .map(|e| e.pod.info.clone())
            .collect()
    }

    /// Stops the queue: `pop` returns `None`.
    pub fn close(&self) {
        self.lock().closed = true;
        self.notify.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::pod_info;

    fn q() -> SchedulingQueue {
        SchedulingQueue::new(
            Duration::from_secs(1),
            Duration::from_secs(10),
            Duration::from_secs(60),
        )
    }

    fn p(name: &str, priority: i32) -> Arc<PodInfo> {
        Arc::new(pod_info(name, "1", "1Gi", |s| s.priority = Some(priority)))
    }

    async fn pop_name(q: &SchedulingQueue) -> String {
        let (qp, _) = tokio::time::timeout(Duration::from_secs(3600), q.pop())
            .await
            .expect("a pod within an hour")
            .expect("open");
        qp.info.name.clone()
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let (i, m) = (Duration::from_secs(1), Duration::from_secs(10));
        let got: Vec<u64> = (1..=6)
            .map(|a| backoff_duration(a, i, m).as_secs())
            .collect();
        assert_eq!(got, [1, 2, 4, 8, 10, 10]);
    }

    #[tokio::test(start_paused = true)]
    async fn active_queue_orders_by_priority_then_arrival() {
        let q = q();
        q.add_or_update(p("low", 1));
        tokio::time::advance(Duration::from_millis(1)).await;
        q.add_or_update(p("high", 100));
        tokio::time::advance(Duration::from_millis(1)).await;
        q.add_or_update(p("low2", 1));
        tokio::time::advance(Duration::from_millis(1)).await;
        q.add_or_update(p("high2", 100));
        let mut order = Vec::new();
        for _ in 0..4 {
            order.push(pop_name(&q).await);
        }
        assert_eq!(order, ["high", "high2", "low", "low2"]);
        assert_eq!(q.lengths().in_flight, 4);
    }

    #[tokio::test(start_paused = true)]
    async fn failed_pods_back_off_one_two_four_seconds() {
        let q = q();
        q.add_or_update(p("a", 0));
        let (qp, mut cycle) = q.pop().await.unwrap();
        let mut waits = Vec::new();
        for _ in 0..5 {
            let failed_at = Instant::now();
            q.requeue(&qp.info.key, HashSet::new(), cycle, true);
            assert_eq!(q.lengths().backoff, 1);
            let (again, c) = q.pop().await.unwrap();
            waits.push((Instant::now() - failed_at).as_secs());
            assert_eq!(again.attempts as usize, waits.len() + 1);
            cycle = c;
        }
        assert_eq!(waits, [1, 2, 4, 8, 10]);
    }

    #[tokio::test(start_paused = true)]
    async fn unschedulable_pods_wait_for_a_helpful_event() {
        let q = q();
        q.add_or_update(p("a", 0));
        let (qp, cycle) = q.pop().await.unwrap();
        q.requeue(
            &qp.info.key,
            HashSet::from(["NodeResourcesFit"]),
            cycle,
            false,
        );
        assert_eq!(q.lengths().unschedulable, 1);
        // An event that does not help: still waiting.
        q.on_event(ClusterEvent::NodeLabel, |qp, ev| {
            qp.unschedulable_plugins.contains("NodeAffinity") && ev == ClusterEvent::NodeLabel
        });
        assert_eq!(q.lengths().unschedulable, 1);
        tokio::time::advance(Duration::from_secs(5)).await;
        // A node was added: NodeResourcesFit cares. The backoff (1 s) is over: active.
        q.on_event(ClusterEvent::NodeAdd, |qp, _| {
            qp.unschedulable_plugins.contains("NodeResourcesFit")
        });
        assert_eq!(q.lengths().active, 1);
        assert_eq!(pop_name(&q).await, "a");
    }

    #[tokio::test(start_paused = true)]
    async fn unschedulable_pods_are_retried_after_sixty_seconds() {
        let q = q();
        q.add_or_update(p("a", 0));
        let (qp, cycle) = q.pop().await.unwrap();
        let start = Instant::now();
        q.requeue(&qp.info.key, HashSet::from(["X"]), cycle, false);
        assert_eq!(pop_name(&q).await, "a");
        assert_eq!((Instant::now() - start).as_secs(), 60);
    }

    #[tokio::test(start_paused = true)]
    async fn an_event_during_the_attempt_sends_the_pod_to_backoff() {
        let q = q();
        q.add_or_update(p("a", 0));
        let (qp, cycle) = q.pop().await.unwrap();
        q.on_event(ClusterEvent::AssignedPodDelete, |_, _| true);
        q.requeue(
            &qp.info.key,
            HashSet::from(["NodeResourcesFit"]),
            cycle,
            false,
        );
        let l = q.lengths();
        assert_eq!((l.backoff, l.unschedulable), (1, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn deleted_in_flight_pods_are_not_requeued() {
        let q = q();
        q.add_or_update(p("a", 0));
        let (qp, cycle) = q.pop().await.unwrap();
        q.delete(&qp.info.key);
        q.requeue(&qp.info.key, HashSet::new(), cycle, true);
        assert_eq!(q.lengths(), QueueLengths::default());
        q.add_or_update(p("b", 0));
        let (qp, _) = q.pop().await.unwrap();
        q.done(&qp.info.key);
        assert!(!q.contains(&qp.info.key));
    }

    #[tokio::test(start_paused = true)]
    async fn a_spec_change_moves_an_unschedulable_pod() {
        let q = q();
        q.add_or_update(p("a", 0));
        let (qp, cycle) = q.pop().await.unwrap();
        q.requeue(&qp.info.key, HashSet::from(["X"]), cycle, false);
        q.add_or_update(p("a", 0));
        assert_eq!(q.lengths().unschedulable, 1, "same spec: stays");
        let changed = Arc::new(pod_info("a", "500m", "1Gi", |s| s.priority = Some(0)));
        q.add_or_update(changed);
        let l = q.lengths();
        assert_eq!(l.unschedulable, 0);
        assert_eq!(l.backoff + l.active, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn close_ends_pop() {
        let q = Arc::new(q());
        let q2 = q.clone();
        let t = tokio::spawn(async move { q2.pop().await.is_none() });
        tokio::task::yield_now().await;
        q.close();
        assert!(t.await.unwrap());
    }
}
