//! ReplicaSet status (`calculateStatus` / `updateReplicaSetStatus`): replicas,
//! fullyLabeledReplicas, readyReplicas, availableReplicas (ready for minReadySeconds),
//! observedGeneration and the ReplicaFailure condition, written through the status subresource
//! only when something changed.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::PostParams;

use crate::podutil::{is_available, is_ready};

/// The condition type set when pods cannot be created or deleted.
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

/// The status the ReplicaSet should have, given the active pods it controls and the error of
/// its last attempt to create or delete pods.
pub fn calculate(
    rs: &ReplicaSet,
    pods: &[Arc<Pod>],
    manage_error: Option<&str>,
    now: jiff::Timestamp,
) -> ReplicaSetStatus {
    let mut status = rs.status.clone().unwrap_or_default();
    let spec = rs.spec.as_ref();
    let template_labels = spec
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let min_ready = spec.and_then(|s| s.min_ready_seconds).unwrap_or(0);
    let mut fully_labeled = 0;
    let mut ready = 0;
    let mut available = 0;
    for pod in pods {
        let labels = pod.metadata.labels.as_ref();
        if template_labels
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        {
            fully_labeled += 1;
        }
        if is_ready(pod) {
            ready += 1;
            if is_available(pod, min_ready, now) {
                available += 1;
            }
        }
    }
    let has_failure = status
        .conditions
        .as_ref()
        .is_some_and(|c| c.iter().any(|c| c.type_ == REPLICA_FAILURE));
    match manage_error {
        Some(err) if !has_failure => {
            let desired = spec.and_then(|s| s.replicas).unwrap_or(1);
            let diff = pods.len() as i64 - i64::from(desired);
            let reason = match diff.cmp(&0) {
                std::cmp::Ordering::Less => "FailedCreate",
                std::cmp::Ordering::Greater => "FailedDelete",
                std::cmp::Ordering::Equal => "",
            };
            status
                .conditions
                .get_or_insert_with(Vec::new)
                .push(ReplicaSetCondition {
                    type_: REPLICA_FAILURE.into(),
                    status: "True".into(),
                    reason: Some(reason.into()),
                    message: Some(err.to_string()),
                    last_transition_time: Some(
                        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now),
                    ),
                });
        }
        None if has_failure => {
            if let Some(c) = status.conditions.as_mut() {
                c.retain(|c| c.type_ != REPLICA_FAILURE);
            }
            if status.conditions.as_ref().is_some_and(Vec::is_empty) {
                status.conditions = None;
            }
        }
        _ => {}
    }
    status.replicas = pods.len() as i32;
    status.fully_labeled_replicas = Some(fully_labeled);
    status.ready_replicas = Some(ready);
    status.available_replicas = Some(available);
    status
}

/// Writes `status` unless the ReplicaSet already has it (and has observed its generation).
/// On a conflict the ReplicaSet is read again and the write retried once, as Kubernetes does.
pub async fn update(
    api: &Api<ReplicaSet>,
    rs: &ReplicaSet,
    mut status: ReplicaSetStatus,
) -> Result<ReplicaSet, kube::Error> {
    let current = rs.status.clone().unwrap_or_default();
    let generation = rs.metadata.generation.unwrap_or(0);
    let same = current.replicas == status.replicas
        && current.fully_labeled_replicas.unwrap_or(0)
            == status.fully_labeled_replicas.unwrap_or(0)
        && current.ready_replicas.unwrap_or(0) == status.ready_replicas.unwrap_or(0)
        && current.available_replicas.unwrap_or(0) == status.available_replicas.unwrap_or(0)
        && current.observed_generation.unwrap_or(0) == generation
        && current.conditions.as_deref().unwrap_or_default()
            == status.conditions.as_deref().unwrap_or_default();
    if same {
        return Ok(rs.clone());
    }
    status.observed_generation = Some(generation);
    let name = rs.metadata.name.clone().unwrap_or_default();
    let mut target = rs.clone();
    for attempt in 0..2 {
        target.status = Some(status.clone());
        match api
            .replace_status(&name, &PostParams::default(), &target)
            .await
        {
            Ok(updated) => return Ok(updated),
            Err(e) if attempt == 0 && crate::runner::is_conflict(&e) => {
                target = api.get(&name).await?;
            }
            Err(e) => return Err(e),
        }
    }
    unreachable!("the loop returns")
}
