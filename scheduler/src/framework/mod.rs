//! The scheduling framework: one trait per extension point (PreFilter, Filter, PostFilter,
//! PreScore, Score with normalization, Bind), the [`Status`] a plugin returns (with the reasons
//! shown to users, e.g. "Insufficient cpu"), the per-cycle [`CycleState`] map in which plugins
//! keep what their PreFilter / PreScore computed, the plugin [`registry`] and the per-profile
//! [`runtime::Framework`] that runs them.

pub mod registry;
pub mod runtime;

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;

use crate::cache::{NodeInfo, Snapshot};
use crate::pod_info::PodInfo;

/// The highest score a Score plugin gives a node (after normalization).
pub const MAX_NODE_SCORE: i64 = 100;

/// The outcome class of a plugin call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    /// Passed.
    Success,
    /// An internal error: the pod is retried with backoff.
    Error,
    /// The pod does not fit the node now, but preemption could help.
    Unschedulable,
    /// The pod does not fit the node, and preemption cannot help.
    UnschedulableAndUnresolvable,
    /// The plugin has nothing to do for this pod (PreFilter / PreScore: its Filter / Score is
    /// skipped this cycle; Bind: the next binder is tried).
    Skip,
}

/// What a plugin call returned: a code, the reasons (shown in events, counted per node) and
/// the plugin that failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// The outcome.
    pub code: Code,
    /// Human-readable reasons (e.g. `Insufficient cpu`).
    pub reasons: Vec<String>,
    /// The plugin that returned the status (set by the runtime).
    pub plugin: &'static str,
}

impl Status {
    /// Success.
    pub const fn success() -> Self {
        Status {
            code: Code::Success,
            reasons: Vec::new(),
            plugin: "",
        }
    }

    /// Skip.
    pub const fn skip() -> Self {
        Status {
            code: Code::Skip,
            reasons: Vec::new(),
            plugin: "",
        }
    }

    /// A status with a code and one reason.
    pub fn new(code: Code, reason: impl Into<String>) -> Self {
        Status {
            code,
            reasons: vec![reason.into()],
            plugin: "",
        }
    }

    /// Unschedulable (preemption may help) with reasons.
    pub fn unschedulable(reasons: Vec<String>) -> Self {
        Status {
            code: Code::Unschedulable,
            reasons,
            plugin: "",
        }
    }

    /// Unschedulable and unresolvable with one reason.
    pub fn unresolvable(reason: impl Into<String>) -> Self {
        Self::new(Code::UnschedulableAndUnresolvable, reason)
    }

    /// An internal error.
    pub fn error(reason: impl Into<String>) -> Self {
        Self::new(Code::Error, reason)
    }

    /// Whether the code is Success.
    pub fn is_success(&self) -> bool {
        self.code == Code::Success
    }

    /// Whether the code is Skip.
    pub fn is_skip(&self) -> bool {
        self.code == Code::Skip
    }

    /// Whether the pod is rejected (Unschedulable or UnschedulableAndUnresolvable).
    pub fn is_rejected(&self) -> bool {
        matches!(
            self.code,
            Code::Unschedulable | Code::UnschedulableAndUnresolvable
        )
    }

    /// The reasons joined with `, `.
    pub fn message(&self) -> String {
        self.reasons.join(", ")
    }

    /// Sets the plugin that returned the status.
    pub fn with_plugin(mut self, plugin: &'static str) -> Self {
        self.plugin = plugin;
        self
    }
}

/// Data a plugin stores in the [`CycleState`]; cloned when preemption simulates removing pods.
pub trait StateData: Any + Send + Sync {
    /// A copy.
    fn clone_data(&self) -> Box<dyn StateData>;
    /// For downcasting.
    fn as_any(&self) -> &dyn Any;
    /// For downcasting.
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<T: Any + Clone + Send + Sync> StateData for T {
    fn clone_data(&self) -> Box<dyn StateData> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// What plugins computed for the pod being scheduled, by key, for one cycle.
///
/// Score and Filter plugins read it once per node, so it is a short list searched by key
/// (a handful of entries; keys are compared by address first) rather than a hashed map.
#[derive(Default)]
pub struct CycleState {
    data: Vec<(&'static str, Box<dyn StateData>)>,
    /// Plugins whose Filter is skipped (their PreFilter returned Skip).
    pub skip_filter: Vec<&'static str>,
    /// Plugins whose Score is skipped (their PreScore returned Skip).
    pub skip_score: Vec<&'static str>,
}

impl Clone for CycleState {
    fn clone(&self) -> Self {
        CycleState {
            data: self
                .data
                .iter()
                .map(|(k, v)| (*k, v.as_ref().clone_data()))
                .collect(),
            skip_filter: self.skip_filter.clone(),
            skip_score: self.skip_score.clone(),
        }
    }
}

fn same_key(a: &str, b: &str) -> bool {
    std::ptr::eq(a, b) || a == b
}

impl CycleState {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    fn position(&self, key: &str) -> Option<usize> {
        self.data.iter().position(|(k, _)| same_key(k, key))
    }

    /// Stores a value (replacing the one under the same key).
    pub fn write<T: StateData>(&mut self, key: &'static str, value: T) {
        match self.position(key) {
            Some(i) => self.data[i].1 = Box::new(value),
            None => self.data.push((key, Box::new(value))),
        }
    }

    /// Reads a value.
    pub fn read<T: 'static>(&self, key: &'static str) -> Option<&T> {
        self.position(key)
            .and_then(|i| self.data[i].1.as_ref().as_any().downcast_ref())
    }

    /// Reads a value for changing it.
    pub fn read_mut<T: 'static>(&mut self, key: &'static str) -> Option<&mut T> {
        self.position(key)
            .and_then(|i| self.data[i].1.as_mut().as_any_mut().downcast_mut())
    }

    /// Clears everything (between cycles).
    pub fn clear(&mut self) {
        self.data.clear();
        self.skip_filter.clear();
        self.skip_score.clear();
    }
}

/// Kinds of cluster events that can make an unschedulable pod schedulable; a plugin names the
/// ones that can undo its rejections, and the queue moves pods rejected by it when one happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClusterEvent {
    /// A node was added.
    NodeAdd,
    /// A node's allocatable resources changed.
    NodeAllocatable,
    /// A node's labels changed.
    NodeLabel,
    /// A node's taints changed.
    NodeTaint,
    /// A node's conditions changed.
    NodeCondition,
    /// A node's `spec.unschedulable` changed.
    NodeUnschedulable,
    /// A pod was bound to a node.
    AssignedPodAdd,
    /// A bound pod changed (labels).
    AssignedPodUpdate,
    /// A bound pod was deleted or finished.
    AssignedPodDelete,
    /// A namespace's labels changed.
    NamespaceChange,
}

/// A plugin: a name, the events that may undo its rejections, and the extension points it
/// implements (each `as_*` returns `Some(self)` for the traits the plugin implements).
pub trait Plugin: Send + Sync {
    /// The plugin's name as used in the configuration (`NodeResourcesFit`).
    fn name(&self) -> &'static str;
    /// Events after which pods this plugin rejected are worth retrying.
    fn events(&self) -> &'static [ClusterEvent] {
        &[]
    }
    /// The PreFilter stage.
    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        None
    }
    /// The Filter stage.
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        None
    }
    /// The PostFilter stage.
    fn as_post_filter(&self) -> Option<&dyn PostFilterPlugin> {
        None
    }
    /// The PreScore stage.
    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        None
    }
    /// The Score stage.
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        None
    }
    /// The Bind stage.
    fn as_bind(&self) -> Option<&dyn BindPlugin> {
        None
    }
}

/// Runs once per cycle before filtering: computes what Filter needs, or rejects the pod
/// outright, or returns Skip when the plugin has nothing to check for this pod.
pub trait PreFilterPlugin: Plugin {
    /// Prepares `state` for the Filter calls.
    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, snapshot: &Snapshot) -> Status;

    /// Updates `state` as if `other` were added to `node` (preemption and nominated pods use
    /// this; plugins whose state depends on other pods implement it).
    fn add_pod(&self, _state: &mut CycleState, _pod: &PodInfo, _other: &PodInfo, _node: &NodeInfo) {
    }

    /// Updates `state` as if `other` were removed from `node`.
    fn remove_pod(
        &self,
        _state: &mut CycleState,
        _pod: &PodInfo,
        _other: &PodInfo,
        _node: &NodeInfo,
    ) {
    }
}

/// Decides whether the pod can run on a node. Called for many nodes, possibly in parallel.
pub trait FilterPlugin: Plugin {
    /// Success if the pod fits the node, else Unschedulable(AndUnresolvable) with reasons.
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status;
}

/// A node and the pods to evict from it so that a preempting pod fits.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// The node.
    pub node: String,
    /// The victims, most important first.
    pub victims: Vec<Arc<PodInfo>>,
}

/// What a PostFilter plugin decided.
#[derive(Clone, Debug)]
pub struct PostFilterResult {
    /// The node the pod is nominated to, with the pods to evict there.
    pub candidate: Option<Candidate>,
    /// The outcome; its reasons are added to the FailedScheduling message.
    pub status: Status,
}

/// Why each node was rejected, by node name.
pub type NodeStatuses = HashMap<String, Status>;

/// Runs when no node fits (preemption): may nominate a node where evicting pods helps.
pub trait PostFilterPlugin: Plugin {
    /// Looks for a node and victims.
    fn post_filter(
        &self,
        fwk: &runtime::Framework,
        state: &CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
        statuses: &NodeStatuses,
    ) -> PostFilterResult;
}

/// Runs once per cycle before scoring, with the feasible nodes.
pub trait PreScorePlugin: Plugin {
    /// Prepares `state` for the Score calls; Skip skips this plugin's Score.
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        nodes: &[Arc<NodeInfo>],
        snapshot: &Snapshot,
    ) -> Status;
}

/// Ranks feasible nodes: a score per node, then a normalization over all of them to 0–100.
pub trait ScorePlugin: Plugin {
    /// The node's raw score.
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<i64, Status>;

    /// Brings the raw scores of all feasible nodes to 0–100 (the default leaves them).
    fn normalize(&self, _state: &CycleState, _pod: &PodInfo, _scores: &mut [i64]) {}
}

/// Binds a pod to a node.
#[async_trait::async_trait]
pub trait BindPlugin: Plugin {
    /// Success when bound; Skip to let the next bind plugin do it.
    async fn bind(&self, pod: &PodInfo, node: &str) -> Status;
}

/// Kubernetes' `DefaultNormalizeScore`: scales scores so the highest is 100 (all become 100 if
/// the highest is 0 and `reverse`); with `reverse` a high raw score becomes a low final one.
pub fn default_normalize_score(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = MAX_NODE_SCORE);
        }
        return;
    }
    for s in scores.iter_mut() {
        *s = MAX_NODE_SCORE * *s / max;
        if reverse {
            *s = MAX_NODE_SCORE - *s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_scales_and_reverses() {
        let mut s = [0, 5, 10];
        default_normalize_score(&mut s, false);
        assert_eq!(s, [0, 50, 100]);
        let mut s = [0, 5, 10];
        default_normalize_score(&mut s, true);
        assert_eq!(s, [100, 50, 0]);
        let mut s = [0, 0];
        default_normalize_score(&mut s, true);
        assert_eq!(s, [100, 100]);
        let mut s = [0, 0];
        default_normalize_score(&mut s, false);
        assert_eq!(s, [0, 0]);
    }

    #[test]
    fn cycle_state_round_trips_and_clones() {
        #[derive(Clone, Debug, PartialEq)]
        struct Counts(Vec<u32>);
        let mut st = CycleState::new();
        st.write("a", Counts(vec![1]));
        let copy = st.clone();
        st.read_mut::<Counts>("a").unwrap().0.push(2);
        assert_eq!(st.read::<Counts>("a"), Some(&Counts(vec![1, 2])));
        assert_eq!(copy.read::<Counts>("a"), Some(&Counts(vec![1])));
        assert!(st.read::<u32>("a").is_none(), "wrong type");
        assert!(st.read::<Counts>("b").is_none());
        // A key equal in value but stored elsewhere finds the same entry; writing replaces.
        let key: &'static str = String::from("a").leak();
        st.write(key, Counts(vec![9]));
        assert_eq!(st.read::<Counts>("a"), Some(&Counts(vec![9])));
        st.write("b", 5u32);
        assert_eq!(st.read::<u32>("b"), Some(&5));
        st.clear();
        assert!(st.read::<Counts>("a").is_none());
    }
}
