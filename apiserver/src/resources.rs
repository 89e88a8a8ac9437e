//! The resources the API server serves: for each, its group/version, plural and singular names,
//! kind, scope, short names, categories, subresources and the verbs discovery advertises.

/// Static facts about one served resource.
#[derive(Debug)]
pub struct ResourceDef {
    /// API group (`""` for core).
    pub group: &'static str,
    /// API version.
    pub version: &'static str,
    /// Plural resource name used in paths.
    pub resource: &'static str,
    /// Singular name.
    pub singular: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// `kubectl get po`.
    pub short_names: &'static [&'static str],
    /// `kubectl get all`.
    pub categories: &'static [&'static str],
    /// Subresources served (`status`, `scale`, `binding`, `log`, `eviction`, `finalize`,
    /// `token`, `proxy`, `approval`).
    pub subresources: &'static [&'static str],
    /// Clear `status` on create (most kinds: status is written by controllers).
    pub reset_status_on_create: bool,
    /// Writes to the main resource keep the stored status (there is a `status` subresource).
    pub status_subresource: bool,
    /// A delete that removes the object at once answers with the object, not a `Status`
    /// (Kubernetes' `ReturnDeletedObject`: pods, services, service accounts, namespaces and
    /// persistent volumes and claims).
    pub return_deleted_object: bool,
    /// `metadata.generation` is maintained (bumped on spec changes).
    pub has_generation: bool,
    /// PUT of a missing object creates it (Kubernetes' AllowCreateOnUpdate).
    pub create_on_update: bool,
    /// Names must be DNS-1123 labels (else DNS-1123 subdomains).
    pub name_is_label: bool,
    /// The storage key segment: `/registry/<group>/<resource>/…`, `/registry/<resource>/…` for
    /// the core group.
    pub storage: &'static str,
    /// Only `create` is served and nothing is stored (access reviews).
    pub create_only: bool,
}

impl ResourceDef {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The verbs discovery advertises for the main resource.
    pub fn verbs(&self) -> &'static [&'static str] {
        if self.create_only {
            return &["create"];
        }
        &[
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ]
    }

    /// The storage prefix of every object of this resource (ends with `/`).
    pub fn prefix(&self) -> String {
        format!("/registry/{}/", self.storage)
    }

    /// The storage prefix of one namespace (or of all, for cluster-scoped resources).
    pub fn namespace_prefix(&self, namespace: Option<&str>) -> String {
        match (self.namespaced, namespace) {
            (true, Some(ns)) => format!("/registry/{}/{ns}/", self.storage),
            _ => self.prefix(),
        }
    }

    /// The storage key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match (self.namespaced, namespace) {
            (true, Some(ns)) => format!("/registry/{}/{ns}/{name}", self.storage),
            _ => format!("/registry/{}/{name}", self.storage),
        }
    }

    /// Whether it has a subresource.
    pub fn has_sub(&self, sub: &str) -> bool {
        self.subresources.contains(&sub)
    }
}

const fn def(
    group: &'static str,
    resource: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
    storage: &'static str,
) -> ResourceDef {
    ResourceDef {
        group,
        version: "v1",
        resource,
        singular,
        kind,
        namespaced,
        short_names: &[],
        categories: &[],
        subresources: &[],
        reset_status_on_create: false,
        status_subresource: false,
        return_deleted_object: false,
        has_generation: false,
        create_on_update: false,
        name_is_label: false,
        storage,
        create_only: false,
    }
}

/// Namespaces.
pub static NAMESPACES: ResourceDef = ResourceDef {
    return_deleted_object: true,
    short_names: &["ns"],
    subresources: &["status", "finalize"],
    status_subresource: true,
    reset_status_on_create: true,
    name_is_label: true,
    ..def(
        "",
        "namespaces",
        "namespace",
        "Namespace",
        false,
        "namespaces",
    )
};
/// Nodes.
pub static NODES: ResourceDef = ResourceDef {
    short_names: &["no"],
    subresources: &["status", "proxy"],
    status_subresource: true,
    ..def("", "nodes", "node", "Node", false, "nodes")
};
/// Pods.
pub static PODS: ResourceDef = ResourceDef {
    return_deleted_object: true,
    short_names: &["po"],
    categories: &["all"],
    subresources: &[
        "status",
        "binding",
        "log",
        "eviction",
        "exec",
        "attach",
        "portforward",
    ],
    status_subresource: true,
    reset_status_on_create: true,
    ..def("", "pods", "pod", "Pod", true, "pods")
};
/// Services.
pub static SERVICES: ResourceDef = ResourceDef {
    return_deleted_object: true,
    short_names: &["svc"],
    categories: &["all"],
    subresources: &["status"],
    status_subresource: true,
    reset_status_on_create: true,
    name_is_label: true,
    ..def("", "services", "service", "Service", true, "services")
};
/// Endpoints.
pub static ENDPOINTS: ResourceDef = ResourceDef {
    short_names: &["ep"],
    create_on_update: true,
    ..def("", "endpoints", "endpoints", "Endpoints", true, "endpoints")
};
/// ConfigMaps.
pub static CONFIGMAPS: ResourceDef = ResourceDef {
    short_names: &["cm"],
    ..def(
        "",
        "configmaps",
        "configmap",
        "ConfigMap",
        true,
        "configmaps",
    )
};
/// Secrets.
pub static SECRETS: ResourceDef = def("", "secrets", "secret", "Secret", true, "secrets");
/// Events (core/v1).
pub static EVENTS: ResourceDef = ResourceDef {
    short_names: &["ev"],
    create_on_update: true,
    ..def("", "events", "event", "Event", true, "events")
};
/// ServiceAccounts.
pub static SERVICEACCOUNTS: ResourceDef = ResourceDef {
    return_deleted_object: true,
    short_names: &["sa"],
    subresources: &["token"],
    ..def(
        "",
        "serviceaccounts",
        "serviceaccount",
        "ServiceAccount",
        true,
        "serviceaccounts",
    )
};
/// PersistentVolumes.
pub static PERSISTENTVOLUMES: ResourceDef = ResourceDef {
    return_deleted_object: true,
    short_names: &["pv"],
    subresources: &["status"],
    status_subresource: true,
    reset_status_on_create: true,
    ..def(
        "",
        "persistentvolumes",
        "persistentvolume",
        "PersistentVolume",
        false,
        "persistentvolumes",
    )
};
/// PersistentVolumeClaims.
pub static PERSISTENTVOLUMECLAIMS: ResourceDef = ResourceDef {
    return_deleted_object: true,
    short_names: &["pvc"],
    subresources: &["status"],
    status_subresource: true,
    reset_status_on_create: true,
    ..def(
        "",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        "PersistentVolumeClaim",
        true,
        "persistentvolumeclaims",
    )
};
/// Deployments.
pub static DEPLOYMENTS: ResourceDef = ResourceDef {
    short_names: &["deploy"],
    categories: &["all"],
    subresources: &["status", "scale"],
    status_subresource: true,
    reset_status_on_create: true,
    has_generation: true,
    ..def(
        "apps",
        "deployments",
        "deployment",
        "Deployment",
        true,
        "apps/deployments",
    )
};
/// ReplicaSets.
pub static REPLICASETS: ResourceDef = ResourceDef {
    short_names: &["rs"],
    categories: &["all"],
    subresources: &["status", "scale"],
    status_subresource: true,
    reset_status_on_create: true,
    has_generation: true,
    ..def(
        "apps",
        "replicasets",
        "replicaset",
        "ReplicaSet",
        true,
        "apps/replicasets",
    )
};
/// DaemonSets.
pub static DAEMONSETS: ResourceDef = ResourceDef {
    short_names: &["ds"],
    categories: &["all"],
    subresources: &["status"],
    status_subresource: true,
    reset_status_on_create: true,
    has_generation: true,
    ..def(
        "apps",
        "daemonsets",
        "daemonset",
        "DaemonSet",
        true,
        "apps/daemonsets",
    )
};
/// StatefulSets.
pub static STATEFULSETS: ResourceDef = ResourceDef {
    short_names: &["sts"],
    categories: &["all"],
    subresources: &["status", "scale"],
    status_subresource: true,
    reset_status_on_create: true,
    has_generation: true,
    ..def(
        "apps",
        "statefulsets",
        "statefulset",
        "StatefulSet",
        true,
        "apps/statefulsets",
    )
};
/// Jobs.
pub static JOBS: ResourceDef = ResourceDef {
    categories: &["all"],
    subresources: &["status"],
    status_subresource: true,
    reset_status_on_create: true,
    has_generation: true,
    ..def("batch", "jobs", "job", "Job", true, "batch/jobs")
};
/// CronJobs.
pub static CRONJOBS: ResourceDef = ResourceDef {
    short_names: &["cj"],
    categories: &["all"],
    subresources: &["status"],
    status_subresource: true,
    reset_status_on_create: true,
    has_generation: true,
    ..def(
        "batch",
        "cronjobs",
        "cronjob",
        "CronJob",
        true,
        "batch/cronjobs",
    )
};
/// PodDisruptionBudgets.
pub static PODDISRUPTIONBUDGETS: ResourceDef = ResourceDef {
    short_names: &["pdb"],
    subresources: &["status"],
    status_subresource: true,
    reset_status_on_create: true,
    has_generation: true,
    ..def(
        "policy",
        "poddisruptionbudgets",
        "poddisruptionbudget",
        "PodDisruptionBudget",
        true,
        "policy/poddisruptionbudgets",
    )
};
/// Ingresses.
pub static INGRESSES: ResourceDef = ResourceDef {
    short_names: &["ing"],
    subresources: &["status"],
    status_subresource: true,
    reset_status_on_create: true,
    has_generation: true,
    ..def(
        "networking.k8s.io",
        "ingresses",
        "ingress",
        "Ingress",
        true,
        "ingress",
    )
};
/// IngressClasses.
pub static INGRESSCLASSES: ResourceDef = def(
    "networking.k8s.io",
    "ingressclasses",
    "ingressclass",
    "IngressClass",
    false,
    "ingressclasses",
);
/// NetworkPolicies.
pub static NETWORKPOLICIES: ResourceDef = ResourceDef {
    short_names: &["netpol"],
    has_generation: true,
    ..def(
        "networking.k8s.io",
        "networkpolicies",
        "networkpolicy",
        "NetworkPolicy",
        true,
        "networkpolicies",
    )
};
/// StorageClasses.
pub static STORAGECLASSES: ResourceDef = ResourceDef {
    short_names: &["sc"],
    ..def(
        "storage.k8s.io",
        "storageclasses",
        "storageclass",
        "StorageClass",
        false,
        "storageclasses",
    )
};
/// ResourceQuotas.
pub static RESOURCEQUOTAS: ResourceDef = ResourceDef {
    short_names: &["quota"],
    subresources: &["status"],
    status_subresource: true,
    reset_status_on_create: true,
    ..def(
        "",
        "resourcequotas",
        "resourcequota",
        "ResourceQuota",
        true,
        "resourcequotas",
    )
};
/// Leases.
pub static LEASES: ResourceDef = ResourceDef {
    create_on_update: true,
    ..def(
        "coordination.k8s.io",
        "leases",
        "lease",
        "Lease",
        true,
        "coordination.k8s.io/leases",
    )
};
/// EndpointSlices.
pub static ENDPOINTSLICES: ResourceDef = def(
    "discovery.k8s.io",
    "endpointslices",
    "endpointslice",
    "EndpointSlice",
    true,
    "discovery.k8s.io/endpointslices",
);
/// PriorityClasses (cluster-scoped): the priority values pods get through Priority admission.
pub static PRIORITYCLASSES: ResourceDef = ResourceDef {
    short_names: &["pc"],
    ..def(
        "scheduling.k8s.io",
        "priorityclasses",
        "priorityclass",
        "PriorityClass",
        false,
        "scheduling.k8s.io/priorityclasses",
    )
};
/// Events (events.k8s.io/v1): a view of the core events, in the same storage.
pub static EVENTS_V1: ResourceDef = ResourceDef {
    short_names: &["ev"],
    create_on_update: true,
    ..def("events.k8s.io", "events", "event", "Event", true, "events")
};

/// CertificateSigningRequests (cluster-scoped): requests for certificates of a signer, approved
/// through `approval` and signed through `status`.
pub static CERTIFICATESIGNINGREQUESTS: ResourceDef = ResourceDef {
    short_names: &["csr"],
    subresources: &["status", "approval"],
    status_subresource: true,
    reset_status_on_create: true,
    ..def(
        "certificates.k8s.io",
        "certificatesigningrequests",
        "certificatesigningrequest",
        "CertificateSigningRequest",
        false,
        "certificates.k8s.io/certificatesigningrequests",
    )
};

/// Roles.
pub static ROLES: ResourceDef = def(
    "rbac.authorization.k8s.io",
    "roles",
    "role",
    "Role",
    true,
    "rbac.authorization.k8s.io/roles",
);
/// RoleBindings.
pub static ROLEBINDINGS: ResourceDef = def(
    "rbac.authorization.k8s.io",
    "rolebindings",
    "rolebinding",
    "RoleBinding",
    true,
    "rbac.authorization.k8s.io/rolebindings",
);
/// ClusterRoles.
pub static CLUSTERROLES: ResourceDef = def(
    "rbac.authorization.k8s.io",
    "clusterroles",
    "clusterrole",
    "ClusterRole",
    false,
    "rbac.authorization.k8s.io/clusterroles",
);
/// ClusterRoleBindings.
pub static CLUSTERROLEBINDINGS: ResourceDef = def(
    "rbac.authorization.k8s.io",
    "clusterrolebindings",
    "clusterrolebinding",
    "ClusterRoleBinding",
    false,
    "rbac.authorization.k8s.io/clusterrolebindings",
);
/// SelfSubjectAccessReviews (`kubectl auth can-i`).
pub static SELFSUBJECTACCESSREVIEWS: ResourceDef = ResourceDef {
    create_only: true,
    ..def(
        "authorization.k8s.io",
        "selfsubjectaccessreviews",
        "selfsubjectaccessreview",
        "SelfSubjectAccessReview",
        false,
        "authorization.k8s.io/selfsubjectaccessreviews",
    )
};
/// SubjectAccessReviews.
pub static SUBJECTACCESSREVIEWS: ResourceDef = ResourceDef {
    create_only: true,
    ..def(
        "authorization.k8s.io",
        "subjectaccessreviews",
        "subjectaccessreview",
        "SubjectAccessReview",
        false,
        "authorization.k8s.io/subjectaccessreviews",
    )
};
/// SelfSubjectRulesReviews (`kubectl auth can-i --list`).
pub static SELFSUBJECTRULESREVIEWS: ResourceDef = ResourceDef {
    create_only: true,
    ..def(
        "authorization.k8s.io",
        "selfsubjectrulesreviews",
        "selfsubjectrulesreview",
        "SelfSubjectRulesReview",
        false,
        "authorization.k8s.io/selfsubjectrulesreviews",
    )
};
/// TokenReviews: whom a bearer token authenticates (kubelets ask, to authenticate their
/// clients' tokens).
pub static TOKENREVIEWS: ResourceDef = ResourceDef {
    create_only: true,
    ..def(
        "authentication.k8s.io",
        "tokenreviews",
        "tokenreview",
        "TokenReview",
        false,
        "authentication.k8s.io/tokenreviews",
    )
};
/// SelfSubjectReviews (`kubectl auth whoami`).
pub static SELFSUBJECTREVIEWS: ResourceDef = ResourceDef {
    create_only: true,
    ..def(
        "authentication.k8s.io",
        "selfsubjectreviews",
        "selfsubjectreview",
        "SelfSubjectReview",
        false,
        "authentication.k8s.io/selfsubjectreviews",
    )
};

/// Every served resource, in discovery order.
pub static ALL: &[&ResourceDef] = &[
    &NAMESPACES,
    &NODES,
    &PODS,
    &SERVICES,
    &ENDPOINTS,
    &CONFIGMAPS,
    &SECRETS,
    &EVENTS,
    &SERVICEACCOUNTS,
    &RESOURCEQUOTAS,
    &PERSISTENTVOLUMES,
    &PERSISTENTVOLUMECLAIMS,
    &DEPLOYMENTS,
    &REPLICASETS,
    &DAEMONSETS,
    &STATEFULSETS,
    &JOBS,
    &CRONJOBS,
    &PODDISRUPTIONBUDGETS,
    &INGRESSES,
    &INGRESSCLASSES,
    &NETWORKPOLICIES,
    &STORAGECLASSES,
    &LEASES,
    &ENDPOINTSLICES,
    &PRIORITYCLASSES,
    &EVENTS_V1,
    &CERTIFICATESIGNINGREQUESTS,
    &ROLES,
    &ROLEBINDINGS,
    &CLUSTERROLES,
    &CLUSTERROLEBINDINGS,
    &SELFSUBJECTACCESSREVIEWS,
    &SUBJECTACCESSREVIEWS,
    &SELFSUBJECTRULESREVIEWS,
    &SELFSUBJECTREVIEWS,
    &TOKENREVIEWS,
];

/// The served resource `group/version/resource`.
pub fn find(group: &str, version: &str, resource: &str) -> Option<&'static ResourceDef> {
    ALL.iter()
        .copied()
        .find(|d| d.group == group && d.version == version && d.resource == resource)
}

/// The API groups served, in discovery order (core first as `""`).
pub fn groups() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for d in ALL {
        if !out.contains(&d.group) {
            out.push(d.group);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_registry_layout() {
        assert_eq!(
            PODS.key(Some("default"), "web"),
            "/registry/pods/default/web"
        );
        assert_eq!(NODES.key(None, "n1"), "/registry/nodes/n1");
        assert_eq!(
            DEPLOYMENTS.key(Some("ns"), "d"),
            "/registry/apps/deployments/ns/d"
        );
        assert_eq!(PODS.namespace_prefix(Some("a")), "/registry/pods/a/");
        assert_eq!(PODS.namespace_prefix(None), "/registry/pods/");
    }

    #[test]
    fn storage_prefixes_do_not_overlap() {
        for a in ALL {
            for b in ALL {
                let views = [&EVENTS, &EVENTS_V1];
                let same_storage = views.iter().any(|v| std::ptr::eq(*a, *v))
                    && views.iter().any(|v| std::ptr::eq(*b, *v));
                if !std::ptr::eq(*a, *b) && !same_storage {
                    assert!(
                        !a.prefix().starts_with(&b.prefix()),
                        "{} vs {}",
                        a.resource,
                        b.resource
                    );
                }
            }
        }
    }
}
