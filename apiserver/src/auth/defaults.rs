//! The default ClusterRoles and ClusterRoleBindings, created at every start when missing and
//! brought back to their defaults when they carry `rbac.authorization.kubernetes.io/autoupdate:
//! "true"` (as Kubernetes' RBAC bootstrap does): cluster-admin, admin, edit, view, the
//! discovery and basic-user roles every authenticated user has, and one role per component
//! identity (kubelets, scheduler, controller manager, proxy, DNS, the API server's kubelet
//! client), and what joining nodes need: bootstrap tokens (group `system:bootstrappers`) may
//! request certificates and have node client certificates approved, nodes have theirs renewed.

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

fn named(groups: &[&str], resources: &[&str], verbs: &[&str], names: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs, "resourceNames": names})
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
    ("policy", &["poddisruptionbudgets"]),
    ("networking.k8s.io", &["ingresses", "networkpolicies"]),
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
    ("batch", &["jobs/status", "cronjobs/status"]),
    ("policy", &["poddisruptionbudgets/status"]),
    ("networking.k8s.io", &["ingresses/status"]),
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
    let mut roles = vec![
        ("system:node", node_rules()),
        ("system:node-proxier", node_proxier_rules()),
        ("system:kubelet-api-admin", kubelet_api_admin_rules()),
        ("system:kube-scheduler", scheduler_rules()),
        ("system:volume-scheduler", volume_scheduler_rules()),
        ("system:kube-controller-manager", controller_manager_rules()),
        ("system:kube-dns", dns_rules()),
    ];
    roles.extend(controller_roles());
    roles.extend(certificate_roles());
    let mut all = vec![
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
    ];
    all.extend(roles);
    all
}

// The component roles below follow Kubernetes' RBAC bootstrap policy
// (plugin/pkg/auth/authorizer/rbac/bootstrappolicy: policy.go and controller_policy.go),
// including rules for kinds rkube does not serve, so that what a component may do is what it
// may do in Kubernetes.

const COORDINATION: &str = "coordination.k8s.io";

/// `system:node`: what a kubelet may do; the Node authorizer narrows it to its own Node,
/// Lease, pods and the objects they use ([`super::node`]).
fn node_rules() -> Vec<Value> {
    vec![
        rule(&["authentication.k8s.io"], &["tokenreviews"], &["create"]),
        rule(
            &["authorization.k8s.io"],
            &["subjectaccessreviews", "localsubjectaccessreviews"],
            &["create"],
        ),
        // Service environment variables.
        rule(&[""], &["services"], READ),
        // Registration and status.
        rule(&[""], &["nodes"], &["create", "get", "list", "watch"]),
        rule(&[""], &["nodes/status"], &["update", "patch"]),
        rule(&[""], &["nodes"], &["update", "patch"]),
        rule(&[""], &["events"], &["create", "update", "patch"]),
        rule(&[""], &["pods"], READ),
        // Mirror pods, and deleting pods once they have terminated.
        rule(&[""], &["pods"], &["create", "delete"]),
        rule(&[""], &["pods/status"], &["update", "patch"]),
        rule(&[""], &["pods/eviction"], &["create"]),
        // Volumes, environment and image pull secrets.
        rule(&[""], &["secrets", "configmaps"], READ),
        rule(
            &[""],
            &["persistentvolumeclaims", "persistentvolumes"],
            &["get"],
        ),
        rule(&[""], &["endpoints"], &["get"]),
        rule(
            &["certificates.k8s.io"],
            &["certificatesigningrequests"],
            &["create", "get", "list", "watch"],
        ),
        rule(
            &[COORDINATION],
            &["leases"],
            &["get", "create", "update", "patch", "delete"],
        ),
        rule(&["storage.k8s.io"], &["volumeattachments"], &["get"]),
        rule(&[""], &["serviceaccounts/token"], &["create"]),
        rule(
            &[""],
            &["persistentvolumeclaims/status"],
            &["get", "update", "patch"],
        ),
        rule(&["storage.k8s.io"], &["csidrivers"], READ),
        rule(
            &["storage.k8s.io"],
            &["csinodes"],
            &["create", "delete", "get", "patch", "update"],
        ),
        rule(&["node.k8s.io"], &["runtimeclasses"], READ),
    ]
}

/// `system:kubelet-api-admin`: every kubelet API (what the API server's kubelet client —
/// user `kube-apiserver-kubelet-client` — needs for logs and the node proxy).
fn kubelet_api_admin_rules() -> Vec<Value> {
    vec![
        rule(&[""], &["nodes"], &["get", "list", "watch", "proxy"]),
        rule(
            &[""],
            &[
                "nodes/proxy",
                "nodes/metrics",
                "nodes/spec",
                "nodes/stats",
                "nodes/log",
            ],
            &["*"],
        ),
    ]
}

/// `system:node-proxier`: kube-proxy (user `system:kube-proxy`).
fn node_proxier_rules() -> Vec<Value> {
    let mut rules = vec![
        rule(&[""], &["services", "endpoints"], &["list", "watch"]),
        rule(&[""], &["nodes"], READ),
    ];
    rules.extend(events_rule());
    rules.push(rule(
        &["discovery.k8s.io"],
        &["endpointslices"],
        &["list", "watch"],
    ));
    rules
}

/// `system:kube-scheduler`: the scheduler (user `system:kube-scheduler`).
fn scheduler_rules() -> Vec<Value> {
    let mut rules = events_rule();
    rules.extend([
        // Leader election.
        rule(&[COORDINATION], &["leases"], &["create"]),
        named(
            &[COORDINATION],
            &["leases"],
            &["get", "update"],
            &["kube-scheduler"],
        ),
        rule(&[""], &["nodes"], READ),
        rule(&[""], &["pods"], &["get", "list", "watch", "delete"]),
        rule(&[""], &["bindings", "pods/binding"], &["create"]),
        rule(&[""], &["pods/status"], &["patch", "update"]),
        // What selects pods.
        rule(&[""], &["replicationcontrollers", "services"], READ),
        rule(&["apps", "extensions"], &["replicasets"], READ),
        rule(&["apps"], &["statefulsets"], READ),
        // What pods use or what applies to them.
        rule(&["policy"], &["poddisruptionbudgets"], READ),
        rule(
            &[""],
            &["persistentvolumeclaims", "persistentvolumes"],
            READ,
        ),
        rule(&["authentication.k8s.io"], &["tokenreviews"], &["create"]),
        rule(
            &["authorization.k8s.io"],
            &["subjectaccessreviews"],
            &["create"],
        ),
        rule(&["storage.k8s.io"], &["csinodes"], READ),
        // namespaceSelector in pod affinity.
        rule(&[""], &["namespaces"], READ),
        rule(&["storage.k8s.io"], &["csidrivers"], READ),
        rule(&["storage.k8s.io"], &["csistoragecapacities"], READ),
    ]);
    rules
}

/// `system:volume-scheduler`: the scheduler's volume binding.
fn volume_scheduler_rules() -> Vec<Value> {
    vec![
        rule(
            &[""],
            &["persistentvolumes"],
            &["get", "list", "watch", "update", "patch"],
        ),
        rule(&["storage.k8s.io"], &["storageclasses"], READ),
        rule(
            &[""],
            &["persistentvolumeclaims"],
            &["get", "list", "watch", "update", "patch"],
        ),
    ]
}

/// `system:kube-controller-manager`: the controller manager's own identity — shared informers
/// over everything, leader election, and the ServiceAccounts and tokens its controllers act
/// with (`--use-service-account-credentials`: each controller writes with the
/// `system:controller:*` role of its ServiceAccount).
fn controller_manager_rules() -> Vec<Value> {
    let mut rules = events_rule();
    rules.extend([
        rule(&[COORDINATION], &["leases"], &["create"]),
        named(
            &[COORDINATION],
            &["leases"],
            &["get", "update"],
            &["kube-controller-manager"],
        ),
        rule(&[""], &["secrets", "serviceaccounts"], &["create"]),
        rule(&[""], &["secrets"], &["delete"]),
        rule(
            &[""],
            &["configmaps", "namespaces", "secrets", "serviceaccounts"],
            &["get"],
        ),
        rule(&[""], &["secrets", "serviceaccounts"], &["update"]),
        rule(&["authentication.k8s.io"], &["tokenreviews"], &["create"]),
        rule(
            &["authorization.k8s.io"],
            &["subjectaccessreviews"],
            &["create"],
        ),
        // Shared informers.
        rule(&["*"], &["*"], &["list", "watch"]),
        rule(&[""], &["serviceaccounts/token"], &["create"]),
    ]);
    rules
}

/// `system:kube-dns`: the cluster DNS (ServiceAccount `kube-system/kube-dns`). Kubernetes'
/// bootstrap role grants list/watch of Services and Endpoints; rkube-dns reads what CoreDNS
/// does (its `system:coredns` role): EndpointSlices, pods and namespaces too.
fn dns_rules() -> Vec<Value> {
    vec![
        rule(
            &[""],
            &["endpoints", "services", "pods", "namespaces"],
            &["list", "watch"],
        ),
        rule(
            &["discovery.k8s.io"],
            &["endpointslices"],
            &["list", "watch"],
        ),
    ]
}

const CERTIFICATES: &str = "certificates.k8s.io";

/// The certificates.k8s.io roles of Kubernetes' bootstrap policy: requesting certificates
/// (`system:node-bootstrapper`), having them approved automatically by the csrapproving
/// controller (`…:nodeclient` for a new node's client certificate, `…:selfnodeclient` for a
/// node renewing its own), and approving by signer.
fn certificate_roles() -> Vec<(&'static str, Vec<Value>)> {
    let approver = |signer: &'static str| {
        vec![
            rule(&[CERTIFICATES], &["certificatesigningrequests"], READ),
            rule(
                &[CERTIFICATES],
                &["certificatesigningrequests/approval"],
                &["update"],
            ),
            named(&[CERTIFICATES], &["signers"], &["approve"], &[signer]),
        ]
    };
    vec![
        (
            "system:node-bootstrapper",
            vec![rule(
                &[CERTIFICATES],
                &["certificatesigningrequests"],
                &["create", "get", "list", "watch"],
            )],
        ),
        (
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            vec![rule(
                &[CERTIFICATES],
                &["certificatesigningrequests/nodeclient"],
                &["create"],
            )],
        ),
        (
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            vec![rule(
                &[CERTIFICATES],
                &["certificatesigningrequests/selfnodeclient"],
                &["create"],
            )],
        ),
        (
            "system:certificates.k8s.io:kube-apiserver-client-approver",
            approver(rkube_machinery::certificates::KUBE_APISERVER_CLIENT),
        ),
        (
            "system:certificates.k8s.io:kube-apiserver-client-kubelet-approver",
            approver(rkube_machinery::certificates::KUBE_APISERVER_CLIENT_KUBELET),
        ),
        (
            "system:certificates.k8s.io:kubelet-serving-approver",
            approver(rkube_machinery::certificates::KUBELET_SERVING),
        ),
    ]
}

/// `system:controller:<account>`: the role of each controller rkube's controller manager runs,
/// bound to its ServiceAccount `kube-system/<account>` (what it acts as with
/// `--use-service-account-credentials`).
fn controller_roles() -> Vec<(&'static str, Vec<Value>)> {
    let with_events = |mut rules: Vec<Value>| {
        rules.extend(events_rule());
        rules
    };
    vec![
        (
            // csrapproving and csrsigning. Kubernetes' role approves only kubelet client
            // certificates; rkube's approver also approves kubelet serving certificates and
            // the proxy's client certificate (see the controller).
            "system:controller:certificate-controller",
            with_events(vec![
                rule(
                    &[CERTIFICATES],
                    &["certificatesigningrequests"],
                    &["get", "list", "watch", "delete"],
                ),
                rule(
                    &[CERTIFICATES],
                    &[
                        "certificatesigningrequests/status",
                        "certificatesigningrequests/approval",
                    ],
                    &["update"],
                ),
                named(
                    &[CERTIFICATES],
                    &["signers"],
                    &["approve"],
                    &[
                        rkube_machinery::certificates::KUBE_APISERVER_CLIENT_KUBELET,
                        rkube_machinery::certificates::KUBELET_SERVING,
                        rkube_machinery::certificates::KUBE_APISERVER_CLIENT,
                    ],
                ),
                named(
                    &[CERTIFICATES],
                    &["signers"],
                    &["sign"],
                    &[
                        rkube_machinery::certificates::LEGACY_UNKNOWN,
                        rkube_machinery::certificates::KUBE_APISERVER_CLIENT,
                        rkube_machinery::certificates::KUBE_APISERVER_CLIENT_KUBELET,
                        rkube_machinery::certificates::KUBELET_SERVING,
                    ],
                ),
                rule(
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                    &["create"],
                ),
            ]),
        ),
        (
            "system:controller:deployment-controller",
            with_events(vec![
                rule(
                    &["apps", "extensions"],
                    &["deployments"],
                    &["get", "list", "watch", "update"],
                ),
                rule(
                    &["apps", "extensions"],
                    &["deployments/status"],
                    &["update"],
                ),
                rule(
                    &["apps", "extensions"],
                    &["deployments/finalizers"],
                    &["update"],
                ),
                rule(
                    &["apps", "extensions"],
                    &["replicasets"],
                    &[
                        "get", "list", "watch", "create", "update", "patch", "delete",
                    ],
                ),
                // Pods are listed and relabelled (adoption).
                rule(&[""], &["pods"], &["get", "list", "update", "watch"]),
            ]),
        ),
        (
            "system:controller:endpoint-controller",
            with_events(vec![
                rule(&[""], &["services", "pods"], READ),
                rule(&[""], &["endpoints"], &["create", "update", "delete"]),
                rule(&[""], &["endpoints/restricted"], &["create"]),
            ]),
        ),
        (
            "system:controller:endpointslice-controller",
            with_events(vec![
                rule(&[""], &["services", "pods", "nodes"], READ),
                rule(
                    &["discovery.k8s.io"],
                    &["endpointslices"],
                    &["create", "update", "delete"],
                ),
            ]),
        ),
        (
            "system:controller:generic-garbage-collector",
            vec![rule(
                &["*"],
                &["*"],
                &["get", "list", "watch", "patch", "update", "delete"],
            )],
        ),
        (
            "system:controller:namespace-controller",
            vec![
                rule(&[""], &["namespaces"], &["get", "list", "watch", "delete"]),
                rule(
                    &[""],
                    &["namespaces/finalize", "namespaces/status"],
                    &["update"],
                ),
                rule(
                    &["*"],
                    &["*"],
                    &["get", "list", "delete", "deletecollection"],
                ),
            ],
        ),
        (
            "system:controller:node-controller",
            with_events(vec![
                rule(
                    &[""],
                    &["nodes"],
                    &["get", "list", "update", "delete", "patch"],
                ),
                rule(&[""], &["nodes/status"], &["patch", "update"]),
                rule(&[""], &["pods/status"], &["patch", "update"]),
                rule(&[""], &["pods"], &["list", "delete"]),
            ]),
        ),
        (
            "system:controller:cronjob-controller",
            with_events(vec![
                rule(
                    &["batch"],
                    &["cronjobs"],
                    &["get", "list", "watch", "update"],
                ),
                rule(
                    &["batch"],
                    &["jobs"],
                    &[
                        "get", "list", "watch", "create", "update", "delete", "patch",
                    ],
                ),
                rule(&["batch"], &["cronjobs/status"], &["update"]),
                rule(&["batch"], &["cronjobs/finalizers"], &["update"]),
                rule(&[""], &["pods"], &["list", "delete"]),
            ]),
        ),
        (
            "system:controller:disruption-controller",
            with_events(vec![
                rule(
                    &["apps", "extensions"],
                    &["deployments", "replicasets", "statefulsets"],
                    &["get", "list", "watch"],
                ),
                rule(
                    &[""],
                    &["replicationcontrollers"],
                    &["get", "list", "watch"],
                ),
                rule(
                    &["policy"],
                    &["poddisruptionbudgets"],
                    &["get", "list", "watch"],
                ),
                rule(&["policy"], &["poddisruptionbudgets/status"], &["update"]),
                rule(&["*"], &["*/scale"], &["get"]),
                rule(&[""], &["pods"], &["get", "list", "watch"]),
                rule(&[""], &["pods/status"], &["patch", "update"]),
            ]),
        ),
        (
            "system:controller:resourcequota-controller",
            with_events(vec![
                rule(&["*"], &["*"], &["list", "watch"]),
                rule(&[""], &["resourcequotas/status"], &["update"]),
            ]),
        ),
        (
            "system:controller:job-controller",
            with_events(vec![
                rule(
                    &["batch"],
                    &["jobs"],
                    &["get", "list", "watch", "update", "patch"],
                ),
                rule(&["batch"], &["jobs/status"], &["update"]),
                rule(&["batch"], &["jobs/finalizers"], &["update"]),
                rule(
                    &[""],
                    &["pods"],
                    &["list", "watch", "create", "delete", "patch"],
                ),
            ]),
        ),
        (
            "system:controller:replicaset-controller",
            with_events(vec![
                rule(
                    &["apps", "extensions"],
                    &["replicasets"],
                    &["get", "list", "watch", "update"],
                ),
                rule(
                    &["apps", "extensions"],
                    &["replicasets/status"],
                    &["update"],
                ),
                rule(
                    &["apps", "extensions"],
                    &["replicasets/finalizers"],
                    &["update"],
                ),
                rule(
                    &[""],
                    &["pods"],
                    &["list", "watch", "patch", "create", "delete"],
                ),
            ]),
        ),
        (
            "system:controller:ttl-after-finished-controller",
            with_events(vec![rule(
                &["batch"],
                &["jobs"],
                &["get", "list", "watch", "delete"],
            )]),
        ),
        (
            "system:controller:service-account-controller",
            with_events(vec![rule(&[""], &["serviceaccounts"], &["create"])]),
        ),
    ]
}

/// The default ClusterRoleBindings: (name, role, subjects).
pub fn cluster_role_bindings() -> Vec<(&'static str, &'static str, Vec<Value>)> {
    let group =
        |n: &str| json!({"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": n});
    let user =
        |n: &str| json!({"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": n});
    let service_account =
        |ns: &str, n: &str| json!({"kind": "ServiceAccount", "name": n, "namespace": ns});
    let mut bindings = vec![
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
        // Kubernetes binds system:node to no one (its Node authorizer grants the node rules);
        // rkube's Node authorizer only narrows, so the role is bound to the nodes' group.
        ("system:node", "system:node", vec![group("system:nodes")]),
        (
            "system:node-proxier",
            "system:node-proxier",
            vec![user("system:kube-proxy")],
        ),
        (
            "system:kube-apiserver-kubelet-client",
            "system:kubelet-api-admin",
            vec![user(crate::kubelet::CLIENT_USER)],
        ),
        (
            "system:kube-scheduler",
            "system:kube-scheduler",
            vec![user("system:kube-scheduler")],
        ),
        (
            "system:volume-scheduler",
            "system:volume-scheduler",
            vec![user("system:kube-scheduler")],
        ),
        (
            "system:kube-controller-manager",
            "system:kube-controller-manager",
            vec![user("system:kube-controller-manager")],
        ),
        (
            "system:kube-dns",
            "system:kube-dns",
            vec![service_account("kube-system", "kube-dns")],
        ),
    ];
    // Joining nodes (kubeadm's bindings): bootstrap tokens request certificates and have node
    // client certificates approved; nodes have their own renewed.
    bindings.extend([
        (
            "rkube:kubelet-bootstrap",
            "system:node-bootstrapper",
            vec![group(super::bootstraptoken::GROUP)],
        ),
        (
            "rkube:node-autoapprove-bootstrap",
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            vec![group(super::bootstraptoken::GROUP)],
        ),
        (
            "rkube:node-autoapprove-certificate-rotation",
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            vec![group(super::NODES)],
        ),
    ]);
    // Each controller's role to its ServiceAccount.
    for (name, _) in controller_roles() {
        let account = name.trim_start_matches("system:controller:");
        bindings.push((name, name, vec![service_account("kube-system", account)]));
    }
    bindings
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

    fn allows(name: &str, verb: &str, group: &str, resource_path: &str) -> bool {
        let (resource, subresource) = resource_path.split_once('/').unwrap_or((resource_path, ""));
        let a = Attributes {
            verb: verb.into(),
            resource_request: true,
            api_group: group.into(),
            resource: resource.into(),
            subresource: subresource.into(),
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
            "system:node-proxier",
            "watch",
            "discovery.k8s.io",
            "endpointslices"
        ));
        assert!(!allows("system:node-proxier", "create", "", "pods"));
        assert!(allows("system:kubelet-api-admin", "get", "", "nodes/proxy"));
        assert!(allows(
            "system:kubelet-api-admin",
            "create",
            "",
            "nodes/stats"
        ));
        assert!(!allows("system:kubelet-api-admin", "get", "", "pods"));
        assert!(allows(
            "system:kube-scheduler",
            "create",
            "",
            "pods/binding"
        ));
        assert!(!allows("system:kube-scheduler", "create", "", "pods"));
        // The controller manager itself only watches; its controllers write.
        assert!(allows(
            "system:kube-controller-manager",
            "watch",
            "apps",
            "deployments"
        ));
        assert!(!allows(
            "system:kube-controller-manager",
            "create",
            "",
            "pods"
        ));
        assert!(allows(
            "system:controller:replicaset-controller",
            "create",
            "",
            "pods"
        ));
        assert!(!allows(
            "system:controller:replicaset-controller",
            "create",
            "apps",
            "replicasets"
        ));
        assert!(allows(
            "system:controller:job-controller",
            "update",
            "batch",
            "jobs/status"
        ));
        assert!(allows(
            "system:controller:job-controller",
            "patch",
            "",
            "pods"
        ));
        assert!(allows(
            "system:controller:ttl-after-finished-controller",
            "delete",
            "batch",
            "jobs"
        ));
        assert!(!allows(
            "system:controller:ttl-after-finished-controller",
            "delete",
            "",
            "pods"
        ));
        assert!(allows(
            "system:node-bootstrapper",
            "create",
            "certificates.k8s.io",
            "certificatesigningrequests"
        ));
        assert!(!allows(
            "system:node-bootstrapper",
            "update",
            "certificates.k8s.io",
            "certificatesigningrequests/approval"
        ));
        assert!(allows(
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            "create",
            "certificates.k8s.io",
            "certificatesigningrequests/nodeclient"
        ));
        assert!(allows(
            "system:controller:certificate-controller",
            "update",
            "certificates.k8s.io",
            "certificatesigningrequests/approval"
        ));
        assert!(allows(
            "system:node",
            "create",
            "certificates.k8s.io",
            "certificatesigningrequests"
        ));
        let bindings = cluster_role_bindings();
        let roles: Vec<&str> = cluster_roles().iter().map(|(n, _)| *n).collect();
        for (_, role, _) in &bindings {
            assert!(roles.contains(role), "{role}");
        }
    }
}
