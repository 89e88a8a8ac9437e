//! PriorityClasses (`scheduling.k8s.io/v1`) and Priority admission, as in Kubernetes.
//!
//! A PriorityClass maps a name to the integer priority pods of that class get. Validation
//! keeps user classes at or below 1,000,000,000, reserves the `system-` prefix for the two
//! built-in classes (`system-node-critical`, `system-cluster-critical`, created at start by
//! [`crate::bootstrap`]) and keeps `value` and `preemptionPolicy` immutable; admission lets at
//! most one class be the `globalDefault`; the built-in classes cannot be deleted. The table
//! has kubectl's NAME / VALUE / GLOBAL-DEFAULT / AGE / PREEMPTIONPOLICY columns.
//!
//! Priority admission ([`admit_pod`]) resolves a new pod's `spec.priorityClassName` into
//! `spec.priority` and `spec.preemptionPolicy`: a pod without a class gets the global default
//! class (its name too), else priority 0 and `PreemptLowerPriority`; a class that does not
//! exist, or a priority or preemption policy in the pod that differs from the computed one, is
//! refused with 403 Forbidden in upstream's words. Classes are read from the watch cache; a
//! named class the cache has not seen yet is read consistently from storage, so a class
//! created a moment ago is honoured.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{ApiError, FieldError};
use crate::registry::store::{DeleteOptions, KindOps, Mutate, Sub, WriteOptions, Written};
use crate::registry::{Admission, Api, Column, Fields, Operation, ScaleInfo, Strategy, age, name};
use crate::resources::{self, ResourceDef};
use crate::storage::{KeyValue, ListOptions, ReadAt};

/// The highest value a user-defined PriorityClass may have.
pub const HIGHEST_USER_DEFINABLE_PRIORITY: i32 = 1_000_000_000;
/// The value of `system-cluster-critical` (the base of the system classes).
pub const SYSTEM_CRITICAL_PRIORITY: i32 = 2 * HIGHEST_USER_DEFINABLE_PRIORITY;
/// Names with this prefix are reserved for the built-in classes.
pub const SYSTEM_PREFIX: &str = "system-";
/// The priority of pods without a class when no class is the global default.
pub const DEFAULT_PRIORITY: i32 = 0;
/// Preempt lower-priority pods (the default preemption policy).
pub const PREEMPT_LOWER_PRIORITY: &str = "PreemptLowerPriority";
/// Never preempt.
pub const PREEMPT_NEVER: &str = "Never";
/// The preemption policies, in upstream's order.
const PREEMPTION_POLICIES: &[&str] = &[PREEMPT_LOWER_PRIORITY, PREEMPT_NEVER];

/// A built-in PriorityClass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SystemClass {
    /// Its name (with the `system-` prefix).
    pub name: &'static str,
    /// Its value.
    pub value: i32,
    /// Its description.
    pub description: &'static str,
}

impl SystemClass {
    /// The PriorityClass object to create.
    pub fn object(&self) -> Value {
        json!({
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {"name": self.name},
            "value": self.value,
            "description": self.description,
            "preemptionPolicy": PREEMPT_LOWER_PRIORITY,
        })
    }
}

/// The built-in classes every cluster has.
pub const SYSTEM_CLASSES: [SystemClass; 2] = [
    SystemClass {
        name: "system-node-critical",
        value: SYSTEM_CRITICAL_PRIORITY + 1000,
        description: "Used for system critical pods that must not be moved from their current node.",
    },
    SystemClass {
        name: "system-cluster-critical",
        value: SYSTEM_CRITICAL_PRIORITY,
        description: "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
    },
];

/// Why a write is refused by Priority admission or the PriorityClass rules (403 Forbidden).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PriorityError {
    /// The pod names a class that does not exist.
    #[error("no PriorityClass with name {0} was found")]
    ClassNotFound(String),
    /// The pod sets a priority other than its class's.
    #[error(
        "the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {computed} from the given PriorityClass name"
    )]
    PriorityMismatch {
        /// What the pod says.
        given: i32,
        /// What the class says.
        computed: i32,
    },
    /// The pod sets a preemption policy other than its class's.
    #[error(
        "the string value of PreemptionPolicy ({given}) must not be provided in pod spec; priority admission controller computed {computed} from the given PriorityClass name"
    )]
    PreemptionPolicyMismatch {
        /// What the pod says.
        given: String,
        /// What the class says.
        computed: String,
    },
    /// Another class is already the global default.
    #[error("PriorityClass {0} is already marked as default. Only one default can exist")]
    DuplicateDefault(String),
    /// A built-in class cannot be deleted.
    #[error("this is a system priority class and cannot be deleted")]
    SystemClassDeletion,
}

impl PriorityError {
    /// The 403 Forbidden answer for `name` of `def`: `pods "x" is forbidden: …`.
    pub fn forbidden(&self, def: &ResourceDef, name: &str) -> ApiError {
        ApiError::forbidden_object(def.group, def.resource, name, &self.to_string())
    }
}

fn storage_error(e: crate::storage::StorageError, name: &str) -> ApiError {
    let def = &resources::PRIORITYCLASSES;
    ApiError::from_storage(e, def.group, def.resource, name)
}

/// What admission reads of a PriorityClass; the rest of a stored class is skipped when
/// decoding (every pod create reads every class).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClassRef {
    /// `metadata`: its name.
    #[serde(default)]
    pub metadata: NameOnly,
    /// `value`.
    #[serde(default)]
    pub value: i32,
    /// `globalDefault`.
    #[serde(default)]
    pub global_default: Option<bool>,
    /// `preemptionPolicy`.
    #[serde(default)]
    pub preemption_policy: Option<String>,
}

/// `metadata.name` of an object, the rest of its metadata skipped.
#[derive(Debug, Default, Deserialize)]
pub struct NameOnly {
    /// `name`.
    #[serde(default)]
    pub name: Option<String>,
}

fn decode(kv: &KeyValue) -> Result<ClassRef, ApiError> {
    serde_json::from_slice(&kv.value).map_err(|e| {
        ApiError::internal(format!(
            "stored PriorityClass {} is not decodable: {e}",
            kv.key
        ))
    })
}

/// The PriorityClasses: from the watch cache (served from memory, like upstream's lister), or
/// read consistently from storage.
async fn classes(api: &Api, consistent: bool) -> Result<Vec<ClassRef>, ApiError> {
    let read_at = if consistent {
        ReadAt::Latest
    } else {
        ReadAt::NotOlderThan(0)
    };
    let listed = api
        .store
        .list(
            &resources::PRIORITYCLASSES.prefix(),
            ListOptions {
                read_at,
                ..ListOptions::default()
            },
        )
        .await
        .map_err(|e| storage_error(e, ""))?;
    listed.items.iter().map(decode).collect()
}

/// The PriorityClass `name`: from the watch cache, or — when the cache has not seen it (it may
/// have been created a moment ago) — read consistently from storage; `None` if there is none.
pub async fn get_class(api: &Api, name: &str) -> Result<Option<ClassRef>, ApiError> {
    let cached = classes(api, false).await?;
    if let Some(pc) = cached
        .into_iter()
        .find(|pc| pc.metadata.name.as_deref() == Some(name))
    {
        return Ok(Some(pc));
    }
    let key = resources::PRIORITYCLASSES.key(None, name);
    let kv = api
        .store
        .get(&key)
        .await
        .map_err(|e| storage_error(e, name))?;
    kv.as_ref().map(decode).transpose()
}

/// The global default class — for pod admission from the watch cache (as upstream reads it from
/// its lister), for PriorityClass writes consistently: of several (a race can leave more than
/// one), the one with the lowest value, as Kubernetes picks.
pub async fn default_class(api: &Api, consistent: bool) -> Result<Option<ClassRef>, ApiError> {
    let mut best: Option<ClassRef> = None;
    for pc in classes(api, consistent).await? {
        if pc.global_default == Some(true) && best.as_ref().is_none_or(|b| pc.value < b.value) {
            best = Some(pc);
        }
    }
    Ok(best)
}

/// Priority admission of a pod being created: sets `spec.priority`, `spec.preemptionPolicy`
/// and (for the global default) `spec.priorityClassName` from the pod's class.
pub async fn admit_pod(api: &Api, pod: &mut Pod) -> Result<(), ApiError> {
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let refuse = |e: PriorityError| e.forbidden(&resources::PODS, &pod_name);
    let spec = pod.spec.get_or_insert_with(Default::default);
    let requested = spec.priority_class_name.clone().filter(|n| !n.is_empty());
    let (class, priority, policy) = match requested {
        Some(class) => {
            let pc = get_class(api, &class)
                .await?
                .ok_or_else(|| refuse(PriorityError::ClassNotFound(class.clone())))?;
            (Some(class), pc.value, pc.preemption_policy)
        }
        None => match default_class(api, false).await? {
            Some(pc) => (pc.metadata.name, pc.value, pc.preemption_policy),
            None => (
                None,
                DEFAULT_PRIORITY,
                Some(PREEMPT_LOWER_PRIORITY.to_string()),
            ),
        },
    };
    if let Some(given) = spec.priority
        && given != priority
    {
        return Err(refuse(PriorityError::PriorityMismatch {
            given,
            computed: priority,
        }));
    }
    if let Some(computed) = &policy
        && let Some(given) = &spec.preemption_policy
        && given != computed
    {
        return Err(refuse(PriorityError::PreemptionPolicyMismatch {
            given: given.clone(),
            computed: computed.clone(),
        }));
    }
    tracing::debug!(
        pod = %pod_name,
        class = class.as_deref().unwrap_or(""),
        priority,
        "priority admission"
    );
    if class.is_some() {
        spec.priority_class_name = class;
    }
    spec.priority = Some(priority);
    if policy.is_some() {
        spec.preemption_policy = policy;
    }
    Ok(())
}

/// Whether `name` is reserved, and if so, why `pc` is not that built-in class.
fn system_class_problem(pc: &PriorityClass, name: &str) -> Option<String> {
    let Some(known) = SYSTEM_CLASSES.iter().find(|s| s.name == name) else {
        return Some(format!("{name} is not a known system priority class"));
    };
    if pc.value != known.value {
        return Some(format!(
            "value of {name} PriorityClass must be {}",
            known.value
        ));
    }
    if pc.global_default.unwrap_or(false) {
        return Some(format!(
            "globalDefault of {name} PriorityClass must be false"
        ));
    }
    None
}

/// PriorityClass behaviour.
pub struct PriorityClassStrategy;

#[async_trait]
impl Strategy<PriorityClass> for PriorityClassStrategy {
    fn defaults(&self, pc: &mut PriorityClass) {
        if pc.preemption_policy.is_none() {
            pc.preemption_policy = Some(PREEMPT_LOWER_PRIORITY.into());
        }
        // `globalDefault: false` is Kubernetes' zero value, which it does not serialize.
        if pc.global_default == Some(false) {
            pc.global_default = None;
        }
    }

    fn validate(&self, pc: &PriorityClass) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let name = pc.metadata.name.as_deref().unwrap_or_default();
        if name.starts_with(SYSTEM_PREFIX) {
            if let Some(problem) = system_class_problem(pc, name) {
                errs.push(FieldError::forbidden(
                    "metadata.name",
                    &format!(
                        "priority class names with '{SYSTEM_PREFIX}' prefix are reserved for system use only. error: {problem}"
                    ),
                ));
            }
        } else if pc.value > HIGHEST_USER_DEFINABLE_PRIORITY {
            errs.push(FieldError::forbidden(
                "value",
                &format!(
                    "maximum allowed value of a user defined priority is {HIGHEST_USER_DEFINABLE_PRIORITY}"
                ),
            ));
        }
        match pc.preemption_policy.as_deref() {
            None => {}
            Some("") => errs.push(FieldError::required("preemptionPolicy")),
            Some(p) if PREEMPTION_POLICIES.contains(&p) => {}
            Some(p) => errs.push(FieldError::not_supported(
                "preemptionPolicy",
                p,
                PREEMPTION_POLICIES,
            )),
        }
        errs
    }

    fn validate_update(&self, new: &PriorityClass, old: &PriorityClass) -> Vec<FieldError> {
        let mut errs = Vec::new();
        if new.value != old.value {
            errs.push(FieldError::forbidden(
                "value",
                "may not be changed in an update.",
            ));
        }
        if new.preemption_policy != old.preemption_policy {
            errs.push(FieldError::immutable(
                "preemptionPolicy",
                new.preemption_policy.clone().unwrap_or_default(),
            ));
        }
        errs
    }

    async fn admit(
        &self,
        api: &Api,
        adm: &mut Admission<'_, PriorityClass>,
    ) -> Result<(), ApiError> {
        if adm.obj.global_default != Some(true) {
            return Ok(());
        }
        let this = adm.obj.metadata.name.clone().unwrap_or_default();
        if let Some(current) = default_class(api, true).await? {
            let other = current.metadata.name.unwrap_or_default();
            if adm.op == Operation::Create || other != this {
                return Err(PriorityError::DuplicateDefault(other)
                    .forbidden(&resources::PRIORITYCLASSES, &this));
            }
        }
        Ok(())
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::NAME,
            Column::new(
                "Value",
                "integer",
                "value represents the integer value of this priority class. This is the actual priority that pods receive when they have the name of this class in their pod spec.",
            ),
            Column::new(
                "Global-Default",
                "boolean",
                "globalDefault specifies whether this PriorityClass should be considered as the default priority for pods that do not have any priority class. Only one PriorityClass can be marked as `globalDefault`. However, if more than one PriorityClasses exists with their `globalDefault` field set to true, the smallest value of such global default PriorityClasses will be used as the default priority.",
            ),
            Column::AGE,
            Column::new(
                "PreemptionPolicy",
                "string",
                "preemptionPolicy is the Policy for preempting pods with lower priority. One of Never, PreemptLowerPriority. Defaults to PreemptLowerPriority if unset.",
            ),
        ]
    }

    fn cells(&self, pc: &PriorityClass) -> Vec<Value> {
        vec![
            Value::String(name(pc)),
            Value::from(pc.value),
            Value::Bool(pc.global_default.unwrap_or(false)),
            age(pc),
            Value::String(
                pc.preemption_policy
                    .clone()
                    .unwrap_or_else(|| "<none>".into()),
            ),
        ]
    }
}

/// The PriorityClass kind with the built-in classes protected from deletion (Kubernetes'
/// PriorityClass REST storage refuses to delete them).
pub struct SystemClassGuard {
    inner: Arc<dyn KindOps>,
}

/// The served PriorityClass kind: `typed` (the kind with [`PriorityClassStrategy`]) guarded by
/// [`SystemClassGuard`].
pub fn kind(typed: Arc<dyn KindOps>) -> Arc<dyn KindOps> {
    Arc::new(SystemClassGuard { inner: typed })
}

#[async_trait]
impl KindOps for SystemClassGuard {
    fn def(&self) -> &'static ResourceDef {
        self.inner.def()
    }

    async fn get(&self, api: &Api, ns: Option<&str>, name: &str) -> Result<Bytes, ApiError> {
        self.inner.get(api, ns, name).await
    }

    async fn create(
        &self,
        api: &Api,
        ns: Option<&str>,
        body: Value,
        opts: &WriteOptions,
    ) -> Result<Written, ApiError> {
        self.inner.create(api, ns, body, opts).await
    }

    async fn update(
        &self,
        api: &Api,
        ns: Option<&str>,
        name: &str,
        sub: Sub,
        opts: &WriteOptions,
        mutate: Mutate<'_>,
    ) -> Result<Written, ApiError> {
        self.inner.update(api, ns, name, sub, opts, mutate).await
    }

    async fn delete(
        &self,
        api: &Api,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Written, ApiError> {
        if SYSTEM_CLASSES.iter().any(|s| s.name == name) {
            tracing::info!(class = name, "refused to delete a system priority class");
            return Err(PriorityError::SystemClassDeletion.forbidden(self.def(), name));
        }
        self.inner.delete(api, ns, name, opts).await
    }

    fn selectable(
        &self,
        raw: &[u8],
    ) -> Result<(std::collections::BTreeMap<String, String>, Fields), ApiError> {
        self.inner.selectable(raw)
    }

    fn field_names(&self) -> Vec<&'static str> {
        self.inner.field_names()
    }

    fn columns(&self) -> Vec<Column> {
        self.inner.columns()
    }

    fn cells(&self, raw: &[u8]) -> Result<Vec<Value>, ApiError> {
        self.inner.cells(raw)
    }

    fn scale(&self, obj: &Value) -> Result<Option<ScaleInfo>, ApiError> {
        self.inner.scale(obj)
    }

    fn with_replicas(&self, obj: Value, replicas: i32) -> Result<Value, ApiError> {
        self.inner.with_replicas(obj, replicas)
    }

    fn present(&self, raw: Bytes) -> Result<Bytes, ApiError> {
        self.inner.present(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(v: Value) -> PriorityClass {
        serde_json::from_value(v).unwrap()
    }

    fn reasons(errs: &[FieldError]) -> Vec<(&str, &str)> {
        errs.iter().map(|e| (e.field.as_str(), e.reason)).collect()
    }

    #[test]
    fn system_classes_pass_their_own_validation() {
        assert_eq!(SYSTEM_CLASSES[0].value, 2_000_001_000);
        assert_eq!(SYSTEM_CLASSES[1].value, 2_000_000_000);
        for s in SYSTEM_CLASSES {
            let mut pc = class(s.object());
            PriorityClassStrategy.defaults(&mut pc);
            assert!(PriorityClassStrategy.validate(&pc).is_empty(), "{}", s.name);
        }
    }

    #[test]
    fn user_values_are_capped_and_the_system_prefix_is_reserved() {
        let ok = class(json!({"metadata": {"name": "high"}, "value": 1_000_000_000}));
        assert!(PriorityClassStrategy.validate(&ok).is_empty());
        let negative = class(json!({"metadata": {"name": "low"}, "value": -5}));
        assert!(PriorityClassStrategy.validate(&negative).is_empty());
        let too_high = class(json!({"metadata": {"name": "high"}, "value": 1_000_000_001}));
        let errs = PriorityClassStrategy.validate(&too_high);
        assert_eq!(reasons(&errs), [("value", "FieldValueForbidden")]);
        assert!(errs[0].message.contains("1000000000"), "{errs:?}");

        let unknown = class(json!({"metadata": {"name": "system-mine"}, "value": 5}));
        let errs = PriorityClassStrategy.validate(&unknown);
        assert_eq!(reasons(&errs), [("metadata.name", "FieldValueForbidden")]);
        assert!(
            errs[0]
                .message
                .contains("system-mine is not a known system priority class"),
            "{errs:?}"
        );
        let wrong_value = class(json!({"metadata": {"name": "system-node-critical"}, "value": 5}));
        let errs = PriorityClassStrategy.validate(&wrong_value);
        assert!(
            errs[0]
                .message
                .contains("value of system-node-critical PriorityClass must be 2000001000"),
            "{errs:?}"
        );
        let default = class(json!({"metadata": {"name": "system-cluster-critical"},
                                   "value": 2_000_000_000, "globalDefault": true}));
        let errs = PriorityClassStrategy.validate(&default);
        assert!(errs[0].message.contains("globalDefault"), "{errs:?}");
    }

    #[test]
    fn preemption_policy_defaults_and_is_checked() {
        let mut pc = class(json!({"metadata": {"name": "a"}, "value": 1, "globalDefault": false}));
        PriorityClassStrategy.defaults(&mut pc);
        assert_eq!(
            pc.preemption_policy.as_deref(),
            Some(PREEMPT_LOWER_PRIORITY)
        );
        assert_eq!(pc.global_default, None);
        let bad =
            class(json!({"metadata": {"name": "a"}, "value": 1, "preemptionPolicy": "Sometimes"}));
        assert_eq!(
            reasons(&PriorityClassStrategy.validate(&bad)),
            [("preemptionPolicy", "FieldValueNotSupported")]
        );
        let empty = class(json!({"metadata": {"name": "a"}, "value": 1, "preemptionPolicy": ""}));
        assert_eq!(
            reasons(&PriorityClassStrategy.validate(&empty)),
            [("preemptionPolicy", "FieldValueRequired")]
        );
    }

    #[test]
    fn value_and_preemption_policy_are_immutable() {
        let old = class(json!({"metadata": {"name": "a"}, "value": 1,
                               "preemptionPolicy": "Never", "description": "x"}));
        let mut new = old.clone();
        new.description = Some("y".into());
        new.global_default = Some(true);
        assert!(PriorityClassStrategy.validate_update(&new, &old).is_empty());
        new.value = 2;
        new.preemption_policy = Some(PREEMPT_LOWER_PRIORITY.into());
        assert_eq!(
            reasons(&PriorityClassStrategy.validate_update(&new, &old)),
            [
                ("value", "FieldValueForbidden"),
                ("preemptionPolicy", "FieldValueInvalid")
            ]
        );
    }

    #[test]
    fn table_cells_follow_the_columns() {
        let mut pc = class(json!({"metadata": {"name": "a"}, "value": 7, "globalDefault": true}));
        PriorityClassStrategy.defaults(&mut pc);
        let names: Vec<&str> = PriorityClassStrategy
            .columns()
            .iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(
            names,
            ["Name", "Value", "Global-Default", "Age", "PreemptionPolicy"]
        );
        let cells = PriorityClassStrategy.cells(&pc);
        assert_eq!(cells.len(), names.len());
        assert_eq!(cells[0], json!("a"));
        assert_eq!(cells[1], json!(7));
        assert_eq!(cells[2], json!(true));
        assert_eq!(cells[4], json!(PREEMPT_LOWER_PRIORITY));
    }

    #[test]
    fn forbidden_errors_read_like_upstream() {
        let e = PriorityError::ClassNotFound("foo".into()).forbidden(&resources::PODS, "x");
        assert_eq!(e.code, 403);
        assert_eq!(e.reason, "Forbidden");
        assert_eq!(
            e.message,
            "pods \"x\" is forbidden: no PriorityClass with name foo was found"
        );
        let e = PriorityError::SystemClassDeletion
            .forbidden(&resources::PRIORITYCLASSES, "system-node-critical");
        assert_eq!(
            e.message,
            "priorityclasses.scheduling.k8s.io \"system-node-critical\" is forbidden: this is a system priority class and cannot be deleted"
        );
        let details = e.details.unwrap();
        assert_eq!(details.group.as_deref(), Some("scheduling.k8s.io"));
        assert_eq!(details.kind.as_deref(), Some("priorityclasses"));
    }
}
