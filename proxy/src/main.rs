//! `rkube-proxy`: the service proxy of rkube (nftables or userspace), one per node.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use rkube_machinery::process::shutdown_signal;
use rkube_proxy::netns::Netns;
use rkube_proxy::{Config, Mode, cleanup, run};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ModeArg {
    Nftables,
    Userspace,
}

#[derive(Parser)]
#[command(
    name = "rkube-proxy",
    version,
    about = "rkube's service proxy: ClusterIP and NodePort load balancing"
)]
struct Args {
    /// The kubeconfig to reach the API server with.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// This node's name (endpoints on it are local).
    #[arg(long, required_unless_present = "cleanup")]
    node_name: Option<String>,
    /// nftables (default when root and `nft` works) or userspace.
    #[arg(long, value_enum)]
    mode: Option<ModeArg>,
    /// The pod range; ClusterIP clients outside it are masqueraded.
    #[arg(long, default_value = "10.244.0.0/16")]
    cluster_cidr: ipnet::Ipv4Net,
    /// NodePorts answer only on local addresses in these ranges (comma-separated); all local
    /// addresses but loopback when absent.
    #[arg(long, value_delimiter = ',')]
    nodeport_addresses: Vec<ipnet::Ipv4Net>,
    /// Where /healthz and /metrics are served.
    #[arg(long, default_value = "127.0.0.1:10256")]
    healthz_bind_address: SocketAddr,
    /// Program this network namespace instead of the process's own: a name from `ip netns add`
    /// or a path such as /proc/PID/ns/net. The API server is still reached from the process's
    /// namespace (a simulated node on one machine).
    #[arg(long)]
    netns: Option<String>,
    /// Remove the nftables table and pod routes the proxy installed, then exit.
    #[arg(long)]
    cleanup: bool,
}

/// `--netns` as a namespace: a path when it contains `/`, else a name under /run/netns.
fn netns_arg(arg: Option<&str>) -> anyhow::Result<Netns> {
    let ns = match arg {
        None => return Ok(Netns::current()),
        Some("") => anyhow::bail!("--netns must not be empty"),
        Some(a) if a.contains('/') => Netns::at(a),
        Some(a) => Netns::named(a),
    };
    let path = ns.path().map(|p| p.to_path_buf()).unwrap_or_default();
    anyhow::ensure!(
        path.exists(),
        "network namespace {} does not exist",
        path.display()
    );
    Ok(ns)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let netns = netns_arg(args.netns.as_deref())?;
    if args.cleanup {
        cleanup(&netns).context("cleanup failed")?;
        tracing::info!("rkube-proxy rules and routes removed");
        return Ok(());
    }
    let kube_config = match &args.kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .with_context(|| format!("bad kubeconfig {}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .context("no --kubeconfig and no cluster configuration found")?,
    };
    let client =
        rkube_machinery::client::client(kube_config).context("cannot build the API client")?;
    let node_name = args.node_name.context("--node-name is required")?;
    let mut config = Config::new(client, node_name);
    config.mode = args.mode.map(|m| match m {
        ModeArg::Nftables => Mode::Nftables,
        ModeArg::Userspace => Mode::Userspace,
    });
    config.cluster_cidr = Some(args.cluster_cidr);
    config.nodeport_cidrs = args.nodeport_addresses;
    config.netns = netns;
    config.health_listener = Some(
        tokio::net::TcpListener::bind(args.healthz_bind_address)
            .await
            .with_context(|| format!("cannot listen on {}", args.healthz_bind_address))?,
    );
    run(config, shutdown_signal())
        .await
        .context("rkube-proxy failed")?;
    Ok(())
}
