//! The desired dataplane as a pure function: Services and their EndpointSlices → the frontends
//! (ClusterIP, external IP and NodePort addresses) to program, each with its ready endpoints,
//! masquerade policy, session affinity and what to do when it has no endpoints. Both modes (nftables
//! and userspace) consume this; nothing here touches the kernel.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{Service, ServicePort};
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Kubernetes' default ClientIP affinity timeout (3 hours).
pub const DEFAULT_AFFINITY_TIMEOUT: u32 = 10_800;

/// `namespace/name` of a Service.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
}

impl ServiceKey {
    /// A key from its parts.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The key of a Service object.
    pub fn of_service(svc: &Service) -> Self {
        Self::new(
            svc.metadata.namespace.clone().unwrap_or_default(),
            svc.metadata.name.clone().unwrap_or_default(),
        )
    }

    /// The key of the Service an EndpointSlice belongs to (its `kubernetes.io/service-name`
    /// label), if it has one.
    pub fn of_slice(slice: &EndpointSlice) -> Option<Self> {
        let name = slice.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?;
        Some(Self::new(
            slice.metadata.namespace.clone().unwrap_or_default(),
            name.clone(),
        ))
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A transport protocol a Service port may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP (the default).
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// Parses a Kubernetes protocol name; `None` (unset) is TCP.
    pub fn parse(p: Option<&str>) -> Option<Self> {
        match p.unwrap_or("TCP") {
            "TCP" => Some(Self::Tcp),
            "UDP" => Some(Self::Udp),
            "SCTP" => Some(Self::Sctp),
            _ => None,
        }
    }

    /// The nftables name (`tcp`, `udp`, `sctp`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Sctp => "sctp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where clients send traffic for a Service port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FrontendKey {
    /// A ClusterIP or an external IP with its port.
    Addr {
        /// The address.
        ip: Ipv4Addr,
        /// The protocol.
        protocol: Protocol,
        /// The port.
        port: u16,
    },
    /// A NodePort, on the node's (selected) addresses.
    NodePort {
        /// The protocol.
        protocol: Protocol,
        /// The node port.
        port: u16,
    },
}

impl FrontendKey {
    /// The frontend's protocol.
    pub fn protocol(&self) -> Protocol {
        match *self {
            Self::Addr { protocol, .. } | Self::NodePort { protocol, .. } => protocol,
        }
    }

    /// The frontend's port.
    pub fn port(&self) -> u16 {
        match *self {
            Self::Addr { port, .. } | Self::NodePort { port, .. } => port,
        }
    }
}

impl fmt::Display for FrontendKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Addr { ip, protocol, port } => write!(f, "{ip}:{port}/{protocol}"),
            Self::NodePort { protocol, port } => write!(f, "nodeport {port}/{protocol}"),
        }
    }
}

/// Which kind of address a frontend is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FrontendKind {
    /// The Service's ClusterIP (internal traffic).
    ClusterIp,
    /// One of `spec.externalIPs` (external traffic).
    ExternalIp,
    /// The NodePort (external traffic).
    NodePort,
}

/// A ready endpoint: a pod address and the port the Service port maps to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    /// The pod IP.
    pub ip: Ipv4Addr,
    /// The target port.
    pub port: u16,
    /// Whether the endpoint runs on this node.
    pub local: bool,
}

/// When connections to a frontend get their source address rewritten to the node's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Masquerade {
    /// Only connections from outside the cluster CIDR (ClusterIP traffic).
    OffCluster,
    /// Always (external traffic with `externalTrafficPolicy: Cluster`), so replies come back
    /// through this node.
    Always,
    /// Never (`externalTrafficPolicy: Local` keeps the client's address).
    Never,
}

/// What a frontend without endpoints does with new connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EmptyAction {
    /// The Service has no ready endpoints at all: refuse quickly (TCP reset / ICMP unreachable).
    Reject,
    /// A traffic policy of `Local` left no endpoint on this node: drop, as kube-proxy does.
    Drop,
}

/// One frontend of one Service port and where its traffic goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frontend {
    /// The address, protocol and port clients use.
    pub key: FrontendKey,
    /// ClusterIP, external IP or NodePort.
    pub kind: FrontendKind,
    /// `namespace/name:port` (for logs and metrics).
    pub port_name: String,
    /// Ready endpoints, sorted and without duplicates; empty means `when_empty` applies.
    pub endpoints: Vec<Endpoint>,
    /// The masquerade policy.
    pub masquerade: Masquerade,
    /// ClientIP session affinity timeout in seconds, when affinity is on.
    pub affinity_timeout: Option<u32>,
    /// What happens when `endpoints` is empty.
    pub when_empty: EmptyAction,
}

/// The whole desired dataplane: each Service's frontends.
pub type RuleSet = BTreeMap<ServiceKey, Vec<Frontend>>;

/// Counts for metrics and logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Services with at least one frontend.
    pub services: usize,
    /// Frontends.
    pub frontends: usize,
    /// Endpoint entries summed over frontends.
    pub endpoints: usize,
    /// Frontends without endpoints.
    pub empty_frontends: usize,
}

/// Counts the frontends and endpoints of a rule set.
pub fn summarize(rules: &RuleSet) -> Summary {
    let mut s = Summary::default();
    for fronts in rules.values() {
        if !fronts.is_empty() {
            s.services += 1;
        }
        for f in fronts {
            s.frontends += 1;
            s.endpoints += f.endpoints.len();
            if f.endpoints.is_empty() {
                s.empty_frontends += 1;
            }
        }
    }
    s
}

fn parse_v4(s: &str) -> Option<Ipv4Addr> {
    s.parse().ok()
}

/// The ready endpoints of one Service port, found in its slices: ready ones, or — when none is
/// ready — serving and terminating ones (as Kubernetes does), keyed by address and port.
fn endpoints_for_port(
    port: &ServicePort,
    protocol: Protocol,
    slices: &[&EndpointSlice],
    node_name: &str,
) -> Vec<Endpoint> {
    let want_name = port.name.as_deref().unwrap_or("");
    let mut ready = BTreeSet::new();
    let mut terminating = BTreeSet::new();
    for slice in slices {
        if slice.address_type != "IPv4" {
            continue;
        }
        let Some(target) = slice.ports.iter().flatten().find(|p| {
            p.name.as_deref().unwrap_or("") == want_name
                && Protocol::parse(p.protocol.as_deref()) == Some(protocol)
        }) else {
            continue;
        };
        let Some(target_port) = target.port.and_then(|p| u16::try_from(p).ok()) else {
            continue;
        };
        for ep in &slice.endpoints {
            let cond = ep.conditions.as_ref();
            let is_ready = cond.and_then(|c| c.ready).unwrap_or(true);
            let serving = cond.and_then(|c| c.serving).unwrap_or(is_ready);
            let is_terminating = cond.and_then(|c| c.terminating).unwrap_or(false);
            let local = ep.node_name.as_deref() == Some(node_name);
            for addr in ep.addresses.iter().filter_map(|a| parse_v4(a)) {
                let e = Endpoint {
                    ip: addr,
                    port: target_port,
                    local,
                };
                if is_ready {
                    ready.insert(e);
                } else if serving && is_terminating {
                    terminating.insert(e);
                }
            }
        }
    }
    let chosen = if ready.is_empty() { terminating } else { ready };
    // The same address and port may appear in two slices during a rollover; keep one (local if
    // either says so).
    let mut out: Vec<Endpoint> = Vec::with_capacity(chosen.len());
    for e in chosen {
        match out.last_mut() {
            Some(last) if last.ip == e.ip && last.port == e.port => last.local |= e.local,
            _ => out.push(e),
        }
    }
    out
}

/// The frontends of one Service given the EndpointSlices that belong to it (other slices are
/// ignored). Headless, ExternalName and non-IPv4 Services have none.
pub fn service_frontends(
    svc: &Service,
    slices: &[&EndpointSlice],
    node_name: &str,
) -> Vec<Frontend> {
    let key = ServiceKey::of_service(svc);
    let Some(spec) = svc.spec.as_ref() else {
        return Vec::new();
    };
    let svc_type = spec.type_.as_deref().unwrap_or("ClusterIP");
    if svc_type == "ExternalName" {
        return Vec::new();
    }
    let slices: Vec<&EndpointSlice> = slices
        .iter()
        .copied()
        .filter(|s| ServiceKey::of_slice(s).as_ref() == Some(&key))
        .collect();
    let cluster_ip = spec
        .cluster_ips
        .iter()
        .flatten()
        .chain(spec.cluster_ip.iter())
        .find_map(|ip| parse_v4(ip));
    let external_ips: Vec<Ipv4Addr> = spec
        .external_ips
        .iter()
        .flatten()
        .filter_map(|ip| parse_v4(ip))
        .collect();
    let node_ports = matches!(svc_type, "NodePort" | "LoadBalancer");
    let external_local = spec.external_traffic_policy.as_deref() == Some("Local")
        && (node_ports || !external_ips.is_empty());
    let internal_local = spec.internal_traffic_policy.as_deref() == Some("Local");
    let affinity_timeout = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        spec.session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .and_then(|t| u32::try_from(t).ok())
            .filter(|t| *t > 0)
            .unwrap_or(DEFAULT_AFFINITY_TIMEOUT)
    });

    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for port in spec.ports.iter().flatten() {
        let Some(protocol) = Protocol::parse(port.protocol.as_deref()) else {
            continue;
        };
        let Ok(svc_port) = u16::try_from(port.port) else {
            continue;
        };
        let port_name = match port.name.as_deref() {
            Some(n) if !n.is_empty() => format!("{key}:{n}"),
            _ => format!("{key}:{svc_port}"),
        };
        let all = endpoints_for_port(port, protocol, &slices, node_name);
        let when_empty_for = |filtered: bool| {
            if all.is_empty() || !filtered {
                EmptyAction::Reject
            } else {
                EmptyAction::Drop
            }
        };
        let local_only: Vec<Endpoint> = all.iter().copied().filter(|e| e.local).collect();
        let internal = if internal_local {
            local_only.clone()
        } else {
            all.clone()
        };
        let external = if external_local {
            local_only
        } else {
            all.clone()
        };
        let external_masq = if external_local {
            Masquerade::Never
        } else {
            Masquerade::Always
        };
        let mut push = |key: FrontendKey, kind, endpoints: &Vec<Endpoint>, masq, filtered| {
            if seen.insert(key) {
                out.push(Frontend {
                    key,
                    kind,
                    port_name: port_name.clone(),
                    endpoints: endpoints.clone(),
                    masquerade: masq,
                    affinity_timeout,
                    when_empty: when_empty_for(filtered),
                });
            }
        };
        if let Some(ip) = cluster_ip {
            let k = FrontendKey::Addr {
                ip,
                protocol,
                port: svc_port,
            };
            push(
                k,
                FrontendKind::ClusterIp,
                &internal,
                Masquerade::OffCluster,
                internal_local,
            );
        }
        for ip in &external_ips {
            let k = FrontendKey::Addr {
                ip: *ip,
                protocol,
                port: svc_port,
            };
            push(
                k,
                FrontendKind::ExternalIp,
                &external,
                external_masq,
                external_local,
            );
        }
        if node_ports && let Some(np) = port.node_port.and_then(|p| u16::try_from(p).ok()) {
            let k = FrontendKey::NodePort { protocol, port: np };
            push(
                k,
                FrontendKind::NodePort,
                &external,
                external_masq,
                external_local,
            );
        }
    }
    out
}

/// Groups EndpointSlices by the Service they belong to.
pub fn slices_by_service<'a>(
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
) -> HashMap<ServiceKey, Vec<&'a EndpointSlice>> {
    let mut by: HashMap<ServiceKey, Vec<&EndpointSlice>> = HashMap::new();
    for s in slices {
        if let Some(k) = ServiceKey::of_slice(s) {
            by.entry(k).or_default().push(s);
        }
    }
    by
}

/// The whole desired dataplane for `node_name`. A frontend claimed by two Services (the same
/// external IP and port, say) goes to the first in `namespace/name` order; the others lose it.
pub fn compute<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
    node_name: &str,
) -> RuleSet {
    let by_service = slices_by_service(slices);
    let mut rules = RuleSet::new();
    for svc in services {
        let key = ServiceKey::of_service(svc);
        let slices = by_service.get(&key).map(Vec::as_slice).unwrap_or(&[]);
        rules.insert(key, service_frontends(svc, slices, node_name));
    }
    dedupe(&mut rules);
    rules
}

/// Drops frontends already claimed by an earlier Service; returns the conflicts
/// (`frontend`, loser).
pub fn dedupe(rules: &mut RuleSet) -> Vec<(FrontendKey, ServiceKey)> {
    let mut owners: HashMap<FrontendKey, ServiceKey> = HashMap::new();
    let mut lost = Vec::new();
    for (key, fronts) in rules.iter_mut() {
        fronts.retain(|f| match owners.get(&f.key) {
            Some(owner) if owner != key => {
                tracing::warn!(frontend = %f.key, service = %key, owner = %owner,
                    "frontend already used by another service; ignored");
                lost.push((f.key, key.clone()));
                false
            }
            _ => {
                owners.insert(f.key, key.clone());
                true
            }
        });
    }
    lost
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ClientIPConfig, ServiceSpec, SessionAffinityConfig};
    use k8s_openapi::api::discovery::v1::{
        Endpoint as SliceEndpoint, EndpointConditions, EndpointPort,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn svc(name: &str, ip: &str, ports: &[(&str, i32, &str, Option<i32>)]) -> Service {
        Service {
            metadata: ObjectMeta {
                namespace: Some("ns".into()),
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                cluster_ip: Some(ip.into()),
                cluster_ips: Some(vec![ip.into()]),
                ports: Some(
                    ports
                        .iter()
                        .map(|(n, p, proto, np)| ServicePort {
                            name: Some((*n).into()),
                            port: *p,
                            protocol: Some((*proto).into()),
                            node_port: *np,
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// (ip, ready, node)
    fn slice(
        svc: &str,
        name: &str,
        ports: &[(&str, i32, &str)],
        eps: &[(&str, Option<bool>, &str)],
    ) -> EndpointSlice {
        EndpointSlice {
            metadata: ObjectMeta {
                namespace: Some("ns".into()),
                name: Some(name.into()),
                labels: Some([(SERVICE_NAME_LABEL.to_string(), svc.to_string())].into()),
                ..Default::default()
            },
            address_type: "IPv4".into(),
            endpoints: eps
                .iter()
                .map(|(ip, ready, node)| SliceEndpoint {
                    addresses: vec![(*ip).into()],
                    conditions: Some(EndpointConditions {
                        ready: *ready,
                        ..Default::default()
                    }),
                    node_name: Some((*node).into()),
                    ..Default::default()
                })
                .collect(),
            ports: Some(
                ports
                    .iter()
                    .map(|(n, p, proto)| EndpointPort {
                        name: Some((*n).into()),
                        port: Some(*p),
                        protocol: Some((*proto).into()),
                        ..Default::default()
                    })
                    .collect(),
            ),
        }
    }

    fn addr(ip: &str, protocol: Protocol, port: u16) -> FrontendKey {
        FrontendKey::Addr {
            ip: ip.parse().unwrap(),
            protocol,
            port,
        }
    }

    fn ips(f: &Frontend) -> Vec<String> {
        f.endpoints
            .iter()
            .map(|e| format!("{}:{}", e.ip, e.port))
            .collect()
    }

    #[test]
    fn cluster_ip_gets_ready_endpoints_from_all_slices_sorted() {
        let s = svc("web", "10.96.0.10", &[("http", 80, "TCP", None)]);
        let a = slice(
            "web",
            "web-a",
            &[("http", 8080, "TCP")],
            &[("10.244.1.3", Some(true), "n1"), ("10.244.1.2", None, "n2")],
        );
        let b = slice(
            "web",
            "web-b",
            &[("http", 8080, "TCP")],
            &[
                ("10.244.1.4", Some(false), "n1"),
                ("10.244.1.1", Some(true), "n1"),
            ],
        );
        let other = slice(
            "other",
            "other-a",
            &[("http", 9, "TCP")],
            &[("10.244.9.9", Some(true), "n1")],
        );
        let rules = compute([&s], [&a, &b, &other], "n1");
        let fronts = &rules[&ServiceKey::new("ns", "web")];
        assert_eq!(fronts.len(), 1);
        let f = &fronts[0];
        assert_eq!(f.key, addr("10.96.0.10", Protocol::Tcp, 80));
        assert_eq!(f.kind, FrontendKind::ClusterIp);
        assert_eq!(f.masquerade, Masquerade::OffCluster);
        assert_eq!(
            ips(f),
            ["10.244.1.1:8080", "10.244.1.2:8080", "10.244.1.3:8080"]
        );
        assert_eq!(
            f.endpoints.iter().map(|e| e.local).collect::<Vec<_>>(),
            [true, false, true]
        );
        assert_eq!(f.port_name, "ns/web:http");
    }

    #[test]
    fn ports_match_by_name_and_protocol() {
        let s = svc(
            "dns",
            "10.96.0.53",
            &[("dns", 53, "UDP", None), ("dns-tcp", 53, "TCP", None)],
        );
        let sl = slice(
            "dns",
            "dns-a",
            &[("dns", 5353, "UDP"), ("dns-tcp", 5354, "TCP")],
            &[("10.244.0.5", Some(true), "n1")],
        );
        let rules = compute([&s], [&sl], "n1");
        let fronts = &rules[&ServiceKey::new("ns", "dns")];
        assert_eq!(fronts.len(), 2);
        assert_eq!(fronts[0].key, addr("10.96.0.53", Protocol::Udp, 53));
        assert_eq!(ips(&fronts[0]), ["10.244.0.5:5353"]);
        assert_eq!(fronts[1].key, addr("10.96.0.53", Protocol::Tcp, 53));
        assert_eq!(ips(&fronts[1]), ["10.244.0.5:5354"]);
    }

    #[test]
    fn no_ready_endpoints_rejects_and_terminating_serving_ones_are_a_fallback() {
        let s = svc("web", "10.96.0.10", &[("", 80, "TCP", None)]);
        let sl = slice(
            "web",
            "web-a",
            &[("", 8080, "TCP")],
            &[("10.244.1.2", Some(false), "n1")],
        );
        let rules = compute([&s], [&sl], "n1");
        let f = &rules[&ServiceKey::new("ns", "web")][0];
        assert!(f.endpoints.is_empty());
        assert_eq!(f.when_empty, EmptyAction::Reject);
        assert_eq!(f.port_name, "ns/web:80");

        let mut term = sl.clone();
        term.endpoints[0].conditions = Some(EndpointConditions {
            ready: Some(false),
            serving: Some(true),
            terminating: Some(true),
        });
        let rules = compute([&s], [&term], "n1");
        assert_eq!(
            ips(&rules[&ServiceKey::new("ns", "web")][0]),
            ["10.244.1.2:8080"]
        );
    }

    #[test]
    fn node_port_external_ips_and_external_traffic_policy_local() {
        let mut s = svc("web", "10.96.0.10", &[("http", 80, "TCP", Some(30080))]);
        let spec = s.spec.as_mut().unwrap();
        spec.type_ = Some("NodePort".into());
        spec.external_ips = Some(vec!["192.0.2.7".into(), "2001:db8::1".into()]);
        let sl = slice(
            "web",
            "web-a",
            &[("http", 8080, "TCP")],
            &[
                ("10.244.1.2", Some(true), "n1"),
                ("10.244.2.2", Some(true), "n2"),
            ],
        );
        let rules = compute([&s], [&sl], "n1");
        let fronts = &rules[&ServiceKey::new("ns", "web")];
        let kinds: Vec<_> = fronts
            .iter()
            .map(|f| (f.key, f.kind, f.masquerade))
            .collect();
        assert_eq!(
            kinds,
            [
                (
                    addr("10.96.0.10", Protocol::Tcp, 80),
                    FrontendKind::ClusterIp,
                    Masquerade::OffCluster
                ),
                (
                    addr("192.0.2.7", Protocol::Tcp, 80),
                    FrontendKind::ExternalIp,
                    Masquerade::Always
                ),
                (
                    FrontendKey::NodePort {
                        protocol: Protocol::Tcp,
                        port: 30080
                    },
                    FrontendKind::NodePort,
                    Masquerade::Always
                ),
            ]
        );
        assert!(fronts.iter().all(|f| f.endpoints.len() == 2));

        s.spec.as_mut().unwrap().external_traffic_policy = Some("Local".into());
        let rules = compute([&s], [&sl], "n1");
        let fronts = &rules[&ServiceKey::new("ns", "web")];
        assert_eq!(
            fronts[0].endpoints.len(),
            2,
            "ClusterIP keeps all endpoints"
        );
        for f in &fronts[1..] {
            assert_eq!(ips(f), ["10.244.1.2:8080"]);
            assert_eq!(f.masquerade, Masquerade::Never);
        }
        // On a node without local endpoints the external frontends drop.
        let rules = compute([&s], [&sl], "n3");
        let fronts = &rules[&ServiceKey::new("ns", "web")];
        assert_eq!(fronts[0].endpoints.len(), 2);
        for f in &fronts[1..] {
            assert!(f.endpoints.is_empty());
            assert_eq!(f.when_empty, EmptyAction::Drop);
        }
    }

    #[test]
    fn cluster_ip_services_have_no_node_port_frontend() {
        let s = svc("web", "10.96.0.10", &[("http", 80, "TCP", Some(30080))]);
        let rules = compute([&s], [], "n1");
        assert_eq!(rules[&ServiceKey::new("ns", "web")].len(), 1);
    }

    #[test]
    fn session_affinity_timeout_defaults_and_config() {
        let mut s = svc("web", "10.96.0.10", &[("http", 80, "TCP", None)]);
        assert_eq!(
            compute([&s], [], "n1")[&ServiceKey::new("ns", "web")][0].affinity_timeout,
            None
        );
        s.spec.as_mut().unwrap().session_affinity = Some("ClientIP".into());
        assert_eq!(
            compute([&s], [], "n1")[&ServiceKey::new("ns", "web")][0].affinity_timeout,
            Some(DEFAULT_AFFINITY_TIMEOUT)
        );
        s.spec.as_mut().unwrap().session_affinity_config = Some(SessionAffinityConfig {
            client_ip: Some(ClientIPConfig {
                timeout_seconds: Some(30),
            }),
        });
        assert_eq!(
            compute([&s], [], "n1")[&ServiceKey::new("ns", "web")][0].affinity_timeout,
            Some(30)
        );
    }

    #[test]
    fn headless_external_name_and_ipv6_services_have_no_frontends() {
        let headless = svc("h", "None", &[("http", 80, "TCP", None)]);
        let v6 = svc("v6", "fd00::10", &[("http", 80, "TCP", None)]);
        let mut ext = svc("e", "", &[("http", 80, "TCP", None)]);
        ext.spec.as_mut().unwrap().type_ = Some("ExternalName".into());
        let rules = compute([&headless, &v6, &ext], [], "n1");
        assert!(rules.values().all(Vec::is_empty));
        assert_eq!(summarize(&rules), Summary::default());
    }

    #[test]
    fn internal_traffic_policy_local_limits_cluster_ip_to_local_endpoints() {
        let mut s = svc("web", "10.96.0.10", &[("http", 80, "TCP", None)]);
        s.spec.as_mut().unwrap().internal_traffic_policy = Some("Local".into());
        let sl = slice(
            "web",
            "web-a",
            &[("http", 8080, "TCP")],
            &[("10.244.2.2", Some(true), "n2")],
        );
        let f = &compute([&s], [&sl], "n1")[&ServiceKey::new("ns", "web")][0];
        assert!(f.endpoints.is_empty());
        assert_eq!(f.when_empty, EmptyAction::Drop);
    }

    #[test]
    fn a_frontend_claimed_twice_goes_to_the_first_service() {
        let mut a = svc("a", "10.96.0.1", &[("http", 80, "TCP", None)]);
        a.spec.as_mut().unwrap().external_ips = Some(vec!["192.0.2.1".into()]);
        let mut b = svc("b", "10.96.0.2", &[("http", 80, "TCP", None)]);
        b.spec.as_mut().unwrap().external_ips = Some(vec!["192.0.2.1".into()]);
        let rules = compute([&b, &a], [], "n1");
        assert_eq!(rules[&ServiceKey::new("ns", "a")].len(), 2);
        let b_keys: Vec<_> = rules[&ServiceKey::new("ns", "b")]
            .iter()
            .map(|f| f.key)
            .collect();
        assert_eq!(b_keys, [addr("10.96.0.2", Protocol::Tcp, 80)]);
        let s = summarize(&rules);
        assert_eq!((s.services, s.frontends, s.empty_frontends), (2, 3, 3));
    }

    #[test]
    fn duplicate_endpoints_across_slices_count_once() {
        let s = svc("web", "10.96.0.10", &[("http", 80, "TCP", None)]);
        let a = slice(
            "web",
            "web-a",
            &[("http", 8080, "TCP")],
            &[("10.244.1.2", Some(true), "n2")],
        );
        let b = slice(
            "web",
            "web-b",
            &[("http", 8080, "TCP")],
            &[("10.244.1.2", Some(true), "n1")],
        );
        let f = &compute([&s], [&a, &b], "n1")[&ServiceKey::new("ns", "web")][0];
        assert_eq!(f.endpoints.len(), 1);
        assert!(f.endpoints[0].local);
    }
}
