//! The `pods/eviction` subresource: a delete that respects PodDisruptionBudgets, as Kubernetes'
//! eviction REST does.
//!
//! - A pod that is Pending, Succeeded or Failed, or already being deleted, is deleted at once:
//!   evicting it disrupts nothing (a Pending one with its resourceVersion as precondition, so
//!   it cannot become ready in between).
//! - Otherwise the budgets of the pod's namespace whose selector selects it are found. More
//!   than one: `500` ("…more than one PodDisruptionBudget…"), nothing deleted.
//! - With one budget, an unready pod may go without spending the budget when the budget's
//!   `unhealthyPodEvictionPolicy` is `AlwaysAllow`, or (`IfHealthyBudget`, the default) when
//!   the budget is met (`currentHealthy ≥ desiredHealthy > 0`); it is then deleted with its
//!   resourceVersion as precondition (a conflict answers `429`: it may have become ready).
//! - Else the budget is checked and spent in one compare-and-swap of its status (retried on
//!   conflicts against the fresh status): a status not yet computed for the budget's
//!   generation, or no disruption left, answers `429 TooManyRequests` with a `DisruptionBudget`
//!   cause; otherwise `disruptionsAllowed` goes down by one and the pod is recorded in
//!   `disruptedPods`, so the disruption controller does not count it as healthy while its
//!   deletion is on the way.
//! - The pod then gets the `DisruptionTarget` condition and is deleted with the eviction's
//!   delete options.
//!
//! A dry run (`?dryRun=All` or `deleteOptions.dryRun`) checks the budget but changes neither the
//! budget nor the pod.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, StatusCause, StatusDetails, Time};
use rkube_machinery::selector::LabelSelector;
use serde_json::{Value, json};

use super::codec::with_resource_version;
use super::store::{DeleteOptions, KindOps, Sub, WriteOptions};
use super::{Api, meta};
use crate::error::ApiError;
use crate::resources::PODDISRUPTIONBUDGETS;
use crate::storage::ListOptions;

/// The most pods a budget's `disruptedPods` may hold before evictions are refused: that many
/// evictions were granted but not yet seen through by the disruption controller.
pub const MAX_DISRUPTED_POD_SIZE: usize = 2000;

/// How often a delete that lost a race (a changed pod) is tried again.
const RETRIES: usize = 20;

/// The pause before such a retry.
const RETRY_DELAY: Duration = Duration::from_millis(20);

/// The message of every budget refusal.
pub const REFUSED: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

/// The message when a pod has several budgets.
pub const MULTIPLE_BUDGETS: &str = "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.";

/// What an eviction answers besides errors.
#[derive(Debug, PartialEq)]
pub enum Answer {
    /// The pod was deleted (or its graceful deletion started): `201` with a success `Status`.
    Evicted,
    /// A `Status` Kubernetes returns as the eviction's result rather than as an error (the
    /// pod has several budgets), with its HTTP code.
    Status(u16, Value),
}

/// Succeeded, Failed or Pending, or being deleted: evicting it disrupts nothing
/// (`canIgnorePDB`).
pub fn can_ignore_budgets(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed" | "Pending")
        || pod.metadata.deletion_timestamp.is_some()
}

/// Whether the delete of a pod that may skip the budgets still needs its resourceVersion as
/// precondition: all but terminal and terminating pods, which cannot become ready again
/// (`shouldEnforceResourceVersion`).
pub fn pins_resource_version(pod: &Pod) -> bool {
    !matches!(phase(pod), "Succeeded" | "Failed") && pod.metadata.deletion_timestamp.is_none()
}

/// The pod's phase (`Pending` when not reported yet).
fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

/// Ready=True (`podutil.IsPodReady`).
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Whether the budget selects the pod: same namespace, and the selector matches its labels (a
/// missing or invalid selector matches nothing, an empty one every pod).
pub fn selects(pdb: &PodDisruptionBudget, pod: &Pod) -> bool {
    if pdb.metadata.namespace != pod.metadata.namespace {
        return false;
    }
    LabelSelector::from_k8s_opt(pdb.spec.as_ref().and_then(|s| s.selector.as_ref()))
        .is_ok_and(|sel| sel.matches_opt(pod.metadata.labels.as_ref()))
}

/// Whether an unready pod may be evicted without spending the budget: the budget's policy is
/// `AlwaysAllow`, or the budget is met (`currentHealthy ≥ desiredHealthy > 0`, the default
/// `IfHealthyBudget`). A ready pod always spends it.
pub fn unready_pod_may_go(pdb: &PodDisruptionBudget, pod: &Pod) -> bool {
    if is_ready(pod) {
        return false;
    }
    let policy = pdb
        .spec
        .as_ref()
        .and_then(|s| s.unhealthy_pod_eviction_policy.as_deref());
    if policy == Some("AlwaysAllow") {
        return true;
    }
    let st = pdb.status.clone().unwrap_or_default();
    st.current_healthy >= st.desired_healthy && st.desired_healthy > 0
}

/// `429 TooManyRequests` refusing the eviction, with a `DisruptionBudget` cause.
pub fn refused(cause: String, retry_after: u32) -> ApiError {
    ApiError {
        code: 429,
        reason: "TooManyRequests",
        message: REFUSED.into(),
        details: Some(Box::new(StatusDetails {
            causes: Some(vec![StatusCause {
                reason: Some("DisruptionBudget".into()),
                message: Some(cause),
                field: None,
            }]),
            retry_after_seconds: (retry_after > 0)
                .then(|| i32::try_from(retry_after).unwrap_or(i32::MAX)),
            ..Default::default()
        })),
        retry_after: (retry_after > 0).then_some(retry_after),
    }
}

/// The refusal while the budget's status does not reflect its spec yet.
fn still_processing(budget: &str) -> ApiError {
    refused(
        format!("The disruption budget {budget} is still being processed by the server."),
        10,
    )
}

/// `403 Forbidden` about a budget.
fn forbidden(budget: &str, why: &str) -> ApiError {
    let mut e = ApiError::forbidden(format!(
        "poddisruptionbudget.policy {budget:?} is forbidden: {why}"
    ));
    e.details = Some(Box::new(StatusDetails {
        group: Some("policy".into()),
        kind: Some("poddisruptionbudget".into()),
        name: Some(budget.to_string()),
        ..Default::default()
    }));
    e
}

/// Checks that the budget allows one more disruption and spends it (`checkAndDecrement`):
/// `disruptionsAllowed` goes down by one (the `DisruptionAllowed` condition turns False at
/// zero) and, unless `dry_run`, the pod is recorded in `disruptedPods` at `now`.
pub fn check_and_decrement(
    pdb: &mut PodDisruptionBudget,
    pod: &str,
    now: Time,
    dry_run: bool,
) -> Result<(), ApiError> {
    let name = pdb.metadata.name.clone().unwrap_or_default();
    let generation = pdb.metadata.generation.unwrap_or(0);
    let st = pdb.status.get_or_insert_with(Default::default);
    let observed = st.observed_generation.unwrap_or(0);
    if observed < generation {
        return Err(still_processing(&name));
    }
    if st.disruptions_allowed < 0 {
        return Err(forbidden(&name, "pdb disruptions allowed is negative"));
    }
    if st.disrupted_pods.as_ref().map_or(0, |d| d.len()) > MAX_DISRUPTED_POD_SIZE {
        return Err(forbidden(
            &name,
            "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
        ));
    }
    if st.disruptions_allowed == 0 {
        return Err(refused(
            format!(
                "The disruption budget {name} needs {} healthy pods and has {} currently",
                st.desired_healthy, st.current_healthy
            ),
            0,
        ));
    }
    st.disruptions_allowed -= 1;
    if st.disruptions_allowed == 0 {
        rkube_machinery::condition::set(
            st.conditions.get_or_insert_with(Vec::new),
            Condition {
                type_: "DisruptionAllowed".into(),
                status: "False".into(),
                reason: "InsufficientPods".into(),
                message: String::new(),
                observed_generation: (observed > 0).then_some(observed),
                last_transition_time: now.clone(),
            },
        );
    }
    if !dry_run {
        st.disrupted_pods
            .get_or_insert_with(Default::default)
            .insert(pod.to_string(), now);
    }
    Ok(())
}

/// The budgets of the pod's namespace that select it, as stored now.
async fn budgets_of(api: &Api, pod: &Pod) -> Result<Vec<PodDisruptionBudget>, ApiError> {
    let def = &PODDISRUPTIONBUDGETS;
    let listed = api
        .store
        .list(
            &def.namespace_prefix(pod.metadata.namespace.as_deref()),
            ListOptions::default(),
        )
        .await
        .map_err(|e| ApiError::from_storage(e, def.group, def.resource, ""))?;
    let mut out = Vec::new();
    for kv in listed.items {
        let pdb: PodDisruptionBudget =
            serde_json::from_slice(&with_resource_version(&kv.value, kv.mod_revision))
                .map_err(|e| ApiError::internal(format!("stored PodDisruptionBudget: {e}")))?;
        if selects(&pdb, pod) {
            out.push(pdb);
        }
    }
    Ok(out)
}

/// Spends one disruption of the budget `name` for `pod` in a compare-and-swap of its status,
/// decided again on the fresh status after every conflict.
async fn spend(api: &Api, ns: &str, name: &str, pod: &str) -> Result<(), ApiError> {
    let def = &PODDISRUPTIONBUDGETS;
    let kind = api
        .kind(def)
        .ok_or_else(|| ApiError::internal("PodDisruptionBudgets are not served"))?;
    let now = meta::now();
    let mutate = move |cur: &Value| -> Result<Value, ApiError> {
        if cur.is_null() {
            return Err(ApiError::not_found(def.group, def.resource, name));
        }
        let mut pdb: PodDisruptionBudget = serde_json::from_value(cur.clone())
            .map_err(|e| ApiError::internal(format!("stored PodDisruptionBudget: {e}")))?;
        check_and_decrement(&mut pdb, pod, now.clone(), false)?;
        let mut next =
            serde_json::to_value(&pdb).map_err(|e| ApiError::internal(format!("encode: {e}")))?;
        // No resourceVersion: a conflicting write makes the store decide again on the new
        // state rather than fail.
        if let Some(m) = next["metadata"].as_object_mut() {
            m.remove("resourceVersion");
        }
        Ok(next)
    };
    let opts = WriteOptions {
        field_manager: Some("kube-apiserver".into()),
        ..Default::default()
    };
    match kind
        .update(api, Some(ns), name, Sub::Status, &opts, &mutate)
        .await
    {
        Err(e) if e.code == 409 => {
            let mut e = ApiError::timeout(format!(
                "Timeout: couldn't update PodDisruptionBudget {name:?} due to conflicts"
            ));
            e.retry_after = Some(10);
            Err(e)
        }
        other => other.map(|_| ()),
    }
}

/// Marks the pod `DisruptionTarget` (unless a dry run) and deletes it with `del`
/// (`addConditionAndDeletePod`); the preconditions of `del` hold for both writes.
async fn mark_and_delete(
    api: &Api,
    pods: &dyn KindOps,
    ns: &str,
    name: &str,
    del: &DeleteOptions,
    opts: &WriteOptions,
) -> Result<(), ApiError> {
    let mut del = del.clone();
    if !del.dry_run {
        let now = meta::now();
        let uid = del.uid.clone().filter(|u| !u.is_empty());
        let rv = del.resource_version.clone().filter(|r| !r.is_empty());
        let mutate = move |cur: &Value| -> Result<Value, ApiError> {
            if cur.is_null() {
                return Err(ApiError::not_found("", "pods", name));
            }
            let stored_uid = cur["metadata"]["uid"].as_str().unwrap_or_default();
            if let Some(uid) = &uid
                && uid != stored_uid
            {
                return Err(ApiError::conflict(
                    "",
                    "Pod",
                    name,
                    &format!(
                        "the UID in the precondition ({uid}) does not match the UID in record ({stored_uid}). The object might have been deleted and then recreated"
                    ),
                ));
            }
            let stored_rv = cur["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default();
            if let Some(rv) = &rv
                && rv != stored_rv
            {
                return Err(ApiError::conflict(
                    "",
                    "Pod",
                    name,
                    &format!(
                        "the ResourceVersion in the precondition ({rv}) does not match the ResourceVersion in record ({stored_rv}). The object might have been modified"
                    ),
                ));
            }
            let mut next = cur.clone();
            if let Some(m) = next["metadata"].as_object_mut() {
                m.remove("resourceVersion");
            }
            let mut conditions = next["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let target = json!({
                "type": "DisruptionTarget", "status": "True",
                "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting",
            });
            match conditions
                .iter_mut()
                .find(|c| c["type"] == "DisruptionTarget")
            {
                Some(c) => {
                    let transition = if c["status"] == "True" {
                        c["lastTransitionTime"].clone()
                    } else {
                        json!(now)
                    };
                    *c = target;
                    c["lastTransitionTime"] = transition;
                }
                None => {
                    let mut c = target;
                    c["lastTransitionTime"] = json!(now);
                    conditions.push(c);
                }
            }
            next["status"]["conditions"] = Value::Array(conditions);
            Ok(next)
        };
        let status_opts = WriteOptions {
            dry_run: false,
            applied: false,
            ..opts.clone()
        };
        let written = pods
            .update(api, Some(ns), name, Sub::Status, &status_opts, &mutate)
            .await?;
        if del.resource_version.is_some() {
            // The condition is our own write: the precondition moves along with it.
            let v: Value = serde_json::from_slice(&written.body)
                .map_err(|e| ApiError::internal(format!("written pod: {e}")))?;
            del.resource_version = v["metadata"]["resourceVersion"]
                .as_str()
                .map(str::to_string);
        }
    }
    pods.delete(api, Some(ns), name, &del).await?;
    Ok(())
}

async fn read_pod(api: &Api, pods: &dyn KindOps, ns: &str, name: &str) -> Result<Pod, ApiError> {
    let raw = pods.get(api, Some(ns), name).await?;
    serde_json::from_slice(&raw).map_err(|e| ApiError::internal(format!("stored pod: {e}")))
}

/// Evicts the pod `ns/name` (`eviction` is the request's Eviction object, `del` its delete
/// options merged with the query's; `opts` are the request's write options).
pub async fn evict(
    api: &Api,
    pods: &dyn KindOps,
    ns: &str,
    name: &str,
    eviction: &Value,
    del: DeleteOptions,
    opts: &WriteOptions,
) -> Result<Answer, ApiError> {
    if eviction["metadata"]["name"].as_str().unwrap_or_default() != name {
        return Err(ApiError::bad_request(
            "name in URL does not match name in Eviction object",
        ));
    }
    let caller_pins = del.resource_version.is_some();
    // A pod whose eviction disrupts nothing is deleted; a lost race is tried again unless the
    // caller named the resourceVersion.
    let mut attempt = 0;
    let pod = loop {
        attempt += 1;
        let pod = read_pod(api, pods, ns, name).await?;
        if !can_ignore_budgets(&pod) {
            break pod;
        }
        let mut d = del.clone();
        if pins_resource_version(&pod) && !caller_pins {
            d.resource_version = pod.metadata.resource_version.clone();
        }
        match mark_and_delete(api, pods, ns, name, &d, opts).await {
            Ok(()) => return Ok(Answer::Evicted),
            Err(e) if e.code == 409 && !caller_pins && attempt < RETRIES => {
                tokio::time::sleep(RETRY_DELAY).await;
            }
            Err(e) => return Err(e),
        }
    };
    let budgets = budgets_of(api, &pod).await?;
    if budgets.len() > 1 {
        return Ok(Answer::Status(
            500,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": MULTIPLE_BUDGETS, "code": 500}),
        ));
    }
    let mut pin_pod = false;
    let mut budget_name = String::new();
    if let Some(mut pdb) = budgets.into_iter().next() {
        budget_name = pdb.metadata.name.clone().unwrap_or_default();
        if unready_pod_may_go(&pdb, &pod) {
            // The unready pod leaves without spending the budget, provided it is still the
            // pod we looked at.
            pin_pod = true;
        } else if del.dry_run {
            check_and_decrement(&mut pdb, name, meta::now(), true)?;
        } else {
            spend(api, ns, &budget_name, name).await?;
        }
    }
    let mut d = del;
    if pin_pod {
        d.resource_version = pod.metadata.resource_version.clone();
    }
    match mark_and_delete(api, pods, ns, name, &d, opts).await {
        Err(e) if e.code == 409 && pin_pod && !caller_pins => Err(still_processing(&budget_name)),
        Err(e) => Err(e),
        Ok(()) => Ok(Answer::Evicted),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::alloc::Allocators;
    use crate::resources::PODS;
    use crate::storage::Storage;
    use crate::storage::embedded::{EmbeddedConfig, EmbeddedStorage};

    struct Fixture {
        api: Api,
        _dir: tempfile::TempDir,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Storage> =
            Arc::new(EmbeddedStorage::open(EmbeddedConfig::new(dir.path().join("db"))).unwrap());
        let settings = crate::registry::Settings::default();
        let api = Api {
            store: store.clone(),
            kinds: crate::registry::builtin_kinds(),
            alloc: Allocators::new(store, settings.service_cidr, settings.node_ports.clone()),
            settings,
            rbac: crate::auth::rbac::RbacCache::new(),
            node_graph: crate::auth::node::NodeGraph::new(),
            deleted_namespaces: Default::default(),
        };
        Fixture { api, _dir: dir }
    }

    fn pod_json(name: &str, phase: &str, ready: bool, node: Option<&str>) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"),
                         "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], "nodeName": node,
                     "terminationGracePeriodSeconds": 30},
            "status": {"phase": phase, "conditions": [
                {"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        })
    }

    fn pdb_json(name: &str, selector: Value, status: Value) -> Value {
        json!({
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"),
                         "generation": 1},
            "spec": {"minAvailable": 2, "selector": selector},
            "status": status,
        })
    }

    fn healthy(allowed: i32) -> Value {
        json!({"observedGeneration": 1, "disruptionsAllowed": allowed, "currentHealthy": 3,
               "desiredHealthy": 2, "expectedPods": 3})
    }

    async fn put(api: &Api, key: String, v: &Value) {
        let mut v = v.clone();
        if v["kind"] == "Pod" {
            // Stored pods carry their defaults (updates are validated against them).
            use crate::registry::Strategy;
            let mut pod: Pod = serde_json::from_value(v).unwrap();
            crate::registry::kinds::pod::PodStrategy.defaults(&mut pod);
            v = serde_json::to_value(&pod).unwrap();
            v["apiVersion"] = json!("v1");
            v["kind"] = json!("Pod");
        }
        api.store
            .create(&key, Bytes::from(serde_json::to_vec(&v).unwrap()))
            .await
            .unwrap();
    }

    async fn stored<T: serde::de::DeserializeOwned>(api: &Api, key: &str) -> Option<T> {
        api.store
            .get(key)
            .await
            .unwrap()
            .map(|kv| serde_json::from_slice(&kv.value).unwrap())
    }

    fn pods(api: &Api) -> Arc<dyn KindOps> {
        api.kind(&PODS).unwrap().clone()
    }

    fn eviction(name: &str) -> Value {
        json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name}})
    }

    async fn evict_pod(api: &Api, name: &str, del: DeleteOptions) -> Result<Answer, ApiError> {
        evict(
            api,
            pods(api).as_ref(),
            "ns",
            name,
            &eviction(name),
            del,
            &WriteOptions::default(),
        )
        .await
    }

    #[tokio::test]
    async fn a_budget_with_room_is_spent_and_the_pod_deleted() {
        let f = fixture();
        let api = &f.api;
        put(
            api,
            PODS.key(Some("ns"), "a"),
            &pod_json("a", "Running", true, None),
        )
        .await;
        let sel = json!({"matchLabels": {"app": "web"}});
        put(
            api,
            PODDISRUPTIONBUDGETS.key(Some("ns"), "web"),
            &pdb_json("web", sel, healthy(1)),
        )
        .await;

        assert_eq!(
            evict_pod(api, "a", DeleteOptions::default()).await.unwrap(),
            Answer::Evicted
        );
        assert!(
            stored::<Pod>(api, &PODS.key(Some("ns"), "a"))
                .await
                .is_none()
        );
        let pdb: PodDisruptionBudget = stored(api, &PODDISRUPTIONBUDGETS.key(Some("ns"), "web"))
            .await
            .unwrap();
        let st = pdb.status.unwrap();
        assert_eq!(st.disruptions_allowed, 0);
        assert!(st.disrupted_pods.unwrap().contains_key("a"));
        let cond = &st.conditions.unwrap()[0];
        assert_eq!(
            (
                cond.type_.as_str(),
                cond.status.as_str(),
                cond.reason.as_str()
            ),
            ("DisruptionAllowed", "False", "InsufficientPods")
        );
    }

    #[tokio::test]
    async fn an_exhausted_budget_refuses_with_429_and_keeps_the_pod() {
        let f = fixture();
        let api = &f.api;
        put(
            api,
            PODS.key(Some("ns"), "a"),
            &pod_json("a", "Running", true, None),
        )
        .await;
        let sel = json!({"matchLabels": {"app": "web"}});
        let status = json!({"observedGeneration": 1, "disruptionsAllowed": 0,
                            "currentHealthy": 2, "desiredHealthy": 2, "expectedPods": 2});
        put(
            api,
            PODDISRUPTIONBUDGETS.key(Some("ns"), "web"),
            &pdb_json("web", sel, status),
        )
        .await;
        let e = evict_pod(api, "a", DeleteOptions::default())
            .await
            .unwrap_err();
        assert_eq!((e.code, e.reason), (429, "TooManyRequests"));
        assert_eq!(e.message, REFUSED);
        let s = e.status_json();
        assert_eq!(
            s["details"]["causes"],
            json!([{"reason": "DisruptionBudget",
                    "message": "The disruption budget web needs 2 healthy pods and has 2 currently"}])
        );
        assert!(
            stored::<Pod>(api, &PODS.key(Some("ns"), "a"))
                .await
                .is_some()
        );
    }

    #[tokio::test]
    async fn a_budget_not_yet_observed_refuses_and_several_budgets_are_unsupported() {
        let f = fixture();
        let api = &f.api;
        put(
            api,
            PODS.key(Some("ns"), "a"),
            &pod_json("a", "Running", true, None),
        )
        .await;
        let sel = json!({"matchLabels": {"app": "web"}});
        // The controller has not computed this budget yet.
        put(
            api,
            PODDISRUPTIONBUDGETS.key(Some("ns"), "web"),
            &pdb_json("web", sel, json!({})),
        )
        .await;
        let e = evict_pod(api, "a", DeleteOptions::default())
            .await
            .unwrap_err();
        assert_eq!(e.code, 429);
        assert_eq!(e.retry_after, Some(10));
        assert_eq!(
            e.status_json()["details"]["causes"][0]["message"],
            "The disruption budget web is still being processed by the server."
        );
        // An empty selector selects every pod of the namespace: now two budgets.
        put(
            api,
            PODDISRUPTIONBUDGETS.key(Some("ns"), "all"),
            &pdb_json("all", json!({}), healthy(5)),
        )
        .await;
        let answer = evict_pod(api, "a", DeleteOptions::default()).await.unwrap();
        let Answer::Status(500, s) = answer else {
            panic!("expected a 500 Status, got {answer:?}");
        };
        assert_eq!(s["message"], MULTIPLE_BUDGETS);
        assert!(
            stored::<Pod>(api, &PODS.key(Some("ns"), "a"))
                .await
                .is_some()
        );
    }

    #[tokio::test]
    async fn pods_that_disrupt_nothing_go_without_budget_checks() {
        let f = fixture();
        let api = &f.api;
        let sel = json!({"matchLabels": {"app": "web"}});
        let status = json!({"observedGeneration": 1, "disruptionsAllowed": 0,
                            "currentHealthy": 1, "desiredHealthy": 2, "expectedPods": 2});
        put(
            api,
            PODDISRUPTIONBUDGETS.key(Some("ns"), "web"),
            &pdb_json("web", sel, status),
        )
        .await;
        for (name, phase) in [
            ("done", "Succeeded"),
            ("failed", "Failed"),
            ("new", "Pending"),
        ] {
            put(
                api,
                PODS.key(Some("ns"), name),
                &pod_json(name, phase, false, None),
            )
            .await;
            assert_eq!(
                evict_pod(api, name, DeleteOptions::default())
                    .await
                    .unwrap(),
                Answer::Evicted,
                "{phase}"
            );
            assert!(
                stored::<Pod>(api, &PODS.key(Some("ns"), name))
                    .await
                    .is_none()
            );
        }
        // A running pod with the same budget is refused.
        put(
            api,
            PODS.key(Some("ns"), "up"),
            &pod_json("up", "Running", true, None),
        )
        .await;
        assert_eq!(
            evict_pod(api, "up", DeleteOptions::default())
                .await
                .unwrap_err()
                .code,
            429
        );
        // A pod selected by no budget is simply deleted.
        let mut other = pod_json("other", "Running", true, None);
        other["metadata"]["labels"] = json!({"app": "db"});
        put(api, PODS.key(Some("ns"), "other"), &other).await;
        assert_eq!(
            evict_pod(api, "other", DeleteOptions::default())
                .await
                .unwrap(),
            Answer::Evicted
        );
    }

    #[tokio::test]
    async fn unready_pods_follow_the_unhealthy_pod_eviction_policy() {
        let f = fixture();
        let api = &f.api;
        let sel = json!({"matchLabels": {"app": "web"}});
        // The budget is not met (1 healthy of 2 desired) and has no room.
        let status = json!({"observedGeneration": 1, "disruptionsAllowed": 0,
                            "currentHealthy": 1, "desiredHealthy": 2, "expectedPods": 3});
        put(
            api,
            PODDISRUPTIONBUDGETS.key(Some("ns"), "web"),
            &pdb_json("web", sel.clone(), status.clone()),
        )
        .await;
        put(
            api,
            PODS.key(Some("ns"), "sick"),
            &pod_json("sick", "Running", false, None),
        )
        .await;
        // IfHealthyBudget (the default): an unmet budget protects even unready pods.
        assert_eq!(
            evict_pod(api, "sick", DeleteOptions::default())
                .await
                .unwrap_err()
                .code,
            429
        );
        // AlwaysAllow: the unready pod goes, and the budget is not spent.
        let mut always = pdb_json("web", sel, status);
        always["spec"]["unhealthyPodEvictionPolicy"] = json!("AlwaysAllow");
        let key = PODDISRUPTIONBUDGETS.key(Some("ns"), "web");
        api.store.delete(&key, None).await.unwrap();
        put(api, key.clone(), &always).await;
        assert_eq!(
            evict_pod(api, "sick", DeleteOptions::default())
                .await
                .unwrap(),
            Answer::Evicted
        );
        let pdb: PodDisruptionBudget = stored(api, &key).await.unwrap();
        assert_eq!(pdb.status.unwrap().disrupted_pods, None);
    }

    #[tokio::test]
    async fn dry_runs_change_neither_budget_nor_pod() {
        let f = fixture();
        let api = &f.api;
        put(
            api,
            PODS.key(Some("ns"), "a"),
            &pod_json("a", "Running", true, Some("n1")),
        )
        .await;
        let sel = json!({"matchLabels": {"app": "web"}});
        let key = PODDISRUPTIONBUDGETS.key(Some("ns"), "web");
        put(api, key.clone(), &pdb_json("web", sel, healthy(1))).await;
        let before = api.store.get(&key).await.unwrap().unwrap();
        let dry = DeleteOptions {
            dry_run: true,
            ..Default::default()
        };
        assert_eq!(
            evict_pod(api, "a", dry.clone()).await.unwrap(),
            Answer::Evicted
        );
        let after = api.store.get(&key).await.unwrap().unwrap();
        assert_eq!(
            before.mod_revision, after.mod_revision,
            "the budget was written"
        );
        let pod: Pod = stored(api, &PODS.key(Some("ns"), "a")).await.unwrap();
        assert!(pod.metadata.deletion_timestamp.is_none());
        assert!(
            !pod.status
                .unwrap()
                .conditions
                .unwrap()
                .iter()
                .any(|c| c.type_ == "DisruptionTarget")
        );

        // A real eviction of the bound pod starts its graceful deletion, with the condition.
        assert_eq!(
            evict_pod(api, "a", DeleteOptions::default()).await.unwrap(),
            Answer::Evicted
        );
        let pod: Pod = stored(api, &PODS.key(Some("ns"), "a")).await.unwrap();
        assert!(pod.metadata.deletion_timestamp.is_some());
        let target = pod
            .status
            .unwrap()
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "DisruptionTarget")
            .unwrap();
        assert_eq!(
            (target.status.as_str(), target.reason.as_deref()),
            ("True", Some("EvictionByEvictionAPI"))
        );
        // With no room left, even a dry run is refused.
        put(
            api,
            PODS.key(Some("ns"), "b"),
            &pod_json("b", "Running", true, Some("n1")),
        )
        .await;
        assert_eq!(evict_pod(api, "b", dry).await.unwrap_err().code, 429);
    }

    #[tokio::test]
    async fn the_eviction_must_name_the_pod() {
        let f = fixture();
        let api = &f.api;
        put(
            api,
            PODS.key(Some("ns"), "a"),
            &pod_json("a", "Running", true, None),
        )
        .await;
        let e = evict(
            api,
            pods(api).as_ref(),
            "ns",
            "a",
            &eviction("b"),
            DeleteOptions::default(),
            &WriteOptions::default(),
        )
        .await
        .unwrap_err();
        assert_eq!(e.code, 400);
        assert_eq!(
            evict_pod(api, "missing", DeleteOptions::default())
                .await
                .unwrap_err()
                .code,
            404
        );
    }

    #[test]
    fn decrements_are_checked_against_the_status() {
        let mut pdb: PodDisruptionBudget =
            serde_json::from_value(pdb_json("web", json!({}), healthy(2))).unwrap();
        let now = meta::now();
        check_and_decrement(&mut pdb, "a", now.clone(), false).unwrap();
        let st = pdb.status.as_ref().unwrap();
        assert_eq!(st.disruptions_allowed, 1);
        assert_eq!(st.conditions, None, "the condition changes only at zero");
        check_and_decrement(&mut pdb, "b", now.clone(), true).unwrap();
        let st = pdb.status.as_ref().unwrap();
        assert_eq!(st.disruptions_allowed, 0);
        assert_eq!(
            st.disrupted_pods.as_ref().unwrap().len(),
            1,
            "a dry run records no pod"
        );
        assert_eq!(
            check_and_decrement(&mut pdb, "c", now.clone(), false)
                .unwrap_err()
                .code,
            429
        );

        pdb.status.as_mut().unwrap().disruptions_allowed = -1;
        let e = check_and_decrement(&mut pdb, "c", now.clone(), false).unwrap_err();
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            "poddisruptionbudget.policy \"web\" is forbidden: pdb disruptions allowed is negative"
        );
        let st = pdb.status.as_mut().unwrap();
        st.disruptions_allowed = 5;
        st.disrupted_pods = Some(
            (0..=MAX_DISRUPTED_POD_SIZE)
                .map(|i| (format!("p{i}"), now.clone()))
                .collect(),
        );
        assert_eq!(
            check_and_decrement(&mut pdb, "c", now, false)
                .unwrap_err()
                .code,
            403
        );
    }

    #[test]
    fn selection_follows_kubernetes_nil_and_empty_selectors() {
        let pod: Pod = serde_json::from_value(pod_json("a", "Running", true, None)).unwrap();
        let with = |sel: Value| -> PodDisruptionBudget {
            serde_json::from_value(pdb_json("p", sel, json!({}))).unwrap()
        };
        assert!(selects(&with(json!({"matchLabels": {"app": "web"}})), &pod));
        assert!(!selects(&with(json!({"matchLabels": {"app": "db"}})), &pod));
        assert!(
            selects(&with(json!({})), &pod),
            "an empty selector selects all"
        );
        assert!(
            !selects(&with(Value::Null), &pod),
            "no selector selects none"
        );
        let mut elsewhere = with(json!({}));
        elsewhere.metadata.namespace = Some("other".into());
        assert!(!selects(&elsewhere, &pod));
    }
}
