//! NodeResourcesFit: a pod fits a node only if the node's allocatable resources minus what its
//! pods request cover the pod's requests — cpu, memory, ephemeral storage, extended resources,
//! and the pod count (Filter). Nodes are scored by a [`ScoringStrategy`]:
//! **MostAllocated** (the default here: bin-packing, fuller nodes score higher),
//! LeastAllocated (spreading), or RequestedToCapacityRatio (a piecewise-linear function of
//! utilization), each over weighted resources.

use std::sync::Arc;

use serde::Deserialize;

use crate::cache::NodeInfo;
use crate::config::ConfigError;
use crate::framework::registry::{Handle, decode_args};
use crate::framework::{
    ClusterEvent, CycleState, FilterPlugin, MAX_NODE_SCORE, Plugin, ScorePlugin, Status,
};
use crate::pod_info::PodInfo;
use crate::resources::{CPU, EPHEMERAL_STORAGE, MEMORY};

/// The plugin's name.
pub const NAME: &str = "NodeResourcesFit";
/// The rejection reason when the node holds its maximum number of pods.
pub const TOO_MANY_PODS: &str = "Too many pods";

/// How the utilization on a node turns into a score.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum ScoringStrategyType {
    /// Emptier nodes score higher (spreading).
    LeastAllocated,
    /// Fuller nodes score higher (bin-packing). The default.
    #[default]
    MostAllocated,
    /// A configured function of utilization.
    RequestedToCapacityRatio,
}

/// A resource and its weight in the score.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceSpec {
    /// The resource (`cpu`, `memory`, `example.com/gpu`).
    pub name: String,
    /// Its weight (1–100; 1 when not given).
    #[serde(default = "one")]
    pub weight: i64,
}

fn one() -> i64 {
    1
}

/// A point of the RequestedToCapacityRatio function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UtilizationShapePoint {
    /// Utilization in percent (0–100).
    pub utilization: i64,
    /// Score (0–10).
    pub score: i64,
}

/// `requestedToCapacityRatio` args.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestedToCapacityRatioArgs {
    /// The function's points, by increasing utilization.
    #[serde(default)]
    pub shape: Vec<UtilizationShapePoint>,
}

/// `scoringStrategy` args.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScoringStrategyArgs {
    /// The strategy.
    #[serde(default, rename = "type")]
    pub type_: ScoringStrategyType,
    /// Resources and weights (cpu and memory, weight 1, when not given).
    #[serde(default)]
    pub resources: Option<Vec<ResourceSpec>>,
    /// For RequestedToCapacityRatio.
    #[serde(default)]
    pub requested_to_capacity_ratio: Option<RequestedToCapacityRatioArgs>,
}

/// `NodeResourcesFitArgs`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeResourcesFitArgs {
    /// Extended resources the filter ignores.
    #[serde(default)]
    pub ignored_resources: Vec<String>,
    /// Groups (the part before `/`) of extended resources the filter ignores.
    #[serde(default)]
    pub ignored_resource_groups: Vec<String>,
    /// How nodes are scored.
    #[serde(default)]
    pub scoring_strategy: Option<ScoringStrategyArgs>,
}

/// A scoring strategy with what it needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScoringStrategy {
    /// `(allocatable - requested) / allocatable`.
    LeastAllocated,
    /// `requested / allocatable`.
    MostAllocated,
    /// A broken-linear function of `requested / allocatable`; points are (utilization %,
    /// score 0–100).
    RequestedToCapacityRatio(Vec<(i64, i64)>),
}

/// Kubernetes' `leastRequestedScore`.
fn least_requested(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 || requested > capacity {
        return 0;
    }
    (capacity - requested) * MAX_NODE_SCORE / capacity
}

/// Kubernetes' `mostRequestedScore` (requests beyond capacity count as full).
fn most_requested(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 {
        return 0;
    }
    requested.min(capacity) * MAX_NODE_SCORE / capacity
}

/// Kubernetes' `BuildBrokenLinearFunction`.
fn broken_linear(shape: &[(i64, i64)], p: i64) -> i64 {
    for (i, &(u, s)) in shape.iter().enumerate() {
        if p <= u {
            if i == 0 {
                return s;
            }
            let (pu, ps) = shape[i - 1];
            return ps + (s - ps) * (p - pu) / (u - pu);
        }
    }
    shape.last().map_or(0, |&(_, s)| s)
}

impl ScoringStrategy {
    /// The score of one resource.
    pub fn resource_score(&self, requested: i64, capacity: i64) -> i64 {
        match self {
            ScoringStrategy::LeastAllocated => least_requested(requested, capacity),
            ScoringStrategy::MostAllocated => most_requested(requested, capacity),
            ScoringStrategy::RequestedToCapacityRatio(shape) => {
                if capacity == 0 || requested > capacity {
                    broken_linear(shape, 100)
                } else {
                    broken_linear(shape, requested * 100 / capacity)
                }
            }
        }
    }

    /// The node's score: the weighted mean of the resource scores over resources the node
    /// has (RequestedToCapacityRatio counts only resources scoring above 0, rounding the mean,
    /// as Kubernetes does).
    pub fn score(&self, weights: &[i64], requested: &[i64], allocatable: &[i64]) -> i64 {
        let mut total = 0;
        let mut weight_sum = 0;
        for ((w, r), a) in weights.iter().zip(requested).zip(allocatable) {
            if *a == 0 {
                continue;
            }
            let s = self.resource_score(*r, *a);
            if matches!(self, ScoringStrategy::RequestedToCapacityRatio(_)) && s <= 0 {
                continue;
            }
            total += s * w;
            weight_sum += w;
        }
        if weight_sum == 0 {
            return 0;
        }
        match self {
            ScoringStrategy::RequestedToCapacityRatio(_) => {
                (total as f64 / weight_sum as f64).round() as i64
            }
            _ => total / weight_sum,
        }
    }
}

/// Filters by free resources, scores by a strategy.
pub struct NodeResourcesFit {
    ignored: Vec<String>,
    ignored_groups: Vec<String>,
    strategy: ScoringStrategy,
    resources: Vec<ResourceSpec>,
    weights: Vec<i64>,
}

impl Default for NodeResourcesFit {
    fn default() -> Self {
        Self::new(NodeResourcesFitArgs::default()).expect("default args are valid")
    }
}

/// Builds the plugin from its args.
pub fn factory(args: &serde_json::Value, _h: &Handle) -> Result<Arc<dyn Plugin>, ConfigError> {
    let args: NodeResourcesFitArgs = decode_args(NAME, args)?;
    Ok(Arc::new(NodeResourcesFit::new(args)?))
}

fn invalid(message: impl Into<String>) -> ConfigError {
    ConfigError::PluginArgs {
        plugin: NAME.into(),
        message: message.into(),
    }
}

impl NodeResourcesFit {
    /// A plugin with validated args.
    pub fn new(args: NodeResourcesFitArgs) -> Result<Self, ConfigError> {
        let ss = args.scoring_strategy.unwrap_or_default();
        let resources = ss.resources.clone().unwrap_or_else(|| {
            vec![
                ResourceSpec {
                    name: CPU.into(),
                    weight: 1,
                },
                ResourceSpec {
                    name: MEMORY.into(),
                    weight: 1,
                },
            ]
        });
        for r in &resources {
            if !(1..=100).contains(&r.weight) {
                return Err(invalid(format!(
                    "resource {} weight {} is not in 1..100",
                    r.name, r.weight
                )));
            }
        }
        let strategy = match ss.type_ {
            ScoringStrategyType::LeastAllocated => ScoringStrategy::LeastAllocated,
            ScoringStrategyType::MostAllocated => ScoringStrategy::MostAllocated,
            ScoringStrategyType::RequestedToCapacityRatio => {
                let shape = ss
                    .requested_to_capacity_ratio
                    .map(|r| r.shape)
                    .unwrap_or_default();
                if shape.is_empty() {
                    return Err(invalid(
                        "requestedToCapacityRatio needs at least one shape point",
                    ));
                }
                for (i, p) in shape.iter().enumerate() {
                    if !(0..=100).contains(&p.utilization) || !(0..=10).contains(&p.score) {
                        return Err(invalid(
                            "shape utilization must be in 0..100 and score in 0..10",
                        ));
                    }
                    if i > 0 && p.utilization <= shape[i - 1].utilization {
                        return Err(invalid("shape utilization values must increase"));
                    }
                }
                ScoringStrategy::RequestedToCapacityRatio(
                    shape
                        .iter()
                        .map(|p| (p.utilization, p.score * (MAX_NODE_SCORE / 10)))
                        .collect(),
                )
            }
        };
        Ok(NodeResourcesFit {
            ignored: args.ignored_resources,
            ignored_groups: args.ignored_resource_groups,
            weights: resources.iter().map(|r| r.weight).collect(),
            resources,
            strategy,
        })
    }

    /// The scoring strategy.
    pub fn strategy(&self) -> &ScoringStrategy {
        &self.strategy
    }

    fn ignored(&self, name: &str) -> bool {
        self.ignored.iter().any(|r| r == name)
            || name
                .split_once('/')
                .is_some_and(|(group, _)| self.ignored_groups.iter().any(|g| g == group))
    }

    /// Why the pod does not fit the node (empty if it fits).
    pub fn insufficient(&self, pod: &PodInfo, node: &NodeInfo) -> Vec<String> {
        let mut reasons = Vec::new();
        if node.pods.len() as i64 + 1 > node.allocatable.allowed_pods {
            reasons.push(TOO_MANY_PODS.to_string());
        }
        let req = &pod.requests;
        if req.is_zero() {
            return reasons;
        }
        let (alloc, used) = (&node.allocatable, &node.requested);
        if req.milli_cpu > 0 && req.milli_cpu > alloc.milli_cpu - used.milli_cpu {
            reasons.push(format!("Insufficient {CPU}"));
        }
        if req.memory > 0 && req.memory > alloc.memory - used.memory {
            reasons.push(format!("Insufficient {MEMORY}"));
        }
        if req.ephemeral_storage > 0
            && req.ephemeral_storage > alloc.ephemeral_storage - used.ephemeral_storage
        {
            reasons.push(format!("Insufficient {EPHEMERAL_STORAGE}"));
        }
        for (name, want) in &req.scalar {
            if *want == 0 || self.ignored(name) {
                continue;
            }
            if *want > alloc.get(name) - used.get(name) {
                reasons.push(format!("Insufficient {name}"));
            }
        }
        reasons
    }
}

impl Plugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events(&self) -> &'static [ClusterEvent] {
        &[
            ClusterEvent::NodeAdd,
            ClusterEvent::NodeAllocatable,
            ClusterEvent::AssignedPodDelete,
        ]
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

impl FilterPlugin for NodeResourcesFit {
    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let reasons = self.insufficient(pod, node);
        if reasons.is_empty() {
            Status::success()
        } else {
            Status::unschedulable(reasons)
        }
    }
}

impl ScorePlugin for NodeResourcesFit {
    fn score(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<i64, Status> {
        const MAX: usize = 8;
        let n = self.resources.len();
        let mut requested = [0i64; MAX];
        let mut allocatable = [0i64; MAX];
        let (mut req_vec, mut alloc_vec);
        let (requested, allocatable): (&mut [i64], &mut [i64]) = if n <= MAX {
            (&mut requested[..n], &mut allocatable[..n])
        } else {
            req_vec = vec![0; n];
            alloc_vec = vec![0; n];
            (&mut req_vec, &mut alloc_vec)
        };
        for (i, r) in self.resources.iter().enumerate() {
            let name = r.name.as_str();
            allocatable[i] = node.allocatable.get(name);
            requested[i] = match name {
                CPU => node.non_zero_requested.milli_cpu + pod.non_zero_requests.milli_cpu,
                MEMORY => node.non_zero_requested.memory + pod.non_zero_requests.memory,
                _ => node.requested.get(name) + pod.requests.get(name),
            };
        }
        Ok(self.strategy.score(&self.weights, requested, allocatable))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Code;
    use crate::testing::{node, node_with, pod_info};

    fn plugin(strategy: serde_json::Value) -> NodeResourcesFit {
        let args: NodeResourcesFitArgs =
            serde_json::from_value(serde_json::json!({ "scoringStrategy": strategy })).unwrap();
        NodeResourcesFit::new(args).unwrap()
    }

    fn loaded(name: &str, cpu: &str, mem: &str, used: &[(&str, &str)]) -> NodeInfo {
        let mut n = NodeInfo::new(Arc::new(node(name, cpu, mem)));
        for (i, (c, m)) in used.iter().enumerate() {
            n.add_pod(Arc::new(pod_info(&format!("{name}-{i}"), c, m, |_| {})));
        }
        n
    }

    #[test]
    fn filter_table() {
        let st = CycleState::new();
        let fit = NodeResourcesFit::default();
        let half = loaded("n", "4", "8Gi", &[("2", "4Gi")]);
        let cases: Vec<(&str, PodInfo, &NodeInfo, Vec<&str>)> = vec![
            ("fits", pod_info("p", "2", "4Gi", |_| {}), &half, vec![]),
            (
                "cpu short",
                pod_info("p", "2100m", "1Gi", |_| {}),
                &half,
                vec!["Insufficient cpu"],
            ),
            (
                "both short",
                pod_info("p", "3", "5Gi", |_| {}),
                &half,
                vec!["Insufficient cpu", "Insufficient memory"],
            ),
            (
                "init container counted as max(init, sum(app))",
                pod_info("p", "1", "1Gi", |s| {
                    let mut init = s.containers[0].clone();
                    init.name = "init".into();
                    init.resources
                        .as_mut()
                        .unwrap()
                        .requests
                        .as_mut()
                        .unwrap()
                        .insert(
                            "cpu".into(),
                            k8s_openapi::apimachinery::pkg::api::resource::Quantity("3".into()),
                        );
                    s.init_containers = Some(vec![init]);
                }),
                &half,
                vec!["Insufficient cpu"],
            ),
            (
                "overhead counted",
                pod_info("p", "2", "4Gi", |s| {
                    s.overhead = Some(
                        [(
                            "memory".to_string(),
                            k8s_openapi::apimachinery::pkg::api::resource::Quantity("1Mi".into()),
                        )]
                        .into(),
                    )
                }),
                &half,
                vec!["Insufficient memory"],
            ),
        ];
        for (name, pod, n, want) in cases {
            let s = fit.filter(&st, &pod, n);
            assert_eq!(s.reasons, want, "{name}");
            assert_eq!(
                s.code,
                if want.is_empty() {
                    Code::Success
                } else {
                    Code::Unschedulable
                },
                "{name}"
            );
        }
    }

    #[test]
    fn pods_count_ephemeral_storage_and_extended_resources() {
        let st = CycleState::new();
        let fit = NodeResourcesFit::default();
        let n = NodeInfo::new(Arc::new(node_with(
            "n",
            &[
                ("cpu", "4"),
                ("memory", "8Gi"),
                ("pods", "1"),
                ("ephemeral-storage", "10Gi"),
                ("example.com/gpu", "1"),
            ],
        )));
        let mut full = n.clone();
        full.add_pod(Arc::new(pod_info("x", "0", "0", |_| {})));
        let empty = pod_info("p", "0", "0", |_| {});
        assert_eq!(fit.filter(&st, &empty, &full).reasons, [TOO_MANY_PODS]);
        let greedy = pod_info("p", "0", "0", |s| {
            let reqs = s.containers[0]
                .resources
                .get_or_insert_with(Default::default)
                .requests
                .get_or_insert_with(Default::default);
            for (k, v) in [("ephemeral-storage", "11Gi"), ("example.com/gpu", "2")] {
                reqs.insert(
                    k.into(),
                    k8s_openapi::apimachinery::pkg::api::resource::Quantity(v.into()),
                );
            }
        });
        assert_eq!(
            fit.filter(&st, &greedy, &n).reasons,
            [
                "Insufficient ephemeral-storage",
                "Insufficient example.com/gpu"
            ]
        );
        let lenient = NodeResourcesFit::new(NodeResourcesFitArgs {
            ignored_resource_groups: vec!["example.com".into()],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            lenient.filter(&st, &greedy, &n).reasons,
            ["Insufficient ephemeral-storage"]
        );
    }

    #[test]
    fn strategies_table() {
        // A node of 4 cpu / 8Gi with 1 cpu / 2Gi used; the pod asks 1 cpu / 2Gi:
        // utilization after placing it is 50% for both resources.
        let n = loaded("n", "4", "8Gi", &[("1", "2Gi")]);
        let p = pod_info("p", "1", "2Gi", |_| {});
        let st = CycleState::new();
        let cases = [
            (serde_json::json!({"type": "MostAllocated"}), 50),
            (serde_json::json!({"type": "LeastAllocated"}), 50),
            (
                serde_json::json!({"type": "RequestedToCapacityRatio",
                    "requestedToCapacityRatio": {"shape": [
                        {"utilization": 0, "score": 0}, {"utilization": 100, "score": 10}]}}),
                50,
            ),
            (
                serde_json::json!({"type": "RequestedToCapacityRatio",
                    "requestedToCapacityRatio": {"shape": [
                        {"utilization": 0, "score": 10}, {"utilization": 100, "score": 0}]}}),
                50,
            ),
        ];
        for (strategy, want) in cases {
            assert_eq!(
                plugin(strategy.clone()).score(&st, &p, &n).unwrap(),
                want,
                "{strategy}"
            );
        }
        // 3 cpu / 4Gi used: cpu 100%, memory 75% after the pod.
        let busy = loaded("m", "4", "8Gi", &[("3", "4Gi")]);
        let most = plugin(serde_json::json!({"type": "MostAllocated"}));
        let least = plugin(serde_json::json!({"type": "LeastAllocated"}));
        assert_eq!(most.score(&st, &p, &busy).unwrap(), (100 + 75) / 2);
        assert_eq!(least.score(&st, &p, &busy).unwrap(), 25 / 2);
        let cpu_heavy = plugin(serde_json::json!({"type": "MostAllocated",
            "resources": [{"name": "cpu", "weight": 3}, {"name": "memory", "weight": 1}]}));
        assert_eq!(cpu_heavy.score(&st, &p, &busy).unwrap(), (300 + 75) / 4);
    }

    #[test]
    fn most_allocated_prefers_the_fuller_node() {
        let st = CycleState::new();
        let fit = NodeResourcesFit::default();
        assert_eq!(
            fit.strategy(),
            &ScoringStrategy::MostAllocated,
            "the default"
        );
        let p = pod_info("p", "500m", "1Gi", |_| {});
        let empty = loaded("a", "4", "8Gi", &[]);
        let fuller = loaded("b", "4", "8Gi", &[("2", "4Gi")]);
        assert!(fit.score(&st, &p, &fuller).unwrap() > fit.score(&st, &p, &empty).unwrap());
        let spread = plugin(serde_json::json!({"type": "LeastAllocated"}));
        assert!(spread.score(&st, &p, &fuller).unwrap() < spread.score(&st, &p, &empty).unwrap());
    }

    #[test]
    fn pods_without_requests_count_defaults_when_scoring() {
        let st = CycleState::new();
        let fit = NodeResourcesFit::default();
        // 1000m cpu and 2000Mi memory: a best-effort pod counts 100m and 200Mi, i.e. 10%.
        let n = loaded("n", "1", "2000Mi", &[]);
        let p = pod_info("p", "", "", |_| {});
        assert_eq!(fit.score(&st, &p, &n).unwrap(), 10);
    }

    #[test]
    fn broken_linear_function() {
        let shape = [(0, 0), (50, 100), (100, 0)];
        assert_eq!(broken_linear(&shape, 0), 0);
        assert_eq!(broken_linear(&shape, 25), 50);
        assert_eq!(broken_linear(&shape, 50), 100);
        assert_eq!(broken_linear(&shape, 75), 50);
        assert_eq!(broken_linear(&[(10, 30)], 5), 30);
        assert_eq!(broken_linear(&[(10, 30)], 50), 30);
    }

    #[test]
    fn invalid_args_are_rejected() {
        let bad = [
            serde_json::json!({"scoringStrategy": {"type": "RequestedToCapacityRatio"}}),
            serde_json::json!({"scoringStrategy": {"type": "MostAllocated",
                "resources": [{"name": "cpu", "weight": 0}]}}),
            serde_json::json!({"scoringStrategy": {"type": "RequestedToCapacityRatio",
                "requestedToCapacityRatio": {"shape": [
                    {"utilization": 50, "score": 1}, {"utilization": 40, "score": 2}]}}}),
            serde_json::json!({"scoringStrategy": {"type": "Spread"}}),
            serde_json::json!({"unknown": 1}),
        ];
        for args in bad {
            assert!(factory(&args, &Handle::default()).is_err(), "{args}");
        }
    }
}
