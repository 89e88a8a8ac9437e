//! The DNS protocol side: UDP and TCP, EDNS0, truncation of large answers (and the stub
//! resolver's retry over TCP), malformed packets ignored without harm, clean shutdown.

use std::time::Duration;

use hickory_server::proto::op::{MessageType, ResponseCode};
use hickory_server::proto::rr::RecordType;
use serde_json::json;

use crate::harness::{Cluster, a_records, exchange_tcp, exchange_udp, query, udp_raw};

/// A headless Service with 80 ready endpoints: ~1.3 KB of A records.
async fn big_service(c: &Cluster) -> &'static str {
    c.create_service(
        "default",
        json!({"metadata": {"name": "big"}, "spec": {"clusterIP": "None"}}),
    )
    .await;
    let endpoints: Vec<_> = (1..=80)
        .map(|i| json!({"addresses": [format!("10.250.0.{i}")]}))
        .collect();
    c.create_slice(
        "default",
        json!({"metadata": {"name": "big-1", "labels": {"kubernetes.io/service-name": "big"}},
               "addressType": "IPv4", "endpoints": endpoints}),
    )
    .await;
    let name = "big.default.svc.cluster.local.";
    c.within_1s(name, RecordType::A, "big service", |m| {
        m.metadata.truncation || m.answers.len() == 80
    })
    .await;
    name
}

#[tokio::test]
async fn udp_tcp_edns_and_truncation() {
    let c = Cluster::start(vec![], Duration::from_secs(1)).await;
    let name = big_service(&c).await;

    // Plain UDP (no EDNS): at most 512 bytes, TC set.
    let (bytes, _) = udp_raw(
        c.udp,
        &query(name, RecordType::A, None).to_vec().unwrap(),
        Duration::from_secs(5),
    )
    .await
    .expect("an answer");
    assert!(bytes.len() <= 512, "{} bytes", bytes.len());
    let m = hickory_server::proto::op::Message::from_vec(&bytes).unwrap();
    assert!(m.metadata.truncation);
    assert!(m.answers.len() < 80);
    assert!(m.edns.is_none());

    // EDNS0 with a 4096-byte buffer: everything over UDP, and an OPT record back.
    let m = exchange_udp(c.udp, &query(name, RecordType::A, Some(4096))).await;
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 80);
    assert_eq!(m.edns.as_ref().map(|e| e.version()), Some(0));
    // EDNS0 with 1232 bytes: truncated again.
    let m = exchange_udp(c.udp, &query(name, RecordType::A, Some(1232))).await;
    assert!(m.metadata.truncation);

    // TCP: the whole answer; and several questions on one connection.
    let m = c.ask_tcp(name, RecordType::A).await;
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 80);
    let m = exchange_tcp(c.tcp, &query("cluster.local.", RecordType::SOA, Some(1232))).await;
    assert_eq!(m.answers.len(), 1);
    assert!(m.edns.is_some());

    // The stub resolver gets TC over UDP and retries over TCP.
    let ips: Vec<_> = c.resolver().lookup_ip(name).await.unwrap().iter().collect();
    assert_eq!(ips.len(), 80);
}

#[tokio::test]
async fn malformed_packets_are_ignored() {
    let c = Cluster::start(vec![], Duration::from_secs(1)).await;
    let wait = Duration::from_millis(300);
    c.create_service(
        "default",
        json!({"metadata": {"name": "probe"}, "spec": {"ports": [{"port": 80}]}}),
    )
    .await;
    let name = "probe.default.svc.cluster.local.";
    c.within_1s(name, RecordType::A, "probe service", |m| {
        !m.answers.is_empty()
    })
    .await;

    let good = query(name, RecordType::A, None);
    let good_bytes = good.to_vec().unwrap();
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("short header", vec![0x12, 0x34, 0x01]),
        (
            "random",
            (0..200u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
        ),
        ("question count past the end", {
            let mut b = good_bytes[..12].to_vec();
            b[5] = 9;
            b
        }),
        (
            "truncated question",
            good_bytes[..good_bytes.len() - 3].to_vec(),
        ),
        ("label pointer loop", {
            let mut b = good_bytes[..12].to_vec();
            b.extend_from_slice(&[0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01]);
            b
        }),
        ("label longer than the packet", {
            let mut b = good_bytes[..12].to_vec();
            b.extend_from_slice(&[63, b'a', b'b']);
            b
        }),
    ];
    // A response sent to the server (reflection): never answered.
    let mut response = good.clone();
    response.metadata.message_type = MessageType::Response;
    cases.push(("a response", response.to_vec().unwrap()));

    for (what, bytes) in &cases {
        match udp_raw(c.udp, bytes, wait).await {
            None => {}
            Some((reply, _)) => {
                // A parseable header may get FORMERR back, never an answer.
                let m = hickory_server::proto::op::Message::from_vec(&reply)
                    .unwrap_or_else(|e| panic!("{what}: unparseable reply: {e}"));
                assert_eq!(
                    m.metadata.response_code,
                    ResponseCode::FormErr,
                    "{what}: {m}"
                );
                assert!(m.answers.is_empty(), "{what}");
            }
        }
        assert!(c.running(), "{what}: rkube-dns stopped");
    }
    // Over TCP too: garbage, then a close.
    {
        use tokio::io::AsyncWriteExt;
        let mut s = tokio::net::TcpStream::connect(c.tcp).await.unwrap();
        s.write_all(&[0, 5, 1, 2, 3, 4, 5]).await.unwrap();
        s.write_all(&[0xff, 0xff, 0, 0]).await.unwrap();
        drop(s);
    }
    tokio::time::sleep(Duration::from_millis(50)).await;

    // Still serving, over both transports.
    let m = exchange_udp(c.udp, &good).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(a_records(&m).len(), 1, "{m}");
    let m = exchange_tcp(c.tcp, &good).await;
    assert_eq!(a_records(&m).len(), 1);
    let (_, metrics) = c.http_get("/metrics").await;
    assert!(
        metrics.contains("rkube_dns_responses_total{proto=\"udp\",rcode=\"NOERROR\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn health_endpoints_and_clean_shutdown() {
    let mut c = Cluster::start(vec![], Duration::from_secs(1)).await;
    assert_eq!(c.http_get("/healthz").await, (200, "ok".to_string()));
    assert_eq!(c.http_get("/readyz").await.0, 200);
    let (status, body) = c.http_get("/metrics").await;
    assert_eq!(status, 200);
    assert!(body.contains("rkube_dns_ready 1"), "{body}");
    assert!(body.contains("rkube_dns_zone_builds_total"), "{body}");
    c.stop().await.expect("run returns Ok on shutdown");
    // The sockets are closed: nothing answers any more.
    let q = query("cluster.local.", RecordType::SOA, None);
    assert!(
        udp_raw(c.udp, &q.to_vec().unwrap(), Duration::from_millis(300))
            .await
            .is_none()
    );
    assert!(tokio::net::TcpStream::connect(c.tcp).await.is_err());
}
