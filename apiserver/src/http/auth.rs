//! The authentication and authorization APIs: SelfSubjectAccessReview and SubjectAccessReview
//! (`kubectl auth can-i`), SelfSubjectReview (`kubectl auth whoami`), and the TokenRequest
//! subresource of ServiceAccounts (`kubectl create token`).

use serde_json::{Value, json};

use super::AppState;
use crate::auth::{Attributes, Decision, UserInfo};
use crate::error::ApiError;

/// The attributes a review asks about (`spec.resourceAttributes` or
/// `spec.nonResourceAttributes`).
fn review_attributes(spec: &Value) -> Result<Attributes, ApiError> {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    if let Some(r) = spec.get("resourceAttributes").filter(|v| v.is_object()) {
        return Ok(Attributes {
            verb: s(&r["verb"]),
            resource_request: true,
            api_group: s(&r["group"]),
            resource: s(&r["resource"]),
            subresource: s(&r["subresource"]),
            namespace: s(&r["namespace"]),
            name: s(&r["name"]),
            path: String::new(),
        });
    }
    if let Some(n) = spec.get("nonResourceAttributes").filter(|v| v.is_object()) {
        return Ok(Attributes {
            verb: s(&n["verb"]),
            resource_request: false,
            path: s(&n["path"]),
            ..Default::default()
        });
    }
    Err(ApiError::invalid(
        "authorization.k8s.io",
        "SelfSubjectAccessReview",
        "",
        vec![crate::error::FieldError::required_msg(
            "spec.resourceAttributes",
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )],
    ))
}

async fn decide(st: &AppState, user: &UserInfo, a: &Attributes) -> Value {
    match st.authz.authorize(&st.api, user, a).await {
        Decision::Allow(reason) => json!({"allowed": true, "reason": reason}),
        Decision::Deny(reason) => json!({"allowed": false, "denied": true, "reason": reason}),
        Decision::NoOpinion => json!({"allowed": false}),
    }
}

/// `POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews`.
pub async fn self_subject_access_review(
    st: &AppState,
    user: &UserInfo,
    body: Value,
) -> Result<Value, ApiError> {
    let a = review_attributes(&body["spec"])?;
    let mut out = body;
    out["status"] = decide(st, user, &a).await;
    out["apiVersion"] = "authorization.k8s.io/v1".into();
    out["kind"] = "SelfSubjectAccessReview".into();
    out["metadata"]["creationTimestamp"] = Value::Null;
    Ok(out)
}

/// `POST /apis/authorization.k8s.io/v1/subjectaccessreviews`: the decision for the user the
/// spec names.
pub async fn subject_access_review(st: &AppState, body: Value) -> Result<Value, ApiError> {
    let spec = &body["spec"];
    let a = review_attributes(spec)?;
    let subject = UserInfo {
        username: spec["user"].as_str().unwrap_or_default().to_string(),
        uid: spec["uid"].as_str().unwrap_or_default().to_string(),
        groups: spec["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        extra: serde_json::from_value(spec["extra"].clone()).unwrap_or_default(),
    };
    if subject.username.is_empty() && subject.groups.is_empty() {
        return Err(ApiError::invalid(
            "authorization.k8s.io",
            "SubjectAccessReview",
            "",
            vec![crate::error::FieldError::required_msg(
                "spec.user",
                "at least one of user or group must be specified",
            )],
        ));
    }
    let mut out = body.clone();
    out["status"] = decide(st, &subject, &a).await;
    out["apiVersion"] = "authorization.k8s.io/v1".into();
    out["kind"] = "SubjectAccessReview".into();
    out["metadata"]["creationTimestamp"] = Value::Null;
    Ok(out)
}

/// `POST /apis/authentication.k8s.io/v1/selfsubjectreviews`: who the caller is.
pub fn self_subject_review(user: &UserInfo) -> Value {
    json!({
        "kind": "SelfSubjectReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "status": {"userInfo": user},
    })
}
