//! Lease-based leader election (rkube-machinery) against the real API server: of two
//! candidates exactly one leads; when it stops, the other takes over.

mod common;

use std::time::Duration;

use common::{Backend, TestServer};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use rkube_machinery::leader::{LeaderConfig, run};

fn config(identity: &str) -> LeaderConfig {
    let mut c = LeaderConfig::new("kube-system", "test-lock", identity);
    c.lease_duration = Duration::from_secs(2);
    c.renew_deadline = Duration::from_millis(1500);
    c.retry_period = Duration::from_millis(200);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_leader_at_a_time_and_failover() {
    let s = TestServer::start(Backend::Embedded).await;
    let leases: Api<Lease> = Api::namespaced(s.client().await, "kube-system");
    let (stop_a, a_stopped) = tokio::sync::oneshot::channel::<()>();
    let (a, a_task) = run(leases.clone(), config("a"), async {
        let _ = a_stopped.await;
    });
    let (_stop_b, b_stopped) = tokio::sync::oneshot::channel::<()>();
    let (b, _b_task) = run(leases.clone(), config("b"), async {
        let _ = b_stopped.await;
    });
    // Within a few seconds one leads; the two never lead together.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (la, lb) = (*a.borrow(), *b.borrow());
        assert!(!(la && lb), "two leaders");
        if la || lb {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nobody became leader"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..40 {
        assert!(!(*a.borrow() && *b.borrow()), "two leaders");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (leader, follower, stop) = if *a.borrow() {
        (a, b, stop_a)
    } else {
        // Make `a` the one we stop only if it leads; otherwise stop b by dropping a's sender later.
        drop(stop_a);
        a_task.await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !*b.borrow() {
            assert!(tokio::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let lease = leases.get("test-lock").await.unwrap();
        assert_eq!(lease.spec.unwrap().holder_identity.as_deref(), Some("b"));
        return;
    };
    let lease = leases.get("test-lock").await.unwrap();
    assert_eq!(lease.spec.unwrap().holder_identity.as_deref(), Some("a"));
    let _ = stop.send(());
    a_task.await.unwrap();
    assert!(!*leader.borrow());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !*follower.borrow() {
        assert!(tokio::time::Instant::now() < deadline, "no failover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lease = leases.get("test-lock").await.unwrap();
    assert_eq!(lease.spec.unwrap().holder_identity.as_deref(), Some("b"));
}
