//! Applying strategic merge patches, with the semantics of Kubernetes' `strategicpatch`
//! package (server side: parallel lists are applied, unmatched `null`s are dropped), and the
//! patch-merging mode the three-way diff uses to combine its two halves.
//!
//! Results, element order included, are upstream's: the order even reproduces an artefact of
//! upstream merging lists in place (see `server_order_after_merge`). This was checked against
//! the cases of upstream's own test suite during development.
//!
//! Deliberate differences from upstream, all on inputs upstream mishandles: a value added where
//! the document has none is applied to an empty value (so nested directives are processed
//! instead of stored), `$patch: merge` is accepted as an explicit "merge" (upstream rejects it),
//! `$deleteFromPrimitiveList` on a list of objects is an error, an empty list with a
//! `$setElementOrder` directive is not an error, and numbers compare by value (`1` equals `1.0`).

use std::borrow::Borrow;

use serde_json::{Map, Value};

use super::PatchError;
use super::loc::Loc;
use crate::schema::{PatchStrategy, SchemaRef};

pub(super) const DIRECTIVE: &str = "$patch";
pub(super) const RETAIN_KEYS: &str = "$retainKeys";
pub(super) const SET_ELEMENT_ORDER: &str = "$setElementOrder";
pub(super) const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";

/// How [`merge_map`] treats directives and nulls.
#[derive(Debug, Clone, Copy)]
pub(super) struct MergeOptions {
    /// Apply `$deleteFromPrimitiveList`, `$retainKeys` and `$setElementOrder` (applying a
    /// patch to an object) instead of carrying them over (merging two patches).
    pub(super) merge_parallel_list: bool,
    /// Drop `null`s that delete nothing instead of keeping them (to keep a patch's deletions).
    pub(super) ignore_unmatched_nulls: bool,
}

/// Applying a patch to an object.
pub(super) const APPLY: MergeOptions = MergeOptions {
    merge_parallel_list: true,
    ignore_unmatched_nulls: true,
};

/// Merging a patch into another patch.
pub(super) const COMBINE: MergeOptions = MergeOptions {
    merge_parallel_list: false,
    ignore_unmatched_nulls: false,
};

/// Applies a strategic merge patch to `doc` (a JSON object, or `null` for none).
///
/// `schema` is the schema of the document's kind (e.g. from
/// [`Schemas::for_kind`](crate::schema::Schemas::for_kind)); it supplies the patch strategies
/// and merge keys. Without it, or below fields it does not know, objects merge like a JSON
/// merge patch and lists are replaced.
pub fn strategic_merge_patch(
    doc: &Value,
    patch: &Value,
    schema: Option<SchemaRef<'_>>,
) -> Result<Value, PatchError> {
    let patch = patch.as_object().ok_or_else(|| {
        PatchError::InvalidPatch("a strategic merge patch must be a JSON object".into())
    })?;
    let original = match doc {
        Value::Object(map) => map.clone(),
        Value::Null => Map::new(),
        _ => {
            return Err(PatchError::Mismatch {
                path: ".".into(),
                message: "a strategic merge patch applies to a JSON object".into(),
            });
        }
    };
    merge_map(original, patch, schema, APPLY, &Loc::Root).map(Value::Object)
}

/// The schema and patch strategy of a field.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct FieldMeta<'s> {
    pub(super) schema: Option<SchemaRef<'s>>,
    pub(super) strategy: PatchStrategy<'s>,
}

impl<'s> FieldMeta<'s> {
    /// The metadata of the value under `key` of an object described by `schema`.
    pub(super) fn lookup(schema: Option<SchemaRef<'s>>, key: &str) -> FieldMeta<'s> {
        let child = schema.and_then(|s| s.child(key));
        FieldMeta {
            schema: child,
            strategy: child.map(|c| c.patch_strategy()).unwrap_or_default(),
        }
    }

    /// The schema of the field's list items. Like upstream's OpenAPI lookup, a schema that
    /// is not a list's describes the items itself.
    pub(super) fn items(&self) -> Option<SchemaRef<'s>> {
        self.schema.map(|s| s.items().unwrap_or(s))
    }

    /// The metadata of the field's list items (as objects of a merge list).
    fn item_meta(&self) -> FieldMeta<'s> {
        FieldMeta {
            schema: self.items(),
            strategy: PatchStrategy::default(),
        }
    }
}

/// Merges `patch` into `original`.
pub(super) fn merge_map(
    mut original: Map<String, Value>,
    patch: &Map<String, Value>,
    schema: Option<SchemaRef<'_>>,
    opts: MergeOptions,
    loc: &Loc<'_>,
) -> Result<Map<String, Value>, PatchError> {
    if let Some(directive) = patch.get(DIRECTIVE) {
        match directive.as_str() {
            Some("replace") => {
                let mut rest = patch.clone();
                rest.remove(DIRECTIVE);
                return if opts.merge_parallel_list {
                    merge_map(Map::new(), &rest, schema, opts, loc)
                } else {
                    Ok(rest)
                };
            }
            Some("delete") => return Ok(Map::new()),
            Some("merge") => {}
            _ => {
                return Err(bad_directive(
                    loc,
                    format!(
                        "unknown $patch directive {directive}: expected replace, delete or merge"
                    ),
                ));
            }
        }
    }

    apply_retain_keys(&mut original, patch, opts, loc)?;
    let ordered = merge_ordered_lists(&mut original, patch, schema, opts, loc)?;

    let mut deletions = Vec::new();
    for (key, value) in patch {
        if key == DIRECTIVE
            || key == RETAIN_KEYS
            || key.starts_with(SET_ELEMENT_ORDER)
            || ordered.contains(&key.as_str())
        {
            continue;
        }
        if key.starts_with(DELETE_FROM_PRIMITIVE_LIST) {
            if opts.merge_parallel_list {
                deletions.push((extract_key(key, DELETE_FROM_PRIMITIVE_LIST, loc)?, value));
            } else {
                original.insert(key.clone(), value.clone());
            }
            continue;
        }
        merge_field(&mut original, key, value, schema, opts, false, loc)?;
    }
    // Deletions from primitive lists apply after the additions to the same lists.
    for (key, value) in deletions {
        merge_field(&mut original, key, value, schema, opts, true, loc)?;
    }
    Ok(original)
}

/// Merges the patch value of one key into `original`.
fn merge_field(
    original: &mut Map<String, Value>,
    key: &str,
    patch_value: &Value,
    schema: Option<SchemaRef<'_>>,
    opts: MergeOptions,
    is_delete_list: bool,
    loc: &Loc<'_>,
) -> Result<(), PatchError> {
    let loc = loc.key(key);
    if patch_value.is_null() {
        original.remove(key);
        if opts.ignore_unmatched_nulls {
            return Ok(());
        }
    }
    let meta = FieldMeta::lookup(schema, key);
    let Some(current) = original.get_mut(key) else {
        if !is_delete_list && let Some(value) = new_value(patch_value, meta, opts, &loc)? {
            original.insert(key.to_owned(), value);
        }
        return Ok(());
    };
    match (current, patch_value) {
        (Value::Object(current), Value::Object(patch_map)) => {
            let merged = if meta.strategy.replace {
                new_value(patch_value, meta, opts, &loc)?
            } else {
                let taken = std::mem::take(current);
                Some(Value::Object(merge_map(
                    taken,
                    patch_map,
                    meta.schema,
                    opts,
                    &loc,
                )?))
            };
            set_or_remove(original, key, merged);
        }
        (Value::Array(current), Value::Array(patch_list)) => {
            if meta.strategy.merge || is_delete_list {
                let taken = std::mem::take(current);
                let merged = merge_slice(taken, patch_list, meta, opts, is_delete_list, &loc)?;
                original.insert(key.to_owned(), Value::Array(merged));
            } else {
                let replaced = new_value(patch_value, meta, opts, &loc)?;
                set_or_remove(original, key, replaced);
            }
        }
        _ => {
            // Scalars and values whose type changes are replaced; a deletion list that does
            // not match a list deletes nothing.
            if !is_delete_list {
                let replaced = new_value(patch_value, meta, opts, &loc)?;
                set_or_remove(original, key, replaced);
            }
        }
    }
    Ok(())
}

fn set_or_remove(map: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    match value {
        Some(value) => {
            map.insert(key.to_owned(), value);
        }
        None => {
            map.remove(key);
        }
    }
}

/// The value a patch value gives where the document has none (or one being replaced): when
/// applying, the patch applied to nothing (directives processed, `null`s dropped); when
/// combining patches, the patch value without `$patch` items. `None`: no value (e.g. a
/// `$patch: delete` map).
fn new_value(
    patch_value: &Value,
    meta: FieldMeta<'_>,
    opts: MergeOptions,
    loc: &Loc<'_>,
) -> Result<Option<Value>, PatchError> {
    if !opts.merge_parallel_list {
        return Ok(remove_directives(patch_value));
    }
    match patch_value {
        Value::Object(map) => {
            if map.get(DIRECTIVE).and_then(Value::as_str) == Some("delete") {
                return Ok(None);
            }
            merge_map(Map::new(), map, meta.schema, opts, loc).map(|m| Some(Value::Object(m)))
        }
        Value::Array(items) => {
            if meta.strategy.merge {
                return merge_slice(Vec::new(), items, meta, opts, false, loc)
                    .map(|list| Some(Value::Array(list)));
            }
            let item_meta = meta.item_meta();
            let mut out = Vec::with_capacity(items.len());
            for (index, item) in items.iter().enumerate() {
                if let Some(value) = new_value(item, item_meta, opts, &loc.index(index))? {
                    out.push(value);
                }
            }
            Ok(Some(Value::Array(out)))
        }
        other => Ok(Some(other.clone())),
    }
}

/// `value` without the objects that carry a `$patch` directive (upstream's
/// `removeDirectives`).
pub(super) fn remove_directives(value: &Value) -> Option<Value> {
    match value {
        Value::Object(map) => {
            if map.contains_key(DIRECTIVE) {
                return None;
            }
            let kept = map
                .iter()
                .filter_map(|(k, v)| remove_directives(v).map(|v| (k.clone(), v)))
                .collect();
            Some(Value::Object(kept))
        }
        Value::Array(items) => Some(Value::Array(
            items.iter().filter_map(remove_directives).collect(),
        )),
        other => Some(other.clone()),
    }
}

/// Applies a `$retainKeys` directive: clears the keys of `original` it does not list, after
/// checking the patch sets no key it does not list.
fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    opts: MergeOptions,
    loc: &Loc<'_>,
) -> Result<(), PatchError> {
    let Some(retain) = patch.get(RETAIN_KEYS) else {
        return Ok(());
    };
    if !opts.merge_parallel_list {
        match original.get(RETAIN_KEYS) {
            Some(existing) if !json_eq(existing, retain) => {
                return Err(bad_directive(
                    loc,
                    format!("conflicting {RETAIN_KEYS} lists {existing} and {retain}"),
                ));
            }
            Some(_) => {}
            None => {
                original.insert(RETAIN_KEYS.to_owned(), retain.clone());
            }
        }
        return Ok(());
    }
    let keys = retain.as_array().ok_or_else(|| {
        bad_directive(loc, format!("{RETAIN_KEYS} must be a list of field names"))
    })?;
    let listed = |key: &str| keys.iter().any(|k| k.as_str() == Some(key));
    for (key, value) in patch {
        if value.is_null()
            || key == RETAIN_KEYS
            || key == DIRECTIVE
            || key.starts_with(DELETE_FROM_PRIMITIVE_LIST)
            || key.starts_with(SET_ELEMENT_ORDER)
        {
            continue;
        }
        if !listed(key) {
            return Err(bad_directive(
                loc,
                format!("the patch sets {key:?}, which its {RETAIN_KEYS} list does not name"),
            ));
        }
    }
    original.retain(|key, _| listed(key));
    Ok(())
}

/// Processes the `$setElementOrder/<field>` directives of `patch`: merges each such list with
/// its patch list and orders the result. Returns the fields it merged, which the caller must
/// not merge again.
fn merge_ordered_lists<'p>(
    original: &mut Map<String, Value>,
    patch: &'p Map<String, Value>,
    schema: Option<SchemaRef<'_>>,
    opts: MergeOptions,
    loc: &Loc<'_>,
) -> Result<Vec<&'p str>, PatchError> {
    let mut done = Vec::new();
    for (directive_key, order) in patch {
        if !directive_key.starts_with(SET_ELEMENT_ORDER) {
            continue;
        }
        if !opts.merge_parallel_list {
            match original.get(directive_key) {
                Some(existing) if !json_eq(existing, order) => {
                    return Err(bad_directive(
                        loc,
                        format!("conflicting {directive_key} lists {existing} and {order}"),
                    ));
                }
                Some(_) => {}
                None => {
                    original.insert(directive_key.clone(), order.clone());
                }
            }
        }
        let field = extract_key(directive_key, SET_ELEMENT_ORDER, loc)?;
        let field_loc = loc.key(field);
        let order = order
            .as_array()
            .ok_or_else(|| bad_directive(loc, format!("{directive_key} must be a list")))?;
        let original_list = match original.get(field) {
            None => None,
            Some(Value::Array(list)) => Some(list.clone()),
            Some(other) => {
                return Err(mismatch(
                    &field_loc,
                    format!("{directive_key} orders a list, but the value is {other}"),
                ));
            }
        };
        let patch_list = match patch.get(field) {
            None => None,
            Some(Value::Array(list)) => Some(list.as_slice()),
            Some(other) => {
                return Err(bad_directive(
                    &field_loc,
                    format!("{directive_key} orders a list, but the patch value is {other}"),
                ));
            }
        };
        let meta = FieldMeta::lookup(schema, field);
        let merge_key = meta.strategy.merge_key;
        validate_element_order(patch_list.unwrap_or(&[]), order, merge_key, &field_loc)?;

        let merged = match (&original_list, patch_list) {
            (Some(list), None) => list.clone(),
            (None, Some(list)) => {
                let value = Value::Array(list.to_vec());
                match new_value(&value, meta, opts, &field_loc)? {
                    Some(Value::Array(list)) => list,
                    _ => Vec::new(),
                }
            }
            (Some(current), Some(list)) => {
                if meta.strategy.merge {
                    merge_slice(current.clone(), list, meta, opts, false, &field_loc)?
                } else {
                    let value = Value::Array(list.to_vec());
                    match new_value(&value, meta, opts, &field_loc)? {
                        Some(Value::Array(list)) => list,
                        _ => Vec::new(),
                    }
                }
            }
            (None, None) => continue,
        };
        done.push(field);
        if merged.is_empty() {
            original.insert(field.to_owned(), Value::Array(merged));
            continue;
        }
        let current = original_list.unwrap_or_default();
        let kind = element_kind(&current, patch_list.unwrap_or(&[]), &field_loc)?;
        let by_key = if kind == Some(ElementKind::Object) {
            merge_key
        } else {
            None
        };
        let (patch_items, server_only) = partition(merged, order, by_key, &field_loc)?;
        let server_order = match (by_key, patch_list) {
            (Some(key), Some(list)) if meta.strategy.merge && !current.is_empty() => {
                server_order_after_merge(&current, list, key)
            }
            _ => current,
        };
        let ordered = normalize_element_order(
            patch_items,
            server_only,
            order,
            &server_order,
            by_key,
            &field_loc,
        )?;
        original.insert(field.to_owned(), Value::Array(ordered));
    }
    Ok(done)
}

/// The document order upstream sorts the document's own items by when it applies a
/// `$setElementOrder` list to a merged list of objects.
///
/// Upstream merges the list in place: deleting items shifts the following ones left, and new
/// items are appended into the slots the deletions freed. Its ordering then reads the list
/// through the original slice, so it sees the surviving items followed by the first new items
/// (or stale copies). Reproducing that keeps the order of the document's own items relative to
/// new items identical to upstream's.
fn server_order_after_merge(current: &[Value], patch: &[Value], key: &str) -> Vec<Value> {
    let capacity = current.len();
    let mut slots = current.to_vec();
    let mut len = capacity;
    let key_of = |v: &Value| v.as_object().and_then(|m| m.get(key)).cloned();
    let position = |slots: &[Value], len: usize, wanted: &Value| {
        slots[..len]
            .iter()
            .position(|s| key_of(s).is_some_and(|k| json_eq(&k, wanted)))
    };
    let mut replace = false;
    for item in patch {
        match item.get(DIRECTIVE).and_then(Value::as_str) {
            Some("delete") => {
                let Some(wanted) = key_of(item) else { continue };
                while let Some(i) = position(&slots, len, &wanted) {
                    for j in i..len - 1 {
                        slots[j] = slots[j + 1].clone();
                    }
                    len -= 1;
                }
            }
            Some("replace") => replace = true,
            _ => {}
        }
    }
    if replace {
        return slots;
    }
    for item in patch {
        if len == capacity {
            break;
        }
        let directive = item.get(DIRECTIVE).and_then(Value::as_str);
        if directive.is_some_and(|d| d != "merge") {
            continue;
        }
        let Some(wanted) = key_of(item) else { continue };
        if position(&slots, len, &wanted).is_none() {
            slots[len] = item.clone();
            len += 1;
        }
    }
    slots
}

/// Checks that the items of a patch list appear in the same relative order in its
/// `$setElementOrder` list.
fn validate_element_order(
    patch_list: &[Value],
    order: &[Value],
    merge_key: Option<&str>,
    loc: &Loc<'_>,
) -> Result<(), PatchError> {
    if patch_list.is_empty() || order.is_empty() {
        return Ok(());
    }
    let mut items = Vec::with_capacity(patch_list.len());
    for (index, item) in patch_list.iter().enumerate() {
        if merge_key.is_some() {
            let Some(map) = item.as_object() else {
                return Err(mismatch(
                    &loc.index(index),
                    format!("expected an object, got {item}"),
                ));
            };
            if map.get(DIRECTIVE).and_then(Value::as_str) == Some("delete") {
                continue;
            }
        }
        items.push(item);
    }
    let (mut p, mut o) = (0, 0);
    while p < items.len() && o < order.len() {
        if items[p].get(DIRECTIVE).is_some() {
            p += 1;
            continue;
        }
        if merge_key_value_equal(items[p], &order[o], merge_key, loc)? {
            p += 1;
        }
        o += 1;
    }
    if p < items.len() {
        return Err(bad_directive(
            loc,
            format!(
                "the order of the patch list does not match its {SET_ELEMENT_ORDER} list {}",
                Value::Array(order.to_vec())
            ),
        ));
    }
    Ok(())
}

/// Merges two lists: primitives are united (or, for a deletion list, removed); objects merge
/// by merge key, honouring `$patch: delete|replace` items. The result is ordered as upstream
/// orders it: patch items in patch order, interleaved with the document's other items in
/// document order.
fn merge_slice(
    original: Vec<Value>,
    patch: &[Value],
    meta: FieldMeta<'_>,
    opts: MergeOptions,
    is_delete_list: bool,
    loc: &Loc<'_>,
) -> Result<Vec<Value>, PatchError> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let kind = element_kind(&original, patch, loc)?;
    if kind != Some(ElementKind::Object) {
        if is_delete_list && opts.merge_parallel_list {
            return Ok(original
                .into_iter()
                .filter(|item| !patch.iter().any(|d| json_eq(d, item)))
                .collect());
        }
        let mut merged = Vec::with_capacity(original.len() + patch.len());
        for item in original.iter().chain(patch) {
            if !merged.iter().any(|m| json_eq(m, item)) {
                merged.push(item.clone());
            }
        }
        let (patch_items, server_only) = partition(merged, patch, None, loc)?;
        return normalize_element_order(patch_items, server_only, patch, &original, None, loc);
    }
    if is_delete_list {
        return Err(bad_directive(
            loc,
            format!("{DELETE_FROM_PRIMITIVE_LIST} applies to lists of primitives only"),
        ));
    }
    let Some(key) = meta.strategy.merge_key else {
        return Err(mismatch(
            loc,
            "cannot merge a list of objects without a merge key".into(),
        ));
    };
    let item_meta = meta.item_meta();
    let (original, patch_items) = split_special_items(original, patch, key, item_meta, opts, loc)?;
    let mut merged = original.clone();
    for (item, index) in &patch_items {
        let item_loc = loc.index(*index);
        let Some(item_map) = item.as_object() else {
            return Err(mismatch(
                &item_loc,
                format!("expected an object, got {item}"),
            ));
        };
        let key_value = merge_key_of(item_map, key, &item_loc)?;
        let position = merged.iter().position(|m| {
            m.as_object()
                .and_then(|m| m.get(key))
                .is_some_and(|v| json_eq(v, key_value))
        });
        match position {
            Some(position) => {
                let current = match std::mem::take(&mut merged[position]) {
                    Value::Object(map) => map,
                    _ => Map::new(),
                };
                merged[position] = Value::Object(merge_map(
                    current,
                    item_map,
                    item_meta.schema,
                    opts,
                    &item_loc,
                )?);
            }
            None => {
                if let Some(value) = new_value(item, item_meta, opts, &item_loc)? {
                    merged.push(value);
                }
            }
        }
    }
    let order: Vec<&Value> = patch_items.iter().map(|(item, _)| *item).collect();
    let (patch_sorted, server_only) = partition(merged, &order, Some(key), loc)?;
    normalize_element_order(patch_sorted, server_only, &order, &original, Some(key), loc)
}

/// The items of a patch list without directives, with their indexes in the list.
type PlainItems<'p> = Vec<(&'p Value, usize)>;

/// Handles the `$patch` items of a patch list of objects: deletes the items `$patch: delete`
/// names from `original`, and with `$patch: replace` returns the patch's items as the new list.
/// Returns the (possibly new) original and the patch's plain items with their indexes.
fn split_special_items<'p>(
    mut original: Vec<Value>,
    patch: &'p [Value],
    key: &str,
    item_meta: FieldMeta<'_>,
    opts: MergeOptions,
    loc: &Loc<'_>,
) -> Result<(Vec<Value>, PlainItems<'p>), PatchError> {
    let mut plain = Vec::new();
    let mut replace = false;
    for (index, item) in patch.iter().enumerate() {
        let item_loc = loc.index(index);
        let Some(map) = item.as_object() else {
            return Err(mismatch(
                &item_loc,
                format!("expected an object, got {item}"),
            ));
        };
        let Some(directive) = map.get(DIRECTIVE) else {
            plain.push((item, index));
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let key_value = merge_key_of(map, key, &item_loc)?;
                original.retain(|o| {
                    !o.as_object()
                        .and_then(|o| o.get(key))
                        .is_some_and(|v| json_eq(v, key_value))
                });
            }
            Some("replace") => replace = true,
            Some("merge") => {
                // An explicit merge: the default. A bare marker item carries nothing else.
                if map.len() > 1 {
                    plain.push((item, index));
                }
            }
            _ => {
                return Err(bad_directive(
                    &item_loc,
                    format!(
                        "unknown $patch directive {directive} in a list: expected delete or replace"
                    ),
                ));
            }
        }
    }
    if !replace {
        return Ok((original, plain));
    }
    let mut replaced = Vec::with_capacity(plain.len());
    for (item, index) in plain {
        let item_loc = loc.index(index);
        let value = if opts.merge_parallel_list {
            new_value(item, item_meta, opts, &item_loc)?
        } else {
            Some(item.clone())
        };
        replaced.extend(value);
    }
    Ok((replaced, Vec::new()))
}

/// The kinds of list elements, for the checks that a list is homogeneous.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ElementKind {
    Object,
    String,
    Number,
    Bool,
    Null,
}

/// The kind of the elements of the given lists: an error for lists of lists and mixed lists,
/// `None` when they are empty.
pub(super) fn element_kind<A: Borrow<Value>, B: Borrow<Value>>(
    first: &[A],
    second: &[B],
    loc: &Loc<'_>,
) -> Result<Option<ElementKind>, PatchError> {
    let mut kind = None;
    let items = first
        .iter()
        .map(Borrow::borrow)
        .chain(second.iter().map(Borrow::borrow));
    for item in items {
        let this = match item {
            Value::Object(_) => ElementKind::Object,
            Value::String(_) => ElementKind::String,
            Value::Number(_) => ElementKind::Number,
            Value::Bool(_) => ElementKind::Bool,
            Value::Null => ElementKind::Null,
            Value::Array(_) => {
                return Err(mismatch(loc, "lists of lists are not supported".into()));
            }
        };
        match kind {
            None => kind = Some(this),
            Some(previous) if previous != this => {
                return Err(mismatch(
                    loc,
                    "list elements are not all of the same type".into(),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(kind)
}

/// Splits `items` into those present in `by` (by merge key for objects, by value otherwise)
/// and the others, keeping their order.
fn partition<B: Borrow<Value>>(
    items: Vec<Value>,
    by: &[B],
    merge_key: Option<&str>,
    loc: &Loc<'_>,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut present = Vec::new();
    let mut absent = Vec::new();
    for item in items {
        let found = match merge_key {
            None => by.iter().any(|b| json_eq(b.borrow(), &item)),
            Some(key) => {
                let Some(map) = item.as_object() else {
                    return Err(mismatch(loc, format!("expected an object, got {item}")));
                };
                let value = merge_key_of(map, key, loc)?;
                let mut found = false;
                for b in by {
                    let Some(b) = b.borrow().as_object() else {
                        return Err(mismatch(
                            loc,
                            format!(
                                "expected objects with merge key {key:?}, got {}",
                                b.borrow()
                            ),
                        ));
                    };
                    if b.get(key).is_some_and(|v| json_eq(v, value)) {
                        found = true;
                        break;
                    }
                }
                found
            }
        };
        if found {
            present.push(item);
        } else {
            absent.push(item);
        }
    }
    Ok((present, absent))
}

/// Orders a merged list: `patch_items` sorted by `patch_order`, `server_only` sorted by
/// `server_order`, then the two interleaved (upstream's `normalizeElementOrder`).
pub(super) fn normalize_element_order<P: Borrow<Value>>(
    patch_items: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[P],
    server_order: &[Value],
    merge_key: Option<&str>,
    loc: &Loc<'_>,
) -> Result<Vec<Value>, PatchError> {
    let patch_items = normalize_slice_order(patch_items, patch_order, merge_key, loc)?;
    let server_only = normalize_slice_order(server_only, server_order, merge_key, loc)?;
    Ok(merge_sorted(
        server_only,
        patch_items,
        server_order,
        merge_key,
    ))
}

/// Sorts `items` (stably) by their position in `order`; `$patch: delete` items go last.
pub(super) fn normalize_slice_order<P: Borrow<Value>>(
    items: Vec<Value>,
    order: &[P],
    merge_key: Option<&str>,
    loc: &Loc<'_>,
) -> Result<Vec<Value>, PatchError> {
    let mut deletes = Vec::new();
    let mut keep = Vec::with_capacity(items.len());
    if let Some(key) = merge_key {
        for value in order {
            let value = value.borrow();
            let Some(map) = value.as_object() else {
                return Err(mismatch(loc, format!("expected an object, got {value}")));
            };
            merge_key_of(map, key, loc)?;
        }
        for item in items {
            let Some(map) = item.as_object() else {
                return Err(mismatch(loc, format!("expected an object, got {item}")));
            };
            merge_key_of(map, key, loc)?;
            if map.get(DIRECTIVE).and_then(Value::as_str) == Some("delete") {
                deletes.push(item);
            } else {
                keep.push(item);
            }
        }
    } else {
        keep = items;
    }
    let mut keyed: Vec<(usize, Value)> = keep
        .into_iter()
        .map(|item| {
            (
                index_in(order, &item, merge_key).unwrap_or(usize::MAX),
                item,
            )
        })
        .collect();
    keyed.sort_by_key(|(position, _)| *position);
    let mut out: Vec<Value> = keyed.into_iter().map(|(_, item)| item).collect();
    out.extend(deletes);
    Ok(out)
}

/// Interleaves two sorted lists, keeping the relative order of each: an item of `left` goes
/// before the next item of `right` only if both are in `server_order` and it comes first there
/// (upstream's `mergeSortedSlice`).
fn merge_sorted(
    left: Vec<Value>,
    right: Vec<Value>,
    server_order: &[Value],
    merge_key: Option<&str>,
) -> Vec<Value> {
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => {
                match (
                    index_in(server_order, l, merge_key),
                    index_in(server_order, r, merge_key),
                ) {
                    (Some(li), Some(ri)) => li < ri,
                    _ => false,
                }
            }
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out
}

/// The position of `item` in `list`: by merge key for objects, by value otherwise.
fn index_in<P: Borrow<Value>>(list: &[P], item: &Value, merge_key: Option<&str>) -> Option<usize> {
    match merge_key {
        Some(key) => {
            let wanted = item.get(key);
            list.iter()
                .position(|v| match (v.borrow().get(key), wanted) {
                    (Some(a), Some(b)) => json_eq(a, b),
                    (None, None) => true,
                    _ => false,
                })
        }
        None => list.iter().position(|v| json_eq(v.borrow(), item)),
    }
}

/// Whether two list items have the same merge key value (the same value, without a key).
pub(super) fn merge_key_value_equal(
    left: &Value,
    right: &Value,
    merge_key: Option<&str>,
    loc: &Loc<'_>,
) -> Result<bool, PatchError> {
    let Some(key) = merge_key else {
        return Ok(json_eq(left, right));
    };
    let (Some(l), Some(r)) = (left.as_object(), right.as_object()) else {
        return Err(mismatch(
            loc,
            format!("expected objects with merge key {key:?}, got {left} and {right}"),
        ));
    };
    Ok(json_eq(
        merge_key_of(l, key, loc)?,
        merge_key_of(r, key, loc)?,
    ))
}

/// The merge key value of a list item, or an error naming the item.
pub(super) fn merge_key_of<'v>(
    item: &'v Map<String, Value>,
    key: &str,
    loc: &Loc<'_>,
) -> Result<&'v Value, PatchError> {
    item.get(key).ok_or_else(|| PatchError::MissingMergeKey {
        path: loc.path(),
        key: key.to_owned(),
        item: Value::Object(item.clone()).to_string(),
    })
}

/// The field a `<prefix>/<field>` directive key names.
pub(super) fn extract_key<'k>(
    key: &'k str,
    prefix: &str,
    loc: &Loc<'_>,
) -> Result<&'k str, PatchError> {
    match key.split_once('/') {
        Some((head, field)) if head == prefix && !field.is_empty() => Ok(field),
        _ => Err(bad_directive(
            loc,
            format!("malformed directive key {key:?}: expected {prefix}/<field>"),
        )),
    }
}

/// JSON equality with numbers compared by value (`1` equals `1.0`), as upstream (which decodes
/// numbers to `float64`) compares them.
pub(super) fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y || matches!((x.as_f64(), y.as_f64()), (Some(p), Some(q)) if p == q)
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

pub(super) fn bad_directive(loc: &Loc<'_>, message: String) -> PatchError {
    PatchError::BadDirective {
        path: loc.path(),
        message,
    }
}

pub(super) fn mismatch(loc: &Loc<'_>, message: String) -> PatchError {
    PatchError::Mismatch {
        path: loc.path(),
        message,
    }
}
