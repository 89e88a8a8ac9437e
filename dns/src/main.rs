//! `rkube-dns`: the cluster DNS server of rkube (see the library for what it answers).

// Zone snapshots and forwarded answers are many small allocations: mimalloc handles them
// better than glibc.
#[global_allocator]
static GLOBAL: rkube_alloc::Allocator = rkube_alloc::Allocator;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Parser;
use rkube_dns::{Config, Listeners, upstream};
use rkube_machinery::process::shutdown_signal;

#[derive(Parser)]
#[command(
    name = "rkube-dns",
    version,
    about = "rkube's cluster DNS: <svc>.<ns>.svc.<domain> and friends from the API's caches, \
             everything else forwarded upstream"
)]
struct Args {
    /// Kubeconfig of the API server to watch.
    #[arg(long)]
    kubeconfig: PathBuf,
    /// Address to serve DNS on, over UDP and TCP.
    #[arg(long, default_value = "0.0.0.0:53")]
    listen: SocketAddr,
    /// The cluster domain.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// Resolvers for other names: IP[:port],… (default: the nameservers of /etc/resolv.conf).
    #[arg(long)]
    upstream: Option<String>,
    /// TTL of cluster answers, in seconds.
    #[arg(long, default_value_t = 5)]
    ttl: u32,
    /// Address of the health and metrics endpoint (/healthz, /readyz, /metrics).
    #[arg(long, default_value = "127.0.0.1:9153")]
    metrics_listen: SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,hickory_server=warn".into()),
        )
        .init();
    let args = Args::parse();
    if args.ttl == 0 {
        bail!("--ttl must be at least 1 second");
    }
    let upstreams = match &args.upstream {
        Some(list) => upstream::parse_list(list)?,
        None => {
            let text = std::fs::read_to_string("/etc/resolv.conf").context(
                "reading /etc/resolv.conf for the upstream resolvers (or pass --upstream)",
            )?;
            upstream::from_resolv_conf(&text)
        }
    };
    let upstreams = upstream::without_self(upstreams, args.listen);
    if upstreams.is_empty() {
        tracing::warn!("no upstream resolvers: names outside the cluster zone get SERVFAIL");
    } else {
        tracing::info!(?upstreams, "forwarding other names");
    }
    let client = rkube_dns::client_from_kubeconfig(&args.kubeconfig).await?;
    let udp = tokio::net::UdpSocket::bind(args.listen)
        .await
        .with_context(|| format!("cannot bind UDP {}", args.listen))?;
    let tcp = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot bind TCP {}", args.listen))?;
    let http = tokio::net::TcpListener::bind(args.metrics_listen)
        .await
        .with_context(|| format!("cannot bind {}", args.metrics_listen))?;
    let config = Config {
        cluster_domain: args.cluster_domain,
        ttl: args.ttl,
        upstreams,
        ..Config::default()
    };
    let listeners = Listeners {
        udp: vec![udp],
        tcp: vec![tcp],
        http: Some(http),
    };
    rkube_dns::run(config, client, listeners, shutdown_signal())
        .await
        .context("rkube-dns failed")?;
    Ok(())
}
