//! Field paths and field sets, and their `FieldsV1` encoding (the `fieldsV1` of a
//! `metadata.managedFields` entry).
//!
//! A [`FieldSet`] is a tree of [`PathElement`]s in which a node may be a *member* (the path
//! itself is in the set) and may have children. In `FieldsV1` JSON every element is an object
//! key — `f:<field>` for a field of an object or a key of a map, `k:<json>` for an item of a
//! map-type list (the canonical JSON of its key fields), `v:<json>` for an item of a set, `i:<n>`
//! for a list index — whose value holds the children; a member without children is `{}`, and a
//! member with children also carries the key `"."`. Elements are ordered the way
//! structured-merge-diff orders them (fields, then keys, then values, then indexes), so the
//! encoding is canonical.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use serde_json::{Map, Value};

/// One step of a field path.
#[derive(Debug, Clone)]
pub enum PathElement {
    /// A field of an object, or a key of a map (`f:<name>`).
    Field(String),
    /// The item of a map-type list with these key fields (sorted by name) (`k:{…}`).
    Key(Vec<(String, Value)>),
    /// The item of a set-type list with this value (`v:<json>`).
    Value(Value),
    /// The item of a list at this index (`i:<n>`; Kubernetes objects never need it).
    Index(usize),
}

impl PathElement {
    fn rank(&self) -> u8 {
        match self {
            PathElement::Field(_) => 0,
            PathElement::Key(_) => 1,
            PathElement::Value(_) => 2,
            PathElement::Index(_) => 3,
        }
    }

    /// The element as an object key of the `FieldsV1` encoding (`f:spec`,
    /// `k:{"name":"web"}`, `v:"a"`, `i:0`).
    pub fn to_fields_key(&self) -> String {
        let mut out = String::new();
        match self {
            PathElement::Field(name) => {
                out.push_str("f:");
                out.push_str(name);
            }
            PathElement::Key(fields) => {
                out.push_str("k:{");
                for (i, (name, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_go_string(name, &mut out);
                    out.push(':');
                    write_go_json(value, &mut out);
                }
                out.push('}');
            }
            PathElement::Value(value) => {
                out.push_str("v:");
                write_go_json(value, &mut out);
            }
            PathElement::Index(index) => {
                let _ = write!(out, "i:{index}");
            }
        }
        out
    }

    /// Parses an object key of the `FieldsV1` encoding. `Ok(None)` for element types this
    /// version does not know (they are skipped, as upstream does).
    pub fn from_fields_key(key: &str) -> Result<Option<PathElement>, String> {
        let mut chars = key.chars();
        let (Some(kind), Some(':')) = (chars.next(), chars.next()) else {
            return Err(format!("invalid path element {key:?}: missing type prefix"));
        };
        let rest = chars.as_str();
        let parse_json = |text: &str| -> Result<Value, String> {
            serde_json::from_str(text).map_err(|e| format!("invalid path element {key:?}: {e}"))
        };
        match kind {
            'f' => Ok(Some(PathElement::Field(rest.to_owned()))),
            'v' => Ok(Some(PathElement::Value(parse_json(rest)?))),
            'k' => match parse_json(rest)? {
                Value::Object(map) => {
                    let mut fields: Vec<(String, Value)> = map.into_iter().collect();
                    fields.sort_by(|a, b| a.0.cmp(&b.0));
                    Ok(Some(PathElement::Key(fields)))
                }
                _ => Err(format!(
                    "invalid path element {key:?}: keys must be an object"
                )),
            },
            'i' => rest
                .parse()
                .map(|i| Some(PathElement::Index(i)))
                .map_err(|_| format!("invalid path element {key:?}: bad index")),
            _ => Ok(None),
        }
    }
}

impl PartialEq for PathElement {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for PathElement {}

impl PartialOrd for PathElement {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PathElement {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (PathElement::Field(a), PathElement::Field(b)) => a.cmp(b),
            (PathElement::Key(a), PathElement::Key(b)) => compare_fields(a, b),
            (PathElement::Value(a), PathElement::Value(b)) => compare_values(a, b),
            (PathElement::Index(a), PathElement::Index(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl fmt::Display for PathElement {
    /// The element as in Kubernetes' conflict messages: `.name`, `[name="web"]`,
    /// `[containerPort=80,protocol="TCP"]`, `[="a"]`, `[0]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathElement::Field(name) => write!(f, ".{name}"),
            PathElement::Key(fields) => {
                f.write_str("[")?;
                for (i, (name, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{name}={}", display_value(value))?;
                }
                f.write_str("]")
            }
            PathElement::Value(value) => write!(f, "[={}]", display_value(value)),
            PathElement::Index(index) => write!(f, "[{index}]"),
        }
    }
}

/// A path as in Kubernetes' messages, e.g. `.spec.template.spec.containers[name="web"].image`.
pub fn path_string(path: &[PathElement]) -> String {
    path.iter().map(ToString::to_string).collect()
}

/// A value as structured-merge-diff prints it in paths.
fn display_value(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::String(s) => serde_json::to_string(s).unwrap_or_default(),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(display_value).collect();
            format!("[{}]", parts.join(","))
        }
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{k}={}", display_value(v)))
            .collect(),
        other => other.to_string(),
    }
}

/// The total order structured-merge-diff gives values: numbers (compared numerically,
/// integers and floats alike) < strings < booleans < lists < maps < null.
pub(crate) fn compare_values(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Number(_) => 0,
            Value::String(_) => 1,
            Value::Bool(_) => 2,
            Value::Array(_) => 3,
            Value::Object(_) => 4,
            Value::Null => 5,
        }
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (l, r) in x.iter().zip(y) {
                let c = compare_values(l, r);
                if c != Ordering::Equal {
                    return c;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => {
            let mut xs: Vec<_> = x.iter().collect();
            let mut ys: Vec<_> = y.iter().collect();
            xs.sort_by(|p, q| p.0.cmp(q.0));
            ys.sort_by(|p, q| p.0.cmp(q.0));
            for ((lk, lv), (rk, rv)) in xs.iter().zip(&ys) {
                let c = lk.cmp(rk).then_with(|| compare_values(lv, rv));
                if c != Ordering::Equal {
                    return c;
                }
            }
            xs.len().cmp(&ys.len())
        }
        (Value::Null, Value::Null) => Ordering::Equal,
        _ => rank(a).cmp(&rank(b)),
    }
}

fn compare_numbers(x: &serde_json::Number, y: &serde_json::Number) -> Ordering {
    let int = |n: &serde_json::Number| {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
    };
    match (int(x), int(y)) {
        (Some(a), Some(b)) => a.cmp(&b),
        _ => {
            let a = x.as_f64().unwrap_or(0.0);
            let b = y.as_f64().unwrap_or(0.0);
            a.partial_cmp(&b).unwrap_or(Ordering::Equal)
        }
    }
}

fn compare_fields(a: &[(String, Value)], b: &[(String, Value)]) -> Ordering {
    for ((ln, lv), (rn, rv)) in a.iter().zip(b) {
        let c = ln.cmp(rn).then_with(|| compare_values(lv, rv));
        if c != Ordering::Equal {
            return c;
        }
    }
    a.len().cmp(&b.len())
}

/// Whether two values are equal the way structured-merge-diff compares them (numbers by
/// value, so `1` equals `1.0`).
pub(crate) fn values_equal(a: &Value, b: &Value) -> bool {
    compare_values(a, b) == Ordering::Equal
}

/// Writes `value` as JSON the way Go's `encoding/json` does: object keys sorted, `<`, `>`,
/// `&`, U+2028 and U+2029 escaped.
pub(crate) fn write_go_json(value: &Value, out: &mut String) {
    match value {
        Value::String(s) => write_go_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_json(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_string(key, out);
                out.push(':');
                write_go_json(item, out);
            }
            out.push('}');
        }
        other => {
            let _ = write!(out, "{other}");
        }
    }
}

fn write_go_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A set of field paths, as a tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    nodes: BTreeMap<PathElement, Node>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Node {
    /// The path ending here is in the set.
    member: bool,
    /// Paths below.
    children: FieldSet,
}

impl FieldSet {
    /// The empty set.
    pub fn new() -> FieldSet {
        FieldSet::default()
    }

    /// Whether the set has no paths.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Adds a path (the empty path is ignored: the root is never a member).
    pub fn insert(&mut self, path: &[PathElement]) {
        let Some((first, rest)) = path.split_first() else {
            return;
        };
        let node = self.nodes.entry(first.clone()).or_default();
        if rest.is_empty() {
            node.member = true;
        } else {
            node.children.insert(rest);
        }
    }

    /// Whether the path is in the set.
    pub fn has(&self, path: &[PathElement]) -> bool {
        let Some((first, rest)) = path.split_first() else {
            return false;
        };
        match self.nodes.get(first) {
            Some(node) if rest.is_empty() => node.member,
            Some(node) => node.children.has(rest),
            None => false,
        }
    }

    /// Adds `element` as a member and/or with `children` (nothing is added when both are
    /// empty).
    pub(crate) fn put(&mut self, element: PathElement, member: bool, children: FieldSet) {
        if !member && children.is_empty() {
            return;
        }
        let node = self.nodes.entry(element).or_default();
        node.member |= member;
        if node.children.is_empty() {
            node.children = children;
        } else {
            node.children = node.children.union(&children);
        }
    }

    /// Whether `element` is a member of this level.
    pub(crate) fn is_member(&self, element: &PathElement) -> bool {
        self.nodes.get(element).is_some_and(|n| n.member)
    }

    /// The paths below `element` (relative to it), if any.
    pub(crate) fn children(&self, element: &PathElement) -> Option<&FieldSet> {
        self.nodes
            .get(element)
            .map(|n| &n.children)
            .filter(|c| !c.is_empty())
    }

    /// The elements of this level with whether each is a member and the paths below it.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&PathElement, bool, &FieldSet)> {
        self.nodes.iter().map(|(pe, n)| (pe, n.member, &n.children))
    }

    /// The paths in either set.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        for (pe, node) in &other.nodes {
            out.put(pe.clone(), node.member, node.children.clone());
        }
        out
    }

    /// The paths of `self` that are not in `other` (a path of `other` does not remove the
    /// paths below it).
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet::new();
        for (pe, node) in &self.nodes {
            match other.nodes.get(pe) {
                None => out.put(pe.clone(), node.member, node.children.clone()),
                Some(o) => out.put(
                    pe.clone(),
                    node.member && !o.member,
                    node.children.difference(&o.children),
                ),
            }
        }
        out
    }

    /// The paths in both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet::new();
        for (pe, node) in &self.nodes {
            if let Some(o) = other.nodes.get(pe) {
                out.put(
                    pe.clone(),
                    node.member && o.member,
                    node.children.intersection(&o.children),
                );
            }
        }
        out
    }

    /// The set without the paths that are members of `prefixes` and everything below them.
    pub fn without_prefixes(&self, prefixes: &FieldSet) -> FieldSet {
        let mut out = FieldSet::new();
        for (pe, node) in &self.nodes {
            match prefixes.nodes.get(pe) {
                None => out.put(pe.clone(), node.member, node.children.clone()),
                Some(p) if p.member => {}
                Some(p) => out.put(
                    pe.clone(),
                    node.member,
                    node.children.without_prefixes(&p.children),
                ),
            }
        }
        out
    }

    /// Only the paths that are members of `prefixes` or below them.
    pub fn only_prefixes(&self, prefixes: &FieldSet) -> FieldSet {
        let mut out = FieldSet::new();
        for (pe, node) in &self.nodes {
            match prefixes.nodes.get(pe) {
                None => {}
                Some(p) if p.member => out.put(pe.clone(), node.member, node.children.clone()),
                Some(p) => out.put(pe.clone(), false, node.children.only_prefixes(&p.children)),
            }
        }
        out
    }

    /// Every path of the set, in order.
    pub fn paths(&self) -> Vec<Vec<PathElement>> {
        let mut out = Vec::new();
        let mut prefix = Vec::new();
        self.collect_paths(&mut prefix, &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Vec<PathElement>, out: &mut Vec<Vec<PathElement>>) {
        for (pe, node) in &self.nodes {
            prefix.push(pe.clone());
            if node.member {
                out.push(prefix.clone());
            }
            node.children.collect_paths(prefix, out);
            prefix.pop();
        }
    }

    /// The set in the `FieldsV1` encoding.
    pub fn to_fields_v1(&self) -> Value {
        Value::Object(self.fields_v1_object(false))
    }

    fn fields_v1_object(&self, with_self: bool) -> Map<String, Value> {
        let mut out = Map::new();
        if with_self {
            out.insert(".".to_owned(), Value::Object(Map::new()));
        }
        for (pe, node) in &self.nodes {
            let inner = node
                .children
                .fields_v1_object(node.member && !node.children.is_empty());
            out.insert(pe.to_fields_key(), Value::Object(inner));
        }
        out
    }

    /// Decodes a `FieldsV1` value. Unknown element types are skipped; anything else that is
    /// not a field set is an error.
    pub fn from_fields_v1(value: &Value) -> Result<FieldSet, String> {
        match value {
            Value::Object(map) => Ok(FieldSet::read_object(map)?.0),
            Value::Null => Ok(FieldSet::new()),
            _ => Err("fieldsV1 must be a JSON object".to_owned()),
        }
    }

    /// Reads an object of the encoding: the set of its children and whether it marks its own
    /// path as a member (it has `"."`, or no children at all).
    fn read_object(map: &Map<String, Value>) -> Result<(FieldSet, bool), String> {
        let mut set = FieldSet::new();
        let mut member = false;
        for (key, value) in map {
            if key == "." {
                member = true;
                continue;
            }
            let Some(pe) = PathElement::from_fields_key(key)? else {
                continue;
            };
            let Value::Object(inner) = value else {
                return Err(format!("the value of {key:?} must be a JSON object"));
            };
            let (children, child_member) = FieldSet::read_object(inner)?;
            set.put(pe, child_member, children);
        }
        let member = member || set.is_empty();
        Ok((set, member))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn f(name: &str) -> PathElement {
        PathElement::Field(name.to_owned())
    }

    #[test]
    fn elements_order_like_structured_merge_diff() {
        let key = |n: i64| PathElement::Key(vec![("port".to_owned(), json!(n))]);
        let mut elements = vec![
            PathElement::Index(0),
            PathElement::Value(json!("b")),
            key(10),
            f("z"),
            PathElement::Value(json!(1)),
            key(9),
            f("a"),
        ];
        elements.sort();
        assert_eq!(
            elements,
            vec![
                f("a"),
                f("z"),
                key(9),
                key(10),
                PathElement::Value(json!(1)),
                PathElement::Value(json!("b")),
                PathElement::Index(0),
            ]
        );
        assert_eq!(
            PathElement::Value(json!(1)),
            PathElement::Value(json!(1.0)),
            "numbers compare by value"
        );
    }

    #[test]
    fn path_elements_round_trip_through_fields_keys() {
        let elements = [
            f("spec"),
            PathElement::Key(vec![
                ("containerPort".to_owned(), json!(80)),
                ("protocol".to_owned(), json!("TCP")),
            ]),
            PathElement::Value(json!("a<b")),
            PathElement::Index(3),
        ];
        let keys: Vec<String> = elements.iter().map(PathElement::to_fields_key).collect();
        assert_eq!(
            keys,
            [
                "f:spec",
                r#"k:{"containerPort":80,"protocol":"TCP"}"#,
                r#"v:"a\u003cb""#,
                "i:3"
            ]
        );
        for (key, element) in keys.iter().zip(&elements) {
            assert_eq!(
                PathElement::from_fields_key(key).unwrap().as_ref(),
                Some(element)
            );
        }
        assert_eq!(PathElement::from_fields_key("x:whatever").unwrap(), None);
        assert!(PathElement::from_fields_key("spec").is_err());
        assert!(PathElement::from_fields_key("k:[1]").is_err());
        assert!(PathElement::from_fields_key("i:x").is_err());
    }

    #[test]
    fn paths_display_like_kubernetes() {
        let path = [
            f("spec"),
            f("containers"),
            PathElement::Key(vec![("name".to_owned(), json!("web"))]),
            f("ports"),
            PathElement::Key(vec![
                ("containerPort".to_owned(), json!(80)),
                ("protocol".to_owned(), json!("TCP")),
            ]),
        ];
        assert_eq!(
            path_string(&path),
            r#".spec.containers[name="web"].ports[containerPort=80,protocol="TCP"]"#
        );
        assert_eq!(
            path_string(&[
                f("metadata"),
                f("finalizers"),
                PathElement::Value(json!("x"))
            ]),
            r#".metadata.finalizers[="x"]"#
        );
    }

    #[test]
    fn fields_v1_round_trip() {
        let encoded = json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:template": {"f:spec": {"f:containers": {
                    "k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}
                }}}
            }
        });
        let set = FieldSet::from_fields_v1(&encoded).unwrap();
        assert!(set.has(&[f("spec"), f("replicas")]));
        assert!(set.has(&[f("metadata"), f("labels")]));
        assert!(!set.has(&[f("metadata")]));
        assert!(!set.has(&[f("spec"), f("template")]));
        assert_eq!(set.to_fields_v1(), encoded);
        assert_eq!(set.paths().len(), 6);
        assert!(FieldSet::from_fields_v1(&json!({"f:a": 1})).is_err());
        assert!(FieldSet::from_fields_v1(&json!([])).is_err());
    }

    #[test]
    fn set_operations() {
        let a = FieldSet::from_fields_v1(&json!({"f:a": {}, "f:b": {".": {}, "f:c": {}}})).unwrap();
        let b = FieldSet::from_fields_v1(&json!({"f:b": {}, "f:d": {}})).unwrap();
        assert_eq!(
            a.union(&b).to_fields_v1(),
            json!({"f:a": {}, "f:b": {".": {}, "f:c": {}}, "f:d": {}})
        );
        assert_eq!(
            a.difference(&b).to_fields_v1(),
            json!({"f:a": {}, "f:b": {"f:c": {}}})
        );
        assert_eq!(a.intersection(&b).to_fields_v1(), json!({"f:b": {}}));
        assert_eq!(a.without_prefixes(&b).to_fields_v1(), json!({"f:a": {}}));
        assert_eq!(
            a.only_prefixes(&b).to_fields_v1(),
            json!({"f:b": {".": {}, "f:c": {}}})
        );
        assert!(a.difference(&a).is_empty());
    }
}
