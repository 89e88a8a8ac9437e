//! The `rkube-scheduler` binary as a user runs it: `--kubeconfig`, `--config` with a
//! KubeSchedulerConfiguration file of two profiles, `--leader-elect`, `--bind-address`; it
//! schedules pods of each profile with that profile's scoring strategy, takes the Lease, serves
//! `/healthz` and `/readyz`, and exits cleanly on SIGTERM. Bad input fails with a clear message.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::*;
use rkube_scheduler::testing;
use rkube_testkit::apiserver::Identity;

const BIN: &str = env!("CARGO_BIN_EXE_rkube-scheduler");

/// A configuration with the default (bin-packing) profile and a spreading one.
const TWO_PROFILES: &str = r#"
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
leaderElection:
  leaseDuration: 4s
  renewDeadline: 3s
  retryPeriod: 200ms
profiles:
- schedulerName: default-scheduler
- schedulerName: spread-scheduler
  pluginConfig:
  - name: NodeResourcesFit
    args:
      scoringStrategy:
        type: LeastAllocated
        resources:
        - name: cpu
          weight: 1
        - name: memory
          weight: 1
"#;

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// Runs the binary to completion (it must exit by itself within 30 s).
fn run_to_exit(args: &[&str]) -> Output {
    let child = Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the binary exits within 30 s")
        .unwrap()
}

/// A free loopback port (bound, then released for the binary).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An HTTP GET that tolerates a server that is not listening yet: the status line.
async fn try_get(addr: std::net::SocketAddr, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    out.lines().next().map(str::to_string)
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_fails_with_clear_errors() {
    let (server, _client) = server().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = server
        .kubeconfig_for(&Identity::scheduler())
        .await
        .display()
        .to_string();
    let cases: [(&str, Option<&str>, &[&str]); 6] = [
        (
            "kind",
            Some("apiVersion: kubescheduler.config.k8s.io/v1\nkind: Pod\n"),
            &["kind \"Pod\" is not KubeSchedulerConfiguration"],
        ),
        (
            "yaml",
            Some("profiles: [\n"),
            &["parsing scheduler configuration"],
        ),
        (
            "plugin",
            Some("profiles:\n- plugins:\n    score:\n      enabled:\n      - name: NoSuchPlugin\n"),
            &["unknown plugin \"NoSuchPlugin\""],
        ),
        (
            "strategy",
            Some(
                "profiles:\n- pluginConfig:\n  - name: NodeResourcesFit\n    args:\n      \
                 scoringStrategy:\n        type: Tightest\n",
            ),
            &["NodeResourcesFit", "Tightest"],
        ),
        (
            "backoff",
            Some("podInitialBackoffSeconds: 20\npodMaxBackoffSeconds: 10\n"),
            &["podInitialBackoffSeconds"],
        ),
        (
            "missing",
            None,
            &["loading the configuration", "missing.yaml"],
        ),
    ];
    for (name, text, wants) in cases {
        let path = match text {
            Some(t) => write(dir.path(), &format!("{name}.yaml"), t),
            None => dir.path().join("missing.yaml").display().to_string(),
        };
        let out = run_to_exit(&[
            "--kubeconfig",
            &kubeconfig,
            "--config",
            &path,
            "--bind-address",
            "127.0.0.1:0",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: should fail");
        for want in wants {
            assert!(stderr.contains(want), "{name}: {want:?} not in {stderr}");
        }
    }
    let out = run_to_exit(&["--kubeconfig", "/nonexistent/kubeconfig"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/kubeconfig"), "{stderr}");
    let out = run_to_exit(&["--config", "x.yaml"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--kubeconfig"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_schedules_each_profile_and_stops_on_sigterm() {
    let (server, client) = server().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "scheduler.yaml", TWO_PROFILES);
    for n in ["node-a", "node-b"] {
        create_node(&client, testing::node(n, "4", "8Gi")).await;
    }
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let log = dir.path().join("scheduler.log");
    // As Kubernetes runs it: system:kube-scheduler, with its default roles.
    let kubeconfig = server.kubeconfig_for(&Identity::scheduler()).await;
    let child = Command::new(BIN)
        .args(["--kubeconfig", &kubeconfig.display().to_string()])
        .args(["--config", &config, "--leader-elect"])
        .args(["--bind-address", &addr.to_string()])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut child = Killed(child);
    eventually(60, "/readyz to answer 200", || async move {
        try_get(addr, "/readyz").await.filter(|s| s.contains("200"))
    })
    .await;
    assert!(try_get(addr, "/healthz").await.unwrap().contains("200"));

    // The spreading profile puts consecutive pods on different nodes.
    let mut spread: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..4 {
        let name = format!("spread-{i}");
        let mut p = pod(&name, "500m", "512Mi", None);
        p.spec.as_mut().unwrap().scheduler_name = Some("spread-scheduler".into());
        create_pod(&client, p).await;
        *spread
            .entry(bound_node(&client, &name, 60).await)
            .or_default() += 1;
    }
    assert_eq!(
        spread,
        BTreeMap::from([("node-a".to_string(), 2), ("node-b".to_string(), 2)])
    );
    // The default profile packs: both pods land on the same node.
    let mut packed = Vec::new();
    for i in 0..2 {
        let name = format!("pack-{i}");
        create_pod(&client, pod(&name, "500m", "512Mi", None)).await;
        packed.push(bound_node(&client, &name, 60).await);
    }
    assert_eq!(packed[0], packed[1], "{packed:?}");
    let events = pod_events(&client, "spread-0").await;
    let scheduled = events
        .iter()
        .find(|e| e.reason.as_deref() == Some("Scheduled"))
        .expect("a Scheduled event");
    assert_eq!(
        scheduled.reporting_component.as_deref(),
        Some("spread-scheduler"),
        "the event names the profile"
    );

    // --leader-elect: the binary holds the Lease.
    let holder = server.kubectl_ok(&[
        "get",
        "lease",
        "-n",
        "kube-system",
        "kube-scheduler",
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    assert!(!holder.is_empty(), "a holder identity");

    // SIGTERM: a clean exit, and the Lease is released.
    let pid = child.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = child.0.try_wait().unwrap() {
                break s;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "exits within 30 s of SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{status:?}\n{stderr}");
    assert!(
        stderr.contains(&addr.to_string()),
        "logs its address: {stderr}"
    );
    let holder = server.kubectl_ok(&[
        "get",
        "lease",
        "-n",
        "kube-system",
        "kube-scheduler",
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    assert!(holder.is_empty(), "released on exit: {holder:?}");
}
