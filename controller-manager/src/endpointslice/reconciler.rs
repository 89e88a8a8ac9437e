//! The pure part of the EndpointSlice controller: the endpoints a Service should have, grouped
//! by the ports they offer, and the plan (slices to create, update, delete) that gets the
//! existing slices there with as few writes as possible.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{MANAGED_BY, MANAGED_BY_LABEL, MAX_ENDPOINTS_PER_SLICE, SERVICE_NAME_LABEL};
use crate::endpoints::{
    HEADLESS, find_port, hostname, is_headless, pod_ip, pod_ref, should_be_in_endpoints,
};
use crate::podutil::{controller_ref, is_ready};

/// Endpoints offering the same ports, keyed by those ports.
pub type Desired = BTreeMap<String, (Vec<EndpointPort>, Vec<Endpoint>)>;

fn port_key(ports: &[EndpointPort]) -> String {
    serde_json::to_string(ports).unwrap_or_default()
}

fn endpoint_key(e: &Endpoint) -> (String, String) {
    (
        e.addresses.first().cloned().unwrap_or_default(),
        e.target_ref
            .as_ref()
            .and_then(|r| r.uid.clone())
            .unwrap_or_default(),
    )
}

/// The endpoints of a Service's pods (terminating ones included, with their conditions).
pub fn desired_endpoints(
    svc: &Service,
    pods: &[Arc<Pod>],
    zones: &HashMap<String, String>,
) -> Desired {
    let spec = svc.spec.clone().unwrap_or_default();
    let publish = spec.publish_not_ready_addresses.unwrap_or(false);
    let mut out: Desired = BTreeMap::new();
    for pod in pods {
        if !should_be_in_endpoints(pod, true) {
            continue;
        }
        let Some(ip) = pod_ip(pod) else { continue };
        let mut ports: Vec<EndpointPort> = spec
            .ports
            .iter()
            .flatten()
            .filter_map(|sp| {
                Some(EndpointPort {
                    name: Some(sp.name.clone().unwrap_or_default()),
                    port: Some(find_port(pod, sp)?),
                    protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                    app_protocol: sp.app_protocol.clone(),
                })
            })
            .collect();
        ports.sort_by(|a, b| (&a.name, a.port).cmp(&(&b.name, b.port)));
        let terminating = pod.metadata.deletion_timestamp.is_some();
        let serving = publish || is_ready(pod);
        let ready = serving && (!terminating || publish);
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty());
        let endpoint = Endpoint {
            addresses: vec![ip],
            conditions: Some(EndpointConditions {
                ready: Some(ready),
                serving: Some(serving),
                terminating: Some(terminating),
            }),
            hostname: hostname(pod, svc),
            zone: node.as_ref().and_then(|n| zones.get(n).cloned()),
            node_name: node,
            target_ref: Some(pod_ref(pod)),
            ..Default::default()
        };
        out.entry(port_key(&ports))
            .or_insert_with(|| (ports, Vec::new()))
            .1
            .push(endpoint);
    }
    for (_, eps) in out.values_mut() {
        eps.sort_by_key(endpoint_key);
    }
    out
}

/// The labels every slice of the Service carries.
pub fn slice_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut l = svc.metadata.labels.clone().unwrap_or_default();
    l.insert(
        SERVICE_NAME_LABEL.into(),
        svc.metadata.name.clone().unwrap_or_default(),
    );
    l.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    if is_headless(svc) {
        l.insert(HEADLESS.into(), String::new());
    } else {
        l.remove(HEADLESS);
    }
    l
}

fn new_slice(svc: &Service, ports: Vec<EndpointPort>, endpoints: Vec<Endpoint>) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(format!(
                "{}-",
                svc.metadata.name.clone().unwrap_or_default()
            )),
            namespace: svc.metadata.namespace.clone(),
            labels: Some(slice_labels(svc)),
            owner_references: Some(vec![controller_ref(svc)]),
            ..Default::default()
        },
        address_type: "IPv4".into(),
        endpoints,
        ports: Some(ports),
    }
}

/// Writes that bring the existing slices to the desired endpoints.
#[derive(Debug, Default)]
pub struct Plan {
    /// New slices.
    pub create: Vec<EndpointSlice>,
    /// Changed slices (with their resourceVersion).
    pub update: Vec<EndpointSlice>,
    /// Slices to delete.
    pub delete: Vec<EndpointSlice>,
}

/// Plans the writes: endpoints stay in the slice they are in (updated in place when they
/// changed), slices with room take new endpoints before new slices are made, emptied slices
/// go, and with no endpoints at all one empty placeholder slice remains.
pub fn plan(svc: &Service, desired: Desired, existing: Vec<EndpointSlice>) -> Plan {
    let labels = slice_labels(svc);
    let mut plan = Plan::default();
    if desired.is_empty() {
        let mut existing = existing.into_iter();
        match existing.next() {
            Some(mut s) => {
                let needs = !s.endpoints.is_empty()
                    || !s.ports.as_deref().unwrap_or_default().is_empty()
                    || s.metadata.labels.as_ref() != Some(&labels);
                s.endpoints.clear();
                s.ports = Some(vec![]);
                s.metadata.labels = Some(labels.clone());
                if needs {
                    plan.update.push(s);
                }
            }
            None => plan.create.push(new_slice(svc, vec![], vec![])),
        }
        plan.delete.extend(existing);
        return plan;
    }
    let mut by_key: BTreeMap<String, Vec<EndpointSlice>> = BTreeMap::new();
    for s in existing {
        let k = port_key(s.ports.as_deref().unwrap_or_default());
        if desired.contains_key(&k) {
            by_key.entry(k).or_default().push(s);
        } else {
            plan.delete.push(s);
        }
    }
    for (k, (ports, endpoints)) in desired {
        let mut wanted: BTreeMap<(String, String), Endpoint> = endpoints
            .into_iter()
            .map(|e| (endpoint_key(&e), e))
            .collect();
        let mut slices: Vec<(EndpointSlice, bool)> = Vec::new();
        for mut s in by_key.remove(&k).unwrap_or_default() {
            let mut changed = s.metadata.labels.as_ref() != Some(&labels);
            let mut kept = Vec::with_capacity(s.endpoints.len());
            for e in std::mem::take(&mut s.endpoints) {
                match wanted.remove(&endpoint_key(&e)) {
                    Some(want) => {
                        changed |= want != e;
                        kept.push(want);
                    }
                    None => changed = true,
                }
            }
            s.endpoints = kept;
            s.metadata.labels = Some(labels.clone());
            slices.push((s, changed));
        }
        // Fill slices being written anyway first, then the fullest others.
        slices.sort_by_key(|(s, changed)| (!*changed, std::cmp::Reverse(s.endpoints.len())));
        let mut rest = wanted.into_values();
        'fill: for (s, changed) in slices.iter_mut() {
            while s.endpoints.len() < MAX_ENDPOINTS_PER_SLICE {
                match rest.next() {
                    Some(e) => {
                        s.endpoints.push(e);
                        *changed = true;
                    }
                    None => break 'fill,
                }
            }
        }
        let rest: Vec<Endpoint> = rest.collect();
        for chunk in rest.chunks(MAX_ENDPOINTS_PER_SLICE) {
            plan.create
                .push(new_slice(svc, ports.clone(), chunk.to_vec()));
        }
        for (mut s, changed) in slices {
            if s.endpoints.is_empty() {
                plan.delete.push(s);
            } else if changed {
                s.endpoints.sort_by_key(endpoint_key);
                plan.update.push(s);
            }
        }
    }
    plan
}
