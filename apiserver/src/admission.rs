//! Admission shared by every kind: NamespaceLifecycle (no creates in a missing or terminating
//! namespace) and unknown-field detection for `fieldValidation`. Kind-specific admission
//! (ServiceAccount, DefaultTolerationSeconds and Priority for pods, the single global default
//! PriorityClass, ClusterIP/NodePort allocation for services) lives in the kinds' strategies.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ApiError;
use crate::registry::Api;
use crate::resources::{self, ResourceDef};
use crate::storage::{ListOptions, ReadAt};

/// An object as stored, read from the watch cache when it has it (admission reads these on
/// every create, so they must be cheap), else with a consistent read: one created a moment
/// ago may not be in the cache yet. `None` when it does not exist. Decoded as `T`: a `Value`,
/// or a struct of the few fields a caller reads (the rest is skipped unparsed); what does not
/// decode reads as `T::default()`.
pub async fn cached_object<T: DeserializeOwned + Default>(
    api: &Api,
    def: &'static ResourceDef,
    ns: Option<&str>,
    name: &str,
) -> Result<Option<T>, ApiError> {
    let key = def.key(ns, name);
    let cached = api
        .store
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
        .and_then(|l| l.items.into_iter().find(|kv| kv.key == key));
    let found = match cached {
        Some(kv) => Some(kv),
        None => api
            .store
            .get(&key)
            .await
            .map_err(|e| ApiError::from_storage(e, def.group, def.resource, name))?,
    };
    Ok(found.map(|kv| serde_json::from_slice(&kv.value).unwrap_or_default()))
}

/// What the namespace lifecycle check reads of a namespace.
#[derive(Default, serde::Deserialize)]
struct Lifecycle {
    metadata: Option<LifecycleMeta>,
    status: Option<LifecycleStatus>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct LifecycleMeta {
    deletion_timestamp: Option<serde::de::IgnoredAny>,
}

#[derive(serde::Deserialize)]
struct LifecycleStatus {
    phase: Option<String>,
}

/// Refuses creates in a namespace that does not exist or is being deleted.
pub async fn namespace_lifecycle(api: &Api, ns: &str, def: &ResourceDef) -> Result<(), ApiError> {
    if std::ptr::eq(def, &resources::NAMESPACES) {
        return Ok(());
    }
    let found = if api.recently_deleted(ns) {
        // Confirmed with a consistent read.
        let key = resources::NAMESPACES.key(None, ns);
        api.store
            .get(&key)
            .await
            .map_err(|e| ApiError::from_storage(e, "", "namespaces", ns))?
            .map(|kv| serde_json::from_slice::<Lifecycle>(&kv.value).unwrap_or_default())
    } else {
        cached_object::<Lifecycle>(api, &resources::NAMESPACES, None, ns).await?
    };
    let Some(found) = found else {
        return Err(ApiError::not_found("", "namespaces", ns));
    };
    let terminating = found
        .status
        .is_some_and(|s| s.phase.as_deref() == Some("Terminating"))
        || found
            .metadata
            .is_some_and(|m| m.deletion_timestamp.is_some());
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
