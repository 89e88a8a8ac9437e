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

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde_json::{Map, Value};

use super::fieldpath::{FieldSet, PathElement, values_equal};
use crate::schema::{EXT_PRESERVE_UNKNOWN, ListType, MapType, SchemaKind, SchemaRef};

/// The type of a position in an object.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ty<'s> {
    /// Described by a schema.
    Schema(SchemaRef<'s>),
    /// Untyped, granular: objects are maps of deduced values, lists are atomic.
    Deduced,
    /// Untyped, atomic: a leaf whatever its shape.
    Atomic,
}

impl<'s> Ty<'s> {
    /// The type of an object of a kind with this schema (deduced without one).
    pub(crate) fn root(schema: Option<SchemaRef<'s>>) -> Ty<'s> {
        schema.map_or(Ty::Deduced, Ty::Schema)
    }
}

/// The topology of a position, for the values at hand.
#[derive(Debug, Clone)]
enum Kind<'s> {
    /// A scalar, an atomic list or map, or a value that does not fit its schema.
    Leaf,
    /// An object with named fields.
    Struct(SchemaRef<'s>),
    /// A granular map with values of this type.
    Map(Ty<'s>),
    /// A list of unique scalars.
    Set,
    /// A list of objects identified by these key fields, with items of this type.
    Keyed(Vec<&'s str>, Ty<'s>),
}

impl<'s> Kind<'s> {
    fn fits(&self, value: &Value) -> bool {
        match self {
            Kind::Leaf => true,
            Kind::Struct(_) | Kind::Map(_) => value.is_object() || value.is_null(),
            Kind::Set | Kind::Keyed(..) => value.is_array() || value.is_null(),
        }
    }

    /// The type of the value under `key` of an object, and whether `key` is a named field.
    fn child(&self, key: &str) -> (Ty<'s>, bool) {
        match self {
            Kind::Struct(schema) => match schema.field(key) {
                Some(field) => (Ty::Schema(field), true),
                None => (Ty::Deduced, false),
            },
            Kind::Map(values) => (*values, false),
            _ => (Ty::Deduced, false),
        }
    }

    /// The type of the items of a list.
    fn item(&self) -> Ty<'s> {
        match self {
            Kind::Keyed(_, item) => *item,
            _ => Ty::Atomic,
        }
    }

    fn is_list(&self) -> bool {
        matches!(self, Kind::Set | Kind::Keyed(..))
    }

    fn is_object(&self) -> bool {
        matches!(self, Kind::Struct(_) | Kind::Map(_))
    }
}

/// The kind of a position holding `values` (absent values are skipped).
fn resolve<'s>(ty: Ty<'s>, values: &[Option<&Value>]) -> Kind<'s> {
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
        Ty::Schema(schema) => match schema.kind() {
            SchemaKind::Object => match schema.map_type() {
                MapType::Atomic => Kind::Leaf,
                MapType::Granular => Kind::Struct(schema),
            },
            SchemaKind::Map => match schema.map_type() {
                MapType::Atomic => Kind::Leaf,
                MapType::Granular => Kind::Map(schema.map_values().map_or(Ty::Atomic, Ty::Schema)),
            },
            SchemaKind::Array => match schema.list_type() {
                ListType::Atomic => Kind::Leaf,
                ListType::Set => Kind::Set,
                ListType::Map(keys) if keys.is_empty() => Kind::Set,
                ListType::Map(keys) => {
                    Kind::Keyed(keys, schema.items().map_or(Ty::Deduced, Ty::Schema))
                }
            },
            SchemaKind::Scalar => Kind::Leaf,
            SchemaKind::Any => {
                let preserve = schema
                    .extension(EXT_PRESERVE_UNKNOWN)
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                if preserve { deduced() } else { Kind::Leaf }
            }
        },
    };
    if values.iter().flatten().all(|v| kind.fits(v)) {
        kind
    } else {
        Kind::Leaf
    }
}

/// The element identifying a list item, or why there is none (structured-merge-diff's
/// messages).
fn item_element(kind: &Kind<'_>, item: &Value) -> Result<PathElement, String> {
    match kind {
        Kind::Keyed(keys, item_ty) => {
            let map = match item {
                Value::Object(map) => map,
                Value::Null => {
                    return Err("associative list with keys may not have a null element".into());
                }
                _ => {
                    return Err("associative list with keys may not have non-map elements".into());
                }
            };
            let mut fields = Vec::with_capacity(keys.len());
            for key in keys {
                let value = match map.get(*key) {
                    Some(value) => value.clone(),
                    None => key_default(*item_ty, key).ok_or_else(|| {
                        format!(
                            "associative list with keys has an element that omits key field \
                             {key:?} (and doesn't have default value)"
                        )
                    })?,
                };
                fields.push(((*key).to_owned(), value));
            }
            fields.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(PathElement::Key(fields))
        }
        _ => match item {
            Value::Object(_) => {
                Err("associative list without keys has an element that's a map type".into())
            }
            Value::Array(_) => Err("not supported: associative list with lists as elements".into()),
            Value::Null => {
                Err("associative list without keys has an element that's an explicit null".into())
            }
            scalar => Ok(PathElement::Value(scalar.clone())),
        },
    }
}

/// The default of a key field of a list item: the schema's `default`, else Kubernetes'
/// default for `protocol` (`TCP`, the key of container and service ports).
fn key_default(item_ty: Ty<'_>, key: &str) -> Option<Value> {
    if let Ty::Schema(schema) = item_ty
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
    let mut out = FieldSet::new();
    match (&kind, value) {
        (Kind::Struct(_) | Kind::Map(_), Value::Object(map)) => {
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
                out.put(PathElement::Field(key.clone()), member, below);
            }
        }
        (Kind::Set | Kind::Keyed(..), Value::Array(items)) => {
            let mut elements = Vec::with_capacity(items.len());
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
            let mut counts: BTreeMap<&PathElement, usize> = BTreeMap::new();
            for element in elements.iter().flatten() {
                *counts.entry(element).or_default() += 1;
            }
            if strict && let Some((element, _)) = counts.iter().find(|(_, n)| **n > 1) {
                return Err(Invalid {
                    path: path.clone(),
                    message: format!("duplicate entries for key {element}"),
                });
            }
            for (item, element) in items.iter().zip(&elements) {
                let Some(element) = element else { continue };
                let below = if counts.get(element).copied().unwrap_or(0) > 1 {
                    FieldSet::new()
                } else {
                    let len = path.len();
                    path.push_str(&element.to_string());
                    let below = set_of(item, kind.item(), strict, path)?;
                    path.truncate(len);
                    below
                };
                out.put(element.clone(), true, below);
            }
        }
        _ => {}
    }
    Ok(out)
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

impl Comparison {
    /// Applies `f` to the three sets.
    pub(crate) fn map(self, f: impl Fn(FieldSet) -> FieldSet) -> Comparison {
        Comparison {
            added: f(self.added),
            modified: f(self.modified),
            removed: f(self.removed),
        }
    }
}

/// Compares two objects the way structured-merge-diff does: objects and list items that
/// appear or disappear are added or removed (with everything below them), leaves whose
/// values differ are modified; empty and null containers are compared as leaves.
pub(crate) fn compare(old: Option<&Value>, new: Option<&Value>, ty: Ty<'_>) -> Comparison {
    let mut out = Comparison::default();
    let mut path = Vec::new();
    compare_at(old, new, ty, &mut path, &mut out);
    out
}

fn compare_leaf(
    old: Option<&Value>,
    new: Option<&Value>,
    path: &[PathElement],
    out: &mut Comparison,
) {
    match (old, new) {
        (None, None) => {}
        (None, Some(_)) => out.added.insert(path),
        (Some(_), None) => out.removed.insert(path),
        (Some(a), Some(b)) => {
            if !values_equal(a, b) {
                out.modified.insert(path);
            }
        }
    }
}

fn compare_at(
    old: Option<&Value>,
    new: Option<&Value>,
    ty: Ty<'_>,
    path: &mut Vec<PathElement>,
    out: &mut Comparison,
) {
    if old.is_none() && new.is_none() {
        return;
    }
    let kind = resolve(ty, &[old, new]);
    if kind.is_object() {
        let l = old.and_then(Value::as_object);
        let r = new.and_then(Value::as_object);
        if l.is_none_or(Map::is_empty) && r.is_none_or(Map::is_empty) {
            compare_leaf(old, new, path, out);
            return;
        }
        if l.is_none() {
            out.added.insert(path);
        } else if r.is_none() {
            out.removed.insert(path);
        }
        let keys = l
            .into_iter()
            .flat_map(|m| m.keys())
            .chain(r.into_iter().flat_map(|m| m.keys()));
        let mut seen = BTreeSet::new();
        for key in keys {
            if !seen.insert(key) {
                continue;
            }
            let (child_ty, _) = kind.child(key);
            path.push(PathElement::Field(key.clone()));
            compare_at(
                l.and_then(|m| m.get(key)),
                r.and_then(|m| m.get(key)),
                child_ty,
                path,
                out,
            );
            path.pop();
        }
    } else if kind.is_list() {
        let l = old.and_then(Value::as_array);
        let r = new.and_then(Value::as_array);
        if l.is_none_or(Vec::is_empty) && r.is_none_or(Vec::is_empty) {
            compare_leaf(old, new, path, out);
            return;
        }
        // Every element once: the old items' first, then the new ones'.
        let mut order: Vec<PathElement> = Vec::new();
        let mut seen: BTreeSet<PathElement> = BTreeSet::new();
        let mut left: BTreeMap<PathElement, Vec<&Value>> = BTreeMap::new();
        let mut right: BTreeMap<PathElement, Vec<&Value>> = BTreeMap::new();
        for (items, groups) in [(l, &mut left), (r, &mut right)] {
            for item in items.into_iter().flatten() {
                let Ok(element) = item_element(&kind, item) else {
                    continue;
                };
                if seen.insert(element.clone()) {
                    order.push(element.clone());
                }
                groups.entry(element).or_default().push(item);
            }
        }
        let none: Vec<&Value> = Vec::new();
        for element in order {
            let ls = left.get(&element).unwrap_or(&none);
            let rs = right.get(&element).unwrap_or(&none);
            path.push(element);
            match (ls.len(), rs.len()) {
                (nl, nr) if nl <= 1 && nr <= 1 => {
                    compare_at(
                        ls.first().copied(),
                        rs.first().copied(),
                        kind.item(),
                        path,
                        out,
                    );
                }
                (nl, nr) if nl >= 2 && nr >= 2 => {
                    let same = nl == nr && ls.iter().zip(rs).all(|(a, b)| values_equal(a, b));
                    if !same {
                        out.modified.insert(path);
                    }
                }
                (nl, _) if nl >= 2 => {
                    if let Some(first) = rs.first() {
                        compare_at(None, Some(first), kind.item(), path, out);
                    }
                    out.removed.insert(path);
                }
                _ => {
                    if let Some(first) = ls.first() {
                        compare_at(Some(first), None, kind.item(), path, out);
                    }
                    out.added.insert(path);
                }
            }
            path.pop();
        }
    } else {
        compare_leaf(old, new, path, out);
    }
}

/// Merges an applied configuration into a live object: objects and maps merge key by key,
/// map-type lists by key and sets by value (in structured-merge-diff's order: live items stay
/// where they are, applied items follow the applied order), anything else is replaced.
pub(crate) fn merge(live: Option<&Value>, applied: &Value, ty: Ty<'_>) -> Value {
    let Some(live) = live else {
        return applied.clone();
    };
    let kind = resolve(ty, &[Some(live), Some(applied)]);
    if kind.is_object() {
        match (live.as_object(), applied.as_object()) {
            (Some(l), Some(r)) => {
                if l.is_empty() && r.is_empty() {
                    return applied.clone();
                }
                let mut out = Map::new();
                for (key, lv) in l {
                    let value = match r.get(key) {
                        Some(rv) => merge(Some(lv), rv, kind.child(key).0),
                        None => lv.clone(),
                    };
                    out.insert(key.clone(), value);
                }
                for (key, rv) in r {
                    if !l.contains_key(key) {
                        out.insert(key.clone(), rv.clone());
                    }
                }
                Value::Object(out)
            }
            // An applied null leaves a non-empty live object as it is.
            (Some(l), None) if applied.is_null() && !l.is_empty() => live.clone(),
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
    let lhs: Vec<Option<PathElement>> = live.iter().map(|i| item_element(kind, i).ok()).collect();
    let rhs: Vec<Option<PathElement>> =
        applied.iter().map(|i| item_element(kind, i).ok()).collect();
    // The live item of each element (None when the element is duplicated).
    let mut observed: BTreeMap<&PathElement, Option<usize>> = BTreeMap::new();
    for (index, element) in lhs.iter().enumerate() {
        if let Some(element) = element {
            observed
                .entry(element)
                .and_modify(|slot| *slot = None)
                .or_insert(Some(index));
        }
    }
    let applied_elements: BTreeSet<&PathElement> = rhs.iter().flatten().collect();
    let mut shared: VecDeque<&PathElement> = rhs
        .iter()
        .flatten()
        .filter(|e| observed.contains_key(e))
        .collect();
    let mut next_shared = shared.pop_front();
    let mut merged: BTreeSet<&PathElement> = BTreeSet::new();
    let live_item = |element: &PathElement| {
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
                out.push(merge(live_item(le), &applied[ri], item_ty));
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
                    out.push(merge(live_item(re), &applied[ri], item_ty));
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
                let PathElement::Field(name) = element else {
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

/// The zero value of a kind, as the old object of a create: `{}` with the struct-valued
/// fields (see [`VALUE_STRUCTS`]) as nested empty objects.
pub(crate) fn skeleton(schema: Option<SchemaRef<'_>>) -> Value {
    match schema {
        Some(schema) => skeleton_of(schema, true, 0),
        None => Value::Object(Map::new()),
    }
}

fn skeleton_of(schema: SchemaRef<'_>, root: bool, depth: usize) -> Value {
    let mut out = Map::new();
    if depth > 16 {
        return Value::Object(out);
    }
    let listed = schema
        .definition_name()
        .and_then(|name| VALUE_STRUCTS.iter().find(|(d, _)| *d == name))
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
