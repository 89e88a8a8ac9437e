//! Emptying a namespace (Kubernetes' `NamespacedResourcesDeleter`): every namespaced resource
//! that can be listed and deleted is deleted — with one deletecollection where the resource
//! supports it, else object by object — in the background propagation mode, and then listed
//! again to report what is left, which finalizers hold it, and how long graceful pod
//! deletions may still take.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::join_all;
use kube::api::{DeleteParams, DynamicObject, ListParams};
use kube::core::discovery::verbs;
use kube::{Api, Client};

use crate::discovery::{Resource, Resources};

/// What a pass left behind.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// `resource.group` → objects left.
    pub remaining: Vec<(String, usize)>,
    /// Finalizer → objects holding it.
    pub finalizers: Vec<(String, usize)>,
    /// Deletions or lists that failed.
    pub errors: Vec<String>,
    /// How long graceful deletions may still take.
    pub estimate: Option<Duration>,
}

impl Outcome {
    /// Whether the namespace is empty.
    pub fn is_empty(&self) -> bool {
        self.remaining.is_empty() && self.errors.is_empty()
    }
}

struct One {
    label: String,
    left: usize,
    finalizers: Vec<String>,
    error: Option<String>,
    grace: Option<i64>,
}

async fn delete_resource(client: &Client, r: &Resource, ns: &str) -> One {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &r.api);
    let label = format!("{}.{}", r.api.plural, r.api.group);
    let mut one = One {
        label: label.clone(),
        left: 0,
        finalizers: vec![],
        error: None,
        grace: None,
    };
    let background = DeleteParams::background();
    let mut collection_done = false;
    if r.supports(verbs::DELETE_COLLECTION) {
        match api
            .delete_collection(&background, &ListParams::default())
            .await
        {
            Ok(_) => collection_done = true,
            Err(kube::Error::Api(s)) if s.code == 405 || s.code == 404 => {}
            Err(e) => one.error = Some(format!("{label}: {e}")),
        }
    }
    let list = match api.list(&ListParams::default()).await {
        Ok(l) => l.items,
        Err(e) => {
            one.error = Some(format!("{label}: {e}"));
            return one;
        }
    };
    if !collection_done {
        for o in &list {
            if o.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let name = o.metadata.name.clone().unwrap_or_default();
            match api.delete(&name, &background).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => one.error = Some(format!("{label}: {e}")),
            }
        }
    }
    // What is still there after the deletions (graceful or finalized objects).
    let left = if collection_done {
        list
    } else {
        match api.list(&ListParams::default()).await {
            Ok(l) => l.items,
            Err(e) => {
                one.error = Some(format!("{label}: {e}"));
                return one;
            }
        }
    };
    one.left = left.len();
    for o in &left {
        one.finalizers
            .extend(o.metadata.finalizers.iter().flatten().cloned());
        if let Some(g) = o.metadata.deletion_grace_period_seconds {
            one.grace = Some(one.grace.unwrap_or(0).max(g));
        }
    }
    one
}

/// Deletes everything in namespace `ns` and reports what is left.
pub async fn delete_all(client: &Client, resources: &Resources, ns: &str) -> Outcome {
    let targets: Vec<&Resource> = resources
        .all()
        .iter()
        .filter(|r| r.namespaced && r.supports(verbs::LIST) && r.supports(verbs::DELETE))
        .collect();
    let results = join_all(targets.iter().map(|r| delete_resource(client, r, ns))).await;
    let mut out = Outcome::default();
    let mut finalizers: BTreeMap<String, usize> = BTreeMap::new();
    for one in results {
        if one.left > 0 {
            out.remaining.push((one.label, one.left));
        }
        for f in one.finalizers {
            *finalizers.entry(f).or_default() += 1;
        }
        if let Some(e) = one.error {
            out.errors.push(e);
        }
        if let Some(g) = one.grace {
            let g = Duration::from_secs(g.max(0) as u64);
            out.estimate = Some(out.estimate.map_or(g, |e: Duration| e.max(g)));
        }
    }
    out.remaining.sort();
    out.finalizers = finalizers.into_iter().collect();
    out
}
