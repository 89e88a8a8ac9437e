//! NodeAffinity: a pod fits only nodes matching its `nodeSelector` and its required node
//! affinity (Filter); nodes matching its preferred terms score the sum of their weights
//! (Score, normalized to 0–100). `addedAffinity` in the plugin args applies to every pod of
//! the profile.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{NodeAffinity as K8sNodeAffinity, PodSpec};
use serde::Deserialize;

use super::{CompiledTerm, RequiredNodeAffinity};
use crate::cache::{NodeInfo, Snapshot};
use crate::config::ConfigError;
use crate::framework::registry::{Handle, decode_args};
use crate::framework::{
    ClusterEvent, CycleState, FilterPlugin, Plugin, PreFilterPlugin, PreScorePlugin, ScorePlugin,
    Status, default_normalize_score,
};
use crate::pod_info::PodInfo;

/// The plugin's name.
pub const NAME: &str = "NodeAffinity";
/// The rejection reason for the pod's own selector and affinity.
pub const REASON_POD: &str = "node(s) didn't match Pod's node affinity/selector";
/// The rejection reason for `addedAffinity`.
pub const REASON_ENFORCED: &str = "node(s) didn't match scheduler-enforced node affinity";
const FILTER_KEY: &str = "PreFilterNodeAffinity";
const SCORE_KEY: &str = "PreScoreNodeAffinity";

/// `NodeAffinityArgs`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeAffinityArgs {
    /// Affinity added to every pod of the profile.
    #[serde(default)]
    pub added_affinity: Option<K8sNodeAffinity>,
}

/// Filters and scores by node labels.
#[derive(Default)]
pub struct NodeAffinity {
    added_required: Option<RequiredNodeAffinity>,
    added_preferred: Vec<(i64, CompiledTerm)>,
}

/// Builds the plugin from its args.
pub fn factory(args: &serde_json::Value, _h: &Handle) -> Result<Arc<dyn Plugin>, ConfigError> {
    let args: NodeAffinityArgs = decode_args(NAME, args)?;
    Ok(Arc::new(NodeAffinity::new(args)))
}

fn preferred_terms(na: Option<&K8sNodeAffinity>) -> Vec<(i64, CompiledTerm)> {
    na.and_then(|a| {
        a.preferred_during_scheduling_ignored_during_execution
            .as_ref()
    })
    .into_iter()
    .flatten()
    .filter(|t| t.weight != 0)
    .map(|t| (i64::from(t.weight), CompiledTerm::new(&t.preference)))
    .collect()
}

impl NodeAffinity {
    /// A plugin with args.
    pub fn new(args: NodeAffinityArgs) -> Self {
        let added = args.added_affinity.as_ref();
        let added_required = added
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .map(|ns| {
                RequiredNodeAffinity::of(&PodSpec {
                    affinity: Some(k8s_openapi::api::core::v1::Affinity {
                        node_affinity: Some(K8sNodeAffinity {
                            required_during_scheduling_ignored_during_execution: Some(ns.clone()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                })
            });
        NodeAffinity {
            added_required,
            added_preferred: preferred_terms(added),
        }
    }
}

impl Plugin for NodeAffinity {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events(&self) -> &'static [ClusterEvent] {
        &[ClusterEvent::NodeAdd, ClusterEvent::NodeLabel]
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
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

#[derive(Clone)]
struct Required(Arc<RequiredNodeAffinity>);

#[derive(Clone)]
struct Preferred(Arc<Vec<(i64, CompiledTerm)>>);

impl PreFilterPlugin for NodeAffinity {
    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, _snap: &Snapshot) -> Status {
        let req = RequiredNodeAffinity::of(pod.spec());
        if req.is_empty() && self.added_required.is_none() {
            return Status::skip();
        }
        state.write(FILTER_KEY, Required(Arc::new(req)));
        Status::success()
    }
}

impl FilterPlugin for NodeAffinity {
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        if let Some(added) = &self.added_required
            && !added.matches(node)
        {
            return Status::unresolvable(REASON_ENFORCED);
        }
        let fits = match state.read::<Required>(FILTER_KEY) {
            Some(r) => r.0.matches(node),
            None => RequiredNodeAffinity::of(pod.spec()).matches(node),
        };
        if fits {
            Status::success()
        } else {
            Status::unresolvable(REASON_POD)
        }
    }
}

impl PreScorePlugin for NodeAffinity {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _nodes: &[Arc<NodeInfo>],
        _snap: &Snapshot,
    ) -> Status {
        let mut terms = preferred_terms(
            pod.spec()
                .affinity
                .as_ref()
                .and_then(|a| a.node_affinity.as_ref()),
        );
        terms.extend(self.added_preferred.iter().cloned());
        if terms.is_empty() {
            return Status::skip();
        }
        state.write(SCORE_KEY, Preferred(Arc::new(terms)));
        Status::success()
    }
}

impl ScorePlugin for NodeAffinity {
    fn score(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> Result<i64, Status> {
        let terms = state
            .read::<Preferred>(SCORE_KEY)
            .ok_or_else(|| Status::error("NodeAffinity: PreScore state missing"))?;
        Ok(terms
            .0
            .iter()
            .filter(|(_, t)| t.matches(node))
            .map(|(w, _)| *w)
            .sum())
    }

    fn normalize(&self, _state: &CycleState, _pod: &PodInfo, scores: &mut [i64]) {
        default_normalize_score(scores, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Code;
    use crate::testing::{labeled_node, pod_info};
    use k8s_openapi::api::core::v1::{
        Affinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, PreferredSchedulingTerm,
    };

    fn term(key: &str, op: &str, values: &[&str]) -> NodeSelectorTerm {
        NodeSelectorTerm {
            match_expressions: Some(vec![NodeSelectorRequirement {
                key: key.into(),
                operator: op.into(),
                values: Some(values.iter().map(|v| v.to_string()).collect()),
            }]),
            match_fields: None,
        }
    }

    fn nodes() -> Vec<Arc<NodeInfo>> {
        vec![
            Arc::new(NodeInfo::new(Arc::new(labeled_node(
                "a",
                &[("zone", "a"), ("disk", "ssd")],
            )))),
            Arc::new(NodeInfo::new(Arc::new(labeled_node("b", &[("zone", "b")])))),
            Arc::new(NodeInfo::new(Arc::new(labeled_node("c", &[])))),
        ]
    }

    fn run_filter(plugin: &NodeAffinity, pod: &PodInfo) -> Vec<Code> {
        let mut st = CycleState::new();
        let pre = plugin.pre_filter(&mut st, pod, &Snapshot::new());
        nodes()
            .iter()
            .map(|n| {
                if pre.is_skip() {
                    Code::Success
                } else {
                    plugin.filter(&st, pod, n).code
                }
            })
            .collect()
    }

    #[test]
    fn filter_table() {
        use Code::{Success as S, UnschedulableAndUnresolvable as U};
        let plugin = NodeAffinity::default();
        let cases: Vec<(&str, PodInfo, Vec<Code>)> = vec![
            (
                "no constraints",
                pod_info("p", "0", "0", |_| {}),
                vec![S, S, S],
            ),
            (
                "nodeSelector",
                pod_info("p", "0", "0", |s| {
                    s.node_selector = Some([("zone".to_string(), "b".to_string())].into())
                }),
                vec![U, S, U],
            ),
            (
                "required terms are ORed",
                pod_info("p", "0", "0", |s| {
                    s.affinity = Some(Affinity {
                        node_affinity: Some(K8sNodeAffinity {
                            required_during_scheduling_ignored_during_execution: Some(
                                NodeSelector {
                                    node_selector_terms: vec![
                                        term("disk", "In", &["ssd"]),
                                        term("zone", "DoesNotExist", &[]),
                                    ],
                                },
                            ),
                            ..Default::default()
                        }),
                        ..Default::default()
                    })
                }),
                vec![S, U, S],
            ),
            (
                "selector and terms are ANDed",
                pod_info("p", "0", "0", |s| {
                    s.node_selector = Some([("zone".to_string(), "a".to_string())].into());
                    s.affinity = Some(Affinity {
                        node_affinity: Some(K8sNodeAffinity {
                            required_during_scheduling_ignored_during_execution: Some(
                                NodeSelector {
                                    node_selector_terms: vec![term("zone", "In", &["b"])],
                                },
                            ),
                            ..Default::default()
                        }),
                        ..Default::default()
                    })
                }),
                vec![U, U, U],
            ),
        ];
        for (name, pod, want) in cases {
            assert_eq!(run_filter(&plugin, &pod), want, "{name}");
        }
        let enforced = NodeAffinity::new(NodeAffinityArgs {
            added_affinity: Some(K8sNodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: vec![term("zone", "Exists", &[])],
                }),
                ..Default::default()
            }),
        });
        assert_eq!(
            run_filter(&enforced, &pod_info("p", "0", "0", |_| {})),
            vec![S, S, U]
        );
        let st = CycleState::new();
        assert_eq!(
            enforced
                .filter(&st, &pod_info("p", "0", "0", |_| {}), &nodes()[2])
                .reasons,
            [REASON_ENFORCED]
        );
    }

    #[test]
    fn preferred_terms_score_their_weights() {
        let plugin = NodeAffinity::default();
        let pod = pod_info("p", "0", "0", |s| {
            s.affinity = Some(Affinity {
                node_affinity: Some(K8sNodeAffinity {
                    preferred_during_scheduling_ignored_during_execution: Some(vec![
                        PreferredSchedulingTerm {
                            weight: 10,
                            preference: term("zone", "In", &["a", "b"]),
                        },
                        PreferredSchedulingTerm {
                            weight: 30,
                            preference: term("disk", "In", &["ssd"]),
                        },
                    ]),
                    ..Default::default()
                }),
                ..Default::default()
            })
        });
        let ns = nodes();
        let mut st = CycleState::new();
        assert!(
            plugin
                .pre_score(&mut st, &pod, &ns, &Snapshot::new())
                .is_success()
        );
        let mut scores: Vec<i64> = ns
            .iter()
            .map(|n| plugin.score(&st, &pod, n).unwrap())
            .collect();
        assert_eq!(scores, [40, 10, 0]);
        plugin.normalize(&st, &pod, &mut scores);
        assert_eq!(scores, [100, 25, 0]);
        let mut st = CycleState::new();
        let plain = pod_info("q", "0", "0", |_| {});
        assert!(
            plugin
                .pre_score(&mut st, &plain, &ns, &Snapshot::new())
                .is_skip()
        );
    }
}
