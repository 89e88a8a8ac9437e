//! The controller manager's settings and the `--controllers` selection (`*` for every controller
//! on by default, `name` to enable one, `-name` to disable one — Kubernetes' syntax and names,
//! with or without the `-controller` suffix).

use std::time::Duration;

/// Every controller, by its Kubernetes name.
pub const CONTROLLERS: &[&str] = &[
    "replicaset-controller",
    "deployment-controller",
    "endpoints-controller",
    "endpointslice-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "node-lifecycle-controller",
    "taint-eviction-controller",
    "node-ipam-controller",
    "serviceaccount-controller",
    "csrapproving-controller",
    "csrsigning-controller",
    "job-controller",
    "cronjob-controller",
    "resourcequota-controller",
    "ttl-after-finished-controller",
    "disruption-controller",
];

/// Why a setting is invalid.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// `--controllers` names a controller that does not exist.
    #[error("unknown controller {0:?} in --controllers (known: {known})", known = CONTROLLERS.join(", "))]
    UnknownController(String),
    /// A duration could not be parsed.
    #[error("invalid duration {0:?}: use a number with a unit, e.g. 40s, 5m, 1h30m, 500ms")]
    Duration(String),
    /// Only one of the signing CA's certificate and key is given.
    #[error("--cluster-signing-cert-file and --cluster-signing-key-file go together")]
    SigningFiles,
    /// The node CIDR mask does not fit the cluster CIDR.
    #[error(
        "--node-cidr-mask-size {mask} must be at least the cluster CIDR's prefix {prefix} and at most 30"
    )]
    MaskSize {
        /// The mask size.
        mask: u8,
        /// The cluster CIDR's prefix length.
        prefix: u8,
    },
}

/// Settings of a controller manager.
#[derive(Clone, Debug)]
pub struct Config {
    /// The `--controllers` list.
    pub controllers: Vec<String>,
    /// Run leader election before starting the controllers.
    pub leader_elect: bool,
    /// The Lease (in kube-system) the instances compete for.
    pub leader_lease_name: String,
    /// This instance's identity in the election.
    pub leader_identity: String,
    /// Lease duration, renew deadline, retry period.
    pub leader_timings: (Duration, Duration, Duration),
    /// The cluster's pod network; node IPAM runs only when it is set.
    pub cluster_cidr: Option<ipnet::Ipv4Net>,
    /// The prefix length of each node's pod CIDR.
    pub node_cidr_mask_size: u8,
    /// How often node health is checked.
    pub node_monitor_period: Duration,
    /// How long a node may go without a heartbeat (lease or status) before it is Unknown.
    pub node_monitor_grace_period: Duration,
    /// How long a node that never reported gets before it is Unknown.
    pub node_startup_grace_period: Duration,
    /// The least time pods that do not tolerate a node's NoExecute taint stay before they are
    /// evicted (0: at once, as the taint-eviction controller does; pods with a toleration leave
    /// after their tolerationSeconds).
    pub pod_eviction_timeout: Duration,
    /// Nodes per second that may get NoExecute taints in a healthy zone (`--node-eviction-rate`).
    pub node_eviction_rate: f64,
    /// Concurrent reconciles of the ReplicaSet controller.
    pub concurrent_replicaset_syncs: u16,
    /// Concurrent reconciles of the Deployment controller.
    pub concurrent_deployment_syncs: u16,
    /// Concurrent reconciles of the Endpoints and EndpointSlice controllers.
    pub concurrent_endpoint_syncs: u16,
    /// Concurrent reconciles of the Job controller.
    pub concurrent_job_syncs: u16,
    /// Concurrent reconciles of the CronJob controller.
    pub concurrent_cron_job_syncs: u16,
    /// Concurrent reconciles of the ttl-after-finished controller.
    pub concurrent_ttl_after_finished_syncs: u16,
    /// Workers of the garbage collector.
    pub concurrent_gc_syncs: u16,
    /// Concurrent reconciles of the namespace controller.
    pub concurrent_namespace_syncs: u16,
    /// Pods a ReplicaSet creates or deletes in one sync at most.
    pub burst_replicas: usize,
    /// `--use-service-account-credentials`: each controller acts as its own ServiceAccount in
    /// kube-system (see [`crate::credentials`]), connecting with these settings (server, CA;
    /// their credentials are not used). `None`: every controller uses the controller manager's
    /// client.
    pub service_account_credentials: Option<kube::Config>,
    /// `--cluster-signing-cert-file`: the CA certificate (PEM) the csrsigning controller signs
    /// the `kubernetes.io/*` signers' requests with; it runs only with this and the key.
    pub cluster_signing_cert_file: Option<std::path::PathBuf>,
    /// `--cluster-signing-key-file`: that CA's private key (PEM).
    pub cluster_signing_key_file: Option<std::path::PathBuf>,
    /// `--cluster-signing-duration`: the longest validity of a signed certificate (and the
    /// validity of those whose request names none).
    pub cluster_signing_duration: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            controllers: vec!["*".into()],
            leader_elect: false,
            leader_lease_name: "kube-controller-manager".into(),
            leader_identity: default_identity(),
            leader_timings: (
                Duration::from_secs(15),
                Duration::from_secs(10),
                Duration::from_secs(2),
            ),
            cluster_cidr: None,
            node_cidr_mask_size: 24,
            node_monitor_period: Duration::from_secs(5),
            node_monitor_grace_period: Duration::from_secs(40),
            node_startup_grace_period: Duration::from_secs(60),
            pod_eviction_timeout: Duration::ZERO,
            node_eviction_rate: 0.1,
            concurrent_replicaset_syncs: 5,
            concurrent_deployment_syncs: 5,
            concurrent_endpoint_syncs: 5,
            concurrent_job_syncs: 5,
            concurrent_cron_job_syncs: 5,
            concurrent_ttl_after_finished_syncs: 5,
            concurrent_gc_syncs: 20,
            concurrent_namespace_syncs: 10,
            burst_replicas: 500,
            service_account_credentials: None,
            cluster_signing_cert_file: None,
            cluster_signing_key_file: None,
            cluster_signing_duration: Duration::from_secs(8760 * 3600),
        }
    }
}

/// `hostname_uuid`, as Kubernetes components name themselves in elections.
pub fn default_identity() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    let nanos = jiff::Timestamp::now().as_nanosecond();
    format!("{host}_{:x}{:x}", std::process::id(), nanos & 0xffff_ffff)
}

/// The canonical name of a controller given with or without the `-controller` suffix (and the
/// old short names: `garbagecollector`, `nodelifecycle`, `nodeipam`, `endpoint`).
pub fn canonical(name: &str) -> Option<&'static str> {
    let short = name.strip_suffix("-controller").unwrap_or(name);
    let short = match short {
        "garbagecollector" | "garbage-collector" => "garbage-collector",
        "nodelifecycle" | "node-lifecycle" => "node-lifecycle",
        "nodeipam" | "node-ipam" => "node-ipam",
        "endpoint" | "endpoints" => "endpoints",
        "taint-eviction" | "tainteviction" => "taint-eviction",
        other => other,
    };
    CONTROLLERS
        .iter()
        .copied()
        .find(|c| c.strip_suffix("-controller") == Some(short))
}

impl Config {
    /// Checks the controller names and the CIDR settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for c in &self.controllers {
            let name = c.trim().trim_start_matches('-');
            if name != "*" && canonical(name).is_none() {
                return Err(ConfigError::UnknownController(name.to_string()));
            }
        }
        if self.cluster_signing_cert_file.is_some() != self.cluster_signing_key_file.is_some() {
            return Err(ConfigError::SigningFiles);
        }
        if let Some(cidr) = self.cluster_cidr
            && (self.node_cidr_mask_size < cidr.prefix_len() || self.node_cidr_mask_size > 30)
        {
            return Err(ConfigError::MaskSize {
                mask: self.node_cidr_mask_size,
                prefix: cidr.prefix_len(),
            });
        }
        Ok(())
    }

    /// Whether a controller runs: named explicitly (or disabled with `-name`), else on with `*`.
    /// Node IPAM also needs `--cluster-cidr`, CSR signing the signing CA's files.
    pub fn enabled(&self, controller: &str) -> bool {
        let Some(want) = canonical(controller) else {
            return false;
        };
        if want == "node-ipam-controller" && self.cluster_cidr.is_none() {
            return false;
        }
        if want == "csrsigning-controller"
            && (self.cluster_signing_cert_file.is_none() || self.cluster_signing_key_file.is_none())
        {
            return false;
        }
        let mut star = false;
        for c in &self.controllers {
            let c = c.trim();
            if c == "*" {
                star = true;
            } else if let Some(off) = c.strip_prefix('-') {
                if canonical(off) == Some(want) {
                    return false;
                }
            } else if canonical(c) == Some(want) {
                return true;
            }
        }
        star
    }
}

/// Parses a Go-style duration: `40s`, `5m`, `1h30m`, `500ms`, `1.5s`, or bare seconds.
pub fn parse_duration(s: &str) -> Result<Duration, ConfigError> {
    rkube_machinery::duration::parse(s).ok_or_else(|| ConfigError::Duration(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controller_selection_follows_kubernetes_syntax() {
        let mut c = Config {
            controllers: vec!["*".into(), "-garbagecollector".into()],
            ..Default::default()
        };
        assert!(c.enabled("replicaset"));
        assert!(c.enabled("deployment-controller"));
        assert!(!c.enabled("garbage-collector-controller"));
        assert!(!c.enabled("nodeipam"), "IPAM needs --cluster-cidr");
        c.cluster_cidr = Some("10.244.0.0/16".parse().unwrap());
        assert!(c.enabled("nodeipam"));
        c.controllers = vec!["replicaset".into()];
        assert!(c.enabled("replicaset-controller"));
        assert!(!c.enabled("deployment"));
        assert!(c.validate().is_ok());
        c.controllers = vec!["*".into(), "-nonsense".into()];
        assert_eq!(
            c.validate(),
            Err(ConfigError::UnknownController("nonsense".into()))
        );
        c.controllers = vec!["*".into()];
        c.node_cidr_mask_size = 8;
        assert!(c.validate().is_err());
        c.node_cidr_mask_size = 24;
        assert!(c.enabled("csrapproving"));
        assert!(!c.enabled("csrsigning"), "signing needs the CA's files");
        c.cluster_signing_cert_file = Some("ca.crt".into());
        assert_eq!(c.validate(), Err(ConfigError::SigningFiles));
        c.cluster_signing_key_file = Some("ca.key".into());
        assert!(c.validate().is_ok());
        assert!(c.enabled("csrsigning-controller"));
        assert!(c.enabled("job") && c.enabled("ttl-after-finished-controller"));
        c.controllers = vec!["*".into(), "-job".into()];
        assert!(!c.enabled("job-controller"));
        assert!(c.enabled("disruption") && c.enabled("disruption-controller"));
        assert!(c.validate().is_ok());
    }

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("40s").unwrap(), Duration::from_secs(40));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("s").is_err());
    }
}
