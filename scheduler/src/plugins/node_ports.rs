//! NodePorts: a pod asking for host ports fits only nodes where no other pod holds the same
//! port and protocol on an overlapping IP (`0.0.0.0` overlaps every IP).

use crate::cache::{NodeInfo, Snapshot};
use crate::framework::{ClusterEvent, CycleState, FilterPlugin, Plugin, PreFilterPlugin, Status};
use crate::pod_info::PodInfo;

/// The plugin's name.
pub const NAME: &str = "NodePorts";
/// The rejection reason.
pub const REASON: &str = "node(s) didn't have free ports for the requested pod ports";

/// Filters nodes with conflicting host ports.
#[derive(Default)]
pub struct NodePorts;

impl Plugin for NodePorts {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events(&self) -> &'static [ClusterEvent] {
        &[ClusterEvent::NodeAdd, ClusterEvent::AssignedPodDelete]
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
}

impl PreFilterPlugin for NodePorts {
    fn pre_filter(&self, _state: &mut CycleState, pod: &PodInfo, _snap: &Snapshot) -> Status {
        if pod.host_ports.is_empty() {
            Status::skip()
        } else {
            Status::success()
        }
    }
}

impl FilterPlugin for NodePorts {
    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let conflict = pod
            .host_ports
            .iter()
            .any(|want| node.used_ports.iter().any(|used| used.conflicts(want)));
        if conflict {
            Status::unschedulable(vec![REASON.into()])
        } else {
            Status::success()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Code;
    use crate::testing::{node, pod_info};
    use k8s_openapi::api::core::v1::ContainerPort;
    use std::sync::Arc;

    fn with_port(name: &str, ip: Option<&str>, proto: &str, port: i32) -> PodInfo {
        let ip = ip.map(String::from);
        let proto = proto.to_string();
        pod_info(name, "0", "0", move |s| {
            s.containers[0].ports = Some(vec![ContainerPort {
                container_port: 80,
                host_port: Some(port),
                host_ip: ip.clone(),
                protocol: Some(proto.clone()),
                ..Default::default()
            }])
        })
    }

    #[test]
    fn port_conflicts_table() {
        let mut n = NodeInfo::new(Arc::new(node("n", "1", "1Gi")));
        n.add_pod(Arc::new(with_port("a", Some("10.0.0.1"), "TCP", 8080)));
        let st = CycleState::new();
        let cases = [
            (with_port("p", None, "TCP", 8080), Code::Unschedulable),
            (
                with_port("p", Some("10.0.0.1"), "TCP", 8080),
                Code::Unschedulable,
            ),
            (with_port("p", Some("10.0.0.2"), "TCP", 8080), Code::Success),
            (with_port("p", None, "UDP", 8080), Code::Success),
            (with_port("p", None, "TCP", 8081), Code::Success),
        ];
        for (p, want) in cases {
            assert_eq!(
                NodePorts.filter(&st, &p, &n).code,
                want,
                "{:?}",
                p.host_ports
            );
        }
        let mut st = CycleState::new();
        let none = pod_info("q", "0", "0", |_| {});
        assert!(
            NodePorts
                .pre_filter(&mut st, &none, &Snapshot::new())
                .is_skip()
        );
    }
}
