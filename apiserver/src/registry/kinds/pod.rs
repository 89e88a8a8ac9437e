//! Pods: defaults (restartPolicy, DNS policy, grace period, image pull policy, …), admission
//! (ServiceAccount, see [`super::sa_admission`], DefaultTolerationSeconds, Priority, see
//! [`super::priority`], and Pod Security, see [`crate::pod_security`]), validation including
//! what an update may change, graceful deletion, the status on create (Pending + QoS class), field selectors and the READY / STATUS /
//! RESTARTS / IP / NODE columns.

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Pod, PodSpec, PodStatus, Toleration};
use rkube_machinery::quantity::parse_quantity;
use serde_json::Value;

use super::{podspec, priority, sa_admission};
use crate::error::{ApiError, FieldError};
use crate::registry::{
    Admission, Api, Column, Fields, Operation, SelectableMeta, Settings, Strategy, age, human_age,
    name,
};

/// Pod behaviour.
pub struct PodStrategy;

/// Pod Security admission of a new pod: refused when it violates its namespace's enforced
/// level, a warning when it violates the warned one.
async fn pod_security(api: &Api, adm: &mut Admission<'_, Pod>) -> Result<(), ApiError> {
    use crate::pod_security::{forbidden_message, policy, violations};
    /// The namespace's labels, the rest of it skipped.
    #[derive(Default, serde::Deserialize)]
    struct Namespace {
        #[serde(default)]
        metadata: Metadata,
    }
    #[derive(Default, serde::Deserialize)]
    struct Metadata {
        #[serde(default)]
        labels: Option<std::collections::BTreeMap<String, String>>,
    }
    let ns = adm.obj.metadata.namespace.clone().unwrap_or_default();
    let labels =
        crate::admission::cached_object::<Namespace>(api, &crate::resources::NAMESPACES, None, &ns)
            .await?
            .and_then(|n| n.metadata.labels)
            .unwrap_or_default();
    let p = policy(&ns, &labels, api.settings.pod_security_default);
    let no_spec;
    let spec = match &adm.obj.spec {
        Some(spec) => spec,
        None => {
            no_spec = PodSpec::default();
            &no_spec
        }
    };
    let refused = violations(p.enforce, &adm.obj.metadata, spec);
    if !refused.is_empty() {
        return Err(ApiError::forbidden(format!(
            "pods {:?} is forbidden: {}",
            adm.obj.metadata.name.as_deref().unwrap_or_default(),
            forbidden_message(p.enforce, &refused)
        )));
    }
    let warned = violations(p.warn, &adm.obj.metadata, spec);
    if !warned.is_empty() {
        adm.warnings.push(format!(
            "would violate PodSecurity \"{}:latest\": {}",
            p.warn,
            warned.join(", ")
        ));
    }
    Ok(())
}

/// The QoS class of a pod, as the kubelet and scheduler compute it.
pub fn qos_class(spec: &PodSpec) -> &'static str {
    let mut any_set = false;
    let mut guaranteed = true;
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        let r = c.resources.clone().unwrap_or_default();
        let requests = r.requests.unwrap_or_default();
        let limits = r.limits.unwrap_or_default();
        for res in ["cpu", "memory"] {
            let req = requests.get(res).and_then(|q| parse_quantity(q).ok());
            let lim = limits.get(res).and_then(|q| parse_quantity(q).ok());
            let nonzero = |q: &Option<rkube_machinery::quantity::Quantity>| {
                q.as_ref().is_some_and(|q| !q.is_zero())
            };
            if nonzero(&req) || nonzero(&lim) {
                any_set = true;
            }
            match (&req, &lim) {
                (_, None) => guaranteed = false,
                (Some(r), Some(l)) if r != l => guaranteed = false,
                _ => {}
            }
        }
    }
    if !any_set {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// The STATUS column, as kubectl's pod printer derives it.
pub fn display_status(pod: &Pod) -> String {
    let status = pod.status.clone().unwrap_or_default();
    let mut reason = status
        .reason
        .clone()
        .or_else(|| status.phase.clone())
        .unwrap_or_else(|| "Pending".into());
    let init_total = pod
        .spec
        .as_ref()
        .and_then(|s| s.init_containers.as_ref())
        .map_or(0, Vec::len);
    let mut initializing = false;
    for (i, c) in status.init_container_statuses.iter().flatten().enumerate() {
        let st = c.state.clone().unwrap_or_default();
        if let Some(t) = &st.terminated {
            if t.exit_code == 0 {
                continue;
            }
            reason = match &t.reason {
                Some(r) if !r.is_empty() => format!("Init:{r}"),
                _ if t.signal.unwrap_or(0) != 0 => format!("Init:Signal:{}", t.signal.unwrap_or(0)),
                _ => format!("Init:ExitCode:{}", t.exit_code),
            };
        } else if let Some(w) = st.waiting.as_ref().and_then(|w| w.reason.clone())
            && !w.is_empty()
            && w != "PodInitializing"
        {
            reason = format!("Init:{w}");
        } else {
            reason = format!("Init:{i}/{init_total}");
        }
        initializing = true;
        break;
    }
    if !initializing {
        let mut has_running = false;
        for c in status.container_statuses.iter().flatten().rev() {
            let st = c.state.clone().unwrap_or_default();
            if let Some(w) = st
                .waiting
                .as_ref()
                .and_then(|w| w.reason.clone())
                .filter(|r| !r.is_empty())
            {
                reason = w;
            } else if let Some(t) = &st.terminated {
                reason = match &t.reason {
                    Some(r) if !r.is_empty() => r.clone(),
                    _ if t.signal.unwrap_or(0) != 0 => format!("Signal:{}", t.signal.unwrap_or(0)),
                    _ => format!("ExitCode:{}", t.exit_code),
                };
            } else if st.running.is_some() && c.ready {
                has_running = true;
            }
        }
        if reason == "Completed" && has_running {
            reason = "Running".into();
        }
    }
    if pod.metadata.deletion_timestamp.is_some() {
        reason = if status.reason.as_deref() == Some("NodeLost") {
            "Unknown".into()
        } else {
            "Terminating".into()
        };
    }
    reason
}

/// DefaultTolerationSeconds admission: pods tolerate their node being not-ready or
/// unreachable (the node lifecycle controller's NoExecute taints) for the configured seconds,
/// unless they already tolerate that taint.
fn add_default_tolerations(tolerations: &mut Vec<Toleration>, settings: &Settings) {
    for (key, seconds) in [
        (
            "node.kubernetes.io/not-ready",
            settings.default_not_ready_toleration_seconds,
        ),
        (
            "node.kubernetes.io/unreachable",
            settings.default_unreachable_toleration_seconds,
        ),
    ] {
        let covered = tolerations.iter().any(|x| {
            (x.key.as_deref() == Some(key)
                || x.key.as_deref().is_none_or(str::is_empty)
                    && x.operator.as_deref() == Some("Exists"))
                && (x.effect.as_deref().is_none_or(str::is_empty)
                    || x.effect.as_deref() == Some("NoExecute"))
        });
        if !covered {
            tolerations.push(Toleration {
                key: Some(key.into()),
                operator: Some("Exists".into()),
                effect: Some("NoExecute".into()),
                toleration_seconds: Some(seconds),
                ..Default::default()
            });
        }
    }
}

/// The spec with what a pod update may change cleared, to compare old and new.
fn immutable_view(spec: &PodSpec) -> Value {
    let mut s = spec.clone();
    for c in s.containers.iter_mut() {
        c.image = None;
    }
    for c in s.init_containers.iter_mut().flatten() {
        c.image = None;
    }
    s.active_deadline_seconds = None;
    s.tolerations = None;
    s.termination_grace_period_seconds = None;
    s.scheduling_gates = None;
    serde_json::to_value(s).unwrap_or_default()
}

/// What selectors read of a stored pod: its watchers (kubelets by `spec.nodeName`, the
/// scheduler by `status.phase`) test every change of a pod, before and after, so the rest of
/// the object is skipped rather than decoded.
#[derive(serde::Deserialize)]
struct Selectable {
    metadata: Option<SelectableMeta>,
    spec: Option<SelectableSpec>,
    status: Option<SelectableStatus>,
}

#[derive(Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SelectableSpec {
    node_name: Option<String>,
    restart_policy: Option<String>,
    scheduler_name: Option<String>,
    service_account_name: Option<String>,
    host_network: Option<bool>,
}

#[derive(Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SelectableStatus {
    phase: Option<String>,
    #[serde(rename = "podIP")]
    pod_ip: Option<String>,
    nominated_node_name: Option<String>,
}

#[async_trait]
impl Strategy<Pod> for PodStrategy {
    fn defaults(&self, pod: &mut Pod) {
        let spec = pod.spec.get_or_insert_with(Default::default);
        if spec.restart_policy.as_deref().is_none_or(str::is_empty) {
            spec.restart_policy = Some("Always".into());
        }
        podspec::default_pod_spec(spec);
    }

    fn prepare_update(&self, pod: &mut Pod, old: &Pod) {
        // Priority admission set these on create; an update that leaves them out keeps them.
        let (Some(spec), Some(old)) = (pod.spec.as_mut(), old.spec.as_ref()) else {
            return;
        };
        if spec.priority.is_none() {
            spec.priority = old.priority;
        }
        if spec.preemption_policy.is_none() {
            spec.preemption_policy.clone_from(&old.preemption_policy);
        }
    }

    fn prepare_create(&self, pod: &mut Pod) {
        let qos = pod.spec.as_ref().map(qos_class).unwrap_or("BestEffort");
        pod.status = Some(PodStatus {
            phase: Some("Pending".into()),
            qos_class: Some(qos.into()),
            ..Default::default()
        });
        if let Some(spec) = pod.spec.as_mut()
            && spec.node_name.as_deref() == Some("")
        {
            spec.node_name = None;
        }
    }

    fn validate(&self, pod: &Pod) -> Vec<FieldError> {
        match &pod.spec {
            Some(spec) => podspec::validate_pod_spec(spec, "spec"),
            None => vec![FieldError::required("spec")],
        }
    }

    fn validate_update(&self, new: &Pod, old: &Pod) -> Vec<FieldError> {
        let (Some(n), Some(o)) = (&new.spec, &old.spec) else {
            return Vec::new();
        };
        let mut errs = Vec::new();
        if immutable_view(n) != immutable_view(o) {
            errs.push(FieldError::forbidden(
                "spec",
                "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
            ));
        }
        // Tolerations may only be added.
        let old_t = o.tolerations.clone().unwrap_or_default();
        let new_t = n.tolerations.clone().unwrap_or_default();
        if old_t.iter().any(|t| !new_t.contains(t)) {
            errs.push(FieldError::forbidden(
                "spec.tolerations",
                "existing toleration can not be modified except its tolerationSeconds",
            ));
        }
        errs
    }

    async fn admit(&self, api: &Api, adm: &mut Admission<'_, Pod>) -> Result<(), ApiError> {
        if adm.op != Operation::Create {
            return Ok(());
        }
        sa_admission::admit(api, adm.obj).await?;
        let spec = adm.obj.spec.get_or_insert_with(Default::default);
        // DefaultTolerationSeconds.
        add_default_tolerations(spec.tolerations.get_or_insert_with(Vec::new), &api.settings);
        // Priority: spec.priority and spec.preemptionPolicy from the pod's PriorityClass.
        priority::admit_pod(api, adm.obj).await?;
        pod_security(api, adm).await
    }

    fn grace_period(&self, pod: &Pod, requested: Option<i64>) -> Option<i64> {
        let unscheduled = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_none_or(str::is_empty);
        let finished = matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        );
        if unscheduled || finished {
            return Some(0);
        }
        Some(requested.unwrap_or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
                .unwrap_or(30)
        }))
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::NAME,
            Column::new(
                "Ready",
                "string",
                "The aggregate readiness state of this pod for accepting traffic.",
            ),
            Column::new(
                "Status",
                "string",
                "The aggregate status of the containers in this pod.",
            ),
            Column::new(
                "Restarts",
                "string",
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
            ),
            Column::AGE,
            Column::wide("IP", "string", "The IP address assigned to the pod"),
            Column::wide("Node", "string", "The name of the node assigned to the pod"),
            Column::wide(
                "Nominated Node",
                "string",
                "The name of the node nominated by the scheduler",
            ),
            Column::wide(
                "Readiness Gates",
                "string",
                "The readiness gates of the pod",
            ),
        ]
    }

    fn cells(&self, pod: &Pod) -> Vec<Value> {
        let status = pod.status.clone().unwrap_or_default();
        let total = pod.spec.as_ref().map_or(0, |s| s.containers.len());
        let statuses = status.container_statuses.clone().unwrap_or_default();
        let ready = statuses.iter().filter(|c| c.ready).count();
        let restarts: i32 = statuses.iter().map(|c| c.restart_count).sum();
        let last_restart = statuses
            .iter()
            .filter_map(|c| {
                c.last_state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .and_then(|t| t.finished_at.clone())
            })
            .max_by_key(|t| t.0);
        let restarts = match last_restart {
            Some(t) if restarts > 0 => format!("{restarts} ({} ago)", human_age(&t)),
            _ => restarts.to_string(),
        };
        let gates = pod
            .spec
            .as_ref()
            .and_then(|s| s.readiness_gates.as_ref())
            .filter(|g| !g.is_empty())
            .map(|g| {
                let conds = status.conditions.clone().unwrap_or_default();
                let met = g
                    .iter()
                    .filter(|gate| {
                        conds
                            .iter()
                            .any(|c| c.type_ == gate.condition_type && c.status == "True")
                    })
                    .count();
                format!("{met}/{}", g.len())
            })
            .unwrap_or_else(|| "<none>".into());
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "<none>".into());
        vec![
            Value::String(name(pod)),
            Value::String(format!("{ready}/{total}")),
            Value::String(display_status(pod)),
            Value::String(restarts),
            age(pod),
            Value::String(
                status
                    .pod_ip
                    .clone()
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "<none>".into()),
            ),
            Value::String(node),
            Value::String(
                status
                    .nominated_node_name
                    .clone()
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "<none>".into()),
            ),
            Value::String(gates),
        ]
    }

    fn selectable_raw(&self, raw: &[u8]) -> Option<serde_json::Result<(SelectableMeta, Fields)>> {
        Some(serde_json::from_slice::<Selectable>(raw).map(|pod| {
            let spec = pod.spec.unwrap_or_default();
            let status = pod.status.unwrap_or_default();
            let fields = Fields::from([
                ("spec.nodeName".into(), spec.node_name.unwrap_or_default()),
                (
                    "spec.restartPolicy".into(),
                    spec.restart_policy.unwrap_or_default(),
                ),
                (
                    "spec.schedulerName".into(),
                    spec.scheduler_name.unwrap_or_default(),
                ),
                (
                    "spec.serviceAccountName".into(),
                    spec.service_account_name.unwrap_or_default(),
                ),
                (
                    "spec.hostNetwork".into(),
                    spec.host_network.unwrap_or(false).to_string(),
                ),
                ("status.phase".into(), status.phase.unwrap_or_default()),
                ("status.podIP".into(), status.pod_ip.unwrap_or_default()),
                (
                    "status.nominatedNodeName".into(),
                    status.nominated_node_name.unwrap_or_default(),
                ),
            ]);
            (pod.metadata.unwrap_or_default(), fields)
        }))
    }

    fn field_names(&self) -> &'static [&'static str] {
        &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    /// Selectors read a stored pod's fields without decoding the pod: every field the kind
    /// names, from a pod as stored (all of its other fields skipped), and their defaults when
    /// spec or status is absent or null.
    #[test]
    fn selectable_fields_read_from_stored_json() {
        let stored = serde_json::to_vec(&pod(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web"},
                         "managedFields": [{"manager": "m", "fieldsV1": {"f:spec": {}}}]},
            "spec": {"nodeName": "n1", "restartPolicy": "Never", "schedulerName": "s",
                     "serviceAccountName": "sa", "hostNetwork": true,
                     "containers": [{"name": "a", "image": "x", "ports": [{"containerPort": 80}]}]},
            "status": {"phase": "Running", "podIP": "10.0.0.5", "nominatedNodeName": "n2",
                       "conditions": [{"type": "Ready", "status": "True"}]}
        })))
        .unwrap();
        let (meta, fields) = PodStrategy.selectable_raw(&stored).unwrap().unwrap();
        assert_eq!(meta.name.as_deref(), Some("p"));
        assert_eq!(meta.namespace.as_deref(), Some("ns"));
        assert_eq!(meta.labels.unwrap()["app"], "web");
        let want = [
            ("spec.nodeName", "n1"),
            ("spec.restartPolicy", "Never"),
            ("spec.schedulerName", "s"),
            ("spec.serviceAccountName", "sa"),
            ("spec.hostNetwork", "true"),
            ("status.phase", "Running"),
            ("status.podIP", "10.0.0.5"),
            ("status.nominatedNodeName", "n2"),
        ];
        assert_eq!(
            fields,
            want.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Fields>()
        );
        let mut names: Vec<&str> = fields.keys().map(String::as_str).collect();
        let mut declared = PodStrategy.field_names().to_vec();
        names.sort_unstable();
        declared.sort_unstable();
        assert_eq!(names, declared, "every field selectors may name is read");

        for bare in [
            &br#"{"metadata": {"name": "q"}}"#[..],
            br#"{"metadata": {"name": "q"}, "spec": null, "status": null}"#,
        ] {
            let (meta, fields) = PodStrategy.selectable_raw(bare).unwrap().unwrap();
            assert_eq!(meta.name.as_deref(), Some("q"));
            assert!(meta.labels.is_none());
            assert_eq!(fields["spec.nodeName"], "");
            assert_eq!(fields["spec.hostNetwork"], "false");
            assert_eq!(fields["status.phase"], "");
        }
        assert!(
            PodStrategy
                .selectable_raw(br#"{"spec": {"hostNetwork": "yes"}}"#)
                .unwrap()
                .is_err()
        );
    }

    #[test]
    fn qos_classes() {
        let best = pod(serde_json::json!({"spec": {"containers": [{"name": "a", "image": "x"}]}}));
        assert_eq!(qos_class(best.spec.as_ref().unwrap()), "BestEffort");
        let g = pod(
            serde_json::json!({"spec": {"containers": [{"name": "a", "image": "x",
            "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}}}]}}),
        );
        assert_eq!(qos_class(g.spec.as_ref().unwrap()), "Guaranteed");
        let b = pod(
            serde_json::json!({"spec": {"containers": [{"name": "a", "image": "x",
            "resources": {"requests": {"cpu": "100m"}}}]}}),
        );
        assert_eq!(qos_class(b.spec.as_ref().unwrap()), "Burstable");
    }

    #[test]
    fn status_column() {
        let p = pod(
            serde_json::json!({"status": {"phase": "Running", "containerStatuses": [
            {"name": "a", "image": "x", "imageID": "", "ready": false, "restartCount": 4,
             "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}),
        );
        assert_eq!(display_status(&p), "CrashLoopBackOff");
        let p = pod(
            serde_json::json!({"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"},
                                        "status": {"phase": "Running"}}),
        );
        assert_eq!(display_status(&p), "Terminating");
        let p = pod(serde_json::json!({"status": {}}));
        assert_eq!(display_status(&p), "Pending");
    }

    #[test]
    fn default_tolerations_for_not_ready_and_unreachable_nodes() {
        let settings = Settings {
            default_not_ready_toleration_seconds: 30,
            default_unreachable_toleration_seconds: 20,
            ..Default::default()
        };
        let seconds = |t: &[Toleration]| -> Vec<(String, Option<i64>)> {
            t.iter()
                .map(|t| (t.key.clone().unwrap_or_default(), t.toleration_seconds))
                .collect()
        };
        let mut none = Vec::new();
        add_default_tolerations(&mut none, &settings);
        assert_eq!(
            seconds(&none),
            [
                ("node.kubernetes.io/not-ready".to_string(), Some(30)),
                ("node.kubernetes.io/unreachable".to_string(), Some(20)),
            ]
        );
        assert!(
            none.iter().all(|t| t.effect.as_deref() == Some("NoExecute")
                && t.operator.as_deref() == Some("Exists"))
        );
        // A pod's own toleration of one of the taints is kept, the other added.
        let mut own = vec![Toleration {
            key: Some("node.kubernetes.io/unreachable".into()),
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            toleration_seconds: Some(2),
            ..Default::default()
        }];
        add_default_tolerations(&mut own, &settings);
        assert_eq!(
            seconds(&own),
            [
                ("node.kubernetes.io/unreachable".to_string(), Some(2)),
                ("node.kubernetes.io/not-ready".to_string(), Some(30)),
            ]
        );
        // Tolerating everything covers both.
        let mut all = vec![Toleration {
            operator: Some("Exists".into()),
            ..Default::default()
        }];
        add_default_tolerations(&mut all, &settings);
        assert_eq!(all.len(), 1);
    }

    #[test]
    fn only_images_may_change() {
        let old = pod(serde_json::json!({"spec": {"containers": [{"name": "a", "image": "x:1"}]}}));
        let mut new = old.clone();
        new.spec.as_mut().unwrap().containers[0].image = Some("x:2".into());
        assert!(PodStrategy.validate_update(&new, &old).is_empty());
        new.spec.as_mut().unwrap().containers[0].command = Some(vec!["sh".into()]);
        assert_eq!(PodStrategy.validate_update(&new, &old).len(), 1);
    }
}
