//! rkubectl against a whole rkube control plane in one process — the API server, the real
//! controller manager (Deployment and ReplicaSet controllers, garbage collector), the real
//! scheduler and a real rkubelet on its hollow runtime: `rollout status` following the
//! Deployment controller's progress, `set image`, `rollout history` and `undo` over the
//! ReplicaSets the controller made, `scale`, `logs deploy/NAME`, `get all`, `describe`, and
//! `delete` waiting for the garbage collector — outputs compared with the real kubectl's.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::*;
use rkube_kubelet::config::Capacity;
use rkube_kubelet::hollow::FakeConfig;
use rkube_kubelet::{Config, Kubelet, RuntimeMode};

/// The control plane's components, stopped when dropped (the API server with the test).
struct Plane {
    stop: Vec<tokio::sync::oneshot::Sender<()>>,
    kubelet: Option<Kubelet>,
}

impl Plane {
    async fn stop(mut self) {
        for tx in self.stop.drain(..) {
            let _ = tx.send(());
        }
        if let Some(k) = self.kubelet.take() {
            k.stop().await;
        }
    }
}

async fn plane(s: &TestServer) -> Plane {
    // Each component as Kubernetes runs it, with its own identity and default roles: the
    // controller manager as system:kube-controller-manager with each controller on its
    // ServiceAccount's credentials, the scheduler as system:kube-scheduler, the kubelet as
    // system:node:n1.
    let manager = s.config_as(&Identity::controller_manager()).await;
    let cm_config = rkube_controller_manager::Config {
        service_account_credentials: Some(manager.clone()),
        ..Default::default()
    };
    let (cm_tx, cm_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(rkube_controller_manager::run(
        cm_config,
        kube::Client::try_from(manager).unwrap(),
        None,
        async move {
            let _ = cm_rx.await;
        },
    ));
    let (sched_tx, sched_rx) = tokio::sync::oneshot::channel::<()>();
    let opts = rkube_scheduler::Options::new(
        s.client_as(&Identity::scheduler()).await,
        Default::default(),
    );
    tokio::spawn(rkube_scheduler::run(opts, async move {
        let _ = sched_rx.await;
    }));
    let mut cfg = Config::new("n1", s.dir.path().join("kubelet"));
    cfg.client = Some(s.client_as(&Identity::node("n1")).await);
    cfg.runtime = RuntimeMode::Fake(FakeConfig::default());
    cfg.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    cfg.node_ip = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    cfg.capacity = Some(Capacity {
        cpu_milli: 4000,
        memory: 8 << 30,
        ephemeral_storage: 100 << 30,
    });
    cfg.node_status_update_frequency = Duration::from_secs(1);
    cfg.lease_renew_interval = Duration::from_secs(1);
    let kubelet = Kubelet::start(cfg).await.expect("hollow kubelet");
    eventually(s, "node n1 Ready", |s| {
        rk(
            s,
            &[
                "get",
                "node",
                "n1",
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
            ],
        )
        .stdout
            == "True"
    });
    Plane {
        stop: vec![cm_tx, sched_tx],
        kubelet: Some(kubelet),
    }
}

/// Polls until `cond` holds (two minutes at most: CI machines are busy).
fn eventually(s: &TestServer, what: &str, cond: impl Fn(&TestServer) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !cond(s) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `rollout status` until done: every line one of kubectl's, the last the success line.
fn rolled_out(s: &TestServer, name: &str) {
    let out = rk_ok(
        s,
        &[
            "rollout",
            "status",
            &format!("deploy/{name}"),
            "--timeout=120s",
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    let done = format!("deployment \"{name}\" successfully rolled out");
    assert_eq!(lines.last().copied(), Some(done.as_str()), "{out}");
    for l in &lines[..lines.len() - 1] {
        assert!(
            l.starts_with(&format!(
                "Waiting for deployment \"{name}\" rollout to finish: "
            )) || *l == "Waiting for deployment spec update to be observed...",
            "{out}"
        );
    }
}

fn image(s: &TestServer) -> String {
    rk_ok(
        s,
        &[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollouts_with_the_real_controllers() {
    let s = server().await;
    let p = Box::pin(plane(&s)).await;
    assert_eq!(
        rk_ok(
            &s,
            &[
                "create",
                "deployment",
                "web",
                "--image=busybox:1.35",
                "--replicas=2"
            ]
        ),
        "deployment.apps/web created\n"
    );
    rolled_out(&s, "web");
    assert_eq!(
        rk_ok(&s, &["set", "image", "deploy/web", "busybox=busybox:1.36"]),
        "deployment.apps/web image updated\n"
    );
    rolled_out(&s, "web");
    golden(&s, &["rollout", "history", "deploy/web"]);
    golden(&s, &["rollout", "history", "deploy/web", "--revision=1"]);
    assert_eq!(
        rk_ok(&s, &["rollout", "undo", "deploy/web"]),
        "deployment.apps/web rolled back\n"
    );
    rolled_out(&s, "web");
    assert_eq!(image(&s), "busybox:1.35");
    golden(&s, &["rollout", "history", "deploy/web"]);
    assert_eq!(
        rk_ok(&s, &["scale", "deploy/web", "--replicas=3"]),
        "deployment.apps/web scaled\n"
    );
    rolled_out(&s, "web");
    eventually(&s, "three running pods", |s| {
        let phases = rk_ok(
            s,
            &[
                "get",
                "pods",
                "-l",
                "app=web",
                "-o",
                "jsonpath={.items[*].status.phase}",
            ],
        );
        phases == "Running Running Running"
    });
    for args in [
        &["get", "all"][..],
        &["get", "deploy,rs", "-o", "wide"],
        &["get", "pods", "-o", "wide", "--sort-by", "{.metadata.name}"],
        &["describe", "deploy", "web"],
        &["logs", "deploy/web"],
    ] {
        golden(&s, args);
    }
    // A rollout that cannot progress (its pods fit no node) fails once the controller marks
    // the deadline exceeded; kubectl's words, non-zero exit.
    let stuck = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: stuck\nspec:\n  progressDeadlineSeconds: 2\n  selector:\n    matchLabels:\n      app: stuck\n  template:\n    metadata:\n      labels:\n        app: stuck\n    spec:\n      nodeSelector:\n        disk: none\n      containers:\n      - name: c\n        image: busybox:1.35\n";
    let f = write(&s, "stuck.yaml", stuck);
    rk_ok(&s, &["apply", "-f", &f]);
    let r = rk(&s, &["rollout", "status", "deploy/stuck", "--timeout=120s"]);
    assert!(!r.ok, "{r:?}");
    assert_eq!(
        r.stderr,
        "error: deployment \"stuck\" exceeded its progress deadline\n"
    );
    assert!(
        r.stdout
            .lines()
            .all(|l| l.starts_with("Waiting for deployment")),
        "{}",
        r.stdout
    );
    golden(&s, &["rollout", "status", "deploy/stuck"]);
    // Deleting waits for the Deployment to go; the garbage collector then removes the rest.
    assert_eq!(
        rk_ok(&s, &["delete", "deploy", "web"]),
        "deployment.apps \"web\" deleted\n"
    );
    eventually(&s, "the pods to go", |s| {
        rk_ok(s, &["get", "pods", "-l", "app=web", "-o", "name"]).is_empty()
    });
    p.stop().await;
}
