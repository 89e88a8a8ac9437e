//! DefaultPreemption: when no node fits a pod, finds a node where evicting lower-priority pods
//! makes it fit, with the fewest and least important victims: on each node where preemption
//! can help, remove every lower-priority pod; if the pod then fits, add them back most
//! important first, keeping each one that still lets the pod fit. Among the candidate nodes
//! pick the one whose most important victim has the lowest priority, then the lowest sum of
//! victim priorities, then the fewest victims, then the most recently started victims. The
//! scheduler then evicts the victims and nominates the node (`status.nominatedNodeName`).

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;

use crate::cache::{NodeInfo, Snapshot};
use crate::config::ConfigError;
use crate::framework::registry::{Handle, decode_args};
use crate::framework::runtime::Framework;
use crate::framework::{
    Candidate, Code, CycleState, NodeStatuses, Plugin, PostFilterPlugin, PostFilterResult, Status,
};
use crate::pod_info::PodInfo;

/// The plugin's name.
pub const NAME: &str = "DefaultPreemption";
/// A node where removing pods does not make the pod fit.
pub const NO_VICTIMS: &str = "No preemption victims found for incoming pod";
/// A node that failed for a reason eviction cannot fix.
pub const NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";

/// `DefaultPreemptionArgs`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DefaultPreemptionArgs {
    /// Candidates to try, as a share of the nodes.
    #[serde(default = "ten")]
    pub min_candidate_nodes_percentage: i64,
    /// Candidates to try at least.
    #[serde(default = "hundred")]
    pub min_candidate_nodes_absolute: i64,
}

fn ten() -> i64 {
    10
}
fn hundred() -> i64 {
    100
}

impl Default for DefaultPreemptionArgs {
    fn default() -> Self {
        DefaultPreemptionArgs {
            min_candidate_nodes_percentage: 10,
            min_candidate_nodes_absolute: 100,
        }
    }
}

/// Preempts lower-priority pods.
#[derive(Default)]
pub struct DefaultPreemption {
    args: DefaultPreemptionArgs,
}

/// Builds the plugin from its args.
pub fn factory(args: &serde_json::Value, _h: &Handle) -> Result<Arc<dyn Plugin>, ConfigError> {
    let args: DefaultPreemptionArgs = decode_args(NAME, args)?;
    if !(0..=100).contains(&args.min_candidate_nodes_percentage)
        || args.min_candidate_nodes_absolute < 0
    {
        return Err(ConfigError::PluginArgs {
            plugin: NAME.into(),
            message: "minCandidateNodesPercentage must be in 0..100 and \
                      minCandidateNodesAbsolute at least 0"
                .into(),
        });
    }
    Ok(Arc::new(DefaultPreemption { args }))
}

impl Plugin for DefaultPreemption {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_post_filter(&self) -> Option<&dyn PostFilterPlugin> {
        Some(self)
    }
}

/// More important first: higher priority, then started earlier.
fn by_importance(a: &Arc<PodInfo>, b: &Arc<PodInfo>) -> std::cmp::Ordering {
    b.priority
        .cmp(&a.priority)
        .then(a.start_time.cmp(&b.start_time))
}

/// The victims on a node that let `pod` fit, fewest and least important first; `None` if no
/// eviction of lower-priority pods makes it fit.
pub fn select_victims(
    fwk: &Framework,
    state: &CycleState,
    pod: &PodInfo,
    node: &NodeInfo,
) -> Option<Vec<Arc<PodInfo>>> {
    let mut potential: Vec<Arc<PodInfo>> = node
        .pods
        .iter()
        .filter(|p| p.priority < pod.priority)
        .cloned()
        .collect();
    if potential.is_empty() {
        return None;
    }
    let (mut n, mut st) = fwk.without_pods(state, pod, node, &potential);
    if !fwk.fits(&st, pod, &n) {
        return None;
    }
    potential.sort_by(by_importance);
    let mut victims = Vec::new();
    for p in potential {
        n.add_pod(p.clone());
        fwk.update_state_for_pod(&mut st, pod, &p, &n, true);
        if !fwk.fits(&st, pod, &n) {
            n.remove_pod(&p.key);
            fwk.update_state_for_pod(&mut st, pod, &p, &n, false);
            victims.push(p);
        }
    }
    (!victims.is_empty()).then_some(victims)
}

/// Picks the best candidate (see the module doc).
pub fn pick_one(candidates: &[Candidate]) -> Option<&Candidate> {
    candidates.iter().min_by(|a, b| {
        let key = |c: &Candidate| {
            let highest = c.victims.first().map_or(i32::MIN, |v| v.priority);
            let sum: i64 = c
                .victims
                .iter()
                .map(|v| i64::from(v.priority) + i64::from(i32::MAX) + 1)
                .sum();
            // Start time of the earliest started among the most important victims; later is
            // better, so negate it.
            let earliest = c
                .victims
                .iter()
                .filter(|v| v.priority == highest)
                .map(|v| v.start_time)
                .min()
                .unwrap_or(0);
            (highest, sum, c.victims.len(), -earliest)
        };
        key(a).cmp(&key(b))
    })
}

fn message(total: usize, counts: &HashMap<&'static str, usize>) -> String {
    let mut parts: Vec<String> = counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
    parts.sort();
    format!(
        "preemption: 0/{total} nodes are available: {}.",
        parts.join(", ")
    )
}

impl PostFilterPlugin for DefaultPreemption {
    fn post_filter(
        &self,
        fwk: &Framework,
        state: &CycleState,
        pod: &PodInfo,
        snap: &Snapshot,
        statuses: &NodeStatuses,
    ) -> PostFilterResult {
        let unresolvable = |msg: &str| PostFilterResult {
            candidate: None,
            status: Status::unresolvable(msg),
        };
        if pod.spec().preemption_policy.as_deref() == Some("Never") {
            return unresolvable("preemption: not eligible due to preemptionPolicy=Never.");
        }
        if let Some(nominated) = pod.nominated_node_name.as_deref()
            && let Some(node) = snap.get(nominated)
            && statuses
                .get(nominated)
                .is_none_or(|s| s.code != Code::UnschedulableAndUnresolvable)
            && node
                .pods
                .iter()
                .any(|p| p.terminating && p.priority < pod.priority)
        {
            return unresolvable(
                "preemption: not eligible due to a terminating pod on the nominated node.",
            );
        }
        let total = snap.nodes().len();
        let mut counts: HashMap<&'static str, usize> = HashMap::new();
        let potential: Vec<&Arc<NodeInfo>> = snap
            .nodes()
            .iter()
            .filter(|n| {
                let helpful = statuses
                    .get(&n.name)
                    .is_none_or(|s| s.code != Code::UnschedulableAndUnresolvable);
                if !helpful {
                    *counts.entry(NOT_HELPFUL).or_default() += 1;
                }
                helpful
            })
            .collect();
        let want = ((total as i64 * self.args.min_candidate_nodes_percentage) / 100)
            .max(self.args.min_candidate_nodes_absolute)
            .max(1) as usize;
        let mut candidates = Vec::new();
        for node in &potential {
            if candidates.len() >= want {
                break;
            }
            match select_victims(fwk, state, pod, node) {
                Some(victims) => candidates.push(Candidate {
                    node: node.name.clone(),
                    victims,
                }),
                None => *counts.entry(NO_VICTIMS).or_default() += 1,
            }
        }
        match pick_one(&candidates) {
            Some(c) => PostFilterResult {
                candidate: Some(c.clone()),
                status: Status::success(),
            },
            None => PostFilterResult {
                candidate: None,
                status: Status::unschedulable(vec![message(total, &counts)]),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Profile;
    use crate::framework::registry::Registry;
    use crate::testing::{node, pod_info};

    fn fwk() -> Framework {
        Framework::new(
            &Profile::default(),
            &Registry::in_tree(),
            &Handle::default(),
            None,
            1,
        )
        .unwrap()
    }

    fn prio(name: &str, cpu: &str, priority: i32, node: Option<&str>, start: i64) -> Arc<PodInfo> {
        let node = node.map(String::from);
        let info = pod_info(name, cpu, "0", |s| {
            s.priority = Some(priority);
            s.node_name = node.clone();
        });
        let mut p = info.object().expect("pending").clone();
        p.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            jiff::Timestamp::from_second(start).unwrap(),
        ));
        Arc::new(PodInfo::new(Arc::new(p)))
    }

    fn run(nodes: &[(&str, &str)], pods: Vec<Arc<PodInfo>>, pod: &PodInfo) -> PostFilterResult {
        let fwk = fwk();
        let snap = Snapshot::from_nodes(
            nodes.iter().map(|(n, cpu)| node(n, cpu, "8Gi")).collect(),
            pods,
        );
        let mut state = CycleState::new();
        let mut ctx = crate::framework::runtime::CycleContext::new(1);
        let statuses = match fwk.schedule_pod(&mut state, pod, &snap, &mut ctx) {
            Err(crate::framework::runtime::ScheduleError::Fit(e)) => e.statuses,
            other => panic!("expected a fit error, got {other:?}"),
        };
        DefaultPreemption::default().post_filter(&fwk, &state, pod, &snap, &statuses)
    }

    #[test]
    fn evicts_the_fewest_lowest_priority_pods() {
        // n1: two low pods of 1 cpu each; n2: one mid pod of 2 cpu. The pod needs 2 cpu.
        let pods = vec![
            prio("low-a", "1", 1, Some("n1"), 100),
            prio("low-b", "1", 1, Some("n1"), 200),
            prio("mid", "2", 5, Some("n2"), 100),
        ];
        let p = prio("high", "2", 10, None, 300);
        let r = run(&[("n1", "2"), ("n2", "2")], pods, &p);
        let c = r.candidate.expect("a candidate");
        assert_eq!(c.node, "n1", "lowest highest-priority victim wins");
        let mut names: Vec<&str> = c.victims.iter().map(|v| v.name.as_str()).collect();
        names.sort();
        assert_eq!(names, ["low-a", "low-b"]);
    }

    #[test]
    fn keeps_victims_that_need_not_go() {
        // n1 (4 cpu): pods of 1, 1 and 2 cpu at priority 1; the pod needs 2 cpu: evicting the
        // 2-cpu pod alone suffices when it is the least important.
        let pods = vec![
            prio("a", "1", 3, Some("n1"), 100),
            prio("b", "1", 3, Some("n1"), 100),
            prio("c", "2", 1, Some("n1"), 100),
        ];
        let p = prio("high", "2", 10, None, 300);
        let r = run(&[("n1", "4")], pods, &p);
        let c = r.candidate.unwrap();
        assert_eq!(c.victims.len(), 1);
        assert_eq!(c.victims[0].name, "c");
    }

    #[test]
    fn no_victims_among_equal_or_higher_priority() {
        let pods = vec![prio("same", "2", 10, Some("n1"), 100)];
        let p = prio("high", "2", 10, None, 300);
        let r = run(&[("n1", "2")], pods, &p);
        assert!(r.candidate.is_none());
        assert_eq!(
            r.status.reasons,
            [
                "preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
            ]
        );
    }

    #[test]
    fn never_policy_does_not_preempt() {
        let pods = vec![prio("low", "2", 1, Some("n1"), 100)];
        let p = {
            let base = prio("high", "2", 10, None, 300);
            let mut pod = base.object().expect("pending").clone();
            pod.spec.as_mut().unwrap().preemption_policy = Some("Never".into());
            PodInfo::new(Arc::new(pod))
        };
        let r = run(&[("n1", "2")], pods, &p);
        assert!(r.candidate.is_none());
        assert_eq!(r.status.code, Code::UnschedulableAndUnresolvable);
    }

    #[test]
    fn pick_one_prefers_later_started_victims_on_ties() {
        let early = Candidate {
            node: "early".into(),
            victims: vec![prio("e", "1", 1, Some("early"), 100)],
        };
        let late = Candidate {
            node: "late".into(),
            victims: vec![prio("l", "1", 1, Some("late"), 500)],
        };
        let fewer = Candidate {
            node: "two".into(),
            victims: vec![
                prio("x", "1", 0, Some("two"), 100),
                prio("y", "1", 0, Some("two"), 100),
            ],
        };
        assert_eq!(
            pick_one(&[early.clone(), late.clone()]).unwrap().node,
            "late"
        );
        assert_eq!(
            pick_one(&[early, late, fewer]).unwrap().node,
            "two",
            "lower priority first"
        );
    }
}
