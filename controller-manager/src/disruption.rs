//! The disruption controller: keeps each PodDisruptionBudget's status — how many of its pods
//! are expected, healthy and must stay healthy, and how many may be disrupted now — as
//! Kubernetes' disruption controller does. The API server's eviction subresource spends that
//! allowance (recording the pods it let go in `status.disruptedPods`); this controller
//! recomputes it from the pods.
//!
//! For one budget:
//! - its pods are the pods of its namespace its selector selects (none without a selector,
//!   all with an empty one);
//! - `expectedPods` is the number of those pods for an integer `minAvailable`; otherwise the
//!   sum of the scales of the pods' controllers — a ReplicaSet's Deployment, a ReplicaSet, a
//!   StatefulSet, or any other kind through its `scale` subresource (a pod without a
//!   controller makes an `UnmanagedPods` warning);
//! - `desiredHealthy` is `minAvailable` (a percentage of the expected pods, rounded up), or
//!   the expected pods less `maxUnavailable` (rounded up likewise);
//! - `currentHealthy` counts the Ready pods that are not being deleted and not recorded in
//!   `disruptedPods` within the last two minutes ([`DELETION_TIMEOUT`]);
//! - `disruptionsAllowed` is `currentHealthy − desiredHealthy`, at least 0, and 0 while no pod
//!   is expected;
//! - `disruptedPods` keeps the entries of pods that still exist, are not being deleted yet
//!   and were recorded less than two minutes ago (the budget is synced again when the oldest
//!   expires; a pod that outlived it gets a `NotDeleted` warning);
//! - the `DisruptionAllowed` condition is True (`SufficientPods`) while a disruption is
//!   allowed, else False (`InsufficientPods`), and `observedGeneration` is the budget's
//!   generation.
//!
//! When the status cannot be computed, the budget is failed safe: `disruptionsAllowed` 0 and
//! `DisruptionAllowed` False with reason `SyncFailed`. Budgets are synced on their own changes
//! and on changes of the pods they select.
//!
//! A second loop clears stale `DisruptionTarget` conditions: a pod that got one (an eviction
//! that then failed to delete it) but is still not being deleted two minutes later has the
//! condition set to False.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{StreamExt, stream};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, PodCondition};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client};
use rkube_machinery::selector::{LabelSelector, SelectorError};

use crate::Shared;
use crate::clock::{Clock, plus_secs};
use crate::events::Recorder;
use crate::informer::{Change, ref_in};
use crate::podutil::{controller_of, is_ready, is_terminal, key};
use crate::runner::{Wiring, is_conflict, is_not_found};

/// The controller's name (`--controllers`).
pub const NAME: &str = "disruption-controller";
/// The ServiceAccount (in kube-system) it acts as with `--use-service-account-credentials`.
pub const ACCOUNT: &str = "disruption-controller";
/// The source of its events, as Kubernetes' disruption controller names it.
pub const COMPONENT: &str = "controllermanager";
/// The name of the loop that clears stale `DisruptionTarget` conditions (its metrics).
pub const STALE_POD_DISRUPTION: &str = "stale-pod-disruption";
/// How long after an eviction recorded a pod in `disruptedPods` the pod is expected to be
/// deleted; after that the entry is dropped.
pub const DELETION_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a pod keeps a `DisruptionTarget=True` condition without being deleted before the
/// condition is set to False.
pub const STALE_POD_DISRUPTION_TIMEOUT: Duration = Duration::from_secs(120);

/// Finds the owners' scales through discovery and the `scale` subresource, for owners of
/// kinds the controller has no cache of; remembers which kinds have a scale.
#[derive(Default)]
pub struct Scales {
    kinds: Mutex<HashMap<(String, String), (ApiResource, bool)>>,
}

/// What a reconcile needs.
pub struct Ctx {
    /// The API.
    pub client: Client,
    /// The pods.
    pub pods: Store<Pod>,
    /// The ReplicaSets.
    pub replicasets: Store<ReplicaSet>,
    /// The Deployments.
    pub deployments: Store<Deployment>,
    /// The StatefulSets.
    pub statefulsets: Store<StatefulSet>,
    /// Scales of other owners.
    pub scales: Scales,
    /// Events.
    pub recorder: Recorder,
    /// The clock.
    pub clock: Clock,
}

/// Why the expected pods of a budget cannot be counted.
#[derive(Debug, thiserror::Error)]
pub enum ScaleError {
    /// A selected pod's controller was not found.
    #[error("found no controllers for pod {0:?}")]
    NoController(String),
    /// The pod's controller is of a kind without a `scale` subresource.
    #[error("{0} does not implement the scale subresource")]
    NoScale(String),
    /// The pod's controller is of a kind the API does not serve.
    #[error("no matches for kind {kind:?} in version {api_version:?}")]
    UnknownKind {
        /// The kind.
        kind: String,
        /// Its apiVersion.
        api_version: String,
    },
    /// A bound is neither an integer nor a percentage.
    #[error("invalid value for IntOrString: invalid value {0:?}")]
    Bound(String),
    /// Reading a scale failed.
    #[error("reading the scale of {owner}: {source}")]
    Api {
        /// The owner (`kind/name`).
        owner: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

/// Why a budget could not be synced.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The budget's selector does not parse.
    #[error("invalid selector: {0}")]
    Selector(#[from] SelectorError),
    /// The expected pods could not be counted.
    #[error(transparent)]
    Scale(#[from] ScaleError),
    /// Writing the status failed.
    #[error("writing the status: {0}")]
    Write(#[source] kube::Error),
}

/// Why a reconcile failed (and is retried).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Writing a budget's status failed.
    #[error("poddisruptionbudget {key}: {source}")]
    Budget {
        /// The budget.
        key: String,
        /// What failed.
        #[source]
        source: SyncError,
    },
    /// Writing a pod's status failed.
    #[error("pod {key}: {source}")]
    Pod {
        /// The pod.
        key: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

/// The pods of the budget's namespace its selector selects, from the cache.
pub fn pods_for(
    pdb: &PodDisruptionBudget,
    pods: &Store<Pod>,
) -> Result<Vec<Arc<Pod>>, SelectorError> {
    let sel = LabelSelector::from_k8s_opt(pdb.spec.as_ref().and_then(|s| s.selector.as_ref()))?;
    if sel.is_nothing() {
        return Ok(Vec::new());
    }
    let ns = pdb.metadata.namespace.as_deref();
    let mut out: Vec<Arc<Pod>> = pods
        .state()
        .into_iter()
        .filter(|p| p.metadata.namespace.as_deref() == ns)
        .filter(|p| sel.matches_opt(p.metadata.labels.as_ref()))
        .collect();
    out.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    Ok(out)
}

/// The budgets of the pod's namespace that select it.
pub fn budgets_for(
    pod: &Pod,
    budgets: &Store<PodDisruptionBudget>,
) -> Vec<Arc<PodDisruptionBudget>> {
    let mut out: Vec<_> = budgets
        .state()
        .into_iter()
        .filter(|b| b.metadata.namespace == pod.metadata.namespace)
        .filter(|b| {
            LabelSelector::from_k8s_opt(b.spec.as_ref().and_then(|s| s.selector.as_ref()))
                .is_ok_and(|s| s.matches_opt(pod.metadata.labels.as_ref()))
        })
        .collect();
    out.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    out
}

/// The budgets a pod change concerns: those selecting the pod as it is and, after a change of
/// labels, as it was.
pub fn budgets_for_change(
    change: &Change<Pod>,
    budgets: &Store<PodDisruptionBudget>,
) -> Vec<ObjectRef<PodDisruptionBudget>> {
    let mut found = budgets_for(change.object(), budgets);
    if let Some(old) = change.old()
        && old.metadata.labels != change.object().metadata.labels
    {
        for b in budgets_for(old, budgets) {
            if !found.iter().any(|f| f.metadata.name == b.metadata.name) {
                found.push(b);
            }
        }
    }
    found
        .iter()
        .map(|b| {
            ref_in(
                b.metadata.namespace.as_deref(),
                b.metadata.name.as_deref().unwrap_or_default(),
            )
        })
        .collect()
}

/// `value` of an integer or a percentage of `total`, rounded up or down
/// (`intstr.GetScaledValueFromIntOrPercent`).
pub fn scaled_value(value: &IntOrString, total: i32, round_up: bool) -> Result<i32, ScaleError> {
    match value {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let pct: i64 = s
                .strip_suffix('%')
                .and_then(|d| d.parse().ok())
                .ok_or_else(|| ScaleError::Bound(s.clone()))?;
            let product = pct * i64::from(total);
            let v = if round_up {
                (product + 99).div_euclid(100)
            } else {
                product.div_euclid(100)
            };
            Ok(i32::try_from(v).unwrap_or(i32::MAX))
        }
    }
}

/// The group of an apiVersion (`apps/v1` → `apps`, `v1` → ``).
fn group_of(api_version: &str) -> &str {
    api_version.split_once('/').map(|(g, _)| g).unwrap_or("")
}

fn is_kind(owner: &OwnerReference, kind: &str, groups: &[&str]) -> bool {
    owner.kind == kind && groups.contains(&group_of(&owner.api_version))
}

impl Ctx {
    /// The controller of `owner` (a pod's controller reference in `ns`) with its scale, as
    /// Kubernetes' finders resolve it: a Deployment through its ReplicaSet, a ReplicaSet not
    /// controlled by a Deployment, a StatefulSet, else the `scale` subresource. `None`: not
    /// found (or another object of that name).
    async fn scale_of(
        &self,
        owner: &OwnerReference,
        ns: &str,
    ) -> Result<Option<(String, i32)>, ScaleError> {
        if is_kind(owner, "ReplicaSet", &["apps", "extensions"]) {
            let Some(rs) = self.replicasets.get(&ref_in(Some(ns), &owner.name)) else {
                return Ok(None);
            };
            if rs.metadata.uid.as_deref() != Some(owner.uid.as_str()) {
                return Ok(None);
            }
            let replicas = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let rs_uid = owner.uid.clone();
            match controller_of(&rs.metadata) {
                Some(d) if is_kind(d, "Deployment", &["apps", "extensions"]) => {
                    if let Some(dep) = self.deployments.get(&ref_in(Some(ns), &d.name))
                        && dep.metadata.uid.as_deref() == Some(d.uid.as_str())
                    {
                        let replicas = dep.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                        return Ok(Some((d.uid.clone(), replicas)));
                    }
                    // The Deployment is not known: the ReplicaSet's own scale, as its scale
                    // subresource would tell.
                    return Ok(Some((rs_uid, replicas)));
                }
                _ => return Ok(Some((rs_uid, replicas))),
            }
        }
        if is_kind(owner, "StatefulSet", &["apps"]) {
            return Ok(self
                .statefulsets
                .get(&ref_in(Some(ns), &owner.name))
                .filter(|s| s.metadata.uid.as_deref() == Some(owner.uid.as_str()))
                .map(|s| {
                    let replicas = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                    (owner.uid.clone(), replicas)
                }));
        }
        self.scales.scale_of(&self.client, owner, ns).await
    }
}

impl Scales {
    async fn kind(
        &self,
        client: &Client,
        owner: &OwnerReference,
    ) -> Result<(ApiResource, bool), ScaleError> {
        let cache_key = (owner.api_version.clone(), owner.kind.clone());
        if let Some(found) = self.kinds.lock().expect("scales").get(&cache_key) {
            return Ok(found.clone());
        }
        let unknown = || ScaleError::UnknownKind {
            kind: owner.kind.clone(),
            api_version: owner.api_version.clone(),
        };
        let (group, version) = match owner.api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", owner.api_version.as_str()),
        };
        let gvk = GroupVersionKind::gvk(group, version, &owner.kind);
        let (ar, caps) = match kube::discovery::pinned_kind(client, &gvk).await {
            Ok(found) => found,
            Err(kube::Error::Discovery(_)) => return Err(unknown()),
            Err(e) if is_not_found(&e) => return Err(unknown()),
            Err(source) => {
                return Err(ScaleError::Api {
                    owner: format!("{}/{}", owner.kind, owner.name),
                    source,
                });
            }
        };
        let has_scale = caps
            .subresources
            .iter()
            .any(|(sub, _)| sub.plural == "scale");
        self.kinds
            .lock()
            .expect("scales")
            .insert(cache_key, (ar.clone(), has_scale));
        Ok((ar, has_scale))
    }

    /// The owner's scale through its `scale` subresource.
    async fn scale_of(
        &self,
        client: &Client,
        owner: &OwnerReference,
        ns: &str,
    ) -> Result<Option<(String, i32)>, ScaleError> {
        let (ar, has_scale) = self.kind(client, owner).await?;
        if !has_scale {
            let resource = if ar.group.is_empty() {
                ar.plural.clone()
            } else {
                format!("{}.{}", ar.plural, ar.group)
            };
            return Err(ScaleError::NoScale(resource));
        }
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
        match api.get_subresource("scale", &owner.name).await {
            Ok(scale) => {
                if scale.metadata.uid.as_deref() != Some(owner.uid.as_str()) {
                    return Ok(None);
                }
                let replicas = scale.data["spec"]["replicas"].as_i64().unwrap_or(0);
                Ok(Some((
                    owner.uid.clone(),
                    i32::try_from(replicas).unwrap_or(0),
                )))
            }
            Err(e) if is_not_found(&e) => Ok(None),
            Err(source) => Err(ScaleError::Api {
                owner: format!("{}/{}", owner.kind, owner.name),
                source,
            }),
        }
    }
}

/// The expected and desired healthy pods of a budget, and the selected pods without a
/// controller (`getExpectedPodCount`).
pub async fn expected_pod_count(
    ctx: &Ctx,
    pdb: &PodDisruptionBudget,
    pods: &[Arc<Pod>],
) -> Result<(i32, i32, Vec<String>), ScaleError> {
    let spec = pdb.spec.clone().unwrap_or_default();
    if let Some(max_unavailable) = &spec.max_unavailable {
        let (expected, unmanaged) = expected_scale(ctx, pods).await?;
        let max = scaled_value(max_unavailable, expected, true)?;
        return Ok((expected, (expected - max).max(0), unmanaged));
    }
    match &spec.min_available {
        Some(IntOrString::Int(min)) => Ok((
            i32::try_from(pods.len()).unwrap_or(i32::MAX),
            *min,
            Vec::new(),
        )),
        Some(pct) => {
            let (expected, unmanaged) = expected_scale(ctx, pods).await?;
            Ok((expected, scaled_value(pct, expected, true)?, unmanaged))
        }
        None => Ok((0, 0, Vec::new())),
    }
}

/// The sum of the scales of the pods' controllers, each counted once, and the pods without
/// a controller (`getExpectedScale`).
async fn expected_scale(ctx: &Ctx, pods: &[Arc<Pod>]) -> Result<(i32, Vec<String>), ScaleError> {
    let mut scales: BTreeMap<String, i32> = BTreeMap::new();
    let mut unmanaged = Vec::new();
    for pod in pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let Some(owner) = controller_of(&pod.metadata) else {
            unmanaged.push(name);
            continue;
        };
        if scales.contains_key(&owner.uid) {
            continue;
        }
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        match ctx.scale_of(owner, ns).await? {
            Some((uid, replicas)) => {
                scales.insert(uid, replicas);
            }
            None => return Err(ScaleError::NoController(name)),
        }
    }
    Ok((scales.values().sum(), unmanaged))
}

/// The entries of `disruptedPods` still in effect: pods that exist, are not being deleted,
/// and were recorded less than [`DELETION_TIMEOUT`] ago; when the next one expires; and the
/// pods whose entry expired without them being deleted (`buildDisruptedPodMap`).
pub fn disrupted_pods(
    pdb: &PodDisruptionBudget,
    pods: &[Arc<Pod>],
    now: jiff::Timestamp,
) -> (
    BTreeMap<String, Time>,
    Option<jiff::Timestamp>,
    Vec<Arc<Pod>>,
) {
    let mut kept = BTreeMap::new();
    let mut recheck: Option<jiff::Timestamp> = None;
    let mut expired = Vec::new();
    let Some(recorded) = pdb.status.as_ref().and_then(|s| s.disrupted_pods.as_ref()) else {
        return (kept, recheck, expired);
    };
    let timeout = i64::try_from(DELETION_TIMEOUT.as_secs()).unwrap_or(i64::MAX);
    for pod in pods {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let name = pod.metadata.name.clone().unwrap_or_default();
        let Some(at) = recorded.get(&name) else {
            continue;
        };
        let expected_deletion = plus_secs(at.0, timeout);
        if expected_deletion < now {
            expired.push(pod.clone());
        } else {
            recheck = Some(recheck.map_or(expected_deletion, |r| r.min(expected_deletion)));
            kept.insert(name, at.clone());
        }
    }
    (kept, recheck, expired)
}

/// The pods that count as healthy: Ready, not being deleted, not recently disrupted
/// (`countHealthyPods`).
pub fn count_healthy(
    pods: &[Arc<Pod>],
    disrupted: &BTreeMap<String, Time>,
    now: jiff::Timestamp,
) -> i32 {
    let timeout = i64::try_from(DELETION_TIMEOUT.as_secs()).unwrap_or(i64::MAX);
    let n = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            let name = p.metadata.name.as_deref().unwrap_or_default();
            disrupted
                .get(name)
                .is_none_or(|at| plus_secs(at.0, timeout) <= now)
        })
        .filter(|p| is_ready(p))
        .count();
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// A `DisruptionAllowed` condition for the status.
fn allowed_condition(
    status: &PodDisruptionBudgetStatus,
    allowed: bool,
    reason: &str,
    message: String,
    now: Time,
) -> Condition {
    let observed = status.observed_generation.unwrap_or(0);
    Condition {
        type_: "DisruptionAllowed".into(),
        status: if allowed { "True" } else { "False" }.into(),
        reason: reason.into(),
        message,
        observed_generation: (observed > 0).then_some(observed),
        last_transition_time: now,
    }
}

/// Sets `DisruptionAllowed` from `disruptionsAllowed` (`UpdateDisruptionAllowedCondition`).
pub fn update_allowed_condition(status: &mut PodDisruptionBudgetStatus, now: Time) {
    let allowed = status.disruptions_allowed > 0;
    let reason = if allowed {
        "SufficientPods"
    } else {
        "InsufficientPods"
    };
    let cond = allowed_condition(status, allowed, reason, String::new(), now);
    rkube_machinery::condition::set(status.conditions.get_or_insert_with(Vec::new), cond);
}

/// Whether the `DisruptionAllowed` condition matches the status (`ConditionsAreUpToDate`).
pub fn conditions_up_to_date(pdb: &PodDisruptionBudget) -> bool {
    let Some(st) = &pdb.status else {
        return false;
    };
    let Some(cond) = st
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "DisruptionAllowed")
    else {
        return false;
    };
    if st.observed_generation.unwrap_or(0) != pdb.metadata.generation.unwrap_or(0) {
        return false;
    }
    if st.disruptions_allowed > 0 {
        cond.status == "True" && cond.reason == "SufficientPods"
    } else {
        cond.status == "False" && cond.reason == "InsufficientPods"
    }
}

/// The status the budget should have, or `None` when it has it (`updatePdbStatus`).
pub fn next_status(
    pdb: &PodDisruptionBudget,
    current_healthy: i32,
    desired_healthy: i32,
    expected: i32,
    disrupted: BTreeMap<String, Time>,
    now: Time,
) -> Option<PodDisruptionBudgetStatus> {
    let mut allowed = current_healthy - desired_healthy;
    if expected <= 0 || allowed <= 0 {
        allowed = 0;
    }
    let st = pdb.status.clone().unwrap_or_default();
    let generation = pdb.metadata.generation.unwrap_or(0);
    if st.current_healthy == current_healthy
        && st.desired_healthy == desired_healthy
        && st.expected_pods == expected
        && st.disruptions_allowed == allowed
        && st.disrupted_pods.clone().unwrap_or_default() == disrupted
        && st.observed_generation.unwrap_or(0) == generation
        && conditions_up_to_date(pdb)
    {
        return None;
    }
    let mut next = PodDisruptionBudgetStatus {
        current_healthy,
        desired_healthy,
        expected_pods: expected,
        disruptions_allowed: allowed,
        disrupted_pods: (!disrupted.is_empty()).then_some(disrupted),
        observed_generation: Some(generation),
        conditions: st.conditions,
    };
    update_allowed_condition(&mut next, now);
    Some(next)
}

/// Writes the budget's status (with the cached resourceVersion as precondition).
async fn write_status(
    ctx: &Ctx,
    pdb: &PodDisruptionBudget,
    status: PodDisruptionBudgetStatus,
) -> Result<(), kube::Error> {
    let mut next = pdb.clone();
    next.status = Some(status);
    let ns = pdb.metadata.namespace.as_deref().unwrap_or_default();
    let name = pdb.metadata.name.as_deref().unwrap_or_default();
    Api::<PodDisruptionBudget>::namespaced(ctx.client.clone(), ns)
        .replace_status(name, &PostParams::default(), &next)
        .await
        .map(|_| ())
}

/// Computes and writes the status (`trySync`); returns when to sync again.
async fn try_sync(
    pdb: &PodDisruptionBudget,
    ctx: &Ctx,
) -> Result<Option<jiff::Timestamp>, SyncError> {
    let pods = match pods_for(pdb, &ctx.pods) {
        Ok(p) => p,
        Err(e) => {
            ctx.recorder
                .warning(pdb, "NoPods", format!("Failed to get pods: {e}"));
            return Err(e.into());
        }
    };
    if pods.is_empty() {
        ctx.recorder
            .normal(pdb, "NoPods", "No matching pods found".into());
    }
    let (expected, desired, unmanaged) = match expected_pod_count(ctx, pdb, &pods).await {
        Ok(counts) => counts,
        Err(e) => {
            ctx.recorder.warning(
                pdb,
                "CalculateExpectedPodCountFailed",
                format!("Failed to calculate the number of expected pods: {e}"),
            );
            return Err(e.into());
        }
    };
    if !unmanaged.is_empty() {
        let selector =
            LabelSelector::from_k8s_opt(pdb.spec.as_ref().and_then(|s| s.selector.as_ref()))
                .map(|s| s.to_string())
                .unwrap_or_default();
        tracing::debug!(budget = %key(&pdb.metadata), pods = ?unmanaged, "unmanaged pods");
        ctx.recorder.warning(
            pdb,
            "UnmanagedPods",
            format!(
                "Pods selected by this PodDisruptionBudget (selector: {selector}) were found to be unmanaged. As a result, the status of the PDB cannot be calculated correctly, which may result in undefined behavior. To account for these pods please set \".spec.minAvailable\" field of the PDB to an integer value."
            ),
        );
    }
    let now = ctx.clock.now();
    let (disrupted, recheck, expired) = disrupted_pods(pdb, &pods, now);
    for pod in &expired {
        tracing::info!(pod = %key(&pod.metadata), budget = %key(&pdb.metadata), "pod was expected to be deleted but it wasn't");
        ctx.recorder.warning(
            pod.as_ref(),
            "NotDeleted",
            format!(
                "Pod was expected by PDB {} to be deleted but it wasn't",
                key(&pdb.metadata)
            ),
        );
    }
    let healthy = count_healthy(&pods, &disrupted, now);
    if let Some(status) = next_status(pdb, healthy, desired, expected, disrupted, Time(now)) {
        write_status(ctx, pdb, status)
            .await
            .map_err(SyncError::Write)?;
    }
    Ok(recheck)
}

/// Allows no disruption, with the reason the status could not be computed (`failSafe`).
async fn fail_safe(
    ctx: &Ctx,
    pdb: &PodDisruptionBudget,
    why: &SyncError,
) -> Result<(), kube::Error> {
    let mut status = pdb.status.clone().unwrap_or_default();
    status.disruptions_allowed = 0;
    let cond = allowed_condition(
        &status,
        false,
        "SyncFailed",
        why.to_string(),
        ctx.clock.time(),
    );
    rkube_machinery::condition::set(status.conditions.get_or_insert_with(Vec::new), cond);
    write_status(ctx, pdb, status).await
}

/// Syncs one budget's status.
pub async fn reconcile(pdb: Arc<PodDisruptionBudget>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let budget = key(&pdb.metadata);
    match try_sync(&pdb, &ctx).await {
        Ok(Some(at)) => Ok(Action::requeue(
            ctx.clock.until(at).max(Duration::from_millis(1)),
        )),
        Ok(None) => Ok(Action::await_change()),
        // A stale cache: synced again on the newer budget, not failed safe.
        Err(SyncError::Write(e)) if is_conflict(&e) => Err(Error::Budget {
            key: budget,
            source: SyncError::Write(e),
        }),
        Err(e) => {
            tracing::warn!(budget = %budget, error = %e, "failed to sync the budget; allowing no disruption");
            match fail_safe(&ctx, &pdb, &e).await {
                Ok(()) => Ok(Action::await_change()),
                Err(w) => Err(Error::Budget {
                    key: budget,
                    source: SyncError::Write(w),
                }),
            }
        }
    }
}

/// The pod's `DisruptionTarget` condition, if it is a stale one: True, set by an eviction or
/// preemption (not the kubelet), on a pod neither terminal nor being deleted.
pub fn stale_disruption_target(pod: &Pod) -> Option<&PodCondition> {
    if pod.metadata.deletion_timestamp.is_some() || is_terminal(pod) {
        return None;
    }
    crate::podutil::condition(pod, "DisruptionTarget")
        .filter(|c| c.status == "True" && c.reason.as_deref() != Some("TerminationByKubelet"))
}

/// Sets a stale `DisruptionTarget` condition to False once it is
/// [`STALE_POD_DISRUPTION_TIMEOUT`] old (`syncStalePodDisruption`).
pub async fn reconcile_stale_pod(pod: Arc<Pod>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let Some(cond) = stale_disruption_target(&pod) else {
        return Ok(Action::await_change());
    };
    let since = cond
        .last_transition_time
        .as_ref()
        .map_or(jiff::Timestamp::UNIX_EPOCH, |t| t.0);
    let timeout = i64::try_from(STALE_POD_DISRUPTION_TIMEOUT.as_secs()).unwrap_or(i64::MAX);
    let wait = ctx.clock.until(plus_secs(since, timeout));
    if !wait.is_zero() {
        return Ok(Action::requeue(wait));
    }
    let mut next = (*pod).clone();
    if let Some(c) = next
        .status
        .as_mut()
        .and_then(|s| s.conditions.as_mut())
        .and_then(|cs| cs.iter_mut().find(|c| c.type_ == "DisruptionTarget"))
    {
        *c = PodCondition {
            type_: "DisruptionTarget".into(),
            status: "False".into(),
            last_transition_time: Some(ctx.clock.time()),
            ..Default::default()
        };
    }
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    match Api::<Pod>::namespaced(ctx.client.clone(), ns)
        .replace_status(name, &PostParams::default(), &next)
        .await
    {
        Ok(_) => {
            tracing::info!(pod = %key(&pod.metadata), "reset stale DisruptionTarget condition to False");
            Ok(Action::await_change())
        }
        Err(e) if is_not_found(&e) => Ok(Action::await_change()),
        Err(source) => Err(Error::Pod {
            key: key(&pod.metadata),
            source,
        }),
    }
}

/// Builds the controller and returns the future that runs it (and the stale-condition loop).
pub fn start(shared: &Shared) -> BoxFuture<'static, ()> {
    let budgets = shared.informers.all::<PodDisruptionBudget>();
    let pods = shared.informers.all::<Pod>();
    let replicasets = shared.informers.all::<ReplicaSet>();
    let deployments = shared.informers.all::<Deployment>();
    let statefulsets = shared.informers.all::<StatefulSet>();
    let recorder = shared.recorder.with_component(COMPONENT);
    let ctx = Arc::new(Ctx {
        client: shared.client_for(ACCOUNT),
        pods: pods.store(),
        replicasets: replicasets.store(),
        deployments: deployments.store(),
        statefulsets: statefulsets.store(),
        scales: Scales::default(),
        recorder: recorder.clone(),
        clock: Clock::new(),
    });

    let wiring = Wiring::new(NAME, &shared.metrics, &budgets);
    let budget_store = budgets.store();
    let pod_triggers = pods.subscribe().flat_map(move |change| {
        let refs = budgets_for_change(&change, &budget_store);
        let pod = change.object();
        if refs.len() > 1 && !matches!(change, Change::Deleted(_)) {
            let names: Vec<String> = refs.iter().map(|r| format!("{:?}", r.name)).collect();
            recorder.warning(
                pod.as_ref(),
                "MultiplePodDisruptionBudgets",
                format!(
                    "Pod {:?}/{:?} matches multiple PodDisruptionBudgets: {}.",
                    pod.metadata.namespace.as_deref().unwrap_or_default(),
                    pod.metadata.name.as_deref().unwrap_or_default(),
                    names.join(", ")
                ),
            );
        }
        stream::iter(refs)
    });
    let controller = wiring
        .controller(&budgets)
        .reconcile_on(wiring.track(pod_triggers));
    let budgets_run = wiring.run(controller, 1, ctx.clone(), reconcile, shared.shutdown());

    let stale_wiring = Wiring::new(STALE_POD_DISRUPTION, &shared.metrics, &pods);
    let stale = pods
        .objects()
        .filter(|p| std::future::ready(stale_disruption_target(p).is_some()));
    let stale_controller = stale_wiring.controller_on(stale);
    let stale_run = stale_wiring.run(
        stale_controller,
        1,
        ctx,
        reconcile_stale_pod,
        shared.shutdown(),
    );

    Box::pin(async move {
        futures::future::join(budgets_run, stale_run).await;
    })
}

#[cfg(test)]
mod tests;
