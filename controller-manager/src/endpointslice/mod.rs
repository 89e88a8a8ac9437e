//! The EndpointSlice controller: for every Service with a selector, EndpointSlices labelled
//! `kubernetes.io/service-name` and `endpointslice.kubernetes.io/managed-by`, owned by the
//! Service, holding at most 100 endpoints each. Every matching pod with an IP is an endpoint
//! with `ready`, `serving` and `terminating` conditions, its node, zone and a reference to it;
//! pods whose ports resolve differently go to different slices. The reconcile keeps endpoints
//! in the slice they are in, fills slices with room before creating new ones, deletes slices
//! that empty, and leaves one empty placeholder slice when there are no endpoints.
//!
//! Slices are created with generated names, so a cache that has not seen this controller's own
//! writes could make it create duplicates: a tracker remembers the resourceVersion of every
//! slice written and every slice deleted, and a sync waits until the cache has caught up.

pub mod reconciler;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use kube::{Api, Client};

use crate::Shared;
use crate::endpoints::{selected_pods, service_selector, services_for_pod_change};
use crate::informer::{Change, ref_in};
use crate::podutil::key;
use crate::runner::{Wiring, is_not_found};

/// The controller's name.
pub const NAME: &str = "endpointslice-controller";
/// The ServiceAccount (in kube-system) it acts as with `--use-service-account-credentials`.
pub const ACCOUNT: &str = "endpointslice-controller";
/// The value of the managed-by label on slices this controller owns.
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
/// The label naming a slice's Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label naming a slice's manager.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// Endpoints per slice at most.
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;

/// What this controller wrote and the cache may not show yet, per Service.
#[derive(Default)]
pub struct Tracker {
    /// Service key → slice name → resourceVersion written (`None`: deleted).
    written: Mutex<HashMap<String, HashMap<String, Option<u64>>>>,
}

impl Tracker {
    fn record(&self, svc: &str, slice: &str, rv: Option<u64>) {
        self.written
            .lock()
            .expect("tracker")
            .entry(svc.to_string())
            .or_default()
            .insert(slice.to_string(), rv);
    }

    /// Whether the cache shows every write made for `svc` (forgetting those it shows).
    pub fn cache_fresh(&self, svc: &str, cached: &[Arc<EndpointSlice>]) -> bool {
        let mut all = self.written.lock().expect("tracker");
        let Some(mine) = all.get_mut(svc) else {
            return true;
        };
        mine.retain(|name, rv| {
            let seen = cached
                .iter()
                .find(|s| s.metadata.name.as_deref() == Some(name.as_str()));
            match (rv, seen) {
                (Some(want), Some(s)) => rv_of(s) < Some(*want),
                (Some(_), None) => true,
                (None, Some(_)) => true,
                (None, None) => false,
            }
        });
        let fresh = mine.is_empty();
        if fresh {
            all.remove(svc);
        }
        fresh
    }

    /// Forgets a deleted Service.
    pub fn forget(&self, svc: &str) {
        self.written.lock().expect("tracker").remove(svc);
    }
}

fn rv_of(s: &EndpointSlice) -> Option<u64> {
    s.metadata.resource_version.as_deref()?.parse().ok()
}

/// What a reconcile needs.
pub struct Ctx {
    /// The API.
    pub client: Client,
    /// The shared pod cache.
    pub pods: Store<Pod>,
    /// The shared EndpointSlice cache.
    pub slices: Store<EndpointSlice>,
    /// The shared node cache (zones).
    pub nodes: Store<Node>,
    /// Writes not yet seen in the cache.
    pub tracker: Tracker,
}

/// Why a Service's slices could not be written.
#[derive(Debug, thiserror::Error)]
#[error("endpointslices of {key}: {what}: {source}")]
pub struct Error {
    key: String,
    what: &'static str,
    #[source]
    source: kube::Error,
}

/// The slices this controller manages for a Service, from the cache.
pub fn managed_slices(slices: &Store<EndpointSlice>, svc: &Service) -> Vec<Arc<EndpointSlice>> {
    let ns = svc.metadata.namespace.as_deref();
    let name = svc.metadata.name.as_deref();
    slices
        .state()
        .into_iter()
        .filter(|s| s.metadata.namespace.as_deref() == ns)
        .filter(|s| {
            let l = s.metadata.labels.as_ref();
            l.and_then(|l| l.get(SERVICE_NAME_LABEL))
                .map(String::as_str)
                == name
                && l.and_then(|l| l.get(MANAGED_BY_LABEL)).map(String::as_str) == Some(MANAGED_BY)
        })
        .collect()
}

/// One sync of a Service's slices.
pub async fn reconcile(svc: Arc<Service>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let Some(selector) = service_selector(&svc) else {
        return Ok(Action::await_change());
    };
    if svc.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let svc_key = key(&svc.metadata);
    let existing = managed_slices(&ctx.slices, &svc);
    if !ctx.tracker.cache_fresh(&svc_key, &existing) {
        // Our own writes have not reached the cache; acting now could duplicate slices.
        return Ok(Action::requeue(Duration::from_millis(100)));
    }
    let pods = selected_pods(&ctx.pods, &svc, &selector);
    let zones: HashMap<String, String> = ctx
        .nodes
        .state()
        .iter()
        .filter_map(|n| {
            let zone = n
                .metadata
                .labels
                .as_ref()?
                .get("topology.kubernetes.io/zone")?
                .clone();
            Some((n.metadata.name.clone()?, zone))
        })
        .collect();
    let desired = reconciler::desired_endpoints(&svc, &pods, &zones);
    let existing: Vec<EndpointSlice> = existing.iter().map(|s| (**s).clone()).collect();
    let plan = reconciler::plan(&svc, desired, existing);
    let ns = svc.metadata.namespace.clone().unwrap_or_default();
    let api: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), &ns);
    let err = |what: &'static str| {
        let key = svc_key.clone();
        move |source| Error { key, what, source }
    };
    for slice in plan.create {
        let created = api
            .create(&PostParams::default(), &slice)
            .await
            .map_err(err("creating"))?;
        if let (Some(n), rv) = (created.metadata.name.as_deref(), rv_of(&created)) {
            ctx.tracker.record(&svc_key, n, rv.or(Some(0)));
        }
    }
    for slice in plan.update {
        let name = slice.metadata.name.clone().unwrap_or_default();
        match api.replace(&name, &PostParams::default(), &slice).await {
            Ok(updated) => ctx
                .tracker
                .record(&svc_key, &name, rv_of(&updated).or(Some(0))),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(err("updating")(e)),
        }
    }
    for slice in plan.delete {
        let name = slice.metadata.name.clone().unwrap_or_default();
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: slice.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(&name, &params).await {
            Ok(_) => ctx.tracker.record(&svc_key, &name, None),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(err("deleting")(e)),
        }
    }
    Ok(Action::await_change())
}

/// Builds the controller and returns the future that runs it.
pub fn start(shared: &Shared) -> BoxFuture<'static, ()> {
    let services = shared.informers.all::<Service>();
    let pods = shared.informers.all::<Pod>();
    let slices = shared.informers.all::<EndpointSlice>();
    let nodes = shared.informers.all::<Node>();
    let wiring = Wiring::new(NAME, &shared.metrics, &services);
    let ctx = Arc::new(Ctx {
        client: shared.client_for(ACCOUNT),
        pods: pods.store(),
        slices: slices.store(),
        nodes: nodes.store(),
        tracker: Tracker::default(),
    });
    let svc_store = services.store();
    let pod_triggers = pods
        .subscribe()
        .flat_map(move |c| stream::iter(services_for_pod_change(&svc_store, &c)));
    let slice_triggers = slices.subscribe().filter_map(|c| {
        let s = c.object();
        let svc = s
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
            .map(|n| ref_in::<Service>(s.metadata.namespace.as_deref(), n));
        std::future::ready(svc)
    });
    let ctx2 = ctx.clone();
    let forget = services.subscribe().filter_map(move |c| {
        if let Change::Deleted(svc) = &c {
            ctx2.tracker.forget(&key(&svc.metadata));
        }
        std::future::ready(None)
    });
    let controller = wiring
        .controller(&services)
        .reconcile_on(wiring.track(pod_triggers))
        .reconcile_on(slice_triggers)
        .reconcile_on(forget);
    let concurrency = shared.config.concurrent_endpoint_syncs;
    Box::pin(wiring.run(controller, concurrency, ctx, reconcile, shared.shutdown()))
}
