//! What every part of a running kubelet shares: configuration, the API client, the CRI client
//! and its caches, the image, volume and probe machinery, the event sink, metrics, the node's
//! current facts (IPs, allocatable, pod CIDR) and the pod manager.

use std::sync::{Arc, Mutex, RwLock};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::cri::Cri;
use crate::env::Objects;
use crate::events::Events;
use crate::images::ImageManager;
use crate::metrics::Metrics;
use crate::pods::PodManager;
use crate::probes::Prober;
use crate::runtime::RuntimeCache;
use crate::sandbox::SandboxContext;
use crate::volumes::VolumeManager;

/// Facts about the node that pods use.
#[derive(Clone, Debug, Default)]
pub struct NodeFacts {
    /// The node's IPs (InternalIP first).
    pub ips: Vec<String>,
    /// Allocatable CPU in millicores.
    pub cpu_milli: i64,
    /// Allocatable memory in bytes.
    pub memory: i64,
    /// Allocatable ephemeral storage in bytes.
    pub storage: i64,
    /// The pod CIDR, once the Node has one.
    pub pod_cidr: Option<String>,
    /// The Node's UID.
    pub uid: String,
}

/// The shared state of one kubelet.
pub struct Context {
    /// The configuration.
    pub config: Config,
    /// The API client.
    pub client: kube::Client,
    /// The CRI client.
    pub cri: Cri,
    /// The runtime state cache.
    pub runtime: RuntimeCache,
    /// Image pulls.
    pub images: ImageManager,
    /// Pod volumes.
    pub volumes: VolumeManager,
    /// ConfigMaps and Secrets.
    pub objects: Arc<dyn Objects>,
    /// Events.
    pub events: Events,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Probes.
    pub prober: Arc<dyn Prober>,
    /// The runtime's name, for container IDs (`containerd://…`).
    pub runtime_name: String,
    /// The runtime's name and version (`containerd://1.6.20`).
    pub runtime_version: String,
    /// Sandbox settings.
    pub sandbox: SandboxContext,
    /// The node's facts.
    pub node: RwLock<NodeFacts>,
    /// The pods.
    pub pods: PodManager,
    /// When the PLEG last relisted successfully.
    pub last_relist: Mutex<Option<Instant>>,
    /// Cancelled at shutdown.
    pub cancel: CancellationToken,
    /// The tasks that call the runtime on a pod's behalf (pod workers, orphan cleanups): at
    /// shutdown the kubelet lets their current calls finish before it stops a managed
    /// containerd, so a sandbox is never left half stopped (its shim running, forgotten).
    pub runtime_tasks: tokio_util::task::TaskTracker,
}

impl Context {
    /// A copy of the node facts.
    pub fn node(&self) -> NodeFacts {
        self.node.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Updates the node facts.
    pub fn update_node(&self, f: impl FnOnce(&mut NodeFacts)) {
        f(&mut self.node.write().unwrap_or_else(|e| e.into_inner()));
    }

    /// Whether the PLEG relisted within the last three minutes.
    pub fn pleg_healthy(&self) -> bool {
        self.last_relist
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|t| t.elapsed() < std::time::Duration::from_secs(180))
    }
}
