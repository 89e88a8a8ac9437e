//! Deployment arithmetic and bookkeeping (Kubernetes' `deployment/util`): maxSurge and
//! maxUnavailable from integers or percentages (surge rounded up, unavailability down), the
//! new ReplicaSet's size during a rolling update, proportional shares when scaling mid-rollout,
//! the `pod-template-hash`, template comparison ignoring it, the revision and replica
//! annotations, and the Available / Progressing conditions.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

/// The revision of a ReplicaSet (and, copied, of its Deployment).
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Earlier revisions of a ReplicaSet that was rolled back to.
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// The Deployment's replicas when the ReplicaSet was last scaled.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// The Deployment's replicas + maxSurge when the ReplicaSet was last scaled.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// The revision a rollback was requested to (the extensions/v1beta1 `rollbackTo`).
pub const ROLLBACK_TO: &str = "deprecated.deployment.rollback.to";
/// The label that tells the ReplicaSets of a Deployment apart.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// kubectl's last applied configuration (not copied to ReplicaSets).
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// How long the revision history annotation may grow.
pub const MAX_REV_HISTORY_CHARS: usize = 2000;

/// Condition types and reasons, as Kubernetes spells them.
pub mod reason {
    /// Condition type: enough pods are available.
    pub const AVAILABLE: &str = "Available";
    /// Condition type: the rollout progresses (or has stalled).
    pub const PROGRESSING: &str = "Progressing";
    /// Condition type: pods cannot be created or deleted.
    pub const REPLICA_FAILURE: &str = "ReplicaFailure";
    /// A new ReplicaSet was created.
    pub const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
    /// An existing ReplicaSet matches the template.
    pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
    /// The new ReplicaSet is progressing.
    pub const RS_UPDATED: &str = "ReplicaSetUpdated";
    /// The rollout completed.
    pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
    /// No progress within progressDeadlineSeconds.
    pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
    /// The Deployment is paused.
    pub const PAUSED: &str = "DeploymentPaused";
    /// The Deployment was resumed.
    pub const RESUMED: &str = "DeploymentResumed";
    /// The new ReplicaSet could not be created.
    pub const FAILED_RS_CREATE: &str = "ReplicaSetCreateError";
    /// Enough pods are available.
    pub const MIN_AVAILABLE: &str = "MinimumReplicasAvailable";
    /// Not enough pods are available.
    pub const MIN_UNAVAILABLE: &str = "MinimumReplicasUnavailable";
}

/// `spec.replicas` (default 1).
pub fn replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// A ReplicaSet's `spec.replicas` (default 1).
pub fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// Sets a ReplicaSet's `spec.replicas`.
pub fn set_rs_replicas(rs: &mut ReplicaSet, n: i32) {
    rs.spec.get_or_insert_with(Default::default).replicas = Some(n);
}

/// Whether the strategy is RollingUpdate (the default).
pub fn is_rolling(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        .is_none_or(|t| t == "RollingUpdate")
}

/// An int or a percentage of `total` (`GetScaledValueFromIntOrPercent`).
pub fn scaled_value(v: &IntOrString, total: i32, round_up: bool) -> Result<i32, String> {
    match v {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let Some(p) = s.strip_suffix('%') else {
                return Err(
                    "invalid value for IntOrString: invalid type: string is not a percentage"
                        .to_string(),
                );
            };
            let p: i64 = p
                .parse()
                .map_err(|_| format!("invalid value for IntOrString: invalid value {s:?}"))?;
            let exact = p as f64 * f64::from(total) / 100.0;
            Ok(if round_up {
                exact.ceil()
            } else {
                exact.floor()
            } as i32)
        }
    }
}

/// maxSurge (rounded up) and maxUnavailable (rounded down) for `desired` replicas; both zero
/// becomes maxUnavailable 1 (`ResolveFenceposts`).
pub fn resolve_fenceposts(
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    desired: i32,
) -> Result<(i32, i32), String> {
    let zero = IntOrString::Int(0);
    let surge = scaled_value(max_surge.unwrap_or(&zero), desired, true)?;
    let mut unavailable = scaled_value(max_unavailable.unwrap_or(&zero), desired, false)?;
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    Ok((surge, unavailable))
}

fn fenceposts(d: &Deployment) -> (i32, i32) {
    let ru = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    resolve_fenceposts(
        ru.and_then(|r| r.max_surge.as_ref()),
        ru.and_then(|r| r.max_unavailable.as_ref()),
        replicas(d),
    )
    .unwrap_or((0, 1))
}

/// How many pods above `replicas` a rolling update may run.
pub fn max_surge(d: &Deployment) -> i32 {
    if !is_rolling(d) {
        return 0;
    }
    fenceposts(d).0
}

/// How many of `replicas` may be unavailable during a rolling update.
pub fn max_unavailable(d: &Deployment) -> i32 {
    if !is_rolling(d) || replicas(d) == 0 {
        return 0;
    }
    fenceposts(d).1.min(replicas(d))
}

/// Sum of `spec.replicas`.
pub fn spec_sum<'a>(rses: impl IntoIterator<Item = &'a ReplicaSet>) -> i32 {
    rses.into_iter().map(rs_replicas).sum()
}

/// Sum of `status.replicas`.
pub fn actual_sum<'a>(rses: impl IntoIterator<Item = &'a ReplicaSet>) -> i32 {
    rses.into_iter()
        .map(|r| r.status.as_ref().map(|s| s.replicas).unwrap_or(0))
        .sum()
}

/// Sum of `status.readyReplicas`.
pub fn ready_sum<'a>(rses: impl IntoIterator<Item = &'a ReplicaSet>) -> i32 {
    rses.into_iter()
        .map(|r| {
            r.status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0)
        })
        .sum()
}

/// Sum of `status.availableReplicas`.
pub fn available_sum<'a>(rses: impl IntoIterator<Item = &'a ReplicaSet>) -> i32 {
    rses.into_iter().map(rs_available).sum()
}

/// A ReplicaSet's `status.availableReplicas`.
pub fn rs_available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

/// The size of the new ReplicaSet in the next step of a rollout (`NewRSNewReplicas`):
/// with RollingUpdate as many more as maxSurge allows, up to `replicas`; with Recreate all.
pub fn new_rs_new_replicas(d: &Deployment, all: &[&ReplicaSet], new_rs: &ReplicaSet) -> i32 {
    if !is_rolling(d) {
        return replicas(d);
    }
    let current = spec_sum(all.iter().copied());
    let max_total = replicas(d) + max_surge(d);
    if current >= max_total {
        return rs_replicas(new_rs);
    }
    let up = (max_total - current).min(replicas(d) - rs_replicas(new_rs));
    rs_replicas(new_rs) + up
}

/// A template as JSON without the `pod-template-hash` label and without empty values, for
/// semantic comparison (nil and empty are equal, as in apimachinery's Semantic.DeepEqual).
fn normalized(template: &PodTemplateSpec) -> Value {
    let mut v = serde_json::to_value(template).unwrap_or(Value::Null);
    if let Some(labels) = v
        .get_mut("metadata")
        .and_then(|m| m.get_mut("labels"))
        .and_then(Value::as_object_mut)
    {
        labels.remove(POD_TEMPLATE_HASH);
    }
    prune(&mut v);
    v
}

fn prune(v: &mut Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => {
            m.retain(|_, x| !prune(x));
            m.is_empty()
        }
        Value::Array(a) => {
            for x in a.iter_mut() {
                prune(x);
            }
            a.is_empty()
        }
        _ => false,
    }
}

/// Whether two pod templates are equal apart from the `pod-template-hash` label.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    normalized(a) == normalized(b)
}

/// The `pod-template-hash` of a template (`controller.ComputeHash`): FNV-32a over the
/// template (and the collision count), printed in decimal and encoded with the consonant and
/// digit alphabet of `rand.SafeEncodeString`.
pub fn compute_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut hash: u32 = 0x811c_9dc5;
    let mut write = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u32::from(*b);
            hash = hash.wrapping_mul(0x0100_0193);
        }
    };
    write(normalized(template).to_string().as_bytes());
    if let Some(c) = collision_count {
        let mut buf = [0u8; 8];
        buf[..4].copy_from_slice(&(c as u32).to_le_bytes());
        write(&buf);
    }
    hash.to_string()
        .bytes()
        .map(|b| ALPHABET[usize::from(b) % ALPHABET.len()] as char)
        .collect()
}

/// The oldest ReplicaSet whose template equals the Deployment's (`FindNewReplicaSet`).
pub fn find_new<'a>(d: &Deployment, rses: &'a [ReplicaSet]) -> Option<&'a ReplicaSet> {
    let template = d.spec.as_ref()?.template.clone();
    let mut sorted: Vec<&ReplicaSet> = rses.iter().collect();
    sorted.sort_by(|a, b| by_creation(a, b));
    sorted.into_iter().find(|rs| {
        rs.spec
            .as_ref()
            .and_then(|s| s.template.as_ref())
            .is_some_and(|t| equal_ignore_hash(t, &template))
    })
}

/// Every ReplicaSet but the new one (`FindOldReplicaSets`' second result).
pub fn find_old(d: &Deployment, rses: &[ReplicaSet]) -> Vec<ReplicaSet> {
    let new_uid = find_new(d, rses).and_then(|r| r.metadata.uid.clone());
    rses.iter()
        .filter(|rs| new_uid.is_none() || rs.metadata.uid != new_uid)
        .cloned()
        .collect()
}

fn created(rs: &ReplicaSet) -> Option<jiff::Timestamp> {
    rs.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// Oldest first, then by name (`ReplicaSetsByCreationTimestamp`).
pub fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> std::cmp::Ordering {
    created(a)
        .cmp(&created(b))
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// Larger first; equal sizes newer first (`ReplicaSetsBySizeNewer`).
pub fn by_size_newer(a: &ReplicaSet, b: &ReplicaSet) -> std::cmp::Ordering {
    rs_replicas(b)
        .cmp(&rs_replicas(a))
        .then_with(|| by_creation(b, a))
}

/// Larger first; equal sizes older first (`ReplicaSetsBySizeOlder`).
pub fn by_size_older(a: &ReplicaSet, b: &ReplicaSet) -> std::cmp::Ordering {
    rs_replicas(b)
        .cmp(&rs_replicas(a))
        .then_with(|| by_creation(a, b))
}

/// Lower revision first, then older (`ReplicaSetsByRevision`).
pub fn by_revision(a: &ReplicaSet, b: &ReplicaSet) -> std::cmp::Ordering {
    revision(a)
        .cmp(&revision(b))
        .then_with(|| by_creation(a, b))
}

fn annotation<'a>(rs: &'a ReplicaSet, key: &str) -> Option<&'a str> {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// The revision annotation as a number (0 when absent or malformed).
pub fn revision(rs: &ReplicaSet) -> i64 {
    annotation(rs, REVISION)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The highest revision.
pub fn max_revision(rses: &[ReplicaSet]) -> i64 {
    rses.iter().map(revision).max().unwrap_or(0)
}

/// The second-highest revision (`LastRevision`: the one before the current).
pub fn last_revision(rses: &[&ReplicaSet]) -> i64 {
    let (mut max, mut second) = (0, 0);
    for rs in rses {
        let v = revision(rs);
        if v >= max {
            second = max;
            max = v;
        } else if v > second {
            second = v;
        }
    }
    second
}

/// The desired-replicas annotation.
pub fn desired_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    annotation(rs, DESIRED_REPLICAS).and_then(|v| v.parse().ok())
}

/// The max-replicas annotation.
pub fn max_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    annotation(rs, MAX_REPLICAS).and_then(|v| v.parse().ok())
}

fn skip_copy(key: &str) -> bool {
    matches!(
        key,
        LAST_APPLIED | REVISION | REVISION_HISTORY | DESIRED_REPLICAS | MAX_REPLICAS | ROLLBACK_TO
    )
}

/// Copies the Deployment's annotations (but the bookkeeping ones) to the ReplicaSet.
fn copy_annotations(d: &Deployment, rs: &mut ReplicaSet) -> bool {
    let mut changed = false;
    let target = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    for (k, v) in d.metadata.annotations.iter().flatten() {
        if skip_copy(k) || target.get(k) == Some(v) {
            continue;
        }
        target.insert(k.clone(), v.clone());
        changed = true;
    }
    changed
}

/// Sets the desired- and max-replicas annotations; whether anything changed.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let a = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (k, v) in [(DESIRED_REPLICAS, desired), (MAX_REPLICAS, max)] {
        if a.get(k).map(String::as_str) != Some(v.to_string().as_str()) {
            a.insert(k.to_string(), v.to_string());
            changed = true;
        }
    }
    changed
}

/// Whether the replicas annotations differ from these values.
pub fn replicas_annotations_need_update(rs: &ReplicaSet, desired: i32, max: i32) -> bool {
    annotation(rs, DESIRED_REPLICAS) != Some(desired.to_string().as_str())
        || annotation(rs, MAX_REPLICAS) != Some(max.to_string().as_str())
}

/// Brings the new ReplicaSet's annotations up to date (`SetNewReplicaSetAnnotations`): the
/// Deployment's annotations, the revision (only ever raised; a raised revision of an existing
/// ReplicaSet — a rollback — records the old one in the revision history), and for a ReplicaSet
/// about to be created the replica annotations. Whether anything changed.
pub fn set_new_rs_annotations(
    d: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: i64,
    exists: bool,
) -> bool {
    let mut changed = copy_annotations(d, rs);
    let a = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let old = a.get(REVISION).cloned();
    let old_n = match old.as_deref() {
        None | Some("") => 0,
        Some(v) => match v.parse::<i64>() {
            Ok(n) => n,
            Err(_) => return false,
        },
    };
    if old_n < new_revision {
        a.insert(REVISION.into(), new_revision.to_string());
        changed = true;
    }
    if let Some(old) = old.filter(|_| old_n < new_revision) {
        let history = a.get(REVISION_HISTORY).cloned().unwrap_or_default();
        if history.is_empty() {
            a.insert(REVISION_HISTORY.into(), old);
        } else {
            let mut revs: Vec<&str> = history.split(',').collect();
            let mut total = history.len() + old.len() + 1;
            let mut start = 0;
            while total > MAX_REV_HISTORY_CHARS && start < revs.len() {
                total -= revs[start].len() + 1;
                start += 1;
            }
            if total <= MAX_REV_HISTORY_CHARS {
                revs = revs.split_off(start);
                revs.push(&old);
                a.insert(REVISION_HISTORY.into(), revs.join(","));
            }
        }
    }
    if !exists && set_replicas_annotations(rs, replicas(d), replicas(d) + max_surge(d)) {
        changed = true;
    }
    changed
}

/// Sets the Deployment's revision annotation; whether it changed.
pub fn set_deployment_revision(d: &mut Deployment, revision: &str) -> bool {
    let a = d.metadata.annotations.get_or_insert_with(BTreeMap::new);
    if a.get(REVISION).map(String::as_str) == Some(revision) {
        return false;
    }
    a.insert(REVISION.into(), revision.into());
    true
}

/// Replaces the Deployment's annotations with the ReplicaSet's (keeping the bookkeeping ones),
/// for a rollback (`SetDeploymentAnnotationsTo`).
pub fn set_deployment_annotations_to(d: &mut Deployment, rs: &ReplicaSet) {
    let mut kept: BTreeMap<String, String> = d
        .metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| skip_copy(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, v) in rs.metadata.annotations.iter().flatten() {
        if !skip_copy(k) {
            kept.insert(k.clone(), v.clone());
        }
    }
    d.metadata.annotations = Some(kept);
}

/// Whether the ReplicaSet runs all the Deployment's replicas, all available (`IsSaturated`).
pub fn is_saturated(d: &Deployment, rs: Option<&ReplicaSet>) -> bool {
    let Some(rs) = rs else { return false };
    let want = replicas(d);
    rs_replicas(rs) == want
        && desired_replicas_annotation(rs) == Some(want)
        && rs_available(rs) == want
}

/// The only active ReplicaSet, or the newest when none is active; `None` with several active
/// (`FindActiveOrLatest`).
pub fn find_active_or_latest<'a>(
    new_rs: Option<&'a ReplicaSet>,
    olds: &'a [ReplicaSet],
) -> Option<&'a ReplicaSet> {
    if new_rs.is_none() && olds.is_empty() {
        return None;
    }
    let mut sorted: Vec<&ReplicaSet> = olds.iter().collect();
    sorted.sort_by(|a, b| by_creation(b, a));
    let active: Vec<&ReplicaSet> = sorted
        .iter()
        .copied()
        .chain(new_rs)
        .filter(|r| rs_replicas(r) > 0)
        .collect();
    match active.len() {
        0 => new_rs.or_else(|| sorted.first().copied()),
        1 => Some(active[0]),
        _ => None,
    }
}

/// How many replicas a ReplicaSet gains or loses when the Deployment is resized mid-rollout
/// (`GetReplicaSetProportion`).
pub fn proportion(rs: &ReplicaSet, d: &Deployment, to_add: i32, added: i32) -> i32 {
    if rs_replicas(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = fraction(rs, d);
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

fn fraction(rs: &ReplicaSet, d: &Deployment) -> i32 {
    if replicas(d) == 0 {
        return -rs_replicas(rs);
    }
    let max_now = replicas(d) + max_surge(d);
    let mut before = max_replicas_annotation(rs).unwrap_or(0);
    if before == 0 {
        before = d
            .status
            .as_ref()
            .map(|s| s.replicas.unwrap_or(0))
            .unwrap_or(0);
        if before == 0 {
            return 0;
        }
    }
    let size = f64::from(rs_replicas(rs)) * f64::from(max_now) / f64::from(before);
    size.round() as i32 - rs_replicas(rs)
}

/// Whether `progressDeadlineSeconds` is set (and not MaxInt32).
pub fn has_progress_deadline(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .is_some_and(|p| p != i32::MAX)
}

/// A condition stamped `now` (whole seconds, as metav1.Time keeps them).
pub fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: jiff::Timestamp,
) -> DeploymentCondition {
    let now = Time(jiff::Timestamp::from_second(now.as_second()).unwrap_or(now));
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(now.clone()),
        last_transition_time: Some(now),
    }
}

/// The condition of a type.
pub fn get_condition<'a>(
    status: &'a DeploymentStatus,
    type_: &str,
) -> Option<&'a DeploymentCondition> {
    status
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// Sets a condition unless one with the same status and reason exists; keeps the transition
/// time when only the reason changes (`SetDeploymentCondition`).
pub fn set_condition(status: &mut DeploymentStatus, mut c: DeploymentCondition) {
    if let Some(cur) = get_condition(status, &c.type_) {
        if cur.status == c.status && cur.reason == c.reason {
            return;
        }
        if cur.status == c.status {
            c.last_transition_time = cur.last_transition_time.clone();
        }
    }
    remove_condition(status, &c.type_.clone());
    status.conditions.get_or_insert_with(Vec::new).push(c);
}

/// Removes the condition of a type.
pub fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(cs) = status.conditions.as_mut() {
        cs.retain(|c| c.type_ != type_);
    }
}

/// Whether the status equals another, counting absent numbers as zero.
pub fn status_eq(a: &DeploymentStatus, b: &DeploymentStatus) -> bool {
    let n = |v: Option<i32>| v.unwrap_or(0);
    n(a.replicas) == n(b.replicas)
        && n(a.updated_replicas) == n(b.updated_replicas)
        && n(a.ready_replicas) == n(b.ready_replicas)
        && n(a.available_replicas) == n(b.available_replicas)
        && n(a.unavailable_replicas) == n(b.unavailable_replicas)
        && a.observed_generation.unwrap_or(0) == b.observed_generation.unwrap_or(0)
        && a.collision_count == b.collision_count
        && a.conditions.as_deref().unwrap_or_default()
            == b.conditions.as_deref().unwrap_or_default()
}

/// Every replica updated and available, and the generation observed (`DeploymentComplete`).
pub fn deployment_complete(d: &Deployment, s: &DeploymentStatus) -> bool {
    let want = replicas(d);
    s.updated_replicas.unwrap_or(0) == want
        && s.replicas.unwrap_or(0) == want
        && s.available_replicas.unwrap_or(0) == want
        && s.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// Whether the new status shows progress over the stored one (`DeploymentProgressing`).
pub fn deployment_progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let n = |v: Option<i32>| v.unwrap_or(0);
    let old_old = n(old.replicas) - n(old.updated_replicas);
    let new_old = n(new.replicas) - n(new.updated_replicas);
    n(new.updated_replicas) > n(old.updated_replicas)
        || new_old < old_old
        || n(new.ready_replicas) > n(old.ready_replicas)
        || n(new.available_replicas) > n(old.available_replicas)
}

/// Whether the rollout has made no progress for progressDeadlineSeconds
/// (`DeploymentTimedOut`).
pub fn deployment_timed_out(d: &Deployment, new: &DeploymentStatus, now: jiff::Timestamp) -> bool {
    if !has_progress_deadline(d) {
        return false;
    }
    let Some(c) = get_condition(new, reason::PROGRESSING) else {
        return false;
    };
    match c.reason.as_deref() {
        Some(reason::NEW_RS_AVAILABLE) => return false,
        Some(reason::TIMED_OUT) => return true,
        _ => {}
    }
    let Some(from) = c.last_update_time.as_ref() else {
        return false;
    };
    let deadline = d
        .spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .unwrap_or(600);
    crate::clock::plus_secs(from.0, i64::from(deadline)) < now
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{
        DeploymentSpec, DeploymentStrategy, ReplicaSetSpec, RollingUpdateDeployment,
    };

    fn pct(s: &str) -> IntOrString {
        IntOrString::String(s.into())
    }

    fn deployment(replicas: i32, surge: IntOrString, unavailable: IntOrString) -> Deployment {
        Deployment {
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                strategy: Some(DeploymentStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateDeployment {
                        max_surge: Some(surge),
                        max_unavailable: Some(unavailable),
                    }),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn rs(name: &str, replicas: i32, created_secs: i64) -> ReplicaSet {
        ReplicaSet {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(name.into()),
                uid: Some(name.into()),
                creation_timestamp: Some(Time(jiff::Timestamp::from_second(created_secs).unwrap())),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                ..Default::default()
            }),
            status: None,
        }
    }

    /// Kubernetes' documented fenceposts: "25%" of 10 is 3 surge (rounded up) and 2
    /// unavailable (rounded down); of 3 it is 1 and 0 — the defaults with 3 replicas create
    /// one new pod before removing an old one.
    #[test]
    fn fenceposts_round_surge_up_and_unavailability_down() {
        let cases: &[(i32, IntOrString, IntOrString, (i32, i32))] = &[
            (10, pct("25%"), pct("25%"), (3, 2)),
            (3, pct("25%"), pct("25%"), (1, 0)),
            (4, pct("25%"), pct("25%"), (1, 1)),
            (10, pct("30%"), pct("30%"), (3, 3)),
            (1, pct("10%"), pct("10%"), (1, 0)),
            (5, IntOrString::Int(0), IntOrString::Int(0), (0, 1)),
            (5, IntOrString::Int(0), pct("10%"), (0, 1)),
            (10, IntOrString::Int(3), IntOrString::Int(2), (3, 2)),
            (0, pct("25%"), pct("25%"), (0, 1)),
        ];
        for (replicas, surge, unavail, want) in cases {
            assert_eq!(
                resolve_fenceposts(Some(surge), Some(unavail), *replicas).unwrap(),
                *want,
                "replicas {replicas} surge {surge:?} unavailable {unavail:?}"
            );
        }
        assert!(resolve_fenceposts(Some(&pct("ten")), None, 3).is_err());
        assert!(resolve_fenceposts(Some(&IntOrString::String("3".into())), None, 3).is_err());
        // maxUnavailable never exceeds replicas.
        let d = deployment(2, IntOrString::Int(0), IntOrString::Int(5));
        assert_eq!(max_unavailable(&d), 2);
    }

    /// `NewRSNewReplicas` (rows of Kubernetes' TestDeploymentController_reconcileNewReplicaSet).
    #[test]
    fn new_replica_set_grows_within_max_surge() {
        // (replicas, maxSurge, old replicas, new replicas) → new size
        let cases = [
            (10, 0, 10, 0, 0),
            (10, 2, 10, 0, 2),
            (10, 2, 5, 0, 7),
            (10, 2, 10, 2, 2),
            (10, 2, 2, 8, 10),
            (3, 1, 3, 0, 1),
            (3, 1, 2, 1, 2),
        ];
        for (want_replicas, surge, old, new, expect) in cases {
            let d = deployment(want_replicas, IntOrString::Int(surge), IntOrString::Int(0));
            let (o, n) = (rs("old", old, 1), rs("new", new, 2));
            assert_eq!(
                new_rs_new_replicas(&d, &[&o, &n], &n),
                expect,
                "replicas {want_replicas} surge {surge} old {old} new {new}"
            );
        }
    }

    /// The documented proportional-scaling example: 10 replicas, maxSurge 3, a rollout stuck
    /// with 8 old and 5 new; scaling to 15 adds 3 to the old and 2 to the new ReplicaSet.
    #[test]
    fn proportional_scaling_matches_the_documented_example() {
        let d = deployment(15, IntOrString::Int(3), IntOrString::Int(2));
        let mut old = rs("old", 8, 1);
        let mut new = rs("new", 5, 2);
        set_replicas_annotations(&mut old, 10, 13);
        set_replicas_annotations(&mut new, 10, 13);
        let allowed = replicas(&d) + max_surge(&d);
        let to_add = allowed - spec_sum([&old, &new]);
        assert_eq!(to_add, 5);
        let mut all = vec![new.clone(), old.clone()];
        all.sort_by(by_size_newer);
        assert_eq!(
            all[0].metadata.name.as_deref(),
            Some("old"),
            "largest first"
        );
        let mut added = 0;
        let mut sizes = vec![];
        for r in &all {
            let p = proportion(r, &d, to_add, added);
            added += p;
            sizes.push(rs_replicas(r) + p);
        }
        sizes[0] += to_add - added;
        assert_eq!(sizes, vec![11, 7]);
        // Scaling down to 0 takes everything.
        let zero = deployment(0, IntOrString::Int(3), IntOrString::Int(2));
        assert_eq!(proportion(&old, &zero, -13, 0), -8);
    }

    #[test]
    fn template_hash_and_equality_ignore_the_hash_label() {
        let mut a = PodTemplateSpec {
            metadata: Some(Default::default()),
            ..Default::default()
        };
        a.metadata.as_mut().unwrap().labels = Some(BTreeMap::from([("app".into(), "web".into())]));
        let mut b = a.clone();
        b.metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .insert(POD_TEMPLATE_HASH.into(), "abc".into());
        assert!(equal_ignore_hash(&a, &b));
        let mut c = a.clone();
        c.metadata.as_mut().unwrap().annotations = Some(BTreeMap::new());
        assert!(equal_ignore_hash(&a, &c), "empty and absent are equal");
        c.metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .insert("v".into(), "2".into());
        assert!(!equal_ignore_hash(&a, &c));
        let h = compute_hash(&a, None);
        assert_eq!(h, compute_hash(&b, None), "stable");
        assert_ne!(h, compute_hash(&a, Some(1)), "collisions change the hash");
        assert_ne!(h, compute_hash(&c, None));
        assert!(
            h.len() <= 10
                && h.chars()
                    .all(|ch| "bcdfghjklmnpqrstvwxz2456789".contains(ch)),
            "{h}"
        );
    }

    #[test]
    fn revisions_and_history() {
        let d = deployment(3, pct("25%"), pct("25%"));
        let mut r = rs("r", 3, 1);
        assert!(set_new_rs_annotations(&d, &mut r, 1, false));
        assert_eq!(revision(&r), 1);
        assert_eq!(desired_replicas_annotation(&r), Some(3));
        assert_eq!(max_replicas_annotation(&r), Some(4));
        assert!(!set_new_rs_annotations(&d, &mut r, 1, true), "nothing new");
        // Rolled back to: the revision rises and the old one goes to the history.
        assert!(set_new_rs_annotations(&d, &mut r, 4, true));
        assert!(set_new_rs_annotations(&d, &mut r, 6, true));
        let a = r.metadata.annotations.clone().unwrap();
        assert_eq!(a[REVISION], "6");
        assert_eq!(a[REVISION_HISTORY], "1,4");
        assert!(
            !set_new_rs_annotations(&d, &mut r, 5, true),
            "never lowered"
        );
        let rs2 = rs("b", 0, 2);
        let mut rs3 = rs("c", 0, 3);
        rs3.metadata.annotations = Some(BTreeMap::from([(REVISION.into(), "3".into())]));
        assert_eq!(last_revision(&[&r, &rs2, &rs3]), 3);
        assert_eq!(max_revision(&[r, rs2, rs3]), 6);
    }

    #[test]
    fn active_or_latest() {
        let a = rs("a", 0, 1);
        let b = rs("b", 0, 2);
        let c = rs("c", 3, 3);
        assert_eq!(
            find_active_or_latest(None, &[a.clone(), b.clone()])
                .unwrap()
                .metadata
                .name
                .as_deref(),
            Some("b")
        );
        assert_eq!(
            find_active_or_latest(Some(&c), std::slice::from_ref(&a))
                .unwrap()
                .metadata
                .name
                .as_deref(),
            Some("c")
        );
        let d2 = rs("d", 1, 4);
        assert!(find_active_or_latest(Some(&c), &[d2]).is_none());
    }
}
