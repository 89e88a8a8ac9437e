//! Where `rkube server`'s in-process cluster DNS answers, and how pods find it.
//!
//! Not on `0.0.0.0` (that would serve the LAN, and clash with a resolver already on port 53),
//! nor on loopback (pods cannot reach the host's loopback): on the server node's pod-network
//! gateway — the first address of its pod CIDR on the CNI bridge `rkube0` (e.g. 10.244.0.1) —
//! an address only this node and its pods reach. Once the controller manager has given the
//! node its pod CIDR, the bridge is created with that address if the CNI plugin has not made
//! it yet (the bridge plugin accepts an existing bridge with the gateway address it would
//! set), rkube-dns binds UDP and TCP port 53 there, and the selector-less `kube-dns` Service
//! gets an Endpoints and an EndpointSlice (labelled managed-by `rkube.io`) pointing at it; the
//! proxy then forwards the Service's ClusterIP (10.96.0.10) there, so pods' resolv.conf works.
//! When the pod CIDR changes, DNS moves and the endpoints follow; they are rewritten if
//! someone edits or deletes them.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::{Endpoints, Node};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// The CNI bridge of the pod network (as the kubelet's CNI config names it).
pub const BRIDGE: &str = "rkube0";
/// The kube-dns Service's namespace.
pub const NAMESPACE: &str = "kube-system";
/// The kube-dns Service's name (and its Endpoints').
pub const SERVICE: &str = "kube-dns";
/// The name of the EndpointSlice the server keeps.
pub const SLICE: &str = "kube-dns-rkube";
/// The EndpointSlice's managed-by label value.
pub const MANAGED_BY: &str = "rkube.io";

/// Why DNS could not be placed or served.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// An `ip` command failed.
    #[error("ip {args}: {message}")]
    Ip {
        /// The arguments.
        args: String,
        /// stderr, or why it did not run.
        message: String,
    },
    /// The DNS port could not be bound.
    #[error("binding DNS on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// rkube-dns stopped with an error.
    #[error(transparent)]
    Serve(#[from] rkube_dns::Error),
    /// rkube-dns panicked.
    #[error("rkube-dns panicked: {0}")]
    Panic(String),
}

/// The gateway address of a pod CIDR: its first host address, with the CIDR's prefix
/// (`10.244.0.0/24` → `10.244.0.1/24`).
pub fn gateway(pod_cidr: &str) -> Option<Ipv4Net> {
    let net: Ipv4Net = pod_cidr.parse().ok()?;
    let first = net.trunc().hosts().next()?;
    Ipv4Net::new(first, net.prefix_len()).ok()
}

fn ports() -> Value {
    json!([
        {"name": "dns", "port": 53, "protocol": "UDP"},
        {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
    ])
}

/// The kube-dns Endpoints pointing at `addr` on `node`.
pub fn endpoints(addr: Ipv4Addr, node: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {
            "name": SERVICE,
            "namespace": NAMESPACE,
            "labels": {
                "k8s-app": "kube-dns",
                "endpointslice.kubernetes.io/skip-mirror": "true",
            },
        },
        "subsets": [{
            "addresses": [{"ip": addr.to_string(), "nodeName": node}],
            "ports": ports(),
        }],
    })
}

/// The kube-dns EndpointSlice pointing at `addr` on `node`.
pub fn endpoint_slice(addr: Ipv4Addr, node: &str) -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": SLICE,
            "namespace": NAMESPACE,
            "labels": {
                "kubernetes.io/service-name": SERVICE,
                "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
            },
        },
        "addressType": "IPv4",
        "endpoints": [{
            "addresses": [addr.to_string()],
            "conditions": {"ready": true, "serving": true, "terminating": false},
            "nodeName": node,
        }],
        "ports": ports(),
    })
}

/// Whether the stored Endpoints point at exactly `addr` with both ports.
fn endpoints_match(e: &Endpoints, addr: Ipv4Addr) -> bool {
    let subsets = e.subsets.as_deref().unwrap_or_default();
    subsets.len() == 1
        && subsets[0]
            .addresses
            .as_deref()
            .is_some_and(|a| a.len() == 1 && a[0].ip == addr.to_string())
        && subsets[0].ports.as_ref().is_some_and(|p| p.len() == 2)
        && subsets[0]
            .not_ready_addresses
            .as_deref()
            .unwrap_or_default()
            .is_empty()
}

/// Whether the stored slice points at exactly `addr`, ready, with both ports.
fn slice_matches(s: &EndpointSlice, addr: Ipv4Addr) -> bool {
    s.endpoints.len() == 1
        && s.endpoints[0].addresses == [addr.to_string()]
        && s.endpoints[0]
            .conditions
            .as_ref()
            .and_then(|c| c.ready)
            .unwrap_or(false)
        && s.ports.as_ref().is_some_and(|p| p.len() == 2)
        && s.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("kubernetes.io/service-name"))
            .is_some_and(|n| n == SERVICE)
}

async fn ip(args: &[&str]) -> Result<String, DnsError> {
    let fail = |message: String| DnsError::Ip {
        args: args.join(" "),
        message,
    };
    let out = tokio::process::Command::new("ip")
        .args(args)
        .output()
        .await
        .map_err(|e| fail(format!("{e} (install iproute2)")))?;
    if !out.status.success() {
        return Err(fail(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Makes sure bridge [`BRIDGE`] exists, is up and has `gw` (as the CNI bridge plugin would
/// set it: the gateway address with the pod CIDR's prefix).
pub async fn ensure_bridge(gw: Ipv4Net) -> Result<(), DnsError> {
    if ip(&["link", "show", "dev", BRIDGE]).await.is_err() {
        match ip(&["link", "add", BRIDGE, "type", "bridge"]).await {
            Ok(_) => tracing::info!(bridge = BRIDGE, "created the pod network bridge"),
            // Made by the CNI plugin meanwhile.
            Err(_) if ip(&["link", "show", "dev", BRIDGE]).await.is_ok() => {}
            Err(e) => return Err(e),
        }
    }
    let addrs = ip(&["-o", "-4", "addr", "show", "dev", BRIDGE]).await?;
    if !addrs.contains(&format!("inet {gw} ")) {
        let gw_s = gw.to_string();
        if let Err(e) = ip(&["addr", "add", &gw_s, "dev", BRIDGE]).await {
            let again = ip(&["-o", "-4", "addr", "show", "dev", BRIDGE]).await?;
            if !again.contains(&format!("inet {gw} ")) {
                return Err(e);
            }
        }
    }
    ip(&["link", "set", BRIDGE, "up"]).await?;
    Ok(())
}

/// Removes `gw` from the bridge (DNS moved away from it).
async fn remove_address(gw: Ipv4Net) {
    if let Err(e) = ip(&["addr", "del", &gw.to_string(), "dev", BRIDGE]).await {
        tracing::debug!(error = %e, "removing the old DNS address");
    }
}

/// The first wait before serving DNS on its address is tried again (it doubles each time).
const RETRY_MIN: Duration = Duration::from_secs(1);
/// The longest wait between two tries.
const RETRY_MAX: Duration = Duration::from_secs(30);

/// What the DNS placement needs.
pub struct Placement {
    /// The server's client (reads the Node, writes the endpoints).
    pub server: kube::Client,
    /// The DNS's own client (its watches).
    pub dns_client: kube::Client,
    /// This node.
    pub node_name: String,
    /// rkube-dns's settings (upstreams still including itself are filtered per address).
    pub config: rkube_dns::Config,
    /// Where rkube-dns serves `/healthz`, `/readyz` and `/metrics`, if free.
    pub metrics_addr: Option<SocketAddr>,
}

/// rkube-dns running on one address.
struct Serving {
    gw: Ipv4Net,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), rkube_dns::Error>>,
}

impl Serving {
    async fn stop(self) -> Result<(), DnsError> {
        self.stop.cancel();
        match self.task.await {
            Ok(r) => r.map_err(DnsError::from),
            Err(e) => Err(DnsError::Panic(e.to_string())),
        }
    }
}

impl Placement {
    async fn pod_cidr(&self) -> Option<String> {
        let nodes: Api<Node> = Api::all(self.server.clone());
        match nodes.get_opt(&self.node_name).await {
            Ok(n) => n?.spec?.pod_cidr.filter(|c| !c.is_empty()),
            Err(e) => {
                tracing::debug!(error = %e, "reading the node for the DNS address");
                None
            }
        }
    }

    async fn start_serving(&self, gw: Ipv4Net) -> Result<Serving, DnsError> {
        ensure_bridge(gw).await?;
        let addr = SocketAddr::new(gw.addr().into(), 53);
        let udp = tokio::net::UdpSocket::bind(addr)
            .await
            .map_err(|source| DnsError::Bind { addr, source })?;
        let tcp = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| DnsError::Bind { addr, source })?;
        let http = match self.metrics_addr {
            Some(m) => match tokio::net::TcpListener::bind(m).await {
                Ok(l) => Some(l),
                Err(e) => {
                    tracing::warn!(addr = %m, error = %e, "DNS health and metrics not served");
                    None
                }
            },
            None => None,
        };
        let mut config = self.config.clone();
        config.upstreams = rkube_dns::upstream::without_self(config.upstreams, addr);
        let listeners = rkube_dns::Listeners {
            udp: vec![udp],
            tcp: vec![tcp],
            http,
        };
        let stop = CancellationToken::new();
        let task = tokio::spawn(rkube_dns::run(
            config,
            self.dns_client.clone(),
            listeners,
            stop.clone().cancelled_owned(),
        ));
        tracing::info!(%addr, bridge = BRIDGE, "cluster DNS serving on the pod network gateway");
        Ok(Serving { gw, stop, task })
    }

    /// Writes the kube-dns Endpoints and EndpointSlice unless they already point at `addr`.
    async fn publish(&self, addr: Ipv4Addr) -> Result<bool, kube::Error> {
        let eps: Api<Endpoints> = Api::namespaced(self.server.clone(), NAMESPACE);
        let slices: Api<EndpointSlice> = Api::namespaced(self.server.clone(), NAMESPACE);
        let pp = PatchParams::apply(crate::manifests::FIELD_MANAGER).force();
        let mut wrote = false;
        if !eps
            .get_opt(SERVICE)
            .await?
            .is_some_and(|e| endpoints_match(&e, addr))
        {
            eps.patch(
                SERVICE,
                &pp,
                &Patch::Apply(endpoints(addr, &self.node_name)),
            )
            .await?;
            wrote = true;
        }
        if !slices
            .get_opt(SLICE)
            .await?
            .is_some_and(|s| slice_matches(&s, addr))
        {
            slices
                .patch(
                    SLICE,
                    &pp,
                    &Patch::Apply(endpoint_slice(addr, &self.node_name)),
                )
                .await?;
            wrote = true;
        }
        Ok(wrote)
    }

    /// Follows the node's pod CIDR: serves DNS on its gateway and keeps the endpoints there,
    /// until `stop`. Returns rkube-dns's error if it fails.
    pub async fn run(self, stop: CancellationToken) -> Result<(), DnsError> {
        let mut serving: Option<Serving> = None;
        let mut waiting_logged = false;
        let mut retry = RETRY_MIN;
        let result = loop {
            let desired = self.pod_cidr().await.as_deref().and_then(gateway);
            if let Some(gw) = desired
                && serving.as_ref().map(|s| s.gw) != Some(gw)
            {
                if let Some(old) = serving.take() {
                    tracing::info!(from = %old.gw, to = %gw, "the pod CIDR changed; moving DNS");
                    let old_gw = old.gw;
                    if let Err(e) = old.stop().await {
                        break Err(e);
                    }
                    remove_address(old_gw).await;
                }
                match self.start_serving(gw).await {
                    Ok(s) => {
                        serving = Some(s);
                        retry = RETRY_MIN;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, retry_in = ?retry, "cannot serve DNS");
                        tokio::select! {
                            _ = stop.cancelled() => break Ok(()),
                            _ = tokio::time::sleep(retry) => {}
                        }
                        retry = (retry * 2).min(RETRY_MAX);
                        continue;
                    }
                }
            } else if desired.is_none() && !waiting_logged {
                tracing::info!(
                    node = %self.node_name,
                    "DNS waits for the node's pod CIDR (from the controller manager)"
                );
                waiting_logged = true;
            }
            if let Some(s) = &serving {
                if s.task.is_finished() {
                    let s = serving.take().expect("serving");
                    break match s.stop().await {
                        Ok(()) => Err(DnsError::Panic("rkube-dns stopped by itself".into())),
                        Err(e) => Err(e),
                    };
                }
                match self.publish(s.gw.addr()).await {
                    Ok(true) => tracing::info!(
                        addr = %s.gw.addr(),
                        "kube-dns endpoints point at the cluster DNS"
                    ),
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "writing the kube-dns endpoints"),
                }
            }
            let tick = if serving.is_some() {
                Duration::from_secs(5)
            } else {
                Duration::from_millis(500)
            };
            tokio::select! {
                _ = stop.cancelled() => break Ok(()),
                _ = tokio::time::sleep(tick) => {}
            }
        };
        if let Some(s) = serving.take() {
            s.stop().await?;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_is_the_first_address_with_the_prefix() {
        assert_eq!(
            gateway("10.244.0.0/24").unwrap().to_string(),
            "10.244.0.1/24"
        );
        assert_eq!(
            gateway("10.244.7.0/24").unwrap().to_string(),
            "10.244.7.1/24"
        );
        assert_eq!(
            gateway("10.244.7.9/24").unwrap().to_string(),
            "10.244.7.1/24"
        );
        assert!(gateway("nonsense").is_none());
    }

    #[test]
    fn endpoints_objects_round_trip_and_match() {
        let a = Ipv4Addr::new(10, 244, 0, 1);
        let e: Endpoints = serde_json::from_value(endpoints(a, "n1")).unwrap();
        assert!(endpoints_match(&e, a));
        assert!(!endpoints_match(&e, Ipv4Addr::new(10, 244, 1, 1)));
        let s: EndpointSlice = serde_json::from_value(endpoint_slice(a, "n1")).unwrap();
        assert!(slice_matches(&s, a));
        assert!(!slice_matches(&s, Ipv4Addr::new(10, 244, 1, 1)));
        assert_eq!(s.endpoints[0].node_name.as_deref(), Some("n1"));
        let labels = s.metadata.labels.unwrap();
        assert_eq!(labels["endpointslice.kubernetes.io/managed-by"], MANAGED_BY);
        let mut empty = e.clone();
        empty.subsets = None;
        assert!(!endpoints_match(&empty, a));
    }
}
