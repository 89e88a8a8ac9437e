//! The DNS benchmark: rkube-dns alone on one thread (its own current-thread runtime: one
//! core at most) serving a zone of N Services reflected from an API server started
//! in-process, under a Rust load generator on another thread that keeps W UDP queries in
//! flight on each of S sockets. It measures queries/s and p50/p99 latency for cached
//! cluster names and for NXDOMAIN, and the rkube-dns thread's CPU time (from
//! /proc/self/task/TID/schedstat) to give queries per CPU-second. The baseline, measured in
//! the same run with the same generator, is a UDP responder that only flips the QR bit on
//! one thread: the ceiling of the socket path itself.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use tokio::net::UdpSocket;

use super::report::Report;
use super::server::{self, Http, start_server, stop};

/// The target for cached cluster names on one core.
pub const TARGET_QPS: f64 = 50_000.0;

/// Parameters of the DNS benchmark.
#[derive(Clone, Debug)]
pub struct Config {
    /// Services in the zone (the cluster names queried, round-robin).
    pub services: usize,
    /// Queries per measurement.
    pub queries: usize,
    /// Generator sockets.
    pub sockets: usize,
    /// Queries in flight per socket.
    pub window: usize,
    /// Rounds per measurement (the median is reported).
    pub rounds: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            services: 1_000,
            queries: 200_000,
            sockets: 4,
            window: 16,
            rounds: 3,
        }
    }
}

/// One load run.
#[derive(Clone, Copy, Debug)]
struct Run {
    qps: f64,
    p50_ms: f64,
    p99_ms: f64,
    lost: usize,
    /// CPU seconds the server thread used per wall second of the run.
    cpu: f64,
}

/// A query for `name` (type A, RD, no EDNS), ID 0 (the generator stamps IDs).
fn encode_query(name: &str) -> Vec<u8> {
    let mut q = vec![0, 0, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// The thread's CPU time so far, from /proc (nanoseconds).
fn thread_cpu_ns(tid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The calling thread's id as /proc names it.
fn current_tid() -> String {
    std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()))
        .unwrap_or_default()
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

/// Sends `total` queries cycling through `packets`, `window` in flight per socket, and
/// expects `rcode` in every answer.
fn generate(
    server: SocketAddr,
    packets: Arc<Vec<Vec<u8>>>,
    total: usize,
    sockets: usize,
    window: usize,
    rcode: u8,
) -> anyhow::Result<(usize, usize, Vec<u32>, Duration)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let per_socket = total.div_ceil(sockets);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for s in 0..sockets {
            let packets = packets.clone();
            tasks.push(tokio::spawn(async move {
                let sock = UdpSocket::bind("127.0.0.1:0").await?;
                sock.connect(server).await?;
                let mut sent_at = vec![Instant::now(); 65_536];
                let mut in_flight = vec![false; 65_536];
                let mut lat = Vec::with_capacity(per_socket);
                let (mut sent, mut done, mut lost, mut bad) = (0usize, 0usize, 0usize, 0usize);
                let mut next_id: u16 = 0;
                let mut outstanding = 0usize;
                let mut buf = vec![0u8; 4096];
                let mut pkt = Vec::with_capacity(512);
                loop {
                    while outstanding < window && sent < per_socket {
                        let p = &packets[(s + sent * sockets) % packets.len()];
                        pkt.clear();
                        pkt.extend_from_slice(p);
                        pkt[..2].copy_from_slice(&next_id.to_be_bytes());
                        sent_at[next_id as usize] = Instant::now();
                        in_flight[next_id as usize] = true;
                        sock.send(&pkt).await?;
                        next_id = next_id.wrapping_add(1);
                        sent += 1;
                        outstanding += 1;
                    }
                    if outstanding == 0 {
                        break;
                    }
                    match tokio::time::timeout(Duration::from_millis(250), sock.recv(&mut buf))
                        .await
                    {
                        Ok(Ok(n)) if n >= 12 => {
                            let id = u16::from_be_bytes([buf[0], buf[1]]) as usize;
                            if !in_flight[id] {
                                continue;
                            }
                            in_flight[id] = false;
                            outstanding -= 1;
                            done += 1;
                            if buf[3] & 0x0f != rcode || buf[2] & 0x80 == 0 {
                                bad += 1;
                            }
                            lat.push(
                                sent_at[id].elapsed().as_micros().min(u128::from(u32::MAX)) as u32
                            );
                        }
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return Err(anyhow::Error::from(e)),
                        Err(_) => {
                            // Lost (dropped under load): forget what is in flight.
                            lost += outstanding;
                            outstanding = 0;
                            in_flight.iter_mut().for_each(|f| *f = false);
                        }
                    }
                }
                Ok::<_, anyhow::Error>((done, lost, bad, lat))
            }));
        }
        let (mut done, mut lost, mut bad, mut lat) = (0, 0, 0, Vec::with_capacity(total));
        for t in tasks {
            let (d, l, b, mut v) = t.await??;
            done += d;
            lost += l;
            bad += b;
            lat.append(&mut v);
        }
        let elapsed = started.elapsed();
        if bad > 0 {
            bail!("{bad} answers had an unexpected response code (wanted {rcode})");
        }
        Ok((done, lost, lat, elapsed))
    })
}

/// One measured run against `server`, whose serving thread is `tid`.
fn measure(
    server: SocketAddr,
    tid: &str,
    packets: &Arc<Vec<Vec<u8>>>,
    cfg: &Config,
    rcode: u8,
) -> anyhow::Result<Run> {
    let cpu0 = thread_cpu_ns(tid);
    let (done, lost, mut lat, elapsed) = generate(
        server,
        packets.clone(),
        cfg.queries,
        cfg.sockets,
        cfg.window,
        rcode,
    )?;
    let cpu = (thread_cpu_ns(tid) - cpu0) as f64 / 1e9 / elapsed.as_secs_f64();
    lat.sort_unstable();
    Ok(Run {
        qps: done as f64 / elapsed.as_secs_f64(),
        p50_ms: percentile(&lat, 0.5),
        p99_ms: percentile(&lat, 0.99),
        lost,
        cpu,
    })
}

fn median(mut runs: Vec<Run>) -> Run {
    runs.sort_by(|a, b| a.qps.total_cmp(&b.qps));
    runs[runs.len() / 2]
}

/// A server thread with its own current-thread runtime: its /proc tid and a stop switch.
struct ServerThread {
    tid: String,
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    join: Option<std::thread::JoinHandle<()>>,
}

impl ServerThread {
    fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The baseline: a UDP responder that flips the QR bit and sends the packet back.
fn start_echo() -> anyhow::Result<ServerThread> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let join = std::thread::Builder::new()
        .name("udp-echo".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
                let _ = ready_tx.send((current_tid(), sock.local_addr().expect("addr")));
                let mut buf = vec![0u8; 4096];
                loop {
                    tokio::select! {
                        r = sock.recv_from(&mut buf) => {
                            let Ok((n, from)) = r else { return };
                            if n >= 12 {
                                buf[2] |= 0x80;
                                let _ = sock.send_to(&buf[..n], from).await;
                            }
                        }
                        _ = &mut stop_rx => return,
                    }
                }
            });
        })?;
    let (tid, addr) = ready_rx.recv_timeout(Duration::from_secs(10))?;
    Ok(ServerThread {
        tid,
        addr,
        stop: Some(stop),
        join: Some(join),
    })
}

/// rkube-dns on its own thread, fed by the API server behind `kubeconfig`.
fn start_dns(kubeconfig: std::path::PathBuf) -> anyhow::Result<ServerThread> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let join = std::thread::Builder::new()
        .name("rkube-dns".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let started = async {
                    let client = rkube_dns::client_from_kubeconfig(&kubeconfig).await?;
                    let udp = UdpSocket::bind("127.0.0.1:0").await?;
                    let addr = udp.local_addr()?;
                    anyhow::Ok((client, udp, addr))
                };
                let (client, udp, addr) = match started.await {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok((current_tid(), addr)));
                let listeners = rkube_dns::Listeners {
                    udp: vec![udp],
                    ..Default::default()
                };
                if let Err(e) =
                    rkube_dns::run(rkube_dns::Config::default(), client, listeners, async {
                        let _ = stop_rx.await;
                    })
                    .await
                {
                    eprintln!("rkube-dns failed: {e}");
                }
            });
        })?;
    let (tid, addr) = ready_rx.recv_timeout(Duration::from_secs(30))??;
    Ok(ServerThread {
        tid,
        addr,
        stop: Some(stop),
        join: Some(join),
    })
}

async fn post(c: &Http, url: &str, body: serde_json::Value) -> anyhow::Result<u16> {
    let req = axum::http::Request::builder()
        .method("POST")
        .uri(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))?;
    let resp = c
        .request(req)
        .await
        .with_context(|| format!("POST {url}"))?;
    let code = resp.status().as_u16();
    let _ = resp.into_body().collect().await?;
    Ok(code)
}

/// Asks `server` once over UDP: the response code, or None on timeout.
async fn ask_rcode(server: SocketAddr, packet: &[u8]) -> Option<u8> {
    let sock = UdpSocket::bind("127.0.0.1:0").await.ok()?;
    sock.connect(server).await.ok()?;
    sock.send(packet).await.ok()?;
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(Duration::from_millis(200), sock.recv(&mut buf))
        .await
        .ok()?
        .ok()?;
    (n >= 12).then_some(buf[3] & 0x0f)
}

/// Runs the benchmark.
pub async fn run(cfg: &Config) -> anyhow::Result<Report> {
    let server = start_server(None).await?;
    let base = server.url.clone();
    // rkube-dns as the cluster DNS's ServiceAccount, kube-system/kube-dns.
    let http = server::http();
    let kubeconfig = server
        .kubeconfig_for_service_account(&http, "kube-system", "kube-dns")
        .await?;

    // The zone: N ClusterIP Services with a named port each.
    let url = format!("{base}/api/v1/namespaces/default/services");
    let started = Instant::now();
    let mut codes = futures::stream::iter(0..cfg.services)
        .map(|i| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                post(
                    &http,
                    &url,
                    serde_json::json!({"apiVersion": "v1", "kind": "Service",
                        "metadata": {"name": format!("svc-{i}")},
                        "spec": {"ports": [{"name": "http", "port": 80}]}}),
                )
                .await
            }
        })
        .buffer_unordered(32);
    while let Some(code) = codes.next().await {
        let code = code?;
        if code != 201 {
            bail!("creating a Service returned {code}");
        }
    }
    eprintln!(
        "created {} services in {:?}",
        cfg.services,
        started.elapsed()
    );

    let cluster: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..cfg.services)
            .map(|i| encode_query(&format!("svc-{i}.default.svc.cluster.local.")))
            .collect(),
    );
    let nx: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..cfg.services)
            .map(|i| encode_query(&format!("nope-{i}.default.svc.cluster.local.")))
            .collect(),
    );

    let mut dns = start_dns(kubeconfig)?;
    let last = cluster.last().context("no services")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while ask_rcode(dns.addr, last).await != Some(0) {
        if Instant::now() > deadline {
            bail!("rkube-dns did not serve the last Service within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut echo = start_echo()?;

    let (dns_addr, dns_tid, echo_addr, echo_tid) =
        (dns.addr, dns.tid.clone(), echo.addr, echo.tid.clone());
    let cfg2 = cfg.clone();
    let (cluster_run, nx_run, echo_run) = tokio::task::spawn_blocking(move || {
        // Warm-up.
        let warm = Config {
            queries: cfg2.queries / 10,
            ..cfg2.clone()
        };
        measure(dns_addr, &dns_tid, &cluster, &warm, 0)?;
        let (mut c, mut n, mut e) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..cfg2.rounds.max(1) {
            c.push(measure(dns_addr, &dns_tid, &cluster, &cfg2, 0)?);
            n.push(measure(dns_addr, &dns_tid, &nx, &cfg2, 3)?);
            e.push(measure(echo_addr, &echo_tid, &cluster, &cfg2, 0)?);
        }
        anyhow::Ok((median(c), median(n), median(e)))
    })
    .await??;
    dns.stop();
    echo.stop();
    stop(server).await;

    let mut report = Report {
        workload: "dns".into(),
        ..Default::default()
    };
    for (k, v) in [
        ("services", cfg.services),
        ("queries", cfg.queries),
        ("sockets", cfg.sockets),
        ("window", cfg.window),
        ("rounds", cfg.rounds),
    ] {
        report.parameters.insert(k.into(), v.into());
    }
    for (label, r) in [
        ("cluster names", cluster_run),
        ("NXDOMAIN", nx_run),
        ("UDP echo baseline", echo_run),
    ] {
        report.measure(&format!("{label}: queries/s"), r.qps, "q/s");
        report.measure(&format!("{label}: p50 latency"), r.p50_ms, "ms");
        report.measure(&format!("{label}: p99 latency"), r.p99_ms, "ms");
        report.measure(
            &format!("{label}: server thread CPU"),
            r.cpu * 100.0,
            "% of a core",
        );
        report.measure(
            &format!("{label}: queries per CPU-second"),
            if r.cpu > 0.0 { r.qps / r.cpu } else { 0.0 },
            "q/s/core",
        );
        report.measure(&format!("{label}: lost"), r.lost as f64, "queries");
    }
    report.ratio(
        "cluster-name q/s on one core / 50k (issue target)",
        cluster_run.qps / TARGET_QPS,
        1.0,
    );
    report.ratio(
        "NXDOMAIN q/s on one core / 50k (issue target)",
        nx_run.qps / TARGET_QPS,
        1.0,
    );
    report.measure(
        "cluster-name q/s as a share of the UDP echo baseline",
        cluster_run.qps / echo_run.qps * 100.0,
        "%",
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_wire_format() {
        let q = encode_query("a.bc.");
        assert_eq!(
            q,
            [
                0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 2, b'b', b'c', 0, 0, 1, 0, 1
            ]
        );
    }

    #[test]
    fn percentiles_in_ms() {
        let v: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}
