//! A pod's resource requests and limits as kubectl's resource helper adds them up for
//! `describe node` (containers summed, init containers as a maximum, restartable init
//! containers — sidecars — added to both, pod overhead on top), and the percentages of the
//! node's allocatable it prints, computed the way Go's float arithmetic gives them.

use std::collections::BTreeMap;

use rkube_machinery::quantity::Quantity;
use serde_json::Value;

/// Resource name → quantity.
pub type ResourceList = BTreeMap<String, Quantity>;

/// The quantities of a `resources.requests`-like map (unparseable values are left out: the
/// server validated them).
pub fn resource_list(v: &Value) -> ResourceList {
    v.as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, q)| Some((k.clone(), Quantity::parse(q.as_str()?).ok()?)))
        .collect()
}

/// Adds `new` into `list` (a missing entry takes the new quantity as it is, keeping its text).
pub fn add(list: &mut ResourceList, new: &ResourceList) {
    for (name, q) in new {
        match list.get(name) {
            None => {
                list.insert(name.clone(), q.clone());
            }
            Some(cur) => {
                let sum = cur.checked_add(q).unwrap_or_else(|_| cur.clone());
                list.insert(name.clone(), sum);
            }
        }
    }
}

/// Raises each entry of `list` to the one in `new` where that is larger.
fn max(list: &mut ResourceList, new: &ResourceList) {
    for (name, q) in new {
        if list.get(name).is_none_or(|cur| q > cur) {
            list.insert(name.clone(), q.clone());
        }
    }
}

fn is_sidecar(c: &Value) -> bool {
    c["restartPolicy"].as_str() == Some("Always")
}

/// The pod's effective requests (`kind` = `requests`) or limits (`limits`).
pub fn pod_total(pod: &Value, kind: &str) -> ResourceList {
    let spec = &pod["spec"];
    let mut total = ResourceList::new();
    for c in spec["containers"].as_array().into_iter().flatten() {
        add(&mut total, &resource_list(&c["resources"][kind]));
    }
    let mut sidecars = ResourceList::new();
    let mut init = ResourceList::new();
    for c in spec["initContainers"].as_array().into_iter().flatten() {
        let own = resource_list(&c["resources"][kind]);
        let effective = if is_sidecar(c) {
            add(&mut total, &own);
            add(&mut sidecars, &own);
            sidecars.clone()
        } else {
            let mut tmp = ResourceList::new();
            add(&mut tmp, &own);
            add(&mut tmp, &sidecars);
            tmp
        };
        max(&mut init, &effective);
    }
    max(&mut total, &init);
    let overhead = resource_list(&spec["overhead"]);
    if kind == "requests" {
        add(&mut total, &overhead);
    } else {
        // Overhead only adds to limits that are set.
        for (name, q) in overhead {
            if let Some(cur) = total.get(&name) {
                let sum = cur.checked_add(&q).unwrap_or_else(|_| cur.clone());
                total.insert(name, sum);
            }
        }
    }
    total
}

/// `int64(float64(part) / float64(whole) * 100)` as Go computes it on amd64, where a
/// division by zero gives NaN or ±Inf and converting those yields `i64::MIN`.
pub fn go_percent(part: i64, whole: i64) -> i64 {
    let f = part as f64 / whole as f64 * 100.0;
    if f.is_finite() && f >= i64::MIN as f64 && f < i64::MAX as f64 {
        f as i64
    } else {
        i64::MIN
    }
}

/// A quantity's text, `0` for a missing one.
pub fn text(q: Option<&Quantity>) -> String {
    q.map(Quantity::to_k8s_string)
        .unwrap_or_else(|| "0".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(l: &ResourceList) -> Vec<(String, String)> {
        l.iter()
            .map(|(k, v)| (k.clone(), v.to_k8s_string()))
            .collect()
    }

    #[test]
    fn containers_add_and_init_containers_take_the_maximum() {
        let pod = json!({"spec": {
            "containers": [
                {"resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1"}}},
                {"resources": {"requests": {"cpu": "250m"}}}
            ],
            "initContainers": [
                {"resources": {"requests": {"cpu": "2", "memory": "1Mi"}}},
                {"restartPolicy": "Always", "resources": {"requests": {"memory": "16Mi"}}}
            ],
            "overhead": {"cpu": "10m", "memory": "1Mi"}
        }});
        // Containers: 350m, 64Mi; the sidecar adds 16Mi (80Mi); init max is 2 cpu (with the
        // sidecar's memory only after it), so cpu becomes 2; overhead adds 10m and 1Mi.
        assert_eq!(
            names(&pod_total(&pod, "requests")),
            [
                ("cpu".to_string(), "2010m".to_string()),
                ("memory".to_string(), "81Mi".to_string())
            ]
        );
        // Limits: overhead only where a limit is set.
        assert_eq!(
            names(&pod_total(&pod, "limits")),
            [("cpu".to_string(), "1010m".to_string())]
        );
        let none = json!({"spec": {"containers": [{"name": "c"}]}});
        assert!(pod_total(&none, "requests").is_empty());
    }

    #[test]
    fn percentages_follow_go() {
        assert_eq!(go_percent(250, 2000), 12);
        assert_eq!(go_percent(0, 0), i64::MIN);
        assert_eq!(go_percent(5, 0), i64::MIN);
        assert_eq!(text(None), "0");
    }
}
