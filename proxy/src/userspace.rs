//! userspace mode (no root or no `nft`): the proxy itself listens on each Service's ClusterIP or
//! external IP and port where that address is local to the node (a loopback alias, say) and on
//! NodePorts, and forwards each TCP connection or UDP flow to a ready endpoint — round-robin, or
//! the client's previous endpoint under ClientIP affinity. A frontend without endpoints has no
//! listener, so clients are refused at once (TCP reset / ICMP port unreachable).

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

use crate::netns::Netns;
use crate::rules::{Endpoint, Frontend, FrontendKey, Protocol, RuleSet};

/// How long a UDP flow without traffic keeps its endpoint socket.
const UDP_IDLE: Duration = Duration::from_secs(30);
/// How long one connect attempt to an endpoint may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Errors of the userspace mode.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Local addresses could not be listed.
    #[error("listing local addresses: {0}")]
    Addresses(String),
}

/// The mutable part of a frontend, shared with its listener task.
#[derive(Debug)]
struct FrontendState {
    name: String,
    endpoints: RwLock<Vec<Endpoint>>,
    affinity_timeout: RwLock<Option<Duration>>,
    next: AtomicUsize,
    affinity: Mutex<HashMap<IpAddr, (Endpoint, Instant)>>,
}

impl FrontendState {
    fn new(f: &Frontend) -> Self {
        let s = Self {
            name: f.port_name.clone(),
            endpoints: RwLock::new(Vec::new()),
            affinity_timeout: RwLock::new(None),
            next: AtomicUsize::new(0),
            affinity: Mutex::new(HashMap::new()),
        };
        s.update(f);
        s
    }

    fn update(&self, f: &Frontend) {
        *self.endpoints.write().unwrap_or_else(|e| e.into_inner()) = f.endpoints.clone();
        *self
            .affinity_timeout
            .write()
            .unwrap_or_else(|e| e.into_inner()) =
            f.affinity_timeout.map(|t| Duration::from_secs(t.into()));
    }

    /// The endpoints to try for a client, best first: its affinity endpoint if still valid, then
    /// round-robin order.
    fn choose(&self, client: IpAddr) -> Vec<Endpoint> {
        let eps = self
            .endpoints
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if eps.is_empty() {
            return eps;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % eps.len();
        let mut order: Vec<Endpoint> = eps[start..].iter().chain(&eps[..start]).copied().collect();
        let timeout = *self
            .affinity_timeout
            .read()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(t) = timeout {
            let mut aff = self.affinity.lock().unwrap_or_else(|e| e.into_inner());
            aff.retain(|_, (_, at)| at.elapsed() < t);
            if let Some((e, _)) = aff.get(&client)
                && let Some(pos) = order.iter().position(|o| o == e)
            {
                let e = order.remove(pos);
                order.insert(0, e);
            }
        }
        order
    }

    /// Whether `e` is still one of the frontend's endpoints.
    fn has(&self, e: &Endpoint) -> bool {
        self.endpoints
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|x| x.ip == e.ip && x.port == e.port)
    }

    fn record(&self, client: IpAddr, e: Endpoint) {
        let on = self
            .affinity_timeout
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_some();
        if on {
            self.affinity
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(client, (e, Instant::now()));
        }
    }
}

struct Listener {
    state: Arc<FrontendState>,
    task: JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Settings of the userspace mode.
#[derive(Clone, Debug, Default)]
pub struct UserspaceConfig {
    /// NodePorts listen on local addresses in these ranges; empty = on all addresses.
    pub nodeport_cidrs: Vec<Ipv4Net>,
}

/// The userspace dataplane.
pub struct UserspaceProxier {
    cfg: UserspaceConfig,
    netns: Netns,
    listeners: HashMap<(FrontendKey, SocketAddr), Listener>,
}

/// Figures of one userspace sync.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Listeners open after the sync.
    pub listeners: usize,
    /// Frontends whose address is not local (skipped).
    pub not_local: usize,
}

impl UserspaceProxier {
    /// A proxier whose sockets live in `netns`.
    pub fn new(cfg: UserspaceConfig, netns: Netns) -> Self {
        Self {
            cfg,
            netns,
            listeners: HashMap::new(),
        }
    }

    /// Local IPv4 addresses in the node-port ranges (`ip -j -4 addr`).
    fn nodeport_addrs(&self) -> Result<Vec<Ipv4Addr>, Error> {
        let out = self
            .netns
            .command("ip", &["-j", "-4", "addr", "show"], b"")
            .map_err(|e| Error::Addresses(e.to_string()))?;
        if !out.status.success() {
            return Err(Error::Addresses(
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ));
        }
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).map_err(|e| Error::Addresses(e.to_string()))?;
        Ok(local_addrs_from_json(&v)
            .into_iter()
            .filter(|a| self.cfg.nodeport_cidrs.iter().any(|c| c.contains(a)))
            .collect())
    }

    /// Opens, updates and closes listeners to match `rules`.
    pub fn sync(&mut self, rules: &RuleSet) -> Result<SyncStats, Error> {
        let np_addrs: Vec<IpAddr> = if self.cfg.nodeport_cidrs.is_empty() {
            vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED)]
        } else {
            self.nodeport_addrs()?.into_iter().map(IpAddr::V4).collect()
        };
        let mut wanted = BTreeSet::new();
        let mut stats = SyncStats::default();
        for f in rules.values().flatten() {
            if f.endpoints.is_empty() {
                continue;
            }
            let binds: Vec<SocketAddr> = match f.key {
                FrontendKey::Addr { ip, port, .. } => vec![SocketAddr::new(IpAddr::V4(ip), port)],
                FrontendKey::NodePort { port, .. } => {
                    np_addrs.iter().map(|a| SocketAddr::new(*a, port)).collect()
                }
            };
            for addr in binds {
                let id = (f.key, addr);
                if let Some(l) = self.listeners.get(&id) {
                    l.state.update(f);
                    wanted.insert(id);
                    continue;
                }
                let state = Arc::new(FrontendState::new(f));
                let task = match f.key.protocol() {
                    Protocol::Tcp => match self.netns.tcp_listener(addr) {
                        Ok(l) => tokio::spawn(serve_tcp(l, state.clone(), self.netns.clone())),
                        Err(e) => {
                            not_bound(&mut stats, f, addr, &e);
                            continue;
                        }
                    },
                    Protocol::Udp => match self.netns.udp_socket(addr) {
                        Ok(s) => tokio::spawn(serve_udp(s, state.clone(), self.netns.clone())),
                        Err(e) => {
                            not_bound(&mut stats, f, addr, &e);
                            continue;
                        }
                    },
                    Protocol::Sctp => {
                        tracing::debug!(frontend = %f.key, "SCTP is not proxied in userspace mode");
                        continue;
                    }
                };
                tracing::info!(service = %f.port_name, %addr, protocol = %f.key.protocol(), "listening");
                self.listeners.insert(id, Listener { state, task });
                wanted.insert(id);
            }
        }
        self.listeners.retain(|id, l| {
            let keep = wanted.contains(id);
            if !keep {
                tracing::info!(service = %l.state.name, addr = %id.1, "closing listener");
            }
            keep
        });
        stats.listeners = self.listeners.len();
        Ok(stats)
    }

    /// Closes every listener.
    pub fn cleanup(&mut self) {
        self.listeners.clear();
    }
}

fn not_bound(stats: &mut SyncStats, f: &Frontend, addr: SocketAddr, e: &io::Error) {
    if e.kind() == io::ErrorKind::AddrNotAvailable {
        stats.not_local += 1;
        tracing::debug!(service = %f.port_name, %addr, "address not local; not listening");
    } else {
        tracing::warn!(service = %f.port_name, %addr, error = %e, "cannot listen");
    }
}

/// The IPv4 addresses in `ip -j -4 addr show` output.
fn local_addrs_from_json(v: &serde_json::Value) -> Vec<Ipv4Addr> {
    v.as_array()
        .into_iter()
        .flatten()
        .flat_map(|link| link["addr_info"].as_array().into_iter().flatten())
        .filter_map(|a| a["local"].as_str()?.parse().ok())
        .collect()
}

async fn connect(netns: &Netns, e: &Endpoint) -> io::Result<TcpStream> {
    let sock = netns.tcp_socket()?;
    let addr = SocketAddr::new(IpAddr::V4(e.ip), e.port);
    tokio::time::timeout(CONNECT_TIMEOUT, sock.connect(addr))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))?
}

async fn serve_tcp(listener: TcpListener, state: Arc<FrontendState>, netns: Netns) {
    loop {
        let (mut client, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(service = %state.name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let state = state.clone();
        let netns = netns.clone();
        tokio::spawn(async move {
            for e in state.choose(peer.ip()).into_iter().take(3) {
                match connect(&netns, &e).await {
                    Ok(mut upstream) => {
                        state.record(peer.ip(), e);
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                        return;
                    }
                    Err(err) => {
                        tracing::debug!(service = %state.name, endpoint = %e.ip, error = %err,
                            "endpoint connect failed; trying the next");
                    }
                }
            }
            tracing::debug!(service = %state.name, client = %peer, "no endpoint reachable");
        });
    }
}

async fn serve_udp(socket: UdpSocket, state: Arc<FrontendState>, netns: Netns) {
    let socket = Arc::new(socket);
    // The reply tasks hold the frontend socket: they must end with this task (AbortOnDrop) so a
    // closed frontend really stops answering.
    let mut flows: HashMap<SocketAddr, (Arc<UdpSocket>, Endpoint, AbortOnDrop)> = HashMap::new();
    let mut buf = vec![0u8; 65_536];
    let mut last_sweep = Instant::now();
    loop {
        let (n, peer) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(service = %state.name, error = %e, "udp receive failed");
                continue;
            }
        };
        if last_sweep.elapsed() >= Duration::from_secs(1) {
            flows.retain(|_, (_, _, task)| !task.0.is_finished());
            last_sweep = Instant::now();
        }
        // A flow ends when idle, and when its endpoint left the frontend: the client's next
        // datagram picks a new one (as conntrack cleanup does in nftables mode).
        if flows
            .get(&peer)
            .is_some_and(|(_, e, task)| task.0.is_finished() || !state.has(e))
        {
            flows.remove(&peer);
        }
        let upstream = match flows.get(&peer) {
            Some((u, _, _)) => u.clone(),
            None => {
                let Some(e) = state.choose(peer.ip()).into_iter().next() else {
                    continue;
                };
                let up = match netns.udp_socket(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))) {
                    Ok(u) => u,
                    Err(err) => {
                        tracing::warn!(service = %state.name, error = %err, "udp socket failed");
                        continue;
                    }
                };
                if let Err(err) = up.connect(SocketAddr::new(IpAddr::V4(e.ip), e.port)).await {
                    tracing::debug!(service = %state.name, error = %err, "udp connect failed");
                    continue;
                }
                state.record(peer.ip(), e);
                let up = Arc::new(up);
                let task = tokio::spawn(udp_replies(up.clone(), socket.clone(), peer));
                flows.insert(peer, (up.clone(), e, AbortOnDrop(task)));
                up
            }
        };
        if let Err(e) = upstream.send(&buf[..n]).await {
            tracing::debug!(service = %state.name, error = %e, "udp forward failed");
        }
    }
}

/// A task aborted when its handle is dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Copies an endpoint's replies back to the client until the flow is idle.
async fn udp_replies(up: Arc<UdpSocket>, front: Arc<UdpSocket>, peer: SocketAddr) {
    let mut buf = vec![0u8; 65_536];
    while let Ok(Ok(n)) = tokio::time::timeout(UDP_IDLE, up.recv(&mut buf)).await {
        if front.send_to(&buf[..n], peer).await.is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{EmptyAction, FrontendKind, Masquerade, ServiceKey};

    fn ep(ip: &str, port: u16) -> Endpoint {
        Endpoint {
            ip: ip.parse().unwrap(),
            port,
            local: true,
        }
    }

    fn front(eps: &[Endpoint], affinity: Option<u32>) -> Frontend {
        Frontend {
            key: FrontendKey::Addr {
                ip: Ipv4Addr::LOCALHOST,
                protocol: Protocol::Tcp,
                port: 0,
            },
            kind: FrontendKind::ClusterIp,
            port_name: "ns/x:http".into(),
            endpoints: eps.to_vec(),
            masquerade: Masquerade::OffCluster,
            affinity_timeout: affinity,
            when_empty: EmptyAction::Reject,
        }
    }

    #[test]
    fn round_robin_and_affinity() {
        let eps = [ep("10.0.0.1", 1), ep("10.0.0.2", 1), ep("10.0.0.3", 1)];
        let s = FrontendState::new(&front(&eps, None));
        let client: IpAddr = "192.0.2.1".parse().unwrap();
        let firsts: Vec<Endpoint> = (0..6).map(|_| s.choose(client)[0]).collect();
        assert_eq!(firsts[..3], eps);
        assert_eq!(firsts[3..], eps);
        // Without affinity, recording changes nothing.
        s.record(client, eps[2]);
        assert_eq!(s.choose(client)[0], eps[0]);

        s.update(&front(&eps, Some(60)));
        s.record(client, eps[1]);
        for _ in 0..5 {
            assert_eq!(s.choose(client)[0], eps[1]);
        }
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let others: BTreeSet<Endpoint> = (0..3).map(|_| s.choose(other)[0]).collect();
        assert_eq!(others.len(), 3);
        // The affinity endpoint goes away: the client moves on.
        s.update(&front(&[eps[0], eps[2]], Some(60)));
        assert_ne!(s.choose(client)[0], eps[1]);
        assert!(
            FrontendState::new(&front(&[], None))
                .choose(client)
                .is_empty()
        );
    }

    #[test]
    fn local_addresses_from_ip_json() {
        let v = serde_json::json!([
            {"ifname": "lo", "addr_info": [{"local": "127.0.0.1", "prefixlen": 8}]},
            {"ifname": "eth0", "addr_info": [{"local": "192.0.2.5", "prefixlen": 24},
                                             {"local": "not-an-ip"}]}
        ]);
        assert_eq!(
            local_addrs_from_json(&v),
            [Ipv4Addr::LOCALHOST, "192.0.2.5".parse().unwrap()]
        );
    }

    #[tokio::test]
    async fn forwards_on_loopback_and_refuses_without_endpoints() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // An "endpoint" on loopback answering with a fixed word.
        let backend = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let bport = backend.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (mut c, _) = backend.accept().await.unwrap();
                c.write_all(b"backend-1").await.unwrap();
            }
        });
        // A free port for the frontend.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut f = front(&[ep("127.0.0.1", bport)], None);
        f.key = FrontendKey::Addr {
            ip: Ipv4Addr::LOCALHOST,
            protocol: Protocol::Tcp,
            port,
        };
        let mut rules = RuleSet::new();
        rules.insert(ServiceKey::new("ns", "x"), vec![f.clone()]);
        let mut p = UserspaceProxier::new(UserspaceConfig::default(), Netns::current());
        assert_eq!(p.sync(&rules).unwrap().listeners, 1);
        let mut c = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut got = String::new();
        c.read_to_string(&mut got).await.unwrap();
        assert_eq!(got, "backend-1");

        f.endpoints.clear();
        rules.insert(ServiceKey::new("ns", "x"), vec![f]);
        assert_eq!(p.sync(&rules).unwrap().listeners, 0);
        // The aborted listener task drops its socket on the runtime's next turn.
        let mut refused = false;
        for _ in 0..100 {
            match TcpStream::connect(("127.0.0.1", port)).await {
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    refused = true;
                    break;
                }
                _ => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
        assert!(
            refused,
            "the frontend should refuse once it has no endpoints"
        );
    }
}
