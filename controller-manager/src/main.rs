//! `rkube-controller-manager`: runs rkube's controllers against an API server.

// Many small, short-lived allocations per event: mimalloc handles them better than glibc.
#[global_allocator]
static GLOBAL: rkube_alloc::Allocator = rkube_alloc::Allocator;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use rkube_controller_manager::config::parse_duration;
use rkube_controller_manager::{Config, run};
use rkube_machinery::process::shutdown_signal;

#[derive(Parser)]
#[command(
    name = "rkube-controller-manager",
    version,
    about = "rkube's controller manager: ReplicaSet, Deployment, Endpoints/EndpointSlice, garbage collector, namespace, node lifecycle and IPAM, ServiceAccount, CSR approving and signing, disruption (PodDisruptionBudget) controllers"
)]
struct Args {
    /// Kubeconfig of the API server (e.g. rkube-data/admin.kubeconfig).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: PathBuf,
    /// Take part in leader election through the kube-system/kube-controller-manager Lease; only
    /// the leader runs controllers.
    #[arg(long)]
    leader_elect: bool,
    /// Name of the leader election Lease (in kube-system).
    #[arg(long, default_value = "kube-controller-manager")]
    leader_elect_resource_name: String,
    /// Controllers to run: `*` for all, `name` to enable, `-name` to disable
    /// (e.g. `*,-garbage-collector-controller`).
    #[arg(long, value_delimiter = ',', default_value = "*")]
    controllers: Vec<String>,
    /// The pod network; when set, every Node gets a spec.podCIDR from it.
    #[arg(long)]
    cluster_cidr: Option<ipnet::Ipv4Net>,
    /// Prefix length of each node's pod CIDR.
    #[arg(long, default_value_t = 24)]
    node_cidr_mask_size: u8,
    /// How long a node may go without a heartbeat before it is marked Unknown.
    #[arg(long, default_value = "40s", value_parser = duration)]
    node_monitor_grace_period: Duration,
    /// How often node health is checked.
    #[arg(long, default_value = "5s", value_parser = duration)]
    node_monitor_period: Duration,
    /// How long a node that never reported gets before it is marked Unknown.
    #[arg(long, default_value = "60s", value_parser = duration)]
    node_startup_grace_period: Duration,
    /// The least time pods that do not tolerate a NoExecute taint of their node stay before
    /// they are evicted (0: at once; pods with a toleration leave after its tolerationSeconds).
    #[arg(long, default_value = "0s", value_parser = duration)]
    pod_eviction_timeout: Duration,
    /// Nodes per second that may be tainted NoExecute in a healthy zone.
    #[arg(long, default_value_t = 0.1)]
    node_eviction_rate: f64,
    /// Concurrent ReplicaSet syncs.
    #[arg(long, default_value_t = 5)]
    concurrent_replicaset_syncs: u16,
    /// Concurrent Deployment syncs.
    #[arg(long, default_value_t = 5)]
    concurrent_deployment_syncs: u16,
    /// Concurrent Endpoints and EndpointSlice syncs.
    #[arg(long, default_value_t = 5)]
    concurrent_endpoint_syncs: u16,
    /// Garbage collector workers.
    #[arg(long, default_value_t = 20)]
    concurrent_gc_syncs: u16,
    /// Concurrent namespace syncs.
    #[arg(long, default_value_t = 10)]
    concurrent_namespace_syncs: u16,
    /// Concurrent Job syncs.
    #[arg(long, default_value_t = 5)]
    concurrent_job_syncs: u16,
    /// Concurrent CronJob syncs.
    #[arg(long, default_value_t = 5)]
    concurrent_cron_job_syncs: u16,
    /// Concurrent syncs of the ttl-after-finished controller.
    #[arg(long = "concurrent-ttl-after-finished-syncs", default_value_t = 5)]
    concurrent_ttl_after_finished_syncs: u16,
    /// Run each controller with the credentials of its own ServiceAccount in kube-system
    /// (tokens the controller manager requests), as Kubernetes does: the controllers then hold
    /// only the rights of their `system:controller:*` roles, and the controller manager's own
    /// identity (`system:kube-controller-manager`) needs only its role.
    #[arg(long)]
    use_service_account_credentials: bool,
    /// The CA certificate (PEM) that signs the approved CertificateSigningRequests of the
    /// kubernetes.io signers; without it (and the key) they are not signed.
    #[arg(long, requires = "cluster_signing_key_file")]
    cluster_signing_cert_file: Option<PathBuf>,
    /// The private key (PEM) of --cluster-signing-cert-file.
    #[arg(long, requires = "cluster_signing_cert_file")]
    cluster_signing_key_file: Option<PathBuf>,
    /// The longest validity of a signed certificate (and that of requests naming none).
    #[arg(long, default_value = "8760h", value_parser = duration)]
    cluster_signing_duration: Duration,
    /// Address of /healthz, /readyz and /metrics (plain HTTP: loopback only).
    #[arg(long, default_value = "127.0.0.1:10257")]
    listen: SocketAddr,
}

fn duration(s: &str) -> Result<Duration, String> {
    parse_duration(s).map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    if !args.listen.ip().is_loopback() {
        bail!(
            "refusing to serve health and metrics on {}: plain HTTP is only allowed on a loopback address",
            args.listen
        );
    }
    let config = Config {
        controllers: args.controllers,
        leader_elect: args.leader_elect,
        leader_lease_name: args.leader_elect_resource_name,
        cluster_cidr: args.cluster_cidr,
        node_cidr_mask_size: args.node_cidr_mask_size,
        node_monitor_period: args.node_monitor_period,
        node_monitor_grace_period: args.node_monitor_grace_period,
        node_startup_grace_period: args.node_startup_grace_period,
        pod_eviction_timeout: args.pod_eviction_timeout,
        node_eviction_rate: args.node_eviction_rate,
        concurrent_replicaset_syncs: args.concurrent_replicaset_syncs.max(1),
        concurrent_deployment_syncs: args.concurrent_deployment_syncs.max(1),
        concurrent_endpoint_syncs: args.concurrent_endpoint_syncs.max(1),
        concurrent_gc_syncs: args.concurrent_gc_syncs.max(1),
        concurrent_namespace_syncs: args.concurrent_namespace_syncs.max(1),
        concurrent_job_syncs: args.concurrent_job_syncs.max(1),
        concurrent_cron_job_syncs: args.concurrent_cron_job_syncs.max(1),
        concurrent_ttl_after_finished_syncs: args.concurrent_ttl_after_finished_syncs.max(1),
        cluster_signing_cert_file: args.cluster_signing_cert_file,
        cluster_signing_key_file: args.cluster_signing_key_file,
        cluster_signing_duration: args.cluster_signing_duration,
        ..Config::default()
    };
    config.validate()?;
    let kubeconfig = kube::config::Kubeconfig::read_from(&args.kubeconfig)
        .with_context(|| format!("cannot read {}", args.kubeconfig.display()))?;
    let client_config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .context("invalid kubeconfig")?;
    let mut config = config;
    if args.use_service_account_credentials {
        config.service_account_credentials = Some(client_config.clone());
    }
    let client =
        rkube_machinery::client::client(client_config).context("cannot build the API client")?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(listen = %args.listen, "serving /healthz, /readyz and /metrics");
    run(config, client, Some(listener), shutdown_signal())
        .await
        .context("rkube-controller-manager failed")?;
    Ok(())
}
