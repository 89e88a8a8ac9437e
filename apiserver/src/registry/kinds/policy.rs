//! PodDisruptionBudgets (policy/v1): how many of a set of pods may be down at once by
//! voluntary disruption (evictions). Validation as Kubernetes' (`minAvailable` and
//! `maxUnavailable` are integers ≥ 0 or percentages up to 100%, not both set; the selector is a
//! valid label selector; `unhealthyPodEvictionPolicy` is `IfHealthyBudget` or `AlwaysAllow`;
//! the status counts are not negative and its conditions are well formed) and the columns
//! `kubectl get pdb` prints. There is no defaulting in policy/v1: a budget with neither bound
//! set is valid (its controller then allows no disruption).

use std::collections::BTreeSet;

use async_trait::async_trait;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use rkube_machinery::validation::{is_qualified_name, is_valid_label_value, is_valid_percent};
use serde_json::Value;

use crate::error::FieldError;
use crate::registry::{Column, Strategy, age, name};

/// The unhealthy-pod eviction policies (`supportedUnhealthyPodEvictionPolicies`).
pub const UNHEALTHY_POD_EVICTION_POLICIES: &[&str] = &["AlwaysAllow", "IfHealthyBudget"];

/// PodDisruptionBudget behaviour.
pub struct PodDisruptionBudgetStrategy;

/// `FieldValueInvalid` with Kubernetes' rendering of the value (numbers bare, strings quoted).
fn invalid(field: impl Into<String>, value: &IntOrString, detail: &str) -> FieldError {
    match value {
        IntOrString::Int(i) => FieldError::invalid(field, i, detail),
        IntOrString::String(s) => FieldError::invalid(field, s, detail),
    }
}

/// `ValidatePositiveIntOrPercent` and `IsNotMoreThan100Percent`: an integer ≥ 0 or a
/// percentage (`[0-9]+%`) of at most 100%.
fn validate_int_or_percent(value: &IntOrString, field: &str, errs: &mut Vec<FieldError>) {
    match value {
        IntOrString::Int(i) => {
            if *i < 0 {
                errs.push(invalid(field, value, "must be greater than or equal to 0"));
            }
        }
        IntOrString::String(s) => {
            let msgs = is_valid_percent(s);
            if msgs.is_empty() {
                let pct: u64 = s.trim_end_matches('%').parse().unwrap_or(u64::MAX);
                if pct > 100 {
                    errs.push(invalid(field, value, "must not be greater than 100%"));
                }
            }
            for msg in msgs {
                errs.push(invalid(field, value, &msg));
            }
        }
    }
}

/// `ValidateLabelSelector` (without `AllowInvalidLabelValueInSelector`): label names and
/// values, and each expression's operator and values.
fn validate_selector(sel: &LabelSelector, path: &str, errs: &mut Vec<FieldError>) {
    for (key, value) in sel.match_labels.iter().flatten() {
        for msg in is_qualified_name(key) {
            errs.push(FieldError::invalid(
                format!("{path}.matchLabels"),
                key,
                &msg,
            ));
        }
        for msg in is_valid_label_value(value) {
            errs.push(FieldError::invalid(
                format!("{path}.matchLabels"),
                value,
                &msg,
            ));
        }
    }
    for (i, expr) in sel.match_expressions.iter().flatten().enumerate() {
        let at = format!("{path}.matchExpressions[{i}]");
        let values = expr.values.as_deref().unwrap_or_default();
        match expr.operator.as_str() {
            "In" | "NotIn" => {
                if values.is_empty() {
                    errs.push(FieldError::required_msg(
                        format!("{at}.values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    errs.push(FieldError::forbidden(
                        format!("{at}.values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            other => errs.push(FieldError::invalid(
                format!("{at}.operator"),
                other,
                "not a valid selector operator",
            )),
        }
        for msg in is_qualified_name(&expr.key) {
            errs.push(FieldError::invalid(format!("{at}.key"), &expr.key, &msg));
        }
        for (j, value) in values.iter().enumerate() {
            for msg in is_valid_label_value(value) {
                errs.push(FieldError::invalid(
                    format!("{at}.values[{j}]"),
                    value,
                    &msg,
                ));
            }
        }
    }
}

/// Whether a condition reason has Kubernetes' form (`^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$`).
fn is_condition_reason(reason: &str) -> bool {
    let b = reason.as_bytes();
    let inner = |c: &u8| c.is_ascii_alphanumeric() || matches!(c, b'_' | b',' | b':');
    match b {
        [] => false,
        [first] => first.is_ascii_alphabetic(),
        [first, middle @ .., last] => {
            first.is_ascii_alphabetic()
                && middle.iter().all(inner)
                && (last.is_ascii_alphanumeric() || *last == b'_')
        }
    }
}

/// `ValidateConditions`: types unique and qualified names, status True/False/Unknown, a
/// reason of the right form, a transition time, a generation ≥ 0, bounded messages.
fn validate_conditions(conditions: &[Condition], path: &str, errs: &mut Vec<FieldError>) {
    let mut seen = BTreeSet::new();
    for (i, c) in conditions.iter().enumerate() {
        let at = format!("{path}[{i}]");
        if c.type_.is_empty() {
            errs.push(FieldError::required(format!("{at}.type")));
        } else {
            for msg in is_qualified_name(&c.type_) {
                errs.push(FieldError::invalid(format!("{at}.type"), &c.type_, &msg));
            }
            if !seen.insert(c.type_.as_str()) {
                errs.push(FieldError::duplicate(format!("{at}.type"), &c.type_));
            }
        }
        if !matches!(c.status.as_str(), "True" | "False" | "Unknown") {
            errs.push(FieldError::not_supported(
                format!("{at}.status"),
                &c.status,
                &["False", "True", "Unknown"],
            ));
        }
        if c.observed_generation.is_some_and(|g| g < 0) {
            errs.push(FieldError::invalid(
                format!("{at}.observedGeneration"),
                c.observed_generation.unwrap_or_default(),
                "must be greater than or equal to zero",
            ));
        }
        if c.last_transition_time.0.as_second() == 0 {
            errs.push(FieldError::required_msg(
                format!("{at}.lastTransitionTime"),
                "must be set",
            ));
        }
        if c.reason.is_empty() {
            errs.push(FieldError::required_msg(
                format!("{at}.reason"),
                "must be set",
            ));
        } else {
            if !is_condition_reason(&c.reason) {
                errs.push(FieldError::invalid(
                    format!("{at}.reason"),
                    &c.reason,
                    "a condition reason must start with alphabetic character, optionally followed by a string of alphanumeric characters or '_,:', and must end with an alphanumeric character or '_' (e.g. 'my_name',  or 'MY_NAME',  or 'MyName',  or 'ReasonA,ReasonB',  or 'ReasonA:ReasonB', regex used for validation is '[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?')",
                ));
            }
            if c.reason.len() > 1024 {
                errs.push(FieldError {
                    reason: "FieldValueTooLong",
                    field: format!("{at}.reason"),
                    message: "Too long: may not be more than 1024 bytes".into(),
                });
            }
        }
        if c.message.len() > 32768 {
            errs.push(FieldError {
                reason: "FieldValueTooLong",
                field: format!("{at}.message"),
                message: "Too long: may not be more than 32768 bytes".into(),
            });
        }
    }
}

/// `ValidatePodDisruptionBudgetStatusUpdate` (policy/v1): conditions, and counts ≥ 0.
fn validate_status(status: &PodDisruptionBudgetStatus, errs: &mut Vec<FieldError>) {
    validate_conditions(
        status.conditions.as_deref().unwrap_or_default(),
        "status.conditions",
        errs,
    );
    for (field, value) in [
        ("status.disruptionsAllowed", status.disruptions_allowed),
        ("status.currentHealthy", status.current_healthy),
        ("status.desiredHealthy", status.desired_healthy),
        ("status.expectedPods", status.expected_pods),
    ] {
        if value < 0 {
            errs.push(FieldError::invalid(
                field,
                value,
                "must be greater than or equal to 0",
            ));
        }
    }
}

/// How kubectl shows a bound: the integer or the percentage, `N/A` when unset.
fn bound(v: Option<&IntOrString>) -> String {
    match v {
        Some(IntOrString::Int(i)) => i.to_string(),
        Some(IntOrString::String(s)) => s.clone(),
        None => "N/A".into(),
    }
}

#[async_trait]
impl Strategy<PodDisruptionBudget> for PodDisruptionBudgetStrategy {
    fn validate(&self, pdb: &PodDisruptionBudget) -> Vec<FieldError> {
        let mut errs = Vec::new();
        if let Some(spec) = &pdb.spec {
            if spec.min_available.is_some() && spec.max_unavailable.is_some() {
                errs.push(FieldError::invalid(
                    "spec",
                    "object",
                    "minAvailable and maxUnavailable cannot be both set",
                ));
            }
            if let Some(v) = &spec.min_available {
                validate_int_or_percent(v, "spec.minAvailable", &mut errs);
            }
            if let Some(v) = &spec.max_unavailable {
                validate_int_or_percent(v, "spec.maxUnavailable", &mut errs);
            }
            if let Some(sel) = &spec.selector {
                validate_selector(sel, "spec.selector", &mut errs);
            }
            if let Some(policy) = &spec.unhealthy_pod_eviction_policy
                && !UNHEALTHY_POD_EVICTION_POLICIES.contains(&policy.as_str())
            {
                errs.push(FieldError::not_supported(
                    "spec.unhealthyPodEvictionPolicy",
                    policy,
                    UNHEALTHY_POD_EVICTION_POLICIES,
                ));
            }
        }
        if let Some(status) = &pdb.status {
            validate_status(status, &mut errs);
        }
        errs
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::NAME,
            Column::new(
                "Min Available",
                "string",
                "The minimum number of pods that must be available.",
            ),
            Column::new(
                "Max Unavailable",
                "string",
                "The maximum number of pods that may be unavailable.",
            ),
            Column::new(
                "Allowed Disruptions",
                "integer",
                "Calculated number of pods that may be disrupted at this time.",
            ),
            Column::AGE,
        ]
    }

    fn cells(&self, pdb: &PodDisruptionBudget) -> Vec<Value> {
        let spec = pdb.spec.as_ref();
        vec![
            Value::String(name(pdb)),
            Value::String(bound(spec.and_then(|s| s.min_available.as_ref()))),
            Value::String(bound(spec.and_then(|s| s.max_unavailable.as_ref()))),
            Value::from(
                pdb.status
                    .as_ref()
                    .map(|s| s.disruptions_allowed)
                    .unwrap_or(0),
            ),
            age(pdb),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pdb(spec: Value) -> PodDisruptionBudget {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": spec,
        }))
        .unwrap()
    }

    fn errors(spec: Value) -> Vec<String> {
        PodDisruptionBudgetStrategy
            .validate(&pdb(spec))
            .into_iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect()
    }

    #[test]
    fn bounds_are_integers_or_percentages_and_not_both() {
        let sel = json!({"matchLabels": {"app": "web"}});
        for ok in [
            json!({"selector": sel, "minAvailable": 2}),
            json!({"selector": sel, "minAvailable": 0}),
            json!({"selector": sel, "minAvailable": "50%"}),
            json!({"selector": sel, "maxUnavailable": "100%"}),
            json!({"selector": sel, "maxUnavailable": 1}),
            // Neither is valid in policy/v1 (nothing is defaulted).
            json!({"selector": sel}),
        ] {
            assert_eq!(errors(ok.clone()), Vec::<String>::new(), "{ok}");
        }
        assert_eq!(
            errors(json!({"selector": sel, "minAvailable": 1, "maxUnavailable": 1})),
            [
                r#"spec: Invalid value: "object": minAvailable and maxUnavailable cannot be both set"#
            ]
        );
        assert_eq!(
            errors(json!({"selector": sel, "minAvailable": -1})),
            ["spec.minAvailable: Invalid value: -1: must be greater than or equal to 0"]
        );
        assert_eq!(
            errors(json!({"selector": sel, "maxUnavailable": "101%"})),
            [r#"spec.maxUnavailable: Invalid value: "101%": must not be greater than 100%"#]
        );
        let bad = errors(json!({"selector": sel, "minAvailable": "half"}));
        assert_eq!(bad.len(), 1);
        assert!(
            bad[0].starts_with(
                r#"spec.minAvailable: Invalid value: "half": a valid percent string must be"#
            ),
            "{bad:?}"
        );
    }

    #[test]
    fn selectors_and_policies_are_checked() {
        assert_eq!(
            errors(json!({"minAvailable": 1, "selector": {"matchExpressions": [
                {"key": "app", "operator": "In", "values": []},
                {"key": "tier", "operator": "Exists", "values": ["x"]},
                {"key": "x", "operator": "Near"},
            ]}})),
            [
                "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
                "spec.selector.matchExpressions[1].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                r#"spec.selector.matchExpressions[2].operator: Invalid value: "Near": not a valid selector operator"#,
            ]
        );
        let bad_label =
            errors(json!({"minAvailable": 1, "selector": {"matchLabels": {"app": "-web-"}}}));
        assert_eq!(bad_label.len(), 1, "{bad_label:?}");
        assert!(bad_label[0].starts_with(r#"spec.selector.matchLabels: Invalid value: "-web-""#));
        // An empty selector (every pod of the namespace) is valid.
        assert!(errors(json!({"minAvailable": 1, "selector": {}})).is_empty());
        for policy in ["AlwaysAllow", "IfHealthyBudget"] {
            assert!(
                errors(json!({"minAvailable": 1, "unhealthyPodEvictionPolicy": policy})).is_empty()
            );
        }
        assert_eq!(
            errors(json!({"minAvailable": 1, "unhealthyPodEvictionPolicy": "Never"})),
            [
                r#"spec.unhealthyPodEvictionPolicy: Unsupported value: "Never": supported values: "AlwaysAllow", "IfHealthyBudget""#
            ]
        );
    }

    #[test]
    fn status_counts_and_conditions_are_checked() {
        let mut p = pdb(json!({"minAvailable": 1}));
        p.status = Some(
            serde_json::from_value(json!({
                "disruptionsAllowed": -1, "currentHealthy": 3, "desiredHealthy": 2,
                "expectedPods": 3, "observedGeneration": 1,
                "conditions": [
                    {"type": "DisruptionAllowed", "status": "True", "reason": "SufficientPods",
                     "message": "", "lastTransitionTime": "2025-01-01T00:00:00Z"},
                    {"type": "DisruptionAllowed", "status": "Maybe", "reason": "9lives",
                     "message": "", "lastTransitionTime": "2025-01-01T00:00:00Z"},
                ],
            }))
            .unwrap(),
        );
        let errs: Vec<String> = PodDisruptionBudgetStrategy
            .validate(&p)
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            errs,
            [
                "status.conditions[1].type",
                "status.conditions[1].status",
                "status.conditions[1].reason",
                "status.disruptionsAllowed",
            ]
        );
        assert!(is_condition_reason("SufficientPods"));
        assert!(is_condition_reason("A"));
        assert!(!is_condition_reason("Ends:"));
    }

    #[test]
    fn kubectl_columns_show_na_for_the_unset_bound() {
        let s = PodDisruptionBudgetStrategy;
        let names: Vec<_> = s.columns().iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                "Name",
                "Min Available",
                "Max Unavailable",
                "Allowed Disruptions",
                "Age"
            ]
        );
        let mut p = pdb(json!({"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}));
        p.status = Some(PodDisruptionBudgetStatus {
            disruptions_allowed: 1,
            ..Default::default()
        });
        let cells = s.cells(&p);
        assert_eq!(
            &cells[..4],
            &[json!("web"), json!("2"), json!("N/A"), json!(1)]
        );
        let p = pdb(json!({"maxUnavailable": "25%"}));
        let cells = s.cells(&p);
        assert_eq!(&cells[1..4], &[json!("N/A"), json!("25%"), json!(0)]);
    }
}
