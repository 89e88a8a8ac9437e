//! Admission shared by every kind: NamespaceLifecycle (no creates in a missing or terminating
//! namespace) and unknown-field detection for `fieldValidation`. Kind-specific admission
//! (ServiceAccount, DefaultTolerationSeconds and Priority for pods, the single global default
//! PriorityClass, ClusterIP/NodePort allocation for services) lives in the kinds' strategies.

use serde_json::Value;

use crate::error::ApiError;
use crate::registry::Api;
use crate::resources::{self, ResourceDef};
use crate::storage::{ListOptions, ReadAt};

/// Refuses creates in a namespace that does not exist or is being deleted.
pub async fn namespace_lifecycle(api: &Api, ns: &str, def: &ResourceDef) -> Result<(), ApiError> {
    if std::ptr::eq(def, &resources::NAMESPACES) {
        return Ok(());
    }
    let key = resources::NAMESPACES.key(None, ns);
    // The watch cache answers almost always; a namespace created a moment ago may not be in it
    // yet, so a miss is confirmed with a consistent read.
    let cached = if api.recently_deleted(ns) {
        None
    } else {
        api.store
            .list(
                &key,
                ListOptions {
                    read_at: ReadAt::NotOlderThan(0),
                    limit: Some(1),
                    ..Default::default()
                },
            )
            .await
            .ok()
            .and_then(|l| l.items.into_iter().find(|kv| kv.key == key))
    };
    let found = match cached {
        Some(kv) => Some(kv),
        None => api
            .store
            .get(&key)
            .await
            .map_err(|e| ApiError::from_storage(e, "", "namespaces", ns))?,
    };
    let Some(kv) = found else {
        return Err(ApiError::not_found("", "namespaces", ns));
    };
    let v: Value = serde_json::from_slice(&kv.value).unwrap_or_default();
    let terminating = v["status"]["phase"] == "Terminating"
        || v["metadata"]
            .get("deletionTimestamp")
            .is_some_and(|t| !t.is_null());
    if terminating {
        let mut e = ApiError::forbidden(format!(
            "unable to create new content in namespace {ns} because it is being terminated"
        ));
        e.details = Some(Box::new(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusDetails {
                name: Some(ns.to_string()),
                kind: Some(def.resource.to_string()),
                causes: Some(vec![
                    k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusCause {
                        reason: Some("NamespaceTerminating".into()),
                        message: Some(format!("namespace {ns} is being terminated")),
                        field: Some("metadata.namespace".into()),
                    },
                ]),
                ..Default::default()
            },
        ));
        return Err(e);
    }
    Ok(())
}

/// Fields of `body` the kind's schema does not know, as `.spec.foo` paths.
pub fn unknown_fields(def: &ResourceDef, body: &Value) -> Vec<String> {
    let schemas = rkube_machinery::schema::Schemas::builtin();
    match schemas.for_kind(def.group, def.version, def.kind) {
        Some(schema) => rkube_machinery::schema::unknown_fields(schema, body),
        None => Vec::new(),
    }
}
