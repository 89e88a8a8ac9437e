//! The kubelet's configuration: what the `rkubelet` flags set, plus the tunables tests and
//! hollow nodes adjust (periods, back-offs, capacity), with Kubernetes' defaults — how its
//! HTTPS port is secured ([`ServingConfig`]) included.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Taint;

use crate::hollow::FakeConfig;

/// Why a flag value is invalid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A taint is not `key[=value]:Effect`.
    #[error("invalid taint {0:?}: expected key[=value]:NoSchedule|PreferNoSchedule|NoExecute")]
    Taint(String),
    /// A label is not `key=value`.
    #[error("invalid node label {0:?}: expected key=value")]
    Label(String),
}

/// How the kubelet reaches its container runtime.
#[derive(Clone, Debug)]
pub enum RuntimeMode {
    /// A CRI runtime already running at this endpoint (`unix:///run/containerd/containerd.sock`).
    Remote {
        /// The endpoint.
        endpoint: String,
    },
    /// containerd started and supervised by the kubelet, with everything under the data dir.
    Managed(ManagedContainerd),
    /// The in-process hollow runtime, for scale tests.
    Fake(FakeConfig),
}

/// Settings of the managed containerd.
#[derive(Clone, Debug)]
pub struct ManagedContainerd {
    /// The containerd binary.
    pub containerd: PathBuf,
    /// The ctr binary (images-directory imports).
    pub ctr: PathBuf,
    /// The sandbox (pause) image.
    pub sandbox_image: String,
    /// Where the CNI plugins are.
    pub cni_bin_dir: PathBuf,
    /// A command containerd is started through, its own command line appended — e.g.
    /// `nsenter --net=/run/netns/node1 --` to run the node's containers in a network namespace
    /// (several lab nodes on one machine, and the tests). It must exec containerd, so that the
    /// pid it gets is containerd's. Empty: containerd is started directly.
    pub wrapper: Vec<std::ffi::OsString>,
}

impl Default for ManagedContainerd {
    fn default() -> Self {
        ManagedContainerd {
            containerd: "containerd".into(),
            ctr: "ctr".into(),
            sandbox_image: DEFAULT_SANDBOX_IMAGE.into(),
            cni_bin_dir: "/usr/lib/cni".into(),
            wrapper: Vec::new(),
        }
    }
}

/// The default sandbox image (what `rkube-images` builds from catatonit).
pub const DEFAULT_SANDBOX_IMAGE: &str = "registry.k8s.io/pause:3.9";

/// How the kubelet's API port is secured (HTTPS, authentication, authorization) and where its
/// plain health port is — Kubernetes' kubelet flags of the same names.
#[derive(Clone, Debug)]
pub struct ServingConfig {
    /// `--tls-cert-file`: the serving certificate (PEM; a chain may follow), given with
    /// `tls_private_key_file`. Without them, a self-signed certificate is made and kept in
    /// `cert_dir`, as Kubernetes' kubelet does.
    pub tls_cert_file: Option<PathBuf>,
    /// `--tls-private-key-file`: its private key.
    pub tls_private_key_file: Option<PathBuf>,
    /// `--cert-dir`: where the self-signed certificate is kept (`kubelet.crt`, `kubelet.key`);
    /// default: `<data dir>/pki`.
    pub cert_dir: Option<PathBuf>,
    /// `--client-ca-file`: clients presenting a certificate of this CA are its subject (CN the
    /// user, each O a group). Without it, only bearer tokens authenticate.
    pub client_ca_file: Option<PathBuf>,
    /// `--anonymous-auth`: requests without credentials are authorized as `system:anonymous`
    /// instead of refused with 401 (off: Kubernetes' kubelet defaults to on, kubeadm and
    /// hardening guides turn it off).
    pub anonymous_auth: bool,
    /// How long a bearer token's TokenReview answer is reused
    /// (`--authentication-token-webhook-cache-ttl`).
    pub authentication_cache_ttl: Duration,
    /// How long an allowing SubjectAccessReview answer is reused
    /// (`--authorization-webhook-cache-authorized-ttl`); denials are not cached.
    pub authorization_cache_ttl: Duration,
    /// `--healthz-port`: plain-HTTP `/healthz` on 127.0.0.1 (only there: it is unauthenticated);
    /// `Some(0)` any free port, `None` not served.
    pub healthz_port: Option<u16>,
}

impl Default for ServingConfig {
    fn default() -> Self {
        ServingConfig {
            tls_cert_file: None,
            tls_private_key_file: None,
            cert_dir: None,
            client_ca_file: None,
            anonymous_auth: false,
            authentication_cache_ttl: Duration::from_secs(120),
            authorization_cache_ttl: Duration::from_secs(300),
            healthz_port: Some(DEFAULT_HEALTHZ_PORT),
        }
    }
}

/// The kubelet's API port (HTTPS).
pub const DEFAULT_PORT: u16 = 10250;
/// The kubelet's health port (plain HTTP, loopback).
pub const DEFAULT_HEALTHZ_PORT: u16 = 10248;

/// Node capacity, when not measured from the machine (hollow nodes).
#[derive(Clone, Debug)]
pub struct Capacity {
    /// CPU cores.
    pub cpu_milli: i64,
    /// Memory in bytes.
    pub memory: i64,
    /// Ephemeral storage in bytes.
    pub ephemeral_storage: i64,
}

/// Everything the kubelet needs to run.
#[derive(Clone)]
pub struct Config {
    /// The kubeconfig to reach the API server (unless `client` is given).
    pub kubeconfig: Option<PathBuf>,
    /// A ready client (tests, and hollow nodes sharing one connection pool).
    pub client: Option<kube::Client>,
    /// This node's name.
    pub node_name: String,
    /// Where pods' volumes, logs and (managed) containerd live.
    pub data_dir: PathBuf,
    /// The container runtime.
    pub runtime: RuntimeMode,
    /// The node's InternalIP (default: the address of the default route's interface).
    pub node_ip: Option<IpAddr>,
    /// Cluster DNS servers for ClusterFirst pods.
    pub cluster_dns: Vec<IpAddr>,
    /// The cluster domain.
    pub cluster_domain: String,
    /// Where the kubelet's HTTPS API listens (port 0: any free port, reported on the Node).
    pub listen: SocketAddr,
    /// How that port is secured, and the health port.
    pub serving: ServingConfig,
    /// A directory of image tarballs to import at start and when they appear.
    pub images_dir: Option<PathBuf>,
    /// The most pods this node runs.
    pub max_pods: u32,
    /// Taints the Node is registered with.
    pub register_with_taints: Vec<Taint>,
    /// Extra Node labels.
    pub node_labels: BTreeMap<String, String>,
    /// The cgroup (cgroupfs path) pods' QoS cgroups go under.
    pub cgroup_root: String,
    /// Whether privileged containers may run (`--allow-privileged`; off by default).
    pub allow_privileged: bool,
    /// How often every pod is resynced (volume contents refreshed, probes rechecked).
    pub sync_frequency: Duration,
    /// How often the PLEG relists the runtime.
    pub pleg_period: Duration,
    /// How often node conditions are computed.
    pub node_status_update_frequency: Duration,
    /// How often the Node status is written even without a change.
    pub node_status_report_frequency: Duration,
    /// The node Lease's duration.
    pub lease_duration_seconds: i32,
    /// How often the Lease is renewed.
    pub lease_renew_interval: Duration,
    /// Crash-loop back-off: initial and maximum.
    pub crash_backoff: (Duration, Duration),
    /// Image pull back-off: initial and maximum.
    pub image_backoff: (Duration, Duration),
    /// Capacity to report instead of measuring the machine.
    pub capacity: Option<Capacity>,
    /// The hostname reported as the node's Hostname address (default: the node name).
    pub hostname: Option<String>,
    /// The resolv.conf Default-DNS pods inherit.
    pub resolv_conf: PathBuf,
    /// How often the images directory is scanned.
    pub images_dir_scan: Duration,
}

impl Config {
    /// Defaults for a node, as the `rkubelet` flags start it.
    pub fn new(node_name: impl Into<String>, data_dir: impl Into<PathBuf>) -> Self {
        Config {
            kubeconfig: None,
            client: None,
            node_name: node_name.into(),
            data_dir: data_dir.into(),
            runtime: RuntimeMode::Remote {
                endpoint: "unix:///run/containerd/containerd.sock".into(),
            },
            node_ip: None,
            cluster_dns: Vec::new(),
            cluster_domain: "cluster.local".into(),
            listen: SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)),
            serving: ServingConfig::default(),
            images_dir: None,
            max_pods: 110,
            register_with_taints: Vec::new(),
            node_labels: BTreeMap::new(),
            cgroup_root: "/kubepods".into(),
            allow_privileged: false,
            sync_frequency: Duration::from_secs(30),
            pleg_period: Duration::from_secs(1),
            node_status_update_frequency: Duration::from_secs(10),
            node_status_report_frequency: Duration::from_secs(60),
            lease_duration_seconds: 40,
            lease_renew_interval: Duration::from_secs(10),
            crash_backoff: (Duration::from_secs(10), Duration::from_secs(300)),
            image_backoff: (Duration::from_secs(10), Duration::from_secs(300)),
            capacity: None,
            hostname: None,
            resolv_conf: "/etc/resolv.conf".into(),
            images_dir_scan: Duration::from_secs(2),
        }
    }

    /// Whether the runtime is the hollow one (no mounts, no cgroups, no real network).
    pub fn hollow(&self) -> bool {
        matches!(self.runtime, RuntimeMode::Fake(_))
    }
}

/// Parses `--register-with-taints`: `key[=value]:Effect[,…]`.
pub fn parse_taints(s: &str) -> Result<Vec<Taint>, ConfigError> {
    s.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            let (kv, effect) = t
                .rsplit_once(':')
                .ok_or_else(|| ConfigError::Taint(t.into()))?;
            if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
                return Err(ConfigError::Taint(t.into()));
            }
            let (key, value) = match kv.split_once('=') {
                Some((k, v)) => (k, Some(v.to_string())),
                None => (kv, None),
            };
            if key.is_empty() {
                return Err(ConfigError::Taint(t.into()));
            }
            Ok(Taint {
                key: key.into(),
                value,
                effect: effect.into(),
                time_added: None,
            })
        })
        .collect()
}

/// Parses `--node-labels`: `key=value[,…]`.
pub fn parse_labels(s: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    s.split(',')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .ok_or_else(|| ConfigError::Label(l.into()))?;
            if k.is_empty() {
                return Err(ConfigError::Label(l.into()));
            }
            Ok((k.to_string(), v.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taints_and_labels() {
        let t = parse_taints("dedicated=gpu:NoSchedule, spot:PreferNoSchedule").unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].key, "dedicated");
        assert_eq!(t[0].value.as_deref(), Some("gpu"));
        assert_eq!(t[0].effect, "NoSchedule");
        assert_eq!(t[1].value, None);
        assert!(parse_taints("a=b").is_err());
        assert!(parse_taints("a=b:Sometimes").is_err());
        assert!(parse_taints(":NoSchedule").is_err());
        let l = parse_labels("zone=a,tier=web").unwrap();
        assert_eq!(l["zone"], "a");
        assert!(parse_labels("novalue").is_err());
        assert!(parse_labels("").unwrap().is_empty());
    }
}
