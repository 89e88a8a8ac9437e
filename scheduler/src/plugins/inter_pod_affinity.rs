//! InterPodAffinity: required pod affinity (the pod must land in a topology domain — a node
//! label value such as a zone or hostname — that already runs matching pods), required
//! anti-affinity (it must not, in either direction: existing pods' anti-affinity terms are
//! honoured too) as Filter; preferred terms (and existing pods' required affinity, weighted by
//! `hardPodAffinityWeight`) as Score. Counts are kept per topology pair, computed once per
//! cycle in PreFilter/PreScore from the snapshot.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;

use crate::cache::{NodeInfo, Snapshot};
use crate::config::ConfigError;
use crate::framework::registry::{Handle, decode_args};
use crate::framework::{
    ClusterEvent, CycleState, FilterPlugin, MAX_NODE_SCORE, Plugin, PreFilterPlugin,
    PreScorePlugin, ScorePlugin, Status,
};
use crate::pod_info::{AffinityTerm, Labels, PodInfo};

/// The plugin's name.
pub const NAME: &str = "InterPodAffinity";
/// The pod's required affinity is not met.
pub const REASON_AFFINITY: &str = "node(s) didn't match pod affinity rules";
/// The pod's required anti-affinity is not met.
pub const REASON_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
/// An existing pod's required anti-affinity would be broken.
pub const REASON_EXISTING_ANTI_AFFINITY: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";
const FILTER_KEY: &str = "PreFilterInterPodAffinity";
const SCORE_KEY: &str = "PreScoreInterPodAffinity";

/// `InterPodAffinityArgs`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InterPodAffinityArgs {
    /// Score weight of existing pods' required affinity terms matched by the pod (0–100).
    #[serde(default = "one")]
    pub hard_pod_affinity_weight: i64,
    /// Ignore existing pods' preferred terms when the pod has none of its own.
    #[serde(default)]
    pub ignore_preferred_terms_of_existing_pods: bool,
}

fn one() -> i64 {
    1
}

impl Default for InterPodAffinityArgs {
    fn default() -> Self {
        InterPodAffinityArgs {
            hard_pod_affinity_weight: 1,
            ignore_preferred_terms_of_existing_pods: false,
        }
    }
}

/// Filters and scores by pod (anti-)affinity.
#[derive(Default)]
pub struct InterPodAffinity {
    args: InterPodAffinityArgs,
}

/// Builds the plugin from its args.
pub fn factory(args: &serde_json::Value, _h: &Handle) -> Result<Arc<dyn Plugin>, ConfigError> {
    let args: InterPodAffinityArgs = decode_args(NAME, args)?;
    if !(0..=100).contains(&args.hard_pod_affinity_weight) {
        return Err(ConfigError::PluginArgs {
            plugin: NAME.into(),
            message: "hardPodAffinityWeight must be in 0..100".into(),
        });
    }
    Ok(Arc::new(InterPodAffinity { args }))
}

/// Topology key → value → count.
type TopoCounts = HashMap<String, HashMap<String, i64>>;

fn bump(m: &mut TopoCounts, key: &str, value: &str, by: i64) {
    let inner = m.entry(key.to_string()).or_default();
    let v = inner.entry(value.to_string()).or_insert(0);
    *v += by;
    if *v == 0 {
        inner.remove(value);
        if inner.is_empty() {
            m.remove(key);
        }
    }
}

fn count(m: &TopoCounts, key: &str, value: &str) -> i64 {
    m.get(key).and_then(|i| i.get(value)).copied().unwrap_or(0)
}

#[derive(Clone, Default)]
struct FilterState {
    /// Existing pods' required anti-affinity terms that match the incoming pod.
    existing_anti_affinity: TopoCounts,
    /// Pods matching all of the incoming pod's required affinity terms.
    affinity: TopoCounts,
    /// Pods matching one of the incoming pod's required anti-affinity terms.
    anti_affinity: TopoCounts,
    namespaces: Arc<HashMap<String, Labels>>,
}

fn ns_lookup(ns: &HashMap<String, Labels>) -> impl Fn(&str) -> Option<Labels> + '_ {
    move |name| ns.get(name).cloned()
}

fn matches_all(terms: &[AffinityTerm], pod: &PodInfo, ns: &dyn Fn(&str) -> Option<Labels>) -> bool {
    !terms.is_empty() && terms.iter().all(|t| t.matches(pod, ns))
}

impl FilterState {
    /// Counts `existing` (on `node`) against the incoming pod, with `by` = 1 or -1.
    fn update(&mut self, incoming: &PodInfo, existing: &PodInfo, node: &NodeInfo, by: i64) {
        let namespaces = self.namespaces.clone();
        let ns = ns_lookup(&namespaces);
        for t in &existing.required_anti_affinity {
            if let Some(v) = node.labels.get(&t.topology_key)
                && t.matches(incoming, &ns)
            {
                bump(&mut self.existing_anti_affinity, &t.topology_key, v, by);
            }
        }
        if matches_all(&incoming.required_affinity, existing, &ns) {
            for t in &incoming.required_affinity {
                if let Some(v) = node.labels.get(&t.topology_key) {
                    bump(&mut self.affinity, &t.topology_key, v, by);
                }
            }
        }
        for t in &incoming.required_anti_affinity {
            if let Some(v) = node.labels.get(&t.topology_key)
                && t.matches(existing, &ns)
            {
                bump(&mut self.anti_affinity, &t.topology_key, v, by);
            }
        }
    }
}

impl Plugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events(&self) -> &'static [ClusterEvent] {
        &[
            ClusterEvent::NodeAdd,
            ClusterEvent::NodeLabel,
            ClusterEvent::AssignedPodAdd,
            ClusterEvent::AssignedPodUpdate,
            ClusterEvent::AssignedPodDelete,
            ClusterEvent::NamespaceChange,
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

impl PreFilterPlugin for InterPodAffinity {
    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, snap: &Snapshot) -> Status {
        let namespaces = snap.namespaces();
        let ns = ns_lookup(&namespaces);
        let mut st = FilterState::default();
        for node in snap.nodes_with_required_anti_affinity() {
            for existing in &node.pods {
                for t in &existing.required_anti_affinity {
                    if let Some(v) = node.labels.get(&t.topology_key)
                        && t.matches(pod, &ns)
                    {
                        bump(&mut st.existing_anti_affinity, &t.topology_key, v, 1);
                    }
                }
            }
        }
        if pod.required_affinity.is_empty() && pod.required_anti_affinity.is_empty() {
            if st.existing_anti_affinity.is_empty() {
                return Status::skip();
            }
        } else {
            let mut affinity = TopoCounts::new();
            let mut anti = TopoCounts::new();
            for node in snap.nodes() {
                for existing in &node.pods {
                    if matches_all(&pod.required_affinity, existing, &ns) {
                        for t in &pod.required_affinity {
                            if let Some(v) = node.labels.get(&t.topology_key) {
                                bump(&mut affinity, &t.topology_key, v, 1);
                            }
                        }
                    }
                    for t in &pod.required_anti_affinity {
                        if let Some(v) = node.labels.get(&t.topology_key)
                            && t.matches(existing, &ns)
                        {
                            bump(&mut anti, &t.topology_key, v, 1);
                        }
                    }
                }
            }
            st.affinity = affinity;
            st.anti_affinity = anti;
        }
        st.namespaces = namespaces.clone();
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

impl FilterPlugin for InterPodAffinity {
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(st) = state.read::<FilterState>(FILTER_KEY) else {
            return Status::error("InterPodAffinity: PreFilter state missing");
        };
        // The pod's required affinity: every term's domain on this node must hold a match.
        let mut pods_exist = true;
        for t in &pod.required_affinity {
            match node.labels.get(&t.topology_key) {
                Some(v) => {
                    if count(&st.affinity, &t.topology_key, v) <= 0 {
                        pods_exist = false;
                    }
                }
                None => return Status::unresolvable(REASON_AFFINITY),
            }
        }
        if !pods_exist {
            // The first pod of a group with affinity to itself may go anywhere.
            let ns = ns_lookup(&st.namespaces);
            if !(st.affinity.is_empty() && matches_all(&pod.required_affinity, pod, &ns)) {
                return Status::unresolvable(REASON_AFFINITY);
            }
        }
        for t in &pod.required_anti_affinity {
            if let Some(v) = node.labels.get(&t.topology_key)
                && count(&st.anti_affinity, &t.topology_key, v) > 0
            {
                return Status::unschedulable(vec![REASON_ANTI_AFFINITY.into()]);
            }
        }
        if !st.existing_anti_affinity.is_empty() {
            for (k, v) in node.labels.iter() {
                if count(&st.existing_anti_affinity, k, v) > 0 {
                    return Status::unschedulable(vec![REASON_EXISTING_ANTI_AFFINITY.into()]);
                }
            }
        }
        Status::success()
    }
}

#[derive(Clone, Default)]
struct ScoreState(Arc<TopoCounts>);

impl InterPodAffinity {
    fn process_existing(
        &self,
        pod: &PodInfo,
        existing: &PodInfo,
        node: &NodeInfo,
        ns: &dyn Fn(&str) -> Option<Labels>,
        out: &mut TopoCounts,
    ) {
        if node.labels.is_empty() {
            return;
        }
        let mut add = |t: &AffinityTerm, target: &PodInfo, weight: i64| {
            if let Some(v) = node.labels.get(&t.topology_key)
                && t.matches(target, ns)
            {
                bump(out, &t.topology_key, v, weight);
            }
        };
        for t in &pod.preferred_affinity {
            add(t, existing, t.weight);
        }
        for t in &pod.preferred_anti_affinity {
            add(t, existing, -t.weight);
        }
        if self.args.hard_pod_affinity_weight > 0 {
            for t in &existing.required_affinity {
                add(t, pod, self.args.hard_pod_affinity_weight);
            }
        }
        for t in &existing.preferred_affinity {
            add(t, pod, t.weight);
        }
        for t in &existing.preferred_anti_affinity {
            add(t, pod, -t.weight);
        }
    }
}

impl PreScorePlugin for InterPodAffinity {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _nodes: &[Arc<NodeInfo>],
        snap: &Snapshot,
    ) -> Status {
        let has_constraints =
            !pod.preferred_affinity.is_empty() || !pod.preferred_anti_affinity.is_empty();
        if self.args.ignore_preferred_terms_of_existing_pods && !has_constraints {
            return Status::skip();
        }
        let nodes = if has_constraints {
            snap.nodes()
        } else {
            snap.nodes_with_affinity()
        };
        let namespaces = snap.namespaces();
        let ns = ns_lookup(&namespaces);
        let mut scores = TopoCounts::new();
        for node in nodes {
            for existing in &node.pods {
                if has_constraints || existing.has_affinity() {
                    self.process_existing(pod, existing, node, &ns, &mut scores);
                }
            }
        }
        if scores.is_empty() {
            return Status::skip();
        }
        state.write(SCORE_KEY, ScoreState(Arc::new(scores)));
        Status::success()
    }
}

impl ScorePlugin for InterPodAffinity {
    fn score(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> Result<i64, Status> {
        let st = state
            .read::<ScoreState>(SCORE_KEY)
            .ok_or_else(|| Status::error("InterPodAffinity: PreScore state missing"))?;
        Ok(st
            .0
            .iter()
            .filter_map(|(k, vals)| node.labels.get(k).and_then(|v| vals.get(v)))
            .sum())
    }

    fn normalize(&self, _state: &CycleState, _pod: &PodInfo, scores: &mut [i64]) {
        let (Some(min), Some(max)) = (scores.iter().min().copied(), scores.iter().max().copied())
        else {
            return;
        };
        let diff = max - min;
        for s in scores.iter_mut() {
            *s = if diff > 0 {
                (MAX_NODE_SCORE as f64 * ((*s - min) as f64 / diff as f64)) as i64
            } else {
                0
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Code;
    use crate::testing::{labeled_node, pod_info};
    use k8s_openapi::api::core::v1::{
        Affinity, PodAffinity, PodAffinityTerm, PodAntiAffinity, PodSpec, WeightedPodAffinityTerm,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as K8sSel;

    fn term(app: &str, key: &str) -> PodAffinityTerm {
        PodAffinityTerm {
            label_selector: Some(K8sSel {
                match_labels: Some([("app".to_string(), app.to_string())].into()),
                ..Default::default()
            }),
            topology_key: key.into(),
            ..Default::default()
        }
    }

    fn pod(name: &str, app: &str, node: Option<&str>, f: impl Fn(&mut PodSpec)) -> Arc<PodInfo> {
        let node = node.map(String::from);
        let info = pod_info(name, "0", "0", |s| {
            s.node_name = node.clone();
            f(s)
        });
        let mut pod = info.object().expect("pending").clone();
        pod.metadata.labels = Some([("app".to_string(), app.to_string())].into());
        Arc::new(PodInfo::new(Arc::new(pod)))
    }

    fn required(
        affinity: Vec<PodAffinityTerm>,
        anti: Vec<PodAffinityTerm>,
    ) -> impl Fn(&mut PodSpec) {
        move |s: &mut PodSpec| {
            s.affinity = Some(Affinity {
                pod_affinity: (!affinity.is_empty()).then(|| PodAffinity {
                    required_during_scheduling_ignored_during_execution: Some(affinity.clone()),
                    ..Default::default()
                }),
                pod_anti_affinity: (!anti.is_empty()).then(|| PodAntiAffinity {
                    required_during_scheduling_ignored_during_execution: Some(anti.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            })
        }
    }

    /// Zones a (n1, n2) and b (n3), no zone on n4.
    fn cluster(pods: Vec<Arc<PodInfo>>) -> Snapshot {
        let nodes = vec![
            labeled_node("n1", &[("zone", "a"), ("kubernetes.io/hostname", "n1")]),
            labeled_node("n2", &[("zone", "a"), ("kubernetes.io/hostname", "n2")]),
            labeled_node("n3", &[("zone", "b"), ("kubernetes.io/hostname", "n3")]),
            labeled_node("n4", &[("kubernetes.io/hostname", "n4")]),
        ];
        Snapshot::from_nodes(nodes, pods)
    }

    fn filter_all(snap: &Snapshot, p: &PodInfo) -> Vec<Code> {
        let plugin = InterPodAffinity::default();
        let mut st = CycleState::new();
        if plugin.pre_filter(&mut st, p, snap).is_skip() {
            return vec![Code::Success; 4];
        }
        ["n1", "n2", "n3", "n4"]
            .iter()
            .map(|n| plugin.filter(&st, p, snap.get(n).unwrap()).code)
            .collect()
    }

    /// A case: name, existing pods, the incoming pod, the filter code on n1..n4.
    type Case = (&'static str, Vec<Arc<PodInfo>>, Arc<PodInfo>, Vec<Code>);

    #[test]
    fn filter_table() {
        use Code::{Success as S, Unschedulable as U, UnschedulableAndUnresolvable as X};
        let db_on_n1 = pod("db", "db", Some("n1"), |_| {});
        let cases: Vec<Case> = vec![
            (
                "affinity to db's zone",
                vec![db_on_n1.clone()],
                pod(
                    "web",
                    "web",
                    None,
                    required(vec![term("db", "zone")], vec![]),
                ),
                vec![S, S, X, X],
            ),
            (
                "affinity to db's host",
                vec![db_on_n1.clone()],
                pod(
                    "web",
                    "web",
                    None,
                    required(vec![term("db", "kubernetes.io/hostname")], vec![]),
                ),
                vec![S, X, X, X],
            ),
            (
                "the first pod of a self-affine group goes anywhere with the key",
                vec![],
                pod(
                    "w1",
                    "web",
                    None,
                    required(vec![term("web", "zone")], vec![]),
                ),
                vec![S, S, S, X],
            ),
            (
                "anti-affinity to db's zone",
                vec![db_on_n1.clone()],
                pod(
                    "web",
                    "web",
                    None,
                    required(vec![], vec![term("db", "zone")]),
                ),
                vec![U, U, S, S],
            ),
            (
                "an existing pod's anti-affinity keeps matching pods out",
                vec![pod(
                    "solo",
                    "solo",
                    Some("n3"),
                    required(vec![], vec![term("web", "zone")]),
                )],
                pod("web", "web", None, |_| {}),
                vec![S, S, U, S],
            ),
            (
                "no constraints anywhere",
                vec![db_on_n1.clone()],
                pod("web", "web", None, |_| {}),
                vec![S, S, S, S],
            ),
        ];
        for (name, pods, p, want) in cases {
            let snap = cluster(pods);
            assert_eq!(filter_all(&snap, &p), want, "{name}");
        }
    }

    #[test]
    fn removing_a_pod_updates_the_state() {
        let db = pod("db", "db", Some("n1"), |_| {});
        let snap = cluster(vec![db.clone()]);
        let p = pod(
            "web",
            "web",
            None,
            required(vec![], vec![term("db", "zone")]),
        );
        let plugin = InterPodAffinity::default();
        let mut st = CycleState::new();
        assert!(plugin.pre_filter(&mut st, &p, &snap).is_success());
        let n1 = snap.get("n1").unwrap();
        assert_eq!(plugin.filter(&st, &p, n1).code, Code::Unschedulable);
        plugin.remove_pod(&mut st, &p, &db, n1);
        assert!(plugin.filter(&st, &p, n1).is_success());
        plugin.add_pod(&mut st, &p, &db, n1);
        assert_eq!(plugin.filter(&st, &p, n1).code, Code::Unschedulable);
    }

    #[test]
    fn preferred_terms_score_domains() {
        let pods = vec![
            pod("db", "db", Some("n1"), |_| {}),
            pod("cache", "cache", Some("n3"), |_| {}),
        ];
        let snap = cluster(pods);
        let p = pod("web", "web", None, |s| {
            s.affinity = Some(Affinity {
                pod_affinity: Some(PodAffinity {
                    preferred_during_scheduling_ignored_during_execution: Some(vec![
                        WeightedPodAffinityTerm {
                            weight: 10,
                            pod_affinity_term: term("db", "zone"),
                        },
                    ]),
                    ..Default::default()
                }),
                pod_anti_affinity: Some(PodAntiAffinity {
                    preferred_during_scheduling_ignored_during_execution: Some(vec![
                        WeightedPodAffinityTerm {
                            weight: 5,
                            pod_affinity_term: term("cache", "zone"),
                        },
                    ]),
                    ..Default::default()
                }),
                ..Default::default()
            })
        });
        let plugin = InterPodAffinity::default();
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
        assert_eq!(scores, [10, 10, -5, 0]);
        plugin.normalize(&st, &p, &mut scores);
        assert_eq!(scores, [100, 100, 0, 33]);
        let plain = pod("x", "x", None, |_| {});
        let mut st = CycleState::new();
        assert!(
            plugin
                .pre_score(&mut st, &plain, snap.nodes(), &snap)
                .is_skip()
        );
    }
}
