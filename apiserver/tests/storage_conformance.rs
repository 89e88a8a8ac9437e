//! The storage conformance suite: the same test functions run against every backend — the
//! embedded store, a real etcd server (started by the test), and the watch cache over each.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use rkube_apiserver::storage::cache::{CacheConfig, WatchCache};
use rkube_apiserver::storage::embedded::{EmbeddedConfig, EmbeddedStorage};
use rkube_apiserver::storage::etcd::{EtcdConfig, EtcdStorage};
use rkube_apiserver::storage::{
    EventKind, ListOptions, Preconditions, ReadAt, Revision, Storage, StorageError, Update,
    WatchItem, WatchStream, delete_with_preconditions, guaranteed_update,
};
use rkube_testkit::etcd::EtcdServer;

const PROGRESS: Duration = Duration::from_millis(200);

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Embedded,
    Etcd,
}

/// One backend under test, able to restart it on the same data.
struct Harness {
    kind: Kind,
    cached: bool,
    store: Option<Arc<dyn Storage>>,
    dir: tempfile::TempDir,
    etcd: Option<EtcdServer>,
}

impl Harness {
    async fn new(kind: Kind, cached: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let etcd = (kind == Kind::Etcd).then(EtcdServer::start);
        let mut h = Self {
            kind,
            cached,
            store: None,
            dir,
            etcd,
        };
        h.store = Some(h.open().await);
        h
    }

    fn etcd_config(&self) -> EtcdConfig {
        let mut cfg = EtcdConfig::new(vec![self.etcd.as_ref().unwrap().endpoint()]);
        cfg.progress_interval = PROGRESS;
        cfg.request_timeout = Duration::from_secs(3);
        cfg.connect_deadline = Duration::from_secs(20);
        cfg
    }

    async fn open(&self) -> Arc<dyn Storage> {
        let backend: Arc<dyn Storage> = match self.kind {
            Kind::Embedded => {
                let mut cfg = EmbeddedConfig::new(self.dir.path().join("rkube.db"));
                cfg.progress_interval = PROGRESS;
                // The previous instance may still be closing (its tasks end asynchronously).
                let mut tries = 0;
                loop {
                    match EmbeddedStorage::open(cfg.clone()) {
                        Ok(s) => break Arc::new(s),
                        Err(StorageError::File { message, .. })
                            if message.contains("already open") && tries < 100 =>
                        {
                            tries += 1;
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        Err(e) => panic!("open embedded store: {e}"),
                    }
                }
            }
            Kind::Etcd => Arc::new(EtcdStorage::connect(self.etcd_config()).await.unwrap()),
        };
        if self.cached {
            Arc::new(WatchCache::new(
                backend,
                vec!["/registry/".into()],
                CacheConfig {
                    progress_interval: PROGRESS,
                    ..CacheConfig::default()
                },
            ))
        } else {
            backend
        }
    }

    fn store(&self) -> Arc<dyn Storage> {
        self.store.clone().unwrap()
    }

    /// Restarts the backend: reopen the embedded file, or restart the etcd process.
    async fn restart(&mut self) {
        self.store = None;
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Some(etcd) = self.etcd.as_mut() {
            etcd.restart();
        }
        self.store = Some(self.open().await);
    }
}

fn val(s: &str) -> Bytes {
    Bytes::from(format!(
        r#"{{"metadata":{{"uid":"uid-{s}"}},"data":"{s}"}}"#
    ))
}

async fn next_item(w: &mut WatchStream) -> Result<WatchItem, StorageError> {
    tokio::time::timeout(Duration::from_secs(15), w.next())
        .await
        .expect("watch delivered nothing in 15 s")
        .expect("watch ended")
}

/// The next event, skipping progress notifications.
async fn next_event(w: &mut WatchStream) -> Arc<rkube_apiserver::storage::Event> {
    loop {
        match next_item(w).await.expect("watch error") {
            WatchItem::Event(e) => return e,
            WatchItem::Progress(_) => continue,
        }
    }
}

async fn list_all(store: &dyn Storage, prefix: &str, read_at: ReadAt) -> BTreeMap<String, Bytes> {
    let l = store
        .list(
            prefix,
            ListOptions {
                read_at,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    l.items.into_iter().map(|kv| (kv.key, kv.value)).collect()
}

mod cases {
    use super::*;

    pub async fn crud_and_cas(h: &mut Harness) {
        let s = h.store();
        let k = "/registry/configmaps/default/a";
        let c = s.create(k, val("1")).await.unwrap();
        assert!(c.mod_revision > 0);
        assert_eq!(c.create_revision, c.mod_revision);
        assert!(matches!(
            s.create(k, val("x")).await,
            Err(StorageError::AlreadyExists { .. })
        ));
        let g = s.get(k).await.unwrap().unwrap();
        assert_eq!(g, c);
        let u = s.update(k, c.mod_revision, val("2")).await.unwrap();
        assert!(u.mod_revision > c.mod_revision);
        assert_eq!(u.create_revision, c.create_revision);
        assert_eq!(u.value, val("2"));
        // A stale resourceVersion is a conflict and changes nothing.
        assert!(matches!(
            s.update(k, c.mod_revision, val("stale")).await,
            Err(StorageError::Conflict { .. })
        ));
        assert_eq!(s.get(k).await.unwrap().unwrap().value, val("2"));
        assert!(matches!(
            s.update("/registry/configmaps/default/missing", 1, val("x"))
                .await,
            Err(StorageError::NotFound { .. })
        ));
        assert!(matches!(
            s.delete(k, Some(c.mod_revision)).await,
            Err(StorageError::Conflict { .. })
        ));
        let d = s.delete(k, Some(u.mod_revision)).await.unwrap();
        assert_eq!(d.value, val("2"));
        assert!(d.mod_revision > u.mod_revision);
        assert!(s.get(k).await.unwrap().is_none());
        assert!(matches!(
            s.delete(k, None).await,
            Err(StorageError::NotFound { .. })
        ));
        // Re-created: a new incarnation with a new create revision.
        let again = s.create(k, val("3")).await.unwrap();
        assert!(again.create_revision > d.mod_revision);
        assert!(s.current_revision().await.unwrap() >= again.mod_revision);
    }

    pub async fn concurrent_compare_and_swap(h: &mut Harness) {
        let s = h.store();
        let k = "/registry/counters/default/c";
        s.create(k, Bytes::from_static(b"0")).await.unwrap();
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..100 {
                    guaranteed_update(s.as_ref(), k, |cur| {
                        let n: u64 = std::str::from_utf8(&cur.unwrap().value)
                            .unwrap()
                            .parse()
                            .unwrap();
                        Ok(Update::Write(Bytes::from((n + 1).to_string())))
                    })
                    .await
                    .unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(s.get(k).await.unwrap().unwrap().value, Bytes::from("800"));
    }

    /// A page asked to count what follows reports the live keys after it in its range, at the
    /// revision it was read at; deleted keys and keys outside the prefix do not count.
    pub async fn list_counts_what_remains(h: &mut Harness) {
        let s = h.store();
        for i in 0..10 {
            s.create(&format!("/registry/pods/ns1/p{i}"), val("v"))
                .await
                .unwrap();
        }
        s.create("/registry/pods/ns2/other", val("o"))
            .await
            .unwrap();
        s.create("/registry/podsx/ns1/not-a-pod", val("x"))
            .await
            .unwrap();
        for i in [4, 8] {
            let k = format!("/registry/pods/ns1/p{i}");
            s.delete(&k, None).await.unwrap();
        }
        let before = s.current_revision().await.unwrap();
        s.create("/registry/pods/ns1/p99", val("later"))
            .await
            .unwrap();
        let counted = |read_at, start_after: Option<&str>| ListOptions {
            read_at,
            limit: Some(3),
            start_after: start_after.map(str::to_owned),
            count_remaining: true,
        };
        let page = s
            .list("/registry/pods/ns1/", counted(ReadAt::Exact(before), None))
            .await
            .unwrap();
        assert_eq!(page.items.len(), 3);
        assert!(page.more);
        assert_eq!(page.remaining, 8 - 3, "8 live pods at that revision");
        let page = s
            .list(
                "/registry/pods/ns1/",
                counted(ReadAt::Exact(before), Some("/registry/pods/ns1/p5")),
            )
            .await
            .unwrap();
        let keys: Vec<_> = page.items.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "/registry/pods/ns1/p6",
                "/registry/pods/ns1/p7",
                "/registry/pods/ns1/p9"
            ]
        );
        assert!(!page.more);
        assert_eq!(page.remaining, 0);
        // The latest state, from the store and (when cached) from memory.
        let current = s.current_revision().await.unwrap();
        for read_at in [ReadAt::Latest, ReadAt::NotOlderThan(current)] {
            let page = s
                .list("/registry/pods/ns1/", counted(read_at, None))
                .await
                .unwrap();
            assert_eq!(page.remaining, 9 - 3, "{read_at:?}");
            let page = s
                .list(
                    "/registry/pods/ns1/",
                    counted(read_at, Some("/registry/pods/ns1/p5")),
                )
                .await
                .unwrap();
            assert_eq!(page.items.len(), 3, "{read_at:?}");
            assert!(page.more, "{read_at:?}");
            assert_eq!(page.remaining, 1, "p99 follows p9 ({read_at:?})");
        }
        // Not asked: not counted, and the page is the same.
        let page = s
            .list(
                "/registry/pods/ns1/",
                ListOptions {
                    count_remaining: false,
                    ..counted(ReadAt::Latest, None)
                },
            )
            .await
            .unwrap();
        assert_eq!(page.items.len(), 3);
        assert!(page.more);
        assert_eq!(page.remaining, 0);
    }

    pub async fn list_pagination_is_consistent_under_writes(h: &mut Harness) {
        let s = h.store();
        for i in 0..50 {
            s.create(
                &format!("/registry/pods/ns1/p{i:03}"),
                val(&format!("v{i}")),
            )
            .await
            .unwrap();
        }
        s.create("/registry/pods/ns2/other", val("o"))
            .await
            .unwrap();
        s.create("/registry/podsx/ns1/not-a-pod", val("x"))
            .await
            .unwrap();
        let snapshot = list_all(s.as_ref(), "/registry/pods/ns1/", ReadAt::Latest).await;
        assert_eq!(snapshot.len(), 50);
        assert_eq!(
            list_all(s.as_ref(), "/registry/pods/", ReadAt::Latest)
                .await
                .len(),
            51
        );

        // Writers change, delete and add pods while we page: they start once the first page
        // (the snapshot the continue token pins) has been read.
        let start_writer = |s: Arc<dyn Storage>| {
            tokio::spawn(async move {
                for i in 0..50 {
                    let k = format!("/registry/pods/ns1/p{i:03}");
                    let cur = s.get(&k).await.unwrap().unwrap();
                    if i % 3 == 0 {
                        s.delete(&k, Some(cur.mod_revision)).await.unwrap();
                    } else {
                        s.update(&k, cur.mod_revision, val("changed"))
                            .await
                            .unwrap();
                    }
                    s.create(&format!("/registry/pods/ns1/q{i:03}"), val("new"))
                        .await
                        .unwrap();
                }
            })
        };
        let mut writer = None;
        let mut paged = BTreeMap::new();
        let mut opts = ListOptions {
            limit: Some(7),
            ..Default::default()
        };
        let mut revision = None;
        let mut pages = 0;
        loop {
            let page = s.list("/registry/pods/ns1/", opts.clone()).await.unwrap();
            pages += 1;
            assert!(page.items.len() <= 7);
            if let Some(r) = revision {
                assert_eq!(
                    page.revision, r,
                    "every page is read at the first page's revision"
                );
            }
            revision = Some(page.revision);
            for kv in &page.items {
                assert!(paged.insert(kv.key.clone(), kv.value.clone()).is_none());
            }
            if !page.more {
                break;
            }
            if writer.is_none() {
                writer = Some(start_writer(s.clone()));
            }
            opts.read_at = ReadAt::Exact(page.revision);
            opts.start_after = page.items.last().map(|kv| kv.key.clone());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        writer.expect("more than one page").await.unwrap();
        assert_eq!(pages, 8, "50 pods in pages of 7");
        // The pages together are exactly the state at the first page's revision.
        let at_first = list_all(
            s.as_ref(),
            "/registry/pods/ns1/",
            ReadAt::Exact(revision.unwrap()),
        )
        .await;
        assert_eq!(paged, at_first);
        assert_eq!(paged, snapshot);
        // And the latest state reflects every write.
        let latest = list_all(s.as_ref(), "/registry/pods/ns1/", ReadAt::Latest).await;
        assert_eq!(latest.len(), 50 - 17 + 50);
        // Any-revision lists (served from memory by the watch cache) catch up too.
        let current = s.current_revision().await.unwrap();
        let fresh = list_all(
            s.as_ref(),
            "/registry/pods/ns1/",
            ReadAt::NotOlderThan(current),
        )
        .await;
        assert_eq!(fresh, latest);
        // A revision in the future is refused.
        let future = s
            .list(
                "/registry/pods/",
                ListOptions {
                    read_at: ReadAt::Exact(current + 1000),
                    ..Default::default()
                },
            )
            .await;
        assert!(future.is_err());
    }

    pub async fn watch_delivers_every_change_in_order(h: &mut Harness) {
        let s = h.store();
        let start = s.current_revision().await.unwrap();
        let mut all = s.watch("/registry/secrets/", true, start).await.unwrap();
        let mut one = s
            .watch("/registry/secrets/ns/w0-0", false, start)
            .await
            .unwrap();
        let mut writers = Vec::new();
        for w in 0..4 {
            let s = s.clone();
            writers.push(tokio::spawn(async move {
                for i in 0..25 {
                    let k = format!("/registry/secrets/ns/w{w}-{i}");
                    let c = s.create(&k, val("a")).await.unwrap();
                    let u = s.update(&k, c.mod_revision, val("b")).await.unwrap();
                    if i % 5 == 0 {
                        s.delete(&k, Some(u.mod_revision)).await.unwrap();
                    }
                }
            }));
        }
        s.create("/registry/configmaps/ns/unrelated", val("u"))
            .await
            .unwrap();
        for w in writers {
            w.await.unwrap();
        }
        let expected = 4 * (25 * 2 + 5);
        let mut last = start;
        let mut state: BTreeMap<String, Bytes> = BTreeMap::new();
        for _ in 0..expected {
            let ev = next_event(&mut all).await;
            assert!(ev.revision() > last, "revisions strictly increase");
            last = ev.revision();
            assert!(ev.kv.key.starts_with("/registry/secrets/"));
            match ev.kind {
                EventKind::Added => {
                    assert!(
                        state
                            .insert(ev.kv.key.clone(), ev.kv.value.clone())
                            .is_none()
                    );
                    assert_eq!(ev.kv.create_revision, ev.kv.mod_revision);
                }
                EventKind::Modified => {
                    assert_eq!(ev.prev.as_ref().unwrap().value, val("a"));
                    state.insert(ev.kv.key.clone(), ev.kv.value.clone());
                }
                EventKind::Deleted => {
                    assert_eq!(ev.kv.value, val("b"), "a delete carries the last value");
                    state.remove(&ev.kv.key);
                }
            }
        }
        assert_eq!(
            state,
            list_all(s.as_ref(), "/registry/secrets/", ReadAt::Latest).await
        );
        // The single-key watch saw only its key: added, modified, deleted.
        let kinds: Vec<_> = [
            next_event(&mut one).await,
            next_event(&mut one).await,
            next_event(&mut one).await,
        ]
        .iter()
        .map(|e| {
            assert_eq!(e.kv.key, "/registry/secrets/ns/w0-0");
            e.kind
        })
        .collect();
        assert_eq!(
            kinds,
            vec![EventKind::Added, EventKind::Modified, EventKind::Deleted]
        );
    }

    pub async fn watch_resumes_from_an_old_revision(h: &mut Harness) {
        let s = h.store();
        let k = "/registry/services/default/svc";
        // (Revision 0 means "from now", so make sure the create is not the first write.)
        s.create("/registry/configmaps/default/first", val("f"))
            .await
            .unwrap();
        let c = s.create(k, val("1")).await.unwrap();
        let u = s.update(k, c.mod_revision, val("2")).await.unwrap();
        let d = s.delete(k, None).await.unwrap();
        s.create("/registry/services/default/other", val("o"))
            .await
            .unwrap();
        // From before the create: everything, in order, with previous values.
        let mut w = s
            .watch("/registry/services/", true, c.mod_revision - 1)
            .await
            .unwrap();
        let e1 = next_event(&mut w).await;
        assert_eq!((e1.kind, e1.revision()), (EventKind::Added, c.mod_revision));
        let e2 = next_event(&mut w).await;
        assert_eq!(
            (e2.kind, e2.revision()),
            (EventKind::Modified, u.mod_revision)
        );
        assert_eq!(e2.prev.as_ref().unwrap().value, val("1"));
        let e3 = next_event(&mut w).await;
        assert_eq!(
            (e3.kind, e3.revision()),
            (EventKind::Deleted, d.mod_revision)
        );
        assert_eq!(e3.kv.value, val("2"));
        let e4 = next_event(&mut w).await;
        assert_eq!(e4.kv.key, "/registry/services/default/other");
        // From the middle: only what came after.
        let mut w = s.watch(k, false, u.mod_revision).await.unwrap();
        let e = next_event(&mut w).await;
        assert_eq!((e.kind, e.revision()), (EventKind::Deleted, d.mod_revision));
        // Then live events continue on the same stream.
        let again = s.create(k, val("3")).await.unwrap();
        let e = next_event(&mut w).await;
        assert_eq!(
            (e.kind, e.revision()),
            (EventKind::Added, again.mod_revision)
        );
    }

    pub async fn compaction_makes_old_revisions_gone(h: &mut Harness) {
        let s = h.store();
        let k = "/registry/leases/ns/l";
        let first = s.create(k, val("0")).await.unwrap();
        let mut last = first.clone();
        for i in 1..20 {
            last = s
                .update(k, last.mod_revision, val(&i.to_string()))
                .await
                .unwrap();
        }
        s.create("/registry/leases/ns/deleted", val("d"))
            .await
            .unwrap();
        s.delete("/registry/leases/ns/deleted", None).await.unwrap();
        let at = s.current_revision().await.unwrap();
        s.compact(at).await.unwrap();
        assert!(s.compacted_revision().await.unwrap() >= at);
        // Watching from before the compaction: Gone, either at once or as the first item.
        match s.watch(k, false, first.mod_revision).await {
            Err(StorageError::Compacted { .. }) => {}
            Err(e) => panic!("expected Compacted, got {e}"),
            Ok(mut w) => match next_item(&mut w).await {
                Err(StorageError::Compacted { .. }) => {}
                other => panic!("expected Compacted, got {other:?}"),
            },
        }
        let old = s
            .list(
                "/registry/leases/",
                ListOptions {
                    read_at: ReadAt::Exact(first.mod_revision),
                    ..Default::default()
                },
            )
            .await;
        assert!(
            matches!(old, Err(StorageError::Compacted { .. })),
            "{old:?}"
        );
        // The state at the compaction revision stays readable, and writes go on.
        let kept = list_all(s.as_ref(), "/registry/leases/", ReadAt::Exact(at)).await;
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[k], val("19"));
        let next = s.update(k, last.mod_revision, val("20")).await.unwrap();
        let mut w = s.watch(k, false, at).await.unwrap();
        let e = next_event(&mut w).await;
        assert_eq!(e.revision(), next.mod_revision);
        // Compacting again later also works (incremental).
        for i in 21..30 {
            let cur = s.get(k).await.unwrap().unwrap();
            s.update(k, cur.mod_revision, val(&i.to_string()))
                .await
                .unwrap();
        }
        let at2 = s.current_revision().await.unwrap();
        s.compact(at2).await.unwrap();
        assert_eq!(s.get(k).await.unwrap().unwrap().value, val("29"));
        assert_eq!(
            list_all(s.as_ref(), "/registry/leases/", ReadAt::Exact(at2)).await[k],
            val("29")
        );
    }

    pub async fn delete_preconditions(h: &mut Harness) {
        let s = h.store();
        let k = "/registry/pods/default/pre";
        let c = s.create(k, val("p")).await.unwrap();
        let wrong_uid = Preconditions {
            uid: Some("uid-other".into()),
            revision: None,
        };
        assert!(matches!(
            delete_with_preconditions(s.as_ref(), k, &wrong_uid).await,
            Err(StorageError::Conflict { .. })
        ));
        let wrong_rev = Preconditions {
            uid: None,
            revision: Some(c.mod_revision + 100),
        };
        assert!(matches!(
            delete_with_preconditions(s.as_ref(), k, &wrong_rev).await,
            Err(StorageError::Conflict { .. })
        ));
        assert!(s.get(k).await.unwrap().is_some(), "nothing was deleted");
        let right = Preconditions {
            uid: Some("uid-p".into()),
            revision: Some(c.mod_revision),
        };
        let d = delete_with_preconditions(s.as_ref(), k, &right)
            .await
            .unwrap();
        assert_eq!(d.value, val("p"));
        assert!(s.get(k).await.unwrap().is_none());
        assert!(matches!(
            delete_with_preconditions(s.as_ref(), k, &right).await,
            Err(StorageError::NotFound { .. })
        ));
    }

    pub async fn progress_notifications(h: &mut Harness) {
        let s = h.store();
        let start = s.current_revision().await.unwrap();
        let mut w = s.watch("/registry/quiet/", true, start).await.unwrap();
        let other = s.create("/registry/busy/ns/x", val("x")).await.unwrap();
        // No event for our prefix, but a bookmark reaching the other write's revision.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no progress notification"
            );
            match next_item(&mut w).await.unwrap() {
                WatchItem::Progress(r) if r >= other.mod_revision => break,
                WatchItem::Progress(_) => continue,
                WatchItem::Event(e) => panic!("unexpected event {e:?}"),
            }
        }
    }

    pub async fn persists_across_restart(h: &mut Harness) {
        let s = h.store();
        let mut expected = BTreeMap::new();
        for i in 0..30 {
            let k = format!("/registry/deployments/ns/d{i}");
            let c = s.create(&k, val(&format!("{i}"))).await.unwrap();
            if i % 2 == 0 {
                s.update(&k, c.mod_revision, val("updated")).await.unwrap();
                expected.insert(k, val("updated"));
            } else if i % 5 == 0 {
                s.delete(&k, None).await.unwrap();
            } else {
                expected.insert(k, val(&format!("{i}")));
            }
        }
        let before = s.current_revision().await.unwrap();
        drop(s);
        h.restart().await;
        let s = h.store();
        assert_eq!(
            list_all(s.as_ref(), "/registry/deployments/", ReadAt::Latest).await,
            expected
        );
        let after = s.current_revision().await.unwrap();
        assert!(after >= before, "revision went back: {before} -> {after}");
        let next = s
            .create("/registry/deployments/ns/new", val("n"))
            .await
            .unwrap();
        assert!(next.mod_revision > before);
        // History survived too: a watch from an old revision replays.
        let mut w = s
            .watch("/registry/deployments/ns/d0", false, 0)
            .await
            .unwrap();
        let d0 = s.get("/registry/deployments/ns/d0").await.unwrap().unwrap();
        s.update("/registry/deployments/ns/d0", d0.mod_revision, val("again"))
            .await
            .unwrap();
        let e = next_event(&mut w).await;
        assert_eq!(e.kind, EventKind::Modified);
        let mut replay = s
            .watch("/registry/deployments/ns/d1", false, 1)
            .await
            .unwrap();
        let e = next_event(&mut replay).await;
        assert_eq!((e.kind, e.kv.value.clone()), (EventKind::Added, val("1")));
    }

    /// A backend can be watched by many watchers at once; each sees every event.
    pub async fn many_watchers(h: &mut Harness) {
        let s = h.store();
        let start = s.current_revision().await.unwrap();
        let mut watches = Vec::new();
        for _ in 0..50 {
            watches.push(s.watch("/registry/events/", true, start).await.unwrap());
        }
        let mut revs: Vec<Revision> = Vec::new();
        for i in 0..20 {
            revs.push(
                s.create(&format!("/registry/events/ns/e{i}"), val("e"))
                    .await
                    .unwrap()
                    .mod_revision,
            );
        }
        for w in &mut watches {
            for r in &revs {
                assert_eq!(next_event(w).await.revision(), *r);
            }
        }
    }
}

macro_rules! conformance {
    ($name:ident, $kind:expr, $cached:expr) => {
        mod $name {
            use super::*;

            async fn harness() -> Harness {
                Harness::new($kind, $cached).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn crud_and_cas() {
                cases::crud_and_cas(&mut harness().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_compare_and_swap() {
                cases::concurrent_compare_and_swap(&mut harness().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn list_counts_what_remains() {
                cases::list_counts_what_remains(&mut harness().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn list_pagination_is_consistent_under_writes() {
                cases::list_pagination_is_consistent_under_writes(&mut harness().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn watch_delivers_every_change_in_order() {
                cases::watch_delivers_every_change_in_order(&mut harness().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn watch_resumes_from_an_old_revision() {
                cases::watch_resumes_from_an_old_revision(&mut harness().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn compaction_makes_old_revisions_gone() {
                cases::compaction_makes_old_revisions_gone(&mut harness().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn delete_preconditions() {
                cases::delete_preconditions(&mut harness().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn progress_notifications() {
                cases::progress_notifications(&mut harness().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn persists_across_restart() {
                cases::persists_across_restart(&mut harness().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn many_watchers() {
                cases::many_watchers(&mut harness().await).await;
            }
        }
    };
}

conformance!(embedded, Kind::Embedded, false);
conformance!(etcd, Kind::Etcd, false);
conformance!(embedded_cached, Kind::Embedded, true);
conformance!(etcd_cached, Kind::Etcd, true);
