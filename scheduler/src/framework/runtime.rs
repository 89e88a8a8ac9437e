//! The framework of one profile: its plugins per extension point (built from the registry and
//! the profile's plugin sets), and the scheduling algorithm that runs them — PreFilter, Filter
//! over the nodes of a snapshot (a sample of them on large clusters, in parallel where it
//! pays, with pods nominated by preemption counted), PreScore, Score with normalization and
//! weights, and the choice of the best node (ties broken at random).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use rand::Rng;

use super::registry::{Handle, Registry};
use super::{
    Candidate, ClusterEvent, Code, CycleState, FilterPlugin, NodeStatuses, Plugin,
    PostFilterResult, ScorePlugin, Status,
};
use crate::cache::{NodeInfo, Snapshot};
use crate::config::{
    ConfigError, PluginRef, Profile, merge_plugin_set, num_feasible_nodes_to_find,
};
use crate::parallel;
use crate::pod_info::PodInfo;

/// Why no node was chosen, with Kubernetes' message (`0/3 nodes are available: 1 node(s) had
/// untolerated taint {node.kubernetes.io/unreachable: }, 2 Insufficient cpu.`).
#[derive(Clone, Debug, Default)]
pub struct FitError {
    /// Nodes in the snapshot.
    pub num_all_nodes: usize,
    /// Why each rejected node was rejected.
    pub statuses: NodeStatuses,
    /// The message of a PreFilter plugin that rejected the pod for every node.
    pub pre_filter_msg: Option<String>,
    /// The message of the PostFilter (preemption).
    pub post_filter_msg: Option<String>,
    /// Plugins that rejected the pod (for re-queueing on relevant events).
    pub unschedulable_plugins: HashSet<&'static str>,
}

impl fmt::Display for FitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0/{} nodes are available:", self.num_all_nodes)?;
        if let Some(msg) = &self.pre_filter_msg {
            write!(f, " {msg}.")?;
        } else {
            let mut counts: HashMap<&str, usize> = HashMap::new();
            for s in self.statuses.values() {
                for r in &s.reasons {
                    *counts.entry(r.as_str()).or_default() += 1;
                }
            }
            let mut parts: Vec<String> = counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
            parts.sort();
            if !parts.is_empty() {
                write!(f, " {}.", parts.join(", "))?;
            }
        }
        if let Some(msg) = &self.post_filter_msg {
            write!(f, " {}.", msg.trim_end_matches('.'))?;
        }
        Ok(())
    }
}

/// The outcome of a scheduling attempt that did not pick a node.
#[derive(Clone, Debug)]
pub enum ScheduleError {
    /// No node fits.
    Fit(Box<FitError>),
    /// A plugin failed (not a fit problem): retried with backoff.
    Internal(Status),
}

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScheduleError::Fit(e) => e.fmt(f),
            ScheduleError::Internal(s) => {
                write!(f, "running plugin {}: {}", s.plugin, s.message())
            }
        }
    }
}

/// A chosen node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleResult {
    /// The node.
    pub node: String,
    /// Nodes filtered.
    pub evaluated: usize,
    /// Nodes that passed the filters.
    pub feasible: usize,
}

/// Mutable state the scheduling loop carries between cycles.
pub struct CycleContext {
    /// Where the next node scan starts (so that sampled scans rotate over the cluster).
    pub next_start_node: usize,
    /// Breaks score ties.
    pub rng: rand::rngs::StdRng,
}

impl CycleContext {
    /// A context with a seeded tie-breaker (deterministic for a seed).
    pub fn new(seed: u64) -> Self {
        use rand::SeedableRng;
        CycleContext {
            next_start_node: 0,
            rng: rand::rngs::StdRng::seed_from_u64(seed),
        }
    }
}

/// A plugin with its score weight.
type Weighted = (Arc<dyn Plugin>, i64);

/// The plugins of one profile, per extension point.
pub struct Framework {
    /// The profile's scheduler name.
    pub scheduler_name: String,
    percentage_of_nodes_to_score: Option<i32>,
    threads: usize,
    pre_filter: Vec<Arc<dyn Plugin>>,
    filter: Vec<Arc<dyn Plugin>>,
    post_filter: Vec<Arc<dyn Plugin>>,
    pre_score: Vec<Arc<dyn Plugin>>,
    score: Vec<Weighted>,
    bind: Vec<Arc<dyn Plugin>>,
    events: HashMap<&'static str, &'static [ClusterEvent]>,
}

/// Extension points a configuration names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Point {
    PreFilter,
    Filter,
    PostFilter,
    PreScore,
    Score,
    Bind,
}

impl Point {
    fn implemented_by(self, p: &dyn Plugin) -> bool {
        match self {
            Point::PreFilter => p.as_pre_filter().is_some(),
            Point::Filter => p.as_filter().is_some(),
            Point::PostFilter => p.as_post_filter().is_some(),
            Point::PreScore => p.as_pre_score().is_some(),
            Point::Score => p.as_score().is_some(),
            Point::Bind => p.as_bind().is_some(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Point::PreFilter => "preFilter",
            Point::Filter => "filter",
            Point::PostFilter => "postFilter",
            Point::PreScore => "preScore",
            Point::Score => "score",
            Point::Bind => "bind",
        }
    }
}

impl Framework {
    /// Builds a profile's framework: the default multiPoint plugins merged with the profile's
    /// sets, each plugin built once with its args.
    pub fn new(
        profile: &Profile,
        registry: &Registry,
        handle: &Handle,
        global_percentage: Option<i32>,
        threads: usize,
    ) -> Result<Self, ConfigError> {
        let multi = merge_plugin_set(registry.default_plugins(), &profile.plugins.multi_point);
        let mut instances: HashMap<String, Arc<dyn Plugin>> = HashMap::new();
        let mut instance = |name: &str| -> Result<Arc<dyn Plugin>, ConfigError> {
            if let Some(p) = instances.get(name) {
                return Ok(p.clone());
            }
            let args = profile
                .plugin_config
                .iter()
                .find(|c| c.name == name)
                .map(|c| c.args.clone())
                .unwrap_or(serde_json::Value::Null);
            let p = registry.build(name, &args, handle).ok_or_else(|| {
                ConfigError::UnknownPlugin {
                    profile: profile.scheduler_name.clone(),
                    plugin: name.to_string(),
                }
            })??;
            instances.insert(name.to_string(), p.clone());
            Ok(p)
        };
        let sets = [
            (Point::PreFilter, &profile.plugins.pre_filter),
            (Point::Filter, &profile.plugins.filter),
            (Point::PostFilter, &profile.plugins.post_filter),
            (Point::PreScore, &profile.plugins.pre_score),
            (Point::Score, &profile.plugins.score),
            (Point::Bind, &profile.plugins.bind),
        ];
        let mut per_point: Vec<(Point, Vec<Weighted>)> = Vec::new();
        for (point, set) in sets {
            let explicit = merge_plugin_set(&[], set);
            let all_disabled = set.disabled.iter().any(|p| p.name == "*");
            let mut list: Vec<Weighted> = Vec::new();
            let mut seen = HashSet::new();
            let weight = |r: &PluginRef| i64::from(r.weight.filter(|w| *w > 0).unwrap_or(1));
            for r in &explicit {
                let p = instance(&r.name)?;
                if !point.implemented_by(p.as_ref()) {
                    return Err(ConfigError::Invalid(format!(
                        "plugin {:?} does not extend {} plugin",
                        r.name,
                        point.name()
                    )));
                }
                if !seen.insert(r.name.clone()) {
                    return Err(ConfigError::Invalid(format!(
                        "plugin {:?} already registered as {:?}",
                        r.name,
                        point.name()
                    )));
                }
                list.push((p, weight(r)));
            }
            for r in &multi {
                if all_disabled
                    || seen.contains(&r.name)
                    || set.disabled.iter().any(|d| d.name == r.name)
                {
                    continue;
                }
                let p = instance(&r.name)?;
                if point.implemented_by(p.as_ref()) {
                    seen.insert(r.name.clone());
                    list.push((p, weight(r)));
                }
            }
            per_point.push((point, list));
        }
        let mut fwk = Framework {
            scheduler_name: profile.scheduler_name.clone(),
            percentage_of_nodes_to_score: profile
                .percentage_of_nodes_to_score
                .or(global_percentage),
            threads: threads.max(1),
            pre_filter: Vec::new(),
            filter: Vec::new(),
            post_filter: Vec::new(),
            pre_score: Vec::new(),
            score: Vec::new(),
            bind: Vec::new(),
            events: HashMap::new(),
        };
        for (point, list) in per_point {
            for (p, w) in list {
                fwk.events.insert(p.name(), p.events());
                match point {
                    Point::PreFilter => fwk.pre_filter.push(p),
                    Point::Filter => fwk.filter.push(p),
                    Point::PostFilter => fwk.post_filter.push(p),
                    Point::PreScore => fwk.pre_score.push(p),
                    Point::Score => fwk.score.push((p, w)),
                    Point::Bind => fwk.bind.push(p),
                }
            }
        }
        if fwk.bind.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "profile {}: at least one bind plugin is needed",
                profile.scheduler_name
            )));
        }
        Ok(fwk)
    }

    /// Names of the plugins per extension point (for logs and tests).
    pub fn plugin_names(&self) -> HashMap<&'static str, Vec<(&'static str, i64)>> {
        let names = |v: &[Arc<dyn Plugin>]| v.iter().map(|p| (p.name(), 0)).collect();
        HashMap::from([
            ("preFilter", names(&self.pre_filter)),
            ("filter", names(&self.filter)),
            ("postFilter", names(&self.post_filter)),
            ("preScore", names(&self.pre_score)),
            (
                "score",
                self.score.iter().map(|(p, w)| (p.name(), *w)).collect(),
            ),
            ("bind", names(&self.bind)),
        ])
    }

    /// Whether a pod rejected by `plugins` may become schedulable after `event`.
    pub fn event_may_help(&self, plugins: &HashSet<&'static str>, event: ClusterEvent) -> bool {
        plugins.is_empty()
            || plugins
                .iter()
                .any(|p| self.events.get(p).is_some_and(|evs| evs.contains(&event)))
    }

    /// Runs the PreFilter plugins; a rejection applies to every node.
    pub fn run_pre_filter(&self, state: &mut CycleState, pod: &PodInfo, snap: &Snapshot) -> Status {
        for p in &self.pre_filter {
            let Some(pf) = p.as_pre_filter() else {
                continue;
            };
            let s = pf.pre_filter(state, pod, snap);
            match s.code {
                Code::Success => {}
                Code::Skip => state.skip_filter.push(p.name()),
                _ => return s.with_plugin(p.name()),
            }
        }
        Status::success()
    }

    /// The Filter plugins that run this cycle (those whose PreFilter did not return Skip).
    fn active_filters(&self, state: &CycleState) -> Vec<(&'static str, &dyn FilterPlugin)> {
        self.filter
            .iter()
            .filter(|p| !state.skip_filter.contains(&p.name()))
            .filter_map(|p| p.as_filter().map(|f| (p.name(), f)))
            .collect()
    }

    /// Runs the Filter plugins on one node, stopping at the first rejection.
    pub fn run_filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        run_filters(&self.active_filters(state), state, pod, node)
    }

    /// Runs the PreFilter extensions as if `other` were added to (`add`) or removed from
    /// `node`.
    pub fn update_state_for_pod(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        other: &PodInfo,
        node: &NodeInfo,
        add: bool,
    ) {
        for p in &self.pre_filter {
            if state.skip_filter.contains(&p.name()) {
                continue;
            }
            if let Some(pf) = p.as_pre_filter() {
                if add {
                    pf.add_pod(state, pod, other, node);
                } else {
                    pf.remove_pod(state, pod, other, node);
                }
            }
        }
    }

    /// Runs the filters on a node, counting the pods nominated to it with at least the pod's
    /// priority as if they ran there (Kubernetes' `RunFilterPluginsWithNominatedPods`).
    pub fn run_filter_with_nominated(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        node: &Arc<NodeInfo>,
        snap: &Snapshot,
    ) -> Status {
        let nominated: Vec<&Arc<PodInfo>> = snap
            .nominated_pods(&node.name)
            .iter()
            .filter(|p| p.key != pod.key && p.priority >= pod.priority)
            .collect();
        if nominated.is_empty() {
            return self.run_filter(state, pod, node);
        }
        let mut with = (**node).clone();
        let mut st = state.clone();
        for p in nominated {
            with.add_pod(p.clone());
            self.update_state_for_pod(&mut st, pod, p, &with, true);
        }
        let s = self.run_filter(&st, pod, &with);
        if !s.is_success() {
            return s;
        }
        self.run_filter(state, pod, node)
    }

    /// Finds feasible nodes, scanning from `ctx.next_start_node` until enough are found (all
    /// nodes on small clusters). Returns them with the statuses of rejected nodes.
    ///
    /// The first [`parallel::MIN_PARALLEL_ITEMS`] nodes are checked on the calling thread:
    /// usually enough feasible nodes are among them, and starting threads would cost more than
    /// the checks (on a busy machine, much more). Only the rest of a long scan is spread over
    /// threads.
    pub fn find_nodes_that_fit(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        snap: &Snapshot,
        ctx: &mut CycleContext,
    ) -> (Vec<Arc<NodeInfo>>, NodeStatuses, usize) {
        let nodes = snap.nodes();
        let total = nodes.len();
        if total == 0 {
            return (Vec::new(), NodeStatuses::new(), 0);
        }
        let want = num_feasible_nodes_to_find(self.percentage_of_nodes_to_score, total);
        let start = ctx.next_start_node % total;
        let has_nominated = snap.has_nominated_pods();
        let filters = self.active_filters(state);
        let found = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let scan = |range: std::ops::Range<usize>| {
            let mut ok = Vec::new();
            let mut rejected = Vec::new();
            let mut checked = 0;
            for i in range {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                checked += 1;
                let node = &nodes[(start + i) % total];
                let s = if has_nominated {
                    self.run_filter_with_nominated(state, pod, node, snap)
                } else {
                    run_filters(&filters, state, pod, node)
                };
                if s.is_success() {
                    ok.push(node.clone());
                    if found.fetch_add(1, Ordering::Relaxed) + 1 >= want {
                        stop.store(true, Ordering::Relaxed);
                    }
                } else {
                    rejected.push((node.name.clone(), s));
                }
            }
            (ok, rejected, checked)
        };
        let parallel = self.threads > 1 && total >= 2 * parallel::MIN_PARALLEL_ITEMS;
        let head = if parallel {
            parallel::MIN_PARALLEL_ITEMS
        } else {
            total
        };
        let mut results = vec![scan(0..head)];
        if head < total && !stop.load(Ordering::Relaxed) {
            let rest = total - head;
            let chunk = (rest / (self.threads * 4)).clamp(64, 512);
            results.extend(parallel::chunks(
                self.threads,
                rest,
                chunk,
                &stop,
                |range| scan(range.start + head..range.end + head),
            ));
        }
        let mut feasible = Vec::new();
        let mut statuses = NodeStatuses::new();
        let mut processed = 0;
        for (ok, rejected, checked) in results {
            feasible.extend(ok);
            statuses.extend(rejected);
            processed += checked;
        }
        feasible.truncate(want);
        ctx.next_start_node = (start + processed) % total;
        (feasible, statuses, processed)
    }

    /// Runs the PreScore plugins.
    pub fn run_pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        nodes: &[Arc<NodeInfo>],
        snap: &Snapshot,
    ) -> Status {
        for p in &self.pre_score {
            let Some(ps) = p.as_pre_score() else {
                continue;
            };
            let s = ps.pre_score(state, pod, nodes, snap);
            match s.code {
                Code::Success => {}
                Code::Skip => state.skip_score.push(p.name()),
                _ => return s.with_plugin(p.name()),
            }
        }
        Status::success()
    }

    /// Scores the nodes: each plugin's scores normalized, weighted and summed per node. The raw
    /// scores of all plugins are computed in one pass over the nodes (spread over threads when
    /// there are many nodes).
    pub fn run_score(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        nodes: &[Arc<NodeInfo>],
    ) -> Result<Vec<i64>, Status> {
        let plugins: Vec<(&'static str, &dyn ScorePlugin, i64)> = self
            .score
            .iter()
            .filter(|(p, _)| !state.skip_score.contains(&p.name()))
            .filter_map(|(p, w)| p.as_score().map(|sp| (p.name(), sp, *w)))
            .collect();
        let k = plugins.len();
        let mut totals = vec![0i64; nodes.len()];
        if k == 0 {
            return Ok(totals);
        }
        let stop = AtomicBool::new(false);
        // Raw scores node-major: node i's score by plugin j at i * k + j.
        let parts = parallel::chunks(self.threads, nodes.len(), 512, &stop, |range| {
            let mut out = Vec::with_capacity(range.len() * k);
            for i in range {
                for (name, sp, _) in &plugins {
                    out.push(
                        sp.score(state, pod, &nodes[i])
                            .map_err(|s| s.with_plugin(name))?,
                    );
                }
            }
            Ok::<_, Status>(out)
        });
        let mut raw = Vec::with_capacity(nodes.len() * k);
        for part in parts {
            raw.extend(part?);
        }
        let mut scores = vec![0i64; nodes.len()];
        for (j, (_, sp, weight)) in plugins.iter().enumerate() {
            for (i, s) in scores.iter_mut().enumerate() {
                *s = raw[i * k + j];
            }
            sp.normalize(state, pod, &mut scores);
            for (t, s) in totals.iter_mut().zip(&scores) {
                *t += s * weight;
            }
        }
        Ok(totals)
    }

    /// The full algorithm for one pod: PreFilter, Filter, PreScore, Score, pick a node.
    pub fn schedule_pod(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snap: &Snapshot,
        ctx: &mut CycleContext,
    ) -> Result<ScheduleResult, ScheduleError> {
        state.clear();
        let num_all_nodes = snap.nodes().len();
        if num_all_nodes == 0 {
            return Err(ScheduleError::Fit(Box::new(FitError {
                num_all_nodes: 0,
                ..Default::default()
            })));
        }
        if let Some(msg) = &pod.parse_error {
            return Err(ScheduleError::Fit(Box::new(FitError {
                num_all_nodes,
                pre_filter_msg: Some(msg.clone()),
                ..Default::default()
            })));
        }
        let s = self.run_pre_filter(state, pod, snap);
        if s.code == Code::Error {
            return Err(ScheduleError::Internal(s));
        }
        if s.is_rejected() {
            let statuses = snap
                .nodes()
                .iter()
                .map(|n| (n.name.clone(), s.clone()))
                .collect();
            return Err(ScheduleError::Fit(Box::new(FitError {
                num_all_nodes,
                statuses,
                pre_filter_msg: Some(s.message()),
                unschedulable_plugins: HashSet::from([s.plugin]),
                ..Default::default()
            })));
        }
        // A pod nominated by an earlier preemption tries its node first.
        if let Some(nominated) = pod.nominated_node_name.as_deref()
            && let Some(node) = snap.get(nominated)
            && self
                .run_filter_with_nominated(state, pod, node, snap)
                .is_success()
        {
            return Ok(ScheduleResult {
                node: nominated.to_string(),
                evaluated: 1,
                feasible: 1,
            });
        }
        let (feasible, statuses, evaluated) = self.find_nodes_that_fit(state, pod, snap, ctx);
        if let Some(s) = statuses.values().find(|s| s.code == Code::Error) {
            return Err(ScheduleError::Internal(s.clone()));
        }
        if feasible.is_empty() {
            let unschedulable_plugins = statuses.values().map(|s| s.plugin).collect();
            return Err(ScheduleError::Fit(Box::new(FitError {
                num_all_nodes,
                statuses,
                unschedulable_plugins,
                ..Default::default()
            })));
        }
        if feasible.len() == 1 {
            return Ok(ScheduleResult {
                node: feasible[0].name.clone(),
                evaluated,
                feasible: 1,
            });
        }
        let s = self.run_pre_score(state, pod, &feasible, snap);
        if !s.is_success() {
            return Err(ScheduleError::Internal(s));
        }
        let totals = self
            .run_score(state, pod, &feasible)
            .map_err(ScheduleError::Internal)?;
        let node = select_host(&feasible, &totals, &mut ctx.rng);
        Ok(ScheduleResult {
            node,
            evaluated,
            feasible: feasible.len(),
        })
    }

    /// Runs the PostFilter plugins until one nominates a node.
    pub fn run_post_filter(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        snap: &Snapshot,
        statuses: &NodeStatuses,
    ) -> Option<PostFilterResult> {
        let mut last = None;
        for p in &self.post_filter {
            let Some(pf) = p.as_post_filter() else {
                continue;
            };
            let r = pf.post_filter(self, state, pod, snap, statuses);
            if r.candidate.is_some() {
                return Some(r);
            }
            last = Some(r);
        }
        last
    }

    /// Whether the pod (with `state` from its PreFilter) passes every filter on `node`.
    pub fn fits(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> bool {
        self.run_filter(state, pod, node).is_success()
    }

    /// Simulates removing `victims` from a node: the node and state without them.
    pub fn without_pods(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        node: &NodeInfo,
        victims: &[Arc<PodInfo>],
    ) -> (NodeInfo, CycleState) {
        let mut n = node.clone();
        let mut st = state.clone();
        for v in victims {
            n.remove_pod(&v.key);
            self.update_state_for_pod(&mut st, pod, v, &n, false);
        }
        (n, st)
    }

    /// Runs the Bind plugins until one binds the pod.
    pub async fn run_bind(&self, pod: &PodInfo, node: &str) -> Status {
        for p in &self.bind {
            let Some(b) = p.as_bind() else {
                continue;
            };
            let s = b.bind(pod, node).await;
            if !s.is_skip() {
                return s.with_plugin(p.name());
            }
        }
        Status::error("no bind plugin bound the pod")
    }
}

/// Runs filters on one node, stopping at the first rejection.
fn run_filters(
    filters: &[(&'static str, &dyn FilterPlugin)],
    state: &CycleState,
    pod: &PodInfo,
    node: &NodeInfo,
) -> Status {
    for (name, f) in filters {
        let s = f.filter(state, pod, node);
        if !s.is_success() {
            return s.with_plugin(name);
        }
    }
    Status::success()
}

/// The node with the highest score; ties are broken uniformly at random (reservoir sampling).
pub fn select_host(nodes: &[Arc<NodeInfo>], scores: &[i64], rng: &mut impl Rng) -> String {
    let mut best = 0;
    let mut ties = 0u32;
    for (i, s) in scores.iter().enumerate() {
        if *s > scores[best] {
            best = i;
            ties = 1;
        } else if *s == scores[best] {
            ties += 1;
            if rng.random_range(0..ties) == 0 {
                best = i;
            }
        }
    }
    nodes[best].name.clone()
}

/// A candidate chosen by preemption (re-exported for the PostFilter plugin).
pub type PreemptionCandidate = Candidate;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::registry::Registry;
    use crate::testing::{node, pod};

    fn statuses(pairs: &[(&str, Code, &[&str])]) -> NodeStatuses {
        pairs
            .iter()
            .map(|(n, c, rs)| {
                (
                    n.to_string(),
                    Status {
                        code: *c,
                        reasons: rs.iter().map(|r| r.to_string()).collect(),
                        plugin: "",
                    },
                )
            })
            .collect()
    }

    #[test]
    fn fit_error_message_is_kubernetes_style() {
        let e = FitError {
            num_all_nodes: 3,
            statuses: statuses(&[
                ("a", Code::Unschedulable, &["Insufficient cpu"]),
                ("b", Code::Unschedulable, &["Insufficient cpu"]),
                (
                    "c",
                    Code::UnschedulableAndUnresolvable,
                    &["node(s) had untolerated taint {node.kubernetes.io/unreachable: }"],
                ),
            ]),
            ..Default::default()
        };
        assert_eq!(
            e.to_string(),
            "0/3 nodes are available: 1 node(s) had untolerated taint \
             {node.kubernetes.io/unreachable: }, 2 Insufficient cpu."
        );
        let e = FitError {
            num_all_nodes: 2,
            statuses: statuses(&[("a", Code::Unschedulable, &["Insufficient cpu", "Insufficient memory"])]),
            post_filter_msg: Some(
                "preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod."
                    .into(),
            ),
            ..Default::default()
        };
        assert_eq!(
            e.to_string(),
            "0/2 nodes are available: 1 Insufficient cpu, 1 Insufficient memory. preemption: \
             0/2 nodes are available: 2 No preemption victims found for incoming pod."
        );
        let e = FitError {
            num_all_nodes: 0,
            ..Default::default()
        };
        assert_eq!(e.to_string(), "0/0 nodes are available:");
    }

    #[test]
    fn select_host_breaks_ties_among_the_best_only() {
        let nodes: Vec<Arc<NodeInfo>> = (0..4)
            .map(|i| Arc::new(NodeInfo::new(Arc::new(node(&format!("n{i}"), "1", "1Gi")))))
            .collect();
        let mut rng = CycleContext::new(7).rng;
        let mut seen = HashSet::new();
        for _ in 0..200 {
            seen.insert(select_host(&nodes, &[5, 9, 1, 9], &mut rng));
        }
        assert_eq!(seen, HashSet::from(["n1".to_string(), "n3".to_string()]));
    }

    #[test]
    fn default_profile_has_every_plugin_where_it_belongs() {
        let fwk = Framework::new(
            &Profile::default(),
            &Registry::in_tree(),
            &Handle::default(),
            None,
            1,
        )
        .unwrap();
        let names = fwk.plugin_names();
        let filters: Vec<&str> = names["filter"].iter().map(|(n, _)| *n).collect();
        assert_eq!(
            filters,
            [
                "NodeUnschedulable",
                "NodeName",
                "TaintToleration",
                "NodeReady",
                "NodeAffinity",
                "NodePorts",
                "NodeResourcesFit",
                "InterPodAffinity",
                "PodTopologySpread"
            ]
        );
        let scores: HashMap<&str, i64> = names["score"].iter().copied().collect();
        assert_eq!(scores["NodeResourcesFit"], 1);
        assert_eq!(scores["TaintToleration"], 3);
        assert_eq!(scores["NodeAffinity"], 2);
        assert_eq!(scores["InterPodAffinity"], 2);
        assert_eq!(scores["PodTopologySpread"], 2);
        assert_eq!(scores["ImageLocality"], 1);
        assert_eq!(names["bind"], vec![("DefaultBinder", 0)]);
        assert_eq!(names["postFilter"], vec![("DefaultPreemption", 0)]);
    }

    #[test]
    fn profiles_disable_and_reweight_plugins() {
        let profile: Profile = serde_json::from_value(serde_json::json!({
            "schedulerName": "custom",
            "plugins": {
                "score": {"disabled": [{"name": "ImageLocality"}],
                          "enabled": [{"name": "NodeResourcesFit", "weight": 5}]},
                "filter": {"disabled": [{"name": "*"}], "enabled": [{"name": "NodeResourcesFit"}]}
            }
        }))
        .unwrap();
        let fwk =
            Framework::new(&profile, &Registry::in_tree(), &Handle::default(), None, 1).unwrap();
        let names = fwk.plugin_names();
        assert_eq!(names["filter"], vec![("NodeResourcesFit", 0)]);
        let scores: HashMap<&str, i64> = names["score"].iter().copied().collect();
        assert_eq!(scores["NodeResourcesFit"], 5);
        assert!(!scores.contains_key("ImageLocality"));
        let bad: Profile = serde_json::from_value(serde_json::json!({
            "plugins": {"filter": {"enabled": [{"name": "ImageLocality"}]}}
        }))
        .unwrap();
        assert!(Framework::new(&bad, &Registry::in_tree(), &Handle::default(), None, 1).is_err());
        let unknown: Profile = serde_json::from_value(serde_json::json!({
            "plugins": {"score": {"enabled": [{"name": "Nope"}]}}
        }))
        .unwrap();
        assert!(matches!(
            Framework::new(&unknown, &Registry::in_tree(), &Handle::default(), None, 1),
            Err(ConfigError::UnknownPlugin { .. })
        ));
    }

    #[test]
    fn sampled_scans_rotate_and_stop_early() {
        let nodes: Vec<_> = (0..1000)
            .map(|i| node(&format!("n{i:04}"), "4", "8Gi"))
            .collect();
        let snap = Snapshot::from_nodes(nodes, vec![]);
        let fwk = Framework::new(
            &Profile::default(),
            &Registry::in_tree(),
            &Handle::default(),
            None,
            2,
        )
        .unwrap();
        let p = PodInfo::new(Arc::new(pod("p", "100m", "100Mi")));
        let mut state = CycleState::new();
        let mut ctx = CycleContext::new(1);
        fwk.run_pre_filter(&mut state, &p, &snap);
        let (feasible, _, processed) = fwk.find_nodes_that_fit(&state, &p, &snap, &mut ctx);
        assert_eq!(feasible.len(), 420, "42% of 1000 nodes");
        assert!((420..1000).contains(&processed), "{processed}");
        assert_eq!(ctx.next_start_node, processed);
        let (again, _, _) = fwk.find_nodes_that_fit(&state, &p, &snap, &mut ctx);
        assert_ne!(
            again[0].name, feasible[0].name,
            "the next scan starts further on"
        );
    }
}
