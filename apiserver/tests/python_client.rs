//! The official Kubernetes Python client (Debian's `python3-kubernetes`, installed by
//! `scripts/setup`) against an API server started in-process, on the embedded store and on a
//! real etcd. The checks are in `tests/python/official_client.py`: typed CRUD, all patch types,
//! conflicts, selectors, pagination, watches, Status errors, dry runs, delete options, the
//! dynamic client with server-side apply, and that every served kind decodes with the
//! client's required-field checks.

mod common;

use std::process::Command;

use common::{Backend, TestServer};

/// Debian's interpreter: the one `python3-kubernetes` installs into (a `python3` earlier on
/// `PATH`, e.g. from pyenv, would not see the module).
const PYTHON: &str = "/usr/bin/python3";

fn run_script(s: &TestServer) {
    let script = format!(
        "{}/tests/python/official_client.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = Command::new(PYTHON)
        .arg(&script)
        .env("KUBECONFIG", &s.kubeconfig)
        .env("HOME", s.dir.path())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap_or_else(|e| panic!("run {PYTHON} (scripts/setup installs it): {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named 'kubernetes'"),
        "the official Python client is missing: run scripts/setup (python3-kubernetes)"
    );
    assert!(
        out.status.success() && stdout.contains("all passed"),
        "the Python client's checks failed:\n{stdout}\n{stderr}"
    );
    // Every check ran and passed.
    let passed = stdout.lines().filter(|l| l.starts_with("ok ")).count();
    assert!(passed >= 20, "only {passed} checks passed:\n{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn python_client_on_embedded_store() {
    let s = TestServer::start(Backend::Embedded).await;
    tokio::task::spawn_blocking(move || run_script(&s))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn python_client_on_etcd() {
    let s = TestServer::start(Backend::Etcd).await;
    tokio::task::spawn_blocking(move || run_script(&s))
        .await
        .unwrap();
}
