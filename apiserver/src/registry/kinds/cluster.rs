//! Nodes, Endpoints, EndpointSlices, Events (core/v1 and events.k8s.io/v1), Leases,
//! PersistentVolumes and PersistentVolumeClaims: defaults, validation, field selectors and
//! their table columns.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    Endpoints, Event, Node, PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimStatus,
    PersistentVolumeStatus,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::Value;

use async_trait::async_trait;

use crate::error::{ApiError, FieldError};
use crate::registry::{Admission, Api, Column, Fields, Operation, Strategy, age, human_age, name};

fn or_none(s: String) -> String {
    if s.is_empty() { "<none>".into() } else { s }
}

/// Node behaviour.
pub struct NodeStrategy;

impl Strategy<Node> for NodeStrategy {
    fn validate(&self, n: &Node) -> Vec<FieldError> {
        let mut errs = Vec::new();
        for (i, t) in n
            .spec
            .iter()
            .flat_map(|s| s.taints.iter().flatten())
            .enumerate()
        {
            if t.key.is_empty() {
                errs.push(FieldError::required(format!("spec.taints[{i}].key")));
            }
            if !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&t.effect.as_str()) {
                errs.push(FieldError::not_supported(
                    format!("spec.taints[{i}].effect"),
                    &t.effect,
                    &["NoExecute", "NoSchedule", "PreferNoSchedule"],
                ));
            }
        }
        errs
    }

    fn validate_update(&self, new: &Node, old: &Node) -> Vec<FieldError> {
        let pod_cidr = |n: &Node| n.spec.as_ref().and_then(|s| s.pod_cidr.clone());
        match (pod_cidr(old), pod_cidr(new)) {
            (Some(o), n) if !o.is_empty() && n.as_deref() != Some(o.as_str()) => {
                vec![FieldError::forbidden(
                    "spec.podCIDR",
                    "node updates may not change podCIDR except from \"\" to valid",
                )]
            }
            _ => Vec::new(),
        }
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::NAME,
            Column::new("Status", "string", "The status of the node"),
            Column::new("Roles", "string", "The roles of the node"),
            Column::AGE,
            Column::new("Version", "string", "Kubelet Version reported by the node."),
            Column::wide("Internal-IP", "string", "List of internal IPs."),
            Column::wide("External-IP", "string", "List of external IPs."),
            Column::wide(
                "OS-Image",
                "string",
                "OS image reported by the node from /etc/os-release.",
            ),
            Column::wide(
                "Kernel-Version",
                "string",
                "Kernel version reported by the node.",
            ),
            Column::wide(
                "Container-Runtime",
                "string",
                "Container runtime and version.",
            ),
        ]
    }

    fn cells(&self, n: &Node) -> Vec<Value> {
        let status = n.status.clone().unwrap_or_default();
        let ready = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Ready")
            .map(|c| match c.status.as_str() {
                "True" => "Ready",
                "False" => "NotReady",
                _ => "Unknown",
            })
            .unwrap_or("Unknown");
        let mut st = ready.to_string();
        if n.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
            st.push_str(",SchedulingDisabled");
        }
        let mut roles: Vec<String> = n
            .metadata
            .labels
            .iter()
            .flatten()
            .filter_map(|(k, v)| {
                if let Some(r) = k.strip_prefix("node-role.kubernetes.io/") {
                    (!r.is_empty()).then(|| r.to_string())
                } else if k == "kubernetes.io/role" {
                    Some(v.clone())
                } else {
                    None
                }
            })
            .collect();
        roles.sort();
        roles.dedup();
        let info = status.node_info.clone().unwrap_or_default();
        let addr = |t: &str| {
            status
                .addresses
                .iter()
                .flatten()
                .filter(|a| a.type_ == t)
                .map(|a| a.address.clone())
                .collect::<Vec<_>>()
                .join(",")
        };
        vec![
            Value::String(name(n)),
            Value::String(st),
            Value::String(or_none(roles.join(","))),
            age(n),
            Value::String(info.kubelet_version.clone()),
            Value::String(or_none(addr("InternalIP"))),
            Value::String(or_none(addr("ExternalIP"))),
            Value::String(info.os_image.clone()),
            Value::String(info.kernel_version.clone()),
            Value::String(info.container_runtime_version.clone()),
        ]
    }

    fn fields(&self, n: &Node, out: &mut Fields) {
        out.insert(
            "spec.unschedulable".into(),
            n.spec
                .as_ref()
                .and_then(|s| s.unschedulable)
                .unwrap_or(false)
                .to_string(),
        );
    }

    fn field_names(&self) -> &'static [&'static str] {
        &["spec.unschedulable"]
    }
}

/// Endpoints behaviour.
pub struct EndpointsStrategy;

impl Strategy<Endpoints> for EndpointsStrategy {
    fn defaults(&self, e: &mut Endpoints) {
        for s in e.subsets.iter_mut().flatten() {
            for p in s.ports.iter_mut().flatten() {
                p.protocol.get_or_insert_with(|| "TCP".into());
            }
        }
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::NAME,
            Column::new("Endpoints", "string", "Endpoints of the service"),
            Column::AGE,
        ]
    }

    fn cells(&self, e: &Endpoints) -> Vec<Value> {
        let mut list = Vec::new();
        let mut total = 0;
        for s in e.subsets.iter().flatten() {
            let ports: Vec<i32> = s.ports.iter().flatten().map(|p| p.port).collect();
            for a in s.addresses.iter().flatten() {
                if ports.is_empty() {
                    total += 1;
                    if list.len() < 3 {
                        list.push(a.ip.clone());
                    }
                }
                for p in &ports {
                    total += 1;
                    if list.len() < 3 {
                        list.push(format!("{}:{p}", a.ip));
                    }
                }
            }
        }
        let mut text = list.join(",");
        if total > list.len() {
            text.push_str(&format!(" + {} more...", total - list.len()));
        }
        vec![Value::String(name(e)), Value::String(or_none(text)), age(e)]
    }
}

/// EndpointSlice behaviour.
pub struct EndpointSliceStrategy;

impl Strategy<EndpointSlice> for EndpointSliceStrategy {
    fn validate(&self, s: &EndpointSlice) -> Vec<FieldError> {
        if ["IPv4", "IPv6", "FQDN"].contains(&s.address_type.as_str()) {
            Vec::new()
        } else {
            vec![FieldError::not_supported(
                "addressType",
                &s.address_type,
                &["FQDN", "IPv4", "IPv6"],
            )]
        }
    }

    fn validate_update(&self, new: &EndpointSlice, old: &EndpointSlice) -> Vec<FieldError> {
        if new.address_type != old.address_type {
            vec![FieldError::immutable("addressType", &new.address_type)]
        } else {
            Vec::new()
        }
    }

    fn defaults(&self, s: &mut EndpointSlice) {
        for p in s.ports.iter_mut().flatten() {
            p.protocol.get_or_insert_with(|| "TCP".into());
        }
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::NAME,
            Column::new(
                "AddressType",
                "string",
                "The type of address carried by this EndpointSlice.",
            ),
            Column::new("Ports", "string", "Ports contained by this EndpointSlice."),
            Column::new(
                "Endpoints",
                "string",
                "Endpoints contained by this EndpointSlice.",
            ),
            Column::AGE,
        ]
    }

    fn cells(&self, s: &EndpointSlice) -> Vec<Value> {
        let ports: Vec<String> = s
            .ports
            .iter()
            .flatten()
            .filter_map(|p| p.port.map(|n| n.to_string()))
            .collect();
        let addrs: Vec<String> = s
            .endpoints
            .iter()
            .flat_map(|e| e.addresses.iter().cloned())
            .collect();
        let mut text = addrs.iter().take(3).cloned().collect::<Vec<_>>().join(",");
        if addrs.len() > 3 {
            text.push_str(&format!(" + {} more...", addrs.len() - 3));
        }
        vec![
            Value::String(name(s)),
            Value::String(s.address_type.clone()),
            Value::String(if ports.is_empty() {
                "<unset>".into()
            } else {
                ports.join(",")
            }),
            Value::String(if text.is_empty() {
                "<unset>".into()
            } else {
                text
            }),
            age(s),
        ]
    }
}

/// Core Event behaviour.
pub struct EventStrategy;

fn event_object(kind: Option<&str>, name: Option<&str>) -> String {
    format!(
        "{}/{}",
        kind.unwrap_or_default().to_lowercase(),
        name.unwrap_or_default()
    )
}

impl Strategy<Event> for EventStrategy {
    fn validate(&self, e: &Event) -> Vec<FieldError> {
        let mut errs = Vec::new();
        if e.involved_object.name.as_deref().is_none_or(str::is_empty)
            && e.involved_object.kind.as_deref().is_none_or(str::is_empty)
        {
            errs.push(FieldError::required("involvedObject"));
        }
        if let Some(t) = e.type_.as_deref()
            && !t.is_empty()
            && !["Normal", "Warning"].contains(&t)
        {
            errs.push(FieldError::not_supported("type", t, &["Normal", "Warning"]));
        }
        errs
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::new("Last Seen", "string", "Time when this Event was last seen"),
            Column::new(
                "Type",
                "string",
                "Type of this event (Normal, Warning), new types could be added in the future.",
            ),
            Column::new(
                "Reason",
                "string",
                "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
            ),
            Column::new("Object", "string", "The object that this event is about."),
            Column::wide(
                "Subobject",
                "string",
                "The subobject (field path) the event is about.",
            ),
            Column::wide("Source", "string", "The component reporting this event."),
            Column::new(
                "Message",
                "string",
                "A human-readable description of the status of this operation.",
            ),
            Column::wide(
                "First Seen",
                "string",
                "The time at which the event was first recorded.",
            ),
            Column::wide(
                "Count",
                "string",
                "The number of times this event has occurred.",
            ),
            Column {
                name: "Name",
                type_: "string",
                format: "name",
                description: "Name must be unique within a namespace.",
                priority: 1,
            },
        ]
    }

    fn cells(&self, e: &Event) -> Vec<Value> {
        let last = e
            .series
            .as_ref()
            .and_then(|s| s.last_observed_time.as_ref())
            .map(|t| human_age(&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t.0)))
            .or_else(|| e.last_timestamp.as_ref().map(human_age))
            .or_else(|| {
                e.event_time
                    .as_ref()
                    .map(|t| human_age(&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t.0)))
            })
            .unwrap_or_else(|| "<unknown>".into());
        let first = e
            .first_timestamp
            .as_ref()
            .map(human_age)
            .or_else(|| {
                e.event_time
                    .as_ref()
                    .map(|t| human_age(&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t.0)))
            })
            .unwrap_or_else(|| "<unknown>".into());
        let source = e
            .source
            .as_ref()
            .and_then(|s| s.component.clone())
            .or_else(|| e.reporting_component.clone())
            .unwrap_or_default();
        vec![
            Value::String(last),
            Value::String(e.type_.clone().unwrap_or_default()),
            Value::String(e.reason.clone().unwrap_or_default()),
            Value::String(event_object(
                e.involved_object.kind.as_deref(),
                e.involved_object.name.as_deref(),
            )),
            Value::String(e.involved_object.field_path.clone().unwrap_or_default()),
            Value::String(source),
            Value::String(e.message.clone().unwrap_or_default().trim().to_string()),
            Value::String(first),
            Value::from(e.count.unwrap_or(1)),
            Value::String(name(e)),
        ]
    }

    fn fields(&self, e: &Event, out: &mut Fields) {
        let o = &e.involved_object;
        for (k, v) in [
            ("involvedObject.kind", &o.kind),
            ("involvedObject.namespace", &o.namespace),
            ("involvedObject.name", &o.name),
            ("involvedObject.uid", &o.uid),
            ("involvedObject.apiVersion", &o.api_version),
            ("involvedObject.resourceVersion", &o.resource_version),
            ("involvedObject.fieldPath", &o.field_path),
            ("reason", &e.reason),
            ("reportingComponent", &e.reporting_component),
            ("type", &e.type_),
        ] {
            out.insert(k.into(), v.clone().unwrap_or_default());
        }
        out.insert(
            "source".into(),
            e.source
                .as_ref()
                .and_then(|s| s.component.clone())
                .unwrap_or_default(),
        );
    }

    fn field_names(&self) -> &'static [&'static str] {
        &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ]
    }
}

/// Lease behaviour.
pub struct LeaseStrategy;

impl Strategy<Lease> for LeaseStrategy {
    fn validate(&self, l: &Lease) -> Vec<FieldError> {
        let mut errs = Vec::new();
        if let Some(d) = l.spec.as_ref().and_then(|s| s.lease_duration_seconds)
            && d <= 0
        {
            errs.push(FieldError::invalid(
                "spec.leaseDurationSeconds",
                d,
                "must be greater than 0",
            ));
        }
        errs
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::NAME,
            Column::new("Holder", "string", "The holder of the lease."),
            Column::AGE,
        ]
    }

    fn cells(&self, l: &Lease) -> Vec<Value> {
        vec![
            Value::String(name(l)),
            Value::String(
                l.spec
                    .as_ref()
                    .and_then(|s| s.holder_identity.clone())
                    .unwrap_or_default(),
            ),
            age(l),
        ]
    }
}

fn access_modes(modes: Option<&Vec<String>>) -> String {
    modes
        .into_iter()
        .flatten()
        .map(|m| match m.as_str() {
            "ReadWriteOnce" => "RWO",
            "ReadOnlyMany" => "ROX",
            "ReadWriteMany" => "RWX",
            "ReadWriteOncePod" => "RWOP",
            other => other,
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// PersistentVolume behaviour.
pub struct PersistentVolumeStrategy;

impl Strategy<PersistentVolume> for PersistentVolumeStrategy {
    fn defaults(&self, pv: &mut PersistentVolume) {
        let spec = pv.spec.get_or_insert_with(Default::default);
        spec.persistent_volume_reclaim_policy
            .get_or_insert_with(|| "Retain".into());
        spec.volume_mode.get_or_insert_with(|| "Filesystem".into());
    }

    fn prepare_create(&self, pv: &mut PersistentVolume) {
        pv.status = Some(PersistentVolumeStatus {
            phase: Some("Pending".into()),
            ..Default::default()
        });
    }

    fn validate(&self, pv: &PersistentVolume) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let spec = pv.spec.clone().unwrap_or_default();
        if spec.access_modes.as_ref().is_none_or(Vec::is_empty) {
            errs.push(FieldError::required("spec.accessModes"));
        }
        if !spec
            .capacity
            .as_ref()
            .is_some_and(|c| c.contains_key("storage"))
        {
            errs.push(FieldError::required("spec.capacity"));
        }
        errs
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::NAME,
            Column::new("Capacity", "string", "The capacity of the volume."),
            Column::new("Access Modes", "string", "The access modes of the volume."),
            Column::new(
                "Reclaim Policy",
                "string",
                "What happens to the volume when released.",
            ),
            Column::new("Status", "string", "The phase of the volume."),
            Column::new("Claim", "string", "The claim bound to the volume."),
            Column::new("StorageClass", "string", "The storage class of the volume."),
            Column::new(
                "VolumeAttributesClass",
                "string",
                "The volume attributes class.",
            ),
            Column::new("Reason", "string", "Why the volume is in its phase."),
            Column::AGE,
            Column::wide("VolumeMode", "string", "Filesystem or Block."),
        ]
    }

    fn cells(&self, pv: &PersistentVolume) -> Vec<Value> {
        let spec = pv.spec.clone().unwrap_or_default();
        let st = pv.status.clone().unwrap_or_default();
        let claim = spec
            .claim_ref
            .as_ref()
            .map(|c| {
                format!(
                    "{}/{}",
                    c.namespace.clone().unwrap_or_default(),
                    c.name.clone().unwrap_or_default()
                )
            })
            .unwrap_or_default();
        vec![
            Value::String(name(pv)),
            Value::String(
                spec.capacity
                    .as_ref()
                    .and_then(|c| c.get("storage"))
                    .map(|q| q.0.clone())
                    .unwrap_or_default(),
            ),
            Value::String(access_modes(spec.access_modes.as_ref())),
            Value::String(
                spec.persistent_volume_reclaim_policy
                    .clone()
                    .unwrap_or_default(),
            ),
            Value::String(st.phase.clone().unwrap_or_default()),
            Value::String(claim),
            Value::String(spec.storage_class_name.clone().unwrap_or_default()),
            Value::String(or_none(
                spec.volume_attributes_class_name
                    .clone()
                    .unwrap_or_default(),
            )),
            Value::String(st.reason.clone().unwrap_or_default()),
            age(pv),
            Value::String(spec.volume_mode.clone().unwrap_or_default()),
        ]
    }
}

/// PersistentVolumeClaim behaviour.
pub struct PersistentVolumeClaimStrategy;

#[async_trait]
impl Strategy<PersistentVolumeClaim> for PersistentVolumeClaimStrategy {
    fn defaults(&self, pvc: &mut PersistentVolumeClaim) {
        pvc.spec
            .get_or_insert_with(Default::default)
            .volume_mode
            .get_or_insert_with(|| "Filesystem".into());
    }

    async fn admit(
        &self,
        api: &Api,
        adm: &mut Admission<'_, PersistentVolumeClaim>,
    ) -> Result<(), ApiError> {
        if adm.op == Operation::Create {
            super::storage::admit_claim(api, adm.obj).await?;
        }
        Ok(())
    }

    fn prepare_create(&self, pvc: &mut PersistentVolumeClaim) {
        pvc.status = Some(PersistentVolumeClaimStatus {
            phase: Some("Pending".into()),
            ..Default::default()
        });
    }

    fn validate(&self, pvc: &PersistentVolumeClaim) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let spec = pvc.spec.clone().unwrap_or_default();
        if spec.access_modes.as_ref().is_none_or(Vec::is_empty) {
            errs.push(FieldError::required("spec.accessModes"));
        }
        let has_storage = spec
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .is_some_and(|r| r.contains_key("storage"));
        if !has_storage {
            errs.push(FieldError::required("spec.resources[storage]"));
        }
        errs
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::NAME,
            Column::new("Status", "string", "The phase of the claim."),
            Column::new("Volume", "string", "The volume bound to the claim."),
            Column::new("Capacity", "string", "The capacity of the bound volume."),
            Column::new(
                "Access Modes",
                "string",
                "The access modes of the bound volume.",
            ),
            Column::new("StorageClass", "string", "The storage class of the claim."),
            Column::new(
                "VolumeAttributesClass",
                "string",
                "The volume attributes class.",
            ),
            Column::AGE,
            Column::wide("VolumeMode", "string", "Filesystem or Block."),
        ]
    }

    fn cells(&self, pvc: &PersistentVolumeClaim) -> Vec<Value> {
        let spec = pvc.spec.clone().unwrap_or_default();
        let st = pvc.status.clone().unwrap_or_default();
        vec![
            Value::String(name(pvc)),
            Value::String(st.phase.clone().unwrap_or_default()),
            Value::String(spec.volume_name.clone().unwrap_or_default()),
            Value::String(
                st.capacity
                    .as_ref()
                    .and_then(|c| c.get("storage"))
                    .map(|q| q.0.clone())
                    .unwrap_or_default(),
            ),
            Value::String(access_modes(st.access_modes.as_ref())),
            Value::String(spec.storage_class_name.clone().unwrap_or_default()),
            Value::String(or_none(
                spec.volume_attributes_class_name
                    .clone()
                    .unwrap_or_default(),
            )),
            age(pvc),
            Value::String(spec.volume_mode.clone().unwrap_or_default()),
        ]
    }

    fn fields(&self, pvc: &PersistentVolumeClaim, out: &mut Fields) {
        out.insert(
            "status.phase".into(),
            pvc.status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_default(),
        );
    }

    fn field_names(&self) -> &'static [&'static str] {
        &["status.phase"]
    }
}
