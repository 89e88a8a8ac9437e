//! The resourcequota-controller: keeps each ResourceQuota's `status` true — `hard` copied from
//! the spec, `used` summed over the namespace's objects with the same rules the API server's
//! ResourceQuota admission charges by ([`rkube_machinery::quota::usage`]). Admission only adds
//! to `used`; this controller is what gives back what deleted (or finished) objects used, and
//! it fills the status of a new quota, which limits nothing until then.
//!
//! A quota is synced when its spec changes (or it has no status yet), when something of its
//! namespace stops using resources — a pod, service, configmap, secret or claim deleted, a pod
//! finished (Kubernetes' "replenishment") — and every [`RESYNC`], which is also when
//! `count/<resource>.<group>` limits on other kinds are recounted (those are listed through
//! the API). Not on creates, nor on its own status changes: admission has charged a create
//! before the object is stored, and a recount in between would not see the object yet and
//! give its share back too early (Kubernetes' controller syncs on the same events).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Pod, ResourceQuota, ResourceQuotaStatus, Secret, Service,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use kube::api::{DynamicObject, ListParams, PostParams};
use kube::discovery::ApiResource;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource};
use rkube_machinery::quota::{self, Usage};
use serde::Serialize;

use crate::Shared;
use crate::informer::{Change, Informer};
use crate::podutil::key;
use crate::runner::Wiring;

/// The controller's name (`--controllers`).
pub const NAME: &str = "resourcequota-controller";
/// The ServiceAccount (in kube-system) it acts as with `--use-service-account-credentials`.
pub const ACCOUNT: &str = "resourcequota-controller";
/// How often every quota is recounted.
pub const RESYNC: Duration = Duration::from_secs(30);

/// What a reconcile needs.
pub struct Ctx {
    /// The API: pods are listed through it, since the shared pod cache keeps no container
    /// resources (`rkube_machinery::slim::pod_for_controllers`).
    pub client: Client,
    /// The caches of the other kinds counted here: services.
    pub services: Store<Service>,
    /// ConfigMaps.
    pub configmaps: Store<ConfigMap>,
    /// Secrets.
    pub secrets: Store<Secret>,
    /// Claims.
    pub claims: Store<PersistentVolumeClaim>,
    /// Quotas.
    pub quotas: Store<ResourceQuota>,
}

/// Why a quota could not be synced.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Listing objects or writing the status failed.
    #[error("resource quota {key}: {what}: {source}")]
    Api {
        /// The quota.
        key: String,
        /// What was being done.
        what: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

/// Adds what the objects of one kind in `namespace` use to `used`, counting only `keys` and
/// objects the quota's scopes select.
fn add_usage<K: Resource<DynamicType = ()> + Serialize>(
    used: &mut Usage,
    objects: impl IntoIterator<Item = Arc<K>>,
    namespace: &str,
    scopes: &[String],
    keys: &[String],
) {
    let group = K::group(&());
    let resource = K::plural(&());
    for obj in objects {
        if obj.meta().namespace.as_deref() != Some(namespace) {
            continue;
        }
        let Ok(value) = serde_json::to_value(&*obj) else {
            continue;
        };
        if !quota::matches_scopes(scopes, &resource, &value) {
            continue;
        }
        for (k, q) in quota::usage(&group, &resource, &value) {
            if !keys.contains(&k) {
                continue;
            }
            quota::add(used, k, &q);
        }
    }
}

/// The group and plural of a `count/<resource>[.<group>]` key of a kind not cached here.
fn counted_elsewhere(key: &str) -> Option<(String, String)> {
    let rest = key.strip_prefix("count/")?;
    let (resource, group) = rest.split_once('.').unwrap_or((rest, ""));
    let cached = group.is_empty()
        && matches!(
            resource,
            "pods"
                | "services"
                | "configmaps"
                | "secrets"
                | "persistentvolumeclaims"
                | "resourcequotas"
        );
    (!cached).then(|| (group.to_string(), resource.to_string()))
}

/// Counts the objects of `group`/`resource` in `namespace` through the API.
async fn count_through_api(
    client: &Client,
    namespace: &str,
    group: &str,
    resource: &str,
) -> Result<usize, kube::Error> {
    let version = if group.is_empty() {
        "v1".to_string()
    } else {
        kube::discovery::group(client, group)
            .await?
            .preferred_version_or_latest()
            .to_string()
    };
    let ar = ApiResource {
        group: group.to_string(),
        version: version.clone(),
        api_version: if group.is_empty() {
            version
        } else {
            format!("{group}/{version}")
        },
        kind: String::new(),
        plural: resource.to_string(),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &ar);
    Ok(api.list_metadata(&ListParams::default()).await?.items.len())
}

/// Recounts one quota's usage and writes its status when it changed.
pub async fn reconcile(rq: Arc<ResourceQuota>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if rq.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let rq_key = key(&rq.metadata);
    let namespace = rq.metadata.namespace.clone().unwrap_or_default();
    let spec = rq.spec.clone().unwrap_or_default();
    let hard = spec.hard.clone().unwrap_or_default();
    let keys: Vec<String> = hard.keys().cloned().collect();
    let scopes = spec.scopes.clone().unwrap_or_default();
    let mut used = Usage::new();
    let pod_keys = keys.iter().any(|k| {
        matches!(k.as_str(), "pods" | "count/pods" | "cpu" | "memory")
            || k.starts_with("requests.") && k != "requests.storage"
            || k.starts_with("limits.")
    });
    if pod_keys {
        let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
        let listed = pods
            .list(&ListParams::default())
            .await
            .map_err(|source| Error::Api {
                key: rq_key.clone(),
                what: "listing pods".into(),
                source,
            })?;
        add_usage(
            &mut used,
            listed.items.into_iter().map(Arc::new),
            &namespace,
            &scopes,
            &keys,
        );
    }
    if scopes.is_empty() {
        add_usage(&mut used, ctx.services.state(), &namespace, &scopes, &keys);
        add_usage(
            &mut used,
            ctx.configmaps.state(),
            &namespace,
            &scopes,
            &keys,
        );
        add_usage(&mut used, ctx.secrets.state(), &namespace, &scopes, &keys);
        add_usage(&mut used, ctx.claims.state(), &namespace, &scopes, &keys);
        add_usage(&mut used, ctx.quotas.state(), &namespace, &scopes, &keys);
        for k in &keys {
            let Some((group, resource)) = counted_elsewhere(k) else {
                continue;
            };
            let n = count_through_api(&ctx.client, &namespace, &group, &resource)
                .await
                .map_err(|source| Error::Api {
                    key: rq_key.clone(),
                    what: format!("counting {k}"),
                    source,
                })?;
            used.insert(
                k.clone(),
                rkube_machinery::quantity::Quantity::new(
                    i64::try_from(n).unwrap_or(i64::MAX),
                    rkube_machinery::quantity::Format::DecimalSI,
                ),
            );
        }
    }
    // Every limited resource has a used amount, zero when nothing uses it.
    let used: BTreeMap<String, K8sQuantity> = keys
        .iter()
        .map(|k| {
            let q = used
                .get(k)
                .cloned()
                .unwrap_or_else(rkube_machinery::quantity::Quantity::zero);
            (k.clone(), K8sQuantity(q.to_string()))
        })
        .collect();
    let status = ResourceQuotaStatus {
        hard: Some(hard),
        used: Some(used),
    };
    let same = rq.status.as_ref().is_some_and(|s| {
        equal_amounts(s.hard.as_ref(), status.hard.as_ref())
            && equal_amounts(s.used.as_ref(), status.used.as_ref())
    });
    if !same {
        let mut next = (*rq).clone();
        next.status = Some(status);
        let api: Api<ResourceQuota> = Api::namespaced(ctx.client.clone(), &namespace);
        api.replace_status(
            rq.metadata.name.as_deref().unwrap_or_default(),
            &PostParams::default(),
            &next,
        )
        .await
        .map_err(|source| Error::Api {
            key: rq_key,
            what: "updating status".into(),
            source,
        })?;
    }
    Ok(Action::requeue(RESYNC))
}

/// Whether two quantity maps hold equal amounts (`1000m` equals `1`).
fn equal_amounts(
    a: Option<&BTreeMap<String, K8sQuantity>>,
    b: Option<&BTreeMap<String, K8sQuantity>>,
) -> bool {
    let parse = |m: Option<&BTreeMap<String, K8sQuantity>>| -> Usage {
        m.into_iter()
            .flatten()
            .filter_map(|(k, v)| {
                Some((
                    k.clone(),
                    rkube_machinery::quantity::parse_quantity(v).ok()?,
                ))
            })
            .collect()
    };
    let (a, b) = (parse(a), parse(b));
    a == b
}

/// The quotas of the namespace of a changed object.
fn quotas_of_namespace<K: Resource>(
    quotas: &Store<ResourceQuota>,
    obj: &K,
) -> Vec<ObjectRef<ResourceQuota>> {
    let ns = obj.meta().namespace.clone();
    quotas
        .state()
        .iter()
        .filter(|q| q.metadata.namespace == ns)
        .map(|q| ObjectRef::from_obj(&**q))
        .collect()
}

/// The quota triggers of one counted kind: the changes `frees` says give usage back.
fn replenish<K>(
    informer: &Informer<K>,
    quotas: Store<ResourceQuota>,
    frees: fn(&Change<K>) -> bool,
) -> impl futures::Stream<Item = ObjectRef<ResourceQuota>> + Send + 'static
where
    K: crate::informer::Object,
{
    informer.subscribe().flat_map(move |c| {
        let refs = if frees(&c) {
            quotas_of_namespace(&quotas, &**c.object())
        } else {
            Vec::new()
        };
        stream::iter(refs)
    })
}

/// A delete frees what the object used.
fn deleted<K>(c: &Change<K>) -> bool {
    matches!(c, Change::Deleted(_))
}

/// A pod frees its share when deleted, finished or marked for deletion.
fn pod_frees(c: &Change<Pod>) -> bool {
    let done = |p: &Pod| {
        p.metadata.deletion_timestamp.is_some()
            || matches!(
                p.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Succeeded" | "Failed")
            )
    };
    match c {
        Change::Deleted(_) => true,
        Change::Updated { old, new } => !done(old) && done(new),
        Change::Added(_) => false,
    }
}

/// A service frees node ports or a load balancer when deleted or when its type changes.
fn service_frees(c: &Change<Service>) -> bool {
    let type_of = |s: &Service| s.spec.as_ref().and_then(|s| s.type_.clone());
    match c {
        Change::Deleted(_) => true,
        Change::Updated { old, new } => type_of(old) != type_of(new),
        Change::Added(_) => false,
    }
}

/// A quota needs a sync when it is new, its spec changed or its status does not match it.
fn quota_needs_sync(c: &Change<ResourceQuota>) -> bool {
    match c {
        Change::Added(_) => true,
        Change::Deleted(_) => false,
        Change::Updated { old, new } => {
            old.spec != new.spec
                || new.status.as_ref().and_then(|s| s.hard.as_ref())
                    != new.spec.as_ref().and_then(|s| s.hard.as_ref())
        }
    }
}

/// Builds the controller and returns the future that runs it.
pub fn start(shared: &Shared) -> BoxFuture<'static, ()> {
    let quotas = shared.informers.all::<ResourceQuota>();
    let pods = shared.informers.all::<Pod>();
    let services = shared.informers.all::<Service>();
    let configmaps = shared.informers.all::<ConfigMap>();
    let secrets = shared.informers.all::<Secret>();
    let claims = shared.informers.all::<PersistentVolumeClaim>();
    let wiring = Wiring::new(NAME, &shared.metrics, &quotas);
    let ctx = Arc::new(Ctx {
        client: shared.client_for(ACCOUNT),
        services: services.store(),
        configmaps: configmaps.store(),
        secrets: secrets.store(),
        claims: claims.store(),
        quotas: quotas.store(),
    });
    let q = quotas.store();
    let triggers = stream::select_all([
        replenish(&pods, q.clone(), pod_frees).boxed(),
        replenish(&services, q.clone(), service_frees).boxed(),
        replenish(&configmaps, q.clone(), deleted).boxed(),
        replenish(&secrets, q.clone(), deleted).boxed(),
        replenish(&claims, q, deleted).boxed(),
    ]);
    let own = quotas
        .subscribe()
        .filter(|c| std::future::ready(quota_needs_sync(c)))
        .map(|c| c.object().clone());
    let controller = wiring
        .controller_on(own)
        .reconcile_on(wiring.track(triggers));
    Box::pin(wiring.run(controller, 5, ctx, reconcile, shared.shutdown()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{FakeApi, store_of};
    use serde_json::json;

    fn obj<K: serde::de::DeserializeOwned>(v: serde_json::Value) -> K {
        serde_json::from_value(v).unwrap()
    }

    #[tokio::test]
    async fn used_is_summed_over_the_namespace_and_written() {
        let fake = FakeApi::new();
        let rq: ResourceQuota = obj(json!({
            "metadata": {"name": "q", "namespace": "ns"},
            "spec": {"hard": {"pods": "10", "requests.cpu": "2", "configmaps": "5",
                              "services.nodeports": "2"}}
        }));
        fake.insert("v1/resourcequotas", &rq);
        let pod = |name: &str, ns: &str, cpu: &str, phase: &str| -> Pod {
            obj(json!({"metadata": {"name": name, "namespace": ns},
                       "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]},
                       "status": {"phase": phase}}))
        };
        let pods = vec![
            pod("a", "ns", "500m", "Running"),
            pod("b", "ns", "250m", "Pending"),
            pod("done", "ns", "1", "Succeeded"),
            pod("other", "elsewhere", "1", "Running"),
        ];
        let cm: ConfigMap = obj(json!({"metadata": {"name": "c", "namespace": "ns"}}));
        let svc: Service = obj(json!({"metadata": {"name": "s", "namespace": "ns"},
                                      "spec": {"type": "NodePort", "ports": [{"port": 80}]}}));
        for p in &pods {
            fake.insert("v1/pods", p);
        }
        let (services, _w2) = store_of(vec![svc]);
        let (configmaps, _w3) = store_of(vec![cm]);
        let (secrets, _w4) = store_of(Vec::<Secret>::new());
        let (claims, _w5) = store_of(Vec::<PersistentVolumeClaim>::new());
        let (quotas, _w6) = store_of(vec![rq.clone()]);
        let ctx = Arc::new(Ctx {
            client: fake.client(),
            services,
            configmaps,
            secrets,
            claims,
            quotas,
        });
        let action = reconcile(Arc::new(rq), ctx.clone()).await.unwrap();
        assert_eq!(action, Action::requeue(RESYNC));
        let stored: ResourceQuota = fake.get("v1/resourcequotas", "ns", "q").unwrap();
        let used = stored.status.clone().unwrap().used.unwrap();
        let used: BTreeMap<&str, &str> = used
            .iter()
            .map(|(k, v)| (k.as_str(), v.0.as_str()))
            .collect();
        assert_eq!(
            used,
            BTreeMap::from([
                ("configmaps", "1"),
                ("pods", "2"),
                ("requests.cpu", "750m"),
                ("services.nodeports", "1"),
            ])
        );
        assert_eq!(stored.status.unwrap().hard.unwrap().len(), 4);

        // Synced again with nothing changed: no write.
        fake.clear_requests();
        reconcile(
            Arc::new(fake.get("v1/resourcequotas", "ns", "q").unwrap()),
            ctx,
        )
        .await
        .unwrap();
        assert_eq!(fake.count("PUT", "/resourcequotas"), 0);
    }

    #[test]
    fn count_keys_of_other_kinds_are_listed_through_the_api() {
        assert_eq!(
            counted_elsewhere("count/deployments.apps"),
            Some(("apps".to_string(), "deployments".to_string()))
        );
        assert_eq!(counted_elsewhere("count/pods"), None);
        assert_eq!(counted_elsewhere("pods"), None);
    }
}
