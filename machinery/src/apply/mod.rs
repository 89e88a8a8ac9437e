//! Server-side apply and `metadata.managedFields` tracking, with the semantics of Kubernetes
//! 1.33 (structured-merge-diff v4 and the API server's field manager).
//!
//! Every write records which *manager* (the `fieldManager` query parameter, else the
//! User-Agent prefix, see [`default_manager`]) owns which fields, as `metadata.managedFields`
//! entries holding field sets in the `FieldsV1` format (see [`fieldpath`]):
//!
//! - [`track_update`] for create, update and the non-apply patches: the fields the write adds
//!   or changes become the manager's (`operation: Update`) and are taken from every other
//!   manager; removed fields leave every set.
//! - [`apply`] for `application/apply-patch+yaml`: the applied configuration is merged into
//!   the live object following the schema (objects and maps key by key, map-type lists by
//!   key, sets by value, anything atomic replaced), fields the manager applied last time and
//!   nobody owns any more are removed, and the manager's `Apply` entry becomes exactly the
//!   set of the applied configuration. Changing a field another manager owns is a conflict
//!   unless forced (then ownership moves); applying the value a field already has shares it.
//!
//! Ownership never covers `apiVersion`, `kind` and the server-managed metadata (name,
//! namespace, uid, resourceVersion, generation, creationTimestamp, deletionTimestamp,
//! deletionGracePeriodSeconds, selfLink, managedFields); writes to the main resource never
//! own `status`, writes to the `status` subresource own nothing else.
//!
//! Also as in Kubernetes: entries whose set becomes empty are dropped; entries are listed by
//! operation (`Apply` first), time, manager, API version and subresource; at most
//! [`MAX_UPDATE_MANAGERS`] `Update` entries are kept (older ones merge into
//! `ancient-changes`); an update sending `managedFields: []` (or `[{}]`) clears the tracking,
//! and updates of an object without managed fields are not tracked until the next apply
//! (which first records the existing fields as owned by `before-first-apply`); a valid
//! non-empty `managedFields` sent with an update replaces the recorded one; the `kubectl`
//! manager may take over the fields its client-side `last-applied-configuration` annotation
//! lists without forcing, and keeps that annotation in sync.

pub mod fieldpath;
mod managed;
#[cfg(test)]
mod tests;
mod typed;
mod types;

use serde_json::{Map, Value};

use self::fieldpath::{FieldSet, PathElement, path_string, write_go_json};
use self::managed::{Entry, Identity};
use self::typed::{Hide, Ty};
use self::types::Types;
use crate::schema::SchemaRef;

/// The annotation `kubectl apply` (client-side) records the applied configuration in.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The most `Update` entries kept; older ones are merged into an `ancient-changes` entry.
pub const MAX_UPDATE_MANAGERS: usize = 10;

/// The longest field manager name (bytes).
pub const FIELD_MANAGER_MAX_LENGTH: usize = 128;

/// The manager owning the fields of an object without managed fields when it is first
/// applied to.
const BEFORE_FIRST_APPLY: &str = "before-first-apply";

/// The manager whose conflicts with its client-side apply annotation are forgiven.
const KUBECTL: &str = "kubectl";

/// The most bytes all annotations of an object may take (keys and values).
const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// The metadata fields nobody owns.
const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
];

/// Who writes, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Manager<'a> {
    /// The field manager (an empty name is recorded as `unknown`, as Kubernetes does).
    pub name: &'a str,
    /// The API version of the request (`apps/v1`, `v1`).
    pub api_version: &'a str,
    /// The subresource written (`status`, `scale`), if any.
    pub subresource: Option<&'a str>,
    /// The time of the write, RFC 3339 (recorded in UTC, whole seconds).
    pub time: &'a str,
}

impl Manager<'_> {
    fn name(&self) -> &str {
        if self.name.is_empty() {
            "unknown"
        } else {
            self.name
        }
    }

    fn subresource(&self) -> Option<&str> {
        self.subresource.filter(|s| !s.is_empty())
    }

    fn identity(&self, applied: bool) -> Identity {
        Identity::new(self.name(), applied, self.api_version, self.subresource())
    }

    /// A new, empty entry of this manager.
    fn entry(&self, applied: bool) -> Entry {
        Entry {
            manager: self.name().to_owned(),
            applied,
            api_version: self.api_version.to_owned(),
            subresource: self.subresource().map(str::to_owned),
            time: None,
            set: FieldSet::new(),
        }
    }

    fn scope(&self) -> Scope {
        Scope {
            status_only: self.subresource() == Some("status"),
        }
    }
}

/// The operation of a `managedFields` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    /// Server-side apply.
    Apply,
    /// Any other write.
    Update,
}

/// A field another manager owns that an apply would change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The manager owning the field.
    pub manager: String,
    /// The operation of the owning entry.
    pub operation: Operation,
    /// The API version of the owning entry.
    pub api_version: String,
    /// The subresource of the owning entry, if any.
    pub subresource: Option<String>,
    /// The field, e.g. `.spec.replicas` or
    /// `.spec.template.spec.containers[name="web"].image`.
    pub path: String,
}

impl Conflict {
    /// The owner as Kubernetes names it in messages: `"kubectl-client-side-apply" using
    /// apps/v1` for an `Update` entry, `"kubectl"` for an `Apply` entry, with
    /// ` with subresource "status"` for a subresource's entry.
    pub fn owner(&self) -> String {
        let mut out = quote(&self.manager);
        if let Some(subresource) = &self.subresource {
            out.push_str(" with subresource ");
            out.push_str(&quote(subresource));
        }
        if self.operation == Operation::Update {
            out.push_str(" using ");
            out.push_str(&self.api_version);
        }
        out
    }

    /// The message of the conflict's `FieldManagerConflict` status cause:
    /// `conflict with "x" using apps/v1` (the cause's `field` is [`Conflict::path`]).
    pub fn message(&self) -> String {
        format!("conflict with {}", self.owner())
    }

    fn sort_key(&self) -> (&str, Operation, &str, Option<&str>) {
        (
            &self.manager,
            self.operation,
            &self.api_version,
            self.subresource.as_deref(),
        )
    }
}

fn quote(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}

/// Why an apply (or the tracking of an update) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// The apply would change fields other managers own (HTTP 409); sorted by manager, then
    /// path. The message is Kubernetes': `Apply failed with 1 conflict: conflict with
    /// "kubectl-client-side-apply" using apps/v1: .spec.replicas`.
    #[error("{}", conflicts_message(.0))]
    Conflicts(Vec<Conflict>),
    /// The input is not a valid object (`path` is empty for the whole object).
    #[error("{}", invalid_message(.path, .message))]
    Invalid {
        /// Where, e.g. `.spec.template.spec.containers`.
        path: String,
        /// What is wrong.
        message: String,
    },
}

fn invalid_message(path: &str, message: &str) -> String {
    if path.is_empty() {
        message.to_owned()
    } else {
        format!("{path}: {message}")
    }
}

fn conflicts_message(conflicts: &[Conflict]) -> String {
    if let [only] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            only.owner(),
            only.path
        );
    }
    let mut lines: Vec<String> = Vec::new();
    let mut previous: Option<&Conflict> = None;
    for conflict in conflicts {
        if previous.is_none_or(|p| p.sort_key() != conflict.sort_key()) {
            lines.push(format!("conflicts with {}:", conflict.owner()));
        }
        lines.push(format!("- {}", conflict.path));
        previous = Some(conflict);
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

fn invalid(path: &str, message: impl Into<String>) -> ApplyError {
    ApplyError::Invalid {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// The field manager Kubernetes derives from a User-Agent when a request names none: the
/// text before the first `/` (`kubectl/v1.33.1 (linux/amd64) kubernetes/abc` → `kubectl`),
/// without non-printable characters, cut to [`FIELD_MANAGER_MAX_LENGTH`] bytes.
pub fn default_manager(user_agent: &str) -> String {
    let prefix = user_agent.split('/').next().unwrap_or_default();
    let mut out = String::new();
    for c in prefix.chars() {
        if c.is_control() || (c.is_whitespace() && c != ' ') {
            continue;
        }
        if out.len() + c.len_utf8() > FIELD_MANAGER_MAX_LENGTH {
            break;
        }
        out.push(c);
    }
    out
}

/// Which part of an object a write may own.
#[derive(Debug, Clone, Copy)]
struct Scope {
    /// A write to the `status` subresource: only `status`.
    status_only: bool,
}

impl Scope {
    /// The part of `set` the write may own: without `apiVersion`, `kind` and the server
    /// metadata (with what is below them), without `metadata` itself (an empty or new
    /// metadata; what is below may be owned), and only `status` or all but `status`.
    fn filter(self, mut set: FieldSet) -> FieldSet {
        set.retain_nodes(|element, member, children| match element.as_field() {
            Some("apiVersion" | "kind") => false,
            Some("status") => self.status_only,
            Some("metadata") if !self.status_only => {
                *member = false;
                children.retain_nodes(|element, _, _| {
                    !element
                        .as_field()
                        .is_some_and(|name| SERVER_METADATA.contains(&name))
                });
                true
            }
            _ => !self.status_only,
        });
        set
    }
}

/// A conflict before it is reported: the owning entry and the path.
struct Owned {
    entry: Identity,
    api_version: String,
    subresource: Option<String>,
    path: Vec<PathElement>,
}

impl Owned {
    fn into_conflict(self) -> Conflict {
        Conflict {
            manager: self.entry.manager,
            operation: if self.entry.applied {
                Operation::Apply
            } else {
                Operation::Update
            },
            api_version: self.api_version,
            subresource: self.subresource,
            path: path_string(&self.path),
        }
    }
}

fn conflicts_error(conflicts: Vec<Owned>) -> ApplyError {
    let mut out: Vec<Conflict> = conflicts.into_iter().map(Owned::into_conflict).collect();
    // Paths come in order per manager; keep that order within a manager.
    out.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    ApplyError::Conflicts(out)
}

/// The entries recorded on a stored object (none when they do not decode).
fn recorded_entries(object: Option<&Value>) -> Vec<Entry> {
    object
        .and_then(|o| o.get("metadata")?.get("managedFields"))
        .and_then(|v| managed::decode(v).ok())
        .unwrap_or_default()
}

/// Writes the entries to `metadata.managedFields` (removes it when there are none).
fn write_entries(object: &mut Value, entries: &[Entry]) {
    let Value::Object(map) = object else {
        return;
    };
    match managed::encode(entries) {
        Some(encoded) => {
            let metadata = map
                .entry("metadata")
                .or_insert_with(|| Value::Object(Map::new()));
            if !metadata.is_object() {
                *metadata = Value::Object(Map::new());
            }
            if let Value::Object(metadata) = metadata {
                metadata.insert("managedFields".to_owned(), encoded);
            }
        }
        None => {
            if let Some(Value::Object(metadata)) = map.get_mut("metadata") {
                metadata.remove("managedFields");
            }
        }
    }
}

/// Takes what changed (`changed`: modified or added) from every entry but `skip`: changed
/// fields another entry owns are conflicts (an error unless `force`, else they leave that
/// entry), `removed` fields leave every entry. Entries left empty are dropped.
fn take_from_others(
    entries: &mut Vec<Entry>,
    skip: Option<&Identity>,
    changed: &FieldSet,
    removed: &FieldSet,
    force: bool,
) -> Result<(), Vec<Owned>> {
    let other = |e: &Entry| skip.is_none_or(|s| !e.is(s));
    if force {
        // Taking the owned part of `changed` leaves the same as taking all of it.
        for entry in entries.iter_mut().filter(|e| other(e)) {
            entry.set.subtract(changed);
        }
    } else {
        let mut conflicts = Vec::new();
        for entry in entries.iter().filter(|e| other(e)) {
            let taken = entry.set.intersection(changed);
            for path in taken.paths() {
                conflicts.push(Owned {
                    entry: entry.identity(),
                    api_version: entry.api_version.clone(),
                    subresource: entry.subresource.clone(),
                    path,
                });
            }
        }
        // Without conflicts nothing is taken.
        if !conflicts.is_empty() {
            return Err(conflicts);
        }
    }
    if !removed.is_empty() {
        for entry in entries.iter_mut().filter(|e| other(e)) {
            entry.set.subtract(removed);
        }
    }
    entries.retain(|e| !e.set.is_empty());
    Ok(())
}

/// What a write changes from `old` to `new`, limited to what `m` may own: the fields modified
/// or added, and the fields removed.
fn changes(
    old: &Value,
    hide_old: Hide,
    new: &Value,
    hide_new: Hide,
    ty: Ty<'_>,
    m: &Manager<'_>,
) -> (FieldSet, FieldSet) {
    let scope = m.scope();
    let cmp = typed::compare_hiding(Some(old), hide_old, Some(new), hide_new, ty);
    let mut changed = scope.filter(cmp.modified);
    changed.union_with(scope.filter(cmp.added));
    (changed, scope.filter(cmp.removed))
}

/// Records an update from `old` to `new` (without what `hide_old` and `hide_new` hide) by `m`.
fn record_update(
    (old, hide_old): (&Value, Hide),
    (new, hide_new): (&Value, Hide),
    ty: Ty<'_>,
    entries: &mut Vec<Entry>,
    m: &Manager<'_>,
) {
    let (mine, removed) = changes(old, hide_old, new, hide_new, ty, m);
    // Forced, so it cannot fail.
    let _ = take_from_others(entries, None, &mine, &removed, true);
    if !mine.is_empty() {
        let identity = m.identity(false);
        let time = Some(managed::normalize_time(m.time));
        match entries.iter_mut().find(|e| e.is(&identity)) {
            Some(entry) => {
                let mut set = mine;
                set.union_with(std::mem::take(&mut entry.set));
                entry.set = set;
                entry.time = time;
            }
            None => {
                let mut entry = m.entry(false);
                entry.set = mine;
                entry.time = time;
                entries.push(entry);
            }
        }
    }
    managed::cap_updates(entries, MAX_UPDATE_MANAGERS);
}

/// The zero value of a kind (see [`Types::skeleton`]); `{}` without a schema.
fn skeleton<'a>(types: Option<&'a Types>, empty: &'a Value) -> &'a Value {
    types.map_or(empty, Types::skeleton)
}

/// Records the managed fields of a create or update (PUT, JSON/merge/strategic merge patch)
/// by `m`: `old` is the stored object (`None` for a create), `new` the object about to be
/// stored; its `metadata.managedFields` is replaced.
///
/// The fields `new` adds or changes (all of them on a create) become `m`'s (`Update` entry)
/// and leave every other entry; fields `new` removes leave every entry. A `managedFields`
/// list sent in `new` replaces the recorded one when it is valid and not empty (ignored for
/// subresources); `[]` or `[{}]` clears the tracking. Updates of an object that has no managed
/// fields are not tracked (as in Kubernetes). Fails only when `new` is not a JSON object.
pub fn track_update(
    old: Option<&Value>,
    new: &mut Value,
    m: &Manager<'_>,
    schema: Option<SchemaRef<'_>>,
) -> Result<(), ApplyError> {
    let Value::Object(object) = new else {
        return Err(invalid("", "the object must be a JSON object"));
    };
    let sent = match object.get_mut("metadata") {
        Some(Value::Object(metadata)) => metadata.remove("managedFields"),
        _ => None,
    }
    .filter(|v| !v.is_null());
    let mut entries = match sent {
        _ if m.subresource().is_some() => recorded_entries(old),
        Some(sent) if managed::is_reset(&sent) => Vec::new(),
        Some(sent) => match managed::decode(&sent) {
            Ok(entries) if !entries.is_empty() => entries,
            _ => recorded_entries(old),
        },
        None => recorded_entries(old),
    };
    if entries.is_empty() && old.is_some() {
        // Nothing is tracked for this object: stay that way until it is applied to.
        return Ok(());
    }
    let types = schema.map(Types::of);
    let ty = Ty::root(types.as_deref());
    let empty = Value::Object(Map::new());
    let old = match old {
        Some(old) => (old, Hide::ManagedFields),
        None => (skeleton(types.as_deref(), &empty), Hide::Nothing),
    };
    record_update(old, (new, Hide::Nothing), ty, &mut entries, m);
    write_entries(new, &entries);
    Ok(())
}

/// Server-side apply of `applied` (the request body, decoded) by `m` to `live` (the stored
/// object, `None` to create it): returns the object to store, with `metadata.managedFields`
/// updated. Fails with [`ApplyError::Conflicts`] when the apply would change fields other
/// managers own and `force` is not set, with [`ApplyError::Invalid`] when `applied` is not a
/// valid configuration (not an object, no `apiVersion`/`kind`/`metadata.name`, a version other
/// than `m.api_version`, `metadata.managedFields` set, a list item without its key fields or
/// with a duplicate key).
///
/// The result is the live object merged with the configuration; defaulting and validation
/// are left to the caller.
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    m: &Manager<'_>,
    force: bool,
    schema: Option<SchemaRef<'_>>,
) -> Result<Value, ApplyError> {
    check_applied(applied, m)?;
    let types = schema.map(Types::of);
    let ty = Ty::root(types.as_deref());
    let applied_set =
        typed::field_set(applied, ty, true).map_err(|e| invalid(&e.path, e.message))?;
    let applied_set = m.scope().filter(applied_set);
    let empty = Value::Object(Map::new());
    let skeleton = skeleton(types.as_deref(), &empty);
    let run = |force: bool| {
        apply_once(
            live,
            applied,
            &applied_set,
            recorded_entries(live),
            m,
            force,
            (ty, skeleton),
        )
    };
    let (mut object, entries) = match run(force) {
        Ok(done) => done,
        Err(conflicts) => {
            // kubectl may take over what its client-side apply annotation lists.
            let allowed = live
                .filter(|_| m.name() == KUBECTL)
                .and_then(|live| allowed_by_last_applied(live, ty, m.api_version));
            let Some(allowed) = allowed else {
                return Err(conflicts_error(conflicts));
            };
            let remaining: Vec<Owned> = conflicts
                .into_iter()
                .filter(|c| !allowed.has(&c.path))
                .collect();
            if !remaining.is_empty() {
                return Err(conflicts_error(remaining));
            }
            run(true).map_err(conflicts_error)?
        }
    };
    if m.name() == KUBECTL {
        sync_last_applied(&mut object, applied);
    }
    write_entries(&mut object, &entries);
    Ok(object)
}

/// Checks what Kubernetes requires of an applied configuration before merging it.
fn check_applied(applied: &Value, m: &Manager<'_>) -> Result<(), ApplyError> {
    let Value::Object(map) = applied else {
        return Err(invalid(
            "",
            "the applied configuration must be a JSON object",
        ));
    };
    fn text(value: Option<&Value>) -> Option<&str> {
        value.and_then(Value::as_str).filter(|s| !s.is_empty())
    }
    let Some(api_version) = text(map.get("apiVersion")) else {
        return Err(invalid(".apiVersion", "apiVersion must be set"));
    };
    if api_version != m.api_version {
        return Err(invalid(
            ".apiVersion",
            format!(
                "Incorrect version specified in apply patch. Specified patch version: \
                 {api_version}, expected: {}",
                m.api_version
            ),
        ));
    }
    if text(map.get("kind")).is_none() {
        return Err(invalid(".kind", "kind must be set"));
    }
    let metadata = map.get("metadata");
    if !metadata.is_some_and(Value::is_object) {
        return Err(invalid(".metadata", "metadata must be an object"));
    }
    if text(metadata.and_then(|m| m.get("name"))).is_none() {
        return Err(invalid(".metadata.name", "name is required"));
    }
    if metadata
        .and_then(|m| m.get("managedFields"))
        .is_some_and(|v| !v.is_null())
    {
        return Err(invalid(
            ".metadata.managedFields",
            "metadata.managedFields must be nil",
        ));
    }
    Ok(())
}

/// One apply attempt to `live` (whose managed fields are left out): returns the new object
/// and entries, or the conflicts.
fn apply_once(
    live: Option<&Value>,
    applied: &Value,
    applied_set: &FieldSet,
    mut entries: Vec<Entry>,
    m: &Manager<'_>,
    force: bool,
    (ty, skeleton): (Ty<'_>, &Value),
) -> Result<(Value, Vec<Entry>), Vec<Owned>> {
    if let Some(live) = live
        && entries.is_empty()
    {
        // An object nobody tracks: its fields so far belong to `before-first-apply`.
        let before = Manager {
            name: BEFORE_FIRST_APPLY,
            ..*m
        };
        record_update(
            (skeleton, Hide::Nothing),
            (live, Hide::ManagedFields),
            ty,
            &mut entries,
            &before,
        );
    }

    let mut object = typed::merge(live, applied, ty, Hide::ManagedFields);
    let me = m.identity(true);
    let index = match entries.iter().position(|e| e.is(&me)) {
        Some(index) => index,
        None => {
            entries.push(m.entry(true));
            entries.len() - 1
        }
    };
    let last = std::mem::replace(&mut entries[index].set, applied_set.clone());
    entries[index].api_version = m.api_version.to_owned();
    if !last.is_empty() {
        let mut owned = FieldSet::new();
        for entry in &entries {
            owned.union_with(entry.set.clone());
        }
        typed::prune(&mut object, &last, &owned, ty);
    }

    let old = match live {
        Some(live) => (live, Hide::ManagedFields),
        None => (skeleton, Hide::Nothing),
    };
    let (changed, removed) = changes(old.0, old.1, &object, Hide::Nothing, ty, m);
    take_from_others(&mut entries, Some(&me), &changed, &removed, force)?;

    let changed = live.is_none_or(|live| !typed::equal_to_stored(live, &object));
    if changed && let Some(entry) = entries.iter_mut().find(|e| e.is(&me)) {
        entry.time = Some(managed::normalize_time(m.time));
    }
    Ok((object, entries))
}

/// The fields of the live object's `last-applied-configuration` annotation that still have
/// the values it lists (the live object's managed fields left out): kubectl upgrading from
/// client-side apply may take them over.
fn allowed_by_last_applied(live: &Value, ty: Ty<'_>, api_version: &str) -> Option<FieldSet> {
    let text = live
        .get("metadata")?
        .get("annotations")?
        .get(LAST_APPLIED_ANNOTATION)?
        .as_str()
        .filter(|s| !s.is_empty())?;
    let last: Value = serde_json::from_str(text).ok()?;
    if !last.is_object() || last.get("apiVersion").and_then(Value::as_str) != Some(api_version) {
        return None;
    }
    let set = typed::field_set(&last, ty, false).ok()?;
    let cmp = typed::compare_hiding(
        Some(&last),
        Hide::Nothing,
        Some(live),
        Hide::ManagedFields,
        ty,
    );
    Some(
        set.difference(&cmp.modified)
            .difference(&cmp.added)
            .difference(&cmp.removed),
    )
}

/// After an apply by `kubectl`: an object carrying the client-side apply annotation gets the
/// applied configuration (without that annotation) as its new value, unless that makes the
/// annotations too large.
fn sync_last_applied(object: &mut Value, applied: &Value) {
    let has_annotation = object
        .get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get(LAST_APPLIED_ANNOTATION))
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty());
    if !has_annotation {
        return;
    }
    let mut config = applied.clone();
    if let Some(Value::Object(annotations)) = config
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
    {
        annotations.remove(LAST_APPLIED_ANNOTATION);
    }
    let mut text = String::new();
    write_go_json(&config, &mut text);
    text.push('\n');
    let Some(Value::Object(annotations)) = object
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
    else {
        return;
    };
    annotations.insert(LAST_APPLIED_ANNOTATION.to_owned(), Value::String(text));
    let size: usize = annotations
        .iter()
        .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
        .sum();
    if size > TOTAL_ANNOTATION_SIZE_LIMIT {
        annotations.remove(LAST_APPLIED_ANNOTATION);
    }
}
