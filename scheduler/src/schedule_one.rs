//! The scheduling loop: pop a pod, update the snapshot, run its profile's framework, and then
//!
//! - on success, assume the pod on the node and bind it in a background task, so the next
//!   cycle starts at once (binds are pipelined, bounded by a semaphore); a failed bind forgets
//!   the assumed pod and re-queues it with backoff;
//! - when no node fits, run PostFilter (preemption: evict victims, nominate the node), emit a
//!   `FailedScheduling` event with Kubernetes' message, set the pod's `PodScheduled=False`
//!   condition (reason `Unschedulable`) and park it in the unschedulable queue.

use std::collections::HashSet;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cache::Snapshot;
use crate::events::{EventRecord, pod_ref};
use crate::framework::runtime::{CycleContext, Framework, ScheduleError};
use crate::framework::{Candidate, CycleState};
use crate::metrics::AttemptResult;
use crate::pod_info::PodInfo;
use crate::queue::QueuedPod;
use crate::scheduler::Shared;

/// Runs scheduling cycles until `stop` or `lost` is cancelled (or the queue closes).
pub(crate) async fn scheduling_loop(
    shared: Arc<Shared>,
    seed: Option<u64>,
    max_binds: usize,
    stop: CancellationToken,
    lost: CancellationToken,
) {
    let seed = seed.unwrap_or_else(rand::random);
    let mut ctx = CycleContext::new(seed);
    let mut snapshot = Snapshot::new();
    let mut state = CycleState::new();
    let binds = Arc::new(Semaphore::new(max_binds));
    loop {
        let popped = tokio::select! {
            biased;
            _ = stop.cancelled() => None,
            _ = lost.cancelled() => None,
            p = shared.queue.pop() => p,
        };
        let Some((qp, cycle)) = popped else {
            break;
        };
        schedule_one(
            &shared,
            qp,
            cycle,
            &mut state,
            &mut snapshot,
            &mut ctx,
            &binds,
        )
        .await;
    }
}

async fn schedule_one(
    shared: &Arc<Shared>,
    qp: QueuedPod,
    cycle: u64,
    state: &mut CycleState,
    snapshot: &mut Snapshot,
    ctx: &mut CycleContext,
    binds: &Arc<Semaphore>,
) {
    let pod = qp.info.clone();
    let Some(fwk) = shared.frameworks.get(&pod.scheduler_name).cloned() else {
        shared.queue.done(&pod.key);
        return;
    };
    let start = Instant::now();
    {
        let mut cache = shared.cache();
        if cache.node_of(&pod.key).is_some() {
            // Bound (or being bound) already.
            drop(cache);
            shared.queue.done(&pod.key);
            return;
        }
        cache.update_snapshot(snapshot);
    }
    match fwk.schedule_pod(state, &pod, snapshot, ctx) {
        Ok(result) => {
            let assumed = {
                let mut cache = shared.cache();
                let r = cache.assume_pod(pod.clone(), &result.node);
                cache.clear_nominated(&pod.key);
                r
            };
            let took = start.elapsed();
            shared.metrics.cycle_time(took);
            if let Err(e) = assumed {
                tracing::error!(pod = %pod.key, error = %e, "assuming pod");
                shared
                    .metrics
                    .attempt(AttemptResult::Error, &fwk.scheduler_name, took);
                shared.queue.requeue(&pod.key, HashSet::new(), cycle, true);
                return;
            }
            tracing::debug!(pod = %pod.key, node = %result.node, evaluated = result.evaluated,
                feasible = result.feasible, "assumed");
            let permit = binds
                .clone()
                .acquire_owned()
                .await
                .expect("the bind semaphore is never closed");
            tokio::spawn(bind(
                shared.clone(),
                fwk,
                qp,
                result.node,
                cycle,
                took,
                permit,
            ));
        }
        Err(ScheduleError::Fit(mut fit)) => {
            let mut candidate = None;
            if fit.num_all_nodes > 0
                && let Some(r) = fwk.run_post_filter(state, &pod, snapshot, &fit.statuses)
            {
                match r.candidate {
                    Some(c) => candidate = Some(c),
                    None if !r.status.reasons.is_empty() => {
                        fit.post_filter_msg = Some(r.status.message())
                    }
                    None => {}
                }
            }
            let took = start.elapsed();
            shared.metrics.cycle_time(took);
            shared
                .metrics
                .attempt(AttemptResult::Unschedulable, &fwk.scheduler_name, took);
            let message = fit.to_string();
            tracing::debug!(pod = %pod.key, %message, "unschedulable");
            let nominated = match &candidate {
                Some(c) => {
                    shared.cache().set_nominated(&pod, Some(&c.node));
                    shared.metrics.preemption(c.victims.len());
                    Some(Some(c.node.clone()))
                }
                // A failed preemption clears an old nomination.
                None if pod.nominated_node_name.is_some() => {
                    shared.cache().clear_nominated(&pod.key);
                    Some(None)
                }
                None => None,
            };
            if let Some(c) = candidate {
                tokio::spawn(preempt(shared.clone(), fwk.clone(), pod.clone(), c));
            }
            record_failure(shared, &fwk, &pod, "Unschedulable", message, nominated);
            shared
                .queue
                .requeue(&pod.key, fit.unschedulable_plugins, cycle, false);
        }
        Err(e @ ScheduleError::Internal(_)) => {
            let took = start.elapsed();
            shared.metrics.cycle_time(took);
            shared
                .metrics
                .attempt(AttemptResult::Error, &fwk.scheduler_name, took);
            tracing::warn!(pod = %pod.key, error = %e, "scheduling error");
            record_failure(shared, &fwk, &pod, "SchedulerError", e.to_string(), None);
            shared.queue.requeue(&pod.key, HashSet::new(), cycle, true);
        }
    }
}

/// The binding cycle of one pod, in the background.
async fn bind(
    shared: Arc<Shared>,
    fwk: Arc<Framework>,
    qp: QueuedPod,
    node: String,
    cycle: u64,
    cycle_time: std::time::Duration,
    permit: OwnedSemaphorePermit,
) {
    let pod = qp.info.clone();
    let start = Instant::now();
    let status = fwk.run_bind(&pod, &node).await;
    let took = start.elapsed();
    drop(permit);
    if status.is_success() {
        shared.metrics.bound(took);
        shared
            .metrics
            .attempt(AttemptResult::Scheduled, &fwk.scheduler_name, cycle_time);
        shared.metrics.e2e(qp.added.elapsed());
        shared.queue.done(&pod.key);
        shared.recorder.record(EventRecord {
            regarding: pod_ref(&pod),
            type_: "Normal",
            reason: "Scheduled",
            action: "Binding",
            note: format!(
                "Successfully assigned {}/{} to {}",
                pod.namespace, pod.name, node
            ),
            controller: fwk.scheduler_name.clone(),
        });
        return;
    }
    let confirmed = {
        let mut cache = shared.cache();
        // The watch may already show the pod bound (the request failed late): keep it.
        cache.forget_pod(&pod.key).is_err() && cache.node_of(&pod.key).is_some()
    };
    if confirmed {
        shared.queue.done(&pod.key);
        return;
    }
    shared
        .metrics
        .attempt(AttemptResult::Error, &fwk.scheduler_name, cycle_time);
    let message = format!("Binding rejected: {}", status.message());
    tracing::warn!(pod = %pod.key, %node, %message, "binding failed");
    record_failure(&shared, &fwk, &pod, "SchedulerError", message, None);
    shared.queue.requeue(&pod.key, HashSet::new(), cycle, true);
}

/// A `FailedScheduling` event and the pod's `PodScheduled=False` condition (and
/// `nominatedNodeName` when `nominated` is `Some`).
fn record_failure(
    shared: &Arc<Shared>,
    fwk: &Framework,
    pod: &Arc<PodInfo>,
    reason: &'static str,
    message: String,
    nominated: Option<Option<String>>,
) {
    shared.recorder.record(EventRecord {
        regarding: pod_ref(pod),
        type_: "Warning",
        reason: "FailedScheduling",
        action: "Scheduling",
        note: message.clone(),
        controller: fwk.scheduler_name.clone(),
    });
    let current = pod
        .object()
        .and_then(|p| p.status.as_ref())
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"));
    let unchanged = current.is_some_and(|c| {
        c.status == "False"
            && c.reason.as_deref() == Some(reason)
            && c.message.as_deref() == Some(message.as_str())
    });
    let nominated_unchanged = nominated
        .as_ref()
        .is_none_or(|n| n.as_deref() == pod.nominated_node_name.as_deref());
    if unchanged && nominated_unchanged {
        return;
    }
    let transition = match current {
        Some(c) if c.status == "False" => c.last_transition_time.clone(),
        _ => None,
    }
    .map(|t| serde_json::to_value(t).unwrap_or_default())
    .unwrap_or_else(now_time);
    let mut status = serde_json::json!({
        "conditions": [{
            "type": "PodScheduled",
            "status": "False",
            "reason": reason,
            "message": message,
            "lastProbeTime": null,
            "lastTransitionTime": transition,
        }]
    });
    if let Some(n) = nominated {
        status["nominatedNodeName"] = n.map_or(serde_json::Value::Null, serde_json::Value::String);
    }
    let api: Api<Pod> = Api::namespaced(shared.client.clone(), &pod.namespace);
    let name = pod.name.clone();
    tokio::spawn(async move {
        let patch = serde_json::json!({ "status": status });
        if let Err(e) = api
            .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
        {
            tracing::debug!(pod = %name, error = %e, "updating pod status");
        }
    });
}

/// The current time as a Kubernetes `Time` in JSON.
fn now_time() -> serde_json::Value {
    serde_json::to_value(Time(jiff::Timestamp::now())).unwrap_or_default()
}

/// Evicts the victims of a preemption and clears lower-priority nominations on the node.
async fn preempt(shared: Arc<Shared>, fwk: Arc<Framework>, pod: Arc<PodInfo>, c: Candidate) {
    for v in &c.victims {
        let api: Api<Pod> = Api::namespaced(shared.client.clone(), &v.namespace);
        let condition = serde_json::json!({"status": {"conditions": [{
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "PreemptionByScheduler",
            "message": format!("{}: preempting to accommodate a higher priority pod", fwk.scheduler_name),
            "lastTransitionTime": now_time(),
        }]}});
        if let Err(e) = api
            .patch_status(
                &v.name,
                &PatchParams::default(),
                &Patch::Strategic(&condition),
            )
            .await
        {
            tracing::debug!(pod = %v.key, error = %e, "marking preemption victim");
        }
        match api.delete(&v.name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                tracing::warn!(pod = %v.key, error = %e, "evicting preemption victim");
                continue;
            }
        }
        tracing::info!(victim = %v.key, preemptor = %pod.key, node = %c.node, "preempted");
        shared.recorder.record(EventRecord {
            regarding: pod_ref(v),
            type_: "Normal",
            reason: "Preempted",
            action: "Preempting",
            note: format!(
                "Preempted by {}/{} on node {}",
                pod.namespace, pod.name, c.node
            ),
            controller: fwk.scheduler_name.clone(),
        });
    }
    let lower: Vec<Arc<PodInfo>> = shared
        .cache()
        .nominated_on(&c.node)
        .into_iter()
        .filter(|p| p.priority < pod.priority && p.key != pod.key)
        .collect();
    for p in lower {
        shared.cache().clear_nominated(&p.key);
        let api: Api<Pod> = Api::namespaced(shared.client.clone(), &p.namespace);
        let patch = serde_json::json!({"status": {"nominatedNodeName": null}});
        if let Err(e) = api
            .patch_status(&p.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::debug!(pod = %p.key, error = %e, "clearing nomination");
        }
    }
}
