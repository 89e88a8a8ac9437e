//! `rkube-apiserver`: the Kubernetes API server of rkube.

// Many small, short-lived allocations per request: mimalloc handles them better than glibc.
#[global_allocator]
static GLOBAL: rkube_alloc::Allocator = rkube_alloc::Allocator;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Parser;
use rkube_apiserver::audit::AuditConfig;
use rkube_apiserver::server::{Config, run};
use rkube_machinery::process::shutdown_signal;

#[derive(Parser)]
#[command(
    name = "rkube-apiserver",
    version,
    about = "rkube's Kubernetes API server"
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Directory of the embedded store, the PKI (pki/), encryption-config.yaml,
    /// admin.kubeconfig and the components' kubeconfigs (scheduler, controller-manager,
    /// kube-proxy).
    #[arg(long, default_value = "rkube-data")]
    data_dir: PathBuf,
    /// Address to serve HTTPS on (any address: TLS and authentication are always on).
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// Extra IPs or DNS names of the serving certificate (comma-separated or repeated).
    #[arg(long = "tls-san", value_delimiter = ',')]
    tls_san: Vec<String>,
    /// Static bearer tokens: CSV lines `token,user,uid,"group1,group2"`.
    #[arg(long)]
    token_auth_file: Option<PathBuf>,
    /// An EncryptionConfiguration (aesgcm, identity); default: DIR/encryption-config.yaml,
    /// generated at the first start (Secrets encrypted with a random key).
    #[arg(long)]
    encryption_provider_config: Option<PathBuf>,
    /// Write an audit log (JSON lines) to this file.
    #[arg(long)]
    audit_log_path: Option<PathBuf>,
    /// Rotate the audit log when it reaches this many megabytes.
    #[arg(long, default_value_t = 100)]
    audit_log_maxsize: u64,
    /// Rotated audit logs kept.
    #[arg(long, default_value_t = 5)]
    audit_log_maxbackup: usize,
    /// Requests served at once before 429 (watches and log follows excluded).
    #[arg(long, default_value_t = 400)]
    max_requests_inflight: usize,
    /// Watches one user may hold open before 429.
    #[arg(long, default_value_t = 1000)]
    max_watches_per_user: usize,
    /// The client certificate (PEM) presented to kubelets (logs, node proxy); default:
    /// `kube-apiserver-kubelet-client` from the cluster CA (bound to system:kubelet-api-admin).
    #[arg(long, requires = "kubelet_client_key")]
    kubelet_client_certificate: Option<PathBuf>,
    /// The private key of --kubelet-client-certificate.
    #[arg(long, requires = "kubelet_client_certificate")]
    kubelet_client_key: Option<PathBuf>,
    /// The CA (PEM) kubelets' serving certificates must verify against; without it they are
    /// not verified (kubelets serve self-signed certificates by default).
    #[arg(long)]
    kubelet_certificate_authority: Option<PathBuf>,
    /// The address pods reach this server at (the `kubernetes` Service's endpoint); default:
    /// the --listen address unless it is loopback or 0.0.0.0.
    #[arg(long)]
    advertise_address: Option<std::net::IpAddr>,
    /// etcd client URLs (comma-separated); the embedded store is used when absent.
    #[arg(long, value_delimiter = ',')]
    etcd_servers: Vec<String>,
    /// The range service ClusterIPs are allocated from.
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cluster_ip_range: ipnet::Ipv4Net,
    /// The range of NodePorts, e.g. 30000-32767.
    #[arg(long, default_value = "30000-32767")]
    service_node_port_range: String,
    /// Seconds pods tolerate the node.kubernetes.io/not-ready:NoExecute taint unless they
    /// tolerate it themselves (DefaultTolerationSeconds admission).
    #[arg(long, default_value_t = 300)]
    default_not_ready_toleration_seconds: i64,
    /// Seconds pods tolerate the node.kubernetes.io/unreachable:NoExecute taint unless they
    /// tolerate it themselves (DefaultTolerationSeconds admission).
    #[arg(long, default_value_t = 300)]
    default_unreachable_toleration_seconds: i64,
    /// The Pod Security level (privileged, baseline, restricted) enforced in namespaces
    /// without a `pod-security.kubernetes.io/enforce` label.
    #[arg(long, default_value = "baseline")]
    pod_security_default: rkube_apiserver::pod_security::Level,
    /// How often storage history is compacted, in seconds.
    #[arg(long, default_value_t = 300)]
    compaction_interval_seconds: u64,
    /// How long Events are kept after their last write (a Go duration: 1h, 30m, 90s).
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    event_ttl: std::time::Duration,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Print a kubeconfig for a user with a client certificate of the cluster CA in
    /// DIR/pki/ (the server must have started once) — e.g. a kubelet's:
    /// `--user system:node:NAME --group system:nodes`.
    Kubeconfig {
        /// The API server's data directory (its pki/ holds the CA).
        #[arg(long, default_value = "rkube-data")]
        data_dir: PathBuf,
        /// The user (certificate CN).
        #[arg(long)]
        user: String,
        /// A group (certificate O); repeat for more.
        #[arg(long = "group")]
        groups: Vec<String>,
        /// The API server's URL in the kubeconfig.
        #[arg(long, default_value = "https://127.0.0.1:6443")]
        server: String,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = 365)]
        days: u64,
    },
}

/// `rkube-apiserver kubeconfig`: a client certificate from the CA, as a kubeconfig on stdout.
fn print_kubeconfig(
    data_dir: &std::path::Path,
    user: &str,
    groups: &[String],
    server: &str,
    days: u64,
) -> anyhow::Result<()> {
    use rkube_apiserver::kubeconfig::{Credentials, render};
    let pki_dir = data_dir.join("pki");
    if !pki_dir.join("ca.crt").exists() {
        bail!(
            "no cluster CA in {}: start rkube-apiserver with --data-dir {} once first",
            pki_dir.display(),
            data_dir.display()
        );
    }
    let pki = rkube_apiserver::pki::Pki::load_or_create(&pki_dir)?;
    let cert = pki.issue_client(
        user,
        groups,
        std::time::Duration::from_secs(days.max(1) * 24 * 3600),
    )?;
    let creds = Credentials::Certificate {
        cert_pem: cert.cert_pem,
        key_pem: cert.key_pem,
    };
    print!("{}", render(server, pki.ca_pem(), user, &creds));
    Ok(())
}

/// A Go duration flag value (`1h`, `30m`, `90s`).
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    rkube_machinery::duration::parse(s)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{s:?} is not a duration (like 1h, 30m or 90s)"))
}

fn parse_port_range(s: &str) -> anyhow::Result<std::ops::RangeInclusive<u16>> {
    let (a, b) = s
        .split_once('-')
        .context("--service-node-port-range must look like 30000-32767")?;
    let (a, b): (u16, u16) = (a.trim().parse()?, b.trim().parse()?);
    if a == 0 || a > b {
        bail!(
            "--service-node-port-range {s}: the first port must be 1 or more and not above the last"
        );
    }
    Ok(a..=b)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    if let Some(Command::Kubeconfig {
        data_dir,
        user,
        groups,
        server,
        days,
    }) = &args.command
    {
        return print_kubeconfig(data_dir, user, groups, server, *days);
    }
    if args.audit_log_maxsize == 0 {
        bail!("--audit-log-maxsize must be at least 1 (megabyte)");
    }
    let mut config = Config::new(&args.data_dir);
    config.tls_sans = args.tls_san;
    config.token_auth_file = args.token_auth_file;
    config.encryption_provider_config = args.encryption_provider_config;
    config.audit = args.audit_log_path.map(|path| AuditConfig {
        path,
        max_size: args.audit_log_maxsize * 1024 * 1024,
        max_backups: args.audit_log_maxbackup,
    });
    config.max_requests_inflight = args.max_requests_inflight;
    config.max_watches_per_user = args.max_watches_per_user;
    config.kubelet_client = rkube_apiserver::kubelet::KubeletClientConfig {
        client_certificate: args.kubelet_client_certificate,
        client_key: args.kubelet_client_key,
        certificate_authority: args.kubelet_certificate_authority,
    };
    config.advertise_address = args.advertise_address;
    config.etcd_servers = args.etcd_servers;
    config.settings.service_cidr = args.service_cluster_ip_range;
    config.settings.node_ports = parse_port_range(&args.service_node_port_range)?;
    config.settings.default_not_ready_toleration_seconds =
        args.default_not_ready_toleration_seconds;
    config.settings.default_unreachable_toleration_seconds =
        args.default_unreachable_toleration_seconds;
    config.settings.pod_security_default = args.pod_security_default;
    config.compaction_interval =
        std::time::Duration::from_secs(args.compaction_interval_seconds.max(1));
    config.event_ttl = args.event_ttl;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    run(config, listener, shutdown_signal())
        .await
        .context("rkube-apiserver failed")?;
    Ok(())
}
