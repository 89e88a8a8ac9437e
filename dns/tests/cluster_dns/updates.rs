//! Changes through the API are answered within 1 s: Service create/delete, endpoint
//! readiness, pods becoming ready.

use std::time::Duration;

use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::RecordType;
use serde_json::json;

use crate::harness::{Cluster, a_records};

#[tokio::test]
async fn service_create_and_delete_within_1s() {
    let c = Cluster::start(vec![], Duration::from_secs(1)).await;
    let name = "cache.default.svc.cluster.local.";
    let m = c.ask(name, RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);

    let svc = c
        .create_service(
            "default",
            json!({"metadata": {"name": "cache"}, "spec": {"ports": [{"port": 11211}]}}),
        )
        .await;
    let ip = svc.spec.unwrap().cluster_ip.unwrap();
    let took = c
        .within_1s(name, RecordType::A, "created Service", |m| {
            a_records(m) == [ip.clone()]
        })
        .await;
    eprintln!("service create visible after {took:?}");

    c.delete_service("default", "cache").await;
    let took = c
        .within_1s(name, RecordType::A, "deleted Service", |m| {
            m.metadata.response_code == ResponseCode::NXDomain
        })
        .await;
    eprintln!("service delete visible after {took:?}");
    // And its PTR is gone too.
    let mut o: Vec<&str> = ip.split('.').collect();
    o.reverse();
    let m = c
        .ask(&format!("{}.in-addr.arpa.", o.join(".")), RecordType::PTR)
        .await;
    assert!(m.answers.is_empty(), "{m}");
}

#[tokio::test]
async fn endpoint_readiness_changes_within_1s() {
    let c = Cluster::start(vec![], Duration::from_secs(1)).await;
    c.create_service(
        "default",
        json!({"metadata": {"name": "workers"},
               "spec": {"clusterIP": "None", "ports": [{"name": "rpc", "port": 9000}]}}),
    )
    .await;
    let mut slice = c
        .create_slice(
            "default",
            json!({"metadata": {"name": "workers-a", "labels": {"kubernetes.io/service-name": "workers"}},
                   "addressType": "IPv4",
                   "ports": [{"name": "rpc", "port": 9000, "protocol": "TCP"}],
                   "endpoints": [
                       {"addresses": ["10.244.3.1"], "conditions": {"ready": true}},
                       {"addresses": ["10.244.3.2"], "conditions": {"ready": false}}]}),
        )
        .await;
    let name = "workers.default.svc.cluster.local.";
    c.within_1s(name, RecordType::A, "initial endpoints", |m| {
        a_records(m) == ["10.244.3.1"]
    })
    .await;

    // The second endpoint becomes ready.
    slice.endpoints[1].conditions.as_mut().unwrap().ready = Some(true);
    slice = c.replace_slice("default", &slice).await;
    let took = c
        .within_1s(name, RecordType::A, "endpoint became ready", |m| {
            a_records(m) == ["10.244.3.1", "10.244.3.2"]
        })
        .await;
    eprintln!("readiness visible after {took:?}");
    let srv = c
        .ask(
            "_rpc._tcp.workers.default.svc.cluster.local.",
            RecordType::SRV,
        )
        .await;
    assert_eq!(srv.answers.len(), 2);

    // The first one stops being ready.
    slice.endpoints[0].conditions.as_mut().unwrap().ready = Some(false);
    c.replace_slice("default", &slice).await;
    c.within_1s(name, RecordType::A, "endpoint became unready", |m| {
        a_records(m) == ["10.244.3.2"]
    })
    .await;
    let m = c
        .ask(
            "10-244-3-1.workers.default.svc.cluster.local.",
            RecordType::A,
        )
        .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);

    // Deleting the slice leaves the Service with no endpoints: NODATA, not NXDOMAIN.
    c.slices("default")
        .delete("workers-a", &Default::default())
        .await
        .unwrap();
    c.within_1s(name, RecordType::A, "slice deleted", |m| {
        m.answers.is_empty() && m.metadata.response_code == ResponseCode::NoError
    })
    .await;
}

#[tokio::test]
async fn pod_hostname_appears_when_ready() {
    let c = Cluster::start(vec![], Duration::from_secs(1)).await;
    c.create_service(
        "default",
        json!({"metadata": {"name": "sub"}, "spec": {"clusterIP": "None"}}),
    )
    .await;
    let pod = c
        .create_pod(
            "default",
            json!({"metadata": {"name": "p0"},
                   "spec": {"hostname": "p0", "subdomain": "sub",
                            "containers": [{"name": "c", "image": "busybox"}]}}),
            json!({"phase": "Running", "podIP": "10.244.4.4",
                   "conditions": [{"type": "Ready", "status": "False"}]}),
        )
        .await;
    // The pod's own record exists; the hostname waits for readiness.
    c.within_1s(
        "10-244-4-4.default.pod.cluster.local.",
        RecordType::A,
        "pod A",
        |m| a_records(m) == ["10.244.4.4"],
    )
    .await;
    let m = c
        .ask("p0.sub.default.svc.cluster.local.", RecordType::A)
        .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);

    c.pods("default")
        .patch_status(
            pod.metadata.name.as_deref().unwrap(),
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(
                json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
            ),
        )
        .await
        .unwrap();
    c.within_1s(
        "p0.sub.default.svc.cluster.local.",
        RecordType::A,
        "pod ready",
        |m| a_records(m) == ["10.244.4.4"],
    )
    .await;
}

/// Answers come from the reflectors' caches, not from API calls: with the API server gone,
/// the last snapshot is still served (and rkube-dns keeps running, retrying its watches).
#[tokio::test]
async fn answers_from_the_caches_when_the_api_server_is_gone() {
    let mut c = Cluster::start(vec![], Duration::from_secs(1)).await;
    let svc = c
        .create_service(
            "default",
            json!({"metadata": {"name": "steady"}, "spec": {"ports": [{"port": 80}]}}),
        )
        .await;
    let ip = svc.spec.unwrap().cluster_ip.unwrap();
    let name = "steady.default.svc.cluster.local.";
    c.within_1s(name, RecordType::A, "service", |m| {
        a_records(m) == [ip.clone()]
    })
    .await;

    c.api.stop().await;
    for _ in 0..20 {
        let m = c.ask(name, RecordType::A).await;
        assert_eq!(a_records(&m), std::slice::from_ref(&ip));
        let m = c
            .ask("gone.default.svc.cluster.local.", RecordType::A)
            .await;
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(c.running());
    assert_eq!(c.http_get("/readyz").await.0, 200);
}
