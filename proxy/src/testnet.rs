//! Test and benchmark support: a throwaway node made of network namespaces this process creates
//! (and deletes on drop) — a "node" namespace with a bridge for pods, "backend" pod namespaces
//! each running a tiny server that answers its own name, and a "client" namespace outside the
//! cluster routed through the node — plus blocking clients to run inside them. Only the addresses
//! below, inside these namespaces, are ever used.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::netns::Netns;

/// The node's address on the pod bridge (the pods' gateway).
pub const NODE_POD_IP: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 1);
/// The node's address on the client's link (what NodePorts are reached on).
pub const NODE_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 1);
/// The client's address (outside the cluster CIDR).
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 2);
/// The Service range the client routes through the node.
pub const SERVICE_CIDR: &str = "10.96.0.0/12";
/// The cluster (pod) range the client routes through the node.
pub const CLUSTER_CIDR: &str = "10.244.0.0/16";

/// The address of backend `i` (0-based).
pub fn backend_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 244, 1, 11 + u8::try_from(i).unwrap_or(200))
}

/// Errors building a topology.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A command failed.
    #[error("{command}: {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its error output.
        stderr: String,
    },
    /// Something else failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// A namespace could not be entered.
    #[error(transparent)]
    Netns(#[from] crate::netns::Error),
}

fn ip(args: &[&str]) -> Result<(), Error> {
    let out = Command::new("ip").args(args).output()?;
    if !out.status.success() {
        return Err(Error::Command {
            command: format!("ip {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// A named network namespace, deleted on drop.
#[derive(Debug)]
pub struct NsGuard {
    name: String,
}

impl NsGuard {
    /// Creates `ip netns add NAME` (deleting a leftover of the same name first).
    pub fn create(name: &str) -> Result<Self, Error> {
        let _ = Command::new("ip").args(["netns", "del", name]).output();
        ip(&["netns", "add", name])?;
        let g = Self { name: name.into() };
        ip(&["-n", name, "link", "set", "lo", "up"])?;
        Ok(g)
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace as a [`Netns`].
    pub fn netns(&self) -> Netns {
        Netns::named(&self.name)
    }

    /// Runs `ip -n NAME ARGS…`.
    pub fn ip(&self, args: &[&str]) -> Result<(), Error> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }
}

impl Drop for NsGuard {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// A short prefix unique to this process and call, for namespace names.
pub fn unique_prefix(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "rkpx-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A node with a client and `n` backends.
pub struct Topology {
    /// Servers first, so they stop before their namespaces go.
    servers: Vec<Server>,
    /// The backends' namespaces.
    pub backends: Vec<NsGuard>,
    /// The client's namespace.
    pub client: NsGuard,
    /// The node's namespace (where the proxy programs its dataplane).
    pub node: NsGuard,
}

impl Topology {
    /// Builds the namespaces and links, and starts a server in each backend that answers TCP
    /// (HTTP) and UDP on `port` with the backend's name (`backend-0`, …).
    pub fn create(tag: &str, n: usize, port: u16) -> Result<Self, Error> {
        let prefix = unique_prefix(tag);
        let node = NsGuard::create(&format!("{prefix}-node"))?;
        let client = NsGuard::create(&format!("{prefix}-client"))?;
        let mut topo = Self {
            servers: Vec::new(),
            backends: Vec::new(),
            client,
            node,
        };
        let node_name = topo.node.name().to_string();
        topo.node.netns().run(|| {
            std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")?;
            // Send ICMP errors (port unreachable from reject) without rate limiting getting in
            // the way of tests.
            std::fs::write("/proc/sys/net/ipv4/icmp_ratelimit", "0")
        })??;
        topo.node.ip(&["link", "add", "br0", "type", "bridge"])?;
        topo.node
            .ip(&["addr", "add", &format!("{NODE_POD_IP}/24"), "dev", "br0"])?;
        topo.node.ip(&["link", "set", "br0", "up"])?;

        // The client link.
        topo.node.ip(&[
            "link",
            "add",
            "vclient",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            topo.client.name(),
        ])?;
        topo.node
            .ip(&["addr", "add", &format!("{NODE_IP}/24"), "dev", "vclient"])?;
        topo.node.ip(&["link", "set", "vclient", "up"])?;
        topo.client
            .ip(&["addr", "add", &format!("{CLIENT_IP}/24"), "dev", "eth0"])?;
        topo.client.ip(&["link", "set", "eth0", "up"])?;
        for cidr in [SERVICE_CIDR, CLUSTER_CIDR] {
            topo.client
                .ip(&["route", "add", cidr, "via", &NODE_IP.to_string()])?;
        }

        for i in 0..n {
            let b = NsGuard::create(&format!("{prefix}-b{i}"))?;
            let veth = format!("vb{i}");
            topo.node.ip(&[
                "link",
                "add",
                &veth,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                b.name(),
            ])?;
            topo.node
                .ip(&["link", "set", &veth, "master", "br0", "up"])?;
            // As the CNI bridge plugin's hairpinMode does: with bridge netfilter, a pod's
            // connection to its own Service may come back out of the port it entered.
            topo.node.ip(&[
                "link",
                "set",
                &veth,
                "type",
                "bridge_slave",
                "hairpin",
                "on",
            ])?;
            b.ip(&[
                "addr",
                "add",
                &format!("{}/24", backend_ip(i)),
                "dev",
                "eth0",
            ])?;
            b.ip(&["link", "set", "eth0", "up"])?;
            b.ip(&["route", "add", "default", "via", &NODE_POD_IP.to_string()])?;
            let name = format!("backend-{i}");
            topo.servers.push(Server::start(
                &b.netns(),
                SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)),
                &name,
            )?);
            topo.backends.push(b);
        }
        tracing::debug!(node = %node_name, backends = n, "test topology ready");
        Ok(topo)
    }
}

/// A TCP (HTTP) and UDP server in a namespace answering with its name; `GET /ip` returns the
/// client address it sees (to check masquerading), `GET /bytes/N` returns N bytes (for
/// throughput). Stops on drop.
pub struct Server {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Starts the server on `addr` (TCP and UDP) inside `ns`.
    pub fn start(ns: &Netns, addr: SocketAddr, name: &str) -> Result<Self, Error> {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<io::Result<()>>();
        let ns = ns.clone();
        let name = name.to_string();
        let thread = std::thread::spawn(move || {
            let r = ns.run(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                rt.block_on(async move {
                    let (tcp, udp) = match (
                        tokio::net::TcpListener::bind(addr).await,
                        tokio::net::UdpSocket::bind(addr).await,
                    ) {
                        (Ok(t), Ok(u)) => (t, u),
                        (Err(e), _) | (_, Err(e)) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    tokio::select! {
                        _ = stopped => {}
                        _ = serve_tcp(tcp, name.clone()) => {}
                        _ = serve_udp(udp, name) => {}
                    }
                });
            });
            if let Err(e) = r {
                tracing::warn!(error = %e, "test server could not enter its namespace");
            }
        });
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => Ok(Self {
                stop: Some(stop),
                thread: Some(thread),
            }),
            Ok(Err(e)) => Err(Error::Io(e)),
            Err(_) => Err(Error::Io(io::Error::other("test server did not start"))),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve_tcp(listener: tokio::net::TcpListener, name: String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let Ok((mut c, peer)) = listener.accept().await else {
            continue;
        };
        let name = name.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 1024];
            let mut n = 0;
            // Read the request head (up to a blank line or 1 KiB).
            while n < buf.len() {
                match c.read(&mut buf[n..]).await {
                    Ok(0) | Err(_) => break,
                    Ok(k) => n += k,
                }
                if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            let head = String::from_utf8_lossy(&buf[..n]);
            let bytes = head
                .strip_prefix("GET /bytes/")
                .and_then(|r| r.split_whitespace().next())
                .and_then(|s| s.parse::<usize>().ok());
            let body = if head.starts_with("GET /ip ") {
                peer.ip().to_string()
            } else {
                name
            };
            match bytes {
                Some(len) => {
                    let hdr = format!("HTTP/1.0 200 OK\r\nContent-Length: {len}\r\n\r\n");
                    if c.write_all(hdr.as_bytes()).await.is_err() {
                        return;
                    }
                    let chunk = vec![b'x'; 256 * 1024];
                    let mut left = len;
                    while left > 0 {
                        let k = left.min(chunk.len());
                        if c.write_all(&chunk[..k]).await.is_err() {
                            return;
                        }
                        left -= k;
                    }
                }
                None => {
                    let resp = format!(
                        "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = c.write_all(resp.as_bytes()).await;
                }
            }
            let _ = c.shutdown().await;
        });
    }
}

async fn serve_udp(sock: tokio::net::UdpSocket, name: String) {
    let mut buf = [0u8; 2048];
    loop {
        if let Ok((_, peer)) = sock.recv_from(&mut buf).await {
            let _ = sock.send_to(name.as_bytes(), peer).await;
        }
    }
}

/// `GET /` over HTTP/1.0 (blocking; run it inside a namespace): the body.
pub fn http_get(addr: SocketAddr, timeout: Duration) -> io::Result<String> {
    http_get_path(addr, "/", timeout)
}

/// `GET path` over HTTP/1.0 (blocking; run it inside a namespace): the body.
pub fn http_get_path(addr: SocketAddr, path: &str, timeout: Duration) -> io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    match resp.split_once("\r\n\r\n") {
        Some((_, body)) => Ok(body.to_string()),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("not an HTTP response: {resp:?}"),
        )),
    }
}

/// Downloads `GET /bytes/N` (blocking): the bytes received.
pub fn http_download(addr: SocketAddr, n: usize, timeout: Duration) -> io::Result<usize> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.write_all(format!("GET /bytes/{n} HTTP/1.0\r\n\r\n").as_bytes())?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0;
    loop {
        match s.read(&mut buf)? {
            0 => break,
            k => total += k,
        }
    }
    Ok(total)
}

/// Sends one datagram from a new socket and waits for the answer (blocking).
pub fn udp_ask(addr: SocketAddr, timeout: Duration) -> io::Result<String> {
    let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    s.connect(addr)?;
    udp_ask_on(&s, timeout)
}

/// Sends one datagram on a connected socket and waits for the answer (blocking): the same
/// socket is the same flow for conntrack.
pub fn udp_ask_on(s: &UdpSocket, timeout: Duration) -> io::Result<String> {
    s.set_read_timeout(Some(timeout))?;
    s.send(b"who")?;
    let mut buf = [0u8; 2048];
    let n = s.recv(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}
