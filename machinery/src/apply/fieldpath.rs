//! Field paths and field sets, and their `FieldsV1` encoding (the `fieldsV1` of a
//! `metadata.managedFields` entry).
//!
//! A [`FieldSet`] is a tree of path elements in which a node may be a *member* (the path
//! itself is in the set) and may have children. In `FieldsV1` JSON every element is an object
//! key — `f:<field>` for a field of an object or a key of a map, `k:<json>` for an item of a
//! map-type list (the canonical JSON of its key fields), `v:<json>` for an item of a set, `i:<n>`
//! for a list index — whose value holds the children; a member without children is `{}`, and a
//! member with children also carries the key `"."`. Elements are ordered the way
//! structured-merge-diff orders them (fields, then keys, then values, then indexes), so the
//! encoding is canonical.
//!
//! [`PathElement`] is the public form of an element. Inside a set, elements are kept in a
//! compact form ([`Elem`], with short names stored inline) in sorted vectors, so building,
//! combining and encoding sets allocates little.

use std::cmp::Ordering;
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
    /// The element as an object key of the `FieldsV1` encoding (`f:spec`,
    /// `k:{"name":"web"}`, `v:"a"`, `i:0`).
    pub fn to_fields_key(&self) -> String {
        Elem::from_path(self).to_fields_key()
    }

    /// Parses an object key of the `FieldsV1` encoding. `Ok(None)` for element types this
    /// version does not know (they are skipped, as upstream does).
    pub fn from_fields_key(key: &str) -> Result<Option<PathElement>, String> {
        Ok(Elem::from_fields_key(key)?.map(|e| e.to_path()))
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
        fn rank(e: &PathElement) -> u8 {
            match e {
                PathElement::Field(_) => 0,
                PathElement::Key(_) => 1,
                PathElement::Value(_) => 2,
                PathElement::Index(_) => 3,
            }
        }
        match (self, other) {
            (PathElement::Field(a), PathElement::Field(b)) => a.cmp(b),
            (PathElement::Key(a), PathElement::Key(b)) => compare_fields(
                a.iter().map(|(n, v)| (n.as_bytes(), v)),
                b.iter().map(|(n, v)| (n.as_bytes(), v)),
            ),
            (PathElement::Value(a), PathElement::Value(b)) => compare_values(a, b),
            (PathElement::Index(a), PathElement::Index(b)) => a.cmp(b),
            _ => rank(self).cmp(&rank(other)),
        }
    }
}

impl fmt::Display for PathElement {
    /// The element as in Kubernetes' conflict messages: `.name`, `[name="web"]`,
    /// `[containerPort=80,protocol="TCP"]`, `[="a"]`, `[0]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathElement::Field(name) => write!(f, ".{name}"),
            PathElement::Key(fields) => display_key(fields.iter().map(|(n, v)| (n.as_str(), v)), f),
            PathElement::Value(value) => write!(f, "[={}]", display_value(value)),
            PathElement::Index(index) => write!(f, "[{index}]"),
        }
    }
}

fn display_key<'a>(
    fields: impl Iterator<Item = (&'a str, &'a Value)>,
    f: &mut fmt::Formatter<'_>,
) -> fmt::Result {
    f.write_str("[")?;
    for (i, (name, value)) in fields.enumerate() {
        if i > 0 {
            f.write_str(",")?;
        }
        write!(f, "{name}={}", display_value(value))?;
    }
    f.write_str("]")
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

/// How many bytes of a name are stored inline.
const INLINE: usize = 22;

/// A field name or map key: stored inline when short (no allocation), else on the heap.
/// Ordered by bytes, which is the order of `str`.
#[derive(Clone)]
pub(crate) enum Name {
    Inline(u8, [u8; INLINE]),
    Heap(Box<str>),
}

impl Name {
    pub(crate) fn new(name: &str) -> Name {
        let len = name.len();
        if len <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..len].copy_from_slice(name.as_bytes());
            Name::Inline(len as u8, bytes)
        } else {
            Name::Heap(name.into())
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Name::Inline(len, bytes) => bytes.get(..usize::from(*len)).unwrap_or_default(),
            Name::Heap(name) => name.as_bytes(),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            Name::Inline(..) => std::str::from_utf8(self.bytes()).unwrap_or_default(),
            Name::Heap(name) => name,
        }
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Self) -> bool {
        self.bytes() == other.bytes()
    }
}

impl Eq for Name {}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Name {
    fn cmp(&self, other: &Self) -> Ordering {
        self.bytes().cmp(other.bytes())
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// A path element as sets keep it (see [`PathElement`], ordered the same way).
#[derive(Debug, Clone)]
pub(crate) enum Elem {
    /// A field of an object, or a key of a map.
    Field(Name),
    /// The item of a map-type list with these key fields (sorted by name).
    Key(Box<[(Name, Value)]>),
    /// The item of a set-type list with this value.
    Value(Box<Value>),
    /// The item of a list at this index.
    Index(usize),
}

impl Elem {
    pub(crate) fn field(name: &str) -> Elem {
        Elem::Field(Name::new(name))
    }

    fn rank(&self) -> u8 {
        match self {
            Elem::Field(_) => 0,
            Elem::Key(_) => 1,
            Elem::Value(_) => 2,
            Elem::Index(_) => 3,
        }
    }

    /// The field name, for [`Elem::Field`].
    pub(crate) fn as_field(&self) -> Option<&str> {
        match self {
            Elem::Field(name) => Some(name.as_str()),
            _ => None,
        }
    }

    pub(crate) fn from_path(element: &PathElement) -> Elem {
        match element {
            PathElement::Field(name) => Elem::Field(Name::new(name)),
            PathElement::Key(fields) => Elem::Key(
                fields
                    .iter()
                    .map(|(n, v)| (Name::new(n), v.clone()))
                    .collect(),
            ),
            PathElement::Value(value) => Elem::Value(Box::new(value.clone())),
            PathElement::Index(index) => Elem::Index(*index),
        }
    }

    pub(crate) fn to_path(&self) -> PathElement {
        match self {
            Elem::Field(name) => PathElement::Field(name.as_str().to_owned()),
            Elem::Key(fields) => PathElement::Key(
                fields
                    .iter()
                    .map(|(n, v)| (n.as_str().to_owned(), v.clone()))
                    .collect(),
            ),
            Elem::Value(value) => PathElement::Value((**value).clone()),
            Elem::Index(index) => PathElement::Index(*index),
        }
    }

    /// The element as an object key of the `FieldsV1` encoding.
    pub(crate) fn to_fields_key(&self) -> String {
        match self {
            Elem::Field(name) => {
                let name = name.as_str();
                let mut out = String::with_capacity(name.len() + 2);
                out.push_str("f:");
                out.push_str(name);
                out
            }
            Elem::Key(fields) => {
                let mut out = String::from("k:{");
                for (i, (name, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_go_string(name.as_str(), &mut out);
                    out.push(':');
                    write_go_json(value, &mut out);
                }
                out.push('}');
                out
            }
            Elem::Value(value) => {
                let mut out = String::from("v:");
                write_go_json(value, &mut out);
                out
            }
            Elem::Index(index) => format!("i:{index}"),
        }
    }

    /// Parses an object key of the `FieldsV1` encoding (see
    /// [`PathElement::from_fields_key`]).
    pub(crate) fn from_fields_key(key: &str) -> Result<Option<Elem>, String> {
        let mut chars = key.chars();
        let (Some(kind), Some(':')) = (chars.next(), chars.next()) else {
            return Err(format!("invalid path element {key:?}: missing type prefix"));
        };
        let rest = chars.as_str();
        let parse_json = |text: &str| -> Result<Value, String> {
            serde_json::from_str(text).map_err(|e| format!("invalid path element {key:?}: {e}"))
        };
        match kind {
            'f' => Ok(Some(Elem::Field(Name::new(rest)))),
            'v' => Ok(Some(Elem::Value(Box::new(parse_json(rest)?)))),
            'k' => match parse_json(rest)? {
                Value::Object(map) => {
                    let mut fields: Vec<(Name, Value)> =
                        map.into_iter().map(|(k, v)| (Name::new(&k), v)).collect();
                    fields.sort_by(|a, b| a.0.cmp(&b.0));
                    Ok(Some(Elem::Key(fields.into_boxed_slice())))
                }
                _ => Err(format!(
                    "invalid path element {key:?}: keys must be an object"
                )),
            },
            'i' => rest
                .parse()
                .map(|i| Some(Elem::Index(i)))
                .map_err(|_| format!("invalid path element {key:?}: bad index")),
            _ => Ok(None),
        }
    }
}

impl PartialEq for Elem {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Elem::Field(a), Elem::Field(b)) => a == b,
            _ => self.cmp(other) == Ordering::Equal,
        }
    }
}

impl Eq for Elem {}

impl PartialOrd for Elem {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Elem {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Elem::Field(a), Elem::Field(b)) => a.cmp(b),
            (Elem::Key(a), Elem::Key(b)) => compare_fields(
                a.iter().map(|(n, v)| (n.bytes(), v)),
                b.iter().map(|(n, v)| (n.bytes(), v)),
            ),
            (Elem::Value(a), Elem::Value(b)) => compare_values(a, b),
            (Elem::Index(a), Elem::Index(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl fmt::Display for Elem {
    /// As [`PathElement`]'s.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Elem::Field(name) => write!(f, ".{}", name.as_str()),
            Elem::Key(fields) => display_key(fields.iter().map(|(n, v)| (n.as_str(), v)), f),
            Elem::Value(value) => write!(f, "[={}]", display_value(value)),
            Elem::Index(index) => write!(f, "[{index}]"),
        }
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

fn compare_fields<'a>(
    mut a: impl ExactSizeIterator<Item = (&'a [u8], &'a Value)>,
    mut b: impl ExactSizeIterator<Item = (&'a [u8], &'a Value)>,
) -> Ordering {
    let (la, lb) = (a.len(), b.len());
    for ((ln, lv), (rn, rv)) in a.by_ref().zip(b.by_ref()) {
        let c = ln.cmp(rn).then_with(|| compare_values(lv, rv));
        if c != Ordering::Equal {
            return c;
        }
    }
    la.cmp(&lb)
}

/// Whether two values are equal the way structured-merge-diff compares them (numbers by
/// value, so `1` equals `1.0`).
pub(crate) fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y) == Ordering::Equal,
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Null, Value::Null) => true,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(l, r)| values_equal(l, r))
        }
        (Value::Object(x), Value::Object(y)) => {
            if x.len() != y.len() {
                return false;
            }
            // Same keys in the same order is the common case (and the only one for sorted
            // maps); otherwise look each key up.
            let mut pairs = x.iter().zip(y.iter());
            for ((lk, lv), (rk, rv)) in pairs.by_ref() {
                if lk != rk {
                    return x
                        .iter()
                        .all(|(k, v)| y.get(k).is_some_and(|w| values_equal(v, w)));
                }
                if !values_equal(lv, rv) {
                    return false;
                }
            }
            true
        }
        _ => false,
    }
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
///
/// Each level is a vector of nodes sorted by element, without duplicates; every node is a
/// member or has children (so equal sets are equal values).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    nodes: Vec<Node>,
}

/// One element of a level of a [`FieldSet`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Node {
    elem: Elem,
    /// The path ending here is in the set.
    member: bool,
    /// Paths below.
    children: FieldSet,
}

impl Node {
    /// A node, if it says anything (`None` when it is no member and has no children).
    pub(crate) fn new(elem: Elem, member: bool, children: FieldSet) -> Option<Node> {
        (member || !children.is_empty()).then_some(Node {
            elem,
            member,
            children,
        })
    }
}

impl FieldSet {
    /// The empty set.
    pub fn new() -> FieldSet {
        FieldSet::default()
    }

    /// The set of these nodes, in any order (nodes of equal elements are merged, the first
    /// one's element is kept).
    pub(crate) fn from_nodes(mut nodes: Vec<Node>) -> FieldSet {
        if nodes.windows(2).all(|w| w[0].elem < w[1].elem) {
            return FieldSet { nodes };
        }
        nodes.sort_by(|a, b| a.elem.cmp(&b.elem));
        let mut out: Vec<Node> = Vec::with_capacity(nodes.len());
        for node in nodes {
            match out.last_mut() {
                Some(last) if last.elem == node.elem => {
                    last.member |= node.member;
                    last.children.union_with(node.children);
                }
                _ => out.push(node),
            }
        }
        FieldSet { nodes: out }
    }

    /// Whether the set has no paths.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    fn find(&self, element: &Elem) -> Result<usize, usize> {
        self.nodes.binary_search_by(|n| n.elem.cmp(element))
    }

    fn get(&self, element: &Elem) -> Option<&Node> {
        self.find(element).ok().and_then(|i| self.nodes.get(i))
    }

    /// Adds a path (the empty path is ignored: the root is never a member).
    pub fn insert(&mut self, path: &[PathElement]) {
        let Some((first, rest)) = path.split_first() else {
            return;
        };
        let mut children = FieldSet::new();
        children.insert(rest);
        self.put(Elem::from_path(first), rest.is_empty(), children);
    }

    /// Whether the path is in the set.
    pub fn has(&self, path: &[PathElement]) -> bool {
        let Some((first, rest)) = path.split_first() else {
            return false;
        };
        match self.get(&Elem::from_path(first)) {
            Some(node) if rest.is_empty() => node.member,
            Some(node) => node.children.has(rest),
            None => false,
        }
    }

    /// Adds `element` as a member and/or with `children` (nothing is added when both are
    /// empty).
    pub(crate) fn put(&mut self, element: Elem, member: bool, children: FieldSet) {
        if !member && children.is_empty() {
            return;
        }
        match self.find(&element) {
            Ok(index) => {
                let node = &mut self.nodes[index];
                node.member |= member;
                node.children.union_with(children);
            }
            Err(index) => self.nodes.insert(
                index,
                Node {
                    elem: element,
                    member,
                    children,
                },
            ),
        }
    }

    /// Whether `element` is a member of this level.
    pub(crate) fn is_member(&self, element: &Elem) -> bool {
        self.get(element).is_some_and(|n| n.member)
    }

    /// The paths below `element` (relative to it), if any.
    pub(crate) fn children(&self, element: &Elem) -> Option<&FieldSet> {
        self.get(element)
            .map(|n| &n.children)
            .filter(|c| !c.is_empty())
    }

    /// The elements of this level with whether each is a member and the paths below it.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&Elem, bool, &FieldSet)> {
        self.nodes.iter().map(|n| (&n.elem, n.member, &n.children))
    }

    /// Keeps the nodes of this level `keep` accepts (it may change them); nodes left without
    /// membership and children are dropped.
    pub(crate) fn retain_nodes(
        &mut self,
        mut keep: impl FnMut(&Elem, &mut bool, &mut FieldSet) -> bool,
    ) {
        self.nodes.retain_mut(|n| {
            keep(&n.elem, &mut n.member, &mut n.children) && (n.member || !n.children.is_empty())
        });
    }

    /// The paths in either set.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut nodes = Vec::with_capacity(self.nodes.len().max(other.nodes.len()));
        let (mut i, mut j) = (0, 0);
        while i < self.nodes.len() && j < other.nodes.len() {
            let (a, b) = (&self.nodes[i], &other.nodes[j]);
            match a.elem.cmp(&b.elem) {
                Ordering::Less => {
                    nodes.push(a.clone());
                    i += 1;
                }
                Ordering::Greater => {
                    nodes.push(b.clone());
                    j += 1;
                }
                Ordering::Equal => {
                    nodes.push(Node {
                        elem: a.elem.clone(),
                        member: a.member || b.member,
                        children: a.children.union(&b.children),
                    });
                    i += 1;
                    j += 1;
                }
            }
        }
        nodes.extend_from_slice(&self.nodes[i..]);
        nodes.extend_from_slice(&other.nodes[j..]);
        FieldSet { nodes }
    }

    /// Adds the paths of `other` (the elements of `self` are kept where both have one).
    pub(crate) fn union_with(&mut self, other: FieldSet) {
        if other.nodes.is_empty() {
            return;
        }
        if self.nodes.is_empty() {
            *self = other;
            return;
        }
        let mine = std::mem::take(&mut self.nodes);
        let mut nodes = Vec::with_capacity(mine.len().max(other.nodes.len()));
        let mut left = mine.into_iter().peekable();
        let mut right = other.nodes.into_iter().peekable();
        loop {
            let order = match (left.peek(), right.peek()) {
                (Some(a), Some(b)) => a.elem.cmp(&b.elem),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => break,
            };
            match order {
                Ordering::Less => nodes.extend(left.next()),
                Ordering::Greater => nodes.extend(right.next()),
                Ordering::Equal => {
                    if let (Some(mut a), Some(b)) = (left.next(), right.next()) {
                        a.member |= b.member;
                        a.children.union_with(b.children);
                        nodes.push(a);
                    }
                }
            }
        }
        self.nodes = nodes;
    }

    /// The paths of `self` that are not in `other` (a path of `other` does not remove the
    /// paths below it).
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.subtract(other);
        out
    }

    /// Removes the paths of `other` (see [`FieldSet::difference`]).
    pub(crate) fn subtract(&mut self, other: &FieldSet) {
        if other.nodes.is_empty() || self.nodes.is_empty() {
            return;
        }
        let mut j = 0;
        self.nodes.retain_mut(|node| {
            while j < other.nodes.len() && other.nodes[j].elem < node.elem {
                j += 1;
            }
            match other.nodes.get(j) {
                Some(o) if o.elem == node.elem => {
                    node.member &= !o.member;
                    node.children.subtract(&o.children);
                    node.member || !node.children.is_empty()
                }
                _ => true,
            }
        });
    }

    /// The paths in both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut nodes = Vec::new();
        let (mut i, mut j) = (0, 0);
        while i < self.nodes.len() && j < other.nodes.len() {
            let (a, b) = (&self.nodes[i], &other.nodes[j]);
            match a.elem.cmp(&b.elem) {
                Ordering::Less => i += 1,
                Ordering::Greater => j += 1,
                Ordering::Equal => {
                    let children = a.children.intersection(&b.children);
                    nodes.extend(Node::new(a.elem.clone(), a.member && b.member, children));
                    i += 1;
                    j += 1;
                }
            }
        }
        FieldSet { nodes }
    }

    /// The set without the paths that are members of `prefixes` and everything below them.
    pub fn without_prefixes(&self, prefixes: &FieldSet) -> FieldSet {
        let mut nodes = Vec::with_capacity(self.nodes.len());
        for node in &self.nodes {
            match prefixes.get(&node.elem) {
                None => nodes.push(node.clone()),
                Some(p) if p.member => {}
                Some(p) => nodes.extend(Node::new(
                    node.elem.clone(),
                    node.member,
                    node.children.without_prefixes(&p.children),
                )),
            }
        }
        FieldSet { nodes }
    }

    /// Only the paths that are members of `prefixes` or below them.
    pub fn only_prefixes(&self, prefixes: &FieldSet) -> FieldSet {
        let mut nodes = Vec::new();
        for node in &self.nodes {
            match prefixes.get(&node.elem) {
                None => {}
                Some(p) if p.member => nodes.push(node.clone()),
                Some(p) => nodes.extend(Node::new(
                    node.elem.clone(),
                    false,
                    node.children.only_prefixes(&p.children),
                )),
            }
        }
        FieldSet { nodes }
    }

    /// Every path of the set, in order.
    pub fn paths(&self) -> Vec<Vec<PathElement>> {
        let mut out = Vec::new();
        let mut prefix = Vec::new();
        self.collect_paths(&mut prefix, &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Vec<PathElement>, out: &mut Vec<Vec<PathElement>>) {
        for node in &self.nodes {
            prefix.push(node.elem.to_path());
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
        let me = with_self.then(|| (".".to_owned(), Value::Object(Map::new())));
        me.into_iter()
            .chain(self.nodes.iter().map(|node| {
                let inner = node
                    .children
                    .fields_v1_object(node.member && !node.children.is_empty());
                (node.elem.to_fields_key(), Value::Object(inner))
            }))
            .collect()
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
        let mut nodes = Vec::with_capacity(map.len());
        let mut member = false;
        for (key, value) in map {
            if key == "." {
                member = true;
                continue;
            }
            let Some(elem) = Elem::from_fields_key(key)? else {
                continue;
            };
            let Value::Object(inner) = value else {
                return Err(format!("the value of {key:?} must be a JSON object"));
            };
            let (children, child_member) = FieldSet::read_object(inner)?;
            nodes.extend(Node::new(elem, child_member, children));
        }
        let set = FieldSet::from_nodes(nodes);
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
