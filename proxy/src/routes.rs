//! host-gw pod routes: every other Node's podCIDR via that Node's InternalIP, so pods on different
//! nodes reach each other without an overlay. A Node whose InternalIP is not on a directly
//! connected subnet is skipped with a warning. Routes carry their own protocol number so the proxy
//! finds (and removes) only its own.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Node;

use crate::netns::Netns;

/// The `proto` of the routes rkube-proxy installs (unassigned in iproute2's rt_protos).
pub const ROUTE_PROTOCOL: &str = "77";

/// Errors managing routes.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `ip` could not be run.
    #[error("running ip: {0}")]
    Run(#[from] crate::netns::Error),
    /// `ip` failed.
    #[error("ip {args}: {stderr}")]
    Failed {
        /// The arguments.
        args: String,
        /// ip's message.
        stderr: String,
    },
    /// Its output was not the JSON expected.
    #[error("cannot parse `ip {args}` output: {message}")]
    Parse {
        /// The arguments.
        args: String,
        /// What was wrong.
        message: String,
    },
}

/// A route to another node's pods.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    /// The node's pod CIDR.
    pub cidr: Ipv4Net,
    /// The node's InternalIP.
    pub via: Ipv4Addr,
    /// The node's name.
    pub node: String,
}

/// The routes this node wants: one per other Node with an IPv4 podCIDR and an InternalIP. Pure.
pub fn desired_routes<'a>(
    nodes: impl IntoIterator<Item = &'a Node>,
    self_name: &str,
) -> Vec<Route> {
    let mut out = Vec::new();
    for node in nodes {
        let name = node.metadata.name.as_deref().unwrap_or_default();
        if name == self_name {
            continue;
        }
        let spec = node.spec.as_ref();
        let cidr = spec
            .and_then(|s| s.pod_cidrs.as_ref())
            .into_iter()
            .flatten()
            .chain(spec.and_then(|s| s.pod_cidr.as_ref()))
            .find_map(|c| c.parse::<Ipv4Net>().ok());
        let via = node
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .into_iter()
            .flatten()
            .filter(|a| a.type_ == "InternalIP")
            .find_map(|a| a.address.parse::<Ipv4Addr>().ok());
        if let (Some(cidr), Some(via)) = (cidr, via) {
            out.push(Route {
                cidr: cidr.trunc(),
                via,
                node: name.to_string(),
            });
        }
    }
    out.sort();
    out.dedup_by(|a, b| a.cidr == b.cidr);
    out
}

/// Installs and removes host-gw routes in a namespace.
pub struct RouteManager {
    netns: Netns,
    warned: BTreeSet<(String, Ipv4Addr)>,
}

/// What one route sync did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouteStats {
    /// Routes in place after it.
    pub installed: usize,
    /// Nodes skipped (not on a connected subnet).
    pub skipped: usize,
    /// Stale routes removed.
    pub removed: usize,
}

impl RouteManager {
    /// A manager for `netns`.
    pub fn new(netns: Netns) -> Self {
        Self {
            netns,
            warned: BTreeSet::new(),
        }
    }

    fn ip(&self, args: &[&str]) -> Result<Vec<u8>, Error> {
        let out = self.netns.command("ip", args, b"")?;
        if !out.status.success() {
            return Err(Error::Failed {
                args: args.join(" "),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(out.stdout)
    }

    fn ip_json(&self, args: &[&str]) -> Result<serde_json::Value, Error> {
        let out = self.ip(args)?;
        if out.iter().all(u8::is_ascii_whitespace) {
            return Ok(serde_json::Value::Array(Vec::new()));
        }
        serde_json::from_slice(&out).map_err(|e| Error::Parse {
            args: args.join(" "),
            message: e.to_string(),
        })
    }

    /// The routes rkube-proxy installed: destination → gateway.
    pub fn installed(&self) -> Result<BTreeMap<Ipv4Net, Option<Ipv4Addr>>, Error> {
        let v = self.ip_json(&["-j", "-4", "route", "show", "proto", ROUTE_PROTOCOL])?;
        Ok(v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| {
                let dst = r["dst"].as_str()?;
                let net = dst
                    .parse::<Ipv4Net>()
                    .or_else(|_| dst.parse::<Ipv4Addr>().map(Ipv4Net::from))
                    .ok()?;
                Some((net, r["gateway"].as_str().and_then(|g| g.parse().ok())))
            })
            .collect())
    }

    /// Whether `via` is on a directly connected subnet (no gateway on the way to it).
    fn directly_connected(&self, via: Ipv4Addr) -> Result<bool, Error> {
        let v = match self.ip_json(&["-j", "-4", "route", "get", &via.to_string()]) {
            Ok(v) => v,
            Err(Error::Failed { .. }) => return Ok(false),
            Err(e) => return Err(e),
        };
        let r = &v[0];
        Ok(r["gateway"].is_null() && r["type"].as_str().unwrap_or("unicast") != "local")
    }

    /// Makes the installed routes match `routes`.
    pub fn sync(&mut self, routes: &[Route]) -> Result<RouteStats, Error> {
        let mut stats = RouteStats::default();
        let current = self.installed()?;
        let mut wanted = BTreeSet::new();
        for r in routes {
            if !self.directly_connected(r.via)? {
                stats.skipped += 1;
                if self.warned.insert((r.node.clone(), r.via)) {
                    tracing::warn!(node = %r.node, via = %r.via, cidr = %r.cidr,
                        "node is not on a directly connected subnet; no route to its pods");
                }
                continue;
            }
            wanted.insert(r.cidr);
            if current.get(&r.cidr) == Some(&Some(r.via)) {
                continue;
            }
            self.ip(&[
                "route",
                "replace",
                &r.cidr.to_string(),
                "via",
                &r.via.to_string(),
                "proto",
                ROUTE_PROTOCOL,
            ])?;
            tracing::info!(node = %r.node, cidr = %r.cidr, via = %r.via, "pod route installed");
        }
        for cidr in current.keys().filter(|c| !wanted.contains(c)) {
            self.ip(&["route", "del", &cidr.to_string(), "proto", ROUTE_PROTOCOL])?;
            stats.removed += 1;
            tracing::info!(%cidr, "stale pod route removed");
        }
        stats.installed = wanted.len();
        Ok(stats)
    }

    /// Removes every route rkube-proxy installed.
    pub fn cleanup(&mut self) -> Result<usize, Error> {
        self.sync(&[]).map(|s| s.removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeAddress, NodeSpec, NodeStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn node(name: &str, cidr: Option<&str>, ip: Option<&str>) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                pod_cidr: cidr.map(Into::into),
                pod_cidrs: cidr.map(|c| vec![c.into()]),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                addresses: ip.map(|ip| {
                    vec![
                        NodeAddress {
                            type_: "Hostname".into(),
                            address: name.into(),
                        },
                        NodeAddress {
                            type_: "InternalIP".into(),
                            address: ip.into(),
                        },
                    ]
                }),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn routes_to_other_nodes_with_cidr_and_internal_ip() {
        let nodes = [
            node("n1", Some("10.244.1.0/24"), Some("192.0.2.1")),
            node("n2", Some("10.244.2.0/24"), Some("192.0.2.2")),
            node("n3", None, Some("192.0.2.3")),
            node("n4", Some("10.244.4.0/24"), None),
            node("n5", Some("fd00:1::/64"), Some("192.0.2.5")),
            node("n0", Some("10.244.0.7/24"), Some("192.0.2.9")),
        ];
        let r = desired_routes(&nodes, "n1");
        assert_eq!(
            r,
            [
                Route {
                    cidr: "10.244.0.0/24".parse().unwrap(),
                    via: "192.0.2.9".parse().unwrap(),
                    node: "n0".into()
                },
                Route {
                    cidr: "10.244.2.0/24".parse().unwrap(),
                    via: "192.0.2.2".parse().unwrap(),
                    node: "n2".into()
                },
            ]
        );
    }
}
