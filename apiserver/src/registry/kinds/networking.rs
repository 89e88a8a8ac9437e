//! networking.k8s.io/v1 kinds — Ingresses, IngressClasses and NetworkPolicies: stored with
//! Kubernetes' defaults and validation and printed with its columns. As in Kubernetes, the API
//! server only keeps them; an ingress controller or a network plugin acts on them.

use async_trait::async_trait;
use k8s_openapi::api::networking::v1::{
    Ingress, IngressBackend, IngressClass, NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use rkube_machinery::validation;
use serde_json::Value;

use super::workloads::selector_string;
use crate::error::FieldError;
use crate::registry::{Column, Strategy, age, name};

/// Appends one error per message of a validation helper.
fn push_all(errs: &mut Vec<FieldError>, path: &str, value: &str, messages: Vec<String>) {
    for m in messages {
        errs.push(FieldError::invalid(path, value, &m));
    }
}

fn validate_backend(b: &IngressBackend, path: &str, errs: &mut Vec<FieldError>) {
    match (&b.service, &b.resource) {
        (Some(_), Some(_)) => errs.push(FieldError::invalid(
            path,
            "",
            "cannot set both resource and service backends",
        )),
        (None, None) => errs.push(FieldError::invalid(
            path,
            "",
            "resource or service backend is required",
        )),
        (None, Some(r)) => {
            if r.kind.is_empty() {
                errs.push(FieldError::required(format!("{path}.resource.kind")));
            }
            if r.name.is_empty() {
                errs.push(FieldError::required(format!("{path}.resource.name")));
            }
        }
        (Some(svc), None) => {
            let p = format!("{path}.service");
            if svc.name.is_empty() {
                errs.push(FieldError::required(format!("{p}.name")));
            } else {
                push_all(
                    errs,
                    &format!("{p}.name"),
                    &svc.name,
                    validation::is_dns1035_label(&svc.name),
                );
            }
            let port = svc.port.clone().unwrap_or_default();
            match (&port.name, port.number) {
                (Some(n), Some(_)) if !n.is_empty() => errs.push(FieldError::invalid(
                    format!("{p}.port"),
                    "",
                    "cannot set both port name & port number",
                )),
                (Some(n), _) if !n.is_empty() => push_all(
                    errs,
                    &format!("{p}.port.name"),
                    n,
                    validation::is_valid_port_name(n),
                ),
                (_, Some(num)) => {
                    for m in validation::is_valid_port_num(i64::from(num)) {
                        errs.push(FieldError::invalid(format!("{p}.port.number"), num, &m));
                    }
                }
                _ => errs.push(FieldError::invalid(
                    format!("{p}.port"),
                    "",
                    "port name or number is required",
                )),
            }
        }
    }
}

/// Ingress behaviour.
pub struct IngressStrategy;

#[async_trait]
impl Strategy<Ingress> for IngressStrategy {
    fn validate(&self, ing: &Ingress) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let spec = ing.spec.clone().unwrap_or_default();
        let rules = spec.rules.clone().unwrap_or_default();
        if spec.default_backend.is_none() && rules.is_empty() {
            errs.push(FieldError::invalid(
                "spec",
                "",
                "either `defaultBackend` or `rules` must be specified",
            ));
        }
        if let Some(b) = &spec.default_backend {
            validate_backend(b, "spec.defaultBackend", &mut errs);
        }
        if let Some(class) = &spec.ingress_class_name {
            push_all(
                &mut errs,
                "spec.ingressClassName",
                class,
                validation::is_dns1123_subdomain(class),
            );
        }
        for (i, rule) in rules.iter().enumerate() {
            let rp = format!("spec.rules[{i}]");
            if let Some(host) = rule.host.as_deref().filter(|h| !h.is_empty()) {
                if validation::is_valid_ip(host).is_empty() {
                    errs.push(FieldError::invalid(
                        format!("{rp}.host"),
                        host,
                        "must be a DNS name, not an IP address",
                    ));
                } else if host.contains('*') {
                    push_all(
                        &mut errs,
                        &format!("{rp}.host"),
                        host,
                        validation::is_wildcard_dns1123_subdomain(host),
                    );
                } else {
                    push_all(
                        &mut errs,
                        &format!("{rp}.host"),
                        host,
                        validation::is_dns1123_subdomain(host),
                    );
                }
            }
            let Some(http) = &rule.http else { continue };
            if http.paths.is_empty() {
                errs.push(FieldError::required(format!("{rp}.http.paths")));
            }
            for (j, p) in http.paths.iter().enumerate() {
                let pp = format!("{rp}.http.paths[{j}]");
                let path = p.path.as_deref().unwrap_or("");
                match p.path_type.as_str() {
                    "Exact" | "Prefix" => {
                        if !path.starts_with('/') {
                            errs.push(FieldError::invalid(
                                format!("{pp}.path"),
                                path,
                                "must be an absolute path",
                            ));
                        } else if path.contains("//") {
                            errs.push(FieldError::invalid(
                                format!("{pp}.path"),
                                path,
                                "must not contain '//'",
                            ));
                        }
                    }
                    "ImplementationSpecific" => {
                        if !path.is_empty() && !path.starts_with('/') {
                            errs.push(FieldError::invalid(
                                format!("{pp}.path"),
                                path,
                                "must be an absolute path",
                            ));
                        }
                    }
                    "" => errs.push(FieldError::required_msg(
                        format!("{pp}.pathType"),
                        "pathType must be specified",
                    )),
                    other => errs.push(FieldError::not_supported(
                        format!("{pp}.pathType"),
                        other,
                        &["Exact", "ImplementationSpecific", "Prefix"],
                    )),
                }
                validate_backend(&p.backend, &format!("{pp}.backend"), &mut errs);
            }
        }
        for (i, tls) in spec.tls.iter().flatten().enumerate() {
            for (j, host) in tls.hosts.iter().flatten().enumerate() {
                let messages = if host.contains('*') {
                    validation::is_wildcard_dns1123_subdomain(host)
                } else {
                    validation::is_dns1123_subdomain(host)
                };
                push_all(
                    &mut errs,
                    &format!("spec.tls[{i}].hosts[{j}]"),
                    host,
                    messages,
                );
            }
        }
        errs
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::NAME,
            Column::new(
                "Class",
                "string",
                "The name of the IngressClass resource that should be used for ingress class.",
            ),
            Column::new(
                "Hosts",
                "string",
                "Hosts that incoming requests are matched against before the ingress rule",
            ),
            Column::new(
                "Address",
                "string",
                "Address is a list containing ingress points for the load-balancer",
            ),
            Column::new("Ports", "string", "Ports of TLS configurations that open"),
            Column::AGE,
        ]
    }

    fn cells(&self, ing: &Ingress) -> Vec<Value> {
        let spec = ing.spec.clone().unwrap_or_default();
        let class = spec
            .ingress_class_name
            .clone()
            .unwrap_or_else(|| "<none>".into());
        let hosts: Vec<String> = spec
            .rules
            .iter()
            .flatten()
            .filter_map(|r| r.host.clone().filter(|h| !h.is_empty()))
            .collect();
        let hosts = if hosts.is_empty() {
            "*".to_string()
        } else {
            hosts.join(",")
        };
        let address: Vec<String> = ing
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.clone())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|i| i.ip.or(i.hostname))
            .collect();
        let ports = if spec.tls.as_ref().is_some_and(|t| !t.is_empty()) {
            "80, 443"
        } else {
            "80"
        };
        vec![
            Value::String(name(ing)),
            Value::String(class),
            Value::String(hosts),
            Value::String(address.join(",")),
            Value::String(ports.into()),
            age(ing),
        ]
    }
}

/// IngressClass behaviour: `spec.controller` is required, a domain-prefixed path, and
/// immutable.
pub struct IngressClassStrategy;

fn validate_controller(controller: &str) -> Vec<FieldError> {
    const PATH: &str = "spec.controller";
    if controller.is_empty() {
        return vec![FieldError::required(PATH)];
    }
    if controller.len() > 250 {
        return vec![FieldError::invalid(
            PATH,
            controller,
            &validation::max_len_error(250),
        )];
    }
    // A domain-prefixed path: `example.com/controller`.
    match controller.split_once('/') {
        Some((domain, path))
            if validation::is_dns1123_subdomain(domain).is_empty() && !path.is_empty() =>
        {
            Vec::new()
        }
        _ => vec![FieldError::invalid(
            PATH,
            controller,
            "must be a domain-prefixed path (such as \"acme.io/foo\")",
        )],
    }
}

#[async_trait]
impl Strategy<IngressClass> for IngressClassStrategy {
    fn validate(&self, c: &IngressClass) -> Vec<FieldError> {
        validate_controller(
            c.spec
                .as_ref()
                .and_then(|s| s.controller.as_deref())
                .unwrap_or(""),
        )
    }

    fn validate_update(&self, new: &IngressClass, old: &IngressClass) -> Vec<FieldError> {
        let controller = |c: &IngressClass| c.spec.as_ref().and_then(|s| s.controller.clone());
        if controller(new) == controller(old) {
            Vec::new()
        } else {
            vec![FieldError::immutable(
                "spec.controller",
                controller(new).unwrap_or_default(),
            )]
        }
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::NAME,
            Column::new(
                "Controller",
                "string",
                "Controller that is responsible for handling this class",
            ),
            Column::new(
                "Parameters",
                "string",
                "A reference to a resource with additional parameters",
            ),
            Column::AGE,
        ]
    }

    fn cells(&self, c: &IngressClass) -> Vec<Value> {
        let spec = c.spec.clone().unwrap_or_default();
        let parameters = spec.parameters.map_or_else(
            || "<none>".to_string(),
            |p| {
                let group = p.api_group.map(|g| format!(".{g}")).unwrap_or_default();
                format!("{}{group}/{}", p.kind, p.name)
            },
        );
        vec![
            Value::String(name(c)),
            Value::String(spec.controller.unwrap_or_default()),
            Value::String(parameters),
            age(c),
        ]
    }
}

/// NetworkPolicy behaviour: `policyTypes` defaults to `Ingress` (and `Egress` when egress
/// rules are given), port protocols to TCP; selectors, peers, CIDRs and ports are validated.
pub struct NetworkPolicyStrategy;

fn default_ports(ports: &mut Option<Vec<NetworkPolicyPort>>) {
    for p in ports.iter_mut().flatten() {
        p.protocol.get_or_insert_with(|| "TCP".into());
    }
}

fn validate_ports(ports: &[NetworkPolicyPort], path: &str, errs: &mut Vec<FieldError>) {
    for (i, p) in ports.iter().enumerate() {
        let pp = format!("{path}[{i}]");
        if let Some(proto) = p.protocol.as_deref()
            && !matches!(proto, "TCP" | "UDP" | "SCTP")
        {
            errs.push(FieldError::not_supported(
                format!("{pp}.protocol"),
                proto,
                &["SCTP", "TCP", "UDP"],
            ));
        }
        match &p.port {
            Some(IntOrString::Int(n)) => {
                for m in validation::is_valid_port_num(i64::from(*n)) {
                    errs.push(FieldError::invalid(format!("{pp}.port"), n, &m));
                }
                if let Some(end) = p.end_port {
                    if end < *n {
                        errs.push(FieldError::invalid(
                            format!("{pp}.endPort"),
                            end,
                            "must be greater than or equal to `port`",
                        ));
                    }
                    for m in validation::is_valid_port_num(i64::from(end)) {
                        errs.push(FieldError::invalid(format!("{pp}.endPort"), end, &m));
                    }
                }
            }
            Some(IntOrString::String(s)) => {
                push_all(
                    errs,
                    &format!("{pp}.port"),
                    s,
                    validation::is_valid_port_name(s),
                );
                if p.end_port.is_some() {
                    errs.push(FieldError::invalid(
                        format!("{pp}.endPort"),
                        p.end_port.unwrap_or_default(),
                        "may not be specified when `port` is non-numeric",
                    ));
                }
            }
            None => {
                if p.end_port.is_some() {
                    errs.push(FieldError::invalid(
                        format!("{pp}.endPort"),
                        p.end_port.unwrap_or_default(),
                        "may not be specified when `port` is not specified",
                    ));
                }
            }
        }
    }
}

fn validate_selector_at(
    sel: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    if let Some(sel) = sel
        && let Err(e) = rkube_machinery::selector::LabelSelector::from_k8s(sel)
    {
        errs.push(FieldError::invalid(path, "", &e.to_string()));
    }
}

fn validate_peers(peers: &[NetworkPolicyPeer], path: &str, errs: &mut Vec<FieldError>) {
    for (i, peer) in peers.iter().enumerate() {
        let pp = format!("{path}[{i}]");
        let selectors = usize::from(peer.pod_selector.is_some())
            + usize::from(peer.namespace_selector.is_some());
        match (&peer.ip_block, selectors) {
            (None, 0) => errs.push(FieldError::required_msg(pp.clone(), "must specify a peer")),
            (Some(_), n) if n > 0 => errs.push(FieldError::forbidden(
                pp.clone(),
                "may not specify more than 1 peer type",
            )),
            _ => {}
        }
        validate_selector_at(
            peer.pod_selector.as_ref(),
            &format!("{pp}.podSelector"),
            errs,
        );
        validate_selector_at(
            peer.namespace_selector.as_ref(),
            &format!("{pp}.namespaceSelector"),
            errs,
        );
        let Some(block) = &peer.ip_block else {
            continue;
        };
        let cidr_path = format!("{pp}.ipBlock.cidr");
        if block.cidr.is_empty() {
            errs.push(FieldError::required(cidr_path));
            continue;
        }
        let cidr_errs = validation::is_valid_cidr(&block.cidr);
        if !cidr_errs.is_empty() {
            push_all(errs, &cidr_path, &block.cidr, cidr_errs);
            continue;
        }
        let outer: Option<ipnet::IpNet> = block.cidr.parse().ok();
        for (j, except) in block.except.iter().flatten().enumerate() {
            let ep = format!("{pp}.ipBlock.except[{j}]");
            let inner_errs = validation::is_valid_cidr(except);
            if !inner_errs.is_empty() {
                push_all(errs, &ep, except, inner_errs);
                continue;
            }
            let inner: Option<ipnet::IpNet> = except.parse().ok();
            if let (Some(o), Some(i)) = (outer, inner)
                && !(o.contains(&i) && i.prefix_len() > o.prefix_len())
            {
                errs.push(FieldError::invalid(
                    ep,
                    except,
                    "must be a strict subset of `cidr`",
                ));
            }
        }
    }
}

#[async_trait]
impl Strategy<NetworkPolicy> for NetworkPolicyStrategy {
    fn defaults(&self, np: &mut NetworkPolicy) {
        let spec = np.spec.get_or_insert_with(Default::default);
        for rule in spec.ingress.iter_mut().flatten() {
            default_ports(&mut rule.ports);
        }
        for rule in spec.egress.iter_mut().flatten() {
            default_ports(&mut rule.ports);
        }
        if spec.policy_types.as_ref().is_none_or(Vec::is_empty) {
            let mut types = vec!["Ingress".to_string()];
            if spec.egress.is_some() {
                types.push("Egress".into());
            }
            spec.policy_types = Some(types);
        }
    }

    fn validate(&self, np: &NetworkPolicy) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let spec = np.spec.clone().unwrap_or_default();
        validate_selector_at(spec.pod_selector.as_ref(), "spec.podSelector", &mut errs);
        let types = spec.policy_types.clone().unwrap_or_default();
        if types.len() > 2 {
            errs.push(FieldError::invalid(
                "spec.policyTypes",
                types.join(","),
                "may not specify more than two policyTypes",
            ));
        }
        for (i, t) in types.iter().enumerate() {
            if !matches!(t.as_str(), "Ingress" | "Egress") {
                errs.push(FieldError::not_supported(
                    format!("spec.policyTypes[{i}]"),
                    t,
                    &["Egress", "Ingress"],
                ));
            }
        }
        for (i, rule) in spec.ingress.iter().flatten().enumerate() {
            let p = format!("spec.ingress[{i}]");
            validate_ports(
                rule.ports.as_deref().unwrap_or_default(),
                &format!("{p}.ports"),
                &mut errs,
            );
            validate_peers(
                rule.from.as_deref().unwrap_or_default(),
                &format!("{p}.from"),
                &mut errs,
            );
        }
        for (i, rule) in spec.egress.iter().flatten().enumerate() {
            let p = format!("spec.egress[{i}]");
            validate_ports(
                rule.ports.as_deref().unwrap_or_default(),
                &format!("{p}.ports"),
                &mut errs,
            );
            validate_peers(
                rule.to.as_deref().unwrap_or_default(),
                &format!("{p}.to"),
                &mut errs,
            );
        }
        errs
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::NAME,
            Column::new(
                "Pod-Selector",
                "string",
                "Selects the pods to which this NetworkPolicy object applies.",
            ),
            Column::AGE,
        ]
    }

    fn cells(&self, np: &NetworkPolicy) -> Vec<Value> {
        let selector = selector_string(np.spec.as_ref().and_then(|s| s.pod_selector.as_ref()));
        vec![
            Value::String(name(np)),
            Value::String(if selector.is_empty() {
                "<none>".into()
            } else {
                selector
            }),
            age(np),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ingress(v: serde_json::Value) -> Ingress {
        serde_json::from_value(v).unwrap()
    }

    fn fields(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(|e| e.field.clone()).collect()
    }

    #[test]
    fn ingress_rules_need_path_types_absolute_paths_and_one_backend() {
        let ok = ingress(serde_json::json!({
            "metadata": {"name": "web"},
            "spec": {"ingressClassName": "nginx", "rules": [{"host": "*.example.com", "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}
        }));
        assert!(IngressStrategy.validate(&ok).is_empty());
        let bad = ingress(serde_json::json!({
            "metadata": {"name": "web"},
            "spec": {"rules": [{"host": "10.0.0.1", "http": {"paths": [
                {"path": "api", "pathType": "Exact",
                 "backend": {"service": {"name": "web", "port": {"name": "http", "number": 80}}}},
                {"path": "/x", "backend": {"service": {"name": "web", "port": {"number": 70000}}}}
            ]}}]}
        }));
        let errs = IngressStrategy.validate(&bad);
        assert_eq!(
            fields(&errs),
            [
                "spec.rules[0].host",
                "spec.rules[0].http.paths[0].path",
                "spec.rules[0].http.paths[0].backend.service.port",
                "spec.rules[0].http.paths[1].pathType",
                "spec.rules[0].http.paths[1].backend.service.port.number",
            ]
        );
        let empty = ingress(serde_json::json!({"metadata": {"name": "e"}, "spec": {}}));
        assert_eq!(fields(&IngressStrategy.validate(&empty)), ["spec"]);
    }

    #[test]
    fn network_policies_default_their_types_and_check_peers() {
        let mut np: NetworkPolicy = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "db"},
            "spec": {"podSelector": {"matchLabels": {"app": "db"}},
                     "ingress": [{"from": [{"podSelector": {}}], "ports": [{"port": 5432}]}],
                     "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}]}]}
        }))
        .unwrap();
        NetworkPolicyStrategy.defaults(&mut np);
        let spec = np.spec.as_ref().unwrap();
        assert_eq!(
            spec.policy_types.as_deref().unwrap(),
            ["Ingress".to_string(), "Egress".to_string()]
        );
        assert_eq!(
            spec.ingress.as_ref().unwrap()[0].ports.as_ref().unwrap()[0]
                .protocol
                .as_deref(),
            Some("TCP")
        );
        assert!(NetworkPolicyStrategy.validate(&np).is_empty());

        let bad: NetworkPolicy = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "db"},
            "spec": {"podSelector": {},
                     "policyTypes": ["Ingress", "Sideways"],
                     "ingress": [{"from": [{}, {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["192.168.0.0/16"]},
                                            "podSelector": {}}],
                                  "ports": [{"port": 80, "endPort": 70, "protocol": "ICMP"}]}]}
        }))
        .unwrap();
        assert_eq!(
            fields(&NetworkPolicyStrategy.validate(&bad)),
            [
                "spec.policyTypes[1]",
                "spec.ingress[0].ports[0].protocol",
                "spec.ingress[0].ports[0].endPort",
                "spec.ingress[0].from[0]",
                "spec.ingress[0].from[1]",
                "spec.ingress[0].from[1].ipBlock.except[0]",
            ]
        );
    }

    #[test]
    fn ingress_class_controllers_are_domain_prefixed_and_immutable() {
        let class = |c: &str| -> IngressClass {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "nginx"}, "spec": {"controller": c}
            }))
            .unwrap()
        };
        assert!(
            IngressClassStrategy
                .validate(&class("k8s.io/ingress-nginx"))
                .is_empty()
        );
        assert_eq!(IngressClassStrategy.validate(&class("nginx")).len(), 1);
        assert_eq!(
            IngressClassStrategy
                .validate_update(&class("a.io/x"), &class("k8s.io/ingress-nginx"))
                .len(),
            1
        );
    }
}
