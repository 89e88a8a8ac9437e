//! The PATCH content types: JSON patch (RFC 6902), JSON merge patch (RFC 7386), strategic merge
//! patch (Kubernetes' list-aware merge) and server-side apply (`application/apply-patch+yaml`).

use serde_json::Value;

use super::request::Query;
use crate::error::ApiError;
use crate::registry::WriteOptions;
use crate::resources::ResourceDef;
use rkube_machinery::{apply, patch, schema};

/// A decoded patch request.
pub struct Patch {
    kind: PatchType,
    body: Value,
}

enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply { force: bool, manager: String },
}

impl Patch {
    /// Decodes a patch body by content type.
    pub fn parse(content_type: &str, body: &[u8], q: &Query) -> Result<Self, ApiError> {
        let (kind, yaml) = match content_type {
            "application/json-patch+json" => (PatchType::Json, false),
            "application/merge-patch+json" => (PatchType::Merge, false),
            "application/strategic-merge-patch+json" => (PatchType::Strategic, false),
            "application/apply-patch+yaml" => {
                let manager = q.get("fieldManager").unwrap_or_default().to_string();
                if manager.is_empty() {
                    return Err(ApiError::invalid(
                        "meta.k8s.io",
                        "PatchOptions",
                        "",
                        vec![crate::error::FieldError::required_msg(
                            "fieldManager",
                            "is required for apply patch",
                        )],
                    ));
                }
                (
                    PatchType::Apply {
                        force: q.flag("force"),
                        manager,
                    },
                    true,
                )
            }
            other => return Err(ApiError::unsupported_media_type(other)),
        };
        if q.get("force").is_some() && !matches!(kind, PatchType::Apply { .. }) {
            return Err(ApiError::bad_request(
                "force may only be set for apply patches",
            ));
        }
        let body = crate::registry::codec::parse_body(body, yaml)?;
        match (&kind, &body) {
            (PatchType::Json, Value::Array(_)) => {}
            (PatchType::Json, _) => {
                return Err(ApiError::bad_request(
                    "the JSON patch must be an array of operations",
                ));
            }
            (_, Value::Object(_)) => {}
            _ => return Err(ApiError::bad_request("the patch must be a JSON object")),
        }
        Ok(Self { kind, body })
    }

    /// Whether this is a server-side apply (which creates a missing object).
    pub fn is_apply(&self) -> bool {
        matches!(self.kind, PatchType::Apply { .. })
    }

    /// The desired object: this patch applied to `current` (`Null` when there is none).
    pub fn apply_to(
        &self,
        current: &Value,
        def: Option<&ResourceDef>,
        _opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        if current.is_null() {
            return match &self.kind {
                PatchType::Apply { force, manager } => {
                    let schema = def.and_then(|d| {
                        schema::Schemas::builtin().for_kind(d.group, d.version, d.kind)
                    });
                    server_side_apply(None, &self.body, manager, *force, def, schema)
                }
                _ => Err(ApiError::not_found(
                    def.map(|d| d.group).unwrap_or_default(),
                    def.map(|d| d.resource).unwrap_or_default(),
                    "",
                )),
            };
        }
        // The patch is applied to the stored object without its resourceVersion, so a
        // resourceVersion in the result is one the client asked for (a precondition).
        let mut base = current.clone();
        if let Some(m) = base.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        let schema =
            def.and_then(|d| schema::Schemas::builtin().for_kind(d.group, d.version, d.kind));
        let failed = |e: patch::PatchError| {
            ApiError::invalid(
                "",
                "",
                "",
                vec![crate::error::FieldError::invalid(
                    "patch",
                    "",
                    &e.to_string(),
                )],
            )
        };
        match &self.kind {
            PatchType::Json => patch::json_patch(&base, &self.body).map_err(failed),
            PatchType::Merge => Ok(patch::merge_patch(&base, &self.body)),
            PatchType::Strategic => {
                patch::strategic_merge_patch(&base, &self.body, schema).map_err(failed)
            }
            PatchType::Apply { force, manager } => {
                server_side_apply(Some(&base), &self.body, manager, *force, def, schema)
            }
        }
    }
}

/// Server-side apply: merges the applied configuration into the live object, tracking field
/// ownership; conflicts with other managers are 409s naming the fields.
fn server_side_apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    def: Option<&ResourceDef>,
    schema: Option<schema::SchemaRef<'_>>,
) -> Result<Value, ApiError> {
    let api_version = def.map(ResourceDef::api_version).unwrap_or_default();
    let time = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second())
        .unwrap_or_else(|_| jiff::Timestamp::now())
        .to_string();
    let m = apply::Manager {
        name: manager,
        api_version: &api_version,
        subresource: None,
        time: &time,
    };
    apply::apply(live, applied, &m, force, schema).map_err(|e| match &e {
        apply::ApplyError::Conflicts(conflicts) => {
            let group = def.map(|d| d.group).unwrap_or_default();
            let resource = def.map(|d| d.resource).unwrap_or_default();
            let name = applied["metadata"]["name"].as_str().unwrap_or_default();
            let mut err = ApiError::conflict(group, resource, name, "");
            err.message = e.to_string();
            let mut details = err.details.take().map(|d| *d).unwrap_or_default();
            details.causes = Some(
                conflicts
                    .iter()
                    .map(
                        |c| k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusCause {
                            reason: Some("FieldManagerConflict".into()),
                            message: Some(c.message()),
                            field: Some(c.path.clone()),
                        },
                    )
                    .collect(),
            );
            err.details = Some(Box::new(details));
            err
        }
        apply::ApplyError::Invalid { .. } => ApiError::bad_request(e.to_string()),
    })
}
