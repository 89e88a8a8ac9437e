//! Services: defaults (type ClusterIP, protocol TCP, targetPort = port, IP family, traffic
//! policies), validation, ClusterIP and NodePort allocation on create and type changes (released
//! on delete), and the TYPE / CLUSTER-IP / EXTERNAL-IP / PORT(S) columns.

use std::net::Ipv4Addr;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use rkube_machinery::validation;
use serde_json::Value;

use crate::alloc::AllocError;
use crate::error::{ApiError, FieldError};
use crate::registry::{Admission, Api, Column, Operation, Strategy, age, name};

const TYPES: &[&str] = &["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"];

/// Service behaviour.
pub struct ServiceStrategy;

fn spec_type(s: &Service) -> &str {
    s.spec
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("ClusterIP")
}

fn wants_node_ports(s: &Service) -> bool {
    match spec_type(s) {
        "NodePort" => true,
        "LoadBalancer" => s
            .spec
            .as_ref()
            .and_then(|s| s.allocate_load_balancer_node_ports)
            .unwrap_or(true),
        _ => false,
    }
}

fn owner(s: &Service) -> String {
    format!(
        "{}/{}",
        s.metadata.namespace.as_deref().unwrap_or_default(),
        s.metadata.name.as_deref().unwrap_or_default()
    )
}

fn cluster_ip(s: &Service) -> Option<Ipv4Addr> {
    s.spec
        .as_ref()?
        .cluster_ip
        .as_deref()
        .and_then(|ip| ip.parse().ok())
}

fn node_ports(s: &Service) -> Vec<u16> {
    s.spec
        .iter()
        .flat_map(|sp| sp.ports.iter().flatten())
        .filter_map(|p| p.node_port.and_then(|n| u16::try_from(n).ok()))
        .collect()
}

fn alloc_error(field: &str, value: impl std::fmt::Debug, e: AllocError) -> ApiError {
    match e {
        AllocError::Storage(s) => ApiError::from_storage(s, "", "services", ""),
        other => ApiError::invalid(
            "",
            "Service",
            "",
            vec![FieldError::invalid(field, value, &other.to_string())],
        ),
    }
}

impl ServiceStrategy {
    /// Allocates the cluster IP (unless headless or ExternalName) and node ports the service
    /// needs and does not have yet.
    async fn allocate(&self, api: &Api, adm: &mut Admission<'_, Service>) -> Result<(), ApiError> {
        let who = owner(adm.obj);
        let old_ip = adm.old.and_then(cluster_ip);
        let old_ports: Vec<(i32, String, i32)> = adm
            .old
            .and_then(|o| o.spec.as_ref())
            .map(|s| {
                s.ports
                    .iter()
                    .flatten()
                    .filter_map(|p| {
                        Some((p.port, p.protocol.clone().unwrap_or_default(), p.node_port?))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let external_name = spec_type(adm.obj) == "ExternalName";
        let node_ports_wanted = wants_node_ports(adm.obj);
        let dry_run = adm.dry_run;
        let spec = adm.obj.spec.get_or_insert_with(ServiceSpec::default);

        // Cluster IP.
        if external_name {
            spec.cluster_ip = None;
            spec.cluster_ips = None;
        } else {
            let requested = spec.cluster_ip.clone().filter(|s| !s.is_empty());
            match requested.as_deref() {
                Some("None") => {
                    spec.cluster_ips = Some(vec!["None".into()]);
                }
                Some(ip_text) => {
                    let ip: Ipv4Addr = ip_text.parse().map_err(|_| {
                        ApiError::invalid(
                            "",
                            "Service",
                            "",
                            vec![FieldError::invalid(
                                "spec.clusterIPs[0]",
                                ip_text,
                                "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                            )],
                        )
                    })?;
                    if old_ip != Some(ip) {
                        api.alloc
                            .allocate_ip(&who, Some(ip), dry_run)
                            .await
                            .map_err(|e| alloc_error("spec.clusterIPs", ip_text, e))?;
                    }
                    spec.cluster_ips = Some(vec![ip.to_string()]);
                }
                None => {
                    let ip = match old_ip {
                        Some(ip) => ip,
                        None => api
                            .alloc
                            .allocate_ip(&who, None, dry_run)
                            .await
                            .map_err(|e| alloc_error("spec.clusterIPs", "", e))?,
                    };
                    spec.cluster_ip = Some(ip.to_string());
                    spec.cluster_ips = Some(vec![ip.to_string()]);
                }
            }
        }

        // Node ports.
        for port in spec.ports.iter_mut().flatten() {
            if !node_ports_wanted {
                port.node_port = None;
                continue;
            }
            let protocol = port.protocol.clone().unwrap_or_default();
            let kept = old_ports
                .iter()
                .find(|(p, proto, _)| *p == port.port && *proto == protocol)
                .map(|(_, _, n)| *n);
            match port.node_port {
                Some(n) if Some(n) == kept || old_ports.iter().any(|(_, _, o)| *o == n) => {}
                Some(n) => {
                    let requested = u16::try_from(n).ok();
                    let got = match requested {
                        Some(p) => api.alloc.allocate_port(&who, Some(p), dry_run).await,
                        None => Err(AllocError::OutOfRange {
                            what: "port",
                            range: String::new(),
                        }),
                    };
                    got.map_err(|e| alloc_error("spec.ports[].nodePort", n, e))?;
                }
                None => {
                    let n = match kept {
                        Some(n) => n,
                        None => i32::from(
                            api.alloc
                                .allocate_port(&who, None, dry_run)
                                .await
                                .map_err(|e| alloc_error("spec.ports[].nodePort", "", e))?,
                        ),
                    };
                    port.node_port = Some(n);
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Strategy<Service> for ServiceStrategy {
    fn defaults(&self, s: &mut Service) {
        let spec = s.spec.get_or_insert_with(ServiceSpec::default);
        if spec.type_.as_deref().is_none_or(str::is_empty) {
            spec.type_ = Some("ClusterIP".into());
        }
        let ty = spec.type_.clone().unwrap_or_default();
        if spec.session_affinity.is_none() {
            spec.session_affinity = Some("None".into());
        }
        for p in spec.ports.iter_mut().flatten() {
            default_port(p);
        }
        if ty != "ExternalName" {
            if spec.internal_traffic_policy.is_none() {
                spec.internal_traffic_policy = Some("Cluster".into());
            }
            if spec.ip_families.is_none() {
                spec.ip_families = Some(vec!["IPv4".into()]);
            }
            if spec.ip_family_policy.is_none() {
                spec.ip_family_policy = Some("SingleStack".into());
            }
        }
        if (ty == "NodePort" || ty == "LoadBalancer") && spec.external_traffic_policy.is_none() {
            spec.external_traffic_policy = Some("Cluster".into());
        }
        if ty == "LoadBalancer" && spec.allocate_load_balancer_node_ports.is_none() {
            spec.allocate_load_balancer_node_ports = Some(true);
        }
    }

    fn validate(&self, s: &Service) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let Some(spec) = &s.spec else {
            errs.push(FieldError::required("spec"));
            return errs;
        };
        let ty = spec.type_.as_deref().unwrap_or("ClusterIP");
        if !TYPES.contains(&ty) {
            errs.push(FieldError::not_supported("spec.type", ty, TYPES));
        }
        let headless = spec.cluster_ip.as_deref() == Some("None");
        let ports = spec.ports.as_deref().unwrap_or_default();
        if ports.is_empty() && ty != "ExternalName" && !headless {
            errs.push(FieldError::required("spec.ports"));
        }
        if ty == "ExternalName" {
            match spec.external_name.as_deref() {
                None | Some("") => errs.push(FieldError::required("spec.externalName")),
                Some(n) => {
                    for m in validation::is_dns1123_subdomain(n.trim_end_matches('.')) {
                        errs.push(FieldError::invalid("spec.externalName", n, &m));
                    }
                }
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, p) in ports.iter().enumerate() {
            let path = format!("spec.ports[{i}]");
            match p.name.as_deref() {
                None | Some("") if ports.len() > 1 => {
                    errs.push(FieldError::required(format!("{path}.name")));
                }
                None | Some("") => {}
                Some(n) => {
                    for m in validation::is_dns1123_label(n) {
                        errs.push(FieldError::invalid(format!("{path}.name"), n, &m));
                    }
                    if !names.insert(n.to_string()) {
                        errs.push(FieldError::duplicate(format!("{path}.name"), n));
                    }
                }
            }
            if !(1..=65535).contains(&p.port) {
                errs.push(FieldError::invalid(
                    format!("{path}.port"),
                    p.port,
                    "must be between 1 and 65535, inclusive",
                ));
            }
            let proto = p.protocol.as_deref().unwrap_or("TCP");
            if !["TCP", "UDP", "SCTP"].contains(&proto) {
                errs.push(FieldError::not_supported(
                    format!("{path}.protocol"),
                    proto,
                    &["SCTP", "TCP", "UDP"],
                ));
            }
            match &p.target_port {
                Some(IntOrString::Int(n)) if !(1..=65535).contains(n) => {
                    errs.push(FieldError::invalid(
                        format!("{path}.targetPort"),
                        n,
                        "must be between 1 and 65535, inclusive",
                    ));
                }
                Some(IntOrString::String(n)) if n.is_empty() || n.len() > 15 => {
                    errs.push(FieldError::invalid(
                        format!("{path}.targetPort"),
                        n,
                        "must be a valid port name (at most 15 characters)",
                    ));
                }
                _ => {}
            }
            if p.node_port.is_some() && !(ty == "NodePort" || ty == "LoadBalancer") {
                errs.push(FieldError::forbidden(
                    format!("{path}.nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
        }
        if let Some(sel) = &spec.selector {
            for m in validation::validate_labels(sel) {
                errs.push(FieldError::invalid("spec.selector", "", &m));
            }
        }
        if let Some(aff) = spec.session_affinity.as_deref()
            && !["None", "ClientIP"].contains(&aff)
        {
            errs.push(FieldError::not_supported(
                "spec.sessionAffinity",
                aff,
                &["ClientIP", "None"],
            ));
        }
        errs
    }

    fn validate_update(&self, new: &Service, old: &Service) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let (Some(n), Some(o)) = (&new.spec, &old.spec) else {
            return errs;
        };
        let old_ty = o.type_.as_deref().unwrap_or("ClusterIP");
        let new_ty = n.type_.as_deref().unwrap_or("ClusterIP");
        // The cluster IP cannot change unless the service moves to or from ExternalName.
        if old_ty != "ExternalName"
            && new_ty != "ExternalName"
            && n.cluster_ip.as_deref().is_some_and(|ip| !ip.is_empty())
            && n.cluster_ip != o.cluster_ip
        {
            errs.push(FieldError::immutable(
                "spec.clusterIPs[0]",
                n.cluster_ip.clone().unwrap_or_default(),
            ));
        }
        errs
    }

    async fn admit(&self, api: &Api, adm: &mut Admission<'_, Service>) -> Result<(), ApiError> {
        // An update that leaves clusterIP empty keeps the allocated one.
        if adm.op == Operation::Update
            && let (Some(old), Some(spec)) = (adm.old, adm.obj.spec.as_mut())
            && spec.cluster_ip.as_deref().is_none_or(str::is_empty)
            && spec.type_.as_deref() != Some("ExternalName")
            && let Some(old_spec) = &old.spec
        {
            spec.cluster_ip = old_spec.cluster_ip.clone();
            spec.cluster_ips = old_spec.cluster_ips.clone();
        }
        self.allocate(api, adm).await
    }

    async fn release(&self, api: &Api, obj: &Service, keep: Option<&Service>) {
        let who = owner(obj);
        if let Some(ip) = cluster_ip(obj)
            && keep.and_then(cluster_ip) != Some(ip)
        {
            api.alloc.release_ip(ip, &who).await;
        }
        let kept = keep.map(node_ports).unwrap_or_default();
        for port in node_ports(obj) {
            if !kept.contains(&port) {
                api.alloc.release_port(port, &who).await;
            }
        }
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::NAME,
            Column::new("Type", "string", "The type of the service."),
            Column::new("Cluster-IP", "string", "The IP address of the service."),
            Column::new("External-IP", "string", "The external IPs of the service."),
            Column::new("Port(s)", "string", "The ports of the service."),
            Column::AGE,
            Column::wide("Selector", "string", "The selector of the service."),
        ]
    }

    fn cells(&self, s: &Service) -> Vec<Value> {
        let spec = s.spec.clone().unwrap_or_default();
        let ty = spec.type_.clone().unwrap_or_else(|| "ClusterIP".into());
        let cluster_ip = match ty.as_str() {
            "ExternalName" => "<none>".to_string(),
            _ => spec.cluster_ip.clone().unwrap_or_else(|| "<none>".into()),
        };
        let mut external: Vec<String> = spec.external_ips.clone().unwrap_or_default();
        if ty == "ExternalName" {
            external.push(spec.external_name.clone().unwrap_or_default());
        }
        if ty == "LoadBalancer" {
            let ingress: Vec<String> = s
                .status
                .as_ref()
                .and_then(|st| st.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_ref())
                .map(|i| {
                    i.iter()
                        .filter_map(|x| x.ip.clone().or_else(|| x.hostname.clone()))
                        .collect()
                })
                .unwrap_or_default();
            if ingress.is_empty() && external.is_empty() {
                external.push("<pending>".into());
            }
            external.extend(ingress);
        }
        let external = if external.is_empty() {
            "<none>".to_string()
        } else {
            external.join(",")
        };
        let ports = spec
            .ports
            .iter()
            .flatten()
            .map(|p| {
                let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
                match p.node_port {
                    Some(n) => format!("{}:{n}/{proto}", p.port),
                    None => format!("{}/{proto}", p.port),
                }
            })
            .collect::<Vec<_>>();
        let ports = if ports.is_empty() {
            "<none>".to_string()
        } else {
            ports.join(",")
        };
        let selector = spec
            .selector
            .as_ref()
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_else(|| "<none>".into());
        vec![
            Value::String(name(s)),
            Value::String(ty),
            Value::String(cluster_ip),
            Value::String(external),
            Value::String(ports),
            age(s),
            Value::String(selector),
        ]
    }
}

fn default_port(p: &mut ServicePort) {
    if p.protocol.as_deref().is_none_or(str::is_empty) {
        p.protocol = Some("TCP".into());
    }
    let unset = match &p.target_port {
        None => true,
        Some(IntOrString::Int(0)) => true,
        Some(IntOrString::String(s)) => s.is_empty(),
        _ => false,
    };
    if unset {
        p.target_port = Some(IntOrString::Int(p.port));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(json: serde_json::Value) -> Service {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn defaults_fill_type_protocol_and_target_port() {
        let mut s = svc(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}
        }));
        ServiceStrategy.defaults(&mut s);
        let spec = s.spec.as_ref().unwrap();
        assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
        let p = &spec.ports.as_ref().unwrap()[0];
        assert_eq!(p.protocol.as_deref(), Some("TCP"));
        assert_eq!(p.target_port, Some(IntOrString::Int(80)));
        assert!(ServiceStrategy.validate(&s).is_empty());
    }

    #[test]
    fn validation_catches_bad_ports() {
        let s = svc(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": "Bogus", "ports": [{"port": 0}, {"port": 80, "nodePort": 30001}]}
        }));
        let errs = ServiceStrategy.validate(&s);
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"spec.type"));
        assert!(fields.contains(&"spec.ports[0].port"));
        assert!(fields.contains(&"spec.ports[0].name"));
    }

    #[test]
    fn ports_column_shows_node_ports() {
        let mut s = svc(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.5",
                     "ports": [{"port": 80, "nodePort": 30080}]}
        }));
        ServiceStrategy.defaults(&mut s);
        let cells = ServiceStrategy.cells(&s);
        assert_eq!(cells[1], "NodePort");
        assert_eq!(cells[2], "10.96.0.5");
        assert_eq!(cells[3], "<none>");
        assert_eq!(cells[4], "80:30080/TCP");
    }
}
