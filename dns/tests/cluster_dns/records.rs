//! Each record type rkube-dns serves, for objects written through the API.

use std::sync::atomic::Ordering;
use std::time::Duration;

use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::RecordType;
use serde_json::json;

use crate::harness::{Cluster, FakeUpstream, a_records, answers};

const D: &str = "svc.cluster.local.";

/// Services of every kind, a headless Service's EndpointSlice, pods — and the answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_type() {
    let upstream = FakeUpstream::start(&[("example.org.", "192.0.2.10")]).await;
    let c = Cluster::start(vec![upstream.addr], Duration::from_secs(2)).await;
    c.create_namespace("data").await;

    // The kube-dns Service of manifests/addons, applied with the real kubectl.
    let manifests = rkube_testkit::apiserver::TestServer::manifests("addons/");
    // kubectl blocks: keep it off the thread the in-process API server needs.
    let out = tokio::task::block_in_place(|| c.api.kubectl_ok(&["apply", "-f", &manifests]));
    assert!(out.contains("service/kube-dns"), "{out}");

    let web = c
        .create_service(
            "default",
            json!({"metadata": {"name": "web"},
                   "spec": {"selector": {"app": "web"},
                            "ports": [{"name": "http", "port": 80, "protocol": "TCP"},
                                      {"name": "metrics", "port": 9100, "protocol": "UDP"}]}}),
        )
        .await;
    let web_ip = web.spec.unwrap().cluster_ip.unwrap();
    c.create_service(
        "data",
        json!({"metadata": {"name": "db"},
               "spec": {"clusterIP": "None", "selector": {"app": "db"},
                        "ports": [{"name": "pg", "port": 5432}]}}),
    )
    .await;
    c.create_slice(
        "data",
        json!({"metadata": {"name": "db-1", "labels": {"kubernetes.io/service-name": "db"}},
               "addressType": "IPv4",
               "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
               "endpoints": [
                   {"addresses": ["10.244.1.5"], "hostname": "db-0", "conditions": {"ready": true}},
                   {"addresses": ["10.244.1.6"], "conditions": {"ready": true}},
                   {"addresses": ["10.244.1.7"], "conditions": {"ready": false}}]}),
    )
    .await;
    c.create_service(
        "data",
        json!({"metadata": {"name": "peers"},
               "spec": {"clusterIP": "None", "publishNotReadyAddresses": true,
                        "ports": [{"name": "gossip", "port": 7000}]}}),
    )
    .await;
    c.create_slice(
        "data",
        json!({"metadata": {"name": "peers-1", "labels": {"kubernetes.io/service-name": "peers"}},
               "addressType": "IPv4",
               "endpoints": [
                   {"addresses": ["10.244.2.1"], "conditions": {"ready": true}},
                   {"addresses": ["10.244.2.2"], "conditions": {"ready": false}}]}),
    )
    .await;
    c.create_service(
        "default",
        json!({"metadata": {"name": "ext"},
               "spec": {"type": "ExternalName", "externalName": "example.org"}}),
    )
    .await;
    c.create_pod(
        "data",
        json!({"metadata": {"name": "db-primary", "labels": {"app": "db"}},
               "spec": {"hostname": "primary", "subdomain": "db",
                        "containers": [{"name": "pg", "image": "busybox"}]}}),
        json!({"phase": "Running", "podIP": "10.244.1.9", "podIPs": [{"ip": "10.244.1.9"}],
               "conditions": [{"type": "Ready", "status": "True"}]}),
    )
    .await;

    // Wait for the last write to be served, then check everything.
    c.within_1s(
        &format!("primary.db.data.{D}"),
        RecordType::A,
        "pod hostname",
        |m| !m.answers.is_empty(),
    )
    .await;

    // ClusterIP Service: A → ClusterIP, authoritative, TTL 5; no AAAA (NODATA with the SOA).
    let m = c.ask(&format!("web.default.{D}"), RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative);
    assert_eq!(a_records(&m), std::slice::from_ref(&web_ip));
    assert_eq!(m.answers[0].ttl, 5);
    let m = c.ask(&format!("web.default.{D}"), RecordType::AAAA).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert_eq!(m.authorities[0].record_type(), RecordType::SOA);

    // SRV for named ports, with the target's address in the additional section.
    let m = c
        .ask(&format!("_http._tcp.web.default.{D}"), RecordType::SRV)
        .await;
    assert_eq!(answers(&m), [format!("SRV 0 100 80 web.default.{D}")]);
    assert_eq!(m.additionals.len(), 1);
    assert_eq!(m.additionals[0].data.to_string(), web_ip);
    let m = c
        .ask(&format!("_metrics._udp.web.default.{D}"), RecordType::SRV)
        .await;
    assert_eq!(answers(&m), [format!("SRV 0 100 9100 web.default.{D}")]);
    let m = c
        .ask(&format!("_http._udp.web.default.{D}"), RecordType::SRV)
        .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);

    // Headless: the ready endpoints; per-endpoint hostnames; SRV per endpoint.
    let m = c.ask(&format!("db.data.{D}"), RecordType::A).await;
    assert_eq!(a_records(&m), ["10.244.1.5", "10.244.1.6"]);
    let m = c.ask(&format!("db-0.db.data.{D}"), RecordType::A).await;
    assert_eq!(a_records(&m), ["10.244.1.5"]);
    let m = c
        .ask(&format!("_pg._tcp.db.data.{D}"), RecordType::SRV)
        .await;
    assert_eq!(
        answers(&m),
        [
            format!("SRV 0 50 5432 10-244-1-6.db.data.{D}"),
            format!("SRV 0 50 5432 db-0.db.data.{D}"),
        ]
    );
    assert_eq!(m.additionals.len(), 2);
    // The not-ready endpoint has no name.
    let m = c
        .ask(&format!("10-244-1-7.db.data.{D}"), RecordType::A)
        .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    // publishNotReadyAddresses: every endpoint.
    let m = c.ask(&format!("peers.data.{D}"), RecordType::A).await;
    assert_eq!(a_records(&m), ["10.244.2.1", "10.244.2.2"]);

    // Pods: hostname+subdomain under the headless Service, and <a-b-c-d>.<ns>.pod.
    let m = c.ask(&format!("primary.db.data.{D}"), RecordType::A).await;
    assert_eq!(a_records(&m), ["10.244.1.9"]);
    let m = c
        .ask("10-244-1-9.data.pod.cluster.local.", RecordType::A)
        .await;
    assert_eq!(a_records(&m), ["10.244.1.9"]);
    let m = c
        .ask("10-244-1-99.data.pod.cluster.local.", RecordType::A)
        .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);

    // ExternalName → CNAME, completed with the upstream's answer for the target.
    let m = c.ask(&format!("ext.default.{D}"), RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(answers(&m), ["A 192.0.2.10", "CNAME example.org."]);
    assert_eq!(m.answers[0].record_type(), RecordType::CNAME, "CNAME first");

    // PTR for ClusterIPs and endpoint IPs.
    let rev = |ip: &str| {
        let mut o: Vec<&str> = ip.split('.').collect();
        o.reverse();
        format!("{}.in-addr.arpa.", o.join("."))
    };
    let m = c.ask(&rev(&web_ip), RecordType::PTR).await;
    assert_eq!(answers(&m), [format!("PTR web.default.{D}")]);
    let m = c.ask(&rev("10.244.1.5"), RecordType::PTR).await;
    assert_eq!(answers(&m), [format!("PTR db-0.db.data.{D}")]);
    let m = c.ask(&rev("10.96.0.10"), RecordType::PTR).await;
    assert_eq!(answers(&m), [format!("PTR kube-dns.kube-system.{D}")]);

    // SOA and NS of the zone; the name server is the kube-dns ClusterIP (10.96.0.10).
    let m = c.ask("cluster.local.", RecordType::SOA).await;
    assert_eq!(m.answers.len(), 1);
    assert!(
        m.answers[0]
            .data
            .to_string()
            .starts_with("ns.dns.cluster.local. hostmaster.cluster.local."),
        "{}",
        m.answers[0].data
    );
    let m = c.ask("cluster.local.", RecordType::NS).await;
    assert_eq!(answers(&m), ["NS ns.dns.cluster.local."]);
    let glue: Vec<String> = m.additionals.iter().map(|r| r.data.to_string()).collect();
    assert_eq!(glue, ["10.96.0.10"]);
    let m = c.ask("ns.dns.cluster.local.", RecordType::A).await;
    assert_eq!(a_records(&m), ["10.96.0.10"]);
    let m = c.ask("dns-version.cluster.local.", RecordType::TXT).await;
    assert_eq!(answers(&m), ["TXT 1.1.0"]);

    // NXDOMAIN (SOA for negative caching) and NODATA.
    let m = c.ask(&format!("nope.default.{D}"), RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(m.metadata.authoritative);
    assert!(m.answers.is_empty());
    assert_eq!(m.authorities.len(), 1);
    assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
    assert_eq!(m.authorities[0].ttl, 5);
    let m = c.ask(&format!("web.default.{D}"), RecordType::MX).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
    let m = c.ask(&format!("default.{D}"), RecordType::A).await;
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NoError,
        "empty non-terminal"
    );
}

/// The same names through hickory-resolver, a real stub resolver.
#[tokio::test]
async fn a_stub_resolver_resolves_cluster_names() {
    let upstream = FakeUpstream::start(&[]).await;
    let c = Cluster::start(vec![upstream.addr], Duration::from_secs(2)).await;
    let svc = c
        .create_service(
            "default",
            json!({"metadata": {"name": "redis"},
                   "spec": {"ports": [{"name": "redis", "port": 6379}]}}),
        )
        .await;
    let ip: std::net::IpAddr = svc.spec.unwrap().cluster_ip.unwrap().parse().unwrap();
    c.within_1s(
        &format!("redis.default.{D}"),
        RecordType::A,
        "service",
        |m| !m.answers.is_empty(),
    )
    .await;

    let r = c.resolver();
    let ips: Vec<_> = r
        .lookup_ip(format!("redis.default.{D}"))
        .await
        .unwrap()
        .iter()
        .collect();
    assert_eq!(ips, [ip]);
    let srv = r
        .srv_lookup(format!("_redis._tcp.redis.default.{D}"))
        .await
        .unwrap();
    let srv: Vec<String> = srv.answers().iter().map(|r| r.data.to_string()).collect();
    assert_eq!(srv, [format!("0 100 6379 redis.default.{D}")]);
    let ptr = r.reverse_lookup(ip).await.unwrap();
    let ptr: Vec<String> = ptr.answers().iter().map(|r| r.data.to_string()).collect();
    assert_eq!(ptr, [format!("redis.default.{D}")]);
    let err = r
        .lookup_ip(format!("nothere.default.{D}"))
        .await
        .unwrap_err();
    assert!(err.is_nx_domain(), "{err}");
    let soa = err.into_soa().expect("NXDOMAIN carries the SOA");
    assert_eq!(soa.name.to_ascii(), "cluster.local.");
    assert_eq!(soa.data.minimum, 5);

    // As a pod resolves with the search path the kubelet writes: `redis` from its own
    // namespace, `redis.default` from any.
    c.create_namespace("other").await;
    for (ns, short) in [
        ("default", "redis"),
        ("default", "redis.default"),
        ("other", "redis.default"),
    ] {
        let ips: Vec<_> = c
            .pod_resolver(ns)
            .lookup_ip(short)
            .await
            .unwrap_or_else(|e| panic!("{short} from {ns}: {e}"))
            .iter()
            .collect();
        assert_eq!(ips, [ip], "{short} from {ns}");
    }
    // Not found in namespace other: the three search names are NXDOMAIN from the cluster
    // zone, and only the bare name `redis.` goes to the upstream.
    let before = upstream.questions.load(Ordering::SeqCst);
    let err = c
        .pod_resolver("other")
        .lookup_ip("redis")
        .await
        .unwrap_err();
    assert!(err.is_nx_domain(), "redis is not in namespace other: {err}");
    let forwarded = upstream.questions.load(Ordering::SeqCst) - before;
    assert!(
        (1..=2).contains(&forwarded),
        "only `redis.` (A, maybe AAAA) is forwarded: {forwarded}"
    );
}

/// IPv6: AAAA for a headless Service's IPv6 endpoints and for pods, PTR under ip6.arpa.
#[tokio::test]
async fn ipv6_endpoints_and_pods() {
    let c = Cluster::start(vec![], Duration::from_secs(1)).await;
    c.create_service(
        "default",
        json!({"metadata": {"name": "v6"},
               "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 80}]}}),
    )
    .await;
    c.create_slice(
        "default",
        json!({"metadata": {"name": "v6-a", "labels": {"kubernetes.io/service-name": "v6"}},
               "addressType": "IPv6",
               "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
               "endpoints": [
                   {"addresses": ["fd00:10:244::5"], "hostname": "web-0", "conditions": {"ready": true}},
                   {"addresses": ["fd00:10:244::6"], "conditions": {"ready": true}}]}),
    )
    .await;
    c.create_pod(
        "default",
        json!({"metadata": {"name": "p6"},
               "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
        json!({"phase": "Running", "podIP": "fd00:10:244::9", "podIPs": [{"ip": "fd00:10:244::9"}]}),
    )
    .await;
    let name = format!("v6.default.{D}");
    c.within_1s(&name, RecordType::AAAA, "IPv6 endpoints", |m| {
        m.answers.len() == 2
    })
    .await;
    let aaaa = |m: &hickory_server::proto::op::Message| {
        let mut v: Vec<String> = m
            .answers
            .iter()
            .filter(|r| r.record_type() == RecordType::AAAA)
            .map(|r| r.data.to_string())
            .collect();
        v.sort();
        v
    };
    let m = c.ask(&name, RecordType::AAAA).await;
    assert_eq!(aaaa(&m), ["fd00:10:244::5", "fd00:10:244::6"]);
    // No IPv4 endpoints: NODATA for A.
    let m = c.ask(&name, RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    let m = c
        .ask(&format!("web-0.v6.default.{D}"), RecordType::AAAA)
        .await;
    assert_eq!(aaaa(&m), ["fd00:10:244::5"]);
    let m = c
        .ask(&format!("fd00-10-244--6.v6.default.{D}"), RecordType::AAAA)
        .await;
    assert_eq!(aaaa(&m), ["fd00:10:244::6"]);
    let m = c
        .ask(&format!("_http._tcp.v6.default.{D}"), RecordType::SRV)
        .await;
    assert_eq!(m.answers.len(), 2);
    assert_eq!(m.additionals.len(), 2, "the targets' AAAA records");

    // The pod's own name, and PTR in ip6.arpa.
    c.within_1s(
        "fd00-10-244--9.default.pod.cluster.local.",
        RecordType::AAAA,
        "IPv6 pod",
        |m| !m.answers.is_empty(),
    )
    .await;
    let ptr = c
        .resolver()
        .reverse_lookup("fd00:10:244::5".parse::<std::net::IpAddr>().unwrap())
        .await
        .unwrap();
    let ptr: Vec<String> = ptr.answers().iter().map(|r| r.data.to_string()).collect();
    assert_eq!(ptr, [format!("web-0.v6.default.{D}")]);
}
