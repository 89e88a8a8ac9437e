//! Proof tests: a real API server in-process, rkube-proxy programming a "node" network namespace,
//! a client namespace outside the cluster and three backend namespaces answering their own names —
//! all created (and removed) by the test. The same scenarios run in nftables and userspace mode.
//! Needs root, `ip` and `nft`.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use rkube_proxy::health::Metrics;
use rkube_proxy::netns::Netns;
use rkube_proxy::testnet::{self, CLIENT_IP, NODE_IP, NODE_POD_IP, Topology};
use rkube_proxy::{Config, Mode};
use rkube_testkit::apiserver::{Backend, Identity, TestServer};
use serde_json::json;

const NODE: &str = "node-1";
const PORT: u16 = 8080;
const NS: &str = "default";

struct Proxy {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), rkube_proxy::Error>>,
    health: SocketAddr,
    metrics: Arc<Metrics>,
}

impl Proxy {
    async fn start(server: &TestServer, netns: Netns, mode: Mode, routes: bool) -> Self {
        Self::start_with(server, netns, mode, routes, |_| {}).await
    }

    async fn start_with(
        server: &TestServer,
        netns: Netns,
        mode: Mode,
        routes: bool,
        adjust: impl FnOnce(&mut Config),
    ) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .try_init();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let health = listener.local_addr().unwrap();
        // kube-proxy's identity, system:kube-proxy (the system:node-proxier role).
        let mut cfg = Config::new(server.client_as(&Identity::proxy()).await, NODE);
        cfg.mode = Some(mode);
        cfg.netns = netns;
        cfg.health_listener = Some(listener);
        cfg.min_sync_interval = Duration::from_millis(20);
        cfg.routes = routes;
        let metrics = Arc::new(Metrics::new(mode.as_str(), Duration::from_secs(300)));
        cfg.metrics = Some(metrics.clone());
        adjust(&mut cfg);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(rkube_proxy::run(cfg, async {
            let _ = rx.await;
        }));
        Self {
            stop: Some(tx),
            task,
            health,
            metrics,
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let r = tokio::time::timeout(Duration::from_secs(20), &mut self.task)
            .await
            .expect("proxy did not stop");
        r.unwrap().unwrap();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn create_service(server: &TestServer, name: &str) -> (Ipv4Addr, u16) {
    let api: Api<Service> = Api::namespaced(server.client().await, NS);
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "type": "NodePort",
            "selector": {"app": name},
            "ports": [
                {"name": "http", "port": 80, "targetPort": PORT, "protocol": "TCP"},
                {"name": "dns", "port": 53, "targetPort": PORT, "protocol": "UDP"}
            ]
        }
    }))
    .unwrap();
    let svc = api.create(&PostParams::default(), &svc).await.unwrap();
    let spec = svc.spec.unwrap();
    let ip: Ipv4Addr = spec.cluster_ip.unwrap().parse().unwrap();
    let node_port = spec.ports.unwrap()[0].node_port.unwrap();
    (ip, u16::try_from(node_port).unwrap())
}

/// An EndpointSlice with backend `i` as endpoint `i`: (ready, node name).
fn slice_json(name: &str, eps: &[(bool, &str)]) -> serde_json::Value {
    let endpoints: Vec<_> = eps
        .iter()
        .enumerate()
        .map(|(i, (r, node))| {
            json!({
                "addresses": [testnet::backend_ip(i).to_string()],
                "conditions": {"ready": r},
                "nodeName": node,
            })
        })
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": format!("{name}-abc"), "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [
            {"name": "http", "port": PORT, "protocol": "TCP"},
            {"name": "dns", "port": PORT, "protocol": "UDP"}
        ]
    })
}

/// Writes the Service's slice: backend `i` is endpoint `i`, on this node, ready as given.
async fn put_slice(server: &TestServer, name: &str, ready: &[bool]) {
    let eps: Vec<(bool, &str)> = ready.iter().map(|r| (*r, NODE)).collect();
    put_slice_on(server, name, &eps).await;
}

/// Writes the Service's slice: backend `i` is endpoint `i`, (ready, node) as given.
async fn put_slice_on(server: &TestServer, name: &str, eps: &[(bool, &str)]) {
    let api: Api<EndpointSlice> = Api::namespaced(server.client().await, NS);
    let body = slice_json(name, eps);
    api.patch(
        &format!("{name}-abc"),
        &PatchParams::apply("proxy-test").force(),
        &Patch::Apply(&body),
    )
    .await
    .unwrap();
}

/// `n` GETs from the client: how many each backend answered (errors under "error: …").
async fn spread(ns: &Netns, addr: SocketAddr, n: usize) -> BTreeMap<String, usize> {
    let ns = ns.clone();
    tokio::task::spawn_blocking(move || {
        ns.run(|| {
            let mut counts = BTreeMap::new();
            for _ in 0..n {
                let who = testnet::http_get(addr, Duration::from_secs(2))
                    .unwrap_or_else(|e| format!("error: {e}"));
                *counts.entry(who).or_default() += 1;
            }
            counts
        })
        .unwrap()
    })
    .await
    .unwrap()
}

/// Retries a GET until it answers (the proxy has synced) or 10 s pass.
async fn wait_answer(ns: &Netns, addr: SocketAddr) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ns2 = ns.clone();
        let r = tokio::task::spawn_blocking(move || {
            ns2.run(|| testnet::http_get(addr, Duration::from_millis(500)))
                .unwrap()
        })
        .await
        .unwrap();
        match r {
            Ok(body) => return body,
            Err(e) if Instant::now() > deadline => panic!("{addr} never answered: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// `GET path` from inside `ns`.
async fn get_path(ns: &Netns, addr: SocketAddr, path: &'static str) -> std::io::Result<String> {
    in_ns(ns, move || {
        testnet::http_get_path(addr, path, Duration::from_secs(2))
    })
    .await
}

/// Repeats `probe` until it returns `Some` or `within` passes (then panics with `what` and the
/// last value seen).
async fn eventually<T: std::fmt::Debug, F: Future<Output = Result<T, String>>>(
    what: &str,
    within: Duration,
    mut probe: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        match probe().await {
            Ok(v) => return v,
            Err(last) if Instant::now() > deadline => {
                panic!("{what}: still {last} after {within:?}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn in_ns<R: Send + 'static>(ns: &Netns, f: impl FnOnce() -> R + Send + 'static) -> R {
    let ns = ns.clone();
    tokio::task::spawn_blocking(move || ns.run(f).unwrap())
        .await
        .unwrap()
}

async fn http(addr: SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out.split_once("\r\n\r\n").unwrap().1.to_string();
    (status, body)
}

fn assert_even(counts: &BTreeMap<String, usize>, total: usize, backends: &[&str]) {
    assert_eq!(counts.len(), backends.len(), "answers: {counts:?}");
    for b in backends {
        let c = counts.get(*b).copied().unwrap_or(0);
        let share = c as f64 / total as f64;
        assert!(
            (0.20..=0.47).contains(&share),
            "{b} got {c} of {total} ({share:.2}); all: {counts:?}"
        );
    }
}

async fn scenarios(mode: Mode) {
    let topo = Topology::create(
        match mode {
            Mode::Nftables => "nft",
            Mode::Userspace => "us",
        },
        3,
        PORT,
    )
    .unwrap();
    let server = TestServer::start(Backend::Embedded).await;
    let (vip, node_port) = create_service(&server, "web").await;
    if mode == Mode::Userspace {
        // userspace mode listens where the ClusterIP is local: an alias on the node's loopback.
        topo.node
            .ip(&["addr", "add", &format!("{vip}/32"), "dev", "lo"])
            .unwrap();
    }
    put_slice(&server, "web", &[true, true, true]).await;
    let proxy = Proxy::start(&server, topo.node.netns(), mode, false).await;
    let client = topo.client.netns();
    let cluster = SocketAddr::from((vip, 80));
    let dns = SocketAddr::from((vip, 53));
    wait_answer(&client, cluster).await;

    // Even spread over all three.
    let counts = spread(&client, cluster, 300).await;
    assert_even(&counts, 300, &["backend-0", "backend-1", "backend-2"]);

    // A client outside the cluster CIDR is masqueraded: the pod sees the node's address.
    let seen = get_path(&client, cluster, "/ip").await.unwrap();
    assert_eq!(
        seen,
        NODE_POD_IP.to_string(),
        "source seen via the ClusterIP"
    );

    // UDP through the ClusterIP.
    let answer = in_ns(&client, move || {
        testnet::udp_ask(dns, Duration::from_secs(2))
    })
    .await
    .unwrap();
    assert!(answer.starts_with("backend-"), "udp answer {answer:?}");

    // NodePort from outside the node.
    let np = SocketAddr::from((NODE_IP, node_port));
    let counts = spread(&client, np, 30).await;
    assert!(
        counts.keys().all(|k| k.starts_with("backend-")),
        "nodeport answers: {counts:?}"
    );

    // Hairpin: a backend reaching its own Service, sometimes itself.
    let b0 = topo.backends[0].netns();
    let counts = spread(&b0, cluster, 60).await;
    assert!(
        counts.keys().all(|k| k.starts_with("backend-")) && counts.contains_key("backend-0"),
        "hairpin answers: {counts:?}"
    );

    // An external IP (an address of the node on the client's link) reaches the Service too.
    let external = Ipv4Addr::new(192, 168, 77, 100);
    topo.node
        .ip(&["addr", "add", &format!("{external}/32"), "dev", "vclient"])
        .unwrap();
    let api: Api<Service> = Api::namespaced(server.client().await, NS);
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"externalIPs": [external.to_string()]}})),
    )
    .await
    .unwrap();
    let answer = wait_answer(&client, SocketAddr::from((external, 80))).await;
    assert!(
        answer.starts_with("backend-"),
        "external IP answer {answer:?}"
    );

    // A UDP flow (one client socket, so one conntrack entry) that landed on backend-2.
    let udp_flow = in_ns(&client, move || {
        for _ in 0..200 {
            let s = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
            s.connect(dns).unwrap();
            if testnet::udp_ask_on(&s, Duration::from_secs(2))
                .ok()
                .as_deref()
                == Some("backend-2")
            {
                return s;
            }
        }
        panic!("no UDP flow ever reached backend-2");
    })
    .await;

    // backend-2 turns unready: within 1 s nothing reaches it.
    put_slice(&server, "web", &[true, true, false]).await;
    let t0 = Instant::now();
    tokio::time::sleep_until((t0 + Duration::from_secs(1)).into()).await;
    let counts = spread(&client, cluster, 100).await;
    assert_eq!(
        counts.keys().collect::<Vec<_>>(),
        ["backend-0", "backend-1"],
        "after unready: {counts:?}"
    );
    // The existing UDP flow moves too (its stale conntrack entry, or userspace flow, is gone):
    // without that it would stay on backend-2 for 30 s or more.
    let udp_flow = Arc::new(udp_flow);
    let moved = eventually(
        "UDP flow on the unready backend",
        Duration::from_secs(3),
        || {
            let s = udp_flow.clone();
            async move {
                let r = tokio::task::spawn_blocking(move || {
                    testnet::udp_ask_on(&s, Duration::from_millis(300))
                })
                .await
                .unwrap();
                match r {
                    Ok(who) if who != "backend-2" => Ok(who),
                    other => Err(format!("{other:?}")),
                }
            }
        },
    )
    .await;
    assert!(
        ["backend-0", "backend-1"].contains(&moved.as_str()),
        "{moved}"
    );

    // ClientIP affinity keeps the client on one backend.
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"sessionAffinity": "ClientIP",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}}})),
    )
    .await
    .unwrap();
    let pinned = eventually("ClientIP affinity", Duration::from_secs(10), || async {
        let counts = spread(&client, cluster, 20).await;
        if counts.len() == 1 {
            Ok(counts)
        } else {
            Err(format!("{counts:?}"))
        }
    })
    .await;
    let counts = spread(&client, cluster, 40).await;
    assert_eq!(
        counts.keys().collect::<Vec<_>>(),
        pinned.keys().collect::<Vec<_>>()
    );
    assert!(counts.keys().all(|k| k.starts_with("backend-")));
    let counts = spread(&client, np, 20).await;
    assert_eq!(counts.len(), 1, "nodeport with affinity: {counts:?}");
    if mode == Mode::Nftables {
        // The kernel's affinity entry for this client carries the Service's timeout.
        let out = topo
            .node
            .netns()
            .command(
                "nft",
                &["-j", "list", "map", "ip", "rkube", "affinity"],
                b"",
            )
            .unwrap();
        assert!(out.status.success());
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let timeouts: Vec<&serde_json::Value> = v["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| i["map"]["elem"].as_array())
            .flatten()
            .filter(|e| e[0]["elem"]["val"]["concat"][0] == CLIENT_IP.to_string())
            .map(|e| &e[0]["elem"]["timeout"])
            .collect();
        assert!(
            !timeouts.is_empty() && timeouts.iter().all(|t| **t == 60),
            "affinity entries: {v}"
        );
    }

    // Health and metrics.
    let (status, body) = http(proxy.health, "/healthz").await;
    assert_eq!(status, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["mode"], mode.as_str());
    assert!(health["lastUpdated"].as_str().is_some());
    let (status, text) = http(proxy.health, "/metrics").await;
    assert_eq!(status, 200);
    // `web` and the API server's own `kubernetes` Service (a ClusterIP without endpoints here).
    assert!(text.contains("rkube_proxy_services 2\n"), "{text}");
    assert!(text.contains("rkube_proxy_sync_duration_seconds_count"));
    assert!(proxy.metrics.last_sync().is_some());

    // No ready endpoints: refused quickly, not a timeout — TCP and UDP.
    put_slice(&server, "web", &[false, false, false]).await;
    // (A connection accepted just before the change may still be answered or cut off; a
    // black-holing proxy would time out every time and never be refused.)
    let elapsed = eventually("service without endpoints", Duration::from_secs(10), || {
        in_ns(&client, move || {
            let t = Instant::now();
            match testnet::http_get(cluster, Duration::from_secs(5)) {
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Ok(t.elapsed()),
                other => Err(format!("{other:?} after {:?}", t.elapsed())),
            }
        })
    })
    .await;
    assert!(
        elapsed < Duration::from_secs(2),
        "refusal took {elapsed:?}, as long as a timeout"
    );
    eventually(
        "UDP without endpoints refused",
        Duration::from_secs(10),
        || {
            in_ns(&client, move || {
                match testnet::udp_ask(dns, Duration::from_secs(2)) {
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            })
        },
    )
    .await;

    // Endpoints back, then a clean shutdown removes the dataplane.
    put_slice(&server, "web", &[true, true, true]).await;
    wait_answer(&client, cluster).await;
    proxy.stop().await;
    if mode == Mode::Nftables {
        let out = topo
            .node
            .netns()
            .command("nft", &["list", "table", "ip", "rkube"], b"")
            .unwrap();
        assert!(!out.status.success(), "table still there after shutdown");
    }
    let r = in_ns(&client, move || {
        testnet::http_get(cluster, Duration::from_millis(500))
    })
    .await;
    assert!(
        r.is_err(),
        "the service still answers after shutdown: {r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nftables_mode_scenarios() {
    scenarios(Mode::Nftables).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn userspace_mode_scenarios() {
    scenarios(Mode::Userspace).await;
}

/// `externalTrafficPolicy: Local` and `--nodeport-addresses`: the NodePort reaches only this
/// node's endpoints (keeping the client's address in nftables mode), stops when none is left here
/// while the ClusterIP goes on, and answers only on node addresses in the given range.
async fn local_traffic_policy(mode: Mode) {
    let topo = Topology::create(
        match mode {
            Mode::Nftables => "lnft",
            Mode::Userspace => "lus",
        },
        2,
        PORT,
    )
    .unwrap();
    let server = TestServer::start(Backend::Embedded).await;
    let (vip, node_port) = create_service(&server, "loc").await;
    let api: Api<Service> = Api::namespaced(server.client().await, NS);
    api.patch(
        "loc",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"externalTrafficPolicy": "Local"}})),
    )
    .await
    .unwrap();
    if mode == Mode::Userspace {
        topo.node
            .ip(&["addr", "add", &format!("{vip}/32"), "dev", "lo"])
            .unwrap();
    }
    put_slice_on(&server, "loc", &[(true, NODE), (true, "node-2")]).await;
    let proxy = Proxy::start_with(&server, topo.node.netns(), mode, false, |cfg| {
        cfg.nodeport_cidrs = vec!["192.168.77.0/24".parse().unwrap()];
    })
    .await;
    let client = topo.client.netns();
    let np = SocketAddr::from((NODE_IP, node_port));
    let cluster = SocketAddr::from((vip, 80));
    wait_answer(&client, np).await;

    let counts = spread(&client, np, 30).await;
    assert_eq!(
        counts.keys().collect::<Vec<_>>(),
        ["backend-0"],
        "NodePort with a Local policy: {counts:?}"
    );
    if mode == Mode::Nftables {
        let seen = get_path(&client, np, "/ip").await.unwrap();
        assert_eq!(
            seen,
            CLIENT_IP.to_string(),
            "source seen via a Local NodePort"
        );
    }
    let counts = spread(&client, cluster, 30).await;
    assert_eq!(
        counts.keys().collect::<Vec<_>>(),
        ["backend-0", "backend-1"],
        "the ClusterIP keeps every endpoint: {counts:?}"
    );

    // The node's pod-bridge address is outside --nodeport-addresses: no NodePort there.
    let b1 = topo.backends[1].netns();
    let r = in_ns(&b1, move || {
        testnet::http_get(
            SocketAddr::from((NODE_POD_IP, node_port)),
            Duration::from_millis(500),
        )
    })
    .await;
    assert!(r.is_err(), "NodePort answered on {NODE_POD_IP}: {r:?}");

    // backend-0 moves to another node: the NodePort has no local endpoint left.
    put_slice_on(&server, "loc", &[(true, "node-2"), (true, "node-2")]).await;
    let err = eventually(
        "Local NodePort without local endpoints",
        Duration::from_secs(10),
        || {
            in_ns(&client, move || {
                match testnet::http_get(np, Duration::from_millis(500)) {
                    Ok(body) => Err(format!("answered by {body}")),
                    Err(e) => Ok(e),
                }
            })
        },
    )
    .await;
    if mode == Mode::Nftables {
        // Dropped, as kube-proxy does, rather than refused.
        assert!(
            matches!(
                err.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ),
            "{err}"
        );
    }
    let counts = spread(&client, cluster, 20).await;
    assert!(
        counts.keys().all(|k| k.starts_with("backend-")),
        "ClusterIP after the move: {counts:?}"
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nftables_local_traffic_policy() {
    local_traffic_policy(Mode::Nftables).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn userspace_local_traffic_policy() {
    local_traffic_policy(Mode::Userspace).await;
}

/// Incremental changes after start: a second Service appears and works, the first is deleted
/// and stops; a periodic full re-sync repairs a table someone flushed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_and_periodic_full_resync() {
    let topo = Topology::create("inc", 2, PORT).unwrap();
    let server = TestServer::start(Backend::Embedded).await;
    let (vip_a, _) = create_service(&server, "a").await;
    put_slice(&server, "a", &[true, false]).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let health = listener.local_addr().unwrap();
    // kube-proxy's identity, system:kube-proxy (the system:node-proxier role).
    let mut cfg = Config::new(server.client_as(&Identity::proxy()).await, NODE);
    cfg.mode = Some(Mode::Nftables);
    cfg.netns = topo.node.netns();
    cfg.health_listener = Some(listener);
    cfg.min_sync_interval = Duration::from_millis(20);
    cfg.full_resync_interval = Duration::from_secs(2);
    cfg.routes = false;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(rkube_proxy::run(cfg, async {
        let _ = rx.await;
    }));
    let client = topo.client.netns();
    assert_eq!(
        wait_answer(&client, SocketAddr::from((vip_a, 80))).await,
        "backend-0"
    );

    let (vip_b, _) = create_service(&server, "b").await;
    put_slice(&server, "b", &[false, true]).await;
    assert_eq!(
        wait_answer(&client, SocketAddr::from((vip_b, 80))).await,
        "backend-1"
    );

    // Someone flushes our maps: the next full re-sync (every 2 s here) restores them.
    let out = topo
        .node
        .netns()
        .command("nft", &["flush", "map", "ip", "rkube", "service-ips"], b"")
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        wait_answer(&client, SocketAddr::from((vip_b, 80))).await,
        "backend-1"
    );
    // The periodic full re-syncs applied in place: none failed (a failure is retried by
    // recreating the table, which would hide it from the checks above).
    let text = eventually("a second full sync", Duration::from_secs(10), || async {
        let (_, text) = http(health, "/metrics").await;
        if text.contains("rkube_proxy_syncs_total{kind=\"full\"} 1\n") {
            Err("one full sync".to_string())
        } else {
            Ok(text)
        }
    })
    .await;
    assert!(text.contains("rkube_proxy_sync_errors_total 0\n"), "{text}");

    let api: Api<Service> = Api::namespaced(server.client().await, NS);
    api.delete("a", &Default::default()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = in_ns(&client, move || {
            testnet::http_get(SocketAddr::from((vip_a, 80)), Duration::from_millis(300))
        })
        .await;
        if r.is_err() {
            break;
        }
        assert!(Instant::now() < deadline, "deleted service still answers");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = tx.send(());
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// host-gw routes: another node's podCIDR via its InternalIP; a node on another subnet is
/// skipped; a deleted node's route goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_routes_to_other_nodes() {
    let topo = Topology::create("rt", 0, PORT).unwrap();
    let server = TestServer::start(Backend::Embedded).await;
    let nodes: Api<Node> = Api::all(server.client().await);
    for (name, cidr, ip) in [
        (NODE, "10.244.1.0/24", "192.168.77.1"),
        ("node-2", "10.244.2.0/24", "192.168.77.3"),
        ("node-3", "10.244.3.0/24", "172.31.9.9"),
    ] {
        let n: Node = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
        }))
        .unwrap();
        nodes.create(&PostParams::default(), &n).await.unwrap();
        nodes
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(
                    json!({"status": {"addresses": [{"type": "InternalIP", "address": ip}]}}),
                ),
            )
            .await
            .unwrap();
    }
    let proxy = Proxy::start(&server, topo.node.netns(), Mode::Nftables, true).await;
    let mgr = rkube_proxy::routes::RouteManager::new(topo.node.netns());
    let deadline = Instant::now() + Duration::from_secs(10);
    let want: BTreeMap<ipnet::Ipv4Net, Option<Ipv4Addr>> = [(
        "10.244.2.0/24".parse().unwrap(),
        Some("192.168.77.3".parse().unwrap()),
    )]
    .into();
    loop {
        let got = mgr.installed().unwrap();
        if got == want {
            break;
        }
        assert!(Instant::now() < deadline, "routes: {got:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    nodes.delete("node-2", &Default::default()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !mgr.installed().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "route of a deleted node stays");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    proxy.stop().await;
}

/// `rkube-proxy --cleanup` removes a table left behind.
#[tokio::test]
async fn cleanup_flag_removes_the_table() {
    let ns = testnet::NsGuard::create(&testnet::unique_prefix("clean")).unwrap();
    let mut p = rkube_proxy::nft::NftProxier::new(Default::default(), ns.netns());
    p.sync_full(&Default::default()).unwrap();
    let listed = |ns: &testnet::NsGuard| {
        ns.netns()
            .command("nft", &["list", "table", "ip", "rkube"], b"")
            .unwrap()
            .status
            .success()
    };
    assert!(listed(&ns));
    let out = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            ns.name(),
            env!("CARGO_BIN_EXE_rkube-proxy"),
            "--cleanup",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!listed(&ns));
}

/// Kills a child process when dropped (a failed assertion must not leave it running).
struct ChildGuard(Option<std::process::Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The `rkube-proxy` binary, as an operator runs it: kubeconfig, node name, mode detected
/// (nftables: we are root and `nft` works), a simulated node's namespace; SIGTERM removes the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_runs_detects_nftables_and_cleans_up_on_sigterm() {
    let topo = Topology::create("bin", 1, PORT).unwrap();
    let server = TestServer::start(Backend::Embedded).await;
    let (vip, _) = create_service(&server, "web").await;
    put_slice(&server, "web", &[true]).await;
    let health = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let kubeconfig = server.kubeconfig_for(&Identity::proxy()).await;
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_rkube-proxy"))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["--node-name", NODE, "--netns", topo.node.name()])
        .args(["--healthz-bind-address", &health.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = ChildGuard(Some(child));
    let client = topo.client.netns();
    assert_eq!(
        wait_answer(&client, SocketAddr::from((vip, 80))).await,
        "backend-0"
    );
    // Healthy once the sync that programmed it is recorded.
    let body = eventually("healthz", Duration::from_secs(10), || async {
        match http(health, "/healthz").await {
            (200, body) => Ok(body),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let h: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(h["mode"], "nftables");

    let mut child = guard.0.take().unwrap();
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = eventually("proxy exit after SIGTERM", Duration::from_secs(20), || {
        let r = child.try_wait();
        async move {
            match r {
                Ok(Some(s)) => Ok(s),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;
    let stderr = {
        use std::io::Read;
        let mut s = String::new();
        let _ = child.stderr.take().unwrap().read_to_string(&mut s);
        s
    };
    assert!(status.success(), "exit {status}: {stderr}");
    let out = topo
        .node
        .netns()
        .command("nft", &["list", "table", "ip", "rkube"], b"")
        .unwrap();
    assert!(!out.status.success(), "table still there after SIGTERM");

    // A namespace that does not exist is a clear error, not a crash.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rkube-proxy"))
        .args(["--cleanup", "--netns", "rkpx-no-such-namespace"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not exist"), "{err}");
}

/// The kernel accepts every kind of transaction against a table that already exists: a partial
/// sync that needs a new load-balancing chain, and a periodic full re-sync — both in place (the
/// table keeps its handle, so nothing fell back to recreating it).
#[tokio::test]
async fn nft_partial_and_repeated_full_syncs_apply_in_place() {
    use rkube_proxy::nft::{NftConfig, NftProxier};
    use rkube_proxy::rules::{self, ServiceKey};

    let ns = testnet::NsGuard::create(&testnet::unique_prefix("inplace")).unwrap();
    let table_handle = || {
        let out = ns
            .netns()
            .command("nft", &["-j", "list", "tables"], b"")
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["table"]["name"] == "rkube")
            .map(|t| t["table"]["handle"].clone())
            .expect("no rkube table")
    };
    let objects = |name: &str, ip: &str, proto: &str, n: usize| {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": NS},
            "spec": {"type": "NodePort", "clusterIP": ip, "ports": [
                {"name": "p", "port": 80, "protocol": proto, "nodePort": 30000 + n}]}
        }))
        .unwrap();
        let eps: Vec<_> = (0..n)
            .map(|i| json!({"addresses": [testnet::backend_ip(i).to_string()]}))
            .collect();
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": NS,
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "endpoints": eps,
            "ports": [{"name": "p", "port": PORT, "protocol": proto}]
        }))
        .unwrap();
        (svc, slice)
    };
    let mut p = NftProxier::new(
        NftConfig {
            cluster_cidr: Some(testnet::CLUSTER_CIDR.parse().unwrap()),
            ..Default::default()
        },
        ns.netns(),
    );
    let (a, a_slice) = objects("a", "10.96.0.1", "TCP", 2);
    let all = rules::compute([&a], [&a_slice], NODE);
    assert!(p.sync_full(&all).unwrap().full);
    let handle = table_handle();

    for (name, ip, proto, n) in [("b", "10.96.0.2", "UDP", 3), ("c", "10.96.0.3", "TCP", 5)] {
        let (mut svc, slice) = objects(name, ip, proto, n);
        // Every kind of chain is created in a later transaction: affinity (and its recording
        // chain), NodePort with and without masquerade.
        let spec = svc.spec.as_mut().unwrap();
        if name == "b" {
            spec.session_affinity = Some("ClientIP".into());
        } else {
            spec.external_traffic_policy = Some("Local".into());
        }
        let fronts = rules::service_frontends(&svc, &[&slice], NODE);
        let stats = p
            .sync_changes(&[(ServiceKey::of_service(&svc), fronts)])
            .unwrap();
        assert!(!stats.full);
        assert!(stats.changed_elements > 0);
    }
    // a's endpoint count changes to one no Service used before.
    let (a4, a4_slice) = objects("a", "10.96.0.1", "TCP", 4);
    let fronts = rules::service_frontends(&a4, &[&a4_slice], NODE);
    p.sync_changes(&[(ServiceKey::of_service(&a4), fronts)])
        .unwrap();
    let (b, b_slice) = objects("b", "10.96.0.2", "UDP", 3);
    let (c, c_slice) = objects("c", "10.96.0.3", "TCP", 5);
    let all = rules::compute([&a4, &b, &c], [&a4_slice, &b_slice, &c_slice], NODE);
    for _ in 0..2 {
        assert!(p.sync_full(&all).unwrap().full);
    }
    // Fewer endpoints everywhere: the full sync deletes the chains and maps no longer used.
    let all = rules::compute([&a], [&a_slice], NODE);
    assert!(p.sync_full(&all).unwrap().full);
    assert_eq!(table_handle(), handle, "the table was recreated");
    let out = ns
        .netns()
        .command("nft", &["list", "table", "ip", "rkube"], b"")
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(listing.contains("map endpoints-1 {"), "{listing}");
    assert!(!listing.contains("endpoints-2"), "{listing}");
    assert!(!listing.contains("affinity-record"), "{listing}");
    // a's 2 endpoints, ClusterIP and NodePort.
    assert_eq!(listing.matches(" : 10.244.1.").count(), 4, "{listing}");
}
