//! Which pods a ReplicaSet deletes first when it scales down (`ActivePodsWithRanks` in
//! Kubernetes' controller_utils): unscheduled before scheduled, Pending before Unknown before
//! Running, not ready before ready, lower `controller.kubernetes.io/pod-deletion-cost` first,
//! pods doubled up on a node with other pods of the same Deployment first, then ready for less
//! time before ready for longer (compared on a logarithmic scale), more container restarts
//! before fewer, and newer before older.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use crate::podutil::{is_active, is_ready, max_restarts, node_name, phase, ready_since};

/// The annotation that orders pods for deletion (lower goes first).
pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

fn phase_ordinal(pod: &Pod) -> u8 {
    match phase(pod) {
        "Pending" | "" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 3,
    }
}

fn deletion_cost(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(POD_DELETION_COST))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// floor(log2(now - t)) in nanoseconds, or -1 for times not in the past.
fn log_rank(t: jiff::Timestamp, now: jiff::Timestamp) -> i64 {
    let d = now.as_nanosecond() - t.as_nanosecond();
    if d > 0 { (d as f64).log2() as i64 } else { -1 }
}

/// Compares two times "newer first": empty first, then the later one; with `now`, times in the
/// same power-of-two age bucket are equal (LogarithmicScaleDown).
fn newer_first(
    a: Option<jiff::Timestamp>,
    b: Option<jiff::Timestamp>,
    now: jiff::Timestamp,
) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => {
            if a == b {
                return Ordering::Equal;
            }
            // A smaller age rank (younger) sorts first.
            log_rank(a, now).cmp(&log_rank(b, now))
        }
    }
}

fn created(pod: &Pod) -> Option<jiff::Timestamp> {
    pod.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// The order in which pods are deleted: `Less` means `a` goes before `b`.
pub fn deletion_order(
    a: &Pod,
    rank_a: usize,
    b: &Pod,
    rank_b: usize,
    now: jiff::Timestamp,
) -> Ordering {
    // 1. Unassigned < assigned.
    let (na, nb) = (node_name(a), node_name(b));
    if na != nb && (na.is_empty() || nb.is_empty()) {
        return if na.is_empty() {
            Ordering::Less
        } else {
            Ordering::Greater
        };
    }
    // 2. Pending < Unknown < Running.
    let o = phase_ordinal(a).cmp(&phase_ordinal(b));
    if o != Ordering::Equal {
        return o;
    }
    // 3. Not ready < ready.
    let (ra, rb) = (is_ready(a), is_ready(b));
    if ra != rb {
        return if ra {
            Ordering::Greater
        } else {
            Ordering::Less
        };
    }
    // 4. Lower deletion cost < higher.
    let o = deletion_cost(a).cmp(&deletion_cost(b));
    if o != Ordering::Equal {
        return o;
    }
    // 5. Doubled up (more related pods on the node) < not doubled up.
    if rank_a != rank_b {
        return rank_b.cmp(&rank_a);
    }
    // 6. Ready for less time < ready for longer.
    if ra && rb {
        let o = newer_first(ready_since(a), ready_since(b), now);
        if o != Ordering::Equal {
            return o;
        }
    }
    // 7. More restarts < fewer restarts.
    let o = max_restarts(b).cmp(&max_restarts(a));
    if o != Ordering::Equal {
        return o;
    }
    // 8. Newer < older.
    let o = newer_first(created(a), created(b), now);
    if o != Ordering::Equal {
        return o;
    }
    // 9. Break ties by UID.
    a.metadata.uid.cmp(&b.metadata.uid)
}

/// Picks `n` pods of `pods` to delete, ranking each by how many active `related` pods (pods of
/// all ReplicaSets with the same controller) share its node.
pub fn pods_to_delete(
    pods: &[Arc<Pod>],
    related: &[Arc<Pod>],
    n: usize,
    now: jiff::Timestamp,
) -> Vec<Arc<Pod>> {
    if n >= pods.len() {
        return pods.to_vec();
    }
    let mut on_node: HashMap<&str, usize> = HashMap::new();
    for p in related.iter().filter(|p| is_active(p)) {
        *on_node.entry(node_name(p)).or_default() += 1;
    }
    let mut ranked: Vec<(usize, &Arc<Pod>)> = pods
        .iter()
        .map(|p| (on_node.get(node_name(p)).copied().unwrap_or(0), p))
        .collect();
    ranked.sort_by(|(ra, a), (rb, b)| deletion_order(a, *ra, b, *rb, now));
    ranked.into_iter().take(n).map(|(_, p)| p.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerStatus, PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use std::collections::BTreeMap;

    const NOW: i64 = 1_700_000_000;

    fn ts(secs_ago: i64) -> Time {
        Time(jiff::Timestamp::from_second(NOW - secs_ago).unwrap())
    }

    #[derive(Default)]
    struct P {
        name: &'static str,
        node: &'static str,
        phase: &'static str,
        ready_secs_ago: Option<i64>,
        created_secs_ago: i64,
        restarts: i32,
        cost: Option<i32>,
    }

    fn pod(p: P) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(p.name.into()),
                uid: Some(p.name.into()),
                creation_timestamp: Some(ts(p.created_secs_ago)),
                annotations: p
                    .cost
                    .map(|c| BTreeMap::from([(POD_DELETION_COST.to_string(), c.to_string())])),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: (!p.node.is_empty()).then(|| p.node.into()),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(p.phase.into()),
                conditions: p.ready_secs_ago.map(|ago| {
                    vec![PodCondition {
                        type_: "Ready".into(),
                        status: "True".into(),
                        last_transition_time: Some(ts(ago)),
                        ..Default::default()
                    }]
                }),
                container_statuses: Some(vec![ContainerStatus {
                    restart_count: p.restarts,
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        })
    }

    fn order(pods: &[Arc<Pod>], related: &[Arc<Pod>]) -> Vec<String> {
        let now = jiff::Timestamp::from_second(NOW).unwrap();
        pods_to_delete(pods, related, pods.len() - 1, now)
            .iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect()
    }

    /// Each row: pods in an order that is NOT the deletion order; the expected names in
    /// deletion order (all but the last pod kept).
    #[test]
    fn ranking_follows_kubernetes() {
        let running_ready = |name, node, ready_ago, created_ago| P {
            name,
            node,
            phase: "Running",
            ready_secs_ago: Some(ready_ago),
            created_secs_ago: created_ago,
            ..Default::default()
        };
        type Case = (&'static str, Vec<Arc<Pod>>, Vec<&'static str>);
        let cases: Vec<Case> = vec![
            (
                "unscheduled before scheduled",
                vec![
                    pod(running_ready("scheduled", "n1", 100, 100)),
                    pod(P {
                        name: "unscheduled",
                        phase: "Pending",
                        ..Default::default()
                    }),
                    pod(running_ready("keep", "n1", 1000, 1000)),
                ],
                vec!["unscheduled", "scheduled"],
            ),
            (
                "pending before unknown before running",
                vec![
                    pod(running_ready("keep", "n1", 100, 100)),
                    pod(P {
                        name: "running-unready",
                        node: "n1",
                        phase: "Running",
                        ..Default::default()
                    }),
                    pod(P {
                        name: "unknown",
                        node: "n1",
                        phase: "Unknown",
                        ..Default::default()
                    }),
                    pod(P {
                        name: "pending",
                        node: "n1",
                        phase: "Pending",
                        ..Default::default()
                    }),
                ],
                vec!["pending", "unknown", "running-unready"],
            ),
            (
                "not ready before ready",
                vec![
                    pod(running_ready("ready", "n1", 10, 10)),
                    pod(P {
                        name: "unready",
                        node: "n1",
                        phase: "Running",
                        created_secs_ago: 5000,
                        ..Default::default()
                    }),
                    pod(running_ready("keep", "n1", 5000, 5000)),
                ],
                vec!["unready", "ready"],
            ),
            (
                "lower deletion cost first",
                vec![
                    pod(P {
                        cost: Some(100),
                        ..running_ready("expensive", "n1", 10, 10)
                    }),
                    pod(P {
                        cost: Some(-5),
                        ..running_ready("cheap", "n1", 5000, 5000)
                    }),
                    pod(P {
                        cost: Some(1000),
                        ..running_ready("keep", "n1", 10, 10)
                    }),
                ],
                vec!["cheap", "expensive"],
            ),
            (
                "ready for less time first (log scale), then more restarts, then newer",
                vec![
                    pod(running_ready("old", "n1", 100_000, 100_000)),
                    pod(running_ready("young", "n1", 10, 10)),
                    pod(P {
                        restarts: 5,
                        ..running_ready("restarts", "n1", 100_000, 100_000)
                    }),
                    pod(running_ready("keep", "n1", 1_000_000, 1_000_000)),
                ],
                vec!["young", "restarts", "old"],
            ),
        ];
        for (what, pods, want) in cases {
            assert_eq!(order(&pods, &[]), want, "{what}");
        }
    }

    #[test]
    fn doubled_up_pods_go_first() {
        let a = pod(P {
            name: "a",
            node: "busy",
            phase: "Running",
            ready_secs_ago: Some(100),
            created_secs_ago: 100,
            ..Default::default()
        });
        let b = pod(P {
            name: "b",
            node: "quiet",
            phase: "Running",
            ready_secs_ago: Some(100),
            created_secs_ago: 100,
            ..Default::default()
        });
        let other = pod(P {
            name: "other-rs",
            node: "busy",
            phase: "Running",
            ..Default::default()
        });
        let pods = vec![b.clone(), a.clone()];
        let related = vec![a, b, other];
        assert_eq!(order(&pods, &related), vec!["a"]);
        // Without related pods, equal ranks fall through to the UID.
        assert_eq!(order(&pods, &[]), vec!["a"]);
        let n = jiff::Timestamp::from_second(NOW).unwrap();
        assert_eq!(
            pods_to_delete(&pods, &[], 5, n).len(),
            2,
            "asking for more returns all"
        );
    }

    #[test]
    fn ready_times_in_the_same_power_of_two_bucket_tie() {
        let now = jiff::Timestamp::from_second(NOW).unwrap();
        // 1000 s and 1050 s ago are both in [2^39, 2^40) ns; restarts decide.
        let a = pod(P {
            name: "a",
            node: "n",
            phase: "Running",
            ready_secs_ago: Some(1000),
            created_secs_ago: 1000,
            ..Default::default()
        });
        let b = pod(P {
            name: "b",
            node: "n",
            phase: "Running",
            ready_secs_ago: Some(1050),
            created_secs_ago: 1050,
            restarts: 1,
            ..Default::default()
        });
        assert_eq!(deletion_order(&b, 0, &a, 0, now), Ordering::Less);
    }
}
