//! The `rkube` command line (k3s' flag names where rkube has the same setting) and its
//! mapping to a [`ServerConfig`].

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use ipnet::Ipv4Net;

use crate::config::{Component, ConfigError, ServerConfig, default_node_name};

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
    /// This node's name [default: the host name].
    #[arg(long)]
    pub node_name: Option<String>,
    /// This node's InternalIP [default: the address of the default route's interface].
    #[arg(long)]
    pub node_ip: Option<IpAddr>,
    /// The address the API server listens on (e.g. 0.0.0.0 for a lab network: TLS and
    /// authentication are always on).
    #[arg(long, default_value = "127.0.0.1")]
    pub bind_address: IpAddr,
    /// The API server's HTTPS port.
    #[arg(long, default_value_t = 6443)]
    pub https_listen_port: u16,
    /// Extra IPs or DNS names of the API server's certificate (comma-separated or repeated).
    #[arg(long = "tls-san", value_delimiter = ',')]
    pub tls_san: Vec<String>,
    /// The pod network; every node gets a /24 of it.
    #[arg(long, default_value = "10.244.0.0/16")]
    pub cluster_cidr: Ipv4Net,
    /// The range Service ClusterIPs are allocated from.
    #[arg(long, default_value = "10.96.0.0/12")]
    pub service_cidr: Ipv4Net,
    /// The cluster DNS Service's ClusterIP (pods' nameserver), inside --service-cidr.
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

impl ServerArgs {
    /// The configuration these flags describe, checked.
    pub fn into_config(self) -> Result<ServerConfig, ConfigError> {
        let node_name = match self.node_name {
            Some(n) => n,
            None => default_node_name()?,
        };
        let mut c = ServerConfig::new(&self.data_dir, node_name);
        c.etcd_servers = self
            .etcd_servers
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect();
        c.disabled = self.disable.into_iter().collect();
        c.node_ip = self.node_ip;
        c.bind_address = self.bind_address;
        c.https_listen_port = self.https_listen_port;
        c.tls_sans = self.tls_san;
        c.cluster_cidr = self.cluster_cidr;
        c.service_cidr = self.service_cidr;
        c.cluster_dns = self.cluster_dns;
        c.cluster_domain = self.cluster_domain;
        c.node_labels = rkube_kubelet::config::parse_labels(&self.node_label.join(","))?;
        c.node_taints = rkube_kubelet::config::parse_taints(&self.node_taint.join(","))?;
        c.cgroup_root = self.cgroup_root;
        c.container_runtime_endpoint = self.container_runtime_endpoint;
        c.validate()?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(args: &[&str]) -> Result<ServerArgs, clap::Error> {
        let mut argv = vec!["rkube", "server"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).map(|c| match c.command {
            Command::Server(s) => s,
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
            "0.0.0.0",
            "--https-listen-port",
            "7443",
            "--etcd-servers",
            "http://127.0.0.1:2379,http://127.0.0.1:2389",
            "--node-label",
            "zone=a",
            "--node-taint",
            "gpu=yes:NoSchedule",
        ])
        .unwrap()
        .into_config()
        .unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/srv/rk"));
        assert_eq!(
            c.disabled.iter().copied().collect::<Vec<_>>(),
            [Component::Scheduler, Component::Dns, Component::Proxy]
        );
        assert_eq!(c.node_name, "n1");
        assert_eq!(c.node_ip, Some("192.0.2.7".parse().unwrap()));
        assert_eq!(c.listen_addr().to_string(), "0.0.0.0:7443");
        assert_eq!(c.etcd_servers.len(), 2);
        assert_eq!(c.node_labels["zone"], "a");
        assert_eq!(c.node_taints[0].effect, "NoSchedule");
        assert_eq!(c.cluster_dns, Ipv4Addr::new(10, 96, 0, 10));
        let d = server(&["--node-name", "n1"])
            .unwrap()
            .into_config()
            .unwrap();
        assert_eq!(d.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert!(d.disabled.is_empty());
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
    }
}
