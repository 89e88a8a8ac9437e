//! The default ClusterRoles and ClusterRoleBindings, created at every start when missing and
//! brought back to their defaults when they carry `rbac.authorization.kubernetes.io/autoupdate:
//! "true"` (as Kubernetes' RBAC bootstrap does): cluster-admin, admin, edit, view, the
//! discovery and basic-user roles every authenticated user has, and one role per component
//! identity (kubelets, scheduler, controller manager, proxy, DNS).

use serde_json::{Value, json};

use crate::error::ApiError;
use crate::registry::store::Sub;
use crate::registry::{Api, WriteOptions};
use crate::resources;

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
}

fn urls(paths: &[&str], verbs: &[&str]) -> Value {
    json!({"nonResourceURLs": paths, "verbs": verbs})
}

/// Namespaced resources users work with, by group (without secrets and RBAC).
const WORKLOADS: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "pods",
            "pods/attach",
            "pods/exec",
            "pods/portforward",
            "pods/proxy",
            "pods/log",
            "services",
            "services/proxy",
            "endpoints",
            "configmaps",
            "persistentvolumeclaims",
            "serviceaccounts",
            "events",
            "replicationcontrollers",
            "replicationcontrollers/scale",
        ],
    ),
    (
        "apps",
        &[
            "deployments",
            "deployments/scale",
            "deployments/rollback",
            "replicasets",
            "replicasets/scale",
            "statefulsets",
            "statefulsets/scale",
            "daemonsets",
        ],
    ),
    ("batch", &["jobs", "cronjobs"]),
    ("discovery.k8s.io", &["endpointslices"]),
    ("events.k8s.io", &["events"]),
    ("coordination.k8s.io", &["leases"]),
];

/// Status subresources readers see.
const STATUS: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "pods/status",
            "services/status",
            "persistentvolumeclaims/status",
            "namespaces/status",
        ],
    ),
    (
        "apps",
        &[
            "deployments/status",
            "replicasets/status",
            "statefulsets/status",
            "daemonsets/status",
        ],
    ),
    ("batch", &["jobs/status"]),
];

fn view_rules() -> Vec<Value> {
    let mut rules: Vec<Value> = WORKLOADS.iter().map(|(g, r)| rule(&[g], r, READ)).collect();
    rules.extend(STATUS.iter().map(|(g, r)| rule(&[g], r, READ)));
    rules.push(rule(&[""], &["namespaces"], READ));
    rules
}

fn edit_rules() -> Vec<Value> {
    let mut rules = view_rules();
    rules.extend(WORKLOADS.iter().map(|(g, r)| rule(&[g], r, WRITE)));
    rules.push(rule(&[""], &["secrets"], ALL_VERBS));
    rules.push(rule(&[""], &["pods/eviction"], &["create"]));
    rules.push(rule(&[""], &["serviceaccounts/token"], &["create"]));
    rules.push(rule(&[""], &["serviceaccounts"], &["impersonate"]));
    rules
}

fn admin_rules() -> Vec<Value> {
    let mut rules = edit_rules();
    rules.push(rule(
        &["rbac.authorization.k8s.io"],
        &["roles", "rolebindings"],
        ALL_VERBS,
    ));
    rules.push(rule(
        &["authorization.k8s.io"],
        &["localsubjectaccessreviews"],
        &["create"],
    ));
    rules
}

fn events_rule() -> Vec<Value> {
    vec![
        rule(&[""], &["events"], &["create", "patch", "update"]),
        rule(
            &["events.k8s.io"],
            &["events"],
            &["create", "patch", "update"],
        ),
    ]
}

/// The default ClusterRoles: (name, rules).
pub fn cluster_roles() -> Vec<(&'static str, Vec<Value>)> {
    let discovery_paths = &[
        "/api",
        "/api/*",
        "/apis",
        "/apis/*",
        "/openapi",
        "/openapi/*",
        "/version",
        "/version/",
        "/healthz",
        "/livez",
        "/readyz",
    ];
    let mut node = vec![
        rule(
            &[""],
            &["nodes"],
            &[
                "get", "list", "watch", "create", "update", "patch", "delete",
            ],
        ),
        rule(&[""], &["nodes/status"], &["patch", "update"]),
        rule(
            &[""],
            &["pods"],
            &["get", "list", "watch", "create", "delete"],
        ),
        rule(&[""], &["pods/status"], &["patch", "update"]),
        rule(&[""], &["pods/eviction"], &["create"]),
        rule(&[""], &["services", "endpoints"], READ),
        rule(
            &[""],
            &["secrets", "configmaps", "persistentvolumeclaims"],
            &["get"],
        ),
        rule(&[""], &["persistentvolumes"], &["get"]),
        rule(&[""], &["serviceaccounts/token"], &["create"]),
        rule(
            &["coordination.k8s.io"],
            &["leases"],
            &["get", "create", "update", "patch", "delete"],
        ),
        rule(&["discovery.k8s.io"], &["endpointslices"], READ),
    ];
    node.extend(events_rule());
    let mut scheduler = vec![
        rule(&[""], &["pods"], &["get", "list", "watch", "delete"]),
        rule(&[""], &["pods/binding"], &["create"]),
        rule(&[""], &["pods/status"], &["patch", "update"]),
        rule(
            &[""],
            &[
                "nodes",
                "namespaces",
                "services",
                "persistentvolumes",
                "persistentvolumeclaims",
                "replicationcontrollers",
                "configmaps",
            ],
            READ,
        ),
        rule(&["apps"], &["replicasets", "statefulsets"], READ),
        rule(&["policy"], &["poddisruptionbudgets"], READ),
        rule(
            &["coordination.k8s.io"],
            &["leases"],
            &["get", "list", "watch", "create", "update", "patch"],
        ),
    ];
    scheduler.extend(events_rule());
    // rkube's controller manager runs every controller under its own identity (Kubernetes can
    // use one ServiceAccount per controller instead); the namespace controller and the garbage
    // collector act on every kind, so the role spans them.
    let controller_manager = vec![
        rule(&["*"], &["*"], ALL_VERBS),
        urls(&["/healthz", "/livez", "/readyz"], &["get"]),
    ];
    let mut proxy = vec![
        rule(&[""], &["services", "endpoints", "nodes"], READ),
        rule(&["discovery.k8s.io"], &["endpointslices"], READ),
    ];
    proxy.extend(events_rule());
    let dns = vec![
        rule(
            &[""],
            &["services", "endpoints", "namespaces", "pods"],
            &["list", "watch"],
        ),
        rule(
            &["discovery.k8s.io"],
            &["endpointslices"],
            &["list", "watch"],
        ),
    ];
    vec![
        (
            "cluster-admin",
            vec![rule(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])],
        ),
        ("admin", admin_rules()),
        ("edit", edit_rules()),
        ("view", view_rules()),
        (
            "system:basic-user",
            vec![
                rule(
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                    &["create"],
                ),
                rule(
                    &["authentication.k8s.io"],
                    &["selfsubjectreviews"],
                    &["create"],
                ),
            ],
        ),
        ("system:discovery", vec![urls(discovery_paths, &["get"])]),
        (
            "system:public-info-viewer",
            vec![urls(
                &["/healthz", "/livez", "/readyz", "/version", "/version/"],
                &["get"],
            )],
        ),
        (
            "system:monitoring",
            vec![urls(
                &[
                    "/metrics",
                    "/healthz",
                    "/healthz/*",
                    "/livez",
                    "/livez/*",
                    "/readyz",
                    "/readyz/*",
                ],
                &["get"],
            )],
        ),
        ("system:node", node),
        ("system:kube-scheduler", scheduler),
        ("system:kube-controller-manager", controller_manager),
        ("system:kube-proxy", proxy),
        ("system:kube-dns", dns),
    ]
}

/// The default ClusterRoleBindings: (name, role, subjects).
pub fn cluster_role_bindings() -> Vec<(&'static str, &'static str, Vec<Value>)> {
    let group =
        |n: &str| json!({"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": n});
    let user =
        |n: &str| json!({"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": n});
    vec![
        (
            "cluster-admin",
            "cluster-admin",
            vec![group("system:masters")],
        ),
        (
            "system:basic-user",
            "system:basic-user",
            vec![group("system:authenticated")],
        ),
        (
            "system:discovery",
            "system:discovery",
            vec![group("system:authenticated")],
        ),
        (
            "system:public-info-viewer",
            "system:public-info-viewer",
            vec![
                group("system:authenticated"),
                group("system:unauthenticated"),
            ],
        ),
        (
            "system:monitoring",
            "system:monitoring",
            vec![group("system:monitoring")],
        ),
        ("system:node", "system:node", vec![group("system:nodes")]),
        (
            "system:kube-scheduler",
            "system:kube-scheduler",
            vec![user("system:kube-scheduler")],
        ),
        (
            "system:kube-controller-manager",
            "system:kube-controller-manager",
            vec![user("system:kube-controller-manager")],
        ),
        (
            "system:kube-proxy",
            "system:kube-proxy",
            vec![user("system:kube-proxy")],
        ),
        (
            "system:kube-dns",
            "system:kube-dns",
            vec![
                user("system:kube-dns"),
                json!({"kind": "ServiceAccount", "name": "kube-dns", "namespace": "kube-system"}),
            ],
        ),
    ]
}

fn meta(name: &str) -> Value {
    json!({
        "name": name,
        "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
        "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
    })
}

/// Creates the default roles and bindings that are missing; resets those marked autoupdate.
pub async fn ensure(api: &Api) -> Result<(), ApiError> {
    let mut wanted = Vec::new();
    for (name, rules) in cluster_roles() {
        wanted.push((
            &resources::CLUSTERROLES,
            name,
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                   "metadata": meta(name), "rules": rules}),
            "rules",
        ));
    }
    for (name, role, subjects) in cluster_role_bindings() {
        wanted.push((
            &resources::CLUSTERROLEBINDINGS,
            name,
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                   "metadata": meta(name), "subjects": subjects,
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role}}),
            "subjects",
        ));
    }
    let opts = WriteOptions {
        field_manager: Some("rkube-apiserver".into()),
        ..Default::default()
    };
    for (def, name, body, field) in wanted {
        let kind = api
            .kind(def)
            .ok_or_else(|| ApiError::internal(format!("{} not served", def.resource)))?;
        match kind.create(api, None, body.clone(), &opts).await {
            Ok(_) => tracing::debug!(name, resource = def.resource, "created RBAC default"),
            Err(e) if e.reason == "AlreadyExists" => {
                let desired = body[field].clone();
                let f = move |cur: &Value| -> Result<Value, ApiError> {
                    let mut next = cur.clone();
                    let auto = cur["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"]
                        == "true";
                    if auto {
                        next[field] = desired.clone();
                    }
                    Ok(next)
                };
                kind.update(api, None, name, Sub::Main, &opts, &f).await?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Attributes;
    use crate::auth::rbac::rule_allows;
    use k8s_openapi::api::rbac::v1::PolicyRule;

    fn rules(name: &str) -> Vec<PolicyRule> {
        cluster_roles()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, r)| serde_json::from_value(Value::Array(r)).unwrap())
            .unwrap()
    }

    fn allows(name: &str, verb: &str, group: &str, resource: &str) -> bool {
        let a = Attributes {
            verb: verb.into(),
            resource_request: true,
            api_group: group.into(),
            resource: resource.into(),
            namespace: "default".into(),
            ..Default::default()
        };
        rules(name).iter().any(|r| rule_allows(r, &a))
    }

    #[test]
    fn default_roles_grant_what_their_names_say() {
        assert!(allows("view", "list", "", "pods"));
        assert!(!allows("view", "create", "", "pods"));
        assert!(!allows("view", "get", "", "secrets"));
        assert!(allows("edit", "create", "apps", "deployments"));
        assert!(allows("edit", "get", "", "secrets"));
        assert!(!allows(
            "edit",
            "create",
            "rbac.authorization.k8s.io",
            "rolebindings"
        ));
        assert!(allows(
            "admin",
            "create",
            "rbac.authorization.k8s.io",
            "rolebindings"
        ));
        assert!(allows("cluster-admin", "delete", "anything", "at-all"));
        assert!(allows(
            "system:kube-proxy",
            "watch",
            "discovery.k8s.io",
            "endpointslices"
        ));
        assert!(!allows("system:kube-proxy", "create", "", "pods"));
        let bindings = cluster_role_bindings();
        let roles: Vec<&str> = cluster_roles().iter().map(|(n, _)| *n).collect();
        for (_, role, _) in &bindings {
            assert!(roles.contains(role), "{role}");
        }
    }
}
