//! Storage under faults: `kill -9` during a write burst (of the writing process for the embedded
//! store, of the etcd server for etcd) loses no acknowledged write; a corrupt, foreign or locked
//! store file gives a clear error naming the file; etcd unreachable at start or gone mid-run
//! gives clear errors, writes nothing half-way, and watches recover when it returns.
//!
//! This file has its own `main` (harness = false) because some tests re-run this binary as a
//! child process: the writer that gets killed, or the process that holds the store file.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use rkube_apiserver::storage::embedded::{EmbeddedConfig, EmbeddedStorage};
use rkube_apiserver::storage::etcd::{EtcdConfig, EtcdStorage};
use rkube_apiserver::storage::{EventKind, Storage, StorageError, WatchItem};
use rkube_testkit::etcd::EtcdServer;

const CHILD_ENV: &str = "RKUBE_STORAGE_FAULTS_CHILD";
const PATH_ENV: &str = "RKUBE_STORAGE_FAULTS_PATH";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Child: writes as fast as it can from 8 tasks, printing each acknowledged write.
fn child_writer(path: &str) {
    runtime().block_on(async {
        let store = Arc::new(EmbeddedStorage::open(EmbeddedConfig::new(path)).unwrap());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        for t in 0..8 {
            let store = store.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                for i in 0.. {
                    let key = format!("/registry/crash/ns/t{t}-{i}");
                    let kv = store.create(&key, Bytes::from_static(b"{}")).await.unwrap();
                    tx.send(format!("ACK {key} {}", kv.mod_revision)).unwrap();
                }
            });
        }
        let mut out = std::io::stdout().lock();
        while let Some(line) = rx.recv().await {
            writeln!(out, "{line}").unwrap();
            out.flush().unwrap();
        }
    });
}

/// Child: opens the store, says so, and holds it until stdin closes.
fn child_holder(path: &str) {
    let _store = runtime().block_on(async { EmbeddedStorage::open(EmbeddedConfig::new(path)) });
    println!("OPEN");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

fn spawn_child(role: &str, path: &Path) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .env(CHILD_ENV, role)
        .env(PATH_ENV, path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn embedded_kill9_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rkube.db");
    let mut child = spawn_child("writer", &path);
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut acked = Vec::new();
    let mut lines = stdout.lines();
    while acked.len() < 3_000 {
        let line = lines.next().expect("writer ended early").unwrap();
        acked.push(line);
    }
    child.kill().unwrap(); // SIGKILL, mid-burst
    child.wait().unwrap();
    // Acknowledgements printed before the kill count too.
    acked.extend(lines.map_while(Result::ok));
    runtime().block_on(async {
        let store = EmbeddedStorage::open(EmbeddedConfig::new(&path)).unwrap();
        let mut max_rev = 0;
        for line in &acked {
            let mut parts = line.split(' ').skip(1);
            let key = parts.next().unwrap();
            let rev: i64 = parts.next().unwrap().parse().unwrap();
            let kv = store
                .get(key)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("acknowledged write {key} lost"));
            assert_eq!(kv.mod_revision, rev);
            max_rev = max_rev.max(rev);
        }
        assert!(store.current_revision().await.unwrap() >= max_rev);
        // Still writable, with revisions that keep growing.
        let next = store
            .create("/registry/crash/ns/after", Bytes::from_static(b"{}"))
            .await
            .unwrap();
        assert!(next.mod_revision > max_rev);
        println!("  {} acknowledged writes survived kill -9", acked.len());
    });
}

fn etcd_kill9_loses_no_acknowledged_write() {
    let mut etcd = EtcdServer::start();
    let rt = runtime();
    let acked = rt.block_on(async {
        let mut cfg = EtcdConfig::new(vec![etcd.endpoint()]);
        cfg.request_timeout = Duration::from_secs(2);
        let store = Arc::new(EtcdStorage::connect(cfg).await.unwrap());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, i64)>();
        for t in 0..8 {
            let store = store.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                for i in 0.. {
                    let key = format!("/registry/crash/ns/t{t}-{i}");
                    match store.create(&key, Bytes::from_static(b"{}")).await {
                        Ok(kv) => {
                            if tx.send((key, kv.mod_revision)).is_err() {
                                return;
                            }
                        }
                        Err(_) => return,
                    }
                }
            });
        }
        drop(tx);
        let mut acked = Vec::new();
        while acked.len() < 1_000 {
            acked.push(rx.recv().await.unwrap());
        }
        etcd.kill(); // SIGKILL, mid-burst
        while let Some(a) = rx.recv().await {
            acked.push(a);
        }
        acked
    });
    etcd.start_again();
    rt.block_on(async {
        let store = EtcdStorage::connect(EtcdConfig::new(vec![etcd.endpoint()]))
            .await
            .unwrap();
        for (key, rev) in &acked {
            let kv = store
                .get(key)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("acknowledged write {key} lost"));
            assert_eq!(kv.mod_revision, *rev);
        }
        println!(
            "  {} acknowledged writes survived kill -9 of etcd",
            acked.len()
        );
    });
}

fn expect_file_error(result: Result<EmbeddedStorage, StorageError>, path: &Path, what: &str) {
    match result {
        Err(e @ StorageError::File { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains(&path.display().to_string()),
                "error does not name the file: {msg}"
            );
            assert!(msg.contains(what), "error does not say {what:?}: {msg}");
            println!("  {msg}");
        }
        Err(e) => panic!("expected a file error, got {e}"),
        Ok(_) => panic!("opening {} should fail", path.display()),
    }
}

fn embedded_bad_files_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    // Garbage instead of a database.
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x5a; 64 * 1024]).unwrap();
    expect_file_error(
        EmbeddedStorage::open(EmbeddedConfig::new(&garbage)),
        &garbage,
        "corrupt",
    );
    // A directory where the file should be.
    let d = dir.path().join("adir");
    std::fs::create_dir(&d).unwrap();
    expect_file_error(
        EmbeddedStorage::open(EmbeddedConfig::new(&d)),
        &d,
        "directory",
    );
    // A redb file that is not an rkube store.
    let foreign = dir.path().join("foreign.db");
    {
        let db = redb::Database::create(&foreign).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let def: redb::TableDefinition<'_, &str, i64> = redb::TableDefinition::new("meta");
            txn.open_table(def).unwrap().insert("revision", 5).unwrap();
        }
        txn.commit().unwrap();
    }
    expect_file_error(
        EmbeddedStorage::open(EmbeddedConfig::new(&foreign)),
        &foreign,
        "not an rkube store",
    );
    // A store truncated in its header.
    let truncated = dir.path().join("truncated.db");
    runtime().block_on(async {
        let s = EmbeddedStorage::open(EmbeddedConfig::new(&truncated)).unwrap();
        s.create("/registry/x/ns/a", Bytes::from_static(b"{}"))
            .await
            .unwrap();
    });
    let len = std::fs::metadata(&truncated).unwrap().len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&truncated)
        .unwrap();
    f.set_len(len.min(100)).unwrap();
    drop(f);
    expect_file_error(
        EmbeddedStorage::open(EmbeddedConfig::new(&truncated)),
        &truncated,
        "corrupt",
    );
}

fn embedded_held_by_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rkube.db");
    let mut child = spawn_child("holder", &path);
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "OPEN");
    expect_file_error(
        EmbeddedStorage::open(EmbeddedConfig::new(&path)),
        &path,
        "held by another process",
    );
    drop(child.stdin.take()); // let the holder exit
    child.wait().unwrap();
    assert!(EmbeddedStorage::open(EmbeddedConfig::new(&path)).is_ok());
}

fn etcd_unreachable_at_start_is_a_clear_error() {
    runtime().block_on(async {
        let endpoint = format!("http://127.0.0.1:{}", rkube_testkit::free_port());
        let mut cfg = EtcdConfig::new(vec![endpoint.clone()]);
        cfg.connect_deadline = Duration::from_secs(1);
        cfg.request_timeout = Duration::from_millis(500);
        let started = std::time::Instant::now();
        match EtcdStorage::connect(cfg).await {
            Err(e @ StorageError::Unavailable(_)) => {
                assert!(e.to_string().contains(&endpoint), "{e}");
            }
            Err(e) => panic!("expected Unavailable, got {e}"),
            Ok(_) => panic!("connected to nothing"),
        }
        assert!(started.elapsed() < Duration::from_secs(10));
    });
}

fn etcd_gone_mid_run_then_back() {
    let mut etcd = EtcdServer::start();
    let rt = runtime();
    rt.block_on(async {
        let mut cfg = EtcdConfig::new(vec![etcd.endpoint()]);
        cfg.request_timeout = Duration::from_secs(2);
        cfg.progress_interval = Duration::from_millis(300);
        let store = EtcdStorage::connect(cfg).await.unwrap();
        let before = store
            .create("/registry/x/ns/before", Bytes::from_static(b"{}"))
            .await
            .unwrap();
        let mut watch = store
            .watch("/registry/x/", true, before.mod_revision)
            .await
            .unwrap();

        etcd.kill();
        let failed = store
            .create("/registry/x/ns/during", Bytes::from_static(b"{}"))
            .await;
        match failed {
            Err(e @ StorageError::Unavailable(_)) => {
                assert!(e.to_string().contains("etcd"), "{e}")
            }
            other => panic!("expected Unavailable while etcd is down, got {other:?}"),
        }
        etcd.start_again();

        // Requests work again once the client reconnects.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let after = loop {
            match store
                .create("/registry/x/ns/after", Bytes::from_static(b"{}"))
                .await
            {
                Ok(kv) => break kv,
                Err(e) => {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "etcd never back: {e}"
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        assert!(
            store.get("/registry/x/ns/during").await.unwrap().is_none(),
            "the failed write must not appear"
        );
        // The watch reconnected and delivers the new event.
        let ev = loop {
            let item = tokio::time::timeout(Duration::from_secs(30), watch.next())
                .await
                .expect("watch did not recover")
                .expect("watch ended")
                .expect("watch error");
            if let WatchItem::Event(ev) = item {
                break ev;
            }
        };
        assert_eq!(ev.kind, EventKind::Added);
        assert_eq!(ev.kv.key, "/registry/x/ns/after");
        assert_eq!(ev.revision(), after.mod_revision);
    });
}

fn main() {
    if let Ok(role) = std::env::var(CHILD_ENV) {
        let path = std::env::var(PATH_ENV).unwrap();
        match role.as_str() {
            "writer" => child_writer(&path),
            "holder" => child_holder(&path),
            other => panic!("unknown child role {other}"),
        }
        return;
    }
    let tests: &[(&str, fn())] = &[
        (
            "embedded_kill9_loses_no_acknowledged_write",
            embedded_kill9_loses_no_acknowledged_write,
        ),
        (
            "etcd_kill9_loses_no_acknowledged_write",
            etcd_kill9_loses_no_acknowledged_write,
        ),
        (
            "embedded_bad_files_give_clear_errors",
            embedded_bad_files_give_clear_errors,
        ),
        (
            "embedded_held_by_another_process",
            embedded_held_by_another_process,
        ),
        (
            "etcd_unreachable_at_start_is_a_clear_error",
            etcd_unreachable_at_start_is_a_clear_error,
        ),
        ("etcd_gone_mid_run_then_back", etcd_gone_mid_run_then_back),
    ];
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let mut failed = Vec::new();
    for (name, test) in tests {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        println!("test {name} ...");
        match std::panic::catch_unwind(test) {
            Ok(()) => println!("test {name} ... ok"),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed.push(*name);
            }
        }
    }
    if !failed.is_empty() {
        eprintln!("failed: {failed:?}");
        std::process::exit(1);
    }
}
