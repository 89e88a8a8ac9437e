//! `rkube-scheduler`: the scheduler of rkube, a kube-rs client of the API server.

#[global_allocator]
static GLOBAL: rkube_alloc::Allocator = rkube_alloc::Allocator;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use rkube_machinery::process::shutdown_signal;
use rkube_scheduler::{Options, SchedulerConfiguration};

#[derive(Parser)]
#[command(
    name = "rkube-scheduler",
    version,
    about = "rkube's scheduler: binds pending pods to nodes (bin-packing by default)"
)]
struct Args {
    /// Kubeconfig of the API server.
    #[arg(long)]
    kubeconfig: PathBuf,
    /// A KubeSchedulerConfiguration file (kubescheduler.config.k8s.io/v1).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Elect a leader through a Lease so several schedulers can run for HA.
    #[arg(long)]
    leader_elect: bool,
    /// Address for /healthz, /readyz and /metrics.
    #[arg(long, default_value = "127.0.0.1:10259")]
    bind_address: SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let mut config = match &args.config {
        Some(path) => SchedulerConfiguration::from_file(path)
            .with_context(|| format!("loading the configuration {}", path.display()))?,
        None => SchedulerConfiguration::default(),
    };
    if args.leader_elect {
        config.leader_election.leader_elect = true;
    }
    let kubeconfig = kube::config::Kubeconfig::read_from(&args.kubeconfig)
        .with_context(|| format!("reading {}", args.kubeconfig.display()))?;
    let client_config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .with_context(|| format!("using {}", args.kubeconfig.display()))?;
    let client = rkube_machinery::client::client(client_config)?;
    let listener = tokio::net::TcpListener::bind(args.bind_address)
        .await
        .with_context(|| format!("listening on {}", args.bind_address))?;
    let address = listener.local_addr().unwrap_or(args.bind_address);
    tracing::info!(%address, "serving /healthz, /readyz and /metrics");
    let mut opts = Options::new(client, config);
    opts.listener = Some(listener);
    rkube_scheduler::run(opts, shutdown_signal()).await?;
    Ok(())
}
