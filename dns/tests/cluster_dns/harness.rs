//! The test harness: a real API server in-process, rkube-dns on loopback ports fed by it, a
//! fake upstream resolver on loopback, and DNS clients (raw messages over UDP/TCP, and
//! hickory-resolver as a stub resolver would use it).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::{Resolver, TokioResolver};
use hickory_server::proto::op::{Edns, Message, MessageType, Query, ResponseCode};
use hickory_server::proto::rr::rdata::A;
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use rkube_testkit::apiserver::{Backend, Identity, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// A resolver for names outside the cluster, on loopback: answers `A` for the names it was
/// given, NXDOMAIN for others, and counts the questions it got.
pub struct FakeUpstream {
    pub addr: SocketAddr,
    pub questions: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl FakeUpstream {
    pub async fn start(names: &[(&str, &str)]) -> Self {
        let table: Arc<HashMap<Name, IpAddr>> = Arc::new(
            names
                .iter()
                .map(|(n, ip)| {
                    (
                        Name::from_ascii(n).unwrap().to_lowercase(),
                        ip.parse().unwrap(),
                    )
                })
                .collect(),
        );
        // Both transports on one port: a UDP port the system picked may be taken for TCP by
        // another test, so try again until both bind.
        let (udp, tcp, addr) = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let addr = udp.local_addr().unwrap();
            if let Ok(tcp) = TcpListener::bind(addr).await {
                break (udp, tcp, addr);
            }
        };
        let questions = Arc::new(AtomicUsize::new(0));
        let (t1, q1) = (table.clone(), questions.clone());
        let udp_task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, from)) = udp.recv_from(&mut buf).await else {
                    return;
                };
                q1.fetch_add(1, Ordering::SeqCst);
                if let Some(reply) = answer(&t1, &buf[..n]) {
                    let _ = udp.send_to(&reply, from).await;
                }
            }
        });
        let (t2, q2) = (table, questions.clone());
        let tcp_task = tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = tcp.accept().await else {
                    return;
                };
                let (t, q) = (t2.clone(), q2.clone());
                tokio::spawn(async move {
                    while let Ok(len) = s.read_u16().await {
                        let mut buf = vec![0u8; len as usize];
                        if s.read_exact(&mut buf).await.is_err() {
                            return;
                        }
                        q.fetch_add(1, Ordering::SeqCst);
                        let Some(reply) = answer(&t, &buf) else {
                            return;
                        };
                        let mut out = (reply.len() as u16).to_be_bytes().to_vec();
                        out.extend_from_slice(&reply);
                        if s.write_all(&out).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Self {
            addr,
            questions,
            tasks: vec![udp_task, tcp_task],
        }
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn answer(table: &HashMap<Name, IpAddr>, query: &[u8]) -> Option<Vec<u8>> {
    let q = Message::from_vec(query).ok()?;
    let mut r = Message::response(q.metadata.id, q.metadata.op_code);
    r.metadata.recursion_desired = q.metadata.recursion_desired;
    r.metadata.recursion_available = true;
    let question = q.queries.first()?.clone();
    r.add_query(question.clone());
    match table.get(&question.name().to_lowercase()) {
        Some(IpAddr::V4(v4)) if question.query_type() == RecordType::A => {
            r.add_answer(Record::from_rdata(
                question.name().clone(),
                300,
                RData::A(A(*v4)),
            ));
        }
        Some(_) => {}
        None => r.metadata.response_code = ResponseCode::NXDomain,
    }
    r.to_vec().ok()
}

/// A UDP "upstream" that reads questions and never answers.
pub async fn black_hole() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = s.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut buf = [0u8; 512];
        while s.recv_from(&mut buf).await.is_ok() {}
    });
    (addr, task)
}

/// The API server and rkube-dns serving from it.
pub struct Cluster {
    pub api: TestServer,
    pub client: kube::Client,
    pub udp: SocketAddr,
    pub tcp: SocketAddr,
    pub http: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), rkube_dns::Error>>>,
}

impl Cluster {
    /// Starts both, rkube-dns forwarding to `upstreams` within `timeout`, and waits until the
    /// caches have synced.
    pub async fn start(upstreams: Vec<SocketAddr>, timeout: Duration) -> Self {
        let api = TestServer::start(Backend::Embedded).await;
        let client = api.client().await;
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let udp_addr = udp.local_addr().unwrap();
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tcp_addr = tcp.local_addr().unwrap();
        let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http_addr = http.local_addr().unwrap();
        let config = rkube_dns::Config {
            upstreams,
            upstream_timeout: timeout,
            ..Default::default()
        };
        // Through a kubeconfig, as the binary does, as the cluster DNS's ServiceAccount
        // (kube-system/kube-dns, the system:kube-dns role).
        let kubeconfig = api.kubeconfig_for(&Identity::dns()).await;
        let dns_client = rkube_dns::client_from_kubeconfig(&kubeconfig)
            .await
            .unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(rkube_dns::run(
            config,
            dns_client,
            rkube_dns::Listeners {
                udp: vec![udp],
                tcp: vec![tcp],
                http: Some(http),
            },
            async {
                let _ = rx.await;
            },
        ));
        let c = Self {
            api,
            client,
            udp: udp_addr,
            tcp: tcp_addr,
            http: http_addr,
            stop: Some(tx),
            task: Some(task),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while c.http_get("/readyz").await.0 != 200 {
            assert!(Instant::now() < deadline, "rkube-dns did not become ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        c
    }

    /// Stops rkube-dns and returns what `run` returned.
    pub async fn stop(&mut self) -> Result<(), rkube_dns::Error> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let task = self.task.take().expect("stopped once");
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("rkube-dns stops within 10 s")
            .expect("rkube-dns task")
    }

    /// Whether rkube-dns is still running.
    pub fn running(&self) -> bool {
        self.task.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// GET on the health/metrics endpoint: (status, body).
    pub async fn http_get(&self, path: &str) -> (u16, String) {
        let Ok(mut s) = TcpStream::connect(self.http).await else {
            return (0, String::new());
        };
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        if s.write_all(req.as_bytes()).await.is_err() {
            return (0, String::new());
        }
        let mut out = String::new();
        let _ = s.read_to_string(&mut out).await;
        let status = out
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
        (status, body)
    }

    /// One question over UDP with EDNS0 (1232 bytes).
    pub async fn ask(&self, name: &str, qtype: RecordType) -> Message {
        exchange_udp(self.udp, &query(name, qtype, Some(1232))).await
    }

    /// One question over TCP.
    pub async fn ask_tcp(&self, name: &str, qtype: RecordType) -> Message {
        exchange_tcp(self.tcp, &query(name, qtype, None)).await
    }

    /// A stub resolver (hickory-resolver) using rkube-dns over UDP and TCP, no caching.
    pub fn resolver(&self) -> TokioResolver {
        self.resolver_with(vec![], 1)
    }

    /// A stub resolver configured as the kubelet writes a pod's resolv.conf in `namespace`:
    /// `search <ns>.svc.cluster.local svc.cluster.local cluster.local`, `options ndots:5`.
    pub fn pod_resolver(&self, namespace: &str) -> TokioResolver {
        let search = [
            format!("{namespace}.svc.cluster.local."),
            "svc.cluster.local.".to_string(),
            "cluster.local.".to_string(),
        ]
        .iter()
        .map(|s| Name::from_ascii(s).unwrap())
        .collect();
        self.resolver_with(search, 5)
    }

    fn resolver_with(&self, search: Vec<Name>, ndots: usize) -> TokioResolver {
        let mut conns = vec![ConnectionConfig::udp(), ConnectionConfig::tcp()];
        conns[0].port = self.udp.port();
        conns[1].port = self.tcp.port();
        let ns = NameServerConfig::new(self.udp.ip(), true, conns);
        let mut opts = ResolverOpts::default();
        opts.cache_size = 0;
        opts.timeout = Duration::from_secs(5);
        opts.attempts = 2;
        opts.ndots = ndots;
        let mut b = Resolver::builder_with_config(
            ResolverConfig::from_parts(None, search, vec![ns]),
            TokioRuntimeProvider::default(),
        );
        *b.options_mut() = opts;
        b.build().unwrap()
    }

    /// Polls `name`/`qtype` until `ok` holds (at most 1 s): how long it took.
    pub async fn within_1s(
        &self,
        name: &str,
        qtype: RecordType,
        what: &str,
        ok: impl Fn(&Message) -> bool,
    ) -> Duration {
        let started = Instant::now();
        loop {
            let m = self.ask(name, qtype).await;
            if ok(&m) {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "{what}: not visible within 1 s; last answer for {name} {qtype}: {m}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub fn services(&self, ns: &str) -> Api<Service> {
        Api::namespaced(self.client.clone(), ns)
    }

    pub fn slices(&self, ns: &str) -> Api<EndpointSlice> {
        Api::namespaced(self.client.clone(), ns)
    }

    pub fn pods(&self, ns: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), ns)
    }

    pub async fn create_namespace(&self, ns: &str) {
        let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(self.client.clone());
        api.create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).unwrap(),
        )
        .await
        .unwrap();
    }

    pub async fn create_service(&self, ns: &str, v: serde_json::Value) -> Service {
        self.services(ns)
            .create(&PostParams::default(), &serde_json::from_value(v).unwrap())
            .await
            .unwrap()
    }

    pub async fn delete_service(&self, ns: &str, name: &str) {
        self.services(ns)
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }

    pub async fn create_slice(&self, ns: &str, v: serde_json::Value) -> EndpointSlice {
        self.slices(ns)
            .create(&PostParams::default(), &serde_json::from_value(v).unwrap())
            .await
            .unwrap()
    }

    pub async fn replace_slice(&self, ns: &str, s: &EndpointSlice) -> EndpointSlice {
        let name = s.metadata.name.clone().unwrap();
        self.slices(ns)
            .replace(&name, &PostParams::default(), s)
            .await
            .unwrap()
    }

    /// Creates a pod and sets its status (IPs, phase, readiness) through the status subresource.
    pub async fn create_pod(
        &self,
        ns: &str,
        pod: serde_json::Value,
        status: serde_json::Value,
    ) -> Pod {
        let api = self.pods(ns);
        let p: Pod = api
            .create(
                &PostParams::default(),
                &serde_json::from_value(pod).unwrap(),
            )
            .await
            .unwrap();
        let name = p.metadata.name.clone().unwrap();
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({ "status": status })),
        )
        .await
        .unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// A query message (RD set), with EDNS0 advertising `edns` bytes when given.
pub fn query(name: &str, qtype: RecordType, edns: Option<u16>) -> Message {
    let mut m = Message::query();
    m.metadata.id = rand_id();
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        m.set_edns(e);
    }
    m
}

fn rand_id() -> u16 {
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    NEXT.fetch_add(7919, Ordering::Relaxed) as u16
}

/// Sends raw bytes over UDP and waits up to `wait` for one datagram back.
pub async fn udp_raw(
    server: SocketAddr,
    bytes: impl AsRef<[u8]>,
    wait: Duration,
) -> Option<(Vec<u8>, Duration)> {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    s.connect(server).await.unwrap();
    s.send(bytes.as_ref()).await.unwrap();
    let started = Instant::now();
    let mut buf = vec![0u8; 65535];
    match tokio::time::timeout(wait, s.recv(&mut buf)).await {
        Ok(Ok(n)) => {
            buf.truncate(n);
            Some((buf, started.elapsed()))
        }
        _ => None,
    }
}

/// One message over UDP; the answer must match the ID and be a response.
pub async fn exchange_udp(server: SocketAddr, m: &Message) -> Message {
    let (bytes, _) = udp_raw(server, m.to_vec().unwrap(), Duration::from_secs(10))
        .await
        .unwrap_or_else(|| panic!("no UDP answer from {server} for {m}"));
    let r = Message::from_vec(&bytes).unwrap();
    assert_eq!(r.metadata.id, m.metadata.id);
    assert_eq!(r.metadata.message_type, MessageType::Response);
    r
}

/// One message over TCP (2-byte length prefix).
pub async fn exchange_tcp(server: SocketAddr, m: &Message) -> Message {
    let mut s = TcpStream::connect(server).await.unwrap();
    let bytes = m.to_vec().unwrap();
    let mut out = (bytes.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(&bytes);
    s.write_all(&out).await.unwrap();
    let len = tokio::time::timeout(Duration::from_secs(10), s.read_u16())
        .await
        .expect("TCP answer within 10 s")
        .unwrap();
    let mut buf = vec![0u8; len as usize];
    s.read_exact(&mut buf).await.unwrap();
    let r = Message::from_vec(&buf).unwrap();
    assert_eq!(r.metadata.id, m.metadata.id);
    r
}

/// The answer section as sorted `TYPE rdata` strings.
pub fn answers(m: &Message) -> Vec<String> {
    let mut v: Vec<String> = m
        .answers
        .iter()
        .map(|r| format!("{} {}", r.record_type(), r.data))
        .collect();
    v.sort();
    v
}

/// The A records' addresses, sorted.
pub fn a_records(m: &Message) -> Vec<String> {
    let mut v: Vec<String> = m
        .answers
        .iter()
        .filter(|r| r.record_type() == RecordType::A)
        .map(|r| r.data.to_string())
        .collect();
    v.sort();
    v
}
