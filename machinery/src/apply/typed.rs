//! Walking objects with their schema, the way structured-merge-diff walks typed values: the
//! field set of an object, the comparison of two objects (fields added, modified, removed),
//! the apply merge, and the pruning of fields an applier stopped applying.
//!
//! Topology comes from the schema: objects with properties are structs (their fields are
//! "named"), `additionalProperties` objects are maps, lists are atomic unless
//! `x-kubernetes-list-type` makes them sets or maps keyed by `x-kubernetes-list-map-keys`,
//! `x-kubernetes-map-type: atomic` makes objects leaves. Values without a schema (no kind
//! schema, unknown fields, `x-kubernetes-preserve-unknown-fields`) are "deduced": objects are
//! granular maps, lists atomic. Free-form values (int-or-string, `RawExtension`) are leaves.
//! Values whose JSON type does not fit the schema are treated as leaves.
//!
//! Schemas are walked in their compiled form ([`super::types`]). Walks build field sets
//! bottom-up, level by level, and read values by reference; a stored object's
//! `metadata.managedFields` can be left out of a walk ([`Hide`]) instead of copying the
//! object without it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::sync::LazyLock;

use serde_json::{Map, Value};

use super::fieldpath::{Elem, FieldSet, Name, Node, values_equal};
pub(crate) use super::types::Ty;
use super::types::{Keys, Shape, Struct, Types};

/// The topology of a position, for the values at hand.
#[derive(Debug, Clone, Copy)]
enum Kind<'t> {
    /// A scalar, an atomic list or map, or a value that does not fit its schema.
    Leaf,
    /// An object with named fields.
    Struct(&'t Types, &'t Struct),
    /// A granular map with values of this type.
    Map(Ty<'t>),
    /// A list of unique scalars.
    Set,
    /// A list of objects identified by these key fields, with items of this type.
    Keyed(&'t Keys, Ty<'t>),
}

impl<'t> Kind<'t> {
    fn fits(&self, value: &Value) -> bool {
        match self {
            Kind::Leaf => true,
            Kind::Struct(..) | Kind::Map(_) => value.is_object() || value.is_null(),
            Kind::Set | Kind::Keyed(..) => value.is_array() || value.is_null(),
        }
    }

    /// The type of the value under `key` of an object, and whether `key` is a named field.
    fn child(&self, key: &str) -> (Ty<'t>, bool) {
        match self {
            Kind::Struct(types, fields) => match types.field(fields, key) {
                Some(ty) => (ty, true),
                None => (Ty::Deduced, false),
            },
            Kind::Map(values) => (*values, false),
            _ => (Ty::Deduced, false),
        }
    }

    /// The type of the items of a list.
    fn item(&self) -> Ty<'t> {
        match self {
            Kind::Keyed(_, item) => *item,
            _ => Ty::Atomic,
        }
    }

    fn is_list(&self) -> bool {
        matches!(self, Kind::Set | Kind::Keyed(..))
    }

    fn is_object(&self) -> bool {
        matches!(self, Kind::Struct(..) | Kind::Map(_))
    }
}

/// The kind of a position holding `values` (absent values are skipped).
fn resolve<'t>(ty: Ty<'t>, values: &[Option<&Value>]) -> Kind<'t> {
    let deduced = || {
        if values.iter().flatten().any(|v| v.is_object()) {
            Kind::Map(Ty::Deduced)
        } else {
            Kind::Leaf
        }
    };
    let kind = match ty {
        Ty::Atomic => Kind::Leaf,
        Ty::Deduced => deduced(),
        Ty::Schema(types, index) => match types.shape(index) {
            Shape::Leaf => Kind::Leaf,
            Shape::Deduced => deduced(),
            Shape::Struct(fields) => Kind::Struct(types, fields),
            Shape::Map(values) => Kind::Map(values),
            Shape::Set => Kind::Set,
            Shape::Keyed(keys, item) => Kind::Keyed(keys, item),
        },
    };
    if values.iter().flatten().all(|v| kind.fits(v)) {
        kind
    } else {
        Kind::Leaf
    }
}

/// What a walk leaves out of an object: a stored object's `metadata.managedFields` is not
/// part of what is compared or merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hide {
    /// Nothing.
    Nothing,
    /// At the root of an object: `metadata.managedFields`.
    ManagedFields,
    /// At `metadata`: its `managedFields`.
    InMetadata,
}

impl Hide {
    /// What to leave out below `key`.
    fn child(self, key: &str) -> Hide {
        if self == Hide::ManagedFields && key == "metadata" {
            Hide::InMetadata
        } else {
            Hide::Nothing
        }
    }

    /// The key left out at this position.
    fn hidden(self) -> Option<&'static str> {
        (self == Hide::InMetadata).then_some("managedFields")
    }
}

/// An object without its hidden key.
#[derive(Clone, Copy)]
struct View<'v> {
    map: &'v Map<String, Value>,
    hidden: Option<&'static str>,
}

impl<'v> View<'v> {
    fn of(value: Option<&'v Value>, hide: Hide) -> Option<View<'v>> {
        value.and_then(Value::as_object).map(|map| View {
            map,
            hidden: hide.hidden(),
        })
    }

    fn get(&self, key: &str) -> Option<&'v Value> {
        if self.hidden == Some(key) {
            None
        } else {
            self.map.get(key)
        }
    }

    fn len(&self) -> usize {
        let hidden = self.hidden.is_some_and(|k| self.map.contains_key(k));
        self.map.len() - usize::from(hidden)
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn iter(&self) -> impl Iterator<Item = (&'v String, &'v Value)> + use<'v> {
        let hidden = self.hidden;
        self.map
            .iter()
            .filter(move |(k, _)| hidden != Some(k.as_str()))
    }
}

/// Whether `serde_json` maps iterate in key order (they do unless its `preserve_order`
/// feature is on), so two maps' keys can be merged in one pass.
static SORTED_MAPS: LazyLock<bool> = LazyLock::new(|| {
    let mut map = Map::new();
    map.insert("b".to_owned(), Value::Null);
    map.insert("a".to_owned(), Value::Null);
    map.keys().next().map(String::as_str) == Some("a")
});

/// Calls `f` with every key of either object once, with the values under it (in key order
/// when maps are sorted).
fn for_each_key<'v>(
    l: Option<View<'v>>,
    r: Option<View<'v>>,
    mut f: impl FnMut(&'v str, Option<&'v Value>, Option<&'v Value>),
) {
    match (l, r) {
        (Some(l), None) => l.iter().for_each(|(k, v)| f(k, Some(v), None)),
        (None, Some(r)) => r.iter().for_each(|(k, v)| f(k, None, Some(v))),
        (None, None) => {}
        (Some(l), Some(r)) if *SORTED_MAPS => {
            let mut left = l.iter().peekable();
            let mut right = r.iter().peekable();
            loop {
                match (left.peek(), right.peek()) {
                    (Some((lk, lv)), Some((rk, rv))) => match lk.cmp(rk) {
                        std::cmp::Ordering::Less => {
                            f(lk, Some(lv), None);
                            left.next();
                        }
                        std::cmp::Ordering::Greater => {
                            f(rk, None, Some(rv));
                            right.next();
                        }
                        std::cmp::Ordering::Equal => {
                            f(lk, Some(lv), Some(rv));
                            left.next();
                            right.next();
                        }
                    },
                    (Some((lk, lv)), None) => {
                        f(lk, Some(lv), None);
                        left.next();
                    }
                    (None, Some((rk, rv))) => {
                        f(rk, None, Some(rv));
                        right.next();
                    }
                    (None, None) => break,
                }
            }
        }
        (Some(l), Some(r)) => {
            for (k, v) in l.iter() {
                f(k, Some(v), r.get(k));
            }
            for (k, v) in r.iter() {
                if l.get(k).is_none() {
                    f(k, None, Some(v));
                }
            }
        }
    }
}

/// Whether two values are equal (see [`values_equal`]) with what `ha` and `hb` hide left out.
fn equal_hiding(a: &Value, ha: Hide, b: &Value, hb: Hide) -> bool {
    if ha == Hide::Nothing && hb == Hide::Nothing {
        return values_equal(a, b);
    }
    match (View::of(Some(a), ha), View::of(Some(b), hb)) {
        (Some(x), Some(y)) => {
            x.len() == y.len()
                && x.iter().all(|(k, v)| {
                    y.get(k)
                        .is_some_and(|w| equal_hiding(v, ha.child(k), w, hb.child(k)))
                })
        }
        _ => values_equal(a, b),
    }
}

/// Whether a stored object (its managed fields left out) equals `object`.
pub(crate) fn equal_to_stored(stored: &Value, object: &Value) -> bool {
    equal_hiding(stored, Hide::ManagedFields, object, Hide::Nothing)
}

/// A copy of `value` without what `hide` leaves out.
fn clone_hiding(value: &Value, hide: Hide) -> Value {
    match View::of(Some(value), hide) {
        Some(view) if hide != Hide::Nothing => Value::Object(
            view.iter()
                .map(|(k, v)| (k.clone(), clone_hiding(v, hide.child(k))))
                .collect(),
        ),
        _ => value.clone(),
    }
}

/// The element identifying a list item, or why there is none (structured-merge-diff's
/// messages).
fn item_element(kind: &Kind<'_>, item: &Value) -> Result<Elem, String> {
    match kind {
        Kind::Keyed(keys, _) => {
            let map = match item {
                Value::Object(map) => map,
                Value::Null => {
                    return Err("associative list with keys may not have a null element".into());
                }
                _ => {
                    return Err("associative list with keys may not have non-map elements".into());
                }
            };
            let mut fields = Vec::with_capacity(keys.fields.len());
            for (key, default) in &keys.fields {
                let value = match map.get(&**key).or(default.as_ref()) {
                    Some(value) => value.clone(),
                    None => {
                        return Err(format!(
                            "associative list with keys has an element that omits key field \
                             {key:?} (and doesn't have default value)"
                        ));
                    }
                };
                fields.push((Name::new(key), value));
            }
            fields.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(Elem::Key(fields.into_boxed_slice()))
        }
        _ => match item {
            Value::Object(_) => {
                Err("associative list without keys has an element that's a map type".into())
            }
            Value::Array(_) => Err("not supported: associative list with lists as elements".into()),
            Value::Null => {
                Err("associative list without keys has an element that's an explicit null".into())
            }
            scalar => Ok(Elem::Value(Box::new(scalar.clone()))),
        },
    }
}

/// Why an object has no field set: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invalid {
    pub(crate) path: String,
    pub(crate) message: String,
}

/// The field set of `value`: its leaves (scalars, atomic lists and maps), map keys, list
/// items, and empty or null objects. `strict` (for applied configurations) makes list items
/// without keys and duplicate items errors; otherwise items without keys are skipped and
/// duplicates are owned as wholes.
pub(crate) fn field_set(value: &Value, ty: Ty<'_>, strict: bool) -> Result<FieldSet, Invalid> {
    let mut path = String::new();
    set_of(value, ty, strict, &mut path)
}

fn set_of(value: &Value, ty: Ty<'_>, strict: bool, path: &mut String) -> Result<FieldSet, Invalid> {
    let kind = resolve(ty, &[Some(value)]);
    match (&kind, value) {
        (Kind::Struct(..) | Kind::Map(_), Value::Object(map)) => {
            let mut nodes = Vec::with_capacity(map.len());
            for (key, child) in map {
                let (child_ty, named) = kind.child(key);
                let len = path.len();
                path.push('.');
                path.push_str(key);
                let below = set_of(child, child_ty, strict, path)?;
                path.truncate(len);
                let leaf = matches!(resolve(child_ty, &[Some(child)]), Kind::Leaf);
                let empty_object = child.as_object().is_some_and(Map::is_empty);
                let member = leaf || child.is_null() || empty_object || !named;
                nodes.extend(Node::new(Elem::field(key), member, below));
            }
            Ok(FieldSet::from_nodes(nodes))
        }
        (Kind::Set | Kind::Keyed(..), Value::Array(items)) => {
            let mut elements: Vec<Option<Elem>> = Vec::with_capacity(items.len());
            for (index, item) in items.iter().enumerate() {
                match item_element(&kind, item) {
                    Ok(element) => elements.push(Some(element)),
                    Err(message) if strict => {
                        return Err(Invalid {
                            path: path.clone(),
                            message: format!("element {index}: {message}"),
                        });
                    }
                    Err(_) => elements.push(None),
                }
            }
            // Items sharing an element are owned as a whole; the first such element in
            // order is the one a strict walk reports.
            let mut order: Vec<usize> = (0..elements.len())
                .filter(|i| elements[*i].is_some())
                .collect();
            order.sort_by(|a, b| elements[*a].cmp(&elements[*b]));
            let mut duplicated = vec![false; elements.len()];
            let mut first_duplicate = None;
            for run in order.chunk_by(|a, b| elements[*a] == elements[*b]) {
                if run.len() > 1 {
                    for index in run {
                        duplicated[*index] = true;
                    }
                    first_duplicate = first_duplicate.or(run.first().copied());
                }
            }
            if strict && let Some(Some(element)) = first_duplicate.and_then(|i| elements.get(i)) {
                return Err(Invalid {
                    path: path.clone(),
                    message: format!("duplicate entries for key {element}"),
                });
            }
            let mut nodes = Vec::with_capacity(items.len());
            for ((item, element), duplicated) in items.iter().zip(elements).zip(duplicated) {
                let Some(element) = element else { continue };
                let below = if duplicated {
                    FieldSet::new()
                } else {
                    let len = path.len();
                    let _ = write!(path, "{element}");
                    let below = set_of(item, kind.item(), strict, path)?;
                    path.truncate(len);
                    below
                };
                nodes.extend(Node::new(element, true, below));
            }
            Ok(FieldSet::from_nodes(nodes))
        }
        _ => Ok(FieldSet::new()),
    }
}

/// What changed between two objects.
#[derive(Debug, Clone, Default)]
pub(crate) struct Comparison {
    /// Paths present only in the new object.
    pub(crate) added: FieldSet,
    /// Leaves whose value changed.
    pub(crate) modified: FieldSet,
    /// Paths present only in the old object.
    pub(crate) removed: FieldSet,
}

/// Compares two objects the way structured-merge-diff does: objects and list items that
/// appear or disappear are added or removed (with everything below them), leaves whose
/// values differ are modified; empty and null containers are compared as leaves. What
/// `hide_old` and `hide_new` hide is left out of each side.
pub(crate) fn compare_hiding(
    old: Option<&Value>,
    hide_old: Hide,
    new: Option<&Value>,
    hide_new: Hide,
    ty: Ty<'_>,
) -> Comparison {
    let delta = compare_at(old, new, ty, (hide_old, hide_new));
    // The root itself is never a member.
    Comparison {
        added: FieldSet::from_nodes(delta.below.added),
        modified: FieldSet::from_nodes(delta.below.modified),
        removed: FieldSet::from_nodes(delta.below.removed),
    }
}

/// The comparison at one position: whether the position itself is added, modified or
/// removed, and what is below it.
#[derive(Default)]
struct Delta {
    added: bool,
    modified: bool,
    removed: bool,
    below: Below,
}

/// The comparison of the positions below one, per set.
#[derive(Default)]
struct Below {
    added: Vec<Node>,
    modified: Vec<Node>,
    removed: Vec<Node>,
}

impl Delta {
    fn is_empty(&self) -> bool {
        !self.added
            && !self.modified
            && !self.removed
            && self.below.added.is_empty()
            && self.below.modified.is_empty()
            && self.below.removed.is_empty()
    }
}

impl Below {
    /// Records the comparison of the position `elem` below.
    fn push(&mut self, elem: Elem, delta: Delta) {
        let Delta {
            added,
            modified,
            removed,
            below,
        } = delta;
        let a = added || !below.added.is_empty();
        let m = modified || !below.modified.is_empty();
        let r = removed || !below.removed.is_empty();
        let mut elem = Some(elem);
        let mut take = |again: bool| if again { elem.clone() } else { elem.take() };
        if a && let Some(e) = take(m || r) {
            self.added
                .extend(Node::new(e, added, FieldSet::from_nodes(below.added)));
        }
        if m && let Some(e) = take(r) {
            self.modified
                .extend(Node::new(e, modified, FieldSet::from_nodes(below.modified)));
        }
        if r && let Some(e) = take(false) {
            self.removed
                .extend(Node::new(e, removed, FieldSet::from_nodes(below.removed)));
        }
    }
}

fn compare_leaf(old: Option<&Value>, new: Option<&Value>, hide: (Hide, Hide), out: &mut Delta) {
    match (old, new) {
        (None, None) => {}
        (None, Some(_)) => out.added = true,
        (Some(_), None) => out.removed = true,
        (Some(a), Some(b)) => {
            if !equal_hiding(a, hide.0, b, hide.1) {
                out.modified = true;
            }
        }
    }
}

fn compare_at(old: Option<&Value>, new: Option<&Value>, ty: Ty<'_>, hide: (Hide, Hide)) -> Delta {
    let mut out = Delta::default();
    if old.is_none() && new.is_none() {
        return out;
    }
    // Equal values have no difference to find: most of an updated object (a pod's spec when
    // its status changes) is not walked field by field.
    if hide == NO_HIDE
        && let (Some(a), Some(b)) = (old, new)
        && values_equal(a, b)
    {
        return out;
    }
    let kind = resolve(ty, &[old, new]);
    if kind.is_object() {
        let l = View::of(old, hide.0);
        let r = View::of(new, hide.1);
        if l.is_none_or(|m| m.is_empty()) && r.is_none_or(|m| m.is_empty()) {
            compare_leaf(old, new, hide, &mut out);
            return out;
        }
        if l.is_none() {
            out.added = true;
        } else if r.is_none() {
            out.removed = true;
        }
        let below = &mut out.below;
        for_each_key(l, r, |key, lv, rv| {
            let (child_ty, _) = kind.child(key);
            let delta = compare_at(lv, rv, child_ty, (hide.0.child(key), hide.1.child(key)));
            if !delta.is_empty() {
                below.push(Elem::field(key), delta);
            }
        });
    } else if kind.is_list() {
        let l = old.and_then(Value::as_array);
        let r = new.and_then(Value::as_array);
        if l.is_none_or(Vec::is_empty) && r.is_none_or(Vec::is_empty) {
            compare_leaf(old, new, hide, &mut out);
            return out;
        }
        // Items grouped by element (a stable sort keeps the old items first, each side in
        // its order).
        let mut items: Vec<(Elem, bool, &Value)> = Vec::new();
        for (items_of, is_new) in [(l, false), (r, true)] {
            for item in items_of.into_iter().flatten() {
                if let Ok(element) = item_element(&kind, item) {
                    items.push((element, is_new, item));
                }
            }
        }
        items.sort_by(|a, b| a.0.cmp(&b.0));
        let item_ty = kind.item();
        let mut start = 0;
        while start < items.len() {
            let mut end = start + 1;
            while end < items.len() && items[end].0 == items[start].0 {
                end += 1;
            }
            let group = &items[start..end];
            let ls = || group.iter().filter(|i| !i.1).map(|i| i.2);
            let rs = || group.iter().filter(|i| i.1).map(|i| i.2);
            let (nl, nr) = (ls().count(), rs().count());
            let delta = match (nl, nr) {
                (nl, nr) if nl <= 1 && nr <= 1 => compare_at(
                    ls().next(),
                    rs().next(),
                    item_ty,
                    (Hide::Nothing, Hide::Nothing),
                ),
                (nl, nr) if nl >= 2 && nr >= 2 => {
                    let same = nl == nr && ls().zip(rs()).all(|(a, b)| values_equal(a, b));
                    Delta {
                        modified: !same,
                        ..Delta::default()
                    }
                }
                (nl, _) if nl >= 2 => {
                    let mut delta = match rs().next() {
                        Some(first) => compare_at(None, Some(first), item_ty, NO_HIDE),
                        None => Delta::default(),
                    };
                    delta.removed = true;
                    delta
                }
                _ => {
                    let mut delta = match ls().next() {
                        Some(first) => compare_at(Some(first), None, item_ty, NO_HIDE),
                        None => Delta::default(),
                    };
                    delta.added = true;
                    delta
                }
            };
            if !delta.is_empty() {
                let element = std::mem::replace(&mut items[start].0, Elem::Index(0));
                out.below.push(element, delta);
            }
            start = end;
        }
    } else {
        compare_leaf(old, new, hide, &mut out);
    }
    out
}

const NO_HIDE: (Hide, Hide) = (Hide::Nothing, Hide::Nothing);

/// Merges an applied configuration into a live object: objects and maps merge key by key,
/// map-type lists by key and sets by value (in structured-merge-diff's order: live items stay
/// where they are, applied items follow the applied order), anything else is replaced. What
/// `hide` hides of the live object is left out.
pub(crate) fn merge(live: Option<&Value>, applied: &Value, ty: Ty<'_>, hide: Hide) -> Value {
    let Some(live) = live else {
        return applied.clone();
    };
    let kind = resolve(ty, &[Some(live), Some(applied)]);
    if kind.is_object() {
        match (View::of(Some(live), hide), applied.as_object()) {
            (Some(l), Some(r)) => {
                if l.is_empty() && r.is_empty() {
                    return applied.clone();
                }
                let mut out = Map::new();
                for (key, lv) in l.iter() {
                    let value = match r.get(key) {
                        Some(rv) => merge(Some(lv), rv, kind.child(key).0, hide.child(key)),
                        None => clone_hiding(lv, hide.child(key)),
                    };
                    out.insert(key.clone(), value);
                }
                for (key, rv) in r {
                    if l.get(key).is_none() {
                        out.insert(key.clone(), rv.clone());
                    }
                }
                Value::Object(out)
            }
            // An applied null leaves a non-empty live object as it is.
            (Some(l), None) if applied.is_null() && !l.is_empty() => clone_hiding(live, hide),
            _ => applied.clone(),
        }
    } else if kind.is_list() {
        match (live.as_array(), applied.as_array()) {
            (Some(l), Some(r)) => {
                if l.is_empty() && r.is_empty() {
                    applied.clone()
                } else {
                    Value::Array(merge_list(l, r, &kind))
                }
            }
            (Some(l), None) if applied.is_null() && !l.is_empty() => live.clone(),
            _ => applied.clone(),
        }
    } else {
        applied.clone()
    }
}

/// Merges the items of an associative list (structured-merge-diff's ordering: live items
/// that are not applied keep their place, applied items come in the applied order).
fn merge_list(live: &[Value], applied: &[Value], kind: &Kind<'_>) -> Vec<Value> {
    let item_ty = kind.item();
    let merge_item =
        |live: Option<&Value>, applied: &Value| merge(live, applied, item_ty, Hide::Nothing);
    let lhs: Vec<Option<Elem>> = live.iter().map(|i| item_element(kind, i).ok()).collect();
    let rhs: Vec<Option<Elem>> = applied.iter().map(|i| item_element(kind, i).ok()).collect();
    // The live item of each element (None when the element is duplicated).
    let mut observed: BTreeMap<&Elem, Option<usize>> = BTreeMap::new();
    for (index, element) in lhs.iter().enumerate() {
        if let Some(element) = element {
            observed
                .entry(element)
                .and_modify(|slot| *slot = None)
                .or_insert(Some(index));
        }
    }
    let applied_elements: BTreeSet<&Elem> = rhs.iter().flatten().collect();
    let mut shared: VecDeque<&Elem> = rhs
        .iter()
        .flatten()
        .filter(|e| observed.contains_key(e))
        .collect();
    let mut next_shared = shared.pop_front();
    let mut merged: BTreeSet<&Elem> = BTreeSet::new();
    let live_item = |element: &Elem| {
        observed
            .get(element)
            .copied()
            .flatten()
            .map(|index| &live[index])
    };

    let mut out = Vec::with_capacity(live.len().max(applied.len()));
    let (mut li, mut ri) = (0, 0);
    while li < live.len() || ri < applied.len() {
        if li < live.len() && ri < applied.len() {
            if let (Some(le), Some(re)) = (&lhs[li], &rhs[ri])
                && le == re
            {
                merged.insert(le);
                out.push(merge_item(live_item(le), &applied[ri]));
                li += 1;
                ri += 1;
                next_shared = shared.pop_front();
                continue;
            }
            if let Some(le) = &lhs[li]
                && applied_elements.contains(le)
                && next_shared.is_some_and(|n| n != le)
            {
                // A shared item, but not the next one in the applied order.
                li += 1;
                continue;
            }
        }
        if li < live.len() {
            match &lhs[li] {
                Some(le) if applied_elements.contains(le) => {
                    if merged.contains(le) {
                        li += 1;
                    }
                }
                _ => {
                    out.push(live[li].clone());
                    li += 1;
                    continue;
                }
            }
        }
        if ri < applied.len() {
            match &rhs[ri] {
                Some(re) => {
                    merged.insert(re);
                    out.push(merge_item(live_item(re), &applied[ri]));
                    if next_shared == Some(re) {
                        next_shared = shared.pop_front();
                    }
                }
                None => out.push(applied[ri].clone()),
            }
            ri += 1;
        }
    }
    out
}

/// Removes from `value` what an applier applied last time (`last`) but nobody owns any more
/// (`owned`, the union of every manager's set, the applier's new one included). A named field
/// counts as applied or owned when anything below it is; a removed path takes everything
/// below it along; containers emptied by the removal are removed too.
pub(crate) fn prune(value: &mut Value, last: &FieldSet, owned: &FieldSet, ty: Ty<'_>) {
    let kind = resolve(ty, &[Some(value)]);
    let nothing = FieldSet::new();
    match value {
        Value::Object(map) if kind.is_object() => {
            for (element, member, below) in last.entries() {
                let Some(name) = element.as_field() else {
                    continue;
                };
                let Some(child) = map.get_mut(name) else {
                    continue;
                };
                let (child_ty, named) = kind.child(name);
                let applied = member || (named && !below.is_empty());
                let kept = owned.is_member(element) || (named && owned.children(element).is_some());
                if applied && !kept {
                    map.remove(name);
                    continue;
                }
                if !below.is_empty() {
                    let was_empty = is_empty_container(child);
                    let owned_below = owned.children(element).unwrap_or(&nothing);
                    prune(child, below, owned_below, child_ty);
                    if !was_empty && is_empty_container(child) {
                        map.remove(name);
                    }
                }
            }
        }
        Value::Array(items) if kind.is_list() => {
            let item_ty = kind.item();
            items.retain_mut(|item| {
                let Ok(element) = item_element(&kind, item) else {
                    return true;
                };
                if last.is_member(&element) && !owned.is_member(&element) {
                    return false;
                }
                if let Some(below) = last.children(&element) {
                    let owned_below = owned.children(&element).unwrap_or(&nothing);
                    prune(item, below, owned_below, item_ty);
                }
                true
            });
        }
        _ => {}
    }
}

fn is_empty_container(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.is_empty(),
        Value::Array(items) => items.is_empty(),
        _ => false,
    }
}

/// Struct-valued (non-pointer) fields of the built-in types, by definition: the zero value
/// of a Go object has them as empty objects, so creating an object does not "add" them (no
/// `"."` in the creator's set), as in Kubernetes. Root `metadata`, `spec` and `status` are
/// always such fields.
pub(crate) const VALUE_STRUCTS: &[(&str, &[&str])] = &[
    (
        "io.k8s.api.apps.v1.DaemonSetSpec",
        &["template", "updateStrategy"],
    ),
    (
        "io.k8s.api.apps.v1.DeploymentSpec",
        &["template", "strategy"],
    ),
    ("io.k8s.api.apps.v1.ReplicaSetSpec", &["template"]),
    (
        "io.k8s.api.apps.v1.StatefulSetSpec",
        &["template", "updateStrategy"],
    ),
    (
        "io.k8s.api.autoscaling.v1.HorizontalPodAutoscalerSpec",
        &["scaleTargetRef"],
    ),
    (
        "io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerSpec",
        &["scaleTargetRef"],
    ),
    ("io.k8s.api.batch.v1.CronJobSpec", &["jobTemplate"]),
    ("io.k8s.api.batch.v1.JobSpec", &["template"]),
    ("io.k8s.api.batch.v1.JobTemplateSpec", &["metadata", "spec"]),
    ("io.k8s.api.core.v1.Event", &["involvedObject", "source"]),
    (
        "io.k8s.api.core.v1.NodeDaemonEndpoints",
        &["kubeletEndpoint"],
    ),
    (
        "io.k8s.api.core.v1.NodeStatus",
        &["daemonEndpoints", "nodeInfo"],
    ),
    (
        "io.k8s.api.core.v1.PersistentVolumeClaimSpec",
        &["resources"],
    ),
    ("io.k8s.api.core.v1.PodTemplate", &["template"]),
    ("io.k8s.api.core.v1.PodTemplateSpec", &["metadata", "spec"]),
    ("io.k8s.api.core.v1.ServiceStatus", &["loadBalancer"]),
    (
        "io.k8s.api.events.v1.Event",
        &["deprecatedSource", "regarding"],
    ),
    ("io.k8s.api.networking.v1.IngressStatus", &["loadBalancer"]),
    ("io.k8s.api.rbac.v1.ClusterRoleBinding", &["roleRef"]),
    ("io.k8s.api.rbac.v1.RoleBinding", &["roleRef"]),
    ("io.k8s.api.storage.v1.VolumeAttachmentSpec", &["source"]),
    (
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionSpec",
        &["names"],
    ),
    (
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionStatus",
        &["acceptedNames"],
    ),
];
