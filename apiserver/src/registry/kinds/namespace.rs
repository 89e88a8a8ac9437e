//! Namespaces: phase Active on create, the `kubernetes` finalizer that the namespace controller
//! removes once the namespace is empty, valid Pod Security labels, and the STATUS column.

use k8s_openapi::api::core::v1::{Namespace, NamespaceSpec, NamespaceStatus};
use serde_json::Value;

use crate::error::FieldError;
use crate::registry::{Column, Strategy, age, name};

/// The finalizer the namespace controller removes after deleting the content.
pub const FINALIZER: &str = "kubernetes";

/// Namespace behaviour.
pub struct NamespaceStrategy;

impl Strategy<Namespace> for NamespaceStrategy {
    fn prepare_create(&self, ns: &mut Namespace) {
        ns.status = Some(NamespaceStatus {
            phase: Some("Active".into()),
            ..Default::default()
        });
        let spec = ns.spec.get_or_insert_with(NamespaceSpec::default);
        let finalizers = spec.finalizers.get_or_insert_with(Vec::new);
        if !finalizers.iter().any(|f| f == FINALIZER) {
            finalizers.push(FINALIZER.into());
        }
    }

    fn defaults(&self, ns: &mut Namespace) {
        let name = ns.metadata.name.clone().unwrap_or_default();
        ns.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert("kubernetes.io/metadata.name".into(), name);
        if ns.metadata.deletion_timestamp.is_some() {
            ns.status.get_or_insert_with(Default::default).phase = Some("Terminating".into());
        }
    }

    fn validate(&self, ns: &Namespace) -> Vec<FieldError> {
        let labels = ns.metadata.labels.clone().unwrap_or_default();
        crate::pod_security::validate_labels(&labels)
            .into_iter()
            .map(|(key, message)| {
                FieldError::invalid(format!("metadata.labels[{key}]"), &labels[&key], &message)
            })
            .collect()
    }

    fn awaits_finalization(&self, ns: &Namespace) -> bool {
        ns.spec
            .as_ref()
            .and_then(|s| s.finalizers.as_ref())
            .is_some_and(|f| !f.is_empty())
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::NAME,
            Column::new("Status", "string", "The status of the namespace"),
            Column::AGE,
        ]
    }

    fn cells(&self, ns: &Namespace) -> Vec<Value> {
        let phase = ns
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        vec![Value::String(name(ns)), Value::String(phase), age(ns)]
    }

    fn fields(&self, ns: &Namespace, out: &mut crate::registry::Fields) {
        out.insert(
            "status.phase".into(),
            ns.status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_default(),
        );
    }

    fn field_names(&self) -> &'static [&'static str] {
        &["status.phase"]
    }
}
