//! ResourceQuotas (core/v1): the kind — validation and `kubectl get quota`'s columns — and
//! the ResourceQuota admission every create passes: the object's usage
//! ([`rkube_machinery::quota::usage`]) is checked against each quota of its namespace that
//! limits it, and charged to the quota's `status.used` with a compare-and-swap before the object
//! is stored, so concurrent creates cannot together pass a limit. A quota whose `status.hard`
//! the resourcequota-controller has not filled yet limits nothing (as in Kubernetes); the
//! controller also gives back what deleted objects used.

use std::collections::BTreeSet;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::ResourceQuota;
use rkube_machinery::quantity::Quantity;
use rkube_machinery::quota::{self, Usage};
use serde_json::Value;

use crate::error::{ApiError, FieldError};
use crate::registry::{Api, Column, Strategy, age, name};
use crate::resources::{self, ResourceDef};
use crate::storage::{KeyValue, ListOptions, ReadAt, StorageError};

/// Scopes a quota may have.
const SCOPES: &[&str] = &[
    "BestEffort",
    "NotBestEffort",
    "Terminating",
    "NotTerminating",
    "PriorityClass",
    "CrossNamespacePodAffinity",
];

/// Compare-and-swap attempts when charging a quota others are charging too.
const CHARGE_ATTEMPTS: usize = 10;

/// ResourceQuota behaviour.
pub struct ResourceQuotaStrategy;

#[async_trait]
impl Strategy<ResourceQuota> for ResourceQuotaStrategy {
    fn validate(&self, q: &ResourceQuota) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let spec = q.spec.clone().unwrap_or_default();
        for (k, v) in spec.hard.iter().flatten() {
            let path = format!("spec.hard[{k}]");
            match rkube_machinery::quantity::parse_quantity(v) {
                Err(e) => errs.push(FieldError::invalid(&path, &v.0, &e.to_string())),
                Ok(amount) if amount.signum() < 0 => errs.push(FieldError::invalid(
                    &path,
                    &v.0,
                    "must be greater than or equal to 0",
                )),
                Ok(_) => {}
            }
            let standard = !k.contains('/') && !k.contains('.');
            let known = matches!(
                k.as_str(),
                "pods"
                    | "services"
                    | "configmaps"
                    | "secrets"
                    | "persistentvolumeclaims"
                    | "replicationcontrollers"
                    | "resourcequotas"
                    | "cpu"
                    | "memory"
                    | "ephemeral-storage"
                    | "storage"
            );
            if standard && !known {
                errs.push(FieldError::invalid(
                    format!("spec.hard[{k}]"),
                    k,
                    "must be a standard resource type or fully qualified",
                ));
            }
        }
        for (i, s) in spec.scopes.iter().flatten().enumerate() {
            if !SCOPES.contains(&s.as_str()) {
                errs.push(FieldError::not_supported(
                    format!("spec.scopes[{i}]"),
                    s,
                    SCOPES,
                ));
            }
        }
        errs
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::NAME,
            Column::AGE,
            Column::new(
                "Request",
                "string",
                "Request represents a minimum amount of cpu/memory that a container may consume.",
            ),
            Column::new(
                "Limit",
                "string",
                "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.",
            ),
        ]
    }

    fn cells(&self, q: &ResourceQuota) -> Vec<Value> {
        let status = q.status.clone().unwrap_or_default();
        let hard = status.hard.unwrap_or_default();
        let used = status.used.unwrap_or_default();
        let (mut request, mut limit) = (Vec::new(), Vec::new());
        for (k, h) in &hard {
            let show = |v: &k8s_openapi::apimachinery::pkg::api::resource::Quantity| {
                Quantity::parse(v.0.trim()).map_or_else(|_| v.0.clone(), |q| q.to_string())
            };
            let u = used.get(k).map_or_else(|| "0".to_string(), show);
            let cell = format!("{k}: {u}/{}", show(h));
            if k.starts_with("limits.") {
                limit.push(cell);
            } else {
                request.push(cell);
            }
        }
        vec![
            Value::String(name(q)),
            age(q),
            Value::String(request.join(", ")),
            Value::String(limit.join(", ")),
        ]
    }
}

/// The 403 answer for `name` of `def`: `pods "x" is forbidden: <why>`.
fn forbidden(def: &ResourceDef, name: &str, why: &str) -> ApiError {
    ApiError::forbidden_object(def.group, def.resource, name, why)
}

fn storage_error(e: StorageError) -> ApiError {
    let def = &resources::RESOURCEQUOTAS;
    ApiError::from_storage(e, def.group, def.resource, "")
}

/// What one quota decides about a usage: nothing to charge, a refusal, or its new
/// `status.used`.
enum Decision {
    Unaffected,
    Refused(String),
    Charge(Usage),
}

fn decide(quota_obj: &Value, def: &ResourceDef, obj: &Value, usage: &Usage) -> Decision {
    let quota_name = quota_obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let scopes: Vec<String> = quota_obj
        .pointer("/spec/scopes")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if !quota::matches_scopes(&scopes, def.resource, obj) {
        return Decision::Unaffected;
    }
    let hard = quota::amounts(quota_obj, "/status/hard");
    let hard_keys: BTreeSet<String> = hard.keys().cloned().collect();
    if def.group.is_empty() && def.resource == "pods" {
        let missing = quota::undeclared(&hard_keys, obj);
        if !missing.is_empty() {
            let what: Vec<String> = missing
                .iter()
                .map(|(r, containers)| format!("{r} for: {}", containers.join(",")))
                .collect();
            return Decision::Refused(format!(
                "failed quota: {quota_name}: must specify {}",
                what.join("; ")
            ));
        }
    }
    let relevant: Vec<String> = usage
        .keys()
        .filter(|k| hard_keys.contains(*k))
        .cloned()
        .collect();
    if relevant.is_empty() {
        return Decision::Unaffected;
    }
    let used = quota::amounts(quota_obj, "/status/used");
    if let Some(unknown) = relevant.iter().find(|k| !used.contains_key(*k)) {
        return Decision::Refused(format!(
            "status unknown for quota: {quota_name}, resource: {unknown}"
        ));
    }
    let mut next = used.clone();
    let mut exceeded = Vec::new();
    for k in &relevant {
        let sum = used[k]
            .checked_add(&usage[k])
            .unwrap_or_else(|_| usage[k].clone());
        if sum > hard[k] {
            exceeded.push(k.clone());
        }
        next.insert(k.clone(), sum);
    }
    if !exceeded.is_empty() {
        return Decision::Refused(format!(
            "exceeded quota: {quota_name}, requested: {}, used: {}, limited: {}",
            quota::pretty(usage, &exceeded),
            quota::pretty(&used, &exceeded),
            quota::pretty(&hard, &exceeded),
        ));
    }
    Decision::Charge(next)
}

/// `quota_obj` with `status.used` set to `used`, encoded for storage.
fn with_used(mut quota_obj: Value, used: &Usage) -> Value {
    if let Some(m) = quota_obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    if let Some(root) = quota_obj.as_object_mut() {
        let status = root
            .entry("status")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(status) = status.as_object_mut() {
            status.insert("used".into(), quota::to_json(used));
        }
    }
    quota_obj
}

fn parse(kv: &KeyValue) -> Result<Value, ApiError> {
    serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::internal(format!("cannot decode resource quota {}: {e}", kv.key)))
}

/// ResourceQuota admission of a create of `obj` (of `def`): refuses it with 403 when a quota
/// of its namespace would be exceeded (or requires compute resources the pod does not
/// declare), else charges every quota that limits it. `dry_run` checks without charging.
///
/// The object is serialized (by `obj`) only when its namespace has quotas.
pub async fn charge(
    api: &Api,
    def: &ResourceDef,
    namespace: Option<&str>,
    obj: impl FnOnce() -> Value,
    dry_run: bool,
) -> Result<(), ApiError> {
    let Some(namespace) = namespace.filter(|_| def.namespaced) else {
        return Ok(());
    };
    let prefix = resources::RESOURCEQUOTAS.namespace_prefix(Some(namespace));
    let listed = api
        .store
        .list(
            &prefix,
            ListOptions {
                read_at: ReadAt::NotOlderThan(0),
                ..ListOptions::default()
            },
        )
        .await
        .map_err(storage_error)?;
    if listed.items.is_empty() {
        return Ok(());
    }
    let obj = &obj();
    let object_name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let usage = quota::usage(def.group, def.resource, obj);
    if usage.is_empty() {
        return Ok(());
    }
    // Decide on every quota first (nothing is charged when one refuses), then charge each with
    // a compare-and-swap, deciding again on the fresh quota when another write came first.
    let mut charges = Vec::new();
    for kv in &listed.items {
        let q = parse(kv)?;
        match decide(&q, def, obj, &usage) {
            Decision::Unaffected => {}
            Decision::Refused(why) => return Err(forbidden(def, object_name, &why)),
            Decision::Charge(used) => charges.push((kv.clone(), q, used)),
        }
    }
    if dry_run {
        return Ok(());
    }
    for (mut kv, mut q, mut used) in charges {
        let mut attempts = 0;
        loop {
            let bytes = serde_json::to_vec(&with_used(q, &used))
                .map_err(|e| ApiError::internal(e.to_string()))?;
            match api
                .store
                .update(&kv.key, kv.mod_revision, bytes.into())
                .await
            {
                Ok(_) => break,
                Err(StorageError::Conflict { .. }) if attempts < CHARGE_ATTEMPTS => {
                    attempts += 1;
                    let Some(fresh) = api.store.get(&kv.key).await.map_err(storage_error)? else {
                        break;
                    };
                    q = parse(&fresh)?;
                    kv = fresh;
                    match decide(&q, def, obj, &usage) {
                        Decision::Unaffected => break,
                        Decision::Refused(why) => {
                            return Err(forbidden(def, object_name, &why));
                        }
                        Decision::Charge(next) => used = next,
                    }
                }
                Err(StorageError::NotFound { .. }) => break,
                Err(e) => return Err(storage_error(e)),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn quota_obj(hard: Value, used: Value) -> Value {
        json!({"metadata": {"name": "q", "namespace": "ns"},
               "spec": {"hard": hard.clone()},
               "status": {"hard": hard, "used": used}})
    }

    #[test]
    fn a_create_within_the_quota_is_charged_and_one_beyond_it_refused() {
        let pod = json!({"metadata": {"name": "p", "namespace": "ns"},
                         "spec": {"containers": [{"name": "c", "resources": {
                             "requests": {"cpu": "500m"}}}]}});
        let usage = quota::usage("", "pods", &pod);
        let q = quota_obj(
            json!({"pods": "2", "requests.cpu": "1"}),
            json!({"pods": "1", "requests.cpu": "500m"}),
        );
        match decide(&q, &resources::PODS, &pod, &usage) {
            Decision::Charge(used) => {
                assert_eq!(used["pods"].to_string(), "2");
                assert_eq!(used["requests.cpu"].to_string(), "1");
            }
            _ => panic!("charged"),
        }
        let full = quota_obj(
            json!({"pods": "2", "requests.cpu": "1"}),
            json!({"pods": "2", "requests.cpu": "500m"}),
        );
        match decide(&full, &resources::PODS, &pod, &usage) {
            Decision::Refused(why) => assert_eq!(
                why,
                "exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2"
            ),
            _ => panic!("refused"),
        }
    }

    #[test]
    fn pods_must_declare_what_the_quota_limits_and_unsynced_quotas_limit_nothing() {
        let pod = json!({"metadata": {"name": "p", "namespace": "ns"},
                         "spec": {"containers": [{"name": "c"}]}});
        let usage = quota::usage("", "pods", &pod);
        let q = quota_obj(
            json!({"limits.memory": "1Gi"}),
            json!({"limits.memory": "0"}),
        );
        match decide(&q, &resources::PODS, &pod, &usage) {
            Decision::Refused(why) => {
                assert_eq!(why, "failed quota: q: must specify limits.memory for: c");
            }
            _ => panic!("refused"),
        }
        let fresh = json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "0"}}});
        assert!(matches!(
            decide(&fresh, &resources::PODS, &pod, &usage),
            Decision::Unaffected
        ));
        let configmap = json!({"metadata": {"name": "c", "namespace": "ns"}});
        let usage = quota::usage("", "configmaps", &configmap);
        let q = quota_obj(json!({"pods": "1"}), json!({"pods": "0"}));
        assert!(matches!(
            decide(&q, &resources::CONFIGMAPS, &configmap, &usage),
            Decision::Unaffected
        ));
    }
}
