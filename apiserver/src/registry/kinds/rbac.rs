//! Roles, ClusterRoles, RoleBindings and ClusterRoleBindings (rbac.authorization.k8s.io/v1):
//! rule and reference validation, the immutable roleRef, table columns, and the escalation
//! check of Kubernetes — a user may write a role only with rules it holds itself (or with the
//! `escalate` verb), and bind a role only when it holds its rules (or has `bind` on it).

use async_trait::async_trait;
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use serde_json::Value;

use crate::auth::rbac::covers;
use crate::auth::{Attributes, Decision, MASTERS};
use crate::error::{ApiError, FieldError};
use crate::registry::{Admission, Api, Column, Object, Strategy, age, name};

const GROUP: &str = "rbac.authorization.k8s.io";

fn validate_rules(rules: Option<&Vec<PolicyRule>>, namespaced: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, r) in rules.into_iter().flatten().enumerate() {
        let f = |s: &str| format!("rules[{i}].{s}");
        if r.verbs.is_empty() {
            errs.push(FieldError::required_msg(
                f("verbs"),
                "verbs must contain at least one value",
            ));
        }
        let has_urls = r.non_resource_urls.as_ref().is_some_and(|u| !u.is_empty());
        if has_urls {
            if namespaced {
                errs.push(FieldError::invalid(
                    f("nonResourceURLs"),
                    r.non_resource_urls.clone().unwrap_or_default(),
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            }
            if r.api_groups.as_ref().is_some_and(|g| !g.is_empty())
                || r.resources.as_ref().is_some_and(|g| !g.is_empty())
            {
                errs.push(FieldError::invalid(
                    f("nonResourceURLs"),
                    r.non_resource_urls.clone().unwrap_or_default(),
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
            continue;
        }
        if r.api_groups.as_ref().is_none_or(Vec::is_empty) {
            errs.push(FieldError::required_msg(
                f("apiGroups"),
                "resource rules must supply at least one api group",
            ));
        }
        if r.resources.as_ref().is_none_or(Vec::is_empty) {
            errs.push(FieldError::required_msg(
                f("resources"),
                "resource rules must supply at least one resource",
            ));
        }
    }
    errs
}

fn validate_ref(r: &RoleRef, cluster: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if r.api_group != GROUP {
        errs.push(FieldError::not_supported(
            "roleRef.apiGroup",
            &r.api_group,
            &[GROUP],
        ));
    }
    let kinds: &[&str] = if cluster {
        &["ClusterRole"]
    } else {
        &["Role", "ClusterRole"]
    };
    if !kinds.contains(&r.kind.as_str()) {
        errs.push(FieldError::not_supported("roleRef.kind", &r.kind, kinds));
    }
    if r.name.is_empty() {
        errs.push(FieldError::required("roleRef.name"));
    }
    errs
}

fn validate_subjects(subjects: Option<&Vec<Subject>>, cluster: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, s) in subjects.into_iter().flatten().enumerate() {
        if s.name.is_empty() {
            errs.push(FieldError::required(format!("subjects[{i}].name")));
        }
        match s.kind.as_str() {
            "User" | "Group" => {}
            "ServiceAccount" => {
                if cluster && s.namespace.as_deref().is_none_or(str::is_empty) {
                    errs.push(FieldError::required(format!("subjects[{i}].namespace")));
                }
            }
            other => errs.push(FieldError::not_supported(
                format!("subjects[{i}].kind"),
                other,
                &["ServiceAccount", "User", "Group"],
            )),
        }
    }
    errs
}

/// Whether the writer may skip the escalation check (`escalate`/`bind` on the object).
async fn has_verb(
    api: &Api,
    adm_user: &crate::auth::UserInfo,
    verb: &str,
    resource: &str,
    ns: &str,
    name: &str,
) -> bool {
    if adm_user.in_group(MASTERS) {
        return true;
    }
    let a = Attributes {
        verb: verb.into(),
        resource_request: true,
        api_group: GROUP.into(),
        resource: resource.into(),
        namespace: ns.into(),
        name: name.into(),
        ..Default::default()
    };
    matches!(api.rbac.authorize(adm_user, &a), Decision::Allow(_))
}

/// The escalation check of a role write: every rule must be held by the writer.
async fn check_role<T: Object>(
    api: &Api,
    adm: &Admission<'_, T>,
    resource: &str,
    rules: Option<&Vec<PolicyRule>>,
) -> Result<(), ApiError> {
    let Some(user) = adm.user else {
        return Ok(());
    };
    let m = adm.obj.metadata();
    let ns = m.namespace.clone().unwrap_or_default();
    let obj_name = m.name.clone().unwrap_or_default();
    if has_verb(api, user, "escalate", resource, &ns, &obj_name).await {
        return Ok(());
    }
    let owned = api.rbac.rules_for(user, &ns);
    for r in rules.into_iter().flatten() {
        if let Err(missing) = covers(&owned, r) {
            return Err(ApiError::forbidden(format!(
                "{resource}.{GROUP} {obj_name:?} is forbidden: user {:?} (groups={:?}) is attempting to grant RBAC permissions not currently held:\n{missing}",
                user.username, user.groups
            )));
        }
    }
    Ok(())
}

/// The escalation check of a binding write: the writer must hold the role's rules.
async fn check_binding<T: Object>(
    api: &Api,
    adm: &Admission<'_, T>,
    resource: &str,
    role_ref: &RoleRef,
) -> Result<(), ApiError> {
    let Some(user) = adm.user else {
        return Ok(());
    };
    let m = adm.obj.metadata();
    let ns = m.namespace.clone().unwrap_or_default();
    let role_resource = if role_ref.kind == "Role" {
        "roles"
    } else {
        "clusterroles"
    };
    if has_verb(api, user, "bind", role_resource, &ns, &role_ref.name).await {
        return Ok(());
    }
    let rules = api
        .rbac
        .role_rules(&role_ref.kind, &ns, &role_ref.name)
        .unwrap_or_default();
    let owned = api.rbac.rules_for(user, &ns);
    for r in &rules {
        if let Err(missing) = covers(&owned, r) {
            return Err(ApiError::forbidden(format!(
                "{resource}.{GROUP} {:?} is forbidden: user {:?} (groups={:?}) is attempting to grant RBAC permissions not currently held:\n{missing}",
                m.name.clone().unwrap_or_default(),
                user.username,
                user.groups
            )));
        }
    }
    Ok(())
}

fn role_columns() -> Vec<Column> {
    vec![
        Column::NAME,
        Column::new(
            "Created At",
            "date",
            "CreationTimestamp is a timestamp representing the server time when this object was created.",
        ),
    ]
}

fn created_at<T: Object>(obj: &T) -> Value {
    obj.metadata()
        .creation_timestamp
        .as_ref()
        .map(|t| Value::String(t.0.to_string()))
        .unwrap_or(Value::Null)
}

fn binding_columns() -> Vec<Column> {
    vec![
        Column::NAME,
        Column::new(
            "Role",
            "string",
            "Role references the role this binding grants.",
        ),
        Column::AGE,
        Column::wide("Users", "string", "Users in the binding"),
        Column::wide("Groups", "string", "Groups in the binding"),
        Column::wide(
            "ServiceAccounts",
            "string",
            "ServiceAccounts in the binding",
        ),
    ]
}

fn binding_cells<T: Object>(
    obj: &T,
    role_ref: &RoleRef,
    subjects: Option<&Vec<Subject>>,
) -> Vec<Value> {
    let of = |kind: &str| -> Value {
        let names: Vec<String> = subjects
            .into_iter()
            .flatten()
            .filter(|s| s.kind == kind)
            .map(|s| match (&s.namespace, kind) {
                (Some(ns), "ServiceAccount") => format!("{ns}/{}", s.name),
                _ => s.name.clone(),
            })
            .collect();
        Value::String(names.join(", "))
    };
    vec![
        Value::String(name(obj)),
        Value::String(format!("{}/{}", role_ref.kind, role_ref.name)),
        age(obj),
        of("User"),
        of("Group"),
        of("ServiceAccount"),
    ]
}

/// Role behaviour.
pub struct RoleStrategy;

#[async_trait]
impl Strategy<Role> for RoleStrategy {
    fn validate(&self, r: &Role) -> Vec<FieldError> {
        validate_rules(r.rules.as_ref(), true)
    }

    async fn admit(&self, api: &Api, adm: &mut Admission<'_, Role>) -> Result<(), ApiError> {
        let rules = adm.obj.rules.clone();
        check_role(api, adm, "roles", rules.as_ref()).await
    }

    fn columns(&self) -> Vec<Column> {
        role_columns()
    }

    fn cells(&self, r: &Role) -> Vec<Value> {
        vec![Value::String(name(r)), created_at(r)]
    }
}

/// ClusterRole behaviour.
pub struct ClusterRoleStrategy;

#[async_trait]
impl Strategy<ClusterRole> for ClusterRoleStrategy {
    fn validate(&self, r: &ClusterRole) -> Vec<FieldError> {
        validate_rules(r.rules.as_ref(), false)
    }

    async fn admit(&self, api: &Api, adm: &mut Admission<'_, ClusterRole>) -> Result<(), ApiError> {
        let rules = adm.obj.rules.clone();
        check_role(api, adm, "clusterroles", rules.as_ref()).await
    }

    fn columns(&self) -> Vec<Column> {
        role_columns()
    }

    fn cells(&self, r: &ClusterRole) -> Vec<Value> {
        vec![Value::String(name(r)), created_at(r)]
    }
}

/// RoleBinding behaviour.
pub struct RoleBindingStrategy;

#[async_trait]
impl Strategy<RoleBinding> for RoleBindingStrategy {
    fn validate(&self, b: &RoleBinding) -> Vec<FieldError> {
        let mut errs = validate_ref(&b.role_ref, false);
        errs.extend(validate_subjects(b.subjects.as_ref(), false));
        errs
    }

    fn validate_update(&self, new: &RoleBinding, old: &RoleBinding) -> Vec<FieldError> {
        if new.role_ref != old.role_ref {
            return vec![FieldError::invalid(
                "roleRef",
                &new.role_ref.name,
                "cannot change roleRef",
            )];
        }
        Vec::new()
    }

    async fn admit(&self, api: &Api, adm: &mut Admission<'_, RoleBinding>) -> Result<(), ApiError> {
        let role_ref = adm.obj.role_ref.clone();
        check_binding(api, adm, "rolebindings", &role_ref).await
    }

    fn columns(&self) -> Vec<Column> {
        binding_columns()
    }

    fn cells(&self, b: &RoleBinding) -> Vec<Value> {
        binding_cells(b, &b.role_ref, b.subjects.as_ref())
    }
}

/// ClusterRoleBinding behaviour.
pub struct ClusterRoleBindingStrategy;

#[async_trait]
impl Strategy<ClusterRoleBinding> for ClusterRoleBindingStrategy {
    fn validate(&self, b: &ClusterRoleBinding) -> Vec<FieldError> {
        let mut errs = validate_ref(&b.role_ref, true);
        errs.extend(validate_subjects(b.subjects.as_ref(), true));
        errs
    }

    fn validate_update(
        &self,
        new: &ClusterRoleBinding,
        old: &ClusterRoleBinding,
    ) -> Vec<FieldError> {
        if new.role_ref != old.role_ref {
            return vec![FieldError::invalid(
                "roleRef",
                &new.role_ref.name,
                "cannot change roleRef",
            )];
        }
        Vec::new()
    }

    async fn admit(
        &self,
        api: &Api,
        adm: &mut Admission<'_, ClusterRoleBinding>,
    ) -> Result<(), ApiError> {
        let role_ref = adm.obj.role_ref.clone();
        check_binding(api, adm, "clusterrolebindings", &role_ref).await
    }

    fn columns(&self) -> Vec<Column> {
        binding_columns()
    }

    fn cells(&self, b: &ClusterRoleBinding) -> Vec<Value> {
        binding_cells(b, &b.role_ref, b.subjects.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        let bad: Vec<PolicyRule> = serde_json::from_value(serde_json::json!([
            {"verbs": []},
            {"verbs": ["get"], "nonResourceURLs": ["/x"], "resources": ["pods"]}
        ]))
        .unwrap();
        let errs = validate_rules(Some(&bad), true);
        assert!(errs.iter().any(|e| e.field == "rules[0].verbs"));
        assert!(errs.iter().any(|e| e.field == "rules[0].apiGroups"));
        assert!(errs.iter().any(|e| e.field == "rules[1].nonResourceURLs"));
        let r = RoleRef {
            api_group: GROUP.into(),
            kind: "Role".into(),
            name: "x".into(),
        };
        assert!(validate_ref(&r, false).is_empty());
        assert_eq!(validate_ref(&r, true).len(), 1);
        let subjects = vec![Subject {
            kind: "ServiceAccount".into(),
            name: "bot".into(),
            ..Default::default()
        }];
        assert!(validate_subjects(Some(&subjects), false).is_empty());
        assert_eq!(validate_subjects(Some(&subjects), true).len(), 1);
    }
}
