//! The schemas of the built-in kinds, as OpenAPI 3 component schemas.
//!
//! The definitions come from k8s-openapi's `schemars` implementations (so descriptions and
//! definition names match upstream, e.g. `io.k8s.api.core.v1.Pod`), completed with what those
//! lack: the `…List` kinds, the `x-kubernetes-group-version-kind` extension on every root kind,
//! and the patch and list extensions (`x-kubernetes-patch-strategy`,
//! `x-kubernetes-patch-merge-key`, `x-kubernetes-list-type`, `x-kubernetes-list-map-keys`,
//! `x-kubernetes-map-type`) from a table of Kubernetes 1.33 facts (see [`facts`]).
//!
//! [`Schemas::builtin`] builds the registry once; [`SchemaRef`] is a cursor that walks it
//! (fields, list items, map values), resolving `$ref`/`allOf` transparently. The registry feeds
//! strict field validation ([`unknown_fields`]), strategic merge patch
//! ([`crate::patch::strategic_merge_patch`]) and the OpenAPI documents ([`openapi`]).

pub mod facts;
mod known;
pub mod openapi;
mod registry;
pub mod swagger_pb;
#[cfg(test)]
mod tests;

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock, Mutex};

use serde_json::{Map, Value};

pub use openapi::{ServedResource, openapi_v2, openapi_v3_group_version, openapi_v3_index};

/// Where schemas live inside an OpenAPI 3 document; every `$ref` in [`Schemas::definitions`]
/// starts with it.
pub const COMPONENTS_PREFIX: &str = "#/components/schemas/";

/// Extension naming the kinds a definition is the schema of (a list of
/// `{group, version, kind}`), which kubectl uses to find a kind's schema.
pub const EXT_GVK: &str = "x-kubernetes-group-version-kind";
/// Extension with a field's strategic-merge-patch strategy (`merge`, `retainKeys`,
/// `merge,retainKeys`, `replace`).
pub const EXT_PATCH_STRATEGY: &str = "x-kubernetes-patch-strategy";
/// Extension with the strategic-merge-patch merge key of a list of objects.
pub const EXT_PATCH_MERGE_KEY: &str = "x-kubernetes-patch-merge-key";
/// Extension with a list's topology for server-side apply (`atomic`, `set`, `map`).
pub const EXT_LIST_TYPE: &str = "x-kubernetes-list-type";
/// Extension with the keys of a `map` list.
pub const EXT_LIST_MAP_KEYS: &str = "x-kubernetes-list-map-keys";
/// Extension with a map's or struct's topology (`atomic`, `granular`).
pub const EXT_MAP_TYPE: &str = "x-kubernetes-map-type";
/// Extension marking a value that is either an integer or a string.
pub const EXT_INT_OR_STRING: &str = "x-kubernetes-int-or-string";
/// Extension marking a value whose unknown fields are kept.
pub const EXT_PRESERVE_UNKNOWN: &str = "x-kubernetes-preserve-unknown-fields";

/// A kind the registry has a root schema for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindSchema {
    /// API group (`""` for the core group).
    pub group: String,
    /// API version, e.g. `v1`.
    pub version: String,
    /// Kind, e.g. `Pod` or `PodList`.
    pub kind: String,
    /// Name of the definition in [`Schemas::definitions`], e.g. `io.k8s.api.core.v1.Pod`.
    pub definition: String,
}

/// A registry of OpenAPI 3 component schemas, with an index of the kinds they describe.
#[derive(Debug, Clone)]
pub struct Schemas {
    definitions: Map<String, Value>,
    kinds: Vec<KindSchema>,
    memo: Memo,
}

/// Values derived from a registry's schemas, each computed once (see [`Schemas::memoized`]).
/// Keys are addresses inside the registry, so a clone starts empty.
#[derive(Default)]
struct Memo(Mutex<HashMap<(TypeId, usize), Arc<dyn Any + Send + Sync>>>);

impl Clone for Memo {
    fn clone(&self) -> Memo {
        Memo::default()
    }
}

impl fmt::Debug for Memo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Memo")
    }
}

static BUILTIN: LazyLock<Schemas> = LazyLock::new(registry::build);

impl Schemas {
    /// The schemas of every kind the API server serves (built on first use).
    pub fn builtin() -> &'static Schemas {
        &BUILTIN
    }

    /// A registry made of the given component schemas (refs must point into
    /// `#/components/schemas/`) and kinds. For tests and custom resources.
    pub fn new(definitions: Map<String, Value>, kinds: Vec<KindSchema>) -> Schemas {
        Schemas {
            definitions,
            kinds,
            memo: Memo::default(),
        }
    }

    /// A value derived from this registry, built by `build` the first time it is asked for
    /// with this type and `key` and kept as long as the registry. `key` is typically the
    /// address of a schema inside the registry (which never moves: the registry is not
    /// mutable), e.g. the root schema of a kind a walk is compiled from.
    pub(crate) fn memoized<T: Any + Send + Sync>(
        &self,
        key: usize,
        build: impl FnOnce() -> T,
    ) -> Arc<T> {
        let slot = (TypeId::of::<T>(), key);
        let found = {
            let memo = self.memo.0.lock().unwrap_or_else(|e| e.into_inner());
            memo.get(&slot).cloned()
        };
        if let Some(found) = found
            && let Ok(found) = found.downcast::<T>()
        {
            return found;
        }
        // Built outside the lock (building may take a while); the first one stored wins.
        let built = Arc::new(build());
        let mut memo = self.memo.0.lock().unwrap_or_else(|e| e.into_inner());
        let stored = memo
            .entry(slot)
            .or_insert_with(|| built.clone() as Arc<dyn Any + Send + Sync>)
            .clone();
        drop(memo);
        // The slot is keyed by the type, so the stored value is a `T`.
        stored.downcast::<T>().unwrap_or(built)
    }

    /// The root schema of a kind, if the registry has it.
    pub fn for_kind(&self, group: &str, version: &str, kind: &str) -> Option<SchemaRef<'_>> {
        let entry = self
            .kinds
            .iter()
            .find(|k| k.group == group && k.version == version && k.kind == kind)?;
        self.definition(&entry.definition)
    }

    /// The schema of a definition by name (e.g. `io.k8s.api.core.v1.PodSpec`).
    pub fn definition(&self, name: &str) -> Option<SchemaRef<'_>> {
        let (key, value) = self.definitions.get_key_value(name)?;
        Some(SchemaRef::new(self, value, Some(key.as_str())))
    }

    /// All component schemas, with their extensions, keyed by definition name.
    pub fn definitions(&self) -> &Map<String, Value> {
        &self.definitions
    }

    /// The kinds the registry has root schemas for.
    pub fn kinds(&self) -> &[KindSchema] {
        &self.kinds
    }

    /// Resolves `$ref` and single-element `allOf` wrappers. Returns the schema reached and the
    /// name of the last definition followed, if any.
    fn resolve<'a>(&'a self, mut schema: &'a Value) -> (&'a Value, Option<&'a str>) {
        let mut name = None;
        // Bounded so a reference cycle cannot loop forever.
        for _ in 0..64 {
            if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
                let Some(target) = reference.strip_prefix(COMPONENTS_PREFIX) else {
                    break;
                };
                match self.definitions.get_key_value(target) {
                    Some((key, value)) => {
                        name = Some(key.as_str());
                        schema = value;
                        continue;
                    }
                    None => break,
                }
            }
            if let Some(Value::Array(all_of)) = schema.get("allOf")
                && all_of.len() == 1
                && schema.get("properties").is_none()
                && schema.get("type").is_none()
            {
                schema = &all_of[0];
                continue;
            }
            break;
        }
        (schema, name)
    }
}

/// The shape of the values a schema describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaKind {
    /// An object with known properties.
    Object,
    /// An object with arbitrary keys and values of one schema (`additionalProperties`).
    Map,
    /// A list.
    Array,
    /// A string, number, integer or boolean.
    Scalar,
    /// Anything: int-or-string, quantities, `RawExtension`, free-form objects,
    /// preserve-unknown-fields values.
    Any,
}

/// A field's strategic-merge-patch metadata (from `x-kubernetes-patch-strategy` and
/// `x-kubernetes-patch-merge-key`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PatchStrategy<'a> {
    /// Lists are merged (by `merge_key` for lists of objects) instead of replaced.
    pub merge: bool,
    /// The value is replaced as a whole instead of merged.
    pub replace: bool,
    /// Patches of the field's objects carry a `$retainKeys` directive clearing unlisted keys.
    pub retain_keys: bool,
    /// The key identifying the objects of a merged list.
    pub merge_key: Option<&'a str>,
}

impl<'a> PatchStrategy<'a> {
    /// Parses the extension values: a comma-separated strategy list and a merge key. Unknown
    /// strategy names are ignored.
    pub fn parse(strategy: Option<&str>, merge_key: Option<&'a str>) -> PatchStrategy<'a> {
        let mut out = PatchStrategy {
            merge_key,
            ..PatchStrategy::default()
        };
        for part in strategy.unwrap_or("").split(',').map(str::trim) {
            match part {
                "merge" => out.merge = true,
                "replace" => out.replace = true,
                "retainKeys" => out.retain_keys = true,
                _ => {}
            }
        }
        out
    }
}

/// A list's topology (`x-kubernetes-list-type`; lists without it are atomic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListType<'a> {
    /// The list is a single value.
    Atomic,
    /// A set of scalars.
    Set,
    /// A list of objects keyed by these fields.
    Map(Vec<&'a str>),
}

/// A map's or struct's topology (`x-kubernetes-map-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapType {
    /// Keys are owned and merged separately (the default).
    Granular,
    /// The map is a single value.
    Atomic,
}

/// A cursor into a [`Schemas`] registry: the schema at some position (a field, a list item, a
/// map value), with `$ref`/`allOf` resolved. The extensions that belong to the position (patch
/// strategy, list type) are read where the position was declared, then on the resolved schema.
#[derive(Debug, Clone, Copy)]
pub struct SchemaRef<'a> {
    schemas: &'a Schemas,
    site: &'a Value,
    resolved: &'a Value,
    name: Option<&'a str>,
}

impl<'a> SchemaRef<'a> {
    fn new(schemas: &'a Schemas, site: &'a Value, name: Option<&'a str>) -> SchemaRef<'a> {
        let (resolved, resolved_name) = schemas.resolve(site);
        SchemaRef {
            schemas,
            site,
            resolved,
            name: resolved_name.or(name),
        }
    }

    /// The registry this cursor walks.
    pub fn schemas(&self) -> &'a Schemas {
        self.schemas
    }

    /// The resolved schema (what `$ref`/`allOf` point to).
    pub fn value(&self) -> &'a Value {
        self.resolved
    }

    /// The schema as declared at this position (e.g. a property with `allOf` and a
    /// description), before resolution.
    pub fn declared(&self) -> &'a Value {
        self.site
    }

    /// The definition name of the resolved schema, if it is a named definition.
    pub fn definition_name(&self) -> Option<&'a str> {
        self.name
    }

    /// The description at this position, else the resolved schema's.
    pub fn description(&self) -> Option<&'a str> {
        self.site
            .get("description")
            .or_else(|| self.resolved.get("description"))
            .and_then(Value::as_str)
    }

    /// The `type` of the resolved schema, if any.
    pub fn type_name(&self) -> Option<&'a str> {
        self.resolved.get("type").and_then(Value::as_str)
    }

    /// The names of the object's properties (empty unless [`SchemaKind::Object`]).
    pub fn field_names(&self) -> impl Iterator<Item = &'a str> + use<'a> {
        self.resolved
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|props| props.keys().map(String::as_str))
    }

    /// The names of the object's required properties.
    pub fn required(&self) -> impl Iterator<Item = &'a str> + use<'a> {
        self.resolved
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
    }

    /// The schema of an object property.
    pub fn field(&self, name: &str) -> Option<SchemaRef<'a>> {
        let prop = self.resolved.get("properties")?.get(name)?;
        Some(SchemaRef::new(self.schemas, prop, None))
    }

    /// The schema of a list's items.
    pub fn items(&self) -> Option<SchemaRef<'a>> {
        let items = self.resolved.get("items")?;
        items
            .is_object()
            .then(|| SchemaRef::new(self.schemas, items, None))
    }

    /// The schema of a map's values (`additionalProperties`).
    pub fn map_values(&self) -> Option<SchemaRef<'a>> {
        let values = self.resolved.get("additionalProperties")?;
        values
            .is_object()
            .then(|| SchemaRef::new(self.schemas, values, None))
    }

    /// The schema of the value under `key` of an object: a property of an object, a value of a
    /// map; `None` for unknown properties and free-form values.
    pub fn child(&self, key: &str) -> Option<SchemaRef<'a>> {
        match self.kind() {
            SchemaKind::Object => self.field(key),
            SchemaKind::Map => self.map_values(),
            _ => None,
        }
    }

    /// The shape of the values this schema describes.
    pub fn kind(&self) -> SchemaKind {
        let schema = self.resolved;
        let flag = |name: &str| schema.get(name).and_then(Value::as_bool) == Some(true);
        if flag(EXT_INT_OR_STRING) || flag(EXT_PRESERVE_UNKNOWN) {
            return SchemaKind::Any;
        }
        let has_properties = schema
            .get("properties")
            .and_then(Value::as_object)
            .is_some_and(|p| !p.is_empty());
        match schema.get("type").and_then(Value::as_str) {
            Some("array") => SchemaKind::Array,
            Some("string" | "integer" | "number" | "boolean") => SchemaKind::Scalar,
            Some("object") | None => {
                if has_properties {
                    SchemaKind::Object
                } else if schema
                    .get("additionalProperties")
                    .is_some_and(Value::is_object)
                {
                    SchemaKind::Map
                } else {
                    SchemaKind::Any
                }
            }
            Some(_) => SchemaKind::Any,
        }
    }

    /// Reads an extension at this position, else on the resolved schema.
    pub fn extension(&self, name: &str) -> Option<&'a Value> {
        self.site.get(name).or_else(|| self.resolved.get(name))
    }

    /// The strategic-merge-patch metadata of the field this cursor came from.
    pub fn patch_strategy(&self) -> PatchStrategy<'a> {
        PatchStrategy::parse(
            self.extension(EXT_PATCH_STRATEGY).and_then(Value::as_str),
            self.extension(EXT_PATCH_MERGE_KEY).and_then(Value::as_str),
        )
    }

    /// The list's topology (lists without `x-kubernetes-list-type` are atomic).
    pub fn list_type(&self) -> ListType<'a> {
        match self.extension(EXT_LIST_TYPE).and_then(Value::as_str) {
            Some("set") => ListType::Set,
            Some("map") => ListType::Map(
                self.extension(EXT_LIST_MAP_KEYS)
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect(),
            ),
            _ => ListType::Atomic,
        }
    }

    /// The map's or struct's topology.
    pub fn map_type(&self) -> MapType {
        match self.extension(EXT_MAP_TYPE).and_then(Value::as_str) {
            Some("atomic") => MapType::Atomic,
            _ => MapType::Granular,
        }
    }
}

/// The fields of `value` that `schema` does not know, as Kubernetes-style paths
/// (`.spec.containers[0].imagePullPolicyy`), for `fieldValidation=Strict|Warn`.
///
/// Free-form values (`RawExtension`, int-or-string, preserve-unknown-fields, objects without
/// properties) are not descended into; map keys are never unknown. Values whose JSON type does
/// not match the schema are left to the decoder to report.
pub fn unknown_fields(schema: SchemaRef<'_>, value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    known::Known::of(schema).collect(value, &mut out);
    out
}
