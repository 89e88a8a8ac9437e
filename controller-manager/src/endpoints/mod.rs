//! The Endpoints controller: for every Service with a selector, an Endpoints object of the same
//! name listing the matching pods — ready ones under `addresses`, the others under
//! `notReadyAddresses` (all under `addresses` with `publishNotReadyAddresses`) — with the pod's
//! IP, node and a reference to it, and the ports resolved per pod (a `targetPort` may name a
//! container port). Subsets are packed as Kubernetes' `RepackSubsets` does: addresses that
//! offer the same ports share a subset. Headless Services without ports get addresses only.
//! More than 1000 addresses are truncated and annotated `over-capacity`. The Endpoints of a
//! deleted Service are deleted.

#[cfg(test)]
pub(crate) mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
    ServicePort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client};
use rkube_machinery::selector::LabelSelector;

use crate::Shared;
use crate::informer::{Change, ref_in};
use crate::podutil::{is_ready, is_terminal, key};
use crate::runner::{Wiring, is_not_found};

/// The controller's name.
pub const NAME: &str = "endpoints-controller";
/// The ServiceAccount (in kube-system) it acts as with `--use-service-account-credentials`.
pub const ACCOUNT: &str = "endpoint-controller";
/// Most addresses an Endpoints object carries.
pub const MAX_CAPACITY: usize = 1000;
/// Set to `truncated` when addresses were left out.
pub const OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";
/// Tells the EndpointSlice mirroring controller to leave these Endpoints alone.
pub const SKIP_MIRROR: &str = "endpointslice.kubernetes.io/skip-mirror";
/// Marks the Endpoints (and slices) of a headless Service.
pub const HEADLESS: &str = "service.kubernetes.io/headless";

/// What a reconcile needs.
pub struct Ctx {
    /// The API.
    pub client: Client,
    /// The shared pod cache.
    pub pods: Store<Pod>,
    /// The shared Endpoints cache.
    pub endpoints: Store<Endpoints>,
}

/// Why a Service's Endpoints could not be written.
#[derive(Debug, thiserror::Error)]
#[error("endpoints {key}: {what}: {source}")]
pub struct Error {
    key: String,
    what: &'static str,
    #[source]
    source: kube::Error,
}

/// The Service's pod selector, if it selects pods (`None` for Services without a selector and
/// ExternalName Services, whose endpoints are not managed).
pub fn service_selector(svc: &Service) -> Option<LabelSelector> {
    let spec = svc.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return None;
    }
    let sel = spec.selector.as_ref().filter(|s| !s.is_empty())?;
    LabelSelector::from_map(sel).ok()
}

/// The pods of the Service's namespace its selector matches.
pub fn selected_pods(pods: &Store<Pod>, svc: &Service, selector: &LabelSelector) -> Vec<Arc<Pod>> {
    let ns = svc.metadata.namespace.as_deref();
    pods.state()
        .into_iter()
        .filter(|p| {
            p.metadata.namespace.as_deref() == ns
                && selector.matches_opt(p.metadata.labels.as_ref())
        })
        .collect()
}

/// Whether a pod belongs in the endpoints (`ShouldPodBeInEndpoints`): not terminal, has an
/// IP, and not being deleted unless terminating pods are included.
pub fn should_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    !is_terminal(pod)
        && pod_ip(pod).is_some()
        && (include_terminating || pod.metadata.deletion_timestamp.is_none())
}

/// The pod's IPv4 address.
pub fn pod_ip(pod: &Pod) -> Option<String> {
    let st = pod.status.as_ref()?;
    st.pod_ips
        .iter()
        .flatten()
        .map(|i| i.ip.clone())
        .chain(st.pod_ip.clone())
        .find(|ip| !ip.is_empty() && !ip.contains(':'))
}

/// The container port a Service port reaches on this pod (`FindPort`): a number as is, a
/// name looked up among the containers' ports of the same protocol.
pub fn find_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    let protocol = port.protocol.as_deref().unwrap_or("TCP");
    match port.target_port.as_ref() {
        None => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            if let Ok(n) = name.parse::<i32>() {
                return Some(n);
            }
            let spec = pod.spec.as_ref()?;
            let sidecars = spec
                .init_containers
                .iter()
                .flatten()
                .filter(|c| c.restart_policy.as_deref() == Some("Always"));
            spec.containers.iter().chain(sidecars).find_map(|c| {
                c.ports.iter().flatten().find_map(|p| {
                    (p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == protocol)
                        .then_some(p.container_port)
                })
            })
        }
    }
}

/// A reference to a pod.
pub fn pod_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        ..Default::default()
    }
}

/// The pod's hostname for the Service's endpoints: set when the pod names a hostname and the
/// Service as its subdomain (`ShouldSetHostname`).
pub fn hostname(pod: &Pod, svc: &Service) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let host = spec.hostname.clone().filter(|h| !h.is_empty())?;
    (spec.subdomain.as_deref() == svc.metadata.name.as_deref()
        && svc.metadata.namespace == pod.metadata.namespace)
        .then_some(host)
}

/// Whether a Service is headless (`clusterIP: None`).
pub fn is_headless(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

type AddressKey = (String, String);
/// A Service port as offered by the pods: name, number, protocol, appProtocol.
type PortKey = (Option<String>, i32, Option<String>, Option<String>);
/// For every port (`None`: the no-port sentinel of headless Services), the addresses that offer
/// it and their readiness.
type AddressesByPort = BTreeMap<Option<PortKey>, BTreeMap<AddressKey, (EndpointAddress, bool)>>;
/// Addresses (with readiness) and the ports they all offer, keyed by the address set.
type Groups = BTreeMap<Vec<(AddressKey, bool)>, (Vec<(EndpointAddress, bool)>, Vec<EndpointPort>)>;

/// The subsets of the Service's Endpoints for these pods (`syncService` + `RepackSubsets`), and
/// whether addresses were left out beyond [`MAX_CAPACITY`].
pub fn desired_subsets(svc: &Service, pods: &[Arc<Pod>]) -> (Vec<EndpointSubset>, bool) {
    let spec = svc.spec.clone().unwrap_or_default();
    let tolerate = spec.publish_not_ready_addresses.unwrap_or(false);
    let ports = spec.ports.clone().unwrap_or_default();
    let mut by_port = AddressesByPort::new();
    for pod in pods {
        if !should_be_in_endpoints(pod, tolerate) {
            continue;
        }
        let Some(ip) = pod_ip(pod) else { continue };
        let addr = EndpointAddress {
            ip: ip.clone(),
            hostname: hostname(pod, svc),
            node_name: pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .filter(|n| !n.is_empty()),
            target_ref: Some(pod_ref(pod)),
        };
        let ready = tolerate || is_ready(pod);
        let akey = (ip, pod.metadata.uid.clone().unwrap_or_default());
        if ports.is_empty() {
            if is_headless(svc) {
                by_port.entry(None).or_default().insert(akey, (addr, ready));
            }
            continue;
        }
        for sp in &ports {
            let Some(n) = find_port(pod, sp) else {
                continue;
            };
            let port_key = (
                sp.name.clone(),
                n,
                sp.protocol.clone().or(Some("TCP".into())),
                sp.app_protocol.clone(),
            );
            by_port
                .entry(Some(port_key))
                .or_default()
                .insert(akey.clone(), (addr.clone(), ready));
        }
    }
    // Ports offered by exactly the same addresses share a subset.
    let mut groups = Groups::new();
    for (port, addrs) in by_port {
        let key: Vec<(AddressKey, bool)> =
            addrs.iter().map(|(k, (_, r))| (k.clone(), *r)).collect();
        let entry = groups
            .entry(key)
            .or_insert_with(|| (addrs.values().cloned().collect(), Vec::new()));
        if let Some((name, port, protocol, app_protocol)) = port {
            entry.1.push(EndpointPort {
                name,
                port,
                protocol,
                app_protocol,
            });
        }
    }
    let mut subsets = Vec::new();
    let mut total = 0;
    let mut truncated = false;
    for (_, (addrs, mut ports)) in groups {
        let mut ready = Vec::new();
        let mut not_ready = Vec::new();
        for (a, r) in addrs {
            if total >= MAX_CAPACITY {
                truncated = true;
                continue;
            }
            total += 1;
            if r { ready.push(a) } else { not_ready.push(a) }
        }
        if ready.is_empty() && not_ready.is_empty() {
            continue;
        }
        ports.sort_by(|a, b| (&a.name, a.port, &a.protocol).cmp(&(&b.name, b.port, &b.protocol)));
        subsets.push(EndpointSubset {
            addresses: (!ready.is_empty()).then_some(ready),
            not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
            ports: (!ports.is_empty()).then_some(ports),
        });
    }
    (subsets, truncated)
}

/// The labels of the Service's Endpoints: the Service's, plus skip-mirror and headless.
fn desired_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut l = svc.metadata.labels.clone().unwrap_or_default();
    l.insert(SKIP_MIRROR.into(), "true".into());
    if is_headless(svc) {
        l.insert(HEADLESS.into(), String::new());
    } else {
        l.remove(HEADLESS);
    }
    l
}

/// One sync of a Service's Endpoints (`syncService`).
pub async fn reconcile(svc: Arc<Service>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let Some(selector) = service_selector(&svc) else {
        return Ok(Action::await_change());
    };
    let ns = svc.metadata.namespace.clone().unwrap_or_default();
    let name = svc.metadata.name.clone().unwrap_or_default();
    let err = |what: &'static str| {
        let key = key(&svc.metadata);
        move |source| Error { key, what, source }
    };
    if svc.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let pods = selected_pods(&ctx.pods, &svc, &selector);
    let (subsets, truncated) = desired_subsets(&svc, &pods);
    let labels = desired_labels(&svc);
    let current = ctx.endpoints.get(&ref_in(Some(&ns), &name));
    let mut annotations = current
        .as_ref()
        .and_then(|e| e.metadata.annotations.clone())
        .unwrap_or_default();
    if truncated {
        annotations.insert(OVER_CAPACITY.into(), "truncated".into());
    } else {
        annotations.remove(OVER_CAPACITY);
    }
    let api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), &ns);
    let subsets_opt = (!subsets.is_empty()).then_some(subsets);
    match current {
        Some(cur) => {
            let same = cur.subsets.as_deref().unwrap_or_default()
                == subsets_opt.as_deref().unwrap_or_default()
                && cur.metadata.labels.clone().unwrap_or_default() == labels
                && cur.metadata.annotations.clone().unwrap_or_default() == annotations;
            if same {
                return Ok(Action::await_change());
            }
            let mut next = (*cur).clone();
            next.subsets = subsets_opt;
            next.metadata.labels = Some(labels);
            next.metadata.annotations = (!annotations.is_empty()).then_some(annotations);
            match api.replace(&name, &PostParams::default(), &next).await {
                Ok(_) => {}
                // Deleted meanwhile: the next sync creates it.
                Err(e) if is_not_found(&e) => {
                    return Ok(Action::requeue(std::time::Duration::from_millis(50)));
                }
                Err(e) => return Err(err("updating")(e)),
            }
        }
        None => {
            let ep = Endpoints {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(ns.clone()),
                    labels: Some(labels),
                    annotations: (!annotations.is_empty()).then_some(annotations),
                    ..Default::default()
                },
                subsets: subsets_opt,
            };
            api.create(&PostParams::default(), &ep)
                .await
                .map_err(err("creating"))?;
        }
    }
    Ok(Action::await_change())
}

/// The Services whose selector matches a pod (before or after the change).
pub fn services_for_pod_change(
    services: &Store<Service>,
    change: &Change<Pod>,
) -> Vec<ObjectRef<Service>> {
    let pod = change.object();
    let ns = pod.metadata.namespace.as_deref();
    let label_sets: Vec<_> = std::iter::once(pod.metadata.labels.as_ref())
        .chain(change.old().map(|o| o.metadata.labels.as_ref()))
        .collect();
    let mut refs = BTreeSet::new();
    for svc in services.state() {
        if svc.metadata.namespace.as_deref() != ns {
            continue;
        }
        if let Some(sel) = service_selector(&svc)
            && label_sets.iter().any(|l| sel.matches_opt(*l))
        {
            refs.insert(svc.metadata.name.clone().unwrap_or_default());
        }
    }
    refs.into_iter().map(|n| ref_in(ns, &n)).collect()
}

/// Deletes the Endpoints of deleted Services.
async fn delete_orphaned(
    client: Client,
    mut services: impl futures::Stream<Item = Change<Service>> + Unpin,
) {
    while let Some(change) = services.next().await {
        let Change::Deleted(svc) = change else {
            continue;
        };
        if service_selector(&svc).is_none() {
            continue;
        }
        let ns = svc.metadata.namespace.clone().unwrap_or_default();
        let name = svc.metadata.name.clone().unwrap_or_default();
        let api: Api<Endpoints> = Api::namespaced(client.clone(), &ns);
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => {
                tracing::warn!(endpoints = %format!("{ns}/{name}"), error = %e, "cannot delete endpoints of a deleted service")
            }
        }
    }
}

/// Builds the controller and returns the future that runs it.
pub fn start(shared: &Shared) -> BoxFuture<'static, ()> {
    let services = shared.informers.all::<Service>();
    let pods = shared.informers.all::<Pod>();
    let endpoints = shared.informers.all::<Endpoints>();
    let wiring = Wiring::new(NAME, &shared.metrics, &services);
    let ctx = Arc::new(Ctx {
        client: shared.client_for(ACCOUNT),
        pods: pods.store(),
        endpoints: endpoints.store(),
    });
    let svc_store = services.store();
    let pod_triggers = pods
        .subscribe()
        .flat_map(move |c| stream::iter(services_for_pod_change(&svc_store, &c)));
    // Endpoints changed by someone else are put back.
    let ep_triggers = endpoints.subscribe().map(|c| {
        let e = c.object();
        ref_in::<Service>(
            e.metadata.namespace.as_deref(),
            e.metadata.name.as_deref().unwrap_or_default(),
        )
    });
    let deletions = services.subscribe().boxed();
    let controller = wiring
        .controller(&services)
        .reconcile_on(wiring.track(pod_triggers))
        .reconcile_on(ep_triggers);
    let concurrency = shared.config.concurrent_endpoint_syncs;
    let client = shared.client_for(ACCOUNT);
    let shutdown = shared.shutdown();
    Box::pin(async move {
        let cleaner = tokio::spawn(delete_orphaned(client, deletions));
        wiring
            .run(controller, concurrency, ctx, reconcile, shutdown)
            .await;
        cleaner.abort();
    })
}
