//! Workload kinds — Deployments, ReplicaSets, DaemonSets, StatefulSets (apps/v1), Jobs and
//! CronJobs (batch/v1): defaults (replicas, strategies, history limits, deadlines), validation (the
//! selector must match the template's labels and is immutable), scale, and table columns.

use async_trait::async_trait;
use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetUpdateStrategy, Deployment, DeploymentStrategy, ReplicaSet,
    RollingUpdateDaemonSet, RollingUpdateDeployment, RollingUpdateStatefulSetStrategy, StatefulSet,
    StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::batch::v1::{CronJob, Job, JobSpec};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as K8sSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use rkube_machinery::selector::LabelSelector;
use serde_json::Value;

use super::podspec;
use crate::error::{ApiError, FieldError};
use crate::registry::{
    Admission, Api, Column, Operation, ScaleInfo, Strategy, age, human_duration, name,
};

/// The selector as a label-selector string (`app=web,tier in (a,b)`).
pub fn selector_string(sel: Option<&K8sSelector>) -> String {
    sel.and_then(|s| LabelSelector::from_k8s(s).ok())
        .map(|s| s.to_string())
        .unwrap_or_default()
}

/// Checks the selector is set, valid and selects the template's labels.
fn validate_selector(
    sel: Option<&K8sSelector>,
    template: Option<&PodTemplateSpec>,
    errs: &mut Vec<FieldError>,
) {
    let Some(sel) = sel else {
        errs.push(FieldError::required("spec.selector"));
        return;
    };
    let empty = sel.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && sel.match_expressions.as_ref().is_none_or(|m| m.is_empty());
    if empty {
        errs.push(FieldError::invalid(
            "spec.selector",
            "",
            "empty selector is invalid for deployment",
        ));
        return;
    }
    match LabelSelector::from_k8s(sel) {
        Err(e) => errs.push(FieldError::invalid("spec.selector", "", &e.to_string())),
        Ok(parsed) => {
            let labels = template
                .and_then(|t| t.metadata.as_ref())
                .and_then(|m| m.labels.clone())
                .unwrap_or_default();
            if !parsed.matches(&labels) {
                errs.push(FieldError::invalid(
                    "spec.template.metadata.labels",
                    labels
                        .iter()
                        .map(|(k, v)| format!("{k}:{v}"))
                        .collect::<Vec<_>>()
                        .join(","),
                    "`selector` does not match template `labels`",
                ));
            }
        }
    }
}

fn validate_replicas(replicas: Option<i32>, errs: &mut Vec<FieldError>) {
    if let Some(r) = replicas
        && r < 0
    {
        errs.push(FieldError::invalid(
            "spec.replicas",
            r,
            "must be greater than or equal to 0",
        ));
    }
}

fn validate_restart_always(t: Option<&PodTemplateSpec>, errs: &mut Vec<FieldError>) {
    let policy = t
        .and_then(|t| t.spec.as_ref())
        .and_then(|s| s.restart_policy.clone())
        .unwrap_or_else(|| "Always".into());
    if policy != "Always" {
        errs.push(FieldError::not_supported(
            "spec.template.spec.restartPolicy",
            policy,
            &["Always"],
        ));
    }
}

fn selector_immutable(new: Option<&K8sSelector>, old: Option<&K8sSelector>) -> Vec<FieldError> {
    if new != old {
        vec![FieldError::immutable("spec.selector", selector_string(new))]
    } else {
        Vec::new()
    }
}

fn containers_and_images(t: Option<&PodTemplateSpec>) -> (String, String) {
    let containers = t
        .and_then(|t| t.spec.as_ref())
        .map(|s| s.containers.clone())
        .unwrap_or_default();
    (
        containers
            .iter()
            .map(|c| c.name.clone())
            .collect::<Vec<_>>()
            .join(","),
        containers
            .iter()
            .map(|c| c.image.clone().unwrap_or_default())
            .collect::<Vec<_>>()
            .join(","),
    )
}

fn wide_columns() -> [Column; 3] {
    [
        Column::wide(
            "Containers",
            "string",
            "Names of each container in the template.",
        ),
        Column::wide(
            "Images",
            "string",
            "Images referenced by each container in the template.",
        ),
        Column::wide("Selector", "string", "Label selector for pods."),
    ]
}

fn pct25() -> IntOrString {
    IntOrString::String("25%".into())
}

/// Deployment behaviour.
pub struct DeploymentStrategyImpl;

impl Strategy<Deployment> for DeploymentStrategyImpl {
    fn defaults(&self, d: &mut Deployment) {
        let spec = d.spec.get_or_insert_with(Default::default);
        spec.replicas.get_or_insert(1);
        spec.revision_history_limit.get_or_insert(10);
        spec.progress_deadline_seconds.get_or_insert(600);
        let strategy = spec
            .strategy
            .get_or_insert_with(DeploymentStrategy::default);
        if strategy.type_.as_deref().is_none_or(str::is_empty) {
            strategy.type_ = Some("RollingUpdate".into());
        }
        if strategy.type_.as_deref() == Some("RollingUpdate") {
            let ru = strategy
                .rolling_update
                .get_or_insert_with(RollingUpdateDeployment::default);
            ru.max_unavailable.get_or_insert_with(pct25);
            ru.max_surge.get_or_insert_with(pct25);
        }
        podspec::default_template(&mut spec.template, Some("Always"));
    }

    fn validate(&self, d: &Deployment) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let Some(spec) = &d.spec else {
            return vec![FieldError::required("spec")];
        };
        validate_replicas(spec.replicas, &mut errs);
        validate_selector(Some(&spec.selector), Some(&spec.template), &mut errs);
        errs.extend(podspec::validate_template(
            Some(&spec.template),
            "spec.template",
        ));
        validate_restart_always(Some(&spec.template), &mut errs);
        if let Some(s) = &spec.strategy {
            match s.type_.as_deref() {
                Some("RollingUpdate") | None => {}
                Some("Recreate") => {
                    if s.rolling_update.is_some() {
                        errs.push(FieldError::forbidden(
                            "spec.strategy.rollingUpdate",
                            "may not be specified when strategy `type` is 'Recreate'",
                        ));
                    }
                }
                Some(other) => errs.push(FieldError::not_supported(
                    "spec.strategy.type",
                    other,
                    &["Recreate", "RollingUpdate"],
                )),
            }
            if let Some(ru) = &s.rolling_update {
                let zero = |v: &Option<IntOrString>| {
                    matches!(v, Some(IntOrString::Int(0)))
                        || matches!(v, Some(IntOrString::String(s)) if s == "0%")
                };
                if zero(&ru.max_surge) && zero(&ru.max_unavailable) {
                    errs.push(FieldError::invalid(
                        "spec.strategy.rollingUpdate.maxUnavailable",
                        0,
                        "may not be 0 when `maxSurge` is 0",
                    ));
                }
            }
        }
        errs
    }

    fn validate_update(&self, new: &Deployment, old: &Deployment) -> Vec<FieldError> {
        selector_immutable(
            new.spec.as_ref().map(|s| &s.selector),
            old.spec.as_ref().map(|s| &s.selector),
        )
    }

    fn columns(&self) -> Vec<Column> {
        let mut c = vec![
            Column::NAME,
            Column::new("Ready", "string", "Number of the pod with ready state"),
            Column::new(
                "Up-to-date",
                "string",
                "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
            ),
            Column::new(
                "Available",
                "string",
                "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
            ),
            Column::AGE,
        ];
        c.extend(wide_columns());
        c
    }

    fn cells(&self, d: &Deployment) -> Vec<Value> {
        let spec = d.spec.clone().unwrap_or_default();
        let st = d.status.clone().unwrap_or_default();
        let (containers, images) = containers_and_images(Some(&spec.template));
        vec![
            Value::String(name(d)),
            Value::String(format!(
                "{}/{}",
                st.ready_replicas.unwrap_or(0),
                spec.replicas.unwrap_or(1)
            )),
            Value::from(st.updated_replicas.unwrap_or(0)),
            Value::from(st.available_replicas.unwrap_or(0)),
            age(d),
            Value::String(containers),
            Value::String(images),
            Value::String(selector_string(Some(&spec.selector))),
        ]
    }

    fn scale(&self, d: &Deployment) -> Option<ScaleInfo> {
        let spec = d.spec.as_ref()?;
        Some(ScaleInfo {
            spec_replicas: spec.replicas.unwrap_or(1),
            status_replicas: d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0),
            selector: selector_string(Some(&spec.selector)),
        })
    }

    fn set_replicas(&self, d: &mut Deployment, replicas: i32) {
        d.spec.get_or_insert_with(Default::default).replicas = Some(replicas);
    }
}

/// ReplicaSet behaviour.
pub struct ReplicaSetStrategy;

impl Strategy<ReplicaSet> for ReplicaSetStrategy {
    fn defaults(&self, rs: &mut ReplicaSet) {
        let spec = rs.spec.get_or_insert_with(Default::default);
        spec.replicas.get_or_insert(1);
        if let Some(t) = spec.template.as_mut() {
            podspec::default_template(t, Some("Always"));
        }
    }

    fn validate(&self, rs: &ReplicaSet) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let Some(spec) = &rs.spec else {
            return vec![FieldError::required("spec")];
        };
        validate_replicas(spec.replicas, &mut errs);
        validate_selector(Some(&spec.selector), spec.template.as_ref(), &mut errs);
        errs.extend(podspec::validate_template(
            spec.template.as_ref(),
            "spec.template",
        ));
        validate_restart_always(spec.template.as_ref(), &mut errs);
        errs
    }

    fn validate_update(&self, new: &ReplicaSet, old: &ReplicaSet) -> Vec<FieldError> {
        selector_immutable(
            new.spec.as_ref().map(|s| &s.selector),
            old.spec.as_ref().map(|s| &s.selector),
        )
    }

    fn columns(&self) -> Vec<Column> {
        let mut c = vec![
            Column::NAME,
            Column::new("Desired", "integer", "Number of desired pods."),
            Column::new("Current", "integer", "Number of actual pods."),
            Column::new("Ready", "integer", "Number of ready pods."),
            Column::AGE,
        ];
        c.extend(wide_columns());
        c
    }

    fn cells(&self, rs: &ReplicaSet) -> Vec<Value> {
        let spec = rs.spec.clone().unwrap_or_default();
        let st = rs.status.clone().unwrap_or_default();
        let (containers, images) = containers_and_images(spec.template.as_ref());
        vec![
            Value::String(name(rs)),
            Value::from(spec.replicas.unwrap_or(1)),
            Value::from(st.replicas),
            Value::from(st.ready_replicas.unwrap_or(0)),
            age(rs),
            Value::String(containers),
            Value::String(images),
            Value::String(selector_string(Some(&spec.selector))),
        ]
    }

    fn scale(&self, rs: &ReplicaSet) -> Option<ScaleInfo> {
        let spec = rs.spec.as_ref()?;
        Some(ScaleInfo {
            spec_replicas: spec.replicas.unwrap_or(1),
            status_replicas: rs.status.as_ref().map_or(0, |s| s.replicas),
            selector: selector_string(Some(&spec.selector)),
        })
    }

    fn set_replicas(&self, rs: &mut ReplicaSet, replicas: i32) {
        rs.spec.get_or_insert_with(Default::default).replicas = Some(replicas);
    }
}

/// DaemonSet behaviour.
pub struct DaemonSetStrategy;

impl Strategy<DaemonSet> for DaemonSetStrategy {
    fn defaults(&self, ds: &mut DaemonSet) {
        let spec = ds.spec.get_or_insert_with(Default::default);
        spec.revision_history_limit.get_or_insert(10);
        let us = spec
            .update_strategy
            .get_or_insert_with(DaemonSetUpdateStrategy::default);
        if us.type_.as_deref().is_none_or(str::is_empty) {
            us.type_ = Some("RollingUpdate".into());
        }
        if us.type_.as_deref() == Some("RollingUpdate") {
            let ru = us
                .rolling_update
                .get_or_insert_with(RollingUpdateDaemonSet::default);
            ru.max_unavailable.get_or_insert(IntOrString::Int(1));
            ru.max_surge.get_or_insert(IntOrString::Int(0));
        }
        podspec::default_template(&mut spec.template, Some("Always"));
    }

    fn validate(&self, ds: &DaemonSet) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let Some(spec) = &ds.spec else {
            return vec![FieldError::required("spec")];
        };
        validate_selector(Some(&spec.selector), Some(&spec.template), &mut errs);
        errs.extend(podspec::validate_template(
            Some(&spec.template),
            "spec.template",
        ));
        validate_restart_always(Some(&spec.template), &mut errs);
        errs
    }

    fn validate_update(&self, new: &DaemonSet, old: &DaemonSet) -> Vec<FieldError> {
        selector_immutable(
            new.spec.as_ref().map(|s| &s.selector),
            old.spec.as_ref().map(|s| &s.selector),
        )
    }

    fn columns(&self) -> Vec<Column> {
        let mut c = vec![
            Column::NAME,
            Column::new(
                "Desired",
                "integer",
                "The total number of nodes that should be running the daemon pod.",
            ),
            Column::new(
                "Current",
                "integer",
                "The number of nodes that are running at least 1 daemon pod.",
            ),
            Column::new(
                "Ready",
                "integer",
                "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready.",
            ),
            Column::new(
                "Up-to-date",
                "integer",
                "The total number of nodes that are running updated daemon pod.",
            ),
            Column::new(
                "Available",
                "integer",
                "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available.",
            ),
            Column::new(
                "Node Selector",
                "string",
                "NodeSelector is a selector which must be true for the pod to fit on a node.",
            ),
            Column::AGE,
        ];
        c.extend(wide_columns());
        c
    }

    fn cells(&self, ds: &DaemonSet) -> Vec<Value> {
        let spec = ds.spec.clone().unwrap_or_default();
        let st = ds.status.clone().unwrap_or_default();
        let (containers, images) = containers_and_images(Some(&spec.template));
        let node_selector = spec
            .template
            .spec
            .as_ref()
            .and_then(|s| s.node_selector.as_ref())
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_else(|| "<none>".into());
        vec![
            Value::String(name(ds)),
            Value::from(st.desired_number_scheduled),
            Value::from(st.current_number_scheduled),
            Value::from(st.number_ready),
            Value::from(st.updated_number_scheduled.unwrap_or(0)),
            Value::from(st.number_available.unwrap_or(0)),
            Value::String(node_selector),
            age(ds),
            Value::String(containers),
            Value::String(images),
            Value::String(selector_string(Some(&spec.selector))),
        ]
    }
}

/// StatefulSet behaviour.
pub struct StatefulSetStrategy;

impl Strategy<StatefulSet> for StatefulSetStrategy {
    fn defaults(&self, s: &mut StatefulSet) {
        let spec = s.spec.get_or_insert_with(Default::default);
        spec.replicas.get_or_insert(1);
        spec.revision_history_limit.get_or_insert(10);
        spec.pod_management_policy
            .get_or_insert_with(|| "OrderedReady".into());
        let us = spec
            .update_strategy
            .get_or_insert_with(StatefulSetUpdateStrategy::default);
        if us.type_.as_deref().is_none_or(str::is_empty) {
            us.type_ = Some("RollingUpdate".into());
        }
        if us.type_.as_deref() == Some("RollingUpdate") {
            us.rolling_update
                .get_or_insert_with(RollingUpdateStatefulSetStrategy::default)
                .partition
                .get_or_insert(0);
        }
        let retention = spec
            .persistent_volume_claim_retention_policy
            .get_or_insert_with(StatefulSetPersistentVolumeClaimRetentionPolicy::default);
        retention
            .when_deleted
            .get_or_insert_with(|| "Retain".into());
        retention.when_scaled.get_or_insert_with(|| "Retain".into());
        podspec::default_template(&mut spec.template, Some("Always"));
    }

    fn validate(&self, s: &StatefulSet) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let Some(spec) = &s.spec else {
            return vec![FieldError::required("spec")];
        };
        validate_replicas(spec.replicas, &mut errs);
        validate_selector(Some(&spec.selector), Some(&spec.template), &mut errs);
        errs.extend(podspec::validate_template(
            Some(&spec.template),
            "spec.template",
        ));
        validate_restart_always(Some(&spec.template), &mut errs);
        if let Some(p) = spec.pod_management_policy.as_deref()
            && !["OrderedReady", "Parallel"].contains(&p)
        {
            errs.push(FieldError::not_supported(
                "spec.podManagementPolicy",
                p,
                &["OrderedReady", "Parallel"],
            ));
        }
        errs
    }

    fn validate_update(&self, new: &StatefulSet, old: &StatefulSet) -> Vec<FieldError> {
        let (Some(n), Some(o)) = (&new.spec, &old.spec) else {
            return Vec::new();
        };
        // Only replicas, ordinals, template, updateStrategy, persistentVolumeClaimRetentionPolicy
        // and minReadySeconds may change.
        let strip = |s: &k8s_openapi::api::apps::v1::StatefulSetSpec| {
            let mut s = s.clone();
            s.replicas = None;
            s.ordinals = None;
            s.template = Default::default();
            s.update_strategy = None;
            s.persistent_volume_claim_retention_policy = None;
            s.min_ready_seconds = None;
            s.revision_history_limit = None;
            serde_json::to_value(s).unwrap_or_default()
        };
        if strip(n) != strip(o) {
            vec![FieldError::forbidden(
                "spec",
                "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
            )]
        } else {
            Vec::new()
        }
    }

    fn columns(&self) -> Vec<Column> {
        let mut c = vec![
            Column::NAME,
            Column::new("Ready", "string", "Number of the pod with ready state"),
            Column::AGE,
        ];
        c.extend(wide_columns().into_iter().take(2));
        c
    }

    fn cells(&self, s: &StatefulSet) -> Vec<Value> {
        let spec = s.spec.clone().unwrap_or_default();
        let st = s.status.clone().unwrap_or_default();
        let (containers, images) = containers_and_images(Some(&spec.template));
        vec![
            Value::String(name(s)),
            Value::String(format!(
                "{}/{}",
                st.ready_replicas.unwrap_or(0),
                spec.replicas.unwrap_or(1)
            )),
            age(s),
            Value::String(containers),
            Value::String(images),
        ]
    }

    fn scale(&self, s: &StatefulSet) -> Option<ScaleInfo> {
        let spec = s.spec.as_ref()?;
        Some(ScaleInfo {
            spec_replicas: spec.replicas.unwrap_or(1),
            status_replicas: s.status.as_ref().map_or(0, |st| st.replicas),
            selector: selector_string(Some(&spec.selector)),
        })
    }

    fn set_replicas(&self, s: &mut StatefulSet, replicas: i32) {
        s.spec.get_or_insert_with(Default::default).replicas = Some(replicas);
    }
}

/// Validates a Job's spec, or a CronJob's job template's, at `path`.
fn validate_job_spec(spec: &JobSpec, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    errs.extend(podspec::validate_template(
        Some(&spec.template),
        &format!("{path}.template"),
    ));
    let restart = format!("{path}.template.spec.restartPolicy");
    match spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
    {
        Some("OnFailure" | "Never") => {}
        None | Some("") => errs.push(FieldError::required_msg(
            restart,
            "valid values: \"OnFailure\", \"Never\"",
        )),
        Some(other) => errs.push(FieldError::not_supported(
            restart,
            other,
            &["OnFailure", "Never"],
        )),
    }
    for (f, v) in [
        ("parallelism", spec.parallelism),
        ("completions", spec.completions),
        ("backoffLimit", spec.backoff_limit),
    ] {
        if let Some(v) = v
            && v < 0
        {
            errs.push(FieldError::invalid(
                format!("{path}.{f}"),
                v,
                "must be greater than or equal to 0",
            ));
        }
    }
    match spec.completion_mode.as_deref() {
        None | Some("NonIndexed") => {}
        Some("Indexed") if spec.completions.is_none() => errs.push(FieldError::required_msg(
            format!("{path}.completions"),
            "when completion mode is Indexed",
        )),
        Some("Indexed") => {}
        Some(other) => errs.push(FieldError::not_supported(
            format!("{path}.completionMode"),
            other,
            &["NonIndexed", "Indexed"],
        )),
    }
    if spec.selector.is_some() {
        validate_selector(spec.selector.as_ref(), Some(&spec.template), &mut errs);
    }
    errs
}

/// Job behaviour.
pub struct JobStrategy;

const CONTROLLER_UID: &str = "batch.kubernetes.io/controller-uid";
const JOB_NAME: &str = "batch.kubernetes.io/job-name";

#[async_trait]
impl Strategy<Job> for JobStrategy {
    fn defaults(&self, j: &mut Job) {
        let spec = j.spec.get_or_insert_with(Default::default);
        if spec.completions.is_none() && spec.parallelism.is_none() {
            spec.completions = Some(1);
            spec.parallelism = Some(1);
        }
        spec.parallelism.get_or_insert(1);
        spec.backoff_limit.get_or_insert(6);
        spec.completion_mode
            .get_or_insert_with(|| "NonIndexed".into());
        spec.suspend.get_or_insert(false);
        spec.manual_selector.get_or_insert(false);
        spec.pod_replacement_policy
            .get_or_insert_with(|| "TerminatingOrFailed".into());
        podspec::default_template(&mut spec.template, None);
    }

    fn validate(&self, j: &Job) -> Vec<FieldError> {
        match &j.spec {
            Some(spec) => validate_job_spec(spec, "spec"),
            None => vec![FieldError::required("spec")],
        }
    }

    fn validate_update(&self, new: &Job, old: &Job) -> Vec<FieldError> {
        let (Some(n), Some(o)) = (&new.spec, &old.spec) else {
            return Vec::new();
        };
        let mut errs = selector_immutable(n.selector.as_ref(), o.selector.as_ref());
        if n.completions != o.completions && n.completion_mode.as_deref() != Some("Indexed") {
            errs.push(FieldError::immutable("spec.completions", n.completions));
        }
        if n.template != o.template && n.suspend != Some(true) {
            errs.push(FieldError::immutable("spec.template", ""));
        }
        errs
    }

    async fn admit(&self, _api: &Api, adm: &mut Admission<'_, Job>) -> Result<(), ApiError> {
        if adm.op != Operation::Create {
            return Ok(());
        }
        let uid = adm.obj.metadata.uid.clone().unwrap_or_default();
        let job_name = adm.obj.metadata.name.clone().unwrap_or_default();
        let spec = adm.obj.spec.get_or_insert_with(Default::default);
        if spec.manual_selector != Some(true) {
            // The generated selector, and the labels that make pods match it.
            let labels = spec
                .template
                .metadata
                .get_or_insert_with(Default::default)
                .labels
                .get_or_insert_with(Default::default);
            labels.insert(CONTROLLER_UID.into(), uid.clone());
            labels.insert("controller-uid".into(), uid.clone());
            labels.insert(JOB_NAME.into(), job_name.clone());
            labels.insert("job-name".into(), job_name);
            spec.selector = Some(K8sSelector {
                match_labels: Some([(CONTROLLER_UID.to_string(), uid)].into()),
                ..Default::default()
            });
        }
        Ok(())
    }

    fn columns(&self) -> Vec<Column> {
        let mut c = vec![
            Column::NAME,
            Column::new("Status", "string", "Status of the job."),
            Column::new("Completions", "string", "The completion status of the job."),
            Column::new("Duration", "string", "Time required to complete the job."),
            Column::AGE,
        ];
        c.extend(wide_columns());
        c
    }

    fn cells(&self, j: &Job) -> Vec<Value> {
        let spec = j.spec.clone().unwrap_or_default();
        let st = j.status.clone().unwrap_or_default();
        let succeeded = st.succeeded.unwrap_or(0);
        let completions = match (spec.completions, spec.parallelism) {
            (Some(c), _) => format!("{succeeded}/{c}"),
            (None, Some(p)) if p > 1 => format!("{succeeded}/1 of {p}"),
            (None, _) => format!("{succeeded}/1"),
        };
        let conds = st.conditions.clone().unwrap_or_default();
        let has = |t: &str| conds.iter().any(|c| c.type_ == t && c.status == "True");
        let status = if has("Complete") {
            "Complete"
        } else if has("Failed") {
            "Failed"
        } else if j.metadata.deletion_timestamp.is_some() {
            "Terminating"
        } else if has("Suspended") {
            "Suspended"
        } else if has("FailureTarget") {
            "FailureTarget"
        } else if has("SuccessCriteriaMet") {
            "SuccessCriteriaMet"
        } else {
            "Running"
        };
        let duration = match (&st.start_time, &st.completion_time) {
            (Some(s), Some(c)) => human_duration(c.0.as_second() - s.0.as_second()),
            (Some(s), None) => human_duration(jiff::Timestamp::now().as_second() - s.0.as_second()),
            _ => String::new(),
        };
        let (containers, images) = containers_and_images(Some(&spec.template));
        vec![
            Value::String(name(j)),
            Value::String(status.into()),
            Value::String(completions),
            Value::String(duration),
            age(j),
            Value::String(containers),
            Value::String(images),
            Value::String(selector_string(spec.selector.as_ref())),
        ]
    }
}

/// CronJob behaviour: the defaults Kubernetes gives (`concurrencyPolicy: Allow`, not
/// suspended, 3 successful and 1 failed Jobs kept; the job template's pod template defaulted
/// like any), and its validation (a schedule of five fields or a descriptor, a known time zone,
/// a job template that is a valid Job's, a name that leaves room for the Jobs' suffix).
pub struct CronJobStrategy;

/// Longest CronJob name: a DNS label of 63 less the 11 characters of the Jobs' `-<minutes>`.
const CRONJOB_NAME_MAX: usize = 52;

/// Validates a CronJob's `spec.timeZone` as Kubernetes does.
fn validate_time_zone(tz: &str) -> Option<FieldError> {
    const PATH: &str = "spec.timeZone";
    if tz.is_empty() {
        return Some(FieldError::invalid(
            PATH,
            tz,
            "timeZone must be nil or non-empty string",
        ));
    }
    let valid_part = |p: &str| {
        p != "."
            && p != ".."
            && !p.starts_with('-')
            && !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+'))
    };
    if !tz.split('/').all(valid_part) {
        return Some(FieldError::invalid(
            PATH,
            tz,
            &format!("unknown time zone {tz}"),
        ));
    }
    if tz.eq_ignore_ascii_case("Local") {
        return Some(FieldError::invalid(
            PATH,
            tz,
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
        ));
    }
    jiff::tz::TimeZone::get(tz)
        .err()
        .map(|_| FieldError::invalid(PATH, tz, &format!("unknown time zone {tz}")))
}

#[async_trait]
impl Strategy<CronJob> for CronJobStrategy {
    fn defaults(&self, c: &mut CronJob) {
        let spec = c.spec.get_or_insert_with(Default::default);
        spec.concurrency_policy
            .get_or_insert_with(|| "Allow".into());
        spec.suspend.get_or_insert(false);
        spec.successful_jobs_history_limit.get_or_insert(3);
        spec.failed_jobs_history_limit.get_or_insert(1);
        let job = spec.job_template.spec.get_or_insert_with(Default::default);
        podspec::default_template(&mut job.template, None);
    }

    fn validate(&self, c: &CronJob) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let name = c.metadata.name.as_deref().unwrap_or("");
        if name.len() > CRONJOB_NAME_MAX {
            errs.push(FieldError::invalid(
                "metadata.name",
                name,
                "must be no more than 52 characters",
            ));
        }
        let Some(spec) = &c.spec else {
            errs.push(FieldError::required("spec"));
            return errs;
        };
        if spec.schedule.is_empty() {
            errs.push(FieldError::required("spec.schedule"));
        } else if spec.schedule.contains("TZ") {
            errs.push(FieldError::invalid(
                "spec.schedule",
                &spec.schedule,
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            ));
        } else if let Err(e) = rkube_machinery::cron::Schedule::parse(&spec.schedule) {
            errs.push(FieldError::invalid(
                "spec.schedule",
                &spec.schedule,
                &e.to_string(),
            ));
        }
        if let Some(tz) = spec.time_zone.as_deref() {
            errs.extend(validate_time_zone(tz));
        }
        match spec.concurrency_policy.as_deref() {
            Some("Allow" | "Forbid" | "Replace") => {}
            None | Some("") => errs.push(FieldError::required("spec.concurrencyPolicy")),
            Some(other) => errs.push(FieldError::not_supported(
                "spec.concurrencyPolicy",
                other,
                &["Allow", "Forbid", "Replace"],
            )),
        }
        for (f, v) in [
            (
                "spec.startingDeadlineSeconds",
                spec.starting_deadline_seconds,
            ),
            (
                "spec.successfulJobsHistoryLimit",
                spec.successful_jobs_history_limit.map(i64::from),
            ),
            (
                "spec.failedJobsHistoryLimit",
                spec.failed_jobs_history_limit.map(i64::from),
            ),
        ] {
            if let Some(v) = v
                && v < 0
            {
                errs.push(FieldError::invalid(
                    f,
                    v,
                    "must be greater than or equal to 0",
                ));
            }
        }
        match &spec.job_template.spec {
            Some(job) => errs.extend(validate_job_spec(job, "spec.jobTemplate.spec")),
            None => errs.push(FieldError::required("spec.jobTemplate.spec")),
        }
        errs
    }

    fn columns(&self) -> Vec<Column> {
        let mut c = vec![
            Column::NAME,
            Column::new(
                "Schedule",
                "string",
                "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.",
            ),
            Column::new(
                "Timezone",
                "string",
                "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones.",
            ),
            Column::new(
                "Suspend",
                "boolean",
                "This flag tells the controller to suspend subsequent executions.",
            ),
            Column::new(
                "Active",
                "integer",
                "A list of pointers to currently running jobs.",
            ),
            Column::new(
                "Last Schedule",
                "string",
                "Information when was the last time the job was successfully scheduled.",
            ),
            Column::AGE,
        ];
        c.extend(wide_columns());
        c
    }

    fn cells(&self, c: &CronJob) -> Vec<Value> {
        let spec = c.spec.clone().unwrap_or_default();
        let st = c.status.clone().unwrap_or_default();
        let last = st
            .last_schedule_time
            .as_ref()
            .map(crate::registry::human_age)
            .unwrap_or_else(|| "<none>".into());
        let job = spec.job_template.spec.unwrap_or_default();
        let (containers, images) = containers_and_images(Some(&job.template));
        let selector = match job.selector.as_ref() {
            Some(s) => selector_string(Some(s)),
            None => "<none>".into(),
        };
        vec![
            Value::String(name(c)),
            Value::String(spec.schedule),
            Value::String(spec.time_zone.unwrap_or_else(|| "<none>".into())),
            // printBoolPtr: the words, not a JSON boolean.
            Value::String(
                match spec.suspend {
                    Some(true) => "True",
                    Some(false) => "False",
                    None => "<unset>",
                }
                .into(),
            ),
            Value::from(st.active.map_or(0, |a| a.len())),
            Value::String(last),
            age(c),
            Value::String(containers),
            Value::String(images),
            Value::String(selector),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(v: serde_json::Value) -> Deployment {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn deployment_defaults_like_kubernetes() {
        let mut d = deployment(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]}}}
        }));
        DeploymentStrategyImpl.defaults(&mut d);
        let spec = d.spec.as_ref().unwrap();
        assert_eq!(spec.replicas, Some(1));
        assert_eq!(spec.revision_history_limit, Some(10));
        assert_eq!(spec.progress_deadline_seconds, Some(600));
        let ru = spec
            .strategy
            .as_ref()
            .unwrap()
            .rolling_update
            .as_ref()
            .unwrap();
        assert_eq!(ru.max_surge, Some(IntOrString::String("25%".into())));
        let c = &spec.template.spec.as_ref().unwrap().containers[0];
        assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
        assert!(DeploymentStrategyImpl.validate(&d).is_empty());
    }

    fn job(v: serde_json::Value) -> Job {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn job_pods_must_not_restart_always() {
        let base = |policy: Option<&str>| {
            let mut spec = serde_json::json!({"containers": [{"name": "pi", "image": "busybox"}]});
            if let Some(p) = policy {
                spec["restartPolicy"] = serde_json::json!(p);
            }
            let mut j = job(serde_json::json!({
                "metadata": {"name": "pi", "namespace": "default"},
                "spec": {"template": {"spec": spec}}
            }));
            JobStrategy.defaults(&mut j);
            JobStrategy.validate(&j)
        };
        assert!(base(Some("Never")).is_empty());
        assert!(base(Some("OnFailure")).is_empty());
        let errs = base(Some("Always"));
        assert!(
            errs.iter()
                .any(|e| e.field == "spec.template.spec.restartPolicy"
                    && e.message.contains("Unsupported value: \"Always\"")),
            "{errs:?}"
        );
        let indexed = |completions: Option<i32>, mode: &str| {
            let mut j = job(serde_json::json!({
                "metadata": {"name": "pi", "namespace": "default"},
                "spec": {"completionMode": mode, "template": {"spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "pi", "image": "busybox"}]}}}
            }));
            j.spec.as_mut().unwrap().completions = completions;
            JobStrategy.validate(&j)
        };
        assert!(indexed(Some(3), "Indexed").is_empty());
        assert!(
            indexed(None, "Indexed")
                .iter()
                .any(|e| e.field == "spec.completions")
        );
        assert!(
            indexed(Some(3), "Sometimes")
                .iter()
                .any(|e| e.field == "spec.completionMode")
        );
        let errs = base(None);
        assert!(
            errs.iter()
                .any(|e| e.field == "spec.template.spec.restartPolicy"),
            "{errs:?}"
        );
    }

    #[test]
    fn job_table_rows_read_as_kubectl_prints_them() {
        let names: Vec<String> = JobStrategy
            .columns()
            .iter()
            .map(|c| c.name.to_string())
            .collect();
        assert_eq!(
            &names[..5],
            ["Name", "Status", "Completions", "Duration", "Age"]
        );
        let row = |v: serde_json::Value| {
            JobStrategy
                .cells(&job(v))
                .into_iter()
                .take(4)
                .map(|c| c.as_str().unwrap_or_default().to_string())
                .collect::<Vec<_>>()
        };
        let done = row(serde_json::json!({
            "metadata": {"name": "pi"},
            "spec": {"completions": 3, "parallelism": 2, "template": {}},
            "status": {"succeeded": 3, "startTime": "2026-01-01T00:00:00Z",
                       "completionTime": "2026-01-01T00:00:12Z",
                       "conditions": [{"type": "SuccessCriteriaMet", "status": "True"},
                                      {"type": "Complete", "status": "True"}]}
        }));
        assert_eq!(done, ["pi", "Complete", "3/3", "12s"]);
        let failing = row(serde_json::json!({
            "metadata": {"name": "x"},
            "spec": {"parallelism": 1, "template": {}},
            "status": {"conditions": [{"type": "FailureTarget", "status": "True"}]}
        }));
        assert_eq!(failing, ["x", "FailureTarget", "0/1", ""]);
        let wide = row(serde_json::json!({
            "metadata": {"name": "w"},
            "spec": {"parallelism": 4, "template": {}},
            "status": {"succeeded": 1, "conditions": [
                {"type": "SuccessCriteriaMet", "status": "True"}]}
        }));
        assert_eq!(wide, ["w", "SuccessCriteriaMet", "1/1 of 4", ""]);
    }

    #[test]
    fn selector_must_match_template() {
        let mut d = deployment(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "other"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}
        }));
        DeploymentStrategyImpl.defaults(&mut d);
        let errs = DeploymentStrategyImpl.validate(&d);
        assert!(errs.iter().any(|e| {
            e.message
                .contains("`selector` does not match template `labels`")
        }));
    }
}
