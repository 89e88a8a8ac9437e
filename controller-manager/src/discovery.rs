//! The API's resources as discovery lists them, for the controllers that handle every kind:
//! the garbage collector (watch, get, patch, delete anything with owner references) and the
//! namespace controller (delete everything in a namespace).

use std::collections::HashMap;

use kube::Client;
use kube::core::discovery::{ApiResource, Scope, verbs};
use kube::discovery::Discovery;

/// One resource.
#[derive(Clone, Debug)]
pub struct Resource {
    /// Group, version, kind, plural.
    pub api: ApiResource,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Supported verbs.
    pub verbs: Vec<String>,
}

impl Resource {
    /// Whether the resource supports a verb.
    pub fn supports(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }
}

/// Every resource, looked up by group and kind.
#[derive(Clone, Debug, Default)]
pub struct Resources {
    all: Vec<Resource>,
    by_group_kind: HashMap<(String, String), usize>,
}

/// The group of an apiVersion (`apps/v1` → `apps`, `v1` → ``).
pub fn group_of(api_version: &str) -> &str {
    api_version.split_once('/').map(|(g, _)| g).unwrap_or("")
}

impl Resources {
    /// Runs discovery (preferred version of each group).
    pub async fn discover(client: Client) -> Result<Self, kube::Error> {
        let discovery = Discovery::new(client).run().await?;
        let mut all = Vec::new();
        for group in discovery.groups() {
            for (ar, caps) in group.recommended_resources() {
                all.push(Resource {
                    namespaced: caps.scope == Scope::Namespaced,
                    verbs: caps.operations.clone(),
                    api: ar,
                });
            }
        }
        Ok(Self::from_list(all))
    }

    /// Resources from a list (tests).
    pub fn from_list(all: Vec<Resource>) -> Self {
        let by_group_kind = all
            .iter()
            .enumerate()
            .map(|(i, r)| ((r.api.group.clone(), r.api.kind.clone()), i))
            .collect();
        Self { all, by_group_kind }
    }

    /// Every resource.
    pub fn all(&self) -> &[Resource] {
        &self.all
    }

    /// The resource of an apiVersion and kind, addressed at that apiVersion's version.
    pub fn lookup(&self, api_version: &str, kind: &str) -> Option<Resource> {
        let i = self
            .by_group_kind
            .get(&(group_of(api_version).to_string(), kind.to_string()))?;
        let mut r = self.all[*i].clone();
        if r.api.api_version != api_version {
            r.api.api_version = api_version.to_string();
            r.api.version = api_version
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_string();
        }
        Some(r)
    }

    /// Resources that can be listed, watched and deleted.
    pub fn collectable(&self) -> impl Iterator<Item = &Resource> {
        self.all.iter().filter(|r| {
            r.supports(verbs::LIST) && r.supports(verbs::WATCH) && r.supports(verbs::DELETE)
        })
    }
}
