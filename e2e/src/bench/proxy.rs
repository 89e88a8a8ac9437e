//! The service proxy benchmark (nftables mode, in network namespaces it creates and removes):
//! rule sync time for N Services × E endpoints — a fresh full sync (rules computed from the
//! Service and EndpointSlice objects, rendered, applied in one `nft -f` transaction), a periodic
//! full re-sync of a populated table, and one added Service as a partial sync — and TCP download
//! throughput from a client namespace through a ClusterIP vs straight to the pod IP, alternating
//! in the same run. Targets from the issue: 10k × 10 full sync ≤ 2 s, one added Service ≤ 20 ms,
//! ClusterIP throughput ≥ 0.9 × direct.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use rkube_proxy::netns::Netns;
use rkube_proxy::nft::{NftConfig, NftProxier};
use rkube_proxy::rules::{self, ServiceKey};
use rkube_proxy::testnet::{self, NsGuard, Topology};
use serde_json::json;

use super::report::Report;

/// Full sync budget for 10k Services × 10 endpoints (seconds).
pub const TARGET_FULL_10K_S: f64 = 2.0;
/// Budget for adding one Service to 10k (seconds).
pub const TARGET_ADD_ONE_S: f64 = 0.020;
/// ClusterIP throughput / direct throughput.
pub const TARGET_THROUGHPUT: f64 = 0.9;

/// Parameters of the proxy benchmark.
#[derive(Clone, Debug)]
pub struct Config {
    /// Service counts to sync (each a full sync from scratch).
    pub service_counts: Vec<usize>,
    /// Ready endpoints per Service.
    pub endpoints: usize,
    /// Rounds per measurement (the median is reported).
    pub rounds: usize,
    /// Services added one by one to the largest table.
    pub adds: usize,
    /// MiB downloaded per throughput round.
    pub transfer_mib: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            service_counts: vec![1_000, 10_000],
            endpoints: 10,
            rounds: 3,
            adds: 20,
            transfer_mib: 512,
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}

/// Service `i` with a ClusterIP from 10.96.0.0/12 and its EndpointSlice with `e` ready
/// endpoints from 10.128.0.0/9 (table entries only: no traffic goes there).
fn objects(i: usize, e: usize) -> anyhow::Result<(Service, EndpointSlice)> {
    let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 0, 0)) + 1 + i as u32);
    let name = format!("svc-{i}");
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"namespace": "bench", "name": name},
        "spec": {"clusterIP": ip.to_string(), "clusterIPs": [ip.to_string()],
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
    }))?;
    let endpoints: Vec<_> = (0..e)
        .map(|j| {
            let a = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 128, 0, 0)) + (i * e + j) as u32);
            json!({"addresses": [a.to_string()], "conditions": {"ready": true}, "nodeName": "n1"})
        })
        .collect();
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"namespace": "bench", "name": format!("{name}-x"),
                     "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
    }))?;
    Ok((svc, slice))
}

fn nft_config() -> NftConfig {
    NftConfig {
        cluster_cidr: Some(testnet::CLUSTER_CIDR.parse().expect("cluster CIDR")),
        ..Default::default()
    }
}

/// Sync figures for `n` Services: (fresh full, periodic full re-sync, median add-one) seconds.
fn sync_times(cfg: &Config, n: usize, adds: usize) -> anyhow::Result<(f64, f64, f64, usize)> {
    let objs: Vec<(Service, EndpointSlice)> = (0..n + adds)
        .map(|i| objects(i, cfg.endpoints))
        .collect::<anyhow::Result<_>>()?;
    let (base, extra) = objs.split_at(n);
    let mut fresh = Vec::new();
    let mut resync = Vec::new();
    let mut add = Vec::new();
    let mut rules_count = 0;
    for _ in 0..cfg.rounds {
        let ns = NsGuard::create(&testnet::unique_prefix("bench-sync"))?;
        let mut p = NftProxier::new(nft_config(), ns.netns());
        let t = Instant::now();
        let all = rules::compute(
            base.iter().map(|(s, _)| s),
            base.iter().map(|(_, e)| e),
            "n1",
        );
        let stats = p.sync_full(&all)?;
        fresh.push(t.elapsed().as_secs_f64());
        rules_count = stats.rules;

        let t = Instant::now();
        let all = rules::compute(
            base.iter().map(|(s, _)| s),
            base.iter().map(|(_, e)| e),
            "n1",
        );
        p.sync_full(&all)?;
        resync.push(t.elapsed().as_secs_f64());

        for (svc, slice) in extra {
            let t = Instant::now();
            let fronts = rules::service_frontends(svc, &[slice], "n1");
            let stats = p.sync_changes(&[(ServiceKey::of_service(svc), fronts)])?;
            add.push(t.elapsed().as_secs_f64());
            if stats.full {
                bail!("adding one service fell back to a full sync");
            }
        }
        // The table goes with the namespace; check it was really programmed first.
        let out = ns
            .netns()
            .command("nft", &["list", "map", "ip", "rkube", "service-ips"], b"")?;
        let listing = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || !listing.contains("10.96.0.1 . tcp . 80") {
            bail!("the rkube table was not programmed");
        }
    }
    Ok((median(fresh), median(resync), median(add), rules_count))
}

/// MiB/s of one download of `mib` MiB from `addr` inside the client namespace.
fn download(client: &Netns, addr: SocketAddr, mib: usize) -> anyhow::Result<f64> {
    let bytes = mib * 1024 * 1024;
    let (got, secs) = client.run(|| {
        let t = Instant::now();
        let got = testnet::http_download(addr, bytes, Duration::from_secs(60));
        (got, t.elapsed().as_secs_f64())
    })?;
    let got = got.with_context(|| format!("download from {addr}"))?;
    if got < bytes {
        bail!("short download from {addr}: {got} of {bytes} bytes");
    }
    Ok(mib as f64 / secs)
}

/// Throughput through a ClusterIP and directly to the pod, alternating: (cluster, direct) MiB/s.
fn throughput(cfg: &Config) -> anyhow::Result<(f64, f64)> {
    let port = 8080;
    let topo = Topology::create("bench-tp", 1, port)?;
    let mut p = NftProxier::new(nft_config(), topo.node.netns());
    let vip = Ipv4Addr::new(10, 96, 0, 10);
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"namespace": "bench", "name": "tp"},
        "spec": {"clusterIP": vip.to_string(), "ports": [{"name": "http", "port": 80}]}
    }))?;
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"namespace": "bench", "name": "tp-x",
                     "labels": {"kubernetes.io/service-name": "tp"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [testnet::backend_ip(0).to_string()]}],
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}]
    }))?;
    p.sync_full(&rules::compute([&svc], [&slice], "n1"))?;
    let client = topo.client.netns();
    let cluster = SocketAddr::from((vip, 80));
    let direct = SocketAddr::from((testnet::backend_ip(0), port));
    // Warm up both paths.
    download(&client, cluster, 16)?;
    download(&client, direct, 16)?;
    let mut c = Vec::new();
    let mut d = Vec::new();
    for _ in 0..cfg.rounds {
        c.push(download(&client, cluster, cfg.transfer_mib)?);
        d.push(download(&client, direct, cfg.transfer_mib)?);
    }
    Ok((median(c), median(d)))
}

/// Runs the proxy benchmark (needs root, `ip` and `nft`).
pub async fn run(cfg: &Config) -> anyhow::Result<Report> {
    let mut report = Report {
        workload: "proxy".into(),
        ..Default::default()
    };
    report
        .parameters
        .insert("endpoints_per_service".into(), cfg.endpoints.into());
    report.parameters.insert("rounds".into(), cfg.rounds.into());
    report
        .parameters
        .insert("transfer_mib".into(), cfg.transfer_mib.into());
    report.parameters.insert(
        "anchor".into(),
        "kube-proxy nftables: ~9 min for 10k Services x 2 endpoints, 141 ms per added Service \
         (kubernetes PR #126013)"
            .into(),
    );
    let largest = cfg.service_counts.iter().copied().max().unwrap_or(0);
    for &n in &cfg.service_counts {
        let adds = if n == largest { cfg.adds.max(1) } else { 1 };
        let c = cfg.clone();
        let (fresh, resync, add, rules_count) =
            tokio::task::spawn_blocking(move || sync_times(&c, n, adds)).await??;
        report.measure(
            &format!("full sync {n} services (fresh table)"),
            fresh * 1e3,
            "ms",
        );
        report.measure(
            &format!("full re-sync {n} services (populated)"),
            resync * 1e3,
            "ms",
        );
        report.measure(&format!("add one service to {n}"), add * 1e3, "ms");
        report.measure(
            &format!("table entries at {n} services"),
            rules_count as f64,
            "elements+chains",
        );
        if n == 10_000 {
            report.ratio(
                "full sync 10k x E: 2 s budget / measured",
                TARGET_FULL_10K_S / fresh,
                1.0,
            );
            report.ratio(
                "add one service to 10k: 20 ms budget / measured",
                TARGET_ADD_ONE_S / add,
                1.0,
            );
        }
    }
    let c = cfg.clone();
    let (cluster, direct) = tokio::task::spawn_blocking(move || throughput(&c)).await??;
    report.measure("download via ClusterIP", cluster, "MiB/s");
    report.measure("download direct to pod IP", direct, "MiB/s");
    report.ratio(
        "ClusterIP throughput / direct",
        cluster / direct,
        TARGET_THROUGHPUT,
    );
    Ok(report)
}
