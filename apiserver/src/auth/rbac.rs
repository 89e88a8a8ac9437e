//! RBAC: the Roles, ClusterRoles, RoleBindings and ClusterRoleBindings of storage, kept in
//! memory by a list-and-watch task ([`RbacCache`]), and the authorizer over them — a request is
//! allowed when some binding whose subjects include the user grants a rule matching it. Also
//! the escalation check Kubernetes makes on RBAC writes ([`covers`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use futures::StreamExt;
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, Subject,
};

use super::{Attributes, Decision, UserInfo};
use crate::storage::{EventKind, ListOptions, Revision, Storage, WatchItem};

/// The storage prefix of every RBAC object.
pub const PREFIX: &str = "/registry/rbac.authorization.k8s.io/";

/// One binding, reduced to what authorization needs.
#[derive(Clone, Debug)]
struct Binding {
    /// `ClusterRoleBinding "x"` or `RoleBinding "ns/x"`, for reasons.
    describe: String,
    /// The namespace of a RoleBinding (empty for a ClusterRoleBinding).
    namespace: String,
    subjects: Vec<Subject>,
    /// `ClusterRole` or `Role`.
    role_kind: String,
    role_name: String,
}

/// The RBAC objects at one revision.
#[derive(Clone, Debug, Default)]
struct Snapshot {
    cluster_roles: HashMap<String, Arc<Vec<PolicyRule>>>,
    roles: HashMap<(String, String), Arc<Vec<PolicyRule>>>,
    cluster_bindings: HashMap<String, Binding>,
    bindings: HashMap<String, HashMap<String, Binding>>,
}

impl Snapshot {
    fn apply(&mut self, key: &str, value: Option<&[u8]>) {
        let Some(rest) = key.strip_prefix(PREFIX) else {
            return;
        };
        let parts: Vec<&str> = rest.split('/').collect();
        match (parts.as_slice(), value) {
            (["clusterroles", name], Some(v)) => {
                if let Ok(r) = serde_json::from_slice::<ClusterRole>(v) {
                    self.cluster_roles
                        .insert((*name).to_string(), Arc::new(r.rules.unwrap_or_default()));
                }
            }
            (["clusterroles", name], None) => {
                self.cluster_roles.remove(*name);
            }
            (["roles", ns, name], Some(v)) => {
                if let Ok(r) = serde_json::from_slice::<Role>(v) {
                    self.roles.insert(
                        ((*ns).to_string(), (*name).to_string()),
                        Arc::new(r.rules.unwrap_or_default()),
                    );
                }
            }
            (["roles", ns, name], None) => {
                self.roles.remove(&((*ns).to_string(), (*name).to_string()));
            }
            (["clusterrolebindings", name], Some(v)) => {
                if let Ok(b) = serde_json::from_slice::<ClusterRoleBinding>(v) {
                    self.cluster_bindings.insert(
                        (*name).to_string(),
                        Binding {
                            describe: format!("ClusterRoleBinding {name:?}"),
                            namespace: String::new(),
                            subjects: b.subjects.unwrap_or_default(),
                            role_kind: b.role_ref.kind,
                            role_name: b.role_ref.name,
                        },
                    );
                }
            }
            (["clusterrolebindings", name], None) => {
                self.cluster_bindings.remove(*name);
            }
            (["rolebindings", ns, name], Some(v)) => {
                if let Ok(b) = serde_json::from_slice::<RoleBinding>(v) {
                    self.bindings.entry((*ns).to_string()).or_default().insert(
                        (*name).to_string(),
                        Binding {
                            describe: format!("RoleBinding \"{ns}/{name}\""),
                            namespace: (*ns).to_string(),
                            subjects: b.subjects.unwrap_or_default(),
                            role_kind: b.role_ref.kind,
                            role_name: b.role_ref.name,
                        },
                    );
                }
            }
            (["rolebindings", ns, name], None) => {
                if let Some(m) = self.bindings.get_mut(*ns) {
                    m.remove(*name);
                }
            }
            _ => {}
        }
    }

    fn rules_of(&self, b: &Binding) -> Option<&Arc<Vec<PolicyRule>>> {
        match b.role_kind.as_str() {
            "ClusterRole" => self.cluster_roles.get(&b.role_name),
            "Role" => self.roles.get(&(b.namespace.clone(), b.role_name.clone())),
            _ => None,
        }
    }

    /// The bindings that apply to a request in `namespace` (cluster bindings first).
    fn applicable<'a>(&'a self, namespace: &'a str) -> impl Iterator<Item = &'a Binding> + 'a {
        let ns = (!namespace.is_empty())
            .then(|| self.bindings.get(namespace))
            .flatten();
        self.cluster_bindings
            .values()
            .chain(ns.into_iter().flat_map(|m| m.values()))
    }
}

/// Whether a binding subject names `user`.
pub fn subject_matches(s: &Subject, user: &UserInfo, binding_namespace: &str) -> bool {
    match s.kind.as_str() {
        "User" => s.name == user.username,
        "Group" => user.in_group(&s.name),
        "ServiceAccount" => {
            let ns = s
                .namespace
                .as_deref()
                .filter(|n| !n.is_empty())
                .unwrap_or(binding_namespace);
            user.username == format!("system:serviceaccount:{ns}:{}", s.name)
        }
        _ => false,
    }
}

fn has(list: &[String], v: &str) -> bool {
    list.iter().any(|x| x == "*" || x == v)
}

fn url_matches(pattern: &str, path: &str) -> bool {
    pattern == "*"
        || pattern == path
        || pattern
            .strip_suffix('*')
            .is_some_and(|prefix| path.starts_with(prefix))
}

fn resource_matches(resources: &[String], resource: &str, sub: &str) -> bool {
    let combined = if sub.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}/{sub}")
    };
    resources
        .iter()
        .any(|r| r == "*" || *r == combined || (!sub.is_empty() && *r == format!("*/{sub}")))
}

/// Whether `rule` allows the request `a`.
pub fn rule_allows(rule: &PolicyRule, a: &Attributes) -> bool {
    if !has(&rule.verbs, &a.verb) {
        return false;
    }
    if !a.resource_request {
        return rule
            .non_resource_urls
            .iter()
            .flatten()
            .any(|u| url_matches(u, &a.path));
    }
    let names = rule.resource_names.as_deref().unwrap_or_default();
    has(rule.api_groups.as_deref().unwrap_or_default(), &a.api_group)
        && resource_matches(
            rule.resources.as_deref().unwrap_or_default(),
            &a.resource,
            &a.subresource,
        )
        && (names.is_empty() || names.contains(&a.name))
}

/// Whether the rules `owner` grant everything `requested` grants (Kubernetes' escalation
/// check: a wildcard in `requested` is covered only by a wildcard).
pub fn covers(owner: &[PolicyRule], requested: &PolicyRule) -> Result<(), String> {
    let lit = |list: &[String], v: &str| list.iter().any(|x| x == "*" || x == v);
    for verb in &requested.verbs {
        for url in requested.non_resource_urls.iter().flatten() {
            let ok = owner.iter().any(|o| {
                lit(&o.verbs, verb)
                    && o.non_resource_urls
                        .iter()
                        .flatten()
                        .any(|p| url_matches(p, url))
            });
            if !ok {
                return Err(format!("{{NonResourceURLs:[{url}], Verbs:[{verb}]}}"));
            }
        }
        for group in requested.api_groups.iter().flatten() {
            for resource in requested.resources.iter().flatten() {
                let names: Vec<Option<&String>> = match requested.resource_names.as_deref() {
                    Some(n) if !n.is_empty() => n.iter().map(Some).collect(),
                    _ => vec![None],
                };
                for name in names {
                    let ok = owner.iter().any(|o| {
                        let sub = resource.split_once('/').map(|(_, s)| s).unwrap_or_default();
                        let o_names = o.resource_names.as_deref().unwrap_or_default();
                        lit(&o.verbs, verb)
                            && lit(o.api_groups.as_deref().unwrap_or_default(), group)
                            && o.resources.iter().flatten().any(|r| {
                                r == "*"
                                    || r == resource
                                    || (!sub.is_empty() && *r == format!("*/{sub}"))
                            })
                            && (o_names.is_empty()
                                || name.is_some_and(|n| o_names.iter().any(|x| x == n)))
                    });
                    if !ok {
                        let name = name
                            .map(|n| format!(", ResourceNames:[{n}]"))
                            .unwrap_or_default();
                        return Err(format!(
                            "{{APIGroups:[{group:?}], Resources:[{resource:?}]{name}, Verbs:[{verb:?}]}}"
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

/// The RBAC objects in memory, kept current from storage.
pub struct RbacCache {
    snap: ArcSwap<Snapshot>,
    revision: tokio::sync::watch::Sender<Revision>,
}

impl Default for RbacCache {
    fn default() -> Self {
        Self {
            snap: ArcSwap::from_pointee(Snapshot::default()),
            revision: tokio::sync::watch::channel(0).0,
        }
    }
}

impl RbacCache {
    /// An empty cache (fill it with [`RbacCache::spawn`]).
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Keeps the cache in step with `store` (list, then watch; relists after errors).
    pub fn spawn(self: &Arc<Self>, store: Arc<dyn Storage>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                let listed = match store.list(PREFIX, ListOptions::default()).await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(error = %e, "RBAC cache: list failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                let mut snap = Snapshot::default();
                for kv in &listed.items {
                    snap.apply(&kv.key, Some(&kv.value));
                }
                me.snap.store(Arc::new(snap));
                me.revision.send_replace(listed.revision);
                let mut stream = match store.watch(PREFIX, true, listed.revision).await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "RBAC cache: watch failed; relisting");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                };
                while let Some(item) = stream.next().await {
                    match item {
                        Ok(WatchItem::Event(ev)) => {
                            let mut snap = Snapshot::clone(&me.snap.load());
                            let value = (ev.kind != EventKind::Deleted).then_some(&ev.kv.value[..]);
                            snap.apply(&ev.kv.key, value);
                            me.snap.store(Arc::new(snap));
                            me.revision.send_replace(ev.revision());
                        }
                        Ok(WatchItem::Progress(rev)) => {
                            me.revision.send_if_modified(|r| {
                                let newer = rev > *r;
                                if newer {
                                    *r = rev;
                                }
                                newer
                            });
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "RBAC cache: watch ended; relisting");
                            break;
                        }
                    }
                }
            }
        })
    }

    /// Waits (up to `timeout`) until the cache has seen revision `rev`: a client that wrote an
    /// RBAC object through this server is authorized by it on its next request.
    pub async fn wait_for(&self, rev: Revision, timeout: Duration) {
        let mut rx = self.revision.subscribe();
        let _ = tokio::time::timeout(timeout, rx.wait_for(|r| *r >= rev)).await;
    }

    /// The newest revision seen.
    pub fn revision(&self) -> Revision {
        *self.revision.borrow()
    }

    /// RBAC's decision for `user` doing `a`: allowed by a binding, or no opinion.
    pub fn authorize(&self, user: &UserInfo, a: &Attributes) -> Decision {
        let snap = self.snap.load();
        for b in snap.applicable(&a.namespace) {
            if !b
                .subjects
                .iter()
                .any(|s| subject_matches(s, user, &b.namespace))
            {
                continue;
            }
            let Some(rules) = snap.rules_of(b) else {
                continue;
            };
            if rules.iter().any(|r| rule_allows(r, a)) {
                return Decision::Allow(format!(
                    "RBAC: allowed by {} of {} {:?} to {:?}",
                    b.describe, b.role_kind, b.role_name, user.username
                ));
            }
        }
        Decision::NoOpinion
    }

    /// Every rule `user` holds in `namespace` (cluster-wide rules included).
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> Vec<PolicyRule> {
        let snap = self.snap.load();
        let mut out = Vec::new();
        for b in snap.applicable(namespace) {
            if b.subjects
                .iter()
                .any(|s| subject_matches(s, user, &b.namespace))
                && let Some(rules) = snap.rules_of(b)
            {
                out.extend(rules.iter().cloned());
            }
        }
        out
    }

    /// The rules of a role a binding refers to (`None` when it does not exist).
    pub fn role_rules(&self, kind: &str, namespace: &str, name: &str) -> Option<Vec<PolicyRule>> {
        let snap = self.snap.load();
        match kind {
            "ClusterRole" => snap.cluster_roles.get(name).map(|r| r.to_vec()),
            "Role" => snap
                .roles
                .get(&(namespace.to_string(), name.to_string()))
                .map(|r| r.to_vec()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> PolicyRule {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        PolicyRule {
            verbs: v(verbs),
            api_groups: Some(v(groups)),
            resources: Some(v(resources)),
            ..Default::default()
        }
    }

    fn attrs(verb: &str, group: &str, resource: &str, sub: &str, ns: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            resource_request: true,
            api_group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: ns.into(),
            ..Default::default()
        }
    }

    #[test]
    fn rules_match_like_kubernetes() {
        let r = rule(&["get", "list"], &[""], &["pods", "pods/log"]);
        assert!(rule_allows(&r, &attrs("list", "", "pods", "", "default")));
        assert!(rule_allows(&r, &attrs("get", "", "pods", "log", "default")));
        assert!(!rule_allows(
            &r,
            &attrs("get", "", "pods", "status", "default")
        ));
        assert!(!rule_allows(
            &r,
            &attrs("create", "", "pods", "", "default")
        ));
        assert!(!rule_allows(
            &r,
            &attrs("list", "apps", "pods", "", "default")
        ));
        let all = rule(&["*"], &["*"], &["*"]);
        assert!(rule_allows(
            &all,
            &attrs("delete", "apps", "deployments", "scale", "")
        ));
        let scale = rule(&["update"], &["apps"], &["*/scale"]);
        assert!(rule_allows(
            &scale,
            &attrs("update", "apps", "deployments", "scale", "x")
        ));
        assert!(!rule_allows(
            &scale,
            &attrs("update", "apps", "deployments", "", "x")
        ));
        let mut named = rule(&["get"], &[""], &["configmaps"]);
        named.resource_names = Some(vec!["one".into()]);
        let mut a = attrs("get", "", "configmaps", "", "x");
        assert!(!rule_allows(&named, &a));
        a.name = "one".into();
        assert!(rule_allows(&named, &a));
        let urls = PolicyRule {
            verbs: vec!["get".into()],
            non_resource_urls: Some(vec!["/healthz".into(), "/apis/*".into()]),
            ..Default::default()
        };
        let path = |p: &str| Attributes {
            verb: "get".into(),
            path: p.into(),
            ..Default::default()
        };
        assert!(rule_allows(&urls, &path("/healthz")));
        assert!(rule_allows(&urls, &path("/apis/apps/v1")));
        assert!(!rule_allows(&urls, &path("/metrics")));
    }

    #[test]
    fn subjects_and_bindings() {
        let jane = UserInfo::authenticated("jane", "", vec!["dev".into()]);
        let sa = UserInfo::authenticated("system:serviceaccount:ns1:bot", "", vec![]);
        let s = |kind: &str, name: &str, ns: Option<&str>| Subject {
            kind: kind.into(),
            name: name.into(),
            namespace: ns.map(str::to_string),
            ..Default::default()
        };
        assert!(subject_matches(&s("User", "jane", None), &jane, ""));
        assert!(subject_matches(&s("Group", "dev", None), &jane, ""));
        assert!(!subject_matches(&s("Group", "ops", None), &jane, ""));
        assert!(subject_matches(
            &s("ServiceAccount", "bot", None),
            &sa,
            "ns1"
        ));
        assert!(subject_matches(
            &s("ServiceAccount", "bot", Some("ns1")),
            &sa,
            "other"
        ));
        assert!(!subject_matches(
            &s("ServiceAccount", "bot", None),
            &sa,
            "ns2"
        ));

        let mut snap = Snapshot::default();
        let role = serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "reader", "namespace": "ns1"},
            "rules": [{"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]}]});
        let rb = serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "jane-reads", "namespace": "ns1"},
            "subjects": [{"kind": "User", "name": "jane"}],
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"}});
        snap.apply(
            &format!("{PREFIX}roles/ns1/reader"),
            Some(&serde_json::to_vec(&role).unwrap()),
        );
        snap.apply(
            &format!("{PREFIX}rolebindings/ns1/jane-reads"),
            Some(&serde_json::to_vec(&rb).unwrap()),
        );
        let cache = RbacCache::default();
        cache.snap.store(Arc::new(snap.clone()));
        assert!(matches!(
            cache.authorize(&jane, &attrs("list", "", "pods", "", "ns1")),
            Decision::Allow(_)
        ));
        assert_eq!(
            cache.authorize(&jane, &attrs("list", "", "pods", "", "ns2")),
            Decision::NoOpinion
        );
        assert_eq!(
            cache.authorize(&jane, &attrs("list", "", "pods", "", "")),
            Decision::NoOpinion
        );
        assert_eq!(cache.rules_for(&jane, "ns1").len(), 1);
        snap.apply(&format!("{PREFIX}roles/ns1/reader"), None);
        cache.snap.store(Arc::new(snap));
        assert_eq!(
            cache.authorize(&jane, &attrs("list", "", "pods", "", "ns1")),
            Decision::NoOpinion
        );
    }

    #[test]
    fn escalation_checks() {
        let owner = vec![rule(&["get", "list"], &[""], &["pods", "configmaps"])];
        assert!(covers(&owner, &rule(&["get"], &[""], &["pods"])).is_ok());
        assert!(covers(&owner, &rule(&["delete"], &[""], &["pods"])).is_err());
        assert!(covers(&owner, &rule(&["get"], &[""], &["secrets"])).is_err());
        assert!(covers(&owner, &rule(&["*"], &[""], &["pods"])).is_err());
        let admin = vec![rule(&["*"], &["*"], &["*"])];
        assert!(covers(&admin, &rule(&["*"], &["*"], &["*"])).is_ok());
        let mut named = rule(&["get"], &[""], &["configmaps"]);
        named.resource_names = Some(vec!["a".into()]);
        assert!(covers(&owner, &named).is_ok());
        let owner_named = vec![named.clone()];
        assert!(covers(&owner_named, &rule(&["get"], &[""], &["configmaps"])).is_err());
    }
}
