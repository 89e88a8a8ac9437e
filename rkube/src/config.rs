//! What `rkube server` and `rkube agent` run and where: the settings their flags set
//! ([`ServerConfig`], [`AgentConfig`], and the node settings both share, [`NodeConfig`]), the
//! components that can be disabled ([`Component`]) and the layout of the data directory
//! ([`Layout`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Taint;

use crate::token::JoinToken;

/// Why the settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The cluster DNS address is not a usable address of the service range.
    #[error(
        "--cluster-dns {dns} must be an address of --service-cidr {cidr} other than its first \
         (the kubernetes Service's ClusterIP) and its last"
    )]
    DnsOutsideServices {
        /// The DNS address.
        dns: Ipv4Addr,
        /// The service range.
        cidr: Ipv4Net,
    },
    /// The pod and service ranges overlap.
    #[error("--cluster-cidr {pods} and --service-cidr {services} overlap")]
    Overlap {
        /// The pod range.
        pods: Ipv4Net,
        /// The service range.
        services: Ipv4Net,
    },
    /// The pod range is too small to give a node a /24.
    #[error("--cluster-cidr {0} is too small: nodes get a /24 each (use a /23 or larger)")]
    ClusterCidrTooSmall(Ipv4Net),
    /// The node name is not a DNS subdomain.
    #[error(
        "node name {0:?} is not a lowercase DNS subdomain (a-z, 0-9, '-' and '.', at most 253 \
         characters); pass --node-name"
    )]
    NodeName(String),
    /// The host name could not be read for the default node name.
    #[error("cannot read the host name for the node name ({0}); pass --node-name")]
    Hostname(String),
    /// A `--node-label` or `--node-taint` is malformed.
    #[error(transparent)]
    Kubelet(#[from] rkube_kubelet::config::ConfigError),
    /// The HTTPS port is 0.
    #[error("--https-listen-port must not be 0")]
    Port,
    /// The data directory is unusable.
    #[error("--data-dir {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// A component `rkube server` runs, unless `--disable`d.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Component {
    /// The scheduler.
    Scheduler,
    /// The controller manager (without it nodes get no pod CIDR, so pods get no network).
    ControllerManager,
    /// The cluster DNS (served only with the local agent: it answers on the pod network).
    #[value(alias = "coredns")]
    Dns,
    /// The service proxy of the local agent.
    #[value(alias = "kube-proxy")]
    Proxy,
    /// The local agent: kubelet (with managed containerd) and proxy.
    Agent,
}

impl Component {
    /// The name used in logs and flags.
    pub fn name(self) -> &'static str {
        match self {
            Component::Scheduler => "scheduler",
            Component::ControllerManager => "controller-manager",
            Component::Dns => "dns",
            Component::Proxy => "proxy",
            Component::Agent => "agent",
        }
    }
}

/// What a node runs with — the settings `rkube server`'s local agent and `rkube agent` share
/// (same flags, same meaning).
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// This machine's node name.
    pub node_name: String,
    /// The node's InternalIP; `None`: detected (on a server the address of the default
    /// route's interface, on an agent the address it reaches its server from).
    pub node_ip: Option<IpAddr>,
    /// The pod network; every node gets a /24 of it (the proxy masquerades ClusterIP clients
    /// outside it).
    pub cluster_cidr: Ipv4Net,
    /// The kube-dns Service's ClusterIP, pods' nameserver.
    pub cluster_dns: Ipv4Addr,
    /// The cluster domain.
    pub cluster_domain: String,
    /// Extra labels of the node.
    pub node_labels: BTreeMap<String, String>,
    /// Taints the node registers with.
    pub node_taints: Vec<Taint>,
    /// The cgroup pods' QoS cgroups go under.
    pub cgroup_root: String,
    /// A running CRI runtime to use instead of the managed containerd.
    pub container_runtime_endpoint: Option<String>,
}

impl NodeConfig {
    /// Defaults for a node named `node_name`.
    pub fn new(node_name: impl Into<String>) -> Self {
        NodeConfig {
            node_name: node_name.into(),
            node_ip: None,
            cluster_cidr: Ipv4Net::new(Ipv4Addr::new(10, 244, 0, 0), 16).expect("prefix"),
            cluster_dns: Ipv4Addr::new(10, 96, 0, 10),
            cluster_domain: "cluster.local".into(),
            node_labels: BTreeMap::new(),
            node_taints: Vec::new(),
            cgroup_root: "/kubepods".into(),
            container_runtime_endpoint: None,
        }
    }

    /// Checks what a node alone can check: its name and the pod network's size.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.cluster_cidr.trunc().prefix_len() >= NODE_CIDR_MASK {
            return Err(ConfigError::ClusterCidrTooSmall(self.cluster_cidr));
        }
        if !valid_node_name(&self.node_name) {
            return Err(ConfigError::NodeName(self.node_name.clone()));
        }
        Ok(())
    }
}

/// Everything `rkube server` needs.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The data directory (absolute).
    pub data_dir: PathBuf,
    /// etcd client URLs; empty: the embedded store under the data directory.
    pub etcd_servers: Vec<String>,
    /// Where the API server listens.
    pub bind_address: IpAddr,
    /// The API server's port.
    pub https_listen_port: u16,
    /// Extra names and IPs of the serving certificate.
    pub tls_sans: Vec<String>,
    /// Components not to run.
    pub disabled: BTreeSet<Component>,
    /// The range Service ClusterIPs come from.
    pub service_cidr: Ipv4Net,
    /// The server's own node (its local agent).
    pub node: NodeConfig,
    /// How often `DATA/manifests/` is checked for changes.
    pub manifests_poll: Duration,
    /// How long a node may go without a heartbeat before it is marked NotReady.
    pub node_monitor_grace_period: Duration,
    /// Seconds pods tolerate a not-ready node by default.
    pub default_not_ready_toleration_seconds: i64,
    /// Seconds pods tolerate an unreachable node by default.
    pub default_unreachable_toleration_seconds: i64,
    /// How long Events are kept after their last write.
    pub event_ttl: Duration,
}

/// The node CIDR size the controller manager hands out.
pub const NODE_CIDR_MASK: u8 = 24;

impl ServerConfig {
    /// Defaults for `data_dir` (made absolute) with the given node name; the API server on
    /// every address (`0.0.0.0`: agents must reach it; TLS and authentication are always on).
    pub fn new(data_dir: impl AsRef<Path>, node_name: impl Into<String>) -> Self {
        ServerConfig {
            data_dir: absolute(data_dir.as_ref()),
            etcd_servers: Vec::new(),
            bind_address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            https_listen_port: 6443,
            tls_sans: Vec::new(),
            disabled: BTreeSet::new(),
            service_cidr: Ipv4Net::new(Ipv4Addr::new(10, 96, 0, 0), 12).expect("prefix"),
            node: NodeConfig::new(node_name),
            manifests_poll: Duration::from_secs(2),
            node_monitor_grace_period: Duration::from_secs(40),
            default_not_ready_toleration_seconds: 300,
            default_unreachable_toleration_seconds: 300,
            event_ttl: rkube_apiserver::event_ttl::DEFAULT_TTL,
        }
    }

    /// Whether `c` runs (the proxy and DNS also need the agent).
    pub fn runs(&self, c: Component) -> bool {
        let agent = !self.disabled.contains(&Component::Agent);
        !self.disabled.contains(&c)
            && match c {
                Component::Proxy | Component::Dns => agent,
                _ => true,
            }
    }

    /// Checks the settings against each other.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.https_listen_port == 0 {
            return Err(ConfigError::Port);
        }
        let svc = self.service_cidr.trunc();
        let dns = self.node.cluster_dns;
        let dns_ok = svc.contains(&dns)
            && svc.hosts().next() != Some(dns)
            && dns != svc.broadcast()
            && dns != svc.network();
        if !dns_ok {
            return Err(ConfigError::DnsOutsideServices {
                dns,
                cidr: self.service_cidr,
            });
        }
        let pods = self.node.cluster_cidr.trunc();
        if pods.contains(&svc) || svc.contains(&pods) {
            return Err(ConfigError::Overlap {
                pods: self.node.cluster_cidr,
                services: self.service_cidr,
            });
        }
        self.node.validate()
    }

    /// Where the API server listens.
    pub fn listen_addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind_address, self.https_listen_port)
    }

    /// The URL components on this machine reach the API server at (`0.0.0.0` → loopback).
    pub fn local_server_url(&self) -> String {
        let host = match self.bind_address {
            IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".to_string(),
            IpAddr::V6(ip) if ip.is_unspecified() => "[::1]".to_string(),
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => format!("[{ip}]"),
        };
        format!("https://{host}:{}", self.https_listen_port)
    }

    /// The data directory's layout.
    pub fn layout(&self) -> Layout {
        Layout::new(&self.data_dir)
    }
}

/// Everything `rkube agent` needs.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The data directory (absolute); the agent keeps everything under `DATA/agent/`.
    pub data_dir: PathBuf,
    /// The server's URL (`https://SERVER:6443`).
    pub server: String,
    /// The join token.
    pub token: JoinToken,
    /// The node's settings.
    pub node: NodeConfig,
    /// How long joining waits for the server to answer and for each certificate to be signed.
    pub join_timeout: Duration,
}

impl AgentConfig {
    /// Defaults for `data_dir` (made absolute), `server`, `token` and the node `node_name`.
    pub fn new(
        data_dir: impl AsRef<Path>,
        server: impl Into<String>,
        token: JoinToken,
        node_name: impl Into<String>,
    ) -> Self {
        AgentConfig {
            data_dir: absolute(data_dir.as_ref()),
            server: server.into(),
            token,
            node: NodeConfig::new(node_name),
            join_timeout: Duration::from_secs(300),
        }
    }

    /// The data directory's layout.
    pub fn layout(&self) -> Layout {
        Layout::new(&self.data_dir)
    }
}

/// `path` made absolute against the current directory (not resolving links: the directory
/// may not exist yet).
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// A lowercase RFC 1123 subdomain, as node names must be.
pub fn valid_node_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// The default node name: the host name, lowercased.
pub fn default_node_name() -> Result<String, ConfigError> {
    let name = nix::unistd::gethostname()
        .map_err(|e| ConfigError::Hostname(e.to_string()))?
        .to_string_lossy()
        .to_lowercase();
    Ok(name)
}

/// The files and directories under the data directory.
#[derive(Clone, Debug)]
pub struct Layout {
    /// The data directory.
    pub root: PathBuf,
}

impl Layout {
    /// The layout under `root`.
    pub fn new(root: &Path) -> Self {
        Layout {
            root: root.to_path_buf(),
        }
    }

    /// The cluster CA and the API server's certificates (`DATA/pki`).
    pub fn pki(&self) -> PathBuf {
        self.root.join("pki")
    }

    /// The admin kubeconfig the API server writes.
    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.root.join("admin.kubeconfig")
    }

    /// The token agents join with.
    pub fn node_token(&self) -> PathBuf {
        self.root.join("node-token")
    }

    /// The components' kubeconfigs (`DATA/kubeconfigs`).
    pub fn kubeconfigs(&self) -> PathBuf {
        self.root.join("kubeconfigs")
    }

    /// The kubeconfig of one identity.
    pub fn kubeconfig(&self, name: &str) -> PathBuf {
        self.kubeconfigs().join(format!("{name}.kubeconfig"))
    }

    /// The manifests applied at start and on change (`DATA/manifests`).
    pub fn manifests(&self) -> PathBuf {
        self.root.join("manifests")
    }

    /// The local agent's kubelet data (`DATA/agent`: containerd, CNI, pod volumes, logs).
    pub fn agent(&self) -> PathBuf {
        self.root.join("agent")
    }

    /// Image tarballs imported into containerd (`DATA/agent/images`).
    pub fn images(&self) -> PathBuf {
        self.agent().join("images")
    }

    /// A joined agent's certificates (`DATA/agent/pki`): the cluster CA, the kubelet's client
    /// and serving certificates, the proxy's client certificate.
    pub fn agent_pki(&self) -> PathBuf {
        self.agent().join("pki")
    }

    /// A joined agent's kubeconfig of one identity (`DATA/agent/<name>.kubeconfig`).
    pub fn agent_kubeconfig(&self, name: &str) -> PathBuf {
        self.agent().join(format!("{name}.kubeconfig"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_flag() {
        let mut c = ServerConfig::new("/d", "node-1");
        c.validate().unwrap();
        c.node.cluster_dns = Ipv4Addr::new(10, 200, 0, 10);
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("--cluster-dns 10.200.0.10"), "{e}");
        c.node.cluster_dns = Ipv4Addr::new(10, 96, 0, 1);
        assert!(c.validate().is_err());
        c.node.cluster_dns = Ipv4Addr::new(10, 96, 0, 10);
        c.node.cluster_cidr = "10.96.0.0/16".parse().unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("overlap"));
        c.node.cluster_cidr = "10.244.0.0/24".parse().unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("too small"));
        c.node.cluster_cidr = "10.244.0.0/16".parse().unwrap();
        c.node.node_name = "My_Host".into();
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("--node-name")
        );
    }

    #[test]
    fn node_names() {
        assert!(valid_node_name("a.b-c.d1"));
        assert!(!valid_node_name("-a"));
        assert!(!valid_node_name("a..b"));
        assert!(!valid_node_name("A"));
        assert!(!valid_node_name(""));
    }

    #[test]
    fn server_url_and_runs() {
        let mut c = ServerConfig::new("rel", "n");
        assert!(c.data_dir.is_absolute());
        assert_eq!(c.local_server_url(), "https://127.0.0.1:6443");
        c.bind_address = "0.0.0.0".parse().unwrap();
        c.https_listen_port = 7443;
        assert_eq!(c.local_server_url(), "https://127.0.0.1:7443");
        c.bind_address = "10.0.0.5".parse().unwrap();
        assert_eq!(c.local_server_url(), "https://10.0.0.5:7443");
        assert!(c.runs(Component::Dns));
        c.disabled.insert(Component::Agent);
        assert!(!c.runs(Component::Dns) && !c.runs(Component::Proxy));
        assert!(c.runs(Component::Scheduler));
    }
}
