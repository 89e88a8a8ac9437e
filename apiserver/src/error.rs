//! API errors: every failure the API server returns is a Kubernetes `Status` object with the
//! HTTP code and `reason` Kubernetes uses (NotFound, AlreadyExists, Conflict, Invalid, …).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusCause, StatusDetails};

use crate::storage::StorageError;

/// One invalid field, for `422 Invalid` responses (`details.causes`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// `FieldValueRequired`, `FieldValueInvalid`, `FieldValueNotSupported`,
    /// `FieldValueDuplicate`, `FieldValueForbidden`, `FieldValueTooLong`.
    pub reason: &'static str,
    /// The field path, e.g. `spec.containers[0].image`.
    pub field: String,
    /// The message, e.g. `Required value`.
    pub message: String,
}

impl FieldError {
    /// `Required value`.
    pub fn required(field: impl Into<String>) -> Self {
        Self::required_msg(field, "")
    }

    /// `Required value: <detail>`.
    pub fn required_msg(field: impl Into<String>, detail: &str) -> Self {
        let message = if detail.is_empty() {
            "Required value".to_string()
        } else {
            format!("Required value: {detail}")
        };
        Self {
            reason: "FieldValueRequired",
            field: field.into(),
            message,
        }
    }

    /// `Invalid value: <value>: <detail>`.
    pub fn invalid(field: impl Into<String>, value: impl std::fmt::Debug, detail: &str) -> Self {
        Self {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: format!("Invalid value: {value:?}: {detail}"),
        }
    }

    /// `Unsupported value: <value>: supported values: …`.
    pub fn not_supported(
        field: impl Into<String>,
        value: impl std::fmt::Debug,
        supported: &[&str],
    ) -> Self {
        let list = supported
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        Self {
            reason: "FieldValueNotSupported",
            field: field.into(),
            message: format!("Unsupported value: {value:?}: supported values: {list}"),
        }
    }

    /// `Duplicate value: <value>`.
    pub fn duplicate(field: impl Into<String>, value: impl std::fmt::Debug) -> Self {
        Self {
            reason: "FieldValueDuplicate",
            field: field.into(),
            message: format!("Duplicate value: {value:?}"),
        }
    }

    /// `Forbidden: <detail>`.
    pub fn forbidden(field: impl Into<String>, detail: &str) -> Self {
        Self {
            reason: "FieldValueForbidden",
            field: field.into(),
            message: format!("Forbidden: {detail}"),
        }
    }

    /// A field that may not change: `Invalid value: …: field is immutable`.
    pub fn immutable(field: impl Into<String>, value: impl std::fmt::Debug) -> Self {
        Self::invalid(field, value, "field is immutable")
    }

    fn describe(&self) -> String {
        format!("{}: {}", self.field, self.message)
    }
}

/// An error answered as a Kubernetes `Status`.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// Kubernetes' machine-readable reason.
    pub reason: &'static str,
    /// Human-readable message.
    pub message: String,
    /// Details: the object concerned and causes.
    pub details: Option<Box<StatusDetails>>,
    /// Seconds a client should wait before retrying (sets `Retry-After`).
    pub retry_after: Option<u32>,
}

fn details(group: &str, kind: &str, name: &str) -> Option<Box<StatusDetails>> {
    Some(Box::new(StatusDetails {
        group: (!group.is_empty()).then(|| group.to_string()),
        kind: (!kind.is_empty()).then(|| kind.to_string()),
        name: (!name.is_empty()).then(|| name.to_string()),
        ..Default::default()
    }))
}

/// `pods "web"` or `deployments.apps "web"`: how Kubernetes names an object in messages.
pub fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    /// 404 NotFound for an object.
    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        let mut e = Self::new(
            404,
            "NotFound",
            format!("{} {name:?} not found", qualified(group, resource)),
        );
        e.details = details(group, resource, name);
        e
    }

    /// 404 NotFound for a path that names nothing served. Its `details` are empty, not
    /// absent, as Kubernetes sends them: kubectl reads them to tell a missing subresource
    /// from a missing object (`kubectl debug` crashes on a 404 without them).
    pub fn no_route(path: &str) -> Self {
        let mut e = Self::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        );
        e.details = Some(Box::default());
        e
    }

    /// 409 AlreadyExists.
    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        let mut e = Self::new(
            409,
            "AlreadyExists",
            format!("{} {name:?} already exists", qualified(group, resource)),
        );
        e.details = details(group, resource, name);
        e
    }

    /// 409 Conflict on a stale resourceVersion or a failed precondition.
    pub fn conflict(group: &str, resource: &str, name: &str, why: &str) -> Self {
        let mut e = Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} {name:?}: {why}",
                qualified(group, resource)
            ),
        );
        e.details = details(group, resource, name);
        e
    }

    /// The standard optimistic-concurrency conflict message.
    pub fn stale(group: &str, resource: &str, name: &str) -> Self {
        Self::conflict(
            group,
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 Invalid with field causes.
    pub fn invalid(group: &str, kind: &str, name: &str, errors: Vec<FieldError>) -> Self {
        let summary = match errors.as_slice() {
            [one] => one.describe(),
            many => format!(
                "[{}]",
                many.iter()
                    .map(FieldError::describe)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let mut e = Self::new(
            422,
            "Invalid",
            format!("{} {name:?} is invalid: {summary}", qualified(group, kind)),
        );
        let mut d = details(group, kind, name).unwrap_or_default();
        d.causes = Some(
            errors
                .into_iter()
                .map(|f| StatusCause {
                    field: Some(f.field),
                    message: Some(f.message),
                    reason: Some(f.reason.to_string()),
                })
                .collect(),
        );
        e.details = Some(d);
        e
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 401 Unauthorized: no credentials, or credentials that do not authenticate.
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// 403 Forbidden.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    /// 403 Forbidden for the object `name` of `group`/`resource`, as admission answers:
    /// `pods "x" is forbidden: <why>`, with the object in the details.
    pub fn forbidden_object(group: &str, resource: &str, name: &str, why: &str) -> Self {
        let mut e = Self::forbidden(format!(
            "{} {name:?} is forbidden: {why}",
            qualified(group, resource)
        ));
        e.details = Some(Box::new(StatusDetails {
            group: (!group.is_empty()).then(|| group.to_string()),
            kind: Some(resource.to_string()),
            name: (!name.is_empty()).then(|| name.to_string()),
            ..Default::default()
        }));
        e
    }

    /// 429 TooManyRequests, with `Retry-After` seconds.
    pub fn too_many_requests(message: impl Into<String>, retry_after: u32) -> Self {
        let mut e = Self::new(429, "TooManyRequests", message);
        e.retry_after = Some(retry_after);
        e
    }

    /// 405 MethodNotAllowed for a verb a resource does not support.
    pub fn method_not_supported(resource: &str, verb: &str) -> Self {
        let mut e = Self::new(
            405,
            "MethodNotAllowed",
            format!("{verb} is not supported on resources of kind {resource:?}"),
        );
        e.details = details("", resource, "");
        e
    }

    /// 410 Gone (reason Expired): a resourceVersion or continue token that was compacted.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 413 RequestEntityTooLarge.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {limit}"),
        )
    }

    /// 415 UnsupportedMediaType.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml (got {content_type:?})"
            ),
        )
    }

    /// 406 NotAcceptable.
    pub fn not_acceptable(accept: &str) -> Self {
        Self::new(
            406,
            "NotAcceptable",
            format!(
                "only the following media types are accepted: application/json, application/yaml, application/json;as=Table;v=v1;g=meta.k8s.io (got {accept:?})"
            ),
        )
    }

    /// 500 InternalError.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    /// 503 ServiceUnavailable (the storage backend is down).
    pub fn unavailable(message: impl Into<String>) -> Self {
        let mut e = Self::new(503, "ServiceUnavailable", message);
        e.retry_after = Some(1);
        e
    }

    /// 504 Timeout.
    pub fn timeout(message: impl Into<String>) -> Self {
        let mut e = Self::new(504, "Timeout", message);
        e.retry_after = Some(1);
        e
    }

    /// Maps a storage error about one object (`name` may be empty for collections).
    pub fn from_storage(err: StorageError, group: &str, resource: &str, name: &str) -> Self {
        match err {
            StorageError::NotFound { .. } => Self::not_found(group, resource, name),
            StorageError::AlreadyExists { .. } => Self::already_exists(group, resource, name),
            StorageError::Conflict { message, .. } if message.contains("uid") => {
                Self::conflict(group, resource, name, &message)
            }
            StorageError::Conflict { .. } => Self::stale(group, resource, name),
            StorageError::Compacted {
                requested,
                compacted,
            } => Self::expired(format!(
                "too old resource version: {requested} ({compacted})"
            )),
            StorageError::FutureRevision { requested, current } => {
                let mut e = Self::timeout(format!(
                    "Too large resource version: {requested}, current: {current}"
                ));
                e.details = Some(Box::new(StatusDetails {
                    causes: Some(vec![StatusCause {
                        reason: Some("ResourceVersionTooLarge".into()),
                        message: Some(format!(
                            "Too large resource version: {requested}, current: {current}"
                        )),
                        field: None,
                    }]),
                    retry_after_seconds: Some(1),
                    ..Default::default()
                }));
                e
            }
            StorageError::Unavailable(m) => {
                Self::unavailable(format!("storage is unavailable: {m}"))
            }
            StorageError::WatchClosed(m) => Self::unavailable(m),
            e @ (StorageError::File { .. } | StorageError::Internal(_)) => {
                Self::internal(e.to_string())
            }
        }
    }

    /// The `Status` object.
    pub fn status(&self) -> Status {
        Status {
            status: Some("Failure".into()),
            message: Some(self.message.clone()),
            reason: Some(self.reason.into()),
            details: self.details.as_deref().cloned(),
            code: Some(i32::from(self.code)),
            ..Default::default()
        }
    }

    /// The `Status` as JSON, with `kind` and `apiVersion`.
    pub fn status_json(&self) -> serde_json::Value {
        status_value(&self.status())
    }
}

/// A `Status` as JSON with `kind: Status` and `apiVersion: v1`.
pub fn status_value(status: &Status) -> serde_json::Value {
    let mut v = serde_json::to_value(status).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("kind".into(), "Status".into());
        o.insert("apiVersion".into(), "v1".into());
        o.entry("metadata").or_insert_with(|| serde_json::json!({}));
    }
    v
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self.status_json()).unwrap_or_default();
        let mut resp = (
            code,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
        if let Some(secs) = self.retry_after
            && let Ok(v) = secs.to_string().parse()
        {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, v);
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_lists_causes() {
        let e = ApiError::invalid(
            "apps",
            "Deployment",
            "web",
            vec![
                FieldError::required("spec.selector"),
                FieldError::invalid("metadata.name", "Web", "must be lowercase"),
            ],
        );
        assert_eq!(e.code, 422);
        let s = e.status_json();
        assert_eq!(s["reason"], "Invalid");
        assert_eq!(s["kind"], "Status");
        assert_eq!(s["details"]["causes"].as_array().unwrap().len(), 2);
        assert!(
            e.message
                .starts_with("Deployment.apps \"web\" is invalid: [")
        );
    }

    #[test]
    fn not_found_names_the_object() {
        let e = ApiError::not_found("", "pods", "x");
        assert_eq!(e.message, "pods \"x\" not found");
        assert_eq!(e.status_json()["details"]["kind"], "pods");
    }

    #[test]
    fn an_unserved_path_has_empty_details() {
        let s = ApiError::no_route("/api/v1/namespaces/d/pods/p/nothing").status_json();
        assert_eq!(s["reason"], "NotFound");
        assert_eq!(s["details"], serde_json::json!({}));
    }
}
