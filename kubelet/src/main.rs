//! The `rkubelet` binary: parses the flags into a [`rkube_kubelet::Config`] and runs the
//! kubelet until SIGINT or SIGTERM.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use rkube_kubelet::config::{self, ManagedContainerd};
use rkube_kubelet::{Config, RuntimeMode};
use rkube_machinery::process::{describe, shutdown_signal};

#[global_allocator]
static GLOBAL: rkube_alloc::Allocator = rkube_alloc::Allocator;

/// rkubelet: runs the pods bound to this node through CRI (containerd).
#[derive(Parser, Debug)]
#[command(name = "rkubelet", version)]
struct Args {
    /// Kubeconfig for the API server.
    #[arg(long)]
    kubeconfig: PathBuf,
    /// This node's name.
    #[arg(long)]
    node_name: String,
    /// Where pods' volumes and logs (and the managed containerd) live.
    #[arg(long)]
    data_dir: PathBuf,
    /// The CRI endpoint of a running containerd.
    #[arg(long, conflicts_with = "managed_containerd")]
    container_runtime_endpoint: Option<String>,
    /// Start and supervise containerd with its state under the data dir.
    #[arg(long)]
    managed_containerd: bool,
    /// The sandbox (pause) image the managed containerd uses [default: registry.k8s.io/pause:3.9].
    #[arg(long, requires = "managed_containerd")]
    sandbox_image: Option<String>,
    /// The node's InternalIP (default: the default route's interface address).
    #[arg(long)]
    node_ip: Option<IpAddr>,
    /// Cluster DNS server(s) for ClusterFirst pods, comma-separated.
    #[arg(long, value_delimiter = ',')]
    cluster_dns: Vec<IpAddr>,
    /// The cluster domain.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// The kubelet's API port (HTTPS: logs, metrics, stats).
    #[arg(long, default_value_t = config::DEFAULT_PORT)]
    port: u16,
    /// The address the API port listens on.
    #[arg(long, default_value = "0.0.0.0")]
    address: IpAddr,
    /// The serving certificate of the API port (PEM); without it, a self-signed one is made in
    /// --cert-dir.
    #[arg(long, requires = "tls_private_key_file")]
    tls_cert_file: Option<PathBuf>,
    /// The private key of --tls-cert-file.
    #[arg(long, requires = "tls_cert_file")]
    tls_private_key_file: Option<PathBuf>,
    /// Where the self-signed serving certificate is kept [default: DATA_DIR/pki].
    #[arg(long)]
    cert_dir: Option<PathBuf>,
    /// Client certificates of this CA (PEM) authenticate (CN the user, O the groups); bearer
    /// tokens are checked with the API server (TokenReview) in any case.
    #[arg(long)]
    client_ca_file: Option<PathBuf>,
    /// Let requests without credentials through as system:anonymous (then authorized like
    /// any other) instead of answering 401.
    #[arg(long, num_args = 0..=1, default_value_t = false, default_missing_value = "true",
          action = clap::ArgAction::Set)]
    anonymous_auth: bool,
    /// The loopback port of plain-HTTP /healthz (0: not served).
    #[arg(long, default_value_t = config::DEFAULT_HEALTHZ_PORT)]
    healthz_port: u16,
    /// A directory of OCI/docker image tarballs to import at start and when they appear.
    #[arg(long)]
    images_dir: Option<PathBuf>,
    /// The most pods this node runs.
    #[arg(long, default_value_t = 110)]
    max_pods: u32,
    /// Taints to register the Node with: key[=value]:Effect, comma-separated.
    #[arg(long, default_value = "")]
    register_with_taints: String,
    /// Labels to add to the Node: key=value, comma-separated.
    #[arg(long, default_value = "")]
    node_labels: String,
    /// Let containers with `securityContext.privileged: true` run.
    #[arg(long)]
    allow_privileged: bool,
    /// `fake` runs the in-process hollow runtime (scale tests only).
    #[arg(long, value_parser = ["containerd", "fake"], default_value = "containerd")]
    runtime: String,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match Box::pin(run()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rkubelet: {}", describe(&*e));
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let mut cfg = Config::new(args.node_name, args.data_dir);
    cfg.kubeconfig = Some(args.kubeconfig);
    cfg.runtime = if args.runtime == "fake" {
        RuntimeMode::Fake(Default::default())
    } else if args.managed_containerd {
        let mut m = ManagedContainerd::default();
        if let Some(image) = args.sandbox_image {
            m.sandbox_image = image;
        }
        RuntimeMode::Managed(m)
    } else {
        RuntimeMode::Remote {
            endpoint: args
                .container_runtime_endpoint
                .unwrap_or_else(|| "unix:///run/containerd/containerd.sock".into()),
        }
    };
    cfg.node_ip = args.node_ip;
    cfg.cluster_dns = args.cluster_dns;
    cfg.cluster_domain = args.cluster_domain;
    cfg.listen = SocketAddr::from((args.address, args.port));
    cfg.serving = config::ServingConfig {
        tls_cert_file: args.tls_cert_file,
        tls_private_key_file: args.tls_private_key_file,
        cert_dir: args.cert_dir,
        client_ca_file: args.client_ca_file,
        anonymous_auth: args.anonymous_auth,
        healthz_port: (args.healthz_port != 0).then_some(args.healthz_port),
        ..Default::default()
    };
    cfg.images_dir = args.images_dir;
    cfg.max_pods = args.max_pods;
    cfg.allow_privileged = args.allow_privileged;
    cfg.register_with_taints =
        config::parse_taints(&args.register_with_taints).context("--register-with-taints")?;
    cfg.node_labels = config::parse_labels(&args.node_labels).context("--node-labels")?;
    rkube_kubelet::run(cfg, shutdown_signal()).await?;
    Ok(())
}
