//! NodeName: a pod that names a node in `spec.nodeName` fits only that node. (The scheduler
//! only schedules pods without a node name, so this matters for simulations and preemption
//! checks, as in Kubernetes.)

use crate::cache::NodeInfo;
use crate::framework::{ClusterEvent, CycleState, FilterPlugin, Plugin, Status};
use crate::pod_info::PodInfo;

/// The plugin's name.
pub const NAME: &str = "NodeName";
/// The rejection reason.
pub const REASON: &str = "node(s) didn't match the requested node name";

/// Filters nodes other than the one the pod names.
#[derive(Default)]
pub struct NodeName;

impl Plugin for NodeName {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events(&self) -> &'static [ClusterEvent] {
        &[ClusterEvent::NodeAdd]
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
}

impl FilterPlugin for NodeName {
    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        match &pod.node_name {
            Some(name) if *name != node.name => Status::unresolvable(REASON),
            _ => Status::success(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Code;
    use crate::testing::{node, pod_info};
    use std::sync::Arc;

    #[test]
    fn only_the_named_node_fits() {
        let n1 = NodeInfo::new(Arc::new(node("n1", "1", "1Gi")));
        let n2 = NodeInfo::new(Arc::new(node("n2", "1", "1Gi")));
        let named = pod_info("p", "0", "0", |s| s.node_name = Some("n1".into()));
        let free = pod_info("q", "0", "0", |_| {});
        let st = CycleState::new();
        assert_eq!(NodeName.filter(&st, &named, &n1).code, Code::Success);
        assert_eq!(
            NodeName.filter(&st, &named, &n2).code,
            Code::UnschedulableAndUnresolvable
        );
        assert_eq!(NodeName.filter(&st, &free, &n2).code, Code::Success);
    }
}
