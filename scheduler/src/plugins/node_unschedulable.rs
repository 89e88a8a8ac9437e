//! NodeUnschedulable: rejects nodes with `spec.unschedulable` (cordoned) unless the pod
//! tolerates the `node.kubernetes.io/unschedulable:NoSchedule` taint.

use k8s_openapi::api::core::v1::Taint;

use super::tolerates;
use crate::cache::NodeInfo;
use crate::framework::{ClusterEvent, CycleState, FilterPlugin, Plugin, Status};
use crate::pod_info::PodInfo;

/// The plugin's name.
pub const NAME: &str = "NodeUnschedulable";
/// The rejection reason.
pub const REASON: &str = "node(s) were unschedulable";
/// The taint a cordoned node implies.
pub const TAINT_KEY: &str = "node.kubernetes.io/unschedulable";

/// Filters cordoned nodes.
#[derive(Default)]
pub struct NodeUnschedulable;

impl Plugin for NodeUnschedulable {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events(&self) -> &'static [ClusterEvent] {
        &[
            ClusterEvent::NodeAdd,
            ClusterEvent::NodeUnschedulable,
            ClusterEvent::NodeTaint,
        ]
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
}

impl FilterPlugin for NodeUnschedulable {
    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        if !node.unschedulable() {
            return Status::success();
        }
        let taint = Taint {
            key: TAINT_KEY.into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        if pod.tolerations.iter().any(|t| tolerates(t, &taint)) {
            Status::success()
        } else {
            Status::unresolvable(REASON)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Code;
    use crate::testing::{node, pod_info};
    use k8s_openapi::api::core::v1::Toleration;
    use std::sync::Arc;

    #[test]
    fn cordoned_nodes_need_a_toleration() {
        let mut cordoned = node("n", "1", "1Gi");
        cordoned
            .spec
            .get_or_insert_with(Default::default)
            .unschedulable = Some(true);
        let cordoned = NodeInfo::new(Arc::new(cordoned));
        let open = NodeInfo::new(Arc::new(node("m", "1", "1Gi")));
        let plain = pod_info("p", "0", "0", |_| {});
        let tolerant = pod_info("q", "0", "0", |s| {
            s.tolerations = Some(vec![Toleration {
                key: Some(TAINT_KEY.into()),
                operator: Some("Exists".into()),
                effect: Some("NoSchedule".into()),
                ..Default::default()
            }])
        });
        let st = CycleState::new();
        let cases = [
            (&plain, &open, Code::Success),
            (&plain, &cordoned, Code::UnschedulableAndUnresolvable),
            (&tolerant, &cordoned, Code::Success),
        ];
        for (p, n, want) in cases {
            let s = NodeUnschedulable.filter(&st, p, n);
            assert_eq!(s.code, want, "{} on {}", p.name, n.name);
            if want != Code::Success {
                assert_eq!(s.reasons, [REASON]);
            }
        }
    }
}
