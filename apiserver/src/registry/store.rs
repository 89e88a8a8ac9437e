//! The generic write path shared by every kind: create (generateName, uid, namespace
//! admission, defaults, validation), update and patch (compare-and-swap on resourceVersion with
//! retries when the client gave no precondition, spec/status separation, generation, no-op
//! detection), delete (preconditions, graceful deletion, finalizers, propagation policy) and
//! the dry-run of each.

use std::collections::BTreeMap;
use std::marker::PhantomData;

use async_trait::async_trait;
use bytes::Bytes;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry, Time};
use serde_json::Value;

use super::codec::{decode, encode_object, with_resource_version};
use super::{
    Admission, Api, Column, Fields, Object, Operation, ScaleInfo, SelectableMeta, Strategy, meta,
};
use crate::admission;
use crate::error::{ApiError, FieldError};
use crate::resources::ResourceDef;
use crate::storage::{Revision, StorageError};

/// How unknown fields in a request are treated (`?fieldValidation=`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FieldValidation {
    /// Silently dropped.
    Ignore,
    /// Dropped, with a `Warning` header (the default).
    #[default]
    Warn,
    /// The request fails with 400 BadRequest.
    Strict,
}

/// Options of a write request.
#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    /// `dryRun=All`: do everything but persist.
    pub dry_run: bool,
    /// `fieldManager`, else derived from the user agent.
    pub field_manager: Option<String>,
    /// `fieldValidation`.
    pub validation: FieldValidation,
    /// The client's User-Agent.
    pub user_agent: String,
    /// managedFields were already set by server-side apply: do not track this write again.
    pub applied: bool,
    /// Who writes (`None` for the server's own writes).
    pub user: Option<std::sync::Arc<crate::auth::UserInfo>>,
}

impl WriteOptions {
    /// The field manager of this write: `fieldManager`, else derived from the User-Agent.
    pub fn manager(&self) -> String {
        match &self.field_manager {
            Some(m) if !m.is_empty() => m.clone(),
            _ => rkube_machinery::apply::default_manager(&self.user_agent),
        }
    }
}

/// Options of a delete request (`DeleteOptions` body and query).
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    /// `dryRun=All`.
    pub dry_run: bool,
    /// `gracePeriodSeconds`.
    pub grace_period_seconds: Option<i64>,
    /// `propagationPolicy`: Orphan, Background or Foreground.
    pub propagation_policy: Option<String>,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
}

/// The result of a write.
#[derive(Clone, Debug)]
pub struct Written {
    /// The object as stored (with its resourceVersion).
    pub body: Bytes,
    /// A create (201) rather than an update (200).
    pub created: bool,
    /// The object is still there, being deleted (graceful deletion or finalizers).
    pub pending_deletion: bool,
    /// `Warning` headers (e.g. unknown fields).
    pub warnings: Vec<String>,
}

/// Which part of an object an update writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sub {
    /// The object (status is kept as stored when the kind has a status subresource).
    Main,
    /// Only `status`.
    Status,
    /// Only `spec.finalizers` (namespaces' `finalize`).
    Finalize,
    /// A pod's binding to a node: like `Main`, but setting what an update may not (nodeName).
    Binding,
    /// A CertificateSigningRequest's `approval`: like `Status` (the stored object with the
    /// request's status), narrowed to the conditions by the kind's strategy.
    Approval,
}

impl Sub {
    /// The subresource's name in managedFields and messages (`None` for the object itself).
    pub fn name(self) -> Option<&'static str> {
        match self {
            Sub::Main => None,
            Sub::Status => Some("status"),
            Sub::Finalize => Some("finalize"),
            Sub::Binding => Some("binding"),
            Sub::Approval => Some("approval"),
        }
    }
}

/// Computes the desired object from the stored one (`Value::Null` when there is none).
pub type Mutate<'a> = &'a (dyn Fn(&Value) -> Result<Value, ApiError> + Send + Sync);

/// A kind's operations, type-erased for the HTTP layer.
#[async_trait]
pub trait KindOps: Send + Sync {
    /// The resource.
    fn def(&self) -> &'static ResourceDef;

    /// Reads one object (with its resourceVersion).
    async fn get(&self, api: &Api, ns: Option<&str>, name: &str) -> Result<Bytes, ApiError>;

    /// Creates an object from a request body.
    async fn create(
        &self,
        api: &Api,
        ns: Option<&str>,
        body: Value,
        opts: &WriteOptions,
    ) -> Result<Written, ApiError>;

    /// Updates (PUT) or patches an object: `mutate` turns the stored object into the desired
    /// one; retried on conflicts unless the desired object names a resourceVersion.
    async fn update(
        &self,
        api: &Api,
        ns: Option<&str>,
        name: &str,
        sub: Sub,
        opts: &WriteOptions,
        mutate: Mutate<'_>,
    ) -> Result<Written, ApiError>;

    /// Deletes an object (or starts its graceful deletion).
    async fn delete(
        &self,
        api: &Api,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Written, ApiError>;

    /// Labels and selectable fields of a stored object.
    fn selectable(&self, raw: &[u8]) -> Result<(BTreeMap<String, String>, Fields), ApiError>;

    /// Field selector names supported.
    fn field_names(&self) -> Vec<&'static str>;

    /// Table columns.
    fn columns(&self) -> Vec<Column>;

    /// Table cells of a stored object.
    fn cells(&self, raw: &[u8]) -> Result<Vec<Value>, ApiError>;

    /// Scale facts of an object.
    fn scale(&self, obj: &Value) -> Result<Option<ScaleInfo>, ApiError>;

    /// The object with spec.replicas set.
    fn with_replicas(&self, obj: Value, replicas: i32) -> Result<Value, ApiError>;

    /// How a stored object is shown through this kind (a view converts it; most return it).
    fn present(&self, raw: Bytes) -> Result<Bytes, ApiError> {
        Ok(raw)
    }
}

/// The [`KindOps`] of a typed kind `T` with strategy `S`.
pub struct TypedKind<T, S> {
    def: &'static ResourceDef,
    strategy: S,
    _t: PhantomData<fn() -> T>,
}

impl<T: Object, S: Strategy<T>> TypedKind<T, S> {
    /// Serves `def` with `strategy`.
    pub fn new(def: &'static ResourceDef, strategy: S) -> Self {
        Self {
            def,
            strategy,
            _t: PhantomData,
        }
    }

    fn storage_err(&self, e: StorageError, name: &str) -> ApiError {
        ApiError::from_storage(e, self.def.group, self.def.resource, name)
    }

    fn decode_value(&self, v: Value) -> Result<T, ApiError> {
        decode(v, self.def.kind, &self.def.api_version())
    }

    fn decode_raw(&self, raw: &[u8]) -> Result<T, ApiError> {
        serde_json::from_slice(raw).map_err(|e| {
            ApiError::internal(format!("stored {} is not decodable: {e}", self.def.kind))
        })
    }

    fn invalid(&self, name: &str, errs: Vec<FieldError>) -> ApiError {
        ApiError::invalid(self.def.group, self.def.kind, name, errs)
    }

    /// Checks `kind`/`apiVersion` of a request body (filling them when absent) and unknown
    /// fields; returns warnings.
    fn check_body(&self, body: &mut Value, opts: &WriteOptions) -> Result<Vec<String>, ApiError> {
        let Some(obj) = body.as_object_mut() else {
            return Err(ApiError::bad_request(format!(
                "the body must be a JSON object of kind {}",
                self.def.kind
            )));
        };
        let api_version = self.def.api_version();
        match obj.get("kind").and_then(Value::as_str) {
            None | Some("") => {
                obj.insert("kind".into(), self.def.kind.into());
            }
            Some(k) if k == self.def.kind => {}
            Some(k) => {
                return Err(ApiError::bad_request(format!(
                    "{k} in version \"{}\" cannot be handled as a {}: the kind does not match the resource",
                    self.def.version, self.def.kind
                )));
            }
        }
        match obj.get("apiVersion").and_then(Value::as_str) {
            None | Some("") => {
                obj.insert("apiVersion".into(), api_version.into());
            }
            Some(v) if v == api_version => {}
            Some(v) => {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({v}) does not match the expected API version ({api_version})"
                )));
            }
        }
        if opts.validation == FieldValidation::Ignore {
            return Ok(Vec::new());
        }
        let unknown = admission::unknown_fields(self.def, body);
        if unknown.is_empty() {
            return Ok(Vec::new());
        }
        let messages: Vec<String> = unknown
            .iter()
            .map(|f| format!("unknown field \"{}\"", f.trim_start_matches('.')))
            .collect();
        if opts.validation == FieldValidation::Strict {
            return Err(ApiError::bad_request(format!(
                "strict decoding error: {}",
                messages.join(", ")
            )));
        }
        Ok(messages)
    }

    /// Puts the namespace of the URL into the body, refusing a different one.
    fn place(&self, body: &mut Value, ns: Option<&str>) -> Result<(), ApiError> {
        let meta = body
            .as_object_mut()
            .map(|o| {
                o.entry("metadata")
                    .or_insert_with(|| Value::Object(Default::default()))
            })
            .and_then(Value::as_object_mut)
            .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
        if self.def.namespaced {
            let ns = ns.ok_or_else(|| {
                ApiError::bad_request(format!(
                    "{} must be created in a namespace (POST to /…/namespaces/NAMESPACE/{})",
                    self.def.resource, self.def.resource
                ))
            })?;
            match meta.get("namespace").and_then(Value::as_str) {
                None | Some("") => {
                    meta.insert("namespace".into(), ns.into());
                }
                Some(given) if given == ns => {}
                Some(_) => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
            }
        } else {
            meta.remove("namespace");
        }
        Ok(())
    }

    fn spec_changed(new: &T, old: &T) -> Result<bool, ApiError> {
        let strip = |o: &T| -> Result<Value, ApiError> {
            let mut v =
                serde_json::to_value(o).map_err(|e| ApiError::internal(format!("encode: {e}")))?;
            if let Some(m) = v.as_object_mut() {
                m.remove("metadata");
                m.remove("status");
            }
            Ok(v)
        };
        Ok(strip(new)? != strip(old)?)
    }

    /// Records in `managedFields` which fields this write's manager now owns.
    fn track_fields(
        &self,
        obj: &mut T,
        old: Option<&T>,
        opts: &WriteOptions,
        sub: Sub,
    ) -> Result<(), ApiError> {
        if opts.applied {
            return Ok(());
        }
        let to_value =
            |o: &T| serde_json::to_value(o).map_err(|e| ApiError::internal(format!("encode: {e}")));
        let mut new = to_value(obj)?;
        let old = old.map(to_value).transpose()?;
        let manager = opts.manager();
        let api_version = self.def.api_version();
        let time = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second())
            .unwrap_or_else(|_| jiff::Timestamp::now())
            .to_string();
        let m = rkube_machinery::apply::Manager {
            name: &manager,
            api_version: &api_version,
            subresource: matches!(sub, Sub::Status | Sub::Approval)
                .then(|| sub.name())
                .flatten(),
            time: &time,
        };
        let schema = rkube_machinery::schema::Schemas::builtin().for_kind(
            self.def.group,
            self.def.version,
            self.def.kind,
        );
        rkube_machinery::apply::track_update(old.as_ref(), &mut new, &m, schema)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        // `new` is done with: its entries are moved out, not copied.
        let managed = match new["metadata"].get_mut("managedFields").map(Value::take) {
            None | Some(Value::Null) => None,
            Some(Value::Array(entries)) => Some(
                entries
                    .into_iter()
                    .map(managed_entry)
                    .collect::<serde_json::Result<Vec<_>>>()
                    .map_err(|e| ApiError::internal(format!("managedFields: {e}")))?,
            ),
            Some(other) => {
                return Err(ApiError::internal(format!(
                    "managedFields: expected a list, got {other}"
                )));
            }
        };
        obj.metadata_mut().managed_fields = managed;
        Ok(())
    }

    fn validate_all(&self, obj: &T, old: Option<&T>, sub: Sub) -> Vec<FieldError> {
        let mut errs = meta::validate(obj.metadata(), self.def);
        errs.extend(self.strategy.validate(obj));
        if let Some(old) = old {
            errs.extend(meta::validate_update(obj.metadata(), old.metadata()));
            if sub != Sub::Binding {
                errs.extend(self.strategy.validate_update(obj, old));
            }
        }
        errs
    }

    async fn create_typed(
        &self,
        api: &Api,
        ns: Option<&str>,
        mut body: Value,
        opts: &WriteOptions,
        required_name: Option<&str>,
    ) -> Result<Written, ApiError> {
        let mut warnings = self.check_body(&mut body, opts)?;
        self.place(&mut body, ns)?;
        if self.def.status_subresource
            && let Some(o) = body.as_object_mut()
        {
            // Kubernetes' types carry their status as a struct, not a pointer: every object of
            // a kind with a status has at least `"status": {}` (clients such as the official
            // Python one read `obj.status.x` right after a create).
            let keep =
                !self.def.reset_status_on_create && o.get("status").is_some_and(Value::is_object);
            if !keep {
                o.insert("status".into(), Value::Object(Default::default()));
            }
        }
        let mut obj: T = self.decode_value(body)?;
        if let Some(required) = required_name
            && obj.metadata().name.as_deref() != Some(required)
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({required})",
                obj.metadata().name.clone().unwrap_or_default()
            )));
        }
        let generate = obj
            .metadata()
            .name
            .as_deref()
            .is_none_or(str::is_empty)
            .then(|| obj.metadata().generate_name.clone())
            .flatten()
            .filter(|g| !g.is_empty());
        if let Some(prefix) = &generate {
            obj.metadata_mut().name = Some(meta::generate_name(prefix));
        }
        self.strategy.prepare_create(&mut obj);
        self.strategy.defaults(&mut obj);
        meta::fill_for_create(obj.metadata_mut(), self.def);
        if self.def.namespaced {
            admission::namespace_lifecycle(api, ns.unwrap_or_default(), self.def).await?;
        }
        let name = obj.metadata().name.clone().unwrap_or_default();
        // Metadata first: admission (which may allocate) needs a well-formed object.
        let errs = meta::validate(obj.metadata(), self.def);
        if !errs.is_empty() {
            return Err(self.invalid(&name, errs));
        }
        let mut adm = Admission {
            op: Operation::Create,
            sub: Sub::Main,
            obj: &mut obj,
            old: None,
            dry_run: opts.dry_run,
            user: opts.user.as_deref(),
            warnings: Vec::new(),
        };
        self.strategy.admit(api, &mut adm).await?;
        warnings.append(&mut adm.warnings);
        let errs = self.strategy.validate(&obj);
        if !errs.is_empty() {
            self.strategy.release(api, &obj, None).await;
            return Err(self.invalid(&name, errs));
        }
        let charged = super::kinds::quota::charge(
            api,
            self.def,
            obj.metadata().namespace.as_deref(),
            || serde_json::to_value(&obj).unwrap_or_default(),
            opts.dry_run,
        )
        .await;
        if let Err(e) = charged {
            self.strategy.release(api, &obj, None).await;
            return Err(e);
        }
        if let Err(e) = self.track_fields(&mut obj, None, opts, Sub::Main) {
            self.strategy.release(api, &obj, None).await;
            return Err(e);
        }
        let bytes = encode_object(&mut obj)?;
        if opts.dry_run {
            self.strategy.release(api, &obj, None).await;
            return Ok(Written {
                body: bytes,
                created: true,
                pending_deletion: false,
                warnings,
            });
        }
        let key = self.def.key(obj.metadata().namespace.as_deref(), &name);
        match api.store.create(&key, bytes).await {
            Ok(kv) => Ok(Written {
                body: with_resource_version(&kv.value, kv.mod_revision),
                created: true,
                pending_deletion: false,
                warnings,
            }),
            Err(e) => {
                self.strategy.release(api, &obj, None).await;
                Err(self.storage_err(e, &name))
            }
        }
    }

    /// Applies a finished update: delete when finalization is complete, else CAS.
    async fn commit_update(
        &self,
        api: &Api,
        key: &str,
        current_rev: Revision,
        obj: &T,
        bytes: Bytes,
    ) -> Result<(Bytes, bool), StorageError> {
        let m = obj.metadata();
        let finalized = m.deletion_timestamp.is_some()
            && m.finalizers.as_ref().is_none_or(Vec::is_empty)
            && !graceful_pending(m)
            && !self.strategy.awaits_finalization(obj);
        if finalized {
            let kv = api.store.delete(key, Some(current_rev)).await?;
            let _ = kv;
            self.strategy.release(api, obj, None).await;
            // The deleted object as it was last written.
            return Ok((with_resource_version(&bytes, current_rev), false));
        }
        let kv = api.store.update(key, current_rev, bytes).await?;
        Ok((with_resource_version(&kv.value, kv.mod_revision), true))
    }
}

/// A graceful deletion whose grace period has not run out: the kubelet finishes it.
fn graceful_pending(m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> bool {
    m.deletion_grace_period_seconds.unwrap_or(0) > 0
}

fn body_resource_version(v: &Value) -> Option<String> {
    v.get("metadata")
        .and_then(|m| m.get("resourceVersion"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

#[async_trait]
impl<T: Object, S: Strategy<T>> KindOps for TypedKind<T, S> {
    fn def(&self) -> &'static ResourceDef {
        self.def
    }

    async fn get(&self, api: &Api, ns: Option<&str>, name: &str) -> Result<Bytes, ApiError> {
        let kv = api
            .store
            .get(&self.def.key(ns, name))
            .await
            .map_err(|e| self.storage_err(e, name))?
            .ok_or_else(|| ApiError::not_found(self.def.group, self.def.resource, name))?;
        Ok(with_resource_version(&kv.value, kv.mod_revision))
    }

    async fn create(
        &self,
        api: &Api,
        ns: Option<&str>,
        body: Value,
        opts: &WriteOptions,
    ) -> Result<Written, ApiError> {
        // A generated name can collide: try again with another suffix, as Kubernetes does.
        let generated = body
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .is_none_or(str::is_empty);
        if !generated {
            return self.create_typed(api, ns, body, opts, None).await;
        }
        let mut attempts = 0;
        loop {
            match self.create_typed(api, ns, body.clone(), opts, None).await {
                Err(e) if e.reason == "AlreadyExists" && attempts < 8 => {
                    attempts += 1;
                }
                other => return other,
            }
        }
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
        let key = self.def.key(ns, name);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let stored = api
                .store
                .get(&key)
                .await
                .map_err(|e| self.storage_err(e, name))?;
            let Some(stored) = stored else {
                if self.def.create_on_update && sub == Sub::Main {
                    let desired = mutate(&Value::Null)?;
                    if body_resource_version(&desired).is_some() {
                        return Err(ApiError::not_found(self.def.group, self.def.resource, name));
                    }
                    return self.create_typed(api, ns, desired, opts, Some(name)).await;
                }
                return Err(ApiError::not_found(self.def.group, self.def.resource, name));
            };
            let current: Value =
                serde_json::from_slice(&with_resource_version(&stored.value, stored.mod_revision))
                    .map_err(|e| ApiError::internal(format!("stored object unreadable: {e}")))?;
            let mut desired = mutate(&current)?;
            let warnings = self.check_body(&mut desired, opts)?;
            self.place(&mut desired, ns)?;
            let precondition = body_resource_version(&desired);
            if let Some(rv) = &precondition
                && *rv != stored.mod_revision.to_string()
            {
                return Err(ApiError::stale(self.def.group, self.def.resource, name));
            }
            let desired_name = desired
                .get("metadata")
                .and_then(|m| m.get("name"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            if desired_name != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({desired_name}) does not match the name on the URL ({name})"
                )));
            }
            if let (Some(uid), Some(stored_uid)) = (
                desired["metadata"].get("uid").and_then(Value::as_str),
                current["metadata"].get("uid").and_then(Value::as_str),
            ) && !uid.is_empty()
                && uid != stored_uid
            {
                return Err(ApiError::conflict(
                    self.def.group,
                    self.def.resource,
                    name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {stored_uid}"
                    ),
                ));
            }
            let desired = match sub {
                // The binding's update function is the server's own (it starts from the stored
                // object): it sets the node and the PodScheduled condition in one write, as
                // Kubernetes' binding REST does.
                Sub::Binding => desired,
                Sub::Main => {
                    let mut d = desired;
                    if self.def.status_subresource {
                        match current.get("status") {
                            Some(s) => d["status"] = s.clone(),
                            None => {
                                if let Some(o) = d.as_object_mut() {
                                    o.remove("status");
                                }
                            }
                        }
                    }
                    d
                }
                Sub::Status | Sub::Approval => {
                    let mut d = current.clone();
                    let mut desired = desired;
                    match desired.as_object_mut().and_then(|o| o.remove("status")) {
                        Some(s) => d["status"] = s,
                        None => {
                            if let Some(o) = d.as_object_mut() {
                                o.remove("status");
                            }
                        }
                    }
                    d
                }
                Sub::Finalize => {
                    let mut d = current.clone();
                    let finalizers = desired
                        .get("spec")
                        .and_then(|s| s.get("finalizers"))
                        .cloned()
                        .unwrap_or(Value::Array(vec![]));
                    d["spec"]["finalizers"] = finalizers;
                    d
                }
            };
            let mut obj: T = self.decode_value(desired)?;
            let old: T = self.decode_value(current)?;
            meta::keep_for_update(obj.metadata_mut(), old.metadata(), self.def);
            self.strategy.prepare_update(&mut obj, &old);
            self.strategy
                .prepare_subresource_update(sub, &mut obj, &old);
            self.strategy.defaults(&mut obj);
            if self.def.has_generation && Self::spec_changed(&obj, &old)? {
                obj.metadata_mut().generation = Some(old.metadata().generation.unwrap_or(0) + 1);
            }
            let errs = self.validate_all(&obj, Some(&old), sub);
            if !errs.is_empty() {
                return Err(self.invalid(name, errs));
            }
            let mut adm = Admission {
                op: Operation::Update,
                sub,
                obj: &mut obj,
                old: Some(&old),
                dry_run: opts.dry_run,
                user: opts.user.as_deref(),
                warnings: Vec::new(),
            };
            self.strategy.admit(api, &mut adm).await?;
            if let Err(e) = self.track_fields(&mut obj, Some(&old), opts, sub) {
                self.strategy.release(api, &obj, Some(&old)).await;
                return Err(e);
            }
            let bytes = encode_object(&mut obj)?;
            if bytes == stored.value && obj.metadata().deletion_timestamp.is_none() {
                // Nothing changed: no write, no new resourceVersion.
                return Ok(Written {
                    body: with_resource_version(&stored.value, stored.mod_revision),
                    created: false,
                    pending_deletion: false,
                    warnings,
                });
            }
            if opts.dry_run {
                self.strategy.release(api, &obj, Some(&old)).await;
                return Ok(Written {
                    body: with_resource_version(&bytes, stored.mod_revision),
                    created: false,
                    pending_deletion: false,
                    warnings,
                });
            }
            match self
                .commit_update(api, &key, stored.mod_revision, &obj, bytes)
                .await
            {
                Ok((body, still_there)) => {
                    if still_there {
                        self.strategy.release(api, &old, Some(&obj)).await;
                    }
                    return Ok(Written {
                        body,
                        created: false,
                        pending_deletion: false,
                        warnings,
                    });
                }
                Err(StorageError::Conflict { .. } | StorageError::NotFound { .. })
                    if precondition.is_none() && attempts < 16 =>
                {
                    self.strategy.release(api, &obj, Some(&old)).await;
                    continue;
                }
                Err(e) => {
                    self.strategy.release(api, &obj, Some(&old)).await;
                    return Err(self.storage_err(e, name));
                }
            }
        }
    }

    async fn delete(
        &self,
        api: &Api,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Written, ApiError> {
        let key = self.def.key(ns, name);
        loop {
            let stored = api
                .store
                .get(&key)
                .await
                .map_err(|e| self.storage_err(e, name))?
                .ok_or_else(|| ApiError::not_found(self.def.group, self.def.resource, name))?;
            let mut obj: T = self.decode_raw(&stored.value)?;
            if let Some(uid) = &opts.uid
                && obj.metadata().uid.as_deref() != Some(uid.as_str())
            {
                return Err(ApiError::conflict(
                    self.def.group,
                    self.def.resource,
                    name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        obj.metadata().uid.clone().unwrap_or_default()
                    ),
                ));
            }
            if let Some(rv) = &opts.resource_version
                && *rv != stored.mod_revision.to_string()
            {
                return Err(ApiError::conflict(
                    self.def.group,
                    self.def.resource,
                    name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                        stored.mod_revision
                    ),
                ));
            }
            // Finalizers the propagation policy asks the garbage collector to honour.
            let mut finalizers = obj.metadata().finalizers.clone().unwrap_or_default();
            let policy_finalizer = match opts.propagation_policy.as_deref() {
                Some("Orphan") => Some("orphan"),
                Some("Foreground") => Some("foregroundDeletion"),
                Some("Background") | None => None,
                Some(other) => {
                    return Err(self.invalid(
                        name,
                        vec![FieldError::not_supported(
                            "propagationPolicy",
                            other,
                            &["Foreground", "Background", "Orphan"],
                        )],
                    ));
                }
            };
            let grace = self.strategy.grace_period(&obj, opts.grace_period_seconds);
            let graceful = grace.is_some_and(|g| g > 0);
            let already_deleting = obj.metadata().deletion_timestamp.is_some();
            if let Some(f) = policy_finalizer
                && !finalizers.iter().any(|x| x == f)
                && (!already_deleting || !finalizers.is_empty())
            {
                finalizers.push(f.to_string());
            }
            let pending =
                !finalizers.is_empty() || graceful || self.strategy.awaits_finalization(&obj);
            if pending {
                let m = obj.metadata_mut();
                let grace_secs = grace.unwrap_or(0);
                let shorter = m
                    .deletion_grace_period_seconds
                    .is_none_or(|current| grace_secs < current);
                if already_deleting
                    && !shorter
                    && m.finalizers.clone().unwrap_or_default() == finalizers
                {
                    // Nothing new: the deletion is already under way.
                    return Ok(Written {
                        body: with_resource_version(&stored.value, stored.mod_revision),
                        created: false,
                        pending_deletion: true,
                        warnings: vec![],
                    });
                }
                if !already_deleting || shorter {
                    let at = jiff::Timestamp::now().as_second() + grace_secs;
                    m.deletion_timestamp = Some(Time(
                        jiff::Timestamp::from_second(at).unwrap_or_else(|_| jiff::Timestamp::now()),
                    ));
                    m.deletion_grace_period_seconds = Some(grace_secs);
                }
                m.finalizers = (!finalizers.is_empty()).then_some(finalizers);
                self.strategy.defaults(&mut obj);
                let bytes = encode_object(&mut obj)?;
                if opts.dry_run {
                    return Ok(Written {
                        body: with_resource_version(&bytes, stored.mod_revision),
                        created: false,
                        pending_deletion: true,
                        warnings: vec![],
                    });
                }
                match api.store.update(&key, stored.mod_revision, bytes).await {
                    Ok(kv) => {
                        return Ok(Written {
                            body: with_resource_version(&kv.value, kv.mod_revision),
                            created: false,
                            pending_deletion: true,
                            warnings: vec![],
                        });
                    }
                    Err(StorageError::Conflict { .. }) if opts.resource_version.is_none() => {
                        continue;
                    }
                    Err(e) => return Err(self.storage_err(e, name)),
                }
            }
            if opts.dry_run {
                return Ok(Written {
                    body: with_resource_version(&stored.value, stored.mod_revision),
                    created: false,
                    pending_deletion: false,
                    warnings: vec![],
                });
            }
            match api.store.delete(&key, Some(stored.mod_revision)).await {
                Ok(kv) => {
                    self.strategy.release(api, &obj, None).await;
                    return Ok(Written {
                        body: with_resource_version(&kv.value, kv.mod_revision),
                        created: false,
                        pending_deletion: false,
                        warnings: vec![],
                    });
                }
                Err(StorageError::Conflict { .. }) if opts.resource_version.is_none() => continue,
                Err(e) => return Err(self.storage_err(e, name)),
            }
        }
    }

    fn selectable(&self, raw: &[u8]) -> Result<(BTreeMap<String, String>, Fields), ApiError> {
        let (meta, mut fields) = match self.strategy.selectable_raw(raw) {
            Some(read) => read.map_err(|e| {
                ApiError::internal(format!("stored {} is not decodable: {e}", self.def.kind))
            })?,
            None => {
                let mut obj = self.decode_raw(raw)?;
                let mut fields = Fields::new();
                self.strategy.fields(&obj, &mut fields);
                let m = obj.metadata_mut();
                let meta = SelectableMeta {
                    name: m.name.take(),
                    namespace: m.namespace.take(),
                    labels: m.labels.take(),
                };
                (meta, fields)
            }
        };
        fields.insert("metadata.name".into(), meta.name.unwrap_or_default());
        if self.def.namespaced {
            fields.insert(
                "metadata.namespace".into(),
                meta.namespace.unwrap_or_default(),
            );
        }
        Ok((meta.labels.unwrap_or_default(), fields))
    }

    fn field_names(&self) -> Vec<&'static str> {
        let mut names = vec!["metadata.name"];
        if self.def.namespaced {
            names.push("metadata.namespace");
        }
        names.extend_from_slice(self.strategy.field_names());
        names
    }

    fn columns(&self) -> Vec<Column> {
        self.strategy.columns()
    }

    fn cells(&self, raw: &[u8]) -> Result<Vec<Value>, ApiError> {
        Ok(self.strategy.cells(&self.decode_raw(raw)?))
    }

    fn scale(&self, obj: &Value) -> Result<Option<ScaleInfo>, ApiError> {
        let t: T = self.decode_value(obj.clone())?;
        Ok(self.strategy.scale(&t))
    }

    fn with_replicas(&self, obj: Value, replicas: i32) -> Result<Value, ApiError> {
        let mut t: T = self.decode_value(obj)?;
        self.strategy.set_replicas(&mut t, replicas);
        serde_json::to_value(&t).map_err(|e| ApiError::internal(format!("encode: {e}")))
    }
}

/// An encoded managed-fields entry as the typed entry: its field set (most of it) is moved
/// into place, not decoded again.
fn managed_entry(mut entry: Value) -> serde_json::Result<ManagedFieldsEntry> {
    let fields = entry
        .as_object_mut()
        .and_then(|o| o.remove("fieldsV1"))
        .filter(|f| !f.is_null());
    let mut typed: ManagedFieldsEntry = serde_json::from_value(entry)?;
    typed.fields_v1 = fields.map(FieldsV1);
    Ok(typed)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn managed_entries_keep_every_field() {
        let encoded = json!({
            "manager": "kubectl", "operation": "Update", "apiVersion": "v1",
            "time": "2026-11-29T06:00:00Z", "fieldsType": "FieldsV1", "subresource": "status",
            "fieldsV1": {"f:status": {"f:phase": {}}}
        });
        let typed = managed_entry(encoded.clone()).unwrap();
        assert_eq!(serde_json::to_value(&typed).unwrap(), encoded);
        // A null or missing field set is no field set, as decoding would read it.
        let without = json!({"manager": "m", "operation": "Apply", "fieldsV1": null});
        assert_eq!(managed_entry(without).unwrap().fields_v1, None);
        // What is not an entry is an error, not an empty entry.
        assert!(managed_entry(json!({"manager": 7})).is_err());
    }
}
