//! NodeReady: skips nodes that are not Ready, through the taints Kubernetes' node lifecycle
//! controller would put on them. A node whose Ready condition is False (or was never
//! reported) counts as tainted `node.kubernetes.io/not-ready:NoSchedule`, one whose condition
//! is Unknown as `node.kubernetes.io/unreachable:NoSchedule` — unless the node already carries
//! that taint (TaintToleration then judges it). Pods that tolerate the taint (DaemonSet-like
//! pods) may still go there; the reason is the taint message users know.

use k8s_openapi::api::core::v1::Taint;

use super::{tolerates, untolerated_taint_reason};
use crate::cache::{NodeInfo, Readiness};
use crate::framework::{ClusterEvent, CycleState, FilterPlugin, Plugin, Status};
use crate::pod_info::PodInfo;

/// The plugin's name.
pub const NAME: &str = "NodeReady";
/// The taint of a node whose Ready condition is False.
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The taint of a node whose Ready condition is Unknown.
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// Filters nodes that are not Ready.
#[derive(Default)]
pub struct NodeReady;

impl Plugin for NodeReady {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events(&self) -> &'static [ClusterEvent] {
        &[
            ClusterEvent::NodeAdd,
            ClusterEvent::NodeCondition,
            ClusterEvent::NodeTaint,
        ]
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
}

/// The taint a node's readiness implies, if any.
pub fn implied_taint(readiness: Readiness) -> Option<&'static str> {
    match readiness {
        Readiness::Ready => None,
        Readiness::NotReady | Readiness::Missing => Some(NOT_READY),
        Readiness::Unknown => Some(UNREACHABLE),
    }
}

impl FilterPlugin for NodeReady {
    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(key) = implied_taint(node.readiness) else {
            return Status::success();
        };
        if node.taints().iter().any(|t| t.key == key) {
            return Status::success();
        }
        let taint = Taint {
            key: key.into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        if pod.tolerations.iter().any(|t| tolerates(t, &taint)) {
            Status::success()
        } else {
            Status::unresolvable(untolerated_taint_reason(&taint))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Code;
    use crate::testing::{node_with_ready, pod_info};
    use k8s_openapi::api::core::v1::Toleration;
    use std::sync::Arc;

    #[test]
    fn readiness_table() {
        let plain = pod_info("p", "0", "0", |_| {});
        let tolerant = pod_info("d", "0", "0", |s| {
            s.tolerations = Some(vec![Toleration {
                operator: Some("Exists".into()),
                ..Default::default()
            }])
        });
        let st = CycleState::new();
        let cases = [
            (Some("True"), &plain, Code::Success, ""),
            (
                Some("False"),
                &plain,
                Code::UnschedulableAndUnresolvable,
                "node(s) had untolerated taint {node.kubernetes.io/not-ready: }",
            ),
            (
                Some("Unknown"),
                &plain,
                Code::UnschedulableAndUnresolvable,
                "node(s) had untolerated taint {node.kubernetes.io/unreachable: }",
            ),
            (
                None,
                &plain,
                Code::UnschedulableAndUnresolvable,
                "node(s) had untolerated taint {node.kubernetes.io/not-ready: }",
            ),
            (Some("Unknown"), &tolerant, Code::Success, ""),
        ];
        for (ready, pod, want, reason) in cases {
            let n = NodeInfo::new(Arc::new(node_with_ready("n", "1", "1Gi", ready)));
            let s = NodeReady.filter(&st, pod, &n);
            assert_eq!(s.code, want, "{ready:?} {}", pod.name);
            if !reason.is_empty() {
                assert_eq!(s.reasons, [reason]);
            }
        }
        // An explicit taint is left to TaintToleration.
        let mut tainted = node_with_ready("n", "1", "1Gi", Some("False"));
        tainted.spec.get_or_insert_with(Default::default).taints = Some(vec![Taint {
            key: NOT_READY.into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        }]);
        let n = NodeInfo::new(Arc::new(tainted));
        assert!(NodeReady.filter(&st, &plain, &n).is_success());
    }
}
