//! Creating and deleting pods to match `spec.replicas` (`manageReplicas`): creations in
//! slow-start batches of 1, 2, 4, … so a template that cannot be created fails once instead of
//! a thousand times, at most `burst_replicas` per sync, each announced to the expectations
//! first; deletions of the pods ranked first by [`super::rank`], all at once.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::join_all;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Api;
use kube::api::{DeleteParams, PostParams, Preconditions};

use super::{Ctx, Error, rank};
use crate::podutil::{controller_of, controller_ref, is_active, key};
use crate::runner::{is_namespace_terminating, is_not_found};

/// Runs `f` `count` times in batches of 1, 2, 4, … (each batch concurrently), stopping after
/// the first batch with a failure. Returns the successes and the first error.
pub async fn slow_start_batch<F, Fut, E>(count: usize, initial: usize, f: F) -> (usize, Option<E>)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    let mut remaining = count;
    let mut successes = 0;
    let mut batch = initial.min(remaining);
    while batch > 0 {
        let results = join_all((0..batch).map(|_| f())).await;
        let mut errors = results.into_iter().filter_map(Result::err);
        let first = errors.next();
        let failed = usize::from(first.is_some()) + errors.count();
        successes += batch - failed;
        if first.is_some() {
            return (successes, first);
        }
        remaining -= batch;
        batch = (2 * batch).min(remaining);
    }
    (successes, None)
}

/// The `generateName` prefix of a controller's pods: its name and a dash, or only the name
/// when that would be too long to be valid (`getPodsPrefix`).
fn pod_prefix(name: &str) -> String {
    let prefix = format!("{name}-");
    if prefix.len() > 58 {
        name.to_string()
    } else {
        prefix
    }
}

/// A pod for the template, owned by `owner` (`GetPodFromTemplate`).
pub fn pod_from_template(
    template: &PodTemplateSpec,
    namespace: &str,
    owner_name: &str,
    owner: OwnerReference,
) -> Pod {
    let meta = template.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(pod_prefix(owner_name)),
            namespace: Some(namespace.to_string()),
            labels: meta.labels,
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// The message of an API error as Kubernetes prints it.
pub fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if !s.message.is_empty() => s.message.clone(),
        other => other.to_string(),
    }
}

/// Creates `pod` for `owner` and records it as upstream's controllers do: a
/// `SuccessfulCreate` event, or `FailedCreate` with the API's message. A namespace being
/// deleted is not an error (every further create would fail too).
pub async fn create_pod<K>(
    api: &Api<Pod>,
    recorder: &crate::events::Recorder,
    owner: &K,
    pod: &Pod,
) -> Result<(), kube::Error>
where
    K: kube::Resource<DynamicType = ()>,
{
    match api.create(&PostParams::default(), pod).await {
        Ok(created) => {
            recorder.normal(
                owner,
                "SuccessfulCreate",
                format!("Created pod: {}", created.metadata.name.unwrap_or_default()),
            );
            Ok(())
        }
        Err(e) if is_namespace_terminating(&e) => Ok(()),
        Err(e) => {
            recorder.warning(
                owner,
                "FailedCreate",
                format!("Error creating: {}", api_message(&e)),
            );
            Err(e)
        }
    }
}

/// Creates or deletes pods so that `pods` (the active pods the ReplicaSet controls) reaches
/// `spec.replicas`.
pub async fn manage_replicas(ctx: &Ctx, rs: &ReplicaSet, pods: &[Arc<Pod>]) -> Result<(), Error> {
    let rs_key = key(&rs.metadata);
    let namespace = rs.metadata.namespace.clone().unwrap_or_default();
    let desired = rs
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1)
        .max(0) as usize;
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    if pods.len() < desired {
        let diff = (desired - pods.len()).min(ctx.burst_replicas);
        let template = rs
            .spec
            .as_ref()
            .and_then(|s| s.template.clone())
            .unwrap_or_default();
        if template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.as_ref())
            .is_none_or(BTreeMap::is_empty)
        {
            return Err(Error::NoLabels { key: rs_key });
        }
        // Expect every creation before the first one, so a fast watch cannot beat us.
        ctx.expectations.expect_creations(&rs_key, diff);
        tracing::debug!(replicaset = %rs_key, need = desired, creating = diff, "too few replicas");
        let name = rs.metadata.name.clone().unwrap_or_default();
        let owner = controller_ref(rs);
        let create = || {
            let pod = pod_from_template(&template, &namespace, &name, owner.clone());
            let api = api.clone();
            async move { create_pod(&api, &ctx.recorder, rs, &pod).await }
        };
        let (successes, err) = slow_start_batch(diff, 1, create).await;
        // Creations that failed or were never attempted will never be observed.
        for _ in successes..diff {
            ctx.expectations.creation_observed(&rs_key);
        }
        if let Some(source) = err {
            return Err(Error::Create {
                key: rs_key,
                source,
            });
        }
    } else if pods.len() > desired {
        let diff = (pods.len() - desired).min(ctx.burst_replicas);
        let related = related_pods(ctx, rs);
        let victims = rank::pods_to_delete(pods, &related, diff, ctx.clock.now());
        ctx.expectations.expect_deletions(
            &rs_key,
            victims.iter().filter_map(|p| p.metadata.uid.clone()),
        );
        tracing::debug!(replicaset = %rs_key, need = desired, deleting = diff, "too many replicas");
        let results = join_all(victims.iter().map(|pod| {
            let api = api.clone();
            let rs_key = rs_key.clone();
            async move {
                let name = pod.metadata.name.clone().unwrap_or_default();
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                let params = DeleteParams {
                    preconditions: Some(Preconditions {
                        uid: Some(uid.clone()),
                        resource_version: None,
                    }),
                    ..Default::default()
                };
                match api.delete(&name, &params).await {
                    Ok(_) => {
                        ctx.recorder
                            .normal(rs, "SuccessfulDelete", format!("Deleted pod: {name}"));
                        Ok(())
                    }
                    Err(e) => {
                        // The watch will not report a deletion that did not happen.
                        ctx.expectations.deletion_observed(&rs_key, &uid);
                        if is_not_found(&e) {
                            Ok(())
                        } else {
                            ctx.recorder.warning(
                                rs,
                                "FailedDelete",
                                format!("Error deleting: {}", api_message(&e)),
                            );
                            Err(e)
                        }
                    }
                }
            }
        }))
        .await;
        if let Some(source) = results.into_iter().find_map(Result::err) {
            return Err(Error::Delete {
                key: rs_key,
                source,
            });
        }
    }
    Ok(())
}

/// The active pods of every ReplicaSet with the same controller as `rs` (its Deployment's
/// other ReplicaSets), for the "doubled up on a node" rank. Empty without a controller.
fn related_pods(ctx: &Ctx, rs: &ReplicaSet) -> Vec<Arc<Pod>> {
    let Some(owner) = controller_of(&rs.metadata) else {
        return vec![];
    };
    let ns = rs.metadata.namespace.as_deref();
    let siblings: Vec<_> = ctx
        .replicasets
        .state()
        .into_iter()
        .filter(|r| {
            r.metadata.namespace.as_deref() == ns
                && controller_of(&r.metadata).is_some_and(|o| o.uid == owner.uid)
        })
        .filter_map(|r| {
            rkube_machinery::selector::LabelSelector::from_k8s(&r.spec.as_ref()?.selector).ok()
        })
        .collect();
    ctx.pods
        .state()
        .into_iter()
        .filter(|p| p.metadata.namespace.as_deref() == ns && is_active(p))
        .filter(|p| {
            siblings
                .iter()
                .any(|s| s.matches_opt(p.metadata.labels.as_ref()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[tokio::test]
    async fn slow_start_doubles_and_stops_at_the_first_failing_batch() {
        let batches = Mutex::new(Vec::<usize>::new());
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let (ok, err) = slow_start_batch(10, 1, || {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async { Ok::<(), ()>(()) }
        })
        .await;
        assert_eq!((ok, err), (10, None));
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 10);

        // Fail from the 4th call on: batches 1, 2 succeed; the batch of 4 fails entirely.
        let n = std::sync::atomic::AtomicUsize::new(0);
        let (ok, err) = slow_start_batch(100, 1, || {
            let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            batches.lock().unwrap().push(i);
            async move { if i >= 3 { Err("quota") } else { Ok(()) } }
        })
        .await;
        assert_eq!(ok, 3);
        assert_eq!(err, Some("quota"));
        assert_eq!(
            batches.lock().unwrap().len(),
            7,
            "1 + 2 + 4 attempts, not 100"
        );
    }

    #[test]
    fn pod_prefix_is_truncated_when_too_long() {
        assert_eq!(pod_prefix("web-5d8f"), "web-5d8f-");
        let long = "x".repeat(60);
        assert_eq!(pod_prefix(&long), long);
    }
}
