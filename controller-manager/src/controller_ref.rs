//! Claiming objects through controller references (Kubernetes' `ControllerRefManager`): a
//! controller keeps what it controls and its selector still matches, releases what it controls
//! but no longer matches, and adopts orphans that match — never objects another controller
//! owns. Adoption and release are JSON merge patches of `metadata.ownerReferences` carrying the
//! object's resourceVersion, so they fail with a conflict rather than overwrite a concurrent
//! change.

use std::fmt::Debug;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource};
use rkube_machinery::selector::LabelSelector;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::podutil::controller_of;
use crate::runner::is_not_found;

/// What to do with one candidate object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Ours and matching: keep.
    Owned,
    /// An orphan that matches: adopt.
    Adopt,
    /// Ours but no longer matching: release.
    Release,
    /// Someone else's, or not for us.
    Ignore,
}

/// Decides the fate of `obj` for the controller `owner_uid` (`ClaimObject`).
pub fn decide(
    owner_uid: &str,
    owner_namespace: Option<&str>,
    owner_deleting: bool,
    selector: &LabelSelector,
    obj: &ObjectMeta,
) -> Claim {
    let matches = selector.matches_opt(obj.labels.as_ref());
    match controller_of(obj) {
        Some(r) if r.uid != owner_uid => Claim::Ignore,
        Some(_) if matches => Claim::Owned,
        Some(_) if owner_deleting => Claim::Ignore,
        Some(_) => Claim::Release,
        None => {
            let other_namespace =
                owner_namespace.is_some_and(|ns| Some(ns) != obj.namespace.as_deref());
            if owner_deleting || !matches || obj.deletion_timestamp.is_some() || other_namespace {
                Claim::Ignore
            } else {
                Claim::Adopt
            }
        }
    }
}

/// Why a claim failed.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// The owner changed (deleted, recreated) since it was read; adoption must wait.
    #[error("{kind} {owner} cannot adopt: {reason}")]
    CannotAdopt {
        /// Owner kind.
        kind: String,
        /// Owner key.
        owner: String,
        /// Why.
        reason: String,
    },
    /// The patch failed.
    #[error("{action} {object}: {source}")]
    Patch {
        /// adopt or release.
        action: &'static str,
        /// The object's key.
        object: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

/// Adopts, releases and keeps `candidates` for the controller described by `owner_ref`, and
/// returns what the controller now controls. `can_adopt` is asked once, before the first
/// adoption: it re-reads the owner from the API (an uncached read) to make sure it still
/// exists with the same UID and is not being deleted.
pub async fn claim<K, F, Fut>(
    api: &Api<K>,
    owner_ref: &OwnerReference,
    owner_namespace: Option<&str>,
    owner_deleting: bool,
    selector: &LabelSelector,
    candidates: Vec<Arc<K>>,
    can_adopt: F,
) -> Result<Vec<Arc<K>>, ClaimError>
where
    K: Resource + Clone + Serialize + DeserializeOwned + Debug,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    claim_with_finalizer(
        api,
        owner_ref,
        owner_namespace,
        owner_deleting,
        selector,
        candidates,
        can_adopt,
        None,
    )
    .await
}

/// [`claim`], adding `finalizer` to the objects it adopts in the same patch (the Job
/// controller's `batch.kubernetes.io/job-tracking`, so an adopted pod is counted before it can
/// disappear).
#[allow(clippy::too_many_arguments)]
pub async fn claim_with_finalizer<K, F, Fut>(
    api: &Api<K>,
    owner_ref: &OwnerReference,
    owner_namespace: Option<&str>,
    owner_deleting: bool,
    selector: &LabelSelector,
    candidates: Vec<Arc<K>>,
    can_adopt: F,
    finalizer: Option<&str>,
) -> Result<Vec<Arc<K>>, ClaimError>
where
    K: Resource + Clone + Serialize + DeserializeOwned + Debug,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let mut claimed = Vec::new();
    let mut first_error = None;
    let mut can_adopt = Some(can_adopt);
    let mut adopt_allowed: Option<Result<(), String>> = None;
    for obj in candidates {
        let meta = obj.meta();
        match decide(
            &owner_ref.uid,
            owner_namespace,
            owner_deleting,
            selector,
            meta,
        ) {
            Claim::Owned => claimed.push(obj),
            Claim::Ignore => {}
            Claim::Adopt => {
                if adopt_allowed.is_none() {
                    let check = can_adopt.take().expect("asked once");
                    adopt_allowed = Some(check().await);
                }
                if let Some(Err(reason)) = &adopt_allowed {
                    first_error.get_or_insert(ClaimError::CannotAdopt {
                        kind: owner_ref.kind.clone(),
                        owner: owner_ref.name.clone(),
                        reason: reason.clone(),
                    });
                    continue;
                }
                let mut refs = meta.owner_references.clone().unwrap_or_default();
                refs.push(owner_ref.clone());
                let finalizers = finalizer.map(|f| {
                    let mut all = meta.finalizers.clone().unwrap_or_default();
                    if !all.iter().any(|x| x == f) {
                        all.push(f.to_string());
                    }
                    all
                });
                match patch_owner_refs(api, meta, refs, finalizers).await {
                    Ok(Some(updated)) => claimed.push(Arc::new(updated)),
                    Ok(None) => {}
                    Err(source) => {
                        first_error.get_or_insert(ClaimError::Patch {
                            action: "adopt",
                            object: crate::podutil::key(meta),
                            source,
                        });
                    }
                }
            }
            Claim::Release => {
                let refs: Vec<OwnerReference> = meta
                    .owner_references
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|r| r.uid != owner_ref.uid)
                    .collect();
                if let Err(source) = patch_owner_refs(api, meta, refs, None).await {
                    first_error.get_or_insert(ClaimError::Patch {
                        action: "release",
                        object: crate::podutil::key(meta),
                        source,
                    });
                }
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(claimed),
    }
}

/// Writes `refs` as the object's owner references, and `finalizers` as its finalizers when
/// given (a merge patch with its resourceVersion and UID as preconditions). `Ok(None)` if the
/// object is gone.
async fn patch_owner_refs<K>(
    api: &Api<K>,
    meta: &ObjectMeta,
    refs: Vec<OwnerReference>,
    finalizers: Option<Vec<String>>,
) -> Result<Option<K>, kube::Error>
where
    K: Resource + Clone + Serialize + DeserializeOwned + Debug,
{
    let mut patch = serde_json::json!({
        "metadata": {
            "resourceVersion": meta.resource_version,
            "uid": meta.uid,
            "ownerReferences": if refs.is_empty() { serde_json::Value::Null } else { serde_json::to_value(&refs).unwrap_or_default() },
        }
    });
    if let Some(f) = finalizers {
        patch["metadata"]["finalizers"] = serde_json::json!(f);
    }
    let name = meta.name.clone().unwrap_or_default();
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(o) => Ok(Some(o)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn meta(labels: &[(&str, &str)], controller: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            name: Some("p".into()),
            namespace: Some("ns".into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
            ),
            owner_references: controller.map(|uid| {
                vec![OwnerReference {
                    uid: uid.into(),
                    controller: Some(true),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        }
    }

    #[test]
    fn claim_decisions_follow_controller_ref_manager() {
        let sel = LabelSelector::parse("app=web").unwrap();
        let ns = Some("ns");
        assert_eq!(
            decide("me", ns, false, &sel, &meta(&[("app", "web")], Some("me"))),
            Claim::Owned
        );
        assert_eq!(
            decide("me", ns, true, &sel, &meta(&[("app", "web")], Some("me"))),
            Claim::Owned
        );
        assert_eq!(
            decide("me", ns, false, &sel, &meta(&[("app", "db")], Some("me"))),
            Claim::Release
        );
        assert_eq!(
            decide("me", ns, true, &sel, &meta(&[("app", "db")], Some("me"))),
            Claim::Ignore
        );
        assert_eq!(
            decide("me", ns, false, &sel, &meta(&[("app", "web")], Some("you"))),
            Claim::Ignore
        );
        assert_eq!(
            decide("me", ns, false, &sel, &meta(&[("app", "web")], None)),
            Claim::Adopt
        );
        assert_eq!(
            decide("me", ns, true, &sel, &meta(&[("app", "web")], None)),
            Claim::Ignore
        );
        assert_eq!(
            decide("me", ns, false, &sel, &meta(&[("app", "db")], None)),
            Claim::Ignore
        );
        assert_eq!(
            decide(
                "me",
                Some("other"),
                false,
                &sel,
                &meta(&[("app", "web")], None)
            ),
            Claim::Ignore
        );
        let mut deleting = meta(&[("app", "web")], None);
        deleting.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            jiff::Timestamp::now(),
        ));
        assert_eq!(decide("me", ns, false, &sel, &deleting), Claim::Ignore);
    }
}
