//! The authentication and authorization APIs: SelfSubjectAccessReview and SubjectAccessReview
//! (`kubectl auth can-i`), SelfSubjectRulesReview (`kubectl auth can-i --list`),
//! SelfSubjectReview (`kubectl auth whoami`), TokenReview (whom a bearer token authenticates:
//! kubelets authenticate their clients' tokens with it); the TokenRequest subresource of
//! ServiceAccounts (`kubectl create token`) is served by [`crate::auth::serviceaccount`].

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

/// `POST /apis/authorization.k8s.io/v1/selfsubjectrulesreviews`: the RBAC rules the caller
/// holds in `spec.namespace` (cluster-wide ones included).
pub fn self_subject_rules_review(st: &AppState, user: &UserInfo, body: Value) -> Value {
    let ns = body["spec"]["namespace"].as_str().unwrap_or_default();
    let rules = if user.in_group(crate::auth::MASTERS) {
        serde_json::from_value(json!([
            {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
            {"verbs": ["*"], "nonResourceURLs": ["*"]}
        ]))
        .unwrap_or_default()
    } else {
        st.authz.rbac.rules_for(user, ns)
    };
    let list = |v: &Option<Vec<String>>| json!(v.clone().unwrap_or_default());
    let mut resource_rules = Vec::new();
    let mut non_resource_rules = Vec::new();
    for r in &rules {
        if r.non_resource_urls.as_ref().is_some_and(|u| !u.is_empty()) {
            non_resource_rules
                .push(json!({"verbs": r.verbs, "nonResourceURLs": list(&r.non_resource_urls)}));
        } else {
            let mut rr = json!({"verbs": r.verbs, "apiGroups": list(&r.api_groups),
                                "resources": list(&r.resources)});
            if r.resource_names.as_ref().is_some_and(|n| !n.is_empty()) {
                rr["resourceNames"] = list(&r.resource_names);
            }
            resource_rules.push(rr);
        }
    }
    let mut out = body;
    out["apiVersion"] = "authorization.k8s.io/v1".into();
    out["kind"] = "SelfSubjectRulesReview".into();
    out["metadata"]["creationTimestamp"] = Value::Null;
    out["status"] = json!({"resourceRules": resource_rules, "nonResourceRules": non_resource_rules,
                           "incomplete": false});
    out
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

/// `POST /apis/authentication.k8s.io/v1/tokenreviews`: whether `spec.token` authenticates, and
/// as whom (`status.user`); a token that does not is `authenticated: false` with the reason in
/// `status.error`, as Kubernetes answers.
pub async fn token_review(st: &AppState, body: Value) -> Result<Value, ApiError> {
    let token = body["spec"]["token"].as_str().unwrap_or_default().trim();
    if token.is_empty() {
        return Err(ApiError::invalid(
            "authentication.k8s.io",
            "TokenReview",
            "",
            vec![crate::error::FieldError::required_msg(
                "spec.token",
                "token must be specified",
            )],
        ));
    }
    let status = match st.authn.authenticate_token(&st.api, token).await {
        Ok(user) => {
            let mut status = json!({"authenticated": true, "user": &*user});
            if let Some(aud) = body["spec"]["audiences"]
                .as_array()
                .filter(|a| !a.is_empty())
            {
                status["audiences"] = Value::Array(aud.clone());
            }
            status
        }
        Err(e) => json!({"authenticated": false, "user": {}, "error": e.to_string()}),
    };
    let mut out = body;
    out["apiVersion"] = "authentication.k8s.io/v1".into();
    out["kind"] = "TokenReview".into();
    out["metadata"]["creationTimestamp"] = Value::Null;
    out["status"] = status;
    Ok(out)
}
