//! The pure rules of node lifecycle (Kubernetes' node lifecycle and taint-eviction
//! controllers): which taints a node's conditions call for, whether a pod tolerates a node's
//! NoExecute taints and for how long, and the disruption state of a zone.

use k8s_openapi::api::core::v1::{Node, NodeCondition, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// `node.kubernetes.io/not-ready`: the node reports Ready=False.
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
/// `node.kubernetes.io/unreachable`: the node stopped reporting (Ready=Unknown).
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// `node.kubernetes.io/unschedulable`: `spec.unschedulable`.
pub const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

/// Condition types turned into NoSchedule taints when True, and their taint keys.
const PRESSURE: &[(&str, &str)] = &[
    ("MemoryPressure", "node.kubernetes.io/memory-pressure"),
    ("DiskPressure", "node.kubernetes.io/disk-pressure"),
    ("PIDPressure", "node.kubernetes.io/pid-pressure"),
    (
        "NetworkUnavailable",
        "node.kubernetes.io/network-unavailable",
    ),
];

/// The keys of the NoSchedule taints this controller owns.
fn managed_no_schedule(key: &str) -> bool {
    key == NOT_READY
        || key == UNREACHABLE
        || key == UNSCHEDULABLE
        || PRESSURE.iter().any(|(_, k)| *k == key)
}

/// A node's condition of a type.
pub fn condition<'a>(node: &'a Node, type_: &str) -> Option<&'a NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// The Ready condition's status ("True", "False", "Unknown"), "Unknown" when absent.
pub fn ready_status(node: &Node) -> &str {
    condition(node, "Ready")
        .map(|c| c.status.as_str())
        .unwrap_or("Unknown")
}

fn taint(key: &str, effect: &str, at: Option<Time>) -> Taint {
    Taint {
        key: key.into(),
        effect: effect.into(),
        value: None,
        time_added: at,
    }
}

/// The NoSchedule taints a node's conditions and `spec.unschedulable` call for
/// (`doNoScheduleTaintingPass`).
pub fn no_schedule_taints(node: &Node) -> Vec<Taint> {
    let mut out = Vec::new();
    match ready_status(node) {
        "False" => out.push(taint(NOT_READY, "NoSchedule", None)),
        "Unknown" => out.push(taint(UNREACHABLE, "NoSchedule", None)),
        _ => {}
    }
    for (cond, key) in PRESSURE {
        if condition(node, cond).is_some_and(|c| c.status == "True") {
            out.push(taint(key, "NoSchedule", None));
        }
    }
    if node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false)
    {
        out.push(taint(UNSCHEDULABLE, "NoSchedule", None));
    }
    out
}

/// The NoExecute taint the Ready condition calls for (`doNoExecuteTaintingPass`).
pub fn no_execute_key(node: &Node) -> Option<&'static str> {
    match ready_status(node) {
        "False" => Some(NOT_READY),
        "Unknown" => Some(UNREACHABLE),
        _ => None,
    }
}

/// The node's taints with the managed ones brought in line: NoSchedule taints as
/// [`no_schedule_taints`] says; the not-ready/unreachable NoExecute taint as `no_execute`
/// says (added only when `may_add_no_execute`, stamped `now`). `None` when nothing changes.
pub fn reconcile_taints(
    node: &Node,
    no_execute: Option<&str>,
    may_add_no_execute: bool,
    now: Time,
) -> Option<Vec<Taint>> {
    let current = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let mut next: Vec<Taint> = current
        .iter()
        .filter(|t| {
            let managed_ns = t.effect == "NoSchedule" && managed_no_schedule(&t.key);
            let managed_ne =
                t.effect == "NoExecute" && (t.key == NOT_READY || t.key == UNREACHABLE);
            !managed_ns && !managed_ne
        })
        .cloned()
        .collect();
    for t in no_schedule_taints(node) {
        // Keep an existing taint as it is.
        let kept = current
            .iter()
            .find(|c| c.key == t.key && c.effect == t.effect)
            .cloned();
        next.push(kept.unwrap_or(t));
    }
    if let Some(key) = no_execute {
        if let Some(existing) = current
            .iter()
            .find(|c| c.key == key && c.effect == "NoExecute")
        {
            next.push(existing.clone());
        } else if may_add_no_execute {
            next.push(taint(key, "NoExecute", Some(now)));
        } else if let Some(other) = current
            .iter()
            .find(|c| c.effect == "NoExecute" && (c.key == NOT_READY || c.key == UNREACHABLE))
        {
            // Not allowed to swap yet: keep what is there.
            next.push(other.clone());
        }
    }
    let key = |t: &Taint| (t.key.clone(), t.effect.clone());
    let mut a: Vec<_> = current.iter().map(key).collect();
    let mut b: Vec<_> = next.iter().map(key).collect();
    a.sort();
    b.sort();
    (a != b).then_some(next)
}

/// Whether a toleration tolerates a taint (`ToleratesTaint`).
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if t.effect
        .as_deref()
        .is_some_and(|e| !e.is_empty() && e != taint.effect)
    {
        return false;
    }
    if t.key
        .as_deref()
        .is_some_and(|k| !k.is_empty() && k != taint.key)
    {
        return false;
    }
    match t.operator.as_deref().unwrap_or("") {
        "" | "Equal" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        "Exists" => true,
        _ => false,
    }
}

/// When a pod must leave a node with these NoExecute taints.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Eviction {
    /// A taint is not tolerated.
    Untolerated,
    /// Every taint is tolerated, the shortest toleration lasting this many seconds.
    After(i64),
    /// Tolerated forever.
    Never,
}

/// The eviction of a pod with `tolerations` from a node with NoExecute `taints`
/// (`getMatchingTolerations` + `getMinTolerationTime`).
pub fn eviction(tolerations: &[Toleration], taints: &[Taint]) -> Eviction {
    if taints.is_empty() {
        return Eviction::Never;
    }
    let mut used = Vec::new();
    for taint in taints {
        match tolerations.iter().find(|t| tolerates(t, taint)) {
            Some(t) => used.push(t),
            None => return Eviction::Untolerated,
        }
    }
    let mut min: Option<i64> = None;
    for t in used {
        if let Some(s) = t.toleration_seconds {
            if s <= 0 {
                return Eviction::After(0);
            }
            min = Some(min.map_or(s, |m| m.min(s)));
        }
    }
    min.map_or(Eviction::Never, Eviction::After)
}

/// The health of a zone (`ComputeZoneState`).
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum ZoneState {
    /// Mostly healthy: evict at the normal rate.
    Normal,
    /// More than 2 and at least 55 % of the nodes not ready: evict slowly (large zones) or not.
    PartialDisruption,
    /// No node ready.
    FullDisruption,
}

/// The state of a zone whose nodes are ready (`true`) or not.
pub fn zone_state(ready: &[bool]) -> ZoneState {
    let up = ready.iter().filter(|r| **r).count();
    let down = ready.len() - up;
    if up == 0 && down > 0 {
        ZoneState::FullDisruption
    } else if down > 2 && down as f64 / ready.len() as f64 >= 0.55 {
        ZoneState::PartialDisruption
    } else {
        ZoneState::Normal
    }
}

/// A node's zone key (region and zone labels).
pub fn zone_of(node: &Node) -> String {
    let l = node.metadata.labels.as_ref();
    let get = |k: &str| l.and_then(|l| l.get(k)).cloned().unwrap_or_default();
    let region = get("topology.kubernetes.io/region");
    let zone = get("topology.kubernetes.io/zone");
    if region.is_empty() && zone.is_empty() {
        String::new()
    } else {
        format!("{region}:\x00:{zone}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeSpec, NodeStatus};

    fn node(ready: &str, extra: &[(&str, &str)], taints: Vec<Taint>) -> Node {
        let mut conds = vec![NodeCondition {
            type_: "Ready".into(),
            status: ready.into(),
            ..Default::default()
        }];
        for (t, s) in extra {
            conds.push(NodeCondition {
                type_: t.to_string(),
                status: s.to_string(),
                ..Default::default()
            });
        }
        Node {
            spec: Some(NodeSpec {
                taints: Some(taints),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                conditions: Some(conds),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn now() -> Time {
        Time(jiff::Timestamp::now())
    }

    fn keys(t: &[Taint]) -> Vec<(String, String)> {
        let mut v: Vec<_> = t
            .iter()
            .map(|t| (t.key.clone(), t.effect.clone()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn conditions_become_taints_and_go_away_again() {
        let n = node("Unknown", &[("MemoryPressure", "True")], vec![]);
        let t = reconcile_taints(&n, no_execute_key(&n), true, now()).unwrap();
        assert_eq!(
            keys(&t),
            vec![
                (
                    "node.kubernetes.io/memory-pressure".into(),
                    "NoSchedule".into()
                ),
                (UNREACHABLE.into(), "NoExecute".into()),
                (UNREACHABLE.into(), "NoSchedule".into()),
            ]
        );
        assert!(
            t.iter()
                .find(|t| t.effect == "NoExecute")
                .unwrap()
                .time_added
                .is_some()
        );
        // Not allowed to add the NoExecute taint yet (rate limit / full disruption).
        let t2 = reconcile_taints(&n, no_execute_key(&n), false, now()).unwrap();
        assert!(!t2.iter().any(|t| t.effect == "NoExecute"));
        // Back to Ready: managed taints are removed, others kept.
        let custom = Taint {
            key: "dedicated".into(),
            effect: "NoSchedule".into(),
            value: Some("db".into()),
            time_added: None,
        };
        let mut taints = t.clone();
        taints.push(custom.clone());
        let n = node("True", &[], taints);
        let t = reconcile_taints(&n, no_execute_key(&n), true, now()).unwrap();
        assert_eq!(t, vec![custom]);
        // Nothing to do: None.
        let n = node("True", &[], vec![]);
        assert_eq!(reconcile_taints(&n, None, true, now()), None);
        // not-ready replaces unreachable.
        let n = node(
            "False",
            &[],
            vec![taint(UNREACHABLE, "NoExecute", Some(now()))],
        );
        let t = reconcile_taints(&n, no_execute_key(&n), true, now()).unwrap();
        assert_eq!(
            keys(&t),
            vec![
                (NOT_READY.into(), "NoExecute".into()),
                (NOT_READY.into(), "NoSchedule".into())
            ]
        );
    }

    fn tol(key: Option<&str>, op: &str, effect: Option<&str>, secs: Option<i64>) -> Toleration {
        Toleration {
            key: key.map(String::from),
            operator: Some(op.into()),
            effect: effect.map(String::from),
            toleration_seconds: secs,
            value: None,
        }
    }

    #[test]
    fn tolerations_decide_when_pods_leave() {
        let unreachable = taint(UNREACHABLE, "NoExecute", None);
        let not_ready = taint(NOT_READY, "NoExecute", None);
        assert_eq!(
            eviction(&[], std::slice::from_ref(&unreachable)),
            Eviction::Untolerated
        );
        let t300 = tol(Some(UNREACHABLE), "Exists", Some("NoExecute"), Some(300));
        assert_eq!(
            eviction(
                std::slice::from_ref(&t300),
                std::slice::from_ref(&unreachable)
            ),
            Eviction::After(300)
        );
        assert_eq!(
            eviction(
                std::slice::from_ref(&t300),
                std::slice::from_ref(&not_ready)
            ),
            Eviction::Untolerated
        );
        let forever = tol(None, "Exists", None, None);
        assert_eq!(
            eviction(
                std::slice::from_ref(&forever),
                &[unreachable.clone(), not_ready.clone()]
            ),
            Eviction::Never
        );
        let short = tol(Some(NOT_READY), "Exists", Some("NoExecute"), Some(5));
        assert_eq!(
            eviction(&[t300.clone(), short], &[unreachable.clone(), not_ready]),
            Eviction::After(5)
        );
        assert!(!tolerates(
            &tol(Some(UNREACHABLE), "Exists", Some("NoSchedule"), None),
            &unreachable
        ));
        let eq = Toleration {
            key: Some("k".into()),
            operator: None,
            value: Some("v".into()),
            ..Default::default()
        };
        let kv = Taint {
            key: "k".into(),
            value: Some("v".into()),
            effect: "NoExecute".into(),
            time_added: None,
        };
        assert!(tolerates(&eq, &kv));
        assert_eq!(
            eviction(
                &[tol(Some(UNREACHABLE), "Exists", None, Some(0))],
                &[unreachable]
            ),
            Eviction::After(0)
        );
    }

    #[test]
    fn zone_states() {
        assert_eq!(zone_state(&[true, false]), ZoneState::Normal);
        assert_eq!(zone_state(&[false, false]), ZoneState::FullDisruption);
        assert_eq!(
            zone_state(&[true, false, false, false]),
            ZoneState::PartialDisruption
        );
        assert_eq!(
            zone_state(&[true, true, false, false, false, true, true]),
            ZoneState::Normal,
            "3 of 7 is under 55 %"
        );
        assert_eq!(zone_state(&[]), ZoneState::Normal);
    }
}
