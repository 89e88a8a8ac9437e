//! The registry: how objects of each kind are created, read, updated, patched and deleted. The
//! generic machinery (metadata, resourceVersion preconditions, status/spec separation,
//! generation, graceful deletion, finalizers, dry runs) lives in [`store`]; what differs per
//! kind (defaults, validation, admission, table columns, field selectors, scale) is a
//! [`Strategy`] in the kind's own module. Pod evictions, which respect PodDisruptionBudgets,
//! are in [`eviction`].

pub mod codec;
pub mod eviction;
pub mod kinds;
pub mod meta;
pub mod store;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::alloc::Allocators;
use crate::error::{ApiError, FieldError};
use crate::resources::ResourceDef;
use crate::storage::Storage;

pub use store::{DeleteOptions, KindOps, Sub, TypedKind, WriteOptions, Written};

/// A Kubernetes object type served by the registry.
pub trait Object:
    k8s_openapi::Resource
    + k8s_openapi::Metadata<Ty = ObjectMeta>
    + Serialize
    + DeserializeOwned
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<T> Object for T where
    T: k8s_openapi::Resource
        + k8s_openapi::Metadata<Ty = ObjectMeta>
        + Serialize
        + DeserializeOwned
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// Cluster-wide settings the strategies need.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `--service-cluster-ip-range`.
    pub service_cidr: ipnet::Ipv4Net,
    /// `--service-node-port-range`.
    pub node_ports: std::ops::RangeInclusive<u16>,
    /// `--default-not-ready-toleration-seconds`: how long pods tolerate the
    /// `node.kubernetes.io/not-ready:NoExecute` taint (DefaultTolerationSeconds admission).
    pub default_not_ready_toleration_seconds: i64,
    /// `--default-unreachable-toleration-seconds`: how long pods tolerate the
    /// `node.kubernetes.io/unreachable:NoExecute` taint.
    pub default_unreachable_toleration_seconds: i64,
    /// The Pod Security level of namespaces without a `pod-security.kubernetes.io/enforce`
    /// (or `warn`) label (`--pod-security-default`).
    pub pod_security_default: crate::pod_security::Level,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            service_cidr: "10.96.0.0/12".parse().expect("valid default CIDR"),
            node_ports: 30000..=32767,
            default_not_ready_toleration_seconds: 300,
            default_unreachable_toleration_seconds: 300,
            pod_security_default: crate::pod_security::Level::Baseline,
        }
    }
}

/// Everything a request handler needs: storage, kinds, settings, allocators.
pub struct Api {
    /// The storage (watch cache over the backend).
    pub store: Arc<dyn Storage>,
    /// The served kinds.
    pub kinds: Vec<Arc<dyn KindOps>>,
    /// Settings.
    pub settings: Settings,
    /// ClusterIP and NodePort allocators.
    pub alloc: Allocators,
    /// The RBAC objects in memory (for authorization and the escalation checks).
    pub rbac: Arc<crate::auth::rbac::RbacCache>,
    /// Which node's pods use which Secrets, ConfigMaps, claims and ServiceAccounts (the Node
    /// authorizer's graph).
    pub node_graph: Arc<crate::auth::node::NodeGraph>,
    /// Namespaces this server started deleting recently: NamespaceLifecycle reads them live
    /// rather than from the (possibly lagging) watch cache, as Kubernetes does.
    pub deleted_namespaces: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

impl Api {
    /// Notes that `ns` is being deleted.
    pub fn namespace_deleted(&self, ns: &str) {
        let mut m = self.deleted_namespaces.lock().expect("namespaces lock");
        m.retain(|_, at| at.elapsed() < std::time::Duration::from_secs(30));
        m.insert(ns.to_string(), std::time::Instant::now());
    }

    /// Whether `ns` was deleted through this server in the last 30 s.
    pub fn recently_deleted(&self, ns: &str) -> bool {
        self.deleted_namespaces
            .lock()
            .expect("namespaces lock")
            .get(ns)
            .is_some_and(|at| at.elapsed() < std::time::Duration::from_secs(30))
    }

    /// The kind serving `def`.
    pub fn kind(&self, def: &ResourceDef) -> Option<&Arc<dyn KindOps>> {
        self.kinds.iter().find(|k| std::ptr::eq(k.def(), def))
    }
}

/// The operation being admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// A create.
    Create,
    /// An update or patch.
    Update,
}

/// What admission sees of a write.
pub struct Admission<'a, T> {
    /// Create or update.
    pub op: Operation,
    /// What an update writes (`Main` for creates).
    pub sub: store::Sub,
    /// The object being written (mutable: admission may set defaults).
    pub obj: &'a mut T,
    /// The stored object, for updates.
    pub old: Option<&'a T>,
    /// Nothing may be persisted (dryRun=All).
    pub dry_run: bool,
    /// Who writes (`None` for the server's own writes).
    pub user: Option<&'a crate::auth::UserInfo>,
    /// `Warning` headers admission adds (creates only).
    pub warnings: Vec<String>,
}

/// One column of a server-side table.
#[derive(Clone, Debug, Serialize)]
pub struct Column {
    /// Header, e.g. `NAME`.
    pub name: &'static str,
    /// `string`, `integer`, `date`, `number`.
    #[serde(rename = "type")]
    pub type_: &'static str,
    /// `name` for the name column, else empty.
    pub format: &'static str,
    /// Shown with `kubectl explain`-like help.
    pub description: &'static str,
    /// 0 = always shown, 1 = only with `-o wide`.
    pub priority: i32,
}

impl Column {
    /// A column shown by default.
    pub const fn new(name: &'static str, type_: &'static str, description: &'static str) -> Self {
        Self {
            name,
            type_,
            format: "",
            description,
            priority: 0,
        }
    }

    /// A column shown only with `-o wide`.
    pub const fn wide(name: &'static str, type_: &'static str, description: &'static str) -> Self {
        Self {
            name,
            type_,
            format: "",
            description,
            priority: 1,
        }
    }

    /// The NAME column.
    pub const NAME: Column = Column {
        name: "Name",
        type_: "string",
        format: "name",
        description: "Name must be unique within a namespace.",
        priority: 0,
    };

    /// The AGE column (a `date` cell rendered by the client as an age).
    pub const AGE: Column = Column::new(
        "Age",
        "string",
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
    );
}

/// The fields a field selector can test, for one object.
pub type Fields = BTreeMap<String, String>;

/// What label and field selectors read of an object's metadata.
#[derive(Debug, Default, serde::Deserialize)]
pub struct SelectableMeta {
    /// metadata.name.
    pub name: Option<String>,
    /// metadata.namespace.
    pub namespace: Option<String>,
    /// metadata.labels.
    pub labels: Option<BTreeMap<String, String>>,
}

/// `autoscaling/v1` Scale facts of an object with a `scale` subresource.
#[derive(Clone, Debug, PartialEq)]
pub struct ScaleInfo {
    /// spec.replicas.
    pub spec_replicas: i32,
    /// status.replicas.
    pub status_replicas: i32,
    /// The label selector as a string.
    pub selector: String,
}

/// Per-kind behaviour. Every method has a neutral default.
#[async_trait]
pub trait Strategy<T: Object>: Send + Sync + 'static {
    /// Fills defaults (on create and on every update), as Kubernetes' defaulting does.
    fn defaults(&self, _obj: &mut T) {}

    /// Resets what a create may not set (status is already cleared when the kind says so).
    fn prepare_create(&self, _obj: &mut T) {}

    /// Completes an update from the stored object, before defaulting and validation: what an
    /// update may leave out and keeps (a pod's admission-set priority).
    fn prepare_update(&self, _obj: &mut T, _old: &T) {}

    /// Narrows an update of `sub` (after [`Strategy::prepare_update`]) to what that
    /// subresource may change, e.g. only the conditions through a CSR's `approval`.
    fn prepare_subresource_update(&self, _sub: store::Sub, _obj: &mut T, _old: &T) {}

    /// Validates an object (metadata is validated by the framework).
    fn validate(&self, _obj: &T) -> Vec<FieldError> {
        Vec::new()
    }

    /// Validates an update against the stored object (immutable fields).
    fn validate_update(&self, _new: &T, _old: &T) -> Vec<FieldError> {
        Vec::new()
    }

    /// Admission with access to the cluster: allocations, defaults from other objects.
    async fn admit(&self, _api: &Api, _adm: &mut Admission<'_, T>) -> Result<(), ApiError> {
        Ok(())
    }

    /// Releases what admission allocated for `obj` (after a delete, or a failed create).
    async fn release(&self, _api: &Api, _obj: &T, _old: Option<&T>) {}

    /// Whether deletion must wait for something beyond `metadata.finalizers` (a namespace's
    /// `spec.finalizers`, which the namespace controller clears through `finalize`).
    fn awaits_finalization(&self, _obj: &T) -> bool {
        false
    }

    /// The grace period of a delete: `Some(seconds > 0)` for a graceful delete.
    fn grace_period(&self, _obj: &T, _requested: Option<i64>) -> Option<i64> {
        None
    }

    /// Table columns after NAME (AGE is added where the kind puts it).
    fn columns(&self) -> Vec<Column> {
        vec![Column::NAME, Column::AGE]
    }

    /// Table cells matching [`Strategy::columns`].
    fn cells(&self, obj: &T) -> Vec<Value> {
        vec![Value::String(name(obj)), age(obj)]
    }

    /// Extra fields for field selectors (metadata.name/namespace are always there).
    fn fields(&self, _obj: &T, _out: &mut Fields) {}

    /// For kinds with large objects that watches select from (pods, at every change): the
    /// metadata selectors read and the extra fields, deserialized straight from the stored
    /// JSON with the rest skipped, instead of decoding the whole object for
    /// [`Strategy::fields`]. `None`: the kind does not provide it.
    fn selectable_raw(&self, _raw: &[u8]) -> Option<serde_json::Result<(SelectableMeta, Fields)>> {
        None
    }

    /// Field selector names the kind supports besides metadata.name/namespace.
    fn field_names(&self) -> &'static [&'static str] {
        &[]
    }

    /// Scale subresource facts.
    fn scale(&self, _obj: &T) -> Option<ScaleInfo> {
        None
    }

    /// Sets spec.replicas through the scale subresource.
    fn set_replicas(&self, _obj: &mut T, _replicas: i32) {}
}

/// The object's name.
pub fn name<T: Object>(obj: &T) -> String {
    obj.metadata().name.clone().unwrap_or_default()
}

/// The AGE cell, rendered by the server like Kubernetes' printers (`5m`, `3d`).
pub fn age<T: Object>(obj: &T) -> Value {
    Value::String(
        obj.metadata()
            .creation_timestamp
            .as_ref()
            .map(human_age)
            .unwrap_or_else(|| "<unknown>".into()),
    )
}

/// A human age like kubectl's (`5s`, `3m2s`, `4h`, `12d`) from a creation time.
pub fn human_age(since: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> String {
    let secs = (jiff::Timestamp::now().as_second() - since.0.as_second()).max(0);
    human_duration(secs)
}

/// kubectl's short duration format.
pub fn human_duration(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 600 => format!("{}m{}s", s / 60, s % 60),
        s if s < 3 * 3600 => format!("{}m", s / 60),
        s if s < 8 * 3600 => {
            let m = (s % 3600) / 60;
            if m == 0 {
                format!("{}h", s / 3600)
            } else {
                format!("{}h{m}m", s / 3600)
            }
        }
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s if s < 8 * 86400 => {
            let h = (s % 86400) / 3600;
            if h == 0 {
                format!("{}d", s / 86400)
            } else {
                format!("{}d{h}h", s / 86400)
            }
        }
        s if s < 2 * 365 * 86400 => format!("{}d", s / 86400),
        s => format!("{}y", s / (365 * 86400)),
    }
}

/// Builds the served kinds.
pub fn builtin_kinds() -> Vec<Arc<dyn KindOps>> {
    kinds::all()
}
