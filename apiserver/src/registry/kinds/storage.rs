//! StorageClasses (storage.k8s.io/v1): stored with Kubernetes' defaults (`reclaimPolicy:
//! Delete`, `volumeBindingMode: Immediate`), validation and columns (`(default)` after the name
//! of the default class), and the DefaultStorageClass admission of PersistentVolumeClaims: a
//! claim created without `storageClassName` gets the default class's name.

use async_trait::async_trait;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::api::storage::v1::StorageClass;
use rkube_machinery::validation;
use serde_json::Value;

use crate::error::{ApiError, FieldError};
use crate::registry::{Api, Column, Strategy, age, name};
use crate::resources;
use crate::storage::{ListOptions, ReadAt};

/// The annotation that makes a class the default.
pub const IS_DEFAULT_CLASS: &str = "storageclass.kubernetes.io/is-default-class";

/// Whether the class is marked as the default.
pub fn is_default(class: &StorageClass) -> bool {
    class
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(IS_DEFAULT_CLASS))
        .is_some_and(|v| v == "true")
}

/// The default StorageClass, from the watch cache: of several, the newest (then the first by
/// name), as Kubernetes picks.
pub async fn default_class(api: &Api) -> Result<Option<StorageClass>, ApiError> {
    let listed = api
        .store
        .list(
            &resources::STORAGECLASSES.prefix(),
            ListOptions {
                read_at: ReadAt::NotOlderThan(0),
                ..ListOptions::default()
            },
        )
        .await
        .map_err(|e| {
            let def = &resources::STORAGECLASSES;
            ApiError::from_storage(e, def.group, def.resource, "")
        })?;
    let mut best: Option<StorageClass> = None;
    for kv in &listed.items {
        let Ok(class) = serde_json::from_slice::<StorageClass>(&kv.value) else {
            continue;
        };
        if !is_default(&class) {
            continue;
        }
        let created = |c: &StorageClass| c.metadata.creation_timestamp.as_ref().map(|t| t.0);
        let newer = best.as_ref().is_none_or(|b| {
            created(&class) > created(b)
                || (created(&class) == created(b) && class.metadata.name < b.metadata.name)
        });
        if newer {
            best = Some(class);
        }
    }
    Ok(best)
}

/// DefaultStorageClass admission of a claim being created.
pub async fn admit_claim(api: &Api, pvc: &mut PersistentVolumeClaim) -> Result<(), ApiError> {
    let spec = pvc.spec.get_or_insert_with(Default::default);
    if spec.storage_class_name.is_some() {
        return Ok(());
    }
    if let Some(class) = default_class(api).await? {
        spec.storage_class_name = class.metadata.name;
    }
    Ok(())
}

/// StorageClass behaviour.
pub struct StorageClassStrategy;

#[async_trait]
impl Strategy<StorageClass> for StorageClassStrategy {
    fn defaults(&self, c: &mut StorageClass) {
        c.reclaim_policy.get_or_insert_with(|| "Delete".into());
        c.volume_binding_mode
            .get_or_insert_with(|| "Immediate".into());
    }

    fn validate(&self, c: &StorageClass) -> Vec<FieldError> {
        let mut errs = Vec::new();
        if c.provisioner.is_empty() {
            errs.push(FieldError::required("provisioner"));
        } else {
            for m in validation::is_qualified_name(&c.provisioner.to_lowercase()) {
                errs.push(FieldError::invalid("provisioner", &c.provisioner, &m));
            }
        }
        match c.reclaim_policy.as_deref() {
            None | Some("Delete" | "Retain") => {}
            Some(other) => errs.push(FieldError::not_supported(
                "reclaimPolicy",
                other,
                &["Delete", "Retain"],
            )),
        }
        match c.volume_binding_mode.as_deref() {
            None | Some("Immediate" | "WaitForFirstConsumer") => {}
            Some(other) => errs.push(FieldError::not_supported(
                "volumeBindingMode",
                other,
                &["Immediate", "WaitForFirstConsumer"],
            )),
        }
        let params = c.parameters.clone().unwrap_or_default();
        if params.len() > 512 {
            errs.push(FieldError::invalid(
                "parameters",
                params.len(),
                "must have at most 512 parameters",
            ));
        }
        for key in params.keys().filter(|k| k.is_empty()) {
            errs.push(FieldError::invalid(
                "parameters",
                key,
                "field can not be empty.",
            ));
        }
        errs
    }

    fn validate_update(&self, new: &StorageClass, old: &StorageClass) -> Vec<FieldError> {
        let mut errs = Vec::new();
        if new.parameters != old.parameters {
            errs.push(FieldError::forbidden(
                "parameters",
                "updates to parameters are forbidden.",
            ));
        }
        if new.provisioner != old.provisioner {
            errs.push(FieldError::forbidden(
                "provisioner",
                "updates to provisioner are forbidden.",
            ));
        }
        if new.reclaim_policy != old.reclaim_policy {
            errs.push(FieldError::forbidden(
                "reclaimPolicy",
                "updates to reclaimPolicy are forbidden.",
            ));
        }
        if new.volume_binding_mode != old.volume_binding_mode {
            errs.push(FieldError::immutable(
                "volumeBindingMode",
                new.volume_binding_mode.clone().unwrap_or_default(),
            ));
        }
        errs
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::NAME,
            Column::new(
                "Provisioner",
                "string",
                "Indicates the type of the provisioner.",
            ),
            Column::new(
                "ReclaimPolicy",
                "string",
                "Dynamically provisioned PersistentVolumes of this storage class are created with this reclaimPolicy. Defaults to Delete.",
            ),
            Column::new(
                "VolumeBindingMode",
                "string",
                "VolumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound. When unset, VolumeBindingImmediate is used.",
            ),
            Column::new(
                "AllowVolumeExpansion",
                "string",
                "AllowVolumeExpansion shows whether the storage class allow volume expand.",
            ),
            Column::AGE,
        ]
    }

    fn cells(&self, c: &StorageClass) -> Vec<Value> {
        let mut shown = name(c);
        if is_default(c) {
            shown.push_str(" (default)");
        }
        vec![
            Value::String(shown),
            Value::String(c.provisioner.clone()),
            Value::String(c.reclaim_policy.clone().unwrap_or_else(|| "Delete".into())),
            Value::String(
                c.volume_binding_mode
                    .clone()
                    .unwrap_or_else(|| "Immediate".into()),
            ),
            Value::String(c.allow_volume_expansion.unwrap_or(false).to_string()),
            age(c),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(v: serde_json::Value) -> StorageClass {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn defaults_validation_and_immutable_fields() {
        let mut c = class(serde_json::json!({
            "metadata": {"name": "local", "annotations": {IS_DEFAULT_CLASS: "true"}},
            "provisioner": "rancher.io/local-path"
        }));
        StorageClassStrategy.defaults(&mut c);
        assert_eq!(c.reclaim_policy.as_deref(), Some("Delete"));
        assert_eq!(c.volume_binding_mode.as_deref(), Some("Immediate"));
        assert!(StorageClassStrategy.validate(&c).is_empty());
        assert!(is_default(&c));
        assert_eq!(
            StorageClassStrategy.cells(&c)[0],
            Value::String("local (default)".into())
        );

        let bad = class(serde_json::json!({
            "metadata": {"name": "bad"},
            "provisioner": "",
            "reclaimPolicy": "Recycle",
            "volumeBindingMode": "Later"
        }));
        let fields: Vec<String> = StorageClassStrategy
            .validate(&bad)
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            ["provisioner", "reclaimPolicy", "volumeBindingMode"]
        );

        let mut changed = c.clone();
        changed.provisioner = "other.io/x".into();
        changed.reclaim_policy = Some("Retain".into());
        assert_eq!(StorageClassStrategy.validate_update(&changed, &c).len(), 2);
    }
}
