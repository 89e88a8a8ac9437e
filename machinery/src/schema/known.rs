//! The fields a kind's schema knows, compiled for [`super::unknown_fields`]: every position
//! reachable from the root schema resolved once into a node (the fields of an object sorted
//! for binary search, the schema of a map's values and of a list's items), so checking a
//! request body does no schema lookups — walking the schema itself resolved `$ref`s and read
//! extensions by name at every field of every request.
//!
//! Built on first use of a root schema and kept with its registry
//! ([`super::Schemas::memoized`]).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use super::{SchemaKind, SchemaRef};

/// What a position admits.
#[derive(Debug)]
enum Node {
    /// Scalars and free-form values: not descended into.
    Free,
    /// An object with named fields (sorted by name), each with its node.
    Object(Vec<(Box<str>, u32)>),
    /// A map whose values have this node.
    Map(u32),
    /// A list whose items have this node.
    Array(u32),
}

/// A compiled root schema (see the module documentation).
#[derive(Debug)]
pub(super) struct Known {
    nodes: Vec<Node>,
    root: u32,
}

impl Known {
    /// The compiled form of `schema`, built once per registry and root.
    pub(super) fn of(schema: SchemaRef<'_>) -> Arc<Known> {
        let key = address(schema.value());
        schema.schemas().memoized(key, || {
            let mut b = Builder::default();
            let root = b.node(schema);
            Known {
                nodes: b.nodes,
                root,
            }
        })
    }

    /// Appends to `out` the paths of `value`'s fields the schema does not know.
    pub(super) fn collect(&self, value: &Value, out: &mut Vec<String>) {
        let mut path = String::new();
        self.walk(self.root, value, &mut path, out);
    }

    fn walk(&self, node: u32, value: &Value, path: &mut String, out: &mut Vec<String>) {
        let len = path.len();
        match (&self.nodes[node as usize], value) {
            (Node::Object(fields), Value::Object(map)) => {
                for (key, child) in map {
                    path.push('.');
                    path.push_str(key);
                    match fields.binary_search_by(|(name, _)| (**name).cmp(key.as_str())) {
                        Ok(i) => self.walk(fields[i].1, child, path, out),
                        Err(_) => out.push(path.clone()),
                    }
                    path.truncate(len);
                }
            }
            (Node::Map(values), Value::Object(map)) => {
                for (key, child) in map {
                    path.push('.');
                    path.push_str(key);
                    self.walk(*values, child, path, out);
                    path.truncate(len);
                }
            }
            (Node::Array(items), Value::Array(list)) => {
                for (index, item) in list.iter().enumerate() {
                    use std::fmt::Write as _;
                    let _ = write!(path, "[{index}]");
                    self.walk(*items, item, path, out);
                    path.truncate(len);
                }
            }
            _ => {}
        }
    }
}

fn address(value: &Value) -> usize {
    value as *const Value as usize
}

/// Compiles positions, memoized by the schema they resolve to (what [`SchemaRef::kind`] and
/// its children depend on), so recursive schemas compile to cycles.
#[derive(Default)]
struct Builder {
    nodes: Vec<Node>,
    seen: HashMap<usize, u32>,
}

impl Builder {
    fn node(&mut self, schema: SchemaRef<'_>) -> u32 {
        let key = address(schema.value());
        if let Some(&id) = self.seen.get(&key) {
            return id;
        }
        let id = self.nodes.len() as u32;
        self.nodes.push(Node::Free);
        self.seen.insert(key, id);
        let node = match schema.kind() {
            SchemaKind::Object => {
                let mut fields: Vec<(Box<str>, u32)> = schema
                    .field_names()
                    .filter_map(|name| {
                        let field = schema.field(name)?;
                        Some((Box::from(name), self.node(field)))
                    })
                    .collect();
                fields.sort_by(|a, b| a.0.cmp(&b.0));
                Node::Object(fields)
            }
            SchemaKind::Map => match schema.map_values() {
                Some(values) => Node::Map(self.node(values)),
                None => Node::Free,
            },
            SchemaKind::Array => match schema.items() {
                Some(items) => Node::Array(self.node(items)),
                None => Node::Free,
            },
            SchemaKind::Scalar | SchemaKind::Any => Node::Free,
        };
        self.nodes[id as usize] = node;
        id
    }
}
