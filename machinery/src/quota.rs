//! ResourceQuota usage: what one object counts against a quota's `hard` limits, as
//! Kubernetes' quota evaluators count it — shared by the API server's ResourceQuota admission
//! (which charges a create against the quota) and the controller manager's
//! resourcequota-controller (which sums a namespace's objects into `status.used`).
//!
//! Every object counts `count/<resource>[.<group>]`; pods, services, configmaps, secrets,
//! persistentvolumeclaims, replicationcontrollers and resourcequotas also count under their
//! bare name (`pods: 10`). A pod that is not terminal (nor being deleted) counts its compute
//! requests and limits — `requests.cpu` (and the bare `cpu`), `requests.memory` (`memory`),
//! `limits.cpu`, `limits.memory`, the ephemeral storage and extended resources alike — as the
//! larger of its containers' sum and any one init container, plus its overhead. A claim counts
//! `requests.storage` and the same per storage class
//! (`<class>.storageclass.storage.k8s.io/requests.storage`); a service counts
//! `services.nodeports` and `services.loadbalancers`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::quantity::Quantity;

/// Quota resource name → amount.
pub type Usage = BTreeMap<String, Quantity>;

/// The count key of a resource: `count/pods`, `count/deployments.apps`.
pub fn count_key(group: &str, resource: &str) -> String {
    if group.is_empty() {
        format!("count/{resource}")
    } else {
        format!("count/{resource}.{group}")
    }
}

/// Core resources quotas also count under their bare name.
const LEGACY_COUNTED: &[&str] = &[
    "pods",
    "services",
    "configmaps",
    "secrets",
    "persistentvolumeclaims",
    "replicationcontrollers",
    "resourcequotas",
];

fn one() -> Quantity {
    Quantity::new(1, crate::quantity::Format::DecimalSI)
}

/// Adds `q` to `usage[key]`.
pub fn add(usage: &mut Usage, key: String, q: &Quantity) {
    let entry = usage.entry(key).or_insert_with(Quantity::zero);
    if let Ok(sum) = entry.checked_add(q) {
        *entry = sum;
    }
}

/// Whether a pod no longer uses resources: Succeeded, Failed, or deleted (the kubelet is
/// stopping it).
pub fn pod_is_done(pod: &Value) -> bool {
    let phase = pod.pointer("/status/phase").and_then(Value::as_str);
    matches!(phase, Some("Succeeded" | "Failed"))
        || pod
            .pointer("/metadata/deletionTimestamp")
            .is_some_and(|t| !t.is_null())
}

/// A pod's effective requests or limits (`kind` is `requests` or `limits`): the sum over its
/// containers, at least any one init container's, plus its overhead.
fn pod_resources(pod: &Value, kind: &str) -> Usage {
    let pointer = format!("/resources/{kind}");
    let containers = |field: &str| {
        pod.pointer(field)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| amounts(c, &pointer))
            .collect::<Vec<_>>()
    };
    let mut sum = Usage::new();
    for (k, q) in containers("/spec/containers").into_iter().flatten() {
        add(&mut sum, k, &q);
    }
    for (k, q) in containers("/spec/initContainers").into_iter().flatten() {
        let e = sum.entry(k).or_insert_with(Quantity::zero);
        if q > *e {
            *e = q;
        }
    }
    for (k, q) in amounts(pod, "/spec/overhead") {
        add(&mut sum, k, &q);
    }
    sum
}

/// What an object of `group`/`resource` counts against quotas.
pub fn usage(group: &str, resource: &str, obj: &Value) -> Usage {
    let mut usage = Usage::new();
    if group.is_empty() && resource == "pods" && pod_is_done(obj) {
        return usage;
    }
    usage.insert(count_key(group, resource), one());
    if !group.is_empty() {
        return usage;
    }
    if LEGACY_COUNTED.contains(&resource) {
        usage.insert(resource.to_string(), one());
    }
    match resource {
        "pods" => {
            for (name, q) in pod_resources(obj, "requests") {
                if name == "cpu" || name == "memory" {
                    add(&mut usage, name.clone(), &q);
                }
                add(&mut usage, format!("requests.{name}"), &q);
            }
            for (name, q) in pod_resources(obj, "limits") {
                add(&mut usage, format!("limits.{name}"), &q);
            }
        }
        "persistentvolumeclaims" => {
            let storage = obj
                .pointer("/spec/resources/requests/storage")
                .and_then(Value::as_str)
                .and_then(|s| Quantity::parse(s.trim()).ok());
            let class = obj
                .pointer("/spec/storageClassName")
                .and_then(Value::as_str)
                .filter(|c| !c.is_empty());
            if let Some(q) = &storage {
                add(&mut usage, "requests.storage".into(), q);
            }
            if let Some(class) = class {
                let prefix = format!("{class}.storageclass.storage.k8s.io");
                usage.insert(format!("{prefix}/persistentvolumeclaims"), one());
                if let Some(q) = &storage {
                    add(&mut usage, format!("{prefix}/requests.storage"), q);
                }
            }
        }
        "services" => {
            let type_ = obj
                .pointer("/spec/type")
                .and_then(Value::as_str)
                .unwrap_or("ClusterIP");
            if matches!(type_, "NodePort" | "LoadBalancer") {
                let ports = obj
                    .pointer("/spec/ports")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                usage.insert(
                    "services.nodeports".into(),
                    Quantity::new(
                        i64::try_from(ports).unwrap_or(i64::MAX),
                        crate::quantity::Format::DecimalSI,
                    ),
                );
            }
            if type_ == "LoadBalancer" {
                usage.insert("services.loadbalancers".into(), one());
            }
        }
        _ => {}
    }
    usage
}

/// Whether a pod is in each quota scope (`BestEffort`, `NotBestEffort`, `Terminating`,
/// `NotTerminating`); other objects match only scope-less quotas.
pub fn matches_scopes(scopes: &[String], resource: &str, obj: &Value) -> bool {
    if scopes.is_empty() {
        return true;
    }
    if resource != "pods" {
        return false;
    }
    let best_effort =
        pod_resources(obj, "requests").is_empty() && pod_resources(obj, "limits").is_empty();
    let terminating = obj
        .pointer("/spec/activeDeadlineSeconds")
        .is_some_and(|v| !v.is_null());
    scopes.iter().all(|s| match s.as_str() {
        "BestEffort" => best_effort,
        "NotBestEffort" => !best_effort,
        "Terminating" => terminating,
        "NotTerminating" => !terminating,
        _ => false,
    })
}

/// The compute resources a quota limits that some container of a pod does not declare:
/// (quota resource, container names). Kubernetes refuses such pods ("must specify").
pub fn undeclared(hard: &BTreeSet<String>, pod: &Value) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for key in hard {
        let (kind, name) = match key.as_str() {
            "cpu" | "memory" => ("requests", key.as_str()),
            k => match k.split_once('.') {
                Some(("requests", n)) if matches!(n, "cpu" | "memory") => ("requests", n),
                Some(("limits", n)) if matches!(n, "cpu" | "memory") => ("limits", n),
                _ => continue,
            },
        };
        let pointer = format!("/resources/{kind}/{name}");
        let missing: Vec<String> = pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|c| c.pointer(&pointer).is_none())
            .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_owned))
            .collect();
        if !missing.is_empty() {
            out.push((key.clone(), missing));
        }
    }
    out
}

/// `a=1,b=2` of the given keys of a usage, as Kubernetes prints quota amounts.
pub fn pretty(usage: &Usage, keys: &[String]) -> String {
    keys.iter()
        .map(|k| {
            let q = usage.get(k).cloned().unwrap_or_else(Quantity::zero);
            format!("{k}={q}")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A `hard` or `used` map of a quota's JSON (`spec.hard`, `status.used`).
pub fn amounts(obj: &Value, pointer: &str) -> Usage {
    obj.pointer(pointer)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), Quantity::parse(v.as_str()?.trim()).ok()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// A usage as the JSON map of a quota's `status.used`.
pub fn to_json(usage: &Usage) -> Value {
    Value::Object(
        usage
            .iter()
            .map(|(k, q)| (k.clone(), Value::String(q.to_string())))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap()
    }

    #[test]
    fn a_pod_counts_its_requests_limits_and_itself() {
        let pod = json!({
            "metadata": {"name": "p"},
            "spec": {
                "containers": [
                    {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                                                "limits": {"cpu": "200m"}}},
                    {"name": "b", "resources": {"requests": {"cpu": "250m"}}}
                ],
                "initContainers": [
                    {"name": "init", "resources": {"requests": {"cpu": "1", "memory": "8Mi"}}}
                ]
            }
        });
        let u = usage("", "pods", &pod);
        assert_eq!(u["pods"], q("1"));
        assert_eq!(u["count/pods"], q("1"));
        assert_eq!(
            u["requests.cpu"],
            q("1"),
            "the init container's larger request"
        );
        assert_eq!(u["cpu"], q("1"));
        assert_eq!(u["requests.memory"], q("64Mi"));
        assert_eq!(u["limits.cpu"], q("200m"));
        assert!(!u.contains_key("limits.memory"));

        let done = json!({"spec": {"containers": []}, "status": {"phase": "Succeeded"}});
        assert!(usage("", "pods", &done).is_empty());
    }

    #[test]
    fn claims_services_and_other_kinds() {
        let pvc = json!({"spec": {"storageClassName": "fast",
                                  "resources": {"requests": {"storage": "1Gi"}}}});
        let u = usage("", "persistentvolumeclaims", &pvc);
        assert_eq!(u["persistentvolumeclaims"], q("1"));
        assert_eq!(u["requests.storage"], q("1Gi"));
        assert_eq!(
            u["fast.storageclass.storage.k8s.io/requests.storage"],
            q("1Gi")
        );
        let svc = json!({"spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 443}]}});
        let u = usage("", "services", &svc);
        assert_eq!(u["services.nodeports"], q("2"));
        assert!(!u.contains_key("services.loadbalancers"));
        let u = usage("apps", "deployments", &json!({}));
        assert_eq!(u.keys().collect::<Vec<_>>(), ["count/deployments.apps"]);
    }

    #[test]
    fn scopes_and_undeclared_resources() {
        let best_effort = json!({"spec": {"containers": [{"name": "a"}]}});
        let burstable = json!({"spec": {"containers": [
            {"name": "a", "resources": {"requests": {"cpu": "1"}}}, {"name": "b"}]}});
        assert!(matches_scopes(&["BestEffort".into()], "pods", &best_effort));
        assert!(!matches_scopes(&["BestEffort".into()], "pods", &burstable));
        assert!(matches_scopes(
            &["NotTerminating".into()],
            "pods",
            &burstable
        ));
        assert!(!matches_scopes(
            &["BestEffort".into()],
            "services",
            &json!({})
        ));
        let hard: BTreeSet<String> = [
            "requests.cpu".to_string(),
            "limits.memory".to_string(),
            "pods".to_string(),
        ]
        .into();
        assert_eq!(
            undeclared(&hard, &burstable),
            [
                (
                    "limits.memory".to_string(),
                    vec!["a".to_string(), "b".to_string()]
                ),
                ("requests.cpu".to_string(), vec!["b".to_string()]),
            ]
        );
        let mut u = Usage::new();
        u.insert("pods".into(), q("2"));
        assert_eq!(
            pretty(&u, &["pods".into(), "requests.cpu".into()]),
            "pods=2,requests.cpu=0"
        );
    }
}
