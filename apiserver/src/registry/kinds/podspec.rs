//! Pod spec defaulting and validation shared by pods and every pod template (Deployments,
//! ReplicaSets, DaemonSets, StatefulSets, Jobs), as Kubernetes' defaulters and validators do
//! it.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec, Probe, Volume};
use rkube_machinery::quantity::parse_quantity;
use rkube_machinery::validation;

use crate::error::FieldError;

/// Defaults of a probe.
fn default_probe(p: &mut Probe) {
    p.timeout_seconds.get_or_insert(1);
    p.period_seconds.get_or_insert(10);
    p.success_threshold.get_or_insert(1);
    p.failure_threshold.get_or_insert(3);
    if let Some(h) = p.http_get.as_mut() {
        h.scheme.get_or_insert_with(|| "HTTP".into());
        h.path.get_or_insert_with(|| "/".into());
    }
}

/// `IfNotPresent`, or `Always` for `:latest` and untagged images.
pub fn default_pull_policy(image: &str) -> &'static str {
    let name = image.split('@').next().unwrap_or(image);
    let last = name.rsplit('/').next().unwrap_or(name);
    if image.contains('@') {
        return "IfNotPresent";
    }
    match last.split_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn default_container(c: &mut Container) {
    if c.termination_message_path.is_none() {
        c.termination_message_path = Some("/dev/termination-log".into());
    }
    if c.termination_message_policy.is_none() {
        c.termination_message_policy = Some("File".into());
    }
    if c.image_pull_policy.as_deref().is_none_or(str::is_empty) {
        c.image_pull_policy =
            Some(default_pull_policy(c.image.as_deref().unwrap_or_default()).into());
    }
    if c.resources.is_none() {
        c.resources = Some(Default::default());
    }
    for p in c.ports.iter_mut().flatten() {
        if p.protocol.as_deref().is_none_or(str::is_empty) {
            p.protocol = Some("TCP".into());
        }
    }
    for e in c.env.iter_mut().flatten() {
        if let Some(f) = e.value_from.as_mut().and_then(|v| v.field_ref.as_mut())
            && f.api_version.as_deref().is_none_or(str::is_empty)
        {
            f.api_version = Some("v1".into());
        }
    }
    for p in [
        &mut c.liveness_probe,
        &mut c.readiness_probe,
        &mut c.startup_probe,
    ]
    .into_iter()
    .flatten()
    {
        default_probe(p);
    }
}

fn default_volume(v: &mut Volume) {
    if let Some(cm) = v.config_map.as_mut() {
        cm.default_mode.get_or_insert(0o644);
    }
    if let Some(s) = v.secret.as_mut() {
        s.default_mode.get_or_insert(0o644);
    }
    if let Some(p) = v.projected.as_mut() {
        p.default_mode.get_or_insert(0o644);
    }
    if let Some(d) = v.downward_api.as_mut() {
        d.default_mode.get_or_insert(0o644);
    }
    if let Some(h) = v.host_path.as_mut() {
        h.type_.get_or_insert_with(String::new);
    }
    let has_source = v.config_map.is_some()
        || v.secret.is_some()
        || v.projected.is_some()
        || v.downward_api.is_some()
        || v.host_path.is_some()
        || v.persistent_volume_claim.is_some()
        || v.empty_dir.is_some()
        || v.nfs.is_some()
        || v.csi.is_some()
        || v.ephemeral.is_some()
        || v.image.is_some();
    if !has_source {
        v.empty_dir = Some(Default::default());
    }
}

/// Kubernetes' defaults of a pod spec (restartPolicy is defaulted by the caller's kind).
pub fn default_pod_spec(spec: &mut PodSpec) {
    spec.dns_policy.get_or_insert_with(|| "ClusterFirst".into());
    spec.termination_grace_period_seconds.get_or_insert(30);
    spec.security_context.get_or_insert_with(Default::default);
    if spec.scheduler_name.as_deref().is_none_or(str::is_empty) {
        spec.scheduler_name = Some("default-scheduler".into());
    }
    spec.enable_service_links.get_or_insert(true);
    for c in spec.containers.iter_mut() {
        default_container(c);
    }
    for c in spec.init_containers.iter_mut().flatten() {
        default_container(c);
    }
    for v in spec.volumes.iter_mut().flatten() {
        default_volume(v);
    }
    // serviceAccount is the deprecated alias of serviceAccountName.
    match (&spec.service_account_name, &spec.service_account) {
        (Some(n), None) if !n.is_empty() => spec.service_account = Some(n.clone()),
        (None, Some(n)) if !n.is_empty() => spec.service_account_name = Some(n.clone()),
        _ => {}
    }
}

/// Defaults of a pod template (restartPolicy Always unless the kind says otherwise).
pub fn default_template(t: &mut PodTemplateSpec, restart_policy: Option<&str>) {
    let spec = t.spec.get_or_insert_with(Default::default);
    if let Some(p) = restart_policy
        && spec.restart_policy.as_deref().is_none_or(str::is_empty)
    {
        spec.restart_policy = Some(p.into());
    }
    default_pod_spec(spec);
}

fn label_errors(out: &mut Vec<FieldError>, field: &str, value: &str, msgs: Vec<String>) {
    for m in msgs {
        out.push(FieldError::invalid(field, value, &m));
    }
}

fn validate_container(
    c: &Container,
    path: &str,
    volumes: &BTreeSet<String>,
    errs: &mut Vec<FieldError>,
) {
    if c.name.is_empty() {
        errs.push(FieldError::required(format!("{path}.name")));
    } else {
        label_errors(
            errs,
            &format!("{path}.name"),
            &c.name,
            validation::is_dns1123_label(&c.name),
        );
    }
    if c.image.as_deref().is_none_or(|i| i.trim().is_empty()) {
        errs.push(FieldError::required(format!("{path}.image")));
    }
    let mut port_names = BTreeSet::new();
    for (i, p) in c.ports.iter().flatten().enumerate() {
        let pp = format!("{path}.ports[{i}]");
        if !(1..=65535).contains(&p.container_port) {
            errs.push(FieldError::invalid(
                format!("{pp}.containerPort"),
                p.container_port,
                "must be between 1 and 65535, inclusive",
            ));
        }
        if let Some(hp) = p.host_port
            && !(0..=65535).contains(&hp)
        {
            errs.push(FieldError::invalid(
                format!("{pp}.hostPort"),
                hp,
                "must be between 1 and 65535, inclusive",
            ));
        }
        if let Some(n) = p.name.as_deref().filter(|n| !n.is_empty()) {
            label_errors(
                errs,
                &format!("{pp}.name"),
                n,
                validation::is_valid_port_name(n),
            );
            if !port_names.insert(n.to_string()) {
                errs.push(FieldError::duplicate(format!("{pp}.name"), n));
            }
        }
        let proto = p.protocol.as_deref().unwrap_or("TCP");
        if !["TCP", "UDP", "SCTP"].contains(&proto) {
            errs.push(FieldError::not_supported(
                format!("{pp}.protocol"),
                proto,
                &["SCTP", "TCP", "UDP"],
            ));
        }
    }
    for (i, e) in c.env.iter().flatten().enumerate() {
        let ep = format!("{path}.env[{i}].name");
        if e.name.is_empty() {
            errs.push(FieldError::required(ep));
        } else {
            label_errors(errs, &ep, &e.name, validation::is_env_var_name(&e.name));
        }
        if e.value.as_deref().is_some_and(|v| !v.is_empty()) && e.value_from.is_some() {
            errs.push(FieldError::invalid(
                format!("{path}.env[{i}].valueFrom"),
                "",
                "may not be specified when `value` is not empty",
            ));
        }
    }
    let mut mount_paths = BTreeSet::new();
    for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
        let mp = format!("{path}.volumeMounts[{i}]");
        if m.name.is_empty() {
            errs.push(FieldError::required(format!("{mp}.name")));
        } else if !volumes.contains(&m.name) {
            errs.push(FieldError {
                reason: "FieldValueNotFound",
                field: format!("{mp}.name"),
                message: format!("Not found: {:?}", m.name),
            });
        }
        if m.mount_path.is_empty() {
            errs.push(FieldError::required(format!("{mp}.mountPath")));
        } else if !mount_paths.insert(m.mount_path.clone()) {
            errs.push(FieldError::invalid(
                format!("{mp}.mountPath"),
                &m.mount_path,
                "must be unique",
            ));
        }
    }
    if let Some(r) = &c.resources {
        for (which, map) in [("requests", &r.requests), ("limits", &r.limits)] {
            for (k, q) in map.iter().flatten() {
                match parse_quantity(q) {
                    Err(e) => errs.push(FieldError::invalid(
                        format!("{path}.resources.{which}[{k}]"),
                        &q.0,
                        &e.to_string(),
                    )),
                    Ok(v) if v.signum() < 0 => errs.push(FieldError::invalid(
                        format!("{path}.resources.{which}[{k}]"),
                        &q.0,
                        "must be greater than or equal to 0",
                    )),
                    Ok(_) => {}
                }
            }
        }
        for (k, req) in r.requests.iter().flatten() {
            if let Some(lim) = r.limits.as_ref().and_then(|l| l.get(k))
                && let (Ok(rq), Ok(lm)) = (parse_quantity(req), parse_quantity(lim))
                && rq > lm
            {
                errs.push(FieldError::invalid(
                    format!("{path}.resources.requests[{k}]"),
                    &req.0,
                    &format!("must be less than or equal to {k} limit of {}", lim.0),
                ));
            }
        }
    }
}

/// Validates a pod spec at `path` (e.g. `spec` or `spec.template.spec`).
pub fn validate_pod_spec(spec: &PodSpec, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut volumes = BTreeSet::new();
    for (i, v) in spec.volumes.iter().flatten().enumerate() {
        let vp = format!("{path}.volumes[{i}].name");
        if v.name.is_empty() {
            errs.push(FieldError::required(vp));
            continue;
        }
        label_errors(
            &mut errs,
            &vp,
            &v.name,
            validation::is_dns1123_label(&v.name),
        );
        if !volumes.insert(v.name.clone()) {
            errs.push(FieldError::duplicate(vp, &v.name));
        }
    }
    if spec.containers.is_empty() {
        errs.push(FieldError::required(format!("{path}.containers")));
    }
    let mut names = BTreeSet::new();
    for (i, c) in spec.containers.iter().enumerate() {
        let cp = format!("{path}.containers[{i}]");
        validate_container(c, &cp, &volumes, &mut errs);
        if !c.name.is_empty() && !names.insert(c.name.clone()) {
            errs.push(FieldError::duplicate(format!("{cp}.name"), &c.name));
        }
    }
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        let cp = format!("{path}.initContainers[{i}]");
        validate_container(c, &cp, &volumes, &mut errs);
        if !c.name.is_empty() && !names.insert(c.name.clone()) {
            errs.push(FieldError::duplicate(format!("{cp}.name"), &c.name));
        }
    }
    if let Some(p) = spec.restart_policy.as_deref()
        && !["Always", "OnFailure", "Never"].contains(&p)
    {
        errs.push(FieldError::not_supported(
            format!("{path}.restartPolicy"),
            p,
            &["Always", "OnFailure", "Never"],
        ));
    }
    if let Some(p) = spec.dns_policy.as_deref()
        && !["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"].contains(&p)
    {
        errs.push(FieldError::not_supported(
            format!("{path}.dnsPolicy"),
            p,
            &["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"],
        ));
    }
    if let Some(g) = spec.termination_grace_period_seconds
        && g < 0
    {
        errs.push(FieldError::invalid(
            format!("{path}.terminationGracePeriodSeconds"),
            g,
            "must be greater than or equal to 0",
        ));
    }
    if let Some(sel) = &spec.node_selector {
        for m in validation::validate_labels(sel) {
            errs.push(FieldError::invalid(format!("{path}.nodeSelector"), "", &m));
        }
    }
    for (i, t) in spec.tolerations.iter().flatten().enumerate() {
        let tp = format!("{path}.tolerations[{i}]");
        let op = t.operator.as_deref().unwrap_or("Equal");
        if !["Equal", "Exists"].contains(&op) {
            errs.push(FieldError::not_supported(
                format!("{tp}.operator"),
                op,
                &["Equal", "Exists"],
            ));
        }
        if op == "Exists" && t.value.as_deref().is_some_and(|v| !v.is_empty()) {
            errs.push(FieldError::invalid(
                format!("{tp}.operator"),
                op,
                "value must be empty when `operator` is 'Exists'",
            ));
        }
        if let Some(e) = t.effect.as_deref()
            && !e.is_empty()
            && !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&e)
        {
            errs.push(FieldError::not_supported(
                format!("{tp}.effect"),
                e,
                &["NoExecute", "NoSchedule", "PreferNoSchedule"],
            ));
        }
    }
    if let Some(class) = spec
        .priority_class_name
        .as_deref()
        .filter(|c| !c.is_empty())
    {
        label_errors(
            &mut errs,
            &format!("{path}.priorityClassName"),
            class,
            validation::is_dns1123_subdomain(class),
        );
    }
    match spec.preemption_policy.as_deref() {
        None => {}
        Some("") => errs.push(FieldError::required(format!("{path}.preemptionPolicy"))),
        Some("PreemptLowerPriority" | "Never") => {}
        Some(p) => errs.push(FieldError::not_supported(
            format!("{path}.preemptionPolicy"),
            p,
            &["PreemptLowerPriority", "Never"],
        )),
    }
    errs
}

/// Validates a pod template: labels must be present and the spec valid.
pub fn validate_template(t: Option<&PodTemplateSpec>, path: &str) -> Vec<FieldError> {
    let Some(t) = t else {
        return vec![FieldError::required(path)];
    };
    let mut errs = Vec::new();
    if let Some(labels) = t.metadata.as_ref().and_then(|m| m.labels.as_ref()) {
        for m in validation::validate_labels(labels) {
            errs.push(FieldError::invalid(
                format!("{path}.metadata.labels"),
                "",
                &m,
            ));
        }
    }
    match &t.spec {
        Some(spec) => errs.extend(validate_pod_spec(spec, &format!("{path}.spec"))),
        None => errs.push(FieldError::required(format!("{path}.spec"))),
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy_follows_the_tag() {
        assert_eq!(default_pull_policy("busybox"), "Always");
        assert_eq!(default_pull_policy("busybox:latest"), "Always");
        assert_eq!(default_pull_policy("busybox:1.35"), "IfNotPresent");
        assert_eq!(default_pull_policy("localhost:5000/busybox"), "Always");
        assert_eq!(
            default_pull_policy("localhost:5000/busybox:1"),
            "IfNotPresent"
        );
        assert_eq!(default_pull_policy("busybox@sha256:abc"), "IfNotPresent");
    }

    #[test]
    fn validation_reports_paths() {
        let spec: PodSpec = serde_json::from_value(serde_json::json!({
            "containers": [
                {"name": "a", "image": "x", "volumeMounts": [{"name": "missing", "mountPath": "/m"}]},
                {"name": "a", "ports": [{"containerPort": 70000}]}
            ],
            "restartPolicy": "Sometimes"
        }))
        .unwrap();
        let errs = validate_pod_spec(&spec, "spec");
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"spec.containers[0].volumeMounts[0].name"));
        assert!(fields.contains(&"spec.containers[1].name"));
        assert!(fields.contains(&"spec.containers[1].image"));
        assert!(fields.contains(&"spec.containers[1].ports[0].containerPort"));
        assert!(fields.contains(&"spec.restartPolicy"));
    }
}
