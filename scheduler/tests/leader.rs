//! Two schedulers with leader election against one API server: only the leader schedules;
//! when it stops (releasing the Lease) the other takes over.

mod common;

use std::time::Duration;

use common::*;
use rkube_scheduler::SchedulerConfiguration;
use rkube_scheduler::config::GoDuration;
use rkube_scheduler::testing;

fn elected() -> SchedulerConfiguration {
    let mut cfg = SchedulerConfiguration::default();
    cfg.leader_election.leader_elect = true;
    cfg.leader_election.lease_duration = GoDuration(Duration::from_secs(3));
    cfg.leader_election.renew_deadline = GoDuration(Duration::from_secs(2));
    cfg.leader_election.retry_period = GoDuration(Duration::from_millis(200));
    cfg
}

/// The reportingInstance of the Scheduled event of a pod.
async fn scheduled_by(client: &kube::Client, pod: &str) -> String {
    eventually(30, "a Scheduled event", || {
        let client = client.clone();
        async move {
            pod_events(&client, pod)
                .await
                .into_iter()
                .find(|e| e.reason.as_deref() == Some("Scheduled"))
                .and_then(|e| e.reporting_instance)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_schedules_and_the_standby_takes_over() {
    let (server, client) = server().await;
    create_node(&client, testing::node("n1", "8", "16Gi")).await;
    let a = start_scheduler(&server, elected(), "sched-a", true).await;
    let mut a_leading = a.handle.leading.clone();
    tokio::time::timeout(Duration::from_secs(20), a_leading.wait_for(|l| *l))
        .await
        .expect("a leads")
        .unwrap();
    let b = start_scheduler(&server, elected(), "sched-b", true).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !*b.handle.leading.borrow(),
        "b waits while a holds the lease"
    );

    create_pod(&client, pod("first", "1", "1Gi", None)).await;
    bound_node(&client, "first", 30).await;
    assert_eq!(scheduled_by(&client, "first").await, "sched-a");
    assert_eq!(b.handle.metrics.totals().scheduled, 0);

    // a stops cleanly and releases the lease: b takes over well before it would expire.
    a.stop().await.unwrap();
    let mut b_leading = b.handle.leading.clone();
    tokio::time::timeout(Duration::from_secs(20), b_leading.wait_for(|l| *l))
        .await
        .expect("b leads")
        .unwrap();
    create_pod(&client, pod("second", "1", "1Gi", None)).await;
    bound_node(&client, "second", 30).await;
    assert_eq!(scheduled_by(&client, "second").await, "sched-b");
    let lease = server.kubectl_ok(&[
        "get",
        "lease",
        "-n",
        "kube-system",
        "kube-scheduler",
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    assert_eq!(lease, "sched-b");
    b.stop().await.unwrap();
}
