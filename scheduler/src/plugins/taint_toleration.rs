//! TaintToleration: a node's `NoSchedule` and `NoExecute` taints keep off pods that do not
//! tolerate them (Filter); each `PreferNoSchedule` taint a pod does not tolerate lowers the
//! node's score (Score, normalized in reverse).

use std::sync::Arc;

use k8s_openapi::api::core::v1::Toleration;

use super::{find_untolerated, tolerates, untolerated_taint_reason};
use crate::cache::{NodeInfo, Snapshot};
use crate::framework::{
    ClusterEvent, CycleState, FilterPlugin, Plugin, PreScorePlugin, ScorePlugin, Status,
    default_normalize_score,
};
use crate::pod_info::PodInfo;

/// The plugin's name.
pub const NAME: &str = "TaintToleration";
const STATE_KEY: &str = "PreScoreTaintToleration";

/// Filters by NoSchedule/NoExecute taints, scores by PreferNoSchedule taints.
#[derive(Default)]
pub struct TaintToleration;

impl Plugin for TaintToleration {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events(&self) -> &'static [ClusterEvent] {
        &[ClusterEvent::NodeAdd, ClusterEvent::NodeTaint]
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

impl FilterPlugin for TaintToleration {
    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        match find_untolerated(node.taints(), &pod.tolerations, |e| {
            e == "NoSchedule" || e == "NoExecute"
        }) {
            None => Status::success(),
            Some(t) => Status::unresolvable(untolerated_taint_reason(t)),
        }
    }
}

/// The pod's tolerations that can tolerate PreferNoSchedule taints.
#[derive(Clone)]
struct PreferTolerations(Arc<Vec<Toleration>>);

impl PreScorePlugin for TaintToleration {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _nodes: &[Arc<NodeInfo>],
        _snap: &Snapshot,
    ) -> Status {
        let tols = pod
            .tolerations
            .iter()
            .filter(|t| {
                t.effect
                    .as_deref()
                    .is_none_or(|e| e.is_empty() || e == "PreferNoSchedule")
            })
            .cloned()
            .collect();
        state.write(STATE_KEY, PreferTolerations(Arc::new(tols)));
        Status::success()
    }
}

impl ScorePlugin for TaintToleration {
    fn score(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> Result<i64, Status> {
        let tols = state
            .read::<PreferTolerations>(STATE_KEY)
            .ok_or_else(|| Status::error("TaintToleration: PreScore state missing"))?;
        Ok(node
            .taints()
            .iter()
            .filter(|t| t.effect == "PreferNoSchedule")
            .filter(|taint| !tols.0.iter().any(|t| tolerates(t, taint)))
            .count() as i64)
    }

    fn normalize(&self, _state: &CycleState, _pod: &PodInfo, scores: &mut [i64]) {
        default_normalize_score(scores, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Code;
    use crate::testing::{node, pod_info};
    use k8s_openapi::api::core::v1::Taint;

    fn tainted(name: &str, taints: &[(&str, &str, &str)]) -> Arc<NodeInfo> {
        let mut n = node(name, "1", "1Gi");
        n.spec.get_or_insert_with(Default::default).taints = Some(
            taints
                .iter()
                .map(|(k, v, e)| Taint {
                    key: k.to_string(),
                    value: (!v.is_empty()).then(|| v.to_string()),
                    effect: e.to_string(),
                    ..Default::default()
                })
                .collect(),
        );
        Arc::new(NodeInfo::new(Arc::new(n)))
    }

    fn tolerating(key: &str, effect: &str) -> PodInfo {
        let (key, effect) = (key.to_string(), effect.to_string());
        pod_info("p", "0", "0", move |s| {
            s.tolerations = Some(vec![Toleration {
                key: Some(key.clone()),
                operator: Some("Exists".into()),
                effect: (!effect.is_empty()).then(|| effect.clone()),
                ..Default::default()
            }])
        })
    }

    #[test]
    fn filter_table() {
        let st = CycleState::new();
        let plain = pod_info("p", "0", "0", |_| {});
        let cases = [
            (tainted("a", &[]), &plain, Code::Success, ""),
            (
                tainted("b", &[("dedicated", "gpu", "NoSchedule")]),
                &plain,
                Code::UnschedulableAndUnresolvable,
                "node(s) had untolerated taint {dedicated: gpu}",
            ),
            (
                tainted("c", &[("node.kubernetes.io/unreachable", "", "NoExecute")]),
                &plain,
                Code::UnschedulableAndUnresolvable,
                "node(s) had untolerated taint {node.kubernetes.io/unreachable: }",
            ),
            (
                tainted("d", &[("soft", "", "PreferNoSchedule")]),
                &plain,
                Code::Success,
                "",
            ),
        ];
        for (n, p, want, reason) in cases {
            let s = TaintToleration.filter(&st, p, &n);
            assert_eq!(s.code, want, "{}", n.name);
            if !reason.is_empty() {
                assert_eq!(s.reasons, [reason]);
            }
        }
        let tol = tolerating("dedicated", "NoSchedule");
        let n = tainted("b", &[("dedicated", "gpu", "NoSchedule")]);
        assert!(TaintToleration.filter(&st, &tol, &n).is_success());
    }

    #[test]
    fn score_prefers_fewer_untolerated_soft_taints() {
        let nodes = vec![
            tainted("clean", &[]),
            tainted("one", &[("a", "", "PreferNoSchedule")]),
            tainted(
                "two",
                &[("a", "", "PreferNoSchedule"), ("b", "", "PreferNoSchedule")],
            ),
        ];
        let snap = Snapshot::new();
        let run = |pod: &PodInfo| {
            let mut st = CycleState::new();
            TaintToleration.pre_score(&mut st, pod, &nodes, &snap);
            let mut scores: Vec<i64> = nodes
                .iter()
                .map(|n| TaintToleration.score(&st, pod, n).unwrap())
                .collect();
            TaintToleration.normalize(&st, pod, &mut scores);
            scores
        };
        assert_eq!(run(&pod_info("p", "0", "0", |_| {})), [100, 50, 0]);
        assert_eq!(run(&tolerating("a", "PreferNoSchedule")), [100, 100, 0]);
        assert_eq!(
            run(&tolerating("a", "NoSchedule")),
            [100, 50, 0],
            "wrong effect"
        );
    }
}
