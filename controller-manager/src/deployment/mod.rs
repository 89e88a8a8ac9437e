//! The Deployment controller: rolls a Deployment's pod template out through ReplicaSets.
//!
//! A reconcile claims the Deployment's ReplicaSets (adopting orphans that match its selector,
//! releasing those that stopped matching), then — as Kubernetes' `syncDeployment` — records
//! pause/resume, handles a paused Deployment or a change of `replicas` by (proportional)
//! scaling ([`sync`]), performs requested rollbacks ([`rollback`]), and otherwise advances the
//! rollout with the Recreate ([`recreate`]) or RollingUpdate ([`rolling`]) strategy, finally
//! writing the status and conditions ([`progress`]). The arithmetic lives in [`util`].
//! ReplicaSet changes wake their Deployment; so do deleted pods (Recreate waits for them).

pub mod progress;
pub mod recreate;
pub mod rollback;
pub mod rolling;
pub mod sync;
pub mod util;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::{StreamExt, stream};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client};
use rkube_machinery::selector::LabelSelector;

use crate::Shared;
use crate::clock::Clock;
use crate::controller_ref::{ClaimError, claim};
use crate::events::Recorder;
use crate::informer::{Change, ref_in};
use crate::podutil::{controller_of, controller_ref, key};
use crate::runner::Wiring;
use sync::Sync;

/// The controller's name.
pub const NAME: &str = "deployment-controller";
/// The ServiceAccount (in kube-system) it acts as with `--use-service-account-credentials`.
pub const ACCOUNT: &str = "deployment-controller";

/// What a reconcile needs.
pub struct Ctx {
    /// The API.
    pub client: Client,
    /// The shared ReplicaSet cache.
    pub replicasets: Store<ReplicaSet>,
    /// The shared pod cache.
    pub pods: Store<Pod>,
    /// Events.
    pub recorder: Recorder,
    /// The clock (progress deadlines).
    pub clock: Clock,
}

/// Why a Deployment could not be reconciled.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("deployment {key}: {what}: {source}")]
    Api {
        /// The Deployment.
        key: String,
        /// What was being done.
        what: &'static str,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Claiming ReplicaSets failed.
    #[error("deployment {key}: {source}")]
    Claim {
        /// The Deployment.
        key: String,
        /// What failed.
        #[source]
        source: ClaimError,
    },
}

/// One sync of a Deployment (`syncDeployment`).
pub async fn reconcile(d: Arc<Deployment>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let d_key = key(&d.metadata);
    let Some(spec) = d.spec.as_ref() else {
        return Ok(Action::await_change());
    };
    let mut s = Sync::new(&ctx, (*d).clone());
    let empty_selector = spec
        .selector
        .match_labels
        .as_ref()
        .is_none_or(|m| m.is_empty())
        && spec
            .selector
            .match_expressions
            .as_ref()
            .is_none_or(|m| m.is_empty());
    if empty_selector {
        ctx.recorder.warning(
            &*d,
            "SelectingAll",
            "This deployment is selecting all pods. A non-empty selector is required.".into(),
        );
        let generation = d.metadata.generation.unwrap_or(0);
        let observed = d
            .status
            .as_ref()
            .and_then(|s| s.observed_generation)
            .unwrap_or(0);
        if observed < generation {
            s.d.status
                .get_or_insert_with(Default::default)
                .observed_generation = Some(generation);
            s.update_status().await?;
        }
        return Ok(Action::await_change());
    }
    let selector = match LabelSelector::from_k8s(&spec.selector) {
        Ok(sel) => sel,
        Err(e) => {
            tracing::warn!(deployment = %d_key, error = %e, "invalid selector");
            return Ok(Action::await_change());
        }
    };
    let rs_list = claim_replicasets(&ctx, &d, &selector).await?;
    if d.metadata.deletion_timestamp.is_some() {
        s.sync_status_only(&rs_list).await?;
        return Ok(Action::await_change());
    }
    s.check_paused_conditions().await?;
    if s.paused() {
        s.sync(&rs_list).await?;
    } else if s.rollback_to().is_some() {
        s.rollback(&rs_list).await?;
    } else if s.is_scaling_event(&rs_list).await? {
        s.sync(&rs_list).await?;
    } else if util::is_rolling(&d) {
        s.rollout_rolling(&rs_list).await?;
    } else {
        let pods = pods_by_replicaset(&ctx, &d, &selector, &rs_list);
        s.rollout_recreate(&rs_list, &pods).await?;
    }
    Ok(s.requeue
        .map(Action::requeue)
        .unwrap_or_else(Action::await_change))
}

/// The ReplicaSets the Deployment controls after adoption and release
/// (`getReplicaSetsForDeployment`).
async fn claim_replicasets(
    ctx: &Ctx,
    d: &Deployment,
    selector: &LabelSelector,
) -> Result<Vec<ReplicaSet>, Error> {
    let ns = d.metadata.namespace.clone().unwrap_or_default();
    let candidates: Vec<Arc<ReplicaSet>> = ctx
        .replicasets
        .state()
        .into_iter()
        .filter(|r| r.metadata.namespace.as_deref() == Some(ns.as_str()))
        .collect();
    let rs_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    let d_api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    let owner = controller_ref(d);
    let claimed = claim(
        &rs_api,
        &owner,
        Some(&ns),
        d.metadata.deletion_timestamp.is_some(),
        selector,
        candidates,
        || async {
            let fresh = d_api
                .get(d.metadata.name.as_deref().unwrap_or_default())
                .await
                .map_err(|e| e.to_string())?;
            if fresh.metadata.uid != d.metadata.uid {
                return Err(format!("original Deployment {} is gone", key(&d.metadata)));
            }
            if fresh.metadata.deletion_timestamp.is_some() {
                return Err(format!("{} has just been deleted", key(&d.metadata)));
            }
            Ok(())
        },
    )
    .await
    .map_err(|source| Error::Claim {
        key: key(&d.metadata),
        source,
    })?;
    Ok(claimed.into_iter().map(|r| (*r).clone()).collect())
}

/// The Deployment's pods grouped by the UID of the ReplicaSet controlling them
/// (`getPodMapForDeployment`).
fn pods_by_replicaset(
    ctx: &Ctx,
    d: &Deployment,
    selector: &LabelSelector,
    rs_list: &[ReplicaSet],
) -> HashMap<String, Vec<Arc<Pod>>> {
    let mut map: HashMap<String, Vec<Arc<Pod>>> = rs_list
        .iter()
        .filter_map(|r| r.metadata.uid.clone())
        .map(|u| (u, Vec::new()))
        .collect();
    let ns = d.metadata.namespace.as_deref();
    for pod in ctx.pods.state() {
        if pod.metadata.namespace.as_deref() != ns
            || !selector.matches_opt(pod.metadata.labels.as_ref())
        {
            continue;
        }
        if let Some(owner) = controller_of(&pod.metadata)
            && let Some(list) = map.get_mut(&owner.uid)
        {
            list.push(pod.clone());
        }
    }
    map
}

/// The Deployments a ReplicaSet concerns: its controller, or for an orphan every Deployment in
/// its namespace whose selector matches it.
pub fn deployments_for_replicaset(
    deployments: &Store<Deployment>,
    rs: &ReplicaSet,
) -> Vec<ObjectRef<Deployment>> {
    let ns = rs.metadata.namespace.as_deref();
    if let Some(r) = controller_of(&rs.metadata) {
        if r.kind == "Deployment" {
            return vec![ref_in(ns, &r.name)];
        }
        return vec![];
    }
    deployments
        .state()
        .into_iter()
        .filter(|d| d.metadata.namespace.as_deref() == ns)
        .filter(|d| {
            d.spec
                .as_ref()
                .and_then(|s| LabelSelector::from_k8s(&s.selector).ok())
                .is_some_and(|s| !s.is_everything() && s.matches_opt(rs.metadata.labels.as_ref()))
        })
        .map(|d| ObjectRef::from_obj(&*d))
        .collect()
}

/// The Deployments to reconcile for a ReplicaSet change.
pub fn map_rs_change(
    deployments: &Store<Deployment>,
    change: &Change<ReplicaSet>,
) -> Vec<ObjectRef<Deployment>> {
    let mut refs = deployments_for_replicaset(deployments, change.object());
    if let Some(old) = change.old()
        && (old.metadata.labels != change.object().metadata.labels
            || controller_of(&old.metadata) != controller_of(&change.object().metadata))
    {
        for r in deployments_for_replicaset(deployments, old) {
            if !refs.contains(&r) {
                refs.push(r);
            }
        }
    }
    refs
}

/// The Deployment of a deleted pod (through its ReplicaSet), for Recreate rollouts.
fn map_pod_deletion(
    replicasets: &Store<ReplicaSet>,
    change: &Change<Pod>,
) -> Vec<ObjectRef<Deployment>> {
    let Change::Deleted(pod) = change else {
        return vec![];
    };
    let Some(owner) = controller_of(&pod.metadata).filter(|r| r.kind == "ReplicaSet") else {
        return vec![];
    };
    let ns = pod.metadata.namespace.as_deref();
    let Some(rs) = replicasets.get(&ref_in(ns, &owner.name)) else {
        return vec![];
    };
    controller_of(&rs.metadata)
        .filter(|r| r.kind == "Deployment")
        .map(|r| vec![ref_in(ns, &r.name)])
        .unwrap_or_default()
}

/// Builds the controller and returns the future that runs it.
pub fn start(shared: &Shared) -> BoxFuture<'static, ()> {
    let deployments = shared.informers.all::<Deployment>();
    let replicasets = shared.informers.all::<ReplicaSet>();
    let pods = shared.informers.all::<Pod>();
    let wiring = Wiring::new(NAME, &shared.metrics, &deployments);
    let ctx = Arc::new(Ctx {
        client: shared.client_for(ACCOUNT),
        replicasets: replicasets.store(),
        pods: pods.store(),
        recorder: shared.recorder.with_component(NAME),
        clock: Clock::new(),
    });
    let d_store = deployments.store();
    let rs_triggers = replicasets
        .subscribe()
        .flat_map(move |c| stream::iter(map_rs_change(&d_store, &c)));
    let rs_store = replicasets.store();
    let pod_triggers = pods
        .subscribe()
        .flat_map(move |c| stream::iter(map_pod_deletion(&rs_store, &c)));
    let controller = wiring
        .controller(&deployments)
        .reconcile_on(wiring.track(rs_triggers))
        .reconcile_on(wiring.track(pod_triggers));
    let concurrency = shared.config.concurrent_deployment_syncs;
    Box::pin(wiring.run(controller, concurrency, ctx, reconcile, shared.shutdown()))
}
