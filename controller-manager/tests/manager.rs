//! The controller manager as a whole: leader election between two instances (only the leader
//! acts; the other takes over when it stops), and the health and metrics endpoints.

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, Patch, PatchParams, PostParams};
use rkube_controller_manager::Config;
use rkube_testkit::apiserver::{Backend, TestServer};

const T: Duration = Duration::from_secs(30);

struct Instance {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), rkube_controller_manager::Error>>,
    url: String,
}

async fn instance(server: &TestServer, identity: &str) -> Instance {
    let mut config = Config {
        leader_elect: true,
        leader_identity: identity.into(),
        // A renew deadline a stalled CI machine does not miss; the takeover does not wait for
        // the lease to expire, since a stopping leader releases it.
        leader_timings: (
            Duration::from_secs(10),
            Duration::from_secs(8),
            Duration::from_millis(200),
        ),
        ..test_config()
    };
    let client = manager_client(server, &mut config).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(rkube_controller_manager::run(
        config,
        client,
        Some(listener),
        async move {
            let _ = rx.await;
        },
    ));
    Instance {
        stop: Some(tx),
        task,
        url,
    }
}

async fn get(url: &str) -> (u16, String) {
    let (host, path) = url.trim_start_matches("http://").split_once('/').unwrap();
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(
            format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut buf = String::new();
    stream.read_to_string(&mut buf).await.unwrap();
    let code = buf[9..12].parse().unwrap();
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

fn metric(text: &str, line_start: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_the_leader_acts_and_the_other_takes_over() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let server = TestServer::start(Backend::Embedded).await;
    let c = server.client().await;
    let mut first = instance(&server, "first").await;
    let leases: Api<Lease> = Api::namespaced(c.clone(), "kube-system");
    let leader = wait_for("a leader", T, || async {
        leases
            .get_opt("kube-controller-manager")
            .await
            .ok()??
            .spec?
            .holder_identity
    })
    .await;
    assert_eq!(leader, "first");
    let mut second = instance(&server, "second").await;
    wait_for("the leader to be ready", T, || async {
        (get(&format!("{}/readyz", first.url)).await.0 == 200).then_some(())
    })
    .await;
    let (code, _) = get(&format!("{}/healthz", second.url)).await;
    assert_eq!(code, 200, "a standby is healthy");
    assert_eq!(
        get(&format!("{}/readyz", second.url)).await.0,
        503,
        "but not ready"
    );

    // Two instances, one set of pods: the standby does not act.
    let d_api: Api<Deployment> = Api::namespaced(c.clone(), "default");
    d_api
        .create(&PostParams::default(), &deployment("ha", 3, "nginx"))
        .await
        .unwrap();
    wait_for("3 pods", T, || async {
        (active_pods(&c, "default", "app=ha").await.len() == 3).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        active_pods(&c, "default", "app=ha").await.len(),
        3,
        "no double creates"
    );

    // Metrics of the leader.
    let (code, text) = get(&format!("{}/metrics", first.url)).await;
    assert_eq!(code, 200);
    assert_eq!(metric(&text, "rkube_controller_manager_leader"), Some(1.0));
    assert!(metric(&text, "rkube_controller_reconcile_total{controller=\"replicaset-controller\",result=\"success\"}").unwrap() >= 1.0, "{text}");
    assert!(metric(&text, "rkube_controller_reconcile_total{controller=\"deployment-controller\",result=\"success\"}").unwrap() >= 1.0);
    assert!(text.contains("rkube_controller_queue_depth{controller=\"replicaset-controller\"}"));
    assert!(text.contains("rkube_controller_reconcile_duration_seconds_bucket{controller=\"deployment-controller\",le=\"+Inf\"}"));
    let (_, standby) = get(&format!("{}/metrics", second.url)).await;
    assert_eq!(
        metric(&standby, "rkube_controller_manager_leader"),
        Some(0.0)
    );

    // The leader stops (releasing the lease): the other takes over and acts.
    let _ = first.stop.take().unwrap().send(());
    first.task.await.unwrap().unwrap();
    let leader = wait_for("the standby to lead", T, || async {
        let h = leases
            .get_opt("kube-controller-manager")
            .await
            .ok()??
            .spec?
            .holder_identity?;
        (h == "second").then_some(h)
    })
    .await;
    assert_eq!(leader, "second");
    let patch = serde_json::json!({"spec": {"replicas": 5}});
    d_api
        .patch_scale("ha", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    wait_for("5 pods from the new leader", T, || async {
        (active_pods(&c, "default", "app=ha").await.len() == 5).then_some(())
    })
    .await;
    let _ = second.stop.take().unwrap().send(());
    second.task.await.unwrap().unwrap();
}
