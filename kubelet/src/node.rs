//! The Node: registration (capacity and allocatable CPU, memory, pods and ephemeral storage
//! from the machine; InternalIP and Hostname addresses; nodeInfo with kubelet and runtime
//! versions; the kubernetes.io/hostname, os and arch labels plus `--node-labels`; taints from
//! `--register-with-taints`), the conditions (Ready, MemoryPressure, DiskPressure,
//! PIDPressure) written on change and every report period, the Lease in `kube-node-lease`
//! renewed every 10 s, and the pod CIDR handed to the runtime (and, for the managed
//! containerd, written as the CNI config).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus,
    NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use kube::api::{Api, Patch, PatchParams, PostParams};
use tokio::time::Instant;

use crate::config::RuntimeMode;
use crate::containerd::ManagedRuntime;
use crate::context::Context;
use crate::events::EventType;
use crate::util::now_time;

/// The Kubernetes version the kubelet reports (kubectl shows it as the node's VERSION).
pub const KUBELET_VERSION: &str = "v1.33.0";

/// Why the Node could not be registered or updated.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The API server refused or failed.
    #[error("node {node}: {source}")]
    Api {
        /// The node.
        node: String,
        /// The cause.
        source: kube::Error,
    },
}

/// The address of the interface the default route uses (the node's InternalIP by default).
pub fn detect_node_ip() -> Option<IpAddr> {
    let routes = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    let iface = routes.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() > 2 && f[1] == "00000000").then(|| f[0].to_string())
    });
    let addrs: Vec<(String, IpAddr)> = nix::ifaddrs::getifaddrs()
        .ok()?
        .filter_map(|a| {
            let ip = a.address?.as_sockaddr_in()?.ip();
            Some((a.interface_name, IpAddr::V4(ip)))
        })
        .collect();
    if let Some(i) = iface
        && let Some((_, ip)) = addrs.iter().find(|(n, _)| *n == i)
    {
        return Some(*ip);
    }
    addrs
        .iter()
        .map(|(_, ip)| *ip)
        .find(|ip| !ip.is_loopback())
        .or(Some(IpAddr::from([127, 0, 0, 1])))
}

/// CPU (millicores), memory and ephemeral storage (bytes) of this machine, or the configured
/// capacity.
pub fn capacity(ctx_config: &crate::config::Config) -> (i64, i64, i64) {
    if let Some(c) = &ctx_config.capacity {
        return (c.cpu_milli, c.memory, c.ephemeral_storage);
    }
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as i64;
    let memory = crate::util::meminfo("MemTotal").unwrap_or(0) as i64;
    let storage = nix::sys::statvfs::statvfs(&ctx_config.data_dir)
        .map(|s| (s.blocks() as i64) * (s.fragment_size() as i64))
        .unwrap_or(0);
    (cpus * 1000, memory, storage)
}

fn quantities(cpu_milli: i64, memory: i64, storage: i64, pods: u32) -> BTreeMap<String, Quantity> {
    let cpu = if cpu_milli % 1000 == 0 {
        format!("{}", cpu_milli / 1000)
    } else {
        format!("{cpu_milli}m")
    };
    [
        ("cpu".to_string(), Quantity(cpu)),
        (
            "memory".to_string(),
            Quantity(format!("{}Ki", memory / 1024)),
        ),
        (
            "ephemeral-storage".to_string(),
            Quantity(format!("{}Ki", storage / 1024)),
        ),
        ("pods".to_string(), Quantity(pods.to_string())),
    ]
    .into()
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn os_image() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_else(|| "Linux".into())
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The labels the kubelet owns on its Node.
fn node_labels(ctx: &Context) -> BTreeMap<String, String> {
    let mut l = BTreeMap::new();
    l.insert(
        "kubernetes.io/hostname".into(),
        ctx.config.node_name.clone(),
    );
    l.insert("kubernetes.io/os".into(), "linux".into());
    l.insert("kubernetes.io/arch".into(), arch().into());
    l.insert("beta.kubernetes.io/os".into(), "linux".into());
    l.insert("beta.kubernetes.io/arch".into(), arch().into());
    l.extend(ctx.config.node_labels.clone());
    l
}

/// One condition as computed.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Cond {
    type_: &'static str,
    status: bool,
    reason: String,
    message: String,
}

async fn conditions(ctx: &Context) -> Vec<Cond> {
    let mut problems = Vec::new();
    match ctx.cri.status().await {
        Ok(st) => {
            for want in ["RuntimeReady", "NetworkReady"] {
                match st.conditions.iter().find(|c| c.r#type == want) {
                    Some(c) if c.status => {}
                    Some(c) => problems.push(if want == "NetworkReady" {
                        format!(
                            "container runtime network not ready: NetworkReady=false reason:{} message:{}",
                            c.reason, c.message
                        )
                    } else {
                        format!(
                            "container runtime not ready: RuntimeReady=false reason:{} message:{}",
                            c.reason, c.message
                        )
                    }),
                    None => problems.push(format!("container runtime status check may not have completed yet: {want} missing")),
                }
            }
        }
        Err(e) => problems.push(format!("container runtime is down: {e}")),
    }
    if !ctx.pleg_healthy() {
        problems.push("PLEG is not healthy: pleg has yet to be successful".into());
    }
    let ready = Cond {
        type_: "Ready",
        status: problems.is_empty(),
        reason: if problems.is_empty() {
            "KubeletReady".into()
        } else {
            "KubeletNotReady".into()
        },
        message: if problems.is_empty() {
            "kubelet is posting ready status".into()
        } else {
            problems.join(", ")
        },
    };
    // A hollow node simulates a machine: the host's memory and disk are not its own (a full
    // disk on the test host would taint every simulated node).
    let host = !matches!(ctx.config.runtime, RuntimeMode::Fake(_));
    let mem_low = host && crate::util::meminfo("MemAvailable").is_some_and(|a| a < 100 << 20);
    // The kubelet's default hard eviction threshold: nodefs.available < 10%.
    let disk_low = host
        && nix::sys::statvfs::statvfs(&ctx.config.data_dir)
            .map(|s| s.blocks() > 0 && (s.blocks_available() as f64) < 0.1 * s.blocks() as f64)
            .unwrap_or(false);
    let pid_max: f64 = read_trim("/proc/sys/kernel/pid_max")
        .parse()
        .unwrap_or(4194304.0);
    let procs: f64 = read_trim("/proc/loadavg")
        .split_whitespace()
        .nth(3)
        .and_then(|x| x.split('/').nth(1))
        .and_then(|x| x.parse().ok())
        .unwrap_or(0.0);
    let pid_low = host && procs / pid_max > 0.9;
    let pressure = |type_, on: bool, yes: &str, no: &str, yes_msg: &str, no_msg: &str| Cond {
        type_,
        status: on,
        reason: if on { yes } else { no }.into(),
        message: if on { yes_msg } else { no_msg }.into(),
    };
    vec![
        pressure(
            "MemoryPressure",
            mem_low,
            "KubeletHasInsufficientMemory",
            "KubeletHasSufficientMemory",
            "kubelet has insufficient memory available",
            "kubelet has sufficient memory available",
        ),
        pressure(
            "DiskPressure",
            disk_low,
            "KubeletHasDiskPressure",
            "KubeletHasNoDiskPressure",
            "kubelet has disk pressure",
            "kubelet has no disk pressure",
        ),
        pressure(
            "PIDPressure",
            pid_low,
            "KubeletHasInsufficientPID",
            "KubeletHasSufficientPID",
            "kubelet has insufficient PID available",
            "kubelet has sufficient PID available",
        ),
        ready,
    ]
}

fn base_status(ctx: &Context, port: u16) -> NodeStatus {
    let node = ctx.node();
    let (cpu, mem, storage) = capacity(&ctx.config);
    let q = quantities(cpu, mem, storage, ctx.config.max_pods);
    let mut addresses: Vec<NodeAddress> = node
        .ips
        .iter()
        .take(1)
        .map(|ip| NodeAddress {
            type_: "InternalIP".into(),
            address: ip.clone(),
        })
        .collect();
    addresses.push(NodeAddress {
        type_: "Hostname".into(),
        address: ctx
            .config
            .hostname
            .clone()
            .unwrap_or_else(|| ctx.config.node_name.clone()),
    });
    let machine_id = read_trim("/etc/machine-id");
    NodeStatus {
        capacity: Some(q.clone()),
        allocatable: Some(q),
        addresses: Some(addresses),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint { port: port as i32 }),
        }),
        node_info: Some(NodeSystemInfo {
            machine_id: machine_id.clone(),
            system_uuid: {
                let u = read_trim("/sys/class/dmi/id/product_uuid");
                if u.is_empty() { machine_id } else { u }
            },
            boot_id: read_trim("/proc/sys/kernel/random/boot_id"),
            kernel_version: read_trim("/proc/sys/kernel/osrelease"),
            os_image: os_image(),
            container_runtime_version: ctx.runtime_version.clone(),
            kubelet_version: KUBELET_VERSION.into(),
            kube_proxy_version: String::new(),
            operating_system: "linux".into(),
            architecture: arch().into(),
            swap: None,
        }),
        ..Default::default()
    }
}

/// Creates the Node (or adopts an existing one, merging the kubelet's labels) and returns it.
pub async fn register(ctx: &Context) -> Result<Node, NodeError> {
    let name = ctx.config.node_name.clone();
    let api: Api<Node> = Api::all(ctx.client.clone());
    let err = |source| NodeError::Api {
        node: name.clone(),
        source,
    };
    let wanted = node_labels(ctx);
    let node = match api.get_opt(&name).await.map_err(err)? {
        Some(mut existing) => {
            let labels = existing
                .metadata
                .labels
                .get_or_insert_with(Default::default);
            let before = labels.clone();
            labels.extend(wanted);
            if *labels != before {
                let patch = serde_json::json!({"metadata": {"labels": labels}});
                existing = api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                    .await
                    .map_err(err)?;
            }
            existing
        }
        None => {
            let node = Node {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    labels: Some(wanted),
                    ..Default::default()
                },
                spec: Some(NodeSpec {
                    taints: Some(ctx.config.register_with_taints.clone()).filter(|t| !t.is_empty()),
                    ..Default::default()
                }),
                status: None,
            };
            match api.create(&PostParams::default(), &node).await {
                Ok(n) => {
                    tracing::info!(node = %name, "registered the node");
                    n
                }
                Err(kube::Error::Api(e)) if e.code == 409 => api.get(&name).await.map_err(err)?,
                Err(e) => return Err(err(e)),
            }
        }
    };
    let uid = node.metadata.uid.clone().unwrap_or_default();
    ctx.update_node(|n| n.uid = uid);
    Ok(node)
}

/// Writes the node status on change and every report period; re-registers a deleted Node.
pub async fn status_loop(ctx: Arc<Context>, port: u16) {
    let name = ctx.config.node_name.clone();
    let api: Api<Node> = Api::all(ctx.client.clone());
    let mut last: Option<(Vec<Cond>, String)> = None;
    let mut last_write: Option<Instant> = None;
    let mut transitions: BTreeMap<
        &'static str,
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
    > = BTreeMap::new();
    let mut ready_before: Option<bool> = None;
    loop {
        let conds = conditions(&ctx).await;
        let status = base_status(&ctx, port);
        let fingerprint = serde_json::to_string(&status).unwrap_or_default();
        let changed = last.as_ref() != Some(&(conds.clone(), fingerprint.clone()));
        let due = last_write.is_none_or(|t| t.elapsed() >= ctx.config.node_status_report_frequency);
        if changed || due {
            let now = now_time();
            let prev = last.as_ref().map(|(c, _)| c.clone()).unwrap_or_default();
            let node_conditions: Vec<NodeCondition> = conds
                .iter()
                .map(|c| {
                    let flipped = prev
                        .iter()
                        .find(|p| p.type_ == c.type_)
                        .is_none_or(|p| p.status != c.status);
                    if flipped || !transitions.contains_key(c.type_) {
                        transitions.insert(c.type_, now.clone());
                    }
                    NodeCondition {
                        type_: c.type_.into(),
                        status: if c.status { "True" } else { "False" }.into(),
                        reason: Some(c.reason.clone()),
                        message: Some(c.message.clone()),
                        last_heartbeat_time: Some(now.clone()),
                        last_transition_time: transitions.get(c.type_).cloned(),
                    }
                })
                .collect();
            let mut st = status.clone();
            st.conditions = Some(node_conditions);
            let patch = serde_json::json!({ "status": st });
            match api
                .patch_status(&name, &PatchParams::default(), &Patch::Strategic(patch))
                .await
            {
                Ok(_) => {
                    last = Some((conds.clone(), fingerprint));
                    last_write = Some(Instant::now());
                    let ready = conds.iter().any(|c| c.type_ == "Ready" && c.status);
                    if ready_before != Some(ready) {
                        let (reason, note) = if ready {
                            ("NodeReady", format!("Node {name} status is now: NodeReady"))
                        } else {
                            (
                                "NodeNotReady",
                                format!("Node {name} status is now: NodeNotReady"),
                            )
                        };
                        ctx.events.node(&name, EventType::Normal, reason, &note);
                        ready_before = Some(ready);
                    }
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {
                    tracing::warn!(node = %name, "the Node is gone; registering it again");
                    if let Err(e) = register(&ctx).await {
                        tracing::warn!(error = %e, "re-registering the node");
                    }
                    last = None;
                    continue;
                }
                Err(e) => tracing::warn!(node = %name, error = %e, "updating node status"),
            }
        }
        tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            _ = tokio::time::sleep(ctx.config.node_status_update_frequency) => {}
        }
    }
}

/// Renews the node's Lease until shutdown.
pub async fn lease_loop(ctx: Arc<Context>) {
    let name = ctx.config.node_name.clone();
    let api: Api<Lease> = Api::namespaced(ctx.client.clone(), "kube-node-lease");
    let mut current: Option<Lease> = None;
    loop {
        let now = MicroTime(jiff::Timestamp::now());
        let result = match current.take() {
            Some(mut l) => {
                let spec = l.spec.get_or_insert_with(Default::default);
                spec.renew_time = Some(now);
                spec.holder_identity = Some(name.clone());
                spec.lease_duration_seconds = Some(ctx.config.lease_duration_seconds);
                api.replace(&name, &PostParams::default(), &l).await
            }
            None => match api.get_opt(&name).await {
                Ok(Some(mut l)) => {
                    let spec = l.spec.get_or_insert_with(Default::default);
                    spec.renew_time = Some(now);
                    spec.holder_identity = Some(name.clone());
                    spec.lease_duration_seconds = Some(ctx.config.lease_duration_seconds);
                    api.replace(&name, &PostParams::default(), &l).await
                }
                Ok(None) => {
                    let uid = ctx.node().uid;
                    let lease = Lease {
                        metadata: ObjectMeta {
                            name: Some(name.clone()),
                            namespace: Some("kube-node-lease".into()),
                            owner_references: (!uid.is_empty()).then(|| {
                                vec![OwnerReference {
                                    api_version: "v1".into(),
                                    kind: "Node".into(),
                                    name: name.clone(),
                                    uid,
                                    ..Default::default()
                                }]
                            }),
                            ..Default::default()
                        },
                        spec: Some(LeaseSpec {
                            holder_identity: Some(name.clone()),
                            lease_duration_seconds: Some(ctx.config.lease_duration_seconds),
                            renew_time: Some(now),
                            ..Default::default()
                        }),
                    };
                    api.create(&PostParams::default(), &lease).await
                }
                Err(e) => Err(e),
            },
        };
        let wait = match result {
            Ok(l) => {
                current = Some(l);
                ctx.config.lease_renew_interval
            }
            Err(e) => {
                tracing::warn!(node = %name, error = %e, "renewing the node lease");
                Duration::from_millis(500)
            }
        };
        tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Follows the Node's pod CIDR into the runtime (and the managed containerd's CNI config).
pub async fn watch_pod_cidr(ctx: Arc<Context>, managed: Option<Arc<ManagedRuntime>>) {
    use futures::StreamExt;
    use kube::runtime::WatchStreamExt;
    use kube::runtime::watcher::{self, Event};
    let api: Api<Node> = Api::all(ctx.client.clone());
    let cfg = watcher::Config::default().fields(&format!("metadata.name={}", ctx.config.node_name));
    let mut stream = watcher::watcher(api, cfg).default_backoff().boxed();
    loop {
        let ev = tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            ev = stream.next() => ev,
        };
        let node = match ev {
            Some(Ok(Event::Apply(n) | Event::InitApply(n))) => n,
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                tracing::debug!(error = %e, "node watch failed; retrying");
                continue;
            }
            None => return,
        };
        let spec = node.spec.clone().unwrap_or_default();
        let cidr = spec
            .pod_cidr
            .clone()
            .or_else(|| spec.pod_cidrs.as_ref().and_then(|c| c.first().cloned()))
            .filter(|c| !c.is_empty());
        let Some(cidr) = cidr else { continue };
        if ctx.node().pod_cidr.as_deref() == Some(cidr.as_str()) {
            continue;
        }
        if let Some(m) = &managed
            && let Err(e) = m.write_cni_config(&cidr)
        {
            tracing::error!(error = %e, "writing the CNI config");
            continue;
        }
        match ctx.cri.update_pod_cidr(&cidr).await {
            Ok(()) => {
                tracing::info!(pod_cidr = %cidr, "pod CIDR handed to the runtime");
                ctx.update_node(|n| n.pod_cidr = Some(cidr.clone()));
            }
            Err(e) => tracing::warn!(error = %e, "UpdateRuntimeConfig"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_facts() {
        let q = quantities(2500, 4 << 30, 10 << 30, 110);
        assert_eq!(q["cpu"].0, "2500m");
        assert_eq!(q["memory"].0, format!("{}Ki", 4 << 20));
        assert_eq!(q["pods"].0, "110");
        assert_eq!(quantities(2000, 0, 0, 1)["cpu"].0, "2");
        let ip = detect_node_ip().unwrap();
        assert!(!ip.is_unspecified());
        let cfg = crate::config::Config::new("n", "/tmp");
        let (cpu, mem, storage) = capacity(&cfg);
        assert!(cpu >= 1000 && mem > 0 && storage > 0);
    }
}
