//! PodTopologySpread: spreads matching pods evenly over topology domains (zones, hosts).
//! `whenUnsatisfiable: DoNotSchedule` constraints filter: placing the pod in a domain must not
//! make that domain exceed the least-loaded one by more than `maxSkew` (with `minDomains`,
//! fewer domains than that count as a global minimum of 0). `ScheduleAnyway` constraints score:
//! domains with fewer matching pods score higher. Nodes without a constraint's topology key are
//! left out (and fail DoNotSchedule constraints); `nodeAffinityPolicy` (default Honor) and
//! `nodeTaintsPolicy` (default Ignore) decide which nodes count. `defaultConstraints` in the
//! args apply to pods without constraints of their own.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::TopologySpreadConstraint;
use rkube_machinery::selector::{LabelSelector, Operator, Requirement};
use serde::Deserialize;

use super::{RequiredNodeAffinity, find_untolerated};
use crate::cache::{NodeInfo, Snapshot};
use crate::config::ConfigError;
use crate::framework::registry::{Handle, decode_args};
use crate::framework::{
    ClusterEvent, CycleState, FilterPlugin, MAX_NODE_SCORE, Plugin, PreFilterPlugin,
    PreScorePlugin, ScorePlugin, Status,
};
use crate::pod_info::PodInfo;

/// The plugin's name.
pub const NAME: &str = "PodTopologySpread";
/// A constraint's skew would be exceeded.
pub const REASON_CONSTRAINTS: &str = "node(s) didn't match pod topology spread constraints";
/// The node lacks a constraint's topology key.
pub const REASON_MISSING_LABEL: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";
const FILTER_KEY: &str = "PreFilterPodTopologySpread";
const SCORE_KEY: &str = "PreScorePodTopologySpread";

/// `PodTopologySpreadArgs`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodTopologySpreadArgs {
    /// Constraints for pods that have none (their selector is the pod's own labels).
    #[serde(default)]
    pub default_constraints: Vec<TopologySpreadConstraint>,
    /// `List` (use `defaultConstraints`) or `System`; rkube has no system defaults that need
    /// Services, so `System` behaves as an empty list.
    #[serde(default)]
    pub defaulting_type: Option<String>,
}

/// Filters and scores by topology spread.
#[derive(Default)]
pub struct PodTopologySpread {
    defaults: Vec<TopologySpreadConstraint>,
}

/// Builds the plugin from its args.
pub fn factory(args: &serde_json::Value, _h: &Handle) -> Result<Arc<dyn Plugin>, ConfigError> {
    let args: PodTopologySpreadArgs = decode_args(NAME, args)?;
    for c in &args.default_constraints {
        if c.label_selector.is_some() {
            return Err(ConfigError::PluginArgs {
                plugin: NAME.into(),
                message: "defaultConstraints may not have a labelSelector".into(),
            });
        }
    }
    let defaults = if args.defaulting_type.as_deref() == Some("System") {
        Vec::new()
    } else {
        args.default_constraints
    };
    Ok(Arc::new(PodTopologySpread { defaults }))
}

/// A constraint compiled for one pod.
#[derive(Clone, Debug)]
struct Constraint {
    max_skew: i64,
    topology_key: String,
    selector: LabelSelector,
    min_domains: i64,
    honor_affinity: bool,
    honor_taints: bool,
}

impl Constraint {
    fn compile(c: &TopologySpreadConstraint, pod: &PodInfo, default: bool) -> Option<Self> {
        let mut selector = if default {
            LabelSelector::from_map(&pod.labels).ok()?
        } else {
            LabelSelector::from_k8s_opt(c.label_selector.as_ref()).ok()?
        };
        let extra: Vec<Requirement> = c
            .match_label_keys
            .iter()
            .flatten()
            .filter_map(|k| {
                let v = pod.labels.get(k)?;
                Requirement::new(k.clone(), Operator::In, vec![v.clone()]).ok()
            })
            .collect();
        if !extra.is_empty() {
            selector = selector.add_requirements(extra);
        }
        Some(Constraint {
            max_skew: i64::from(c.max_skew.max(1)),
            topology_key: c.topology_key.clone(),
            selector,
            min_domains: i64::from(c.min_domains.unwrap_or(1).max(1)),
            honor_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
            honor_taints: c.node_taints_policy.as_deref() == Some("Honor"),
        })
    }

    fn counts_node(&self, pod: &PodInfo, affinity: &RequiredNodeAffinity, node: &NodeInfo) -> bool {
        if self.honor_affinity && !affinity.matches(node) {
            return false;
        }
        if self.honor_taints
            && find_untolerated(node.taints(), &pod.tolerations, |e| {
                e == "NoSchedule" || e == "NoExecute"
            })
            .is_some()
        {
            return false;
        }
        true
    }

    fn matching_pods(&self, pod: &PodInfo, node: &NodeInfo) -> i64 {
        node.pods
            .iter()
            .filter(|p| !p.terminating && p.namespace == pod.namespace)
            .filter(|p| self.selector.matches(&p.labels))
            .count() as i64
    }
}

impl PodTopologySpread {
    /// The pod's constraints with the given `whenUnsatisfiable`.
    fn constraints(&self, pod: &PodInfo, when: &str) -> Vec<Constraint> {
        let own = pod
            .spec()
            .topology_spread_constraints
            .as_deref()
            .unwrap_or_default();
        let (list, default) = if own.is_empty() {
            (self.defaults.as_slice(), true)
        } else {
            (own, false)
        };
        list.iter()
            .filter(|c| c.when_unsatisfiable == when)
            .filter_map(|c| Constraint::compile(c, pod, default))
            .collect()
    }
}

fn has_all_keys(node: &NodeInfo, constraints: &[Constraint]) -> bool {
    constraints
        .iter()
        .all(|c| node.labels.contains_key(&c.topology_key))
}

/// Per DoNotSchedule constraint: domain value → matching pods, and the global minimum.
#[derive(Clone, Debug)]
struct FilterState {
    constraints: Arc<Vec<Constraint>>,
    counts: Vec<HashMap<String, i64>>,
    min: Vec<i64>,
}

impl FilterState {
    fn recompute_min(&mut self) {
        for (i, c) in self.constraints.iter().enumerate() {
            let m = &self.counts[i];
            self.min[i] = if (m.len() as i64) < c.min_domains {
                0
            } else {
                m.values().copied().min().unwrap_or(0)
            };
        }
    }

    fn update(&mut self, pod: &PodInfo, other: &PodInfo, node: &NodeInfo, by: i64) {
        if other.namespace != pod.namespace || !has_all_keys(node, &self.constraints) {
            return;
        }
        let affinity = RequiredNodeAffinity::of(pod.spec());
        let mut changed = false;
        for (i, c) in self.constraints.iter().enumerate() {
            if !c.counts_node(pod, &affinity, node) || !c.selector.matches(&other.labels) {
                continue;
            }
            if let Some(v) = node.labels.get(&c.topology_key) {
                *self.counts[i].entry(v.clone()).or_insert(0) += by;
                changed = true;
            }
        }
        if changed {
            self.recompute_min();
        }
    }
}

impl Plugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events(&self) -> &'static [ClusterEvent] {
        &[
            ClusterEvent::NodeAdd,
            ClusterEvent::NodeLabel,
            ClusterEvent::NodeTaint,
            ClusterEvent::AssignedPodAdd,
            ClusterEvent::AssignedPodUpdate,
            ClusterEvent::AssignedPodDelete,
        ]
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

impl PreFilterPlugin for PodTopologySpread {
    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, snap: &Snapshot) -> Status {
        let constraints = self.constraints(pod, "DoNotSchedule");
        if constraints.is_empty() {
            return Status::skip();
        }
        let affinity = RequiredNodeAffinity::of(pod.spec());
        let mut counts = vec![HashMap::new(); constraints.len()];
        for node in snap.nodes() {
            if !has_all_keys(node, &constraints) {
                continue;
            }
            for (i, c) in constraints.iter().enumerate() {
                if !c.counts_node(pod, &affinity, node) {
                    continue;
                }
                let v = &node.labels[&c.topology_key];
                let n = c.matching_pods(pod, node);
                *counts[i].entry(v.clone()).or_insert(0) += n;
            }
        }
        let mut st = FilterState {
            min: vec![0; constraints.len()],
            constraints: Arc::new(constraints),
            counts,
        };
        st.recompute_min();
        state.write(FILTER_KEY, st);
        Status::success()
    }

    fn add_pod(&self, state: &mut CycleState, pod: &PodInfo, other: &PodInfo, node: &NodeInfo) {
        if let Some(st) = state.read_mut::<FilterState>(FILTER_KEY) {
            st.update(pod, other, node, 1);
        }
    }

    fn remove_pod(&self, state: &mut CycleState, pod: &PodInfo, other: &PodInfo, node: &NodeInfo) {
        if let Some(st) = state.read_mut::<FilterState>(FILTER_KEY) {
            st.update(pod, other, node, -1);
        }
    }
}

impl FilterPlugin for PodTopologySpread {
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(st) = state.read::<FilterState>(FILTER_KEY) else {
            return Status::error("PodTopologySpread: PreFilter state missing");
        };
        for (i, c) in st.constraints.iter().enumerate() {
            let Some(v) = node.labels.get(&c.topology_key) else {
                return Status::unresolvable(REASON_MISSING_LABEL);
            };
            let self_match = i64::from(c.selector.matches(&pod.labels));
            let matched = st.counts[i].get(v).copied().unwrap_or(0);
            if matched + self_match - st.min[i] > c.max_skew {
                return Status::unschedulable(vec![REASON_CONSTRAINTS.into()]);
            }
        }
        Status::success()
    }
}

/// Per ScheduleAnyway constraint: counts per domain and the domain weight; nodes to ignore.
#[derive(Clone, Debug)]
struct ScoreState {
    constraints: Arc<Vec<Constraint>>,
    counts: Arc<Vec<HashMap<String, i64>>>,
    weights: Vec<f64>,
    ignored: Arc<HashSet<String>>,
}

impl PreScorePlugin for PodTopologySpread {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        nodes: &[Arc<NodeInfo>],
        snap: &Snapshot,
    ) -> Status {
        let constraints = self.constraints(pod, "ScheduleAnyway");
        if constraints.is_empty() {
            return Status::skip();
        }
        let mut ignored = HashSet::new();
        let mut domains: Vec<HashSet<&str>> = vec![HashSet::new(); constraints.len()];
        for n in nodes {
            if !has_all_keys(n, &constraints) {
                ignored.insert(n.name.clone());
                continue;
            }
            for (i, c) in constraints.iter().enumerate() {
                domains[i].insert(n.labels[&c.topology_key].as_str());
            }
        }
        let affinity = RequiredNodeAffinity::of(pod.spec());
        let mut counts: Vec<HashMap<String, i64>> = vec![HashMap::new(); constraints.len()];
        for node in snap.nodes() {
            if !has_all_keys(node, &constraints) {
                continue;
            }
            for (i, c) in constraints.iter().enumerate() {
                let v = node.labels[&c.topology_key].as_str();
                if !domains[i].contains(v) || !c.counts_node(pod, &affinity, node) {
                    continue;
                }
                *counts[i].entry(v.to_string()).or_insert(0) += c.matching_pods(pod, node);
            }
        }
        let weights = domains
            .iter()
            .map(|d| ((d.len() + 2) as f64).ln())
            .collect();
        state.write(
            SCORE_KEY,
            ScoreState {
                constraints: Arc::new(constraints),
                counts: Arc::new(counts),
                weights,
                ignored: Arc::new(ignored),
            },
        );
        Status::success()
    }
}

/// Marks ignored nodes between Score and normalization.
const IGNORED: i64 = i64::MIN;

impl ScorePlugin for PodTopologySpread {
    fn score(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> Result<i64, Status> {
        let st = state
            .read::<ScoreState>(SCORE_KEY)
            .ok_or_else(|| Status::error("PodTopologySpread: PreScore state missing"))?;
        if st.ignored.contains(&node.name) {
            return Ok(IGNORED);
        }
        let mut score = 0f64;
        for (i, c) in st.constraints.iter().enumerate() {
            if let Some(v) = node.labels.get(&c.topology_key) {
                let cnt = st.counts[i].get(v).copied().unwrap_or(0);
                score += cnt as f64 * st.weights[i] + (c.max_skew - 1) as f64;
            }
        }
        Ok(score.round() as i64)
    }

    fn normalize(&self, _state: &CycleState, _pod: &PodInfo, scores: &mut [i64]) {
        let valid = || scores.iter().copied().filter(|s| *s != IGNORED);
        let min = valid().min().unwrap_or(0);
        let max = valid().max().unwrap_or(0);
        for s in scores.iter_mut() {
            *s = if *s == IGNORED {
                0
            } else if max == 0 {
                MAX_NODE_SCORE
            } else {
                MAX_NODE_SCORE * (max + min - *s) / max
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Code;
    use crate::testing::{labeled_node, pod_info};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as K8sSel;

    fn constraint(key: &str, skew: i32, when: &str) -> TopologySpreadConstraint {
        TopologySpreadConstraint {
            max_skew: skew,
            topology_key: key.into(),
            when_unsatisfiable: when.into(),
            label_selector: Some(K8sSel {
                match_labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn web(name: &str, node: Option<&str>, cs: Vec<TopologySpreadConstraint>) -> Arc<PodInfo> {
        let node = node.map(String::from);
        let info = pod_info(name, "0", "0", |s| {
            s.node_name = node.clone();
            s.topology_spread_constraints = (!cs.is_empty()).then(|| cs.clone());
        });
        let mut pod = info.object().expect("pending").clone();
        pod.metadata.labels = Some([("app".to_string(), "web".to_string())].into());
        Arc::new(PodInfo::new(Arc::new(pod)))
    }

    /// Zone a: n1, n2; zone b: n3; n4 without a zone. Web pods: 2 on n1, 1 on n2.
    fn cluster() -> Snapshot {
        let nodes = vec![
            labeled_node("n1", &[("zone", "a")]),
            labeled_node("n2", &[("zone", "a")]),
            labeled_node("n3", &[("zone", "b")]),
            labeled_node("n4", &[]),
        ];
        let pods = vec![
            web("w1", Some("n1"), vec![]),
            web("w2", Some("n1"), vec![]),
            web("w3", Some("n2"), vec![]),
        ];
        Snapshot::from_nodes(nodes, pods)
    }

    fn filter_all(snap: &Snapshot, p: &PodInfo) -> Vec<Code> {
        let plugin = PodTopologySpread::default();
        let mut st = CycleState::new();
        if plugin.pre_filter(&mut st, p, snap).is_skip() {
            return vec![Code::Success; 4];
        }
        ["n1", "n2", "n3", "n4"]
            .iter()
            .map(|n| plugin.filter(&st, p, snap.get(n).unwrap()).code)
            .collect()
    }

    #[test]
    fn filter_table() {
        use Code::{Success as S, Unschedulable as U, UnschedulableAndUnresolvable as X};
        let snap = cluster();
        let cases = [
            // zone a has 3, zone b 0: only b keeps the skew (3+1-0 > 1 in a).
            (
                "zone skew 1",
                vec![constraint("zone", 1, "DoNotSchedule")],
                vec![U, U, S, X],
            ),
            (
                "zone skew 4",
                vec![constraint("zone", 4, "DoNotSchedule")],
                vec![S, S, S, X],
            ),
            // Hosts n1=2, n2=1, n3=0 (n4 lacks the key and is not a domain): min 0.
            (
                "hostname-like key skew 1",
                vec![
                    constraint("zone", 1, "DoNotSchedule"),
                    constraint("zone", 3, "DoNotSchedule"),
                ],
                vec![U, U, S, X],
            ),
            (
                "ScheduleAnyway does not filter",
                vec![constraint("zone", 1, "ScheduleAnyway")],
                vec![S, S, S, S],
            ),
        ];
        for (name, cs, want) in cases {
            let p = web("new", None, cs);
            assert_eq!(filter_all(&snap, &p), want, "{name}");
        }
    }

    #[test]
    fn min_domains_counts_missing_domains_as_zero() {
        let snap = cluster();
        let mut c = constraint("zone", 3, "DoNotSchedule");
        // Two domains exist (a=3, b=0); the minimum is already 0 so only a is over.
        c.min_domains = Some(3);
        let p = web("new", None, vec![c]);
        assert_eq!(
            filter_all(&snap, &p),
            vec![
                Code::Unschedulable,
                Code::Unschedulable,
                Code::Success,
                Code::UnschedulableAndUnresolvable
            ]
        );
    }

    #[test]
    fn removing_a_pod_lowers_the_skew() {
        let snap = cluster();
        let p = web("new", None, vec![constraint("zone", 3, "DoNotSchedule")]);
        let plugin = PodTopologySpread::default();
        let mut st = CycleState::new();
        plugin.pre_filter(&mut st, &p, &snap);
        let n1 = snap.get("n1").unwrap();
        assert_eq!(plugin.filter(&st, &p, n1).code, Code::Unschedulable);
        let victim = n1.pods[0].clone();
        plugin.remove_pod(&mut st, &p, &victim, n1);
        assert!(plugin.filter(&st, &p, n1).is_success());
    }

    #[test]
    fn schedule_anyway_scores_emptier_domains_higher() {
        let snap = cluster();
        let p = web("new", None, vec![constraint("zone", 1, "ScheduleAnyway")]);
        let plugin = PodTopologySpread::default();
        let mut st = CycleState::new();
        assert!(
            plugin
                .pre_score(&mut st, &p, snap.nodes(), &snap)
                .is_success()
        );
        let names = ["n1", "n2", "n3", "n4"];
        let mut scores: Vec<i64> = names
            .iter()
            .map(|n| plugin.score(&st, &p, snap.get(n).unwrap()).unwrap())
            .collect();
        plugin.normalize(&st, &p, &mut scores);
        assert_eq!(scores[0], scores[1], "same zone");
        assert!(scores[2] > scores[0], "{scores:?}");
        assert_eq!(scores[2], 100);
        assert_eq!(scores[3], 0, "ignored: no zone label");
    }

    #[test]
    fn default_constraints_apply_to_pods_without_their_own() {
        let plugin = factory(
            &serde_json::json!({"defaultConstraints": [
                {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}]}),
            &Handle::default(),
        )
        .unwrap();
        let snap = cluster();
        let p = web("new", None, vec![]);
        let mut st = CycleState::new();
        let pf = plugin.as_pre_filter().unwrap();
        assert!(pf.pre_filter(&mut st, &p, &snap).is_success());
        let f = plugin.as_filter().unwrap();
        assert_eq!(
            f.filter(&st, &p, snap.get("n1").unwrap()).code,
            Code::Unschedulable
        );
        assert!(f.filter(&st, &p, snap.get("n3").unwrap()).is_success());
    }
}
