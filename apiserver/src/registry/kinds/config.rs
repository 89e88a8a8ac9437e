//! ConfigMaps, Secrets and ServiceAccounts: key validation, the Secret type default, and their
//! table columns (DATA, TYPE, SECRETS).

use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use serde_json::Value;

use crate::error::FieldError;
use crate::registry::{Column, Fields, Strategy, age, name};

/// Kubernetes' rule for ConfigMap and Secret keys.
fn validate_key(field: &str, key: &str) -> Option<FieldError> {
    let ok = !key.is_empty()
        && key.len() <= 253
        && key != "."
        && key != ".."
        && !key.starts_with("..")
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    (!ok).then(|| {
        FieldError::invalid(
            format!("{field}[{key}]"),
            key,
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
        )
    })
}

/// ConfigMap behaviour.
pub struct ConfigMapStrategy;

impl Strategy<ConfigMap> for ConfigMapStrategy {
    fn validate(&self, cm: &ConfigMap) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let mut total = 0usize;
        for k in cm.data.iter().flat_map(|d| d.keys()) {
            errs.extend(validate_key("data", k));
        }
        for k in cm.binary_data.iter().flat_map(|d| d.keys()) {
            errs.extend(validate_key("binaryData", k));
            if cm.data.as_ref().is_some_and(|d| d.contains_key(k)) {
                errs.push(FieldError::invalid(
                    format!("data[{k}]"),
                    k,
                    "duplicate of key present in binaryData",
                ));
            }
        }
        total += cm
            .data
            .iter()
            .flatten()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>();
        total += cm
            .binary_data
            .iter()
            .flatten()
            .map(|(k, v)| k.len() + v.0.len())
            .sum::<usize>();
        if total > 1024 * 1024 {
            errs.push(FieldError {
                reason: "FieldValueTooLong",
                field: "data".into(),
                message: "Too long: must have at most 1048576 bytes".into(),
            });
        }
        errs
    }

    fn validate_update(&self, new: &ConfigMap, old: &ConfigMap) -> Vec<FieldError> {
        immutable_data(old.immutable, new.immutable, || {
            new.data != old.data || new.binary_data != old.binary_data
        })
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::NAME,
            Column::new("Data", "string", "Data contains the configuration data."),
            Column::AGE,
        ]
    }

    fn cells(&self, cm: &ConfigMap) -> Vec<Value> {
        let n = cm.data.as_ref().map_or(0, |d| d.len())
            + cm.binary_data.as_ref().map_or(0, |d| d.len());
        vec![Value::String(name(cm)), Value::from(n), age(cm)]
    }
}

fn immutable_data(
    old: Option<bool>,
    new: Option<bool>,
    changed: impl FnOnce() -> bool,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if old == Some(true) {
        if new != Some(true) {
            errs.push(FieldError::forbidden(
                "immutable",
                "field is immutable when `immutable` is set",
            ));
        }
        if changed() {
            errs.push(FieldError::forbidden(
                "data",
                "field is immutable when `immutable` is set",
            ));
        }
    }
    errs
}

/// Secret behaviour.
pub struct SecretStrategy;

impl Strategy<Secret> for SecretStrategy {
    fn defaults(&self, s: &mut Secret) {
        if s.type_.as_deref().is_none_or(str::is_empty) {
            s.type_ = Some("Opaque".into());
        }
        // stringData is write-only: merged into data, as Kubernetes does.
        if let Some(string_data) = s.string_data.take() {
            let data = s.data.get_or_insert_with(Default::default);
            for (k, v) in string_data {
                data.insert(k, k8s_openapi::ByteString(v.into_bytes()));
            }
        }
    }

    fn validate(&self, s: &Secret) -> Vec<FieldError> {
        let mut errs = Vec::new();
        for k in s.data.iter().flat_map(|d| d.keys()) {
            errs.extend(validate_key("data", k));
        }
        let total: usize = s.data.iter().flatten().map(|(_, v)| v.0.len()).sum();
        if total > 1024 * 1024 {
            errs.push(FieldError {
                reason: "FieldValueTooLong",
                field: "data".into(),
                message: "Too long: must have at most 1048576 bytes".into(),
            });
        }
        if s.type_.as_deref() == Some("kubernetes.io/tls") {
            for key in ["tls.crt", "tls.key"] {
                if !s.data.as_ref().is_some_and(|d| d.contains_key(key)) {
                    errs.push(FieldError::required(format!("data[{key}]")));
                }
            }
        }
        errs
    }

    fn validate_update(&self, new: &Secret, old: &Secret) -> Vec<FieldError> {
        let mut errs = immutable_data(old.immutable, new.immutable, || new.data != old.data);
        if new.type_ != old.type_ {
            errs.push(FieldError::immutable(
                "type",
                new.type_.clone().unwrap_or_default(),
            ));
        }
        errs
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::NAME,
            Column::new("Type", "string", "The type of the secret"),
            Column::new("Data", "string", "The number of entries in the secret"),
            Column::AGE,
        ]
    }

    fn cells(&self, s: &Secret) -> Vec<Value> {
        vec![
            Value::String(name(s)),
            Value::String(s.type_.clone().unwrap_or_default()),
            Value::from(s.data.as_ref().map_or(0, |d| d.len())),
            age(s),
        ]
    }

    fn fields(&self, s: &Secret, out: &mut Fields) {
        out.insert("type".into(), s.type_.clone().unwrap_or_default());
    }

    fn field_names(&self) -> &'static [&'static str] {
        &["type"]
    }
}

/// ServiceAccount behaviour.
pub struct ServiceAccountStrategy;

impl Strategy<ServiceAccount> for ServiceAccountStrategy {
    fn columns(&self) -> Vec<Column> {
        vec![
            Column::NAME,
            Column::new(
                "Secrets",
                "string",
                "The number of secrets of the service account",
            ),
            Column::AGE,
        ]
    }

    fn cells(&self, sa: &ServiceAccount) -> Vec<Value> {
        vec![
            Value::String(name(sa)),
            Value::from(sa.secrets.as_ref().map_or(0, |s| s.len())),
            age(sa),
        ]
    }
}
