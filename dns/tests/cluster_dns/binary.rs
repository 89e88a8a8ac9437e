//! The `rkube-dns` binary as an operator runs it: flags, clear errors for bad input, serving
//! from a real API server through its kubeconfig, and a clean exit on SIGTERM.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::RecordType;
use rkube_testkit::apiserver::{Backend, Identity, TestServer};
use serde_json::json;

use crate::harness::{FakeUpstream, a_records, exchange_tcp, exchange_udp, query};

const BIN: &str = env!("CARGO_BIN_EXE_rkube-dns");

/// A loopback port free for both UDP and TCP (the binary serves DNS on both).
fn free_dns_port() -> SocketAddr {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = udp.local_addr().unwrap();
        if std::net::TcpListener::bind(addr).is_ok() {
            return addr;
        }
    }
}

fn free_tcp_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Runs the binary to completion (it must fail): its stderr.
async fn fails_with(args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(&args)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(!out.status.success(), "expected a failure");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A child process killed if the test fails before it exits.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn bad_input_is_refused_with_a_clear_error() {
    let missing = "/nonexistent/rkube-dns-test/admin.kubeconfig";
    let listen = free_dns_port().to_string();

    let err = fails_with(&["--kubeconfig", missing, "--listen", &listen, "--ttl", "0"]).await;
    assert!(err.contains("--ttl must be at least 1 second"), "{err}");

    let err = fails_with(&[
        "--kubeconfig",
        missing,
        "--listen",
        &listen,
        "--upstream",
        "192.0.2.53,dns.example",
    ])
    .await;
    assert!(err.contains("invalid upstream \"dns.example\""), "{err}");

    let err = fails_with(&[
        "--kubeconfig",
        missing,
        "--listen",
        &listen,
        "--upstream",
        "",
    ])
    .await;
    assert!(err.contains("kubeconfig") && err.contains(missing), "{err}");

    let err = fails_with(&["--kubeconfig", missing, "--listen", "not-an-address"]).await;
    assert!(err.contains("--listen"), "{err}");

    // A cluster domain that is not a name, with a kubeconfig that is fine.
    let api = TestServer::start(Backend::Embedded).await;
    let kubeconfig = api
        .kubeconfig_for(&Identity::dns())
        .await
        .to_str()
        .unwrap()
        .to_string();
    let metrics = free_tcp_port().to_string();
    let bad_label = format!("{}.local", "x".repeat(64));
    let err = fails_with(&[
        "--kubeconfig",
        &kubeconfig,
        "--listen",
        &listen,
        "--metrics-listen",
        &metrics,
        "--upstream",
        "",
        "--cluster-domain",
        &bad_label,
    ])
    .await;
    assert!(err.contains("invalid DNS name"), "{err}");

    // A DNS port that is taken.
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    let err = fails_with(&[
        "--kubeconfig",
        &kubeconfig,
        "--listen",
        &taken_addr,
        "--upstream",
        "",
    ])
    .await;
    assert!(
        err.contains(&format!("cannot bind UDP {taken_addr}")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_from_the_kubeconfig_and_exits_on_sigterm() {
    let api = TestServer::start(Backend::Embedded).await;
    let client = api.client().await;
    let upstream = FakeUpstream::start(&[("www.example.org.", "192.0.2.90")]).await;
    let listen = free_dns_port();
    let metrics = free_tcp_port();
    let kubeconfig = api.kubeconfig_for(&Identity::dns()).await;
    let child = Command::new(BIN)
        .args([
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--listen",
            &listen.to_string(),
            "--metrics-listen",
            &metrics.to_string(),
            "--upstream",
            &upstream.addr.to_string(),
            "--cluster-domain",
            "corp.example.",
            "--ttl",
            "30",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut child = Running(child);

    // Ready once the caches synced.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = readyz(metrics).await
            && r == 200
        {
            break;
        }
        assert!(
            child.0.try_wait().unwrap().is_none(),
            "rkube-dns exited early"
        );
        assert!(Instant::now() < deadline, "rkube-dns did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let services: kube::Api<k8s_openapi::api::core::v1::Service> =
        kube::Api::namespaced(client, "default");
    let svc = services
        .create(
            &Default::default(),
            &serde_json::from_value(json!({"metadata": {"name": "api"},
                "spec": {"ports": [{"port": 443}]}}))
            .unwrap(),
        )
        .await
        .unwrap();
    let ip = svc.spec.unwrap().cluster_ip.unwrap();

    // The flags took effect: the cluster domain and the TTL.
    let name = "api.default.svc.corp.example.";
    let deadline = Instant::now() + Duration::from_secs(10);
    let m = loop {
        let m = exchange_udp(listen, &query(name, RecordType::A, Some(1232))).await;
        if !m.answers.is_empty() {
            break m;
        }
        assert!(Instant::now() < deadline, "{name} never answered: {m}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(a_records(&m), [ip]);
    assert_eq!(m.answers[0].ttl, 30);
    let m = exchange_tcp(listen, &query(name, RecordType::A, None)).await;
    assert_eq!(m.answers.len(), 1);
    // The upstream from --upstream; cluster.local is not this cluster's domain, so it is
    // forwarded there too (and the fake upstream does not know it).
    let m = exchange_udp(listen, &query("www.example.org.", RecordType::A, None)).await;
    assert_eq!(a_records(&m), ["192.0.2.90"]);
    let before = upstream.questions.load(Ordering::SeqCst);
    let m = exchange_udp(
        listen,
        &query("api.default.svc.cluster.local.", RecordType::A, None),
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(!m.metadata.authoritative);
    assert_eq!(upstream.questions.load(Ordering::SeqCst), before + 1);

    // SIGTERM: a clean exit, status 0.
    let pid = child.0.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "rkube-dns ignored SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status}");
}

async fn readyz(addr: SocketAddr) -> std::io::Result<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    Ok(out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0))
}
