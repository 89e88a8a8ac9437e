//! The schema of a kind compiled for walking objects: every position reachable from the
//! kind's root schema resolved once (`$ref`s followed, extensions read) into a compact graph
//! of [`Shape`]s, with the fields of each struct sorted for binary search, the key fields of
//! map-type lists with their defaults, and the kind's zero value ([`Types::skeleton`]).
//!
//! A graph is built on first use of a root schema and kept with its [`Schemas`] registry
//! (see [`Schemas::memoized`]), so walks do no schema lookups. The topology rules are those of
//! [`super::typed`].
//!
//! [`Schemas`]: crate::schema::Schemas
//! [`Schemas::memoized`]: crate::schema::Schemas::memoized

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::schema::{EXT_PRESERVE_UNKNOWN, ListType, MapType, SchemaKind, SchemaRef};

/// The type of a position in an object.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ty<'t> {
    /// A node of a compiled schema.
    Schema(&'t Types, u32),
    /// Untyped, granular: objects are maps of deduced values, lists are atomic.
    Deduced,
    /// Untyped, atomic: a leaf whatever its shape.
    Atomic,
}

impl<'t> Ty<'t> {
    /// The type of an object of a kind with these types (deduced without).
    pub(crate) fn root(types: Option<&'t Types>) -> Ty<'t> {
        types.map_or(Ty::Deduced, |t| Ty::Schema(t, t.root))
    }
}

/// A type inside a graph.
#[derive(Debug, Clone, Copy)]
enum TyId {
    Schema(u32),
    Deduced,
    Atomic,
}

/// The topology of a schema position, before looking at values.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Shape<'t> {
    /// Scalars, atomic objects, maps and lists, free-form values.
    Leaf,
    /// Preserve-unknown-fields values: deduced from the value.
    Deduced,
    /// An object with named fields.
    Struct(&'t Struct),
    /// A granular map with values of this type.
    Map(Ty<'t>),
    /// A list of unique scalars.
    Set,
    /// A list of objects identified by key fields, with items of this type.
    Keyed(&'t Keys, Ty<'t>),
}

#[derive(Debug, Clone, Copy)]
enum RawShape {
    Leaf,
    Deduced,
    Struct(u32),
    Map(TyId),
    Set,
    Keyed(u32, TyId),
}

/// The named fields of an object schema.
#[derive(Debug, Default)]
pub(crate) struct Struct {
    /// Sorted by name.
    fields: Vec<(Box<str>, TyId)>,
}

/// The key fields of a map-type list.
#[derive(Debug)]
pub(crate) struct Keys {
    /// In the schema's order, with the value an item omitting the field has (the schema's
    /// `default`, else `TCP` for `protocol`).
    pub(crate) fields: Vec<(Box<str>, Option<Value>)>,
}

/// A compiled schema (see the module documentation).
#[derive(Debug)]
pub(crate) struct Types {
    shapes: Vec<RawShape>,
    structs: Vec<Struct>,
    keys: Vec<Keys>,
    root: u32,
    skeleton: Value,
}

impl Types {
    /// The compiled form of a root schema, built once per registry and root.
    pub(crate) fn of(schema: SchemaRef<'_>) -> Arc<Types> {
        let key = address(schema.declared());
        schema
            .schemas()
            .memoized(key, || Compiler::default().compile(schema))
    }

    /// The zero value of the kind: `{}` with the struct-valued fields (see
    /// [`super::typed::VALUE_STRUCTS`]) as nested empty objects.
    pub(crate) fn skeleton(&self) -> &Value {
        &self.skeleton
    }

    fn ty(&self, id: TyId) -> Ty<'_> {
        match id {
            TyId::Schema(index) => Ty::Schema(self, index),
            TyId::Deduced => Ty::Deduced,
            TyId::Atomic => Ty::Atomic,
        }
    }

    /// The topology of a node.
    pub(crate) fn shape(&self, index: u32) -> Shape<'_> {
        let Some(raw) = self.shapes.get(index as usize) else {
            return Shape::Leaf;
        };
        match *raw {
            RawShape::Leaf => Shape::Leaf,
            RawShape::Deduced => Shape::Deduced,
            RawShape::Struct(s) => match self.structs.get(s as usize) {
                Some(fields) => Shape::Struct(fields),
                None => Shape::Leaf,
            },
            RawShape::Map(values) => Shape::Map(self.ty(values)),
            RawShape::Set => Shape::Set,
            RawShape::Keyed(k, item) => match self.keys.get(k as usize) {
                Some(keys) => Shape::Keyed(keys, self.ty(item)),
                None => Shape::Leaf,
            },
        }
    }

    /// The type of a named field of a struct, if it has one by that name.
    pub(crate) fn field(&self, fields: &Struct, name: &str) -> Option<Ty<'_>> {
        fields
            .fields
            .binary_search_by(|(n, _)| (**n).cmp(name))
            .ok()
            .and_then(|i| fields.fields.get(i))
            .map(|(_, id)| self.ty(*id))
    }
}

fn address(value: &Value) -> usize {
    value as *const Value as usize
}

/// Builds a [`Types`] graph, memoizing positions by where they are declared and what they
/// resolve to (the same pair always compiles the same), and structs by their schema.
#[derive(Default)]
struct Compiler {
    shapes: Vec<RawShape>,
    structs: Vec<Struct>,
    keys: Vec<Keys>,
    nodes: HashMap<(usize, usize), u32>,
    struct_ids: HashMap<usize, u32>,
}

impl Compiler {
    fn compile(mut self, schema: SchemaRef<'_>) -> Types {
        let root = self.node(schema);
        Types {
            shapes: self.shapes,
            structs: self.structs,
            keys: self.keys,
            root,
            skeleton: skeleton_of(schema, true, 0),
        }
    }

    fn node(&mut self, schema: SchemaRef<'_>) -> u32 {
        let key = (address(schema.declared()), address(schema.value()));
        if let Some(&id) = self.nodes.get(&key) {
            return id;
        }
        let id = self.shapes.len() as u32;
        self.shapes.push(RawShape::Leaf);
        self.nodes.insert(key, id);
        let shape = match schema.kind() {
            SchemaKind::Object => match schema.map_type() {
                MapType::Atomic => RawShape::Leaf,
                MapType::Granular => RawShape::Struct(self.structure(schema)),
            },
            SchemaKind::Map => match schema.map_type() {
                MapType::Atomic => RawShape::Leaf,
                MapType::Granular => RawShape::Map(
                    schema
                        .map_values()
                        .map_or(TyId::Atomic, |v| TyId::Schema(self.node(v))),
                ),
            },
            SchemaKind::Array => match schema.list_type() {
                ListType::Atomic => RawShape::Leaf,
                ListType::Set => RawShape::Set,
                ListType::Map(keys) if keys.is_empty() => RawShape::Set,
                ListType::Map(keys) => {
                    let items = schema.items();
                    let fields = keys
                        .iter()
                        .map(|key| ((*key).into(), key_default(items, key)))
                        .collect();
                    let k = self.keys.len() as u32;
                    self.keys.push(Keys { fields });
                    let item = items.map_or(TyId::Deduced, |i| TyId::Schema(self.node(i)));
                    RawShape::Keyed(k, item)
                }
            },
            SchemaKind::Scalar => RawShape::Leaf,
            SchemaKind::Any => {
                let preserve = schema
                    .extension(EXT_PRESERVE_UNKNOWN)
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                if preserve {
                    RawShape::Deduced
                } else {
                    RawShape::Leaf
                }
            }
        };
        if let Some(slot) = self.shapes.get_mut(id as usize) {
            *slot = shape;
        }
        id
    }

    fn structure(&mut self, schema: SchemaRef<'_>) -> u32 {
        let key = address(schema.value());
        if let Some(&id) = self.struct_ids.get(&key) {
            return id;
        }
        let id = self.structs.len() as u32;
        self.structs.push(Struct::default());
        self.struct_ids.insert(key, id);
        let mut fields: Vec<(Box<str>, TyId)> = Vec::new();
        for name in schema.field_names() {
            if let Some(field) = schema.field(name) {
                fields.push((name.into(), TyId::Schema(self.node(field))));
            }
        }
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        fields.dedup_by(|a, b| a.0 == b.0);
        if let Some(slot) = self.structs.get_mut(id as usize) {
            slot.fields = fields;
        }
        id
    }
}

/// The default of a key field of a list item: the schema's `default`, else Kubernetes'
/// default for `protocol` (`TCP`, the key of container and service ports).
fn key_default(items: Option<SchemaRef<'_>>, key: &str) -> Option<Value> {
    if let Some(schema) = items
        && let Some(field) = schema.field(key)
        && let Some(default) = field
            .declared()
            .get("default")
            .or_else(|| field.value().get("default"))
    {
        return Some(default.clone());
    }
    (key == "protocol").then(|| Value::String("TCP".to_owned()))
}

fn skeleton_of(schema: SchemaRef<'_>, root: bool, depth: usize) -> Value {
    let mut out = Map::new();
    if depth > 16 {
        return Value::Object(out);
    }
    let listed = schema
        .definition_name()
        .and_then(|name| super::typed::VALUE_STRUCTS.iter().find(|(d, _)| *d == name))
        .map_or(&[][..], |(_, fields)| *fields);
    let roots: &[&str] = if root {
        &["metadata", "spec", "status"]
    } else {
        &[]
    };
    for name in roots.iter().chain(listed) {
        if let Some(field) = schema.field(name)
            && field.kind() == SchemaKind::Object
        {
            out.insert((*name).to_owned(), skeleton_of(field, false, depth + 1));
        }
    }
    Value::Object(out)
}
