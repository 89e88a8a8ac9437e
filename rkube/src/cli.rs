//! The `rkube` command line (k3s' flag names where rkube has the same setting) and its
//! mapping to a [`ServerConfig`] or an [`AgentConfig`]; the node flags ([`NodeArgs`]) are
//! the same for both.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use ipnet::Ipv4Net;

use crate::config::{
    AgentConfig, Component, ConfigError, NodeConfig, ServerConfig, default_node_name,
};
use crate::token::{JoinToken, TokenError};

/// The default data directory (k3s: /var/lib/rancher/k3s).
pub const DEFAULT_DATA_DIR: &str = "/var/lib/rkube";

/// rkube: a Kubernetes-style cluster in one binary.
#[derive(Debug, Parser)]
#[command(name = "rkube", version)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a server: API server, scheduler, controller manager, cluster DNS and (unless
    /// disabled) a local agent — kubelet with managed containerd, and proxy — in one process.
    Server(ServerArgs),
    /// Join a server as a node (with a join token) and run its kubelet and proxy.
    Agent(AgentArgs),
    /// Create, list and delete join tokens (with the server's admin kubeconfig).
    Token(TokenArgs),
}

/// The settings of this machine's node, shared by `rkube server` and `rkube agent`.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// This node's name [default: the host name].
    #[arg(long)]
    pub node_name: Option<String>,
    /// This node's InternalIP [default: on a server the address of the default route's
    /// interface, on an agent the address it reaches the server from].
    #[arg(long)]
    pub node_ip: Option<IpAddr>,
    /// The pod network; every node gets a /24 of it.
    #[arg(long, default_value = "10.244.0.0/16")]
    pub cluster_cidr: Ipv4Net,
    /// The cluster DNS Service's ClusterIP (pods' nameserver), inside the server's
    /// --service-cidr.
    #[arg(long, default_value = "10.96.0.10")]
    pub cluster_dns: Ipv4Addr,
    /// The cluster domain.
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    /// A label of this node, key=value (repeatable).
    #[arg(long = "node-label")]
    pub node_label: Vec<String>,
    /// A taint this node registers with, key[=value]:Effect (repeatable).
    #[arg(long = "node-taint")]
    pub node_taint: Vec<String>,
    /// The cgroup the pods' cgroups go under.
    #[arg(long, default_value = "/kubepods")]
    pub cgroup_root: String,
    /// Use this running CRI runtime instead of starting containerd
    /// (e.g. unix:///run/containerd/containerd.sock).
    #[arg(long)]
    pub container_runtime_endpoint: Option<String>,
}

impl NodeArgs {
    /// The node settings these flags describe (not yet checked).
    pub fn into_config(self) -> Result<NodeConfig, ConfigError> {
        let node_name = match self.node_name {
            Some(n) => n,
            None => default_node_name()?,
        };
        let mut n = NodeConfig::new(node_name);
        n.node_ip = self.node_ip;
        n.cluster_cidr = self.cluster_cidr;
        n.cluster_dns = self.cluster_dns;
        n.cluster_domain = self.cluster_domain;
        n.node_labels = rkube_kubelet::config::parse_labels(&self.node_label.join(","))?;
        n.node_taints = rkube_kubelet::config::parse_taints(&self.node_taint.join(","))?;
        n.cgroup_root = self.cgroup_root;
        n.container_runtime_endpoint = self.container_runtime_endpoint;
        Ok(n)
    }
}

/// `rkube server`'s flags.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The data directory: store, PKI, kubeconfigs, node token, manifests, agent state.
    #[arg(short = 'd', long, default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// etcd client URLs (comma-separated); the embedded store in the data directory when
    /// absent.
    #[arg(long, value_delimiter = ',')]
    pub etcd_servers: Vec<String>,
    /// Components not to run (comma-separated or repeated).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub disable: Vec<Component>,
    /// The address the API server listens on (TLS and authentication are always on; agents
    /// must reach it; 127.0.0.1 keeps it on this machine).
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_address: IpAddr,
    /// The API server's HTTPS port.
    #[arg(long, default_value_t = 6443)]
    pub https_listen_port: u16,
    /// Extra IPs or DNS names of the API server's certificate (comma-separated or repeated).
    #[arg(long = "tls-san", value_delimiter = ',')]
    pub tls_san: Vec<String>,
    /// The range Service ClusterIPs are allocated from.
    #[arg(long, default_value = "10.96.0.0/12")]
    pub service_cidr: Ipv4Net,
    /// How long a node may go without a heartbeat before the controller manager marks it
    /// NotReady (Unknown) and taints it (kube-controller-manager's flag; e.g. 40s, 1m).
    #[arg(long, default_value = "40s", value_parser = duration)]
    pub node_monitor_grace_period: Duration,
    /// Seconds pods stay on a not-ready node (tainted `node.kubernetes.io/not-ready:NoExecute`)
    /// before they are evicted, unless they tolerate it themselves (kube-apiserver's
    /// DefaultTolerationSeconds).
    #[arg(long, default_value_t = 300)]
    pub default_not_ready_toleration_seconds: u32,
    /// Seconds pods stay on an unreachable node (`node.kubernetes.io/unreachable:NoExecute`)
    /// before they are evicted, unless they tolerate it themselves.
    #[arg(long, default_value_t = 300)]
    pub default_unreachable_toleration_seconds: u32,
    /// How long Events are kept after their last write (kube-apiserver's flag; e.g. 1h, 30m).
    #[arg(long, default_value = "1h", value_parser = positive_duration)]
    pub event_ttl: Duration,
    /// This machine's node.
    #[command(flatten)]
    pub node: NodeArgs,
}

fn duration(s: &str) -> Result<Duration, String> {
    rkube_controller_manager::config::parse_duration(s).map_err(|e| e.to_string())
}

fn positive_duration(s: &str) -> Result<Duration, String> {
    duration(s).and_then(|d| {
        (!d.is_zero())
            .then_some(d)
            .ok_or_else(|| "must be longer than 0".to_string())
    })
}

impl ServerArgs {
    /// The configuration these flags describe, checked.
    pub fn into_config(self) -> Result<ServerConfig, ConfigError> {
        let node = self.node.into_config()?;
        let mut c = ServerConfig::new(&self.data_dir, node.node_name.clone());
        c.node = node;
        c.etcd_servers = self
            .etcd_servers
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect();
        c.disabled = self.disable.into_iter().collect();
        c.bind_address = self.bind_address;
        c.https_listen_port = self.https_listen_port;
        c.tls_sans = self.tls_san;
        c.service_cidr = self.service_cidr;
        c.node_monitor_grace_period = self.node_monitor_grace_period;
        c.default_not_ready_toleration_seconds = self.default_not_ready_toleration_seconds.into();
        c.default_unreachable_toleration_seconds =
            self.default_unreachable_toleration_seconds.into();
        c.event_ttl = self.event_ttl;
        c.validate()?;
        Ok(c)
    }
}

/// `rkube agent`'s flags.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The server to join, e.g. https://SERVER:6443.
    #[arg(short = 's', long, env = "RKUBE_URL")]
    pub server: String,
    /// The join token: the server's DATA/node-token, or one from `rkube token create`
    /// (K10<CA hash>::<id>.<secret>).
    #[arg(short = 't', long, env = "RKUBE_TOKEN", hide_env_values = true)]
    pub token: String,
    /// The data directory: credentials, kubelet and containerd state (under agent/).
    #[arg(short = 'd', long, default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// This machine's node.
    #[command(flatten)]
    pub node: NodeArgs,
}

/// Why `rkube agent`'s flags are unusable.
#[derive(Debug, thiserror::Error)]
pub enum AgentArgsError {
    /// A node setting is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The token is not a join token.
    #[error("--token: {0}")]
    Token(#[from] TokenError),
    /// The server URL is wrong.
    #[error(transparent)]
    Server(#[from] crate::trust::TrustError),
}

impl AgentArgs {
    /// The configuration these flags describe, checked.
    pub fn into_config(self) -> Result<AgentConfig, AgentArgsError> {
        crate::trust::host_port(&self.server)?;
        let token = JoinToken::parse(&self.token)?;
        let node = self.node.into_config()?;
        node.validate()?;
        let mut c = AgentConfig::new(&self.data_dir, self.server, token, node.node_name.clone());
        c.node = node;
        Ok(c)
    }
}

/// `rkube token`'s subcommands and flags.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: TokenCommand,
    /// The server's data directory (its admin.kubeconfig is used).
    #[arg(short = 'd', long, default_value = DEFAULT_DATA_DIR, global = true)]
    pub data_dir: PathBuf,
}

/// `rkube token` subcommands (as `kubeadm token`).
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a join token and print it.
    Create {
        /// How long it is valid (e.g. 24h, 90m; 0: never expires).
        #[arg(long, default_value = "24h")]
        ttl: String,
        /// A description shown by `rkube token list`.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List the join tokens (ids, not secrets).
    List,
    /// Delete (revoke) join tokens: agents can no longer join with them.
    Delete {
        /// Token ids (or whole tokens).
        #[arg(required = true)]
        tokens: Vec<String>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(args: &[&str]) -> Result<ServerArgs, clap::Error> {
        let mut argv = vec!["rkube", "server"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).map(|c| match c.command {
            Command::Server(s) => s,
            other => panic!("{other:?}"),
        })
    }

    fn agent(args: &[&str]) -> Result<AgentArgs, clap::Error> {
        let mut argv = vec!["rkube", "agent"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).map(|c| match c.command {
            Command::Agent(a) => a,
            other => panic!("{other:?}"),
        })
    }

    #[test]
    fn flags_map_to_the_config() {
        let c = server(&[
            "--data-dir",
            "/srv/rk",
            "--disable",
            "scheduler,coredns",
            "--disable=proxy",
            "--node-name",
            "n1",
            "--node-ip",
            "192.0.2.7",
            "--bind-address",
            "127.0.0.1",
            "--https-listen-port",
            "7443",
            "--etcd-servers",
            "http://127.0.0.1:2379,http://127.0.0.1:2389",
            "--node-label",
            "zone=a",
            "--node-taint",
            "gpu=yes:NoSchedule",
            "--node-monitor-grace-period",
            "20s",
            "--default-not-ready-toleration-seconds",
            "5",
            "--default-unreachable-toleration-seconds=7",
            "--event-ttl",
            "30m",
        ])
        .unwrap()
        .into_config()
        .unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/srv/rk"));
        assert_eq!(c.node_monitor_grace_period, Duration::from_secs(20));
        assert_eq!(c.default_not_ready_toleration_seconds, 5);
        assert_eq!(c.default_unreachable_toleration_seconds, 7);
        assert_eq!(c.event_ttl, Duration::from_secs(1800));
        assert_eq!(
            c.disabled.iter().copied().collect::<Vec<_>>(),
            [Component::Scheduler, Component::Dns, Component::Proxy]
        );
        assert_eq!(c.node.node_name, "n1");
        assert_eq!(c.node.node_ip, Some("192.0.2.7".parse().unwrap()));
        assert_eq!(c.listen_addr().to_string(), "127.0.0.1:7443");
        assert_eq!(c.etcd_servers.len(), 2);
        assert_eq!(c.node.node_labels["zone"], "a");
        assert_eq!(c.node.node_taints[0].effect, "NoSchedule");
        assert_eq!(c.node.cluster_dns, Ipv4Addr::new(10, 96, 0, 10));
        let d = server(&["--node-name", "n1"])
            .unwrap()
            .into_config()
            .unwrap();
        assert_eq!(d.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert!(d.disabled.is_empty());
        // Kubernetes' defaults.
        assert_eq!(d.node_monitor_grace_period, Duration::from_secs(40));
        assert_eq!(d.default_not_ready_toleration_seconds, 300);
        assert_eq!(d.default_unreachable_toleration_seconds, 300);
        assert_eq!(d.event_ttl, Duration::from_secs(3600));
        // Agents must reach the API server: every address by default.
        assert_eq!(d.listen_addr().to_string(), "0.0.0.0:6443");
    }

    #[test]
    fn agent_flags_share_the_node_flags() {
        let token = format!("K10{}::abcdef.0123456789abcdef", "ab".repeat(32));
        let c = agent(&[
            "--server",
            "https://10.99.0.2:6443",
            "--token",
            &token,
            "--node-name",
            "n2",
            "--node-ip",
            "10.99.0.3",
            "--node-label",
            "zone=b",
            "--cluster-cidr",
            "10.42.0.0/16",
            "-d",
            "/srv/agent",
        ])
        .unwrap()
        .into_config()
        .unwrap();
        assert_eq!(c.server, "https://10.99.0.2:6443");
        assert_eq!(c.token.token.id, "abcdef");
        assert_eq!(c.data_dir, PathBuf::from("/srv/agent"));
        assert_eq!(c.node.node_name, "n2");
        assert_eq!(c.node.node_ip, Some("10.99.0.3".parse().unwrap()));
        assert_eq!(c.node.node_labels["zone"], "b");
        assert_eq!(c.node.cluster_cidr.to_string(), "10.42.0.0/16");
        let e = agent(&[
            "--server",
            "https://s:6443",
            "--token",
            "nope",
            "--node-name",
            "n",
        ])
        .unwrap()
        .into_config()
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("--token: the token is not a join token"),
            "{e}"
        );
        let e = agent(&[
            "--server",
            "http://s:6443",
            "--token",
            &token,
            "--node-name",
            "n",
        ])
        .unwrap()
        .into_config()
        .unwrap_err()
        .to_string();
        assert!(e.contains("must be an https:// URL"), "{e}");
        let e = agent(&[
            "--server",
            "https://s",
            "--token",
            &token,
            "--node-name",
            "N_2",
        ])
        .unwrap()
        .into_config()
        .unwrap_err()
        .to_string();
        assert!(e.contains("--node-name"), "{e}");
    }

    #[test]
    fn token_subcommands() {
        let c =
            Cli::try_parse_from(["rkube", "token", "create", "--ttl", "2h", "-d", "/x"]).unwrap();
        match c.command {
            Command::Token(t) => {
                assert_eq!(t.data_dir, PathBuf::from("/x"));
                assert!(matches!(t.command, TokenCommand::Create { ref ttl, .. } if ttl == "2h"));
            }
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from(["rkube", "token", "delete"]).is_err());
    }

    #[test]
    fn bad_flags_are_refused() {
        let e = server(&["--disable", "nonsense"]).unwrap_err().to_string();
        assert!(e.contains("invalid value 'nonsense' for '--disable"), "{e}");
        assert!(server(&["--cluster-cidr", "10.244.0.0"]).is_err());
        let e = server(&["--node-name", "n", "--cluster-dns", "10.200.0.10"])
            .unwrap()
            .into_config()
            .unwrap_err()
            .to_string();
        assert!(e.contains("--cluster-dns"), "{e}");
        let e = server(&["--node-name", "n", "--node-taint", "x"])
            .unwrap()
            .into_config()
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid taint"), "{e}");
        for bad in ["0s", "soon"] {
            let e = server(&["--event-ttl", bad]).unwrap_err().to_string();
            assert!(e.contains("for '--event-ttl"), "{e}");
        }
    }
}
