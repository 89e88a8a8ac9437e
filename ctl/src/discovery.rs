//! Which resources the server serves, from kube-rs's discovery calls (aggregated discovery,
//! falling back to the per-group documents), and kubectl's rules for naming them: plural,
//! singular, short name or kind, optionally qualified as `resource.group` or
//! `resource.version.group`, case-insensitive; categories such as `all`; kinds of manifests by
//! `apiVersion` and `kind`.

use kube::Client;
use kube::discovery::ApiResource;

/// A resource the server serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceInfo {
    /// API group (`""` for the core group).
    pub group: String,
    /// API version.
    pub version: String,
    /// Plural resource name (`deployments`).
    pub resource: String,
    /// Kind (`Deployment`).
    pub kind: String,
    /// Singular name (`deployment`).
    pub singular: String,
    /// Short names (`deploy`).
    pub short_names: Vec<String>,
    /// Categories (`all`).
    pub categories: Vec<String>,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Verbs.
    pub verbs: Vec<String>,
    /// Subresources (`status`, `scale`, `log`…).
    pub subresources: Vec<String>,
    /// Whether the version is the group's preferred one.
    pub preferred: bool,
}

impl ResourceInfo {
    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `resource.group` (`deployments.apps`), or the plural alone for the core group, as the
    /// server names resources in messages.
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    /// `kind.group` lower-cased (`deployment.apps`), the prefix of `-o name`.
    pub fn kind_prefix(&self) -> String {
        if self.group.is_empty() {
            self.kind.to_lowercase()
        } else {
            format!("{}.{}", self.kind.to_lowercase(), self.group)
        }
    }

    /// kube-rs's description of the resource, for `Api<DynamicObject>`.
    pub fn api_resource(&self) -> ApiResource {
        ApiResource {
            group: self.group.clone(),
            version: self.version.clone(),
            api_version: self.api_version(),
            kind: self.kind.clone(),
            plural: self.resource.clone(),
        }
    }

    /// The collection path, in `namespace` if the resource is namespaced and one is given.
    pub fn collection_path(&self, namespace: Option<&str>) -> String {
        let mut p = if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        if self.namespaced
            && let Some(ns) = namespace
        {
            p.push_str("/namespaces/");
            p.push_str(ns);
        }
        p.push('/');
        p.push_str(&self.resource);
        p
    }

    /// The path of one object.
    pub fn object_path(&self, namespace: Option<&str>, name: &str) -> String {
        format!("{}/{name}", self.collection_path(namespace))
    }

    /// Whether the resource supports a verb.
    pub fn has_verb(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }
}

/// Why a resource type could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// No resource matches the name.
    #[error("the server doesn't have a resource type \"{0}\"")]
    UnknownType(String),
    /// No resource serves the kind.
    #[error("no matches for kind \"{kind}\" in version \"{api_version}\"")]
    UnknownKind {
        /// The kind.
        kind: String,
        /// The apiVersion.
        api_version: String,
    },
    /// The discovery requests failed.
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

/// Everything the server serves, in kubectl's priority order (the core group first).
#[derive(Debug, Clone, Default)]
pub struct Discovered {
    /// All resources of all served versions (subresources not included).
    pub resources: Vec<ResourceInfo>,
    /// `group/version` strings, in server order.
    pub group_versions: Vec<String>,
}

impl Discovered {
    /// Fetches discovery: aggregated (two requests) or, if the server lacks it, per group.
    pub async fn load(client: &Client) -> Result<Discovered, DiscoveryError> {
        match Self::load_aggregated(client).await {
            Ok(d) if !d.resources.is_empty() => Ok(d),
            _ => Self::load_legacy(client).await,
        }
    }

    async fn load_aggregated(client: &Client) -> Result<Discovered, DiscoveryError> {
        let core = client.list_core_api_versions_aggregated().await?;
        let apis = client.list_api_groups_aggregated().await?;
        let mut d = Discovered::default();
        for g in core.items.into_iter().chain(apis.items) {
            let group = g.metadata.and_then(|m| m.name).unwrap_or_default();
            for (vi, v) in g.versions.into_iter().enumerate() {
                let version = v.version.unwrap_or_default();
                d.group_versions.push(if group.is_empty() {
                    version.clone()
                } else {
                    format!("{group}/{version}")
                });
                for r in v.resources {
                    let kind = r
                        .response_kind
                        .as_ref()
                        .and_then(|k| k.kind.clone())
                        .unwrap_or_default();
                    d.resources.push(ResourceInfo {
                        group: group.clone(),
                        version: version.clone(),
                        resource: r.resource.unwrap_or_default(),
                        singular: r
                            .singular_resource
                            .filter(|s| !s.is_empty())
                            .unwrap_or_else(|| kind.to_lowercase()),
                        kind,
                        short_names: r.short_names,
                        categories: r.categories,
                        namespaced: r.scope.as_deref() == Some("Namespaced"),
                        verbs: r.verbs,
                        subresources: r
                            .subresources
                            .into_iter()
                            .filter_map(|s| s.subresource)
                            .collect(),
                        preferred: vi == 0,
                    });
                }
            }
        }
        Ok(d)
    }

    async fn load_legacy(client: &Client) -> Result<Discovered, DiscoveryError> {
        let mut d = Discovered::default();
        let core = client.list_core_api_versions().await?;
        let mut gvs: Vec<(String, String, bool)> = core
            .versions
            .iter()
            .enumerate()
            .map(|(i, v)| (String::new(), v.clone(), i == 0))
            .collect();
        let groups = client.list_api_groups().await?;
        for g in groups.groups {
            let preferred = g.preferred_version.map(|p| p.version);
            for v in g.versions {
                let is_pref = preferred.as_deref() == Some(v.version.as_str());
                gvs.push((g.name.clone(), v.version, is_pref));
            }
        }
        for (group, version, preferred) in gvs {
            let list = if group.is_empty() {
                client.list_core_api_resources(&version).await?
            } else {
                client
                    .list_api_group_resources(&format!("{group}/{version}"))
                    .await?
            };
            d.group_versions.push(list.group_version.clone());
            let mut subs: Vec<(String, String)> = Vec::new();
            for r in &list.resources {
                if let Some((parent, sub)) = r.name.split_once('/') {
                    subs.push((parent.to_string(), sub.to_string()));
                }
            }
            for r in list.resources {
                if r.name.contains('/') {
                    continue;
                }
                d.resources.push(ResourceInfo {
                    group: group.clone(),
                    version: version.clone(),
                    subresources: subs
                        .iter()
                        .filter(|(p, _)| p == &r.name)
                        .map(|(_, s)| s.clone())
                        .collect(),
                    singular: if r.singular_name.is_empty() {
                        r.kind.to_lowercase()
                    } else {
                        r.singular_name
                    },
                    resource: r.name,
                    kind: r.kind,
                    short_names: r.short_names.unwrap_or_default(),
                    categories: r.categories.unwrap_or_default(),
                    namespaced: r.namespaced,
                    verbs: r.verbs,
                    preferred,
                });
            }
        }
        Ok(d)
    }

    /// Resolves a resource type argument (`po`, `pods`, `Pod`, `deployments.apps`,
    /// `deployments.v1.apps`) to the resource in the group's preferred version.
    pub fn resolve(&self, arg: &str) -> Result<&ResourceInfo, DiscoveryError> {
        let lower = arg.to_lowercase();
        let matches_name = |r: &ResourceInfo, name: &str| {
            r.resource == name
                || r.singular == name
                || r.kind.to_lowercase() == name
                || r.short_names.iter().any(|s| s == name)
        };
        // Unqualified: preferred versions, core first.
        let mut candidates: Vec<&ResourceInfo> = self
            .resources
            .iter()
            .filter(|r| r.preferred && matches_name(r, &lower))
            .collect();
        if candidates.is_empty() {
            // `resource.group` or `resource.version.group`.
            let parts: Vec<&str> = lower.splitn(2, '.').collect();
            if parts.len() == 2 {
                let (name, rest) = (parts[0], parts[1]);
                candidates = self
                    .resources
                    .iter()
                    .filter(|r| matches_name(r, name) && r.preferred && r.group == rest)
                    .collect();
                if candidates.is_empty()
                    && let Some((version, group)) = rest.split_once('.')
                {
                    candidates = self
                        .resources
                        .iter()
                        .filter(|r| {
                            matches_name(r, name) && r.version == version && r.group == group
                        })
                        .collect();
                }
                if candidates.is_empty() && !rest.contains('.') {
                    // `resource.version` of the core group.
                    candidates = self
                        .resources
                        .iter()
                        .filter(|r| {
                            matches_name(r, name) && r.group.is_empty() && r.version == rest
                        })
                        .collect();
                }
            }
        }
        candidates
            .into_iter()
            .next()
            .ok_or_else(|| DiscoveryError::UnknownType(arg.to_string()))
    }

    /// The resource serving a kind in an `apiVersion`.
    pub fn for_kind(&self, api_version: &str, kind: &str) -> Result<&ResourceInfo, DiscoveryError> {
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        self.resources
            .iter()
            .find(|r| r.group == group && r.version == version && r.kind == kind)
            .ok_or_else(|| DiscoveryError::UnknownKind {
                kind: kind.to_string(),
                api_version: api_version.to_string(),
            })
    }

    /// The resources of a category (`all`), preferred versions only, in priority order.
    pub fn category(&self, name: &str) -> Vec<&ResourceInfo> {
        let mut out: Vec<&ResourceInfo> = Vec::new();
        for r in self
            .resources
            .iter()
            .filter(|r| r.preferred && r.categories.iter().any(|c| c == name))
        {
            // A resource served by two groups (events) counts once.
            if !out
                .iter()
                .any(|o| o.resource == r.resource && o.kind == r.kind)
            {
                out.push(r);
            }
        }
        out
    }

    /// Resolves a type argument that may be a category.
    pub fn resolve_many(&self, arg: &str) -> Result<Vec<&ResourceInfo>, DiscoveryError> {
        match self.resolve(arg) {
            Ok(r) => Ok(vec![r]),
            Err(e) => {
                let cat = self.category(&arg.to_lowercase());
                if cat.is_empty() { Err(e) } else { Ok(cat) }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn res(
        group: &str,
        version: &str,
        resource: &str,
        kind: &str,
        short: &[&str],
        cats: &[&str],
        preferred: bool,
    ) -> ResourceInfo {
        ResourceInfo {
            group: group.into(),
            version: version.into(),
            resource: resource.into(),
            kind: kind.into(),
            singular: kind.to_lowercase(),
            short_names: short.iter().map(|s| s.to_string()).collect(),
            categories: cats.iter().map(|s| s.to_string()).collect(),
            namespaced: resource != "nodes",
            verbs: vec!["get".into(), "list".into()],
            subresources: vec![],
            preferred,
        }
    }

    pub(crate) fn sample() -> Discovered {
        Discovered {
            resources: vec![
                res("", "v1", "pods", "Pod", &["po"], &["all"], true),
                res("", "v1", "events", "Event", &["ev"], &[], true),
                res("", "v1", "nodes", "Node", &["no"], &[], true),
                res(
                    "apps",
                    "v1",
                    "deployments",
                    "Deployment",
                    &["deploy"],
                    &["all"],
                    true,
                ),
                res("events.k8s.io", "v1", "events", "Event", &["ev"], &[], true),
                res("example.com", "v2", "widgets", "Widget", &[], &[], true),
                res("example.com", "v1", "widgets", "Widget", &[], &[], false),
            ],
            group_versions: vec![],
        }
    }

    #[test]
    fn resolves_like_kubectl() {
        let d = sample();
        for arg in ["po", "pods", "pod", "Pod", "PODS"] {
            assert_eq!(d.resolve(arg).unwrap().resource, "pods", "{arg}");
        }
        assert_eq!(d.resolve("deploy").unwrap().group, "apps");
        assert_eq!(d.resolve("deployments.apps").unwrap().kind, "Deployment");
        assert_eq!(d.resolve("deployments.v1.apps").unwrap().version, "v1");
        assert_eq!(d.resolve("events").unwrap().group, "", "core wins");
        assert_eq!(
            d.resolve("events.events.k8s.io").unwrap().group,
            "events.k8s.io"
        );
        assert_eq!(d.resolve("widgets").unwrap().version, "v2");
        assert_eq!(d.resolve("widgets.v1.example.com").unwrap().version, "v1");
        assert_eq!(
            d.resolve("foos").unwrap_err().to_string(),
            "the server doesn't have a resource type \"foos\""
        );
    }

    #[test]
    fn kinds_and_categories() {
        let d = sample();
        assert_eq!(
            d.for_kind("apps/v1", "Deployment").unwrap().resource,
            "deployments"
        );
        assert_eq!(
            d.for_kind("example.com/v9", "Widget")
                .unwrap_err()
                .to_string(),
            "no matches for kind \"Widget\" in version \"example.com/v9\""
        );
        let all: Vec<&str> = d
            .category("all")
            .iter()
            .map(|r| r.resource.as_str())
            .collect();
        assert_eq!(all, ["pods", "deployments"]);
        assert_eq!(d.resolve_many("all").unwrap().len(), 2);
    }

    #[test]
    fn paths() {
        let d = sample();
        let deploy = d.resolve("deploy").unwrap();
        assert_eq!(
            deploy.collection_path(Some("demo")),
            "/apis/apps/v1/namespaces/demo/deployments"
        );
        assert_eq!(deploy.collection_path(None), "/apis/apps/v1/deployments");
        let node = d.resolve("no").unwrap();
        assert_eq!(node.object_path(Some("demo"), "n1"), "/api/v1/nodes/n1");
        assert_eq!(deploy.group_resource(), "deployments.apps");
        assert_eq!(deploy.kind_prefix(), "deployment.apps");
    }
}
