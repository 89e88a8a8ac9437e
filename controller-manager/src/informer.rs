//! Shared informers: one watch per kind, feeding a `kube::runtime` reflector store that every
//! controller reads, and fanning each change out to the controllers that subscribed — with the
//! old object on updates and the last known object on deletes (which `kube::runtime`'s shared
//! streams do not deliver), so a deleted pod still wakes the ReplicaSet that owned it.
//!
//! The kinds a set of controllers needs are created once through [`Informers`] (client-go's
//! SharedInformerFactory), started together, and waited for ([`Informers::wait_synced`])
//! before any controller runs, so no controller acts on a half-filled cache.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use futures::channel::mpsc;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::{Lookup, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

/// One change to an object, as an informer's event handlers see it.
#[derive(Debug)]
pub enum Change<K> {
    /// First seen (a create, or present at the initial list).
    Added(Arc<K>),
    /// Changed: the object before and after.
    Updated {
        /// As it was.
        old: Arc<K>,
        /// As it is.
        new: Arc<K>,
    },
    /// Gone; the last state the informer saw.
    Deleted(Arc<K>),
}

impl<K> Clone for Change<K> {
    fn clone(&self) -> Self {
        match self {
            Change::Added(o) => Change::Added(o.clone()),
            Change::Updated { old, new } => Change::Updated {
                old: old.clone(),
                new: new.clone(),
            },
            Change::Deleted(o) => Change::Deleted(o.clone()),
        }
    }
}

impl<K> Change<K> {
    /// The object as it is now (or was last, for a delete).
    pub fn object(&self) -> &Arc<K> {
        match self {
            Change::Added(o) | Change::Deleted(o) => o,
            Change::Updated { new, .. } => new,
        }
    }

    /// The previous state of an update.
    pub fn old(&self) -> Option<&Arc<K>> {
        match self {
            Change::Updated { old, .. } => Some(old),
            _ => None,
        }
    }
}

/// Bounds of the objects informers carry.
pub trait Object:
    Resource<DynamicType = ()>
    + Lookup<DynamicType = ()>
    + Clone
    + DeserializeOwned
    + Debug
    + Send
    + Sync
    + 'static
{
}
impl<K> Object for K where
    K: Resource<DynamicType = ()>
        + Lookup<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static
{
}

type Subscribers<K> = Arc<Mutex<Vec<mpsc::UnboundedSender<Change<K>>>>>;

/// A shared informer of one kind: a reflector store plus change subscriptions.
pub struct Informer<K: Object> {
    store: Store<K>,
    subscribers: Subscribers<K>,
    runner: Mutex<Option<Runner<K>>>,
}

struct Runner<K: Object> {
    api: Api<K>,
    config: watcher::Config,
    writer: Writer<K>,
}

impl<K: Object> Informer<K>
where
    K: Resource<Scope = k8s_openapi::ClusterResourceScope>,
{
    /// An informer over every object of a cluster-scoped kind.
    pub fn cluster(client: Client) -> Self {
        Self::new(Api::all(client), watcher::Config::default())
    }
}

impl<K: Object> Informer<K> {
    /// An informer over what `api` and `config` select (not yet running).
    pub fn new(api: Api<K>, config: watcher::Config) -> Self {
        let writer = Writer::<K>::default();
        Self {
            store: writer.as_reader(),
            subscribers: Arc::default(),
            runner: Mutex::new(Some(Runner {
                api,
                config,
                writer,
            })),
        }
    }

    /// An informer whose store is filled by hand (tests): `apply` feeds it.
    pub fn detached() -> (Self, Writer<K>) {
        let writer = Writer::<K>::default();
        let informer = Self {
            store: writer.as_reader(),
            subscribers: Arc::default(),
            runner: Mutex::new(None),
        };
        (informer, writer)
    }

    /// The shared cache.
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// Every change from now on (including the initial list, when subscribed before start).
    pub fn subscribe(&self) -> impl Stream<Item = Change<K>> + Send + 'static {
        let (tx, rx) = mpsc::unbounded();
        self.subscribers.lock().expect("subscribers").push(tx);
        rx
    }

    /// The objects of every change, for `Controller::for_shared_stream`.
    pub fn objects(&self) -> impl Stream<Item = Arc<K>> + Send + 'static {
        self.subscribe().map(|c| c.object().clone())
    }

    /// Runs the watch until `shutdown`; a second call does nothing.
    pub fn start(&self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let Some(runner) = self.runner.lock().expect("runner").take() else {
            return;
        };
        let subscribers = self.subscribers.clone();
        let store = self.store.clone();
        tokio::spawn(async move {
            let Runner {
                api,
                config,
                mut writer,
            } = runner;
            // Controllers never read managed fields: dropping them (as kube-controller-manager's
            // informers do) keeps the cache a good deal smaller. Pods lose more (see
            // `rkube_machinery::slim::pod_for_controllers`): controllers read their metadata,
            // node names, tolerations, named container ports, and status.
            let mut stream = watcher(api, config)
                .default_backoff()
                .modify(|o: &mut K| {
                    o.meta_mut().managed_fields = None;
                    if let Some(pod) = (o as &mut dyn Any).downcast_mut::<Pod>() {
                        rkube_machinery::slim::pod_for_controllers(pod);
                    }
                })
                .boxed();
            tokio::pin!(shutdown);
            // Objects seen during a (re)list, to turn a relist into adds, updates and deletes.
            let mut before: Option<HashMap<ObjectRef<K>, Arc<K>>> = None;
            loop {
                let event = tokio::select! {
                    e = stream.next() => match e { Some(e) => e, None => break },
                    () = &mut shutdown => break,
                };
                let event = match event {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::warn!(kind = %<K as Resource>::kind(&()), error = %e, "watch failed; retrying");
                        continue;
                    }
                };
                let changes = apply(&mut writer, &store, &event, &mut before);
                notify(&subscribers, changes);
            }
        });
    }

    /// Waits until the first list has been stored.
    pub async fn wait_synced(&self) {
        let _ = self.store.wait_until_ready().await;
    }

    /// Delivers a change to the subscribers (detached informers in tests).
    pub fn emit(&self, change: Change<K>) {
        notify(&self.subscribers, vec![change]);
    }
}

/// Applies one watcher event to the store and says what changed.
fn apply<K: Object>(
    writer: &mut Writer<K>,
    store: &Store<K>,
    event: &watcher::Event<K>,
    before: &mut Option<HashMap<ObjectRef<K>, Arc<K>>>,
) -> Vec<Change<K>> {
    match event {
        watcher::Event::Apply(obj) => {
            let key = ObjectRef::from_obj(obj);
            let old = store.get(&key);
            writer.apply_watcher_event(event);
            let Some(new) = store.get(&key) else {
                return vec![];
            };
            match old {
                Some(old) => vec![Change::Updated { old, new }],
                None => vec![Change::Added(new)],
            }
        }
        watcher::Event::Delete(obj) => {
            // The delete event carries the final state.
            writer.apply_watcher_event(event);
            vec![Change::Deleted(Arc::new(obj.clone()))]
        }
        watcher::Event::Init => {
            *before = Some(
                store
                    .state()
                    .into_iter()
                    .map(|o| (ObjectRef::from_obj(&*o), o))
                    .collect(),
            );
            writer.apply_watcher_event(event);
            vec![]
        }
        watcher::Event::InitApply(_) => {
            writer.apply_watcher_event(event);
            vec![]
        }
        watcher::Event::InitDone => {
            writer.apply_watcher_event(event);
            let mut old = before.take().unwrap_or_default();
            let mut changes = Vec::new();
            for new in store.state() {
                let key = ObjectRef::from_obj(&*new);
                match old.remove(&key) {
                    None => changes.push(Change::Added(new)),
                    Some(o)
                        if o.meta().resource_version == new.meta().resource_version
                            && o.meta().uid == new.meta().uid => {}
                    Some(o) => changes.push(Change::Updated { old: o, new }),
                }
            }
            changes.extend(old.into_values().map(Change::Deleted));
            changes
        }
    }
}

fn notify<K: Object>(subscribers: &Subscribers<K>, changes: Vec<Change<K>>) {
    if changes.is_empty() {
        return;
    }
    let mut subs = subscribers.lock().expect("subscribers");
    subs.retain(|tx| !tx.is_closed());
    for change in changes {
        for tx in subs.iter() {
            let _ = tx.unbounded_send(change.clone());
        }
    }
}

/// Applies a watcher event to a detached informer's store and tells its subscribers (tests).
pub fn feed<K: Object>(informer: &Informer<K>, writer: &mut Writer<K>, event: watcher::Event<K>) {
    let mut before = None;
    let changes = apply(writer, &informer.store, &event, &mut before);
    notify(&informer.subscribers, changes);
}

/// Creates the informers the enabled controllers ask for, once per kind (and namespace
/// restriction), and starts them together.
pub struct Informers {
    client: Client,
    made: Mutex<HashMap<InformerKey, Arc<dyn Any + Send + Sync>>>,
    waiters: Mutex<Vec<WaitFn>>,
}

/// An informer's kind and namespace restriction.
type InformerKey = (TypeId, Option<String>);
type WaitFn = Box<dyn Fn() -> futures::future::BoxFuture<'static, ()> + Send + Sync>;
type StartFn = Box<dyn FnOnce(futures::future::BoxFuture<'static, ()>) + Send>;

impl Informers {
    /// A factory for `client`.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            made: Mutex::default(),
            waiters: Mutex::default(),
        }
    }

    /// The client the informers use.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The informer of every `K` in the cluster.
    pub fn all<K: Object>(&self) -> Arc<Informer<K>> {
        self.get::<K>(None, || Api::<K>::all_with(self.client.clone(), &()))
    }

    /// The informer of the `K`s of one namespace.
    pub fn namespaced<K>(&self, namespace: &str) -> Arc<Informer<K>>
    where
        K: Object + Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    {
        self.get::<K>(Some(namespace), || {
            Api::<K>::namespaced(self.client.clone(), namespace)
        })
    }

    fn get<K: Object>(
        &self,
        namespace: Option<&str>,
        api: impl FnOnce() -> Api<K>,
    ) -> Arc<Informer<K>> {
        let key = (TypeId::of::<K>(), namespace.map(str::to_string));
        let mut made = self.made.lock().expect("informers");
        if let Some(i) = made.get(&key) {
            return i.clone().downcast::<Informer<K>>().expect("informer type");
        }
        let informer = Arc::new(Informer::new(api(), watcher::Config::default()));
        made.insert(key, informer.clone());
        let waiting = informer.clone();
        self.waiters
            .lock()
            .expect("waiters")
            .push(Box::new(move || {
                let i = waiting.clone();
                Box::pin(async move { i.wait_synced().await })
            }));
        informer
    }

    /// Starts every informer made so far.
    pub fn start(&self, shutdown: impl Future<Output = ()> + Send + Clone + 'static) {
        let made = self.made.lock().expect("informers");
        let starters: Vec<StartFn> = made.values().map(|i| starter(i.clone())).collect();
        drop(made);
        for s in starters {
            s(Box::pin(shutdown.clone()));
        }
    }

    /// Waits until every informer has listed once.
    pub async fn wait_synced(&self) {
        let futs: Vec<_> = self
            .waiters
            .lock()
            .expect("waiters")
            .iter()
            .map(|w| w())
            .collect();
        futures::future::join_all(futs).await;
    }
}

/// Type-erased start of an informer held as `Any`.
fn starter(informer: Arc<dyn Any + Send + Sync>) -> StartFn {
    Box::new(move |shutdown| {
        macro_rules! try_start {
            ($($t:ty),* $(,)?) => {
                $(
                    if let Some(i) = informer.downcast_ref::<Informer<$t>>() {
                        i.start(shutdown);
                        return;
                    }
                )*
            };
        }
        use k8s_openapi::api::{
            apps::v1::{Deployment, ReplicaSet, StatefulSet},
            batch::v1::{CronJob, Job},
            certificates::v1::CertificateSigningRequest,
            coordination::v1::Lease,
            core::v1::{
                ConfigMap, Endpoints, Namespace, Node, PersistentVolumeClaim, Pod, ResourceQuota,
                Secret, Service, ServiceAccount,
            },
            discovery::v1::EndpointSlice,
            policy::v1::PodDisruptionBudget,
        };
        try_start!(
            Pod,
            ReplicaSet,
            Deployment,
            Job,
            CronJob,
            ResourceQuota,
            ConfigMap,
            Secret,
            PersistentVolumeClaim,
            Service,
            Endpoints,
            EndpointSlice,
            Namespace,
            Node,
            Lease,
            ServiceAccount,
            CertificateSigningRequest,
            StatefulSet,
            PodDisruptionBudget,
        );
        tracing::error!("informer of an unregistered kind was not started");
    })
}

/// A key for maps of objects: `namespace/name` or `name`.
pub fn key_of<K: Resource>(obj: &K) -> String {
    let m = obj.meta();
    match &m.namespace {
        Some(ns) => format!("{ns}/{}", m.name.as_deref().unwrap_or_default()),
        None => m.name.clone().unwrap_or_default(),
    }
}

/// The `ObjectRef` of an object of a static kind.
pub fn obj_ref<K: Object>(obj: &K) -> ObjectRef<K> {
    ObjectRef::from_obj(obj)
}

/// An `ObjectRef` from a namespace and name.
pub fn ref_in<K: Object>(namespace: Option<&str>, name: &str) -> ObjectRef<K> {
    let r = ObjectRef::new(name);
    match namespace {
        Some(ns) => r.within(ns),
        None => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod(name: &str, rv: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                uid: Some(format!("uid-{name}")),
                resource_version: Some(rv.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn changes_carry_old_objects_and_relists_become_deletes() {
        let (informer, mut writer) = Informer::<Pod>::detached();
        let mut changes = informer.subscribe();
        feed(&informer, &mut writer, watcher::Event::Init);
        feed(
            &informer,
            &mut writer,
            watcher::Event::InitApply(pod("a", "1")),
        );
        feed(
            &informer,
            &mut writer,
            watcher::Event::InitApply(pod("b", "1")),
        );
        feed(&informer, &mut writer, watcher::Event::InitDone);
        let mut added = vec![];
        for _ in 0..2 {
            match changes.next().await.unwrap() {
                Change::Added(p) => added.push(p.metadata.name.clone().unwrap()),
                other => panic!("unexpected {other:?}"),
            }
        }
        added.sort();
        assert_eq!(added, ["a", "b"]);
        feed(&informer, &mut writer, watcher::Event::Apply(pod("a", "2")));
        match changes.next().await.unwrap() {
            Change::Updated { old, new } => {
                assert_eq!(old.metadata.resource_version.as_deref(), Some("1"));
                assert_eq!(new.metadata.resource_version.as_deref(), Some("2"));
            }
            other => panic!("unexpected {other:?}"),
        }
        // A relist without b (deleted while the watch was down) reports b deleted; a unchanged.
        let mut before = None;
        let c1 = apply(
            &mut writer,
            &informer.store(),
            &watcher::Event::Init,
            &mut before,
        );
        assert!(c1.is_empty());
        let c2 = apply(
            &mut writer,
            &informer.store(),
            &watcher::Event::InitApply(pod("a", "2")),
            &mut before,
        );
        assert!(c2.is_empty());
        let c3 = apply(
            &mut writer,
            &informer.store(),
            &watcher::Event::InitDone,
            &mut before,
        );
        assert_eq!(c3.len(), 1);
        assert!(matches!(&c3[0], Change::Deleted(p) if p.metadata.name.as_deref() == Some("b")));
        assert_eq!(informer.store().state().len(), 1);
    }

    #[test]
    fn slim_pods_keep_what_controllers_read() {
        // What trimming drops and keeps is tested in rkube_machinery::slim; here, what the
        // controllers of this crate look up on a trimmed pod.
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {
                "volumes": [{"name": "v", "emptyDir": {}}],
                "initContainers": [{"name": "side", "image": "i", "restartPolicy": "Always",
                    "ports": [{"name": "metrics", "containerPort": 9090}],
                    "env": [{"name": "E", "value": "1"}]}],
                "containers": [{"name": "c", "image": "i", "command": ["sleep"],
                    "ports": [{"name": "http", "containerPort": 80}]}]
            },
            "status": {"phase": "Running", "podIP": "10.0.0.1"}
        }))
        .unwrap();
        let mut slim = pod.clone();
        rkube_machinery::slim::pod_for_controllers(&mut slim);
        assert!(slim.spec.as_ref().unwrap().volumes.is_none());
        assert_eq!(slim.status, pod.status);
        // The endpoints controller still finds named ports, on sidecars too.
        let port = |name: &str| k8s_openapi::api::core::v1::ServicePort {
            port: 1,
            target_port: Some(
                k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(name.into()),
            ),
            ..Default::default()
        };
        assert_eq!(crate::endpoints::find_port(&slim, &port("http")), Some(80));
        assert_eq!(
            crate::endpoints::find_port(&slim, &port("metrics")),
            Some(9090)
        );
    }
}
