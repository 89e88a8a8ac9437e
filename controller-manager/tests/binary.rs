//! The `rkube-controller-manager` binary: it runs the controllers `--controllers` selects
//! against the API server of `--kubeconfig`, leads through the Lease with `--leader-elect`,
//! serves /healthz, /readyz and /metrics on `--listen`, stops cleanly on SIGTERM (releasing the
//! lease), and refuses bad flags with clear errors. (The ServiceAccount controller is checked here
//! too: the API server does not create `default` accounts itself.)

mod common;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, ListParams, PostParams};
use rkube_testkit::apiserver::{Backend, Identity, TestServer};

const T: Duration = Duration::from_secs(30);
const BIN: &str = env!("CARGO_BIN_EXE_rkube-controller-manager");

/// A free loopback address (bound once, then released for the binary to take).
fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// GET over plain HTTP/1.1: (status, body); `None` while nothing listens.
async fn get(addr: &str, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .ok()?;
    let mut buf = String::new();
    stream.read_to_string(&mut buf).await.ok()?;
    let code = buf.get(9..12)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((code, body))
}

/// Runs the binary to completion (for flags it must refuse).
async fn run_to_end(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(&args)
            .env_remove("KUBECONFIG")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .expect("run rkube-controller-manager")
    })
    .await
    .unwrap()
}

/// Kills the child if the test fails before it is stopped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_binary_runs_the_selected_controllers_and_stops_on_sigterm() {
    let server = TestServer::start(Backend::Embedded).await;
    let c = server.client().await;
    let listen = free_addr();
    // As Kubernetes runs it: its own identity, each controller with its ServiceAccount.
    let kubeconfig = server.kubeconfig_for(&Identity::controller_manager()).await;
    let mut child = Child(
        Command::new(BIN)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args([
                "--use-service-account-credentials",
                "--leader-elect",
                "--controllers=*,-garbage-collector-controller,-deployment",
                "--listen",
                &listen,
                "--node-monitor-grace-period=1m",
            ])
            .env_remove("KUBECONFIG")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start rkube-controller-manager"),
    );
    let pid = child.0.id();

    // Healthy at once; ready once it leads and its caches are synced.
    wait_for("/readyz", T, || async {
        (get(&listen, "/readyz").await?.0 == 200).then_some(())
    })
    .await;
    assert_eq!(get(&listen, "/healthz").await.unwrap().0, 200);
    let leases: Api<Lease> = Api::namespaced(c.clone(), "kube-system");
    let holder = leases
        .get("kube-controller-manager")
        .await
        .unwrap()
        .spec
        .unwrap()
        .holder_identity
        .unwrap();
    assert!(!holder.is_empty());

    // The ReplicaSet controller runs: a ReplicaSet gets its pods.
    let d = deployment("web", 2, "nginx");
    let rs: ReplicaSet = serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": d.spec.as_ref().unwrap().selector,
                 "template": d.spec.as_ref().unwrap().template}
    }))
    .unwrap();
    Api::<ReplicaSet>::namespaced(c.clone(), "default")
        .create(&PostParams::default(), &rs)
        .await
        .unwrap();
    wait_for("the ReplicaSet's 2 pods", T, || async {
        (active_pods(&c, "default", "app=web").await.len() == 2).then_some(())
    })
    .await;

    // The ServiceAccount controller runs: a new namespace gets its `default` account.
    Api::<Namespace>::all(c.clone())
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: kube::api::ObjectMeta {
                    name: Some("team".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let accounts: Api<ServiceAccount> = Api::namespaced(c.clone(), "team");
    wait_for(
        "the default ServiceAccount of a new namespace",
        T,
        || async { accounts.get_opt("default").await.ok()?.map(|_| ()) },
    )
    .await;

    // The disabled controllers do not run: /metrics lists the queues of the running ones
    // only, and a Deployment observed by nobody has no status.
    Api::<Deployment>::namespaced(c.clone(), "default")
        .create(&PostParams::default(), &deployment("idle", 1, "nginx"))
        .await
        .unwrap();
    let (code, metrics) = get(&listen, "/metrics").await.unwrap();
    assert_eq!(code, 200);
    assert!(
        metrics.contains("rkube_controller_queue_depth{controller=\"replicaset-controller\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("rkube_controller_reconcile_total{controller=\"replicaset-controller\""),
        "{metrics}"
    );
    assert!(
        !metrics.contains("controller=\"deployment-controller\""),
        "{metrics}"
    );
    assert!(
        !metrics.contains("controller=\"garbage-collector-controller\""),
        "{metrics}"
    );
    let rses = Api::<ReplicaSet>::namespaced(c.clone(), "default")
        .list(&ListParams::default().labels("app=idle"))
        .await
        .unwrap();
    assert!(rses.items.is_empty(), "no Deployment controller");

    // SIGTERM: a clean exit that gives the lease up.
    let killed = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = tokio::time::Instant::now() + T;
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the process did not exit within {T:?} of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status}");
    let lease = leases.get("kube-controller-manager").await.unwrap();
    assert!(
        lease
            .spec
            .unwrap()
            .holder_identity
            .is_none_or(|h| h.is_empty()),
        "the lease is released"
    );
}

#[tokio::test]
async fn bad_flags_are_refused_with_clear_errors() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--kubeconfig", "/nonexistent", "--controllers=*,-nonsense"],
            "unknown controller \"nonsense\" in --controllers",
        ),
        (
            &["--kubeconfig", "/nonexistent", "--listen", "0.0.0.0:10257"],
            "plain HTTP is only allowed on a loopback address",
        ),
        (
            &["--kubeconfig", "/nonexistent/admin.kubeconfig"],
            "cannot read /nonexistent/admin.kubeconfig",
        ),
        (
            &[
                "--kubeconfig",
                "/nonexistent",
                "--node-monitor-grace-period",
                "5 parsecs",
            ],
            "invalid duration \"5 parsecs\"",
        ),
        (
            &[
                "--kubeconfig",
                "/nonexistent",
                "--cluster-cidr",
                "10.244.0.0/16",
                "--node-cidr-mask-size",
                "8",
            ],
            "--node-cidr-mask-size 8 must be at least the cluster CIDR's prefix 16",
        ),
        (
            &[
                "--kubeconfig",
                "/nonexistent",
                "--cluster-cidr",
                "10.244.0.0/33",
            ],
            "invalid value '10.244.0.0/33' for '--cluster-cidr",
        ),
    ];
    for (args, want) in cases {
        let out = run_to_end(args).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{args:?} should fail; stderr: {stderr}"
        );
        assert!(
            stderr.contains(want),
            "{args:?}: want {want:?} in:\n{stderr}"
        );
    }
}
