//! Names outside the cluster zone go to the upstream resolvers (a fake one on loopback here:
//! there is no internet); an unreachable upstream turns into SERVFAIL within the timeout.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::RecordType;

use crate::harness::{Cluster, FakeUpstream, a_records, black_hole, exchange_tcp, query, udp_raw};

#[tokio::test]
async fn other_names_are_forwarded() {
    let up = FakeUpstream::start(&[("www.example.org.", "192.0.2.80")]).await;
    let c = Cluster::start(vec![up.addr], Duration::from_secs(2)).await;

    let m = c.ask("www.example.org.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(a_records(&m), ["192.0.2.80"]);
    assert!(m.metadata.recursion_available);
    assert!(!m.metadata.authoritative);
    let m = c.ask_tcp("www.example.org.", RecordType::A).await;
    assert_eq!(a_records(&m), ["192.0.2.80"]);
    let m = c.ask("missing.example.org.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);

    // A stub resolver through rkube-dns.
    let ips: Vec<_> = c
        .resolver()
        .lookup_ip("www.example.org.")
        .await
        .unwrap()
        .iter()
        .map(|ip| ip.to_string())
        .collect();
    assert_eq!(ips, ["192.0.2.80"]);

    // PTR names the caches do not know fall through to the upstream.
    let before = up.questions.load(Ordering::SeqCst);
    let m = c.ask("1.2.0.192.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(up.questions.load(Ordering::SeqCst), before + 1);

    // Cluster names never reach the upstream, found or not.
    let before = up.questions.load(Ordering::SeqCst);
    let m = c
        .ask("nope.default.svc.cluster.local.", RecordType::A)
        .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(up.questions.load(Ordering::SeqCst), before);
}

#[tokio::test]
async fn unreachable_upstream_is_servfail_within_the_timeout() {
    // The exact deadline is checked with paused time in the forwarder's unit tests; here the
    // whole server must answer SERVFAIL — not hang — and keep answering cluster names.
    let timeout = Duration::from_secs(2);
    let (hole, _task) = black_hole().await;
    let c = Cluster::start(vec![hole], timeout).await;

    let udp_q = query("www.example.org.", RecordType::A, Some(1232));
    let udp = tokio::spawn(udp_raw(
        c.udp,
        udp_q.to_vec().unwrap(),
        Duration::from_secs(30),
    ));
    // TCP to an upstream that never answers (over UDP): SERVFAIL as well.
    let tcp_q = query("www.example.org.", RecordType::A, None);
    let tcp_addr = c.tcp;
    let tcp = tokio::spawn(async move {
        let started = Instant::now();
        let m = exchange_tcp(tcp_addr, &tcp_q).await;
        (m, started.elapsed())
    });

    // Cluster names are answered meanwhile: before the forwarded questions give up.
    let m = c.ask("cluster.local.", RecordType::SOA).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(
        !udp.is_finished() && !tcp.is_finished(),
        "a cluster answer does not wait for the upstream"
    );

    let (bytes, took) = udp.await.unwrap().expect("an answer, not a hang");
    let m = hickory_server::proto::op::Message::from_vec(&bytes).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert!(took >= timeout - Duration::from_millis(50), "{took:?}");
    assert!(took < timeout * 5, "{took:?}");
    let (m, took) = tcp.await.unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert!(took < timeout * 5, "{took:?}");

    let (_, metrics) = c.http_get("/metrics").await;
    assert!(
        metrics.contains("rkube_dns_forward_failures_total 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn refused_upstream_fails_fast_and_the_next_one_answers() {
    // A port nothing listens on: the kernel refuses at once.
    let dead = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    // A long deadline: the refusal, not the deadline, ends the attempt.
    let timeout = Duration::from_secs(60);
    let c = Cluster::start(vec![dead_addr], timeout).await;
    let q = query("www.example.org.", RecordType::A, Some(1232));
    let (bytes, took) = udp_raw(c.udp, q.to_vec().unwrap(), Duration::from_secs(30))
        .await
        .expect("SERVFAIL long before the deadline");
    let m = hickory_server::proto::op::Message::from_vec(&bytes).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert!(took < timeout / 2, "{took:?}");
    drop(c);

    let up = FakeUpstream::start(&[("www.example.org.", "192.0.2.81")]).await;
    let c = Cluster::start(vec![dead_addr, up.addr], timeout).await;
    let m = c.ask("www.example.org.", RecordType::A).await;
    assert_eq!(a_records(&m), ["192.0.2.81"]);
}
