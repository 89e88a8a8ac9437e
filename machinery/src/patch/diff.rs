//! Computing strategic merge patches from documents, as kubectl does: the two-way patch
//! (`kubectl edit`: original → modified) and the three-way patch of client-side
//! `kubectl apply` (last-applied configuration, new configuration, live object).
//!
//! The patches have kubectl's shape: removed fields become `null`, removed items of merge lists
//! become `{<key>: …, "$patch": "delete"}`, removed primitives of merge lists go to
//! `$deleteFromPrimitiveList/<field>`, merge lists whose content or order changes get a
//! `$setElementOrder/<field>`, and objects of `retainKeys` fields get a `$retainKeys` list.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::PatchError;
use super::loc::Loc;
use super::strategic::{
    COMBINE, DELETE_FROM_PRIMITIVE_LIST, DIRECTIVE, ElementKind, FieldMeta, RETAIN_KEYS,
    SET_ELEMENT_ORDER, element_kind, json_eq, merge_key_of, merge_key_value_equal, merge_map,
    mismatch, normalize_slice_order,
};
use crate::schema::SchemaRef;

/// What a diff computes.
#[derive(Debug, Clone, Copy, Default)]
struct DiffOptions {
    /// Emit `$setElementOrder` lists.
    set_element_order: bool,
    /// Leave out additions and changes (keep deletions only).
    ignore_changes_and_additions: bool,
    /// Leave out deletions (keep additions and changes only).
    ignore_deletions: bool,
    /// Emit a `$retainKeys` list for this object.
    build_retain_keys: bool,
}

/// The strategic merge patch that turns `original` into `modified` (both JSON objects, `null`
/// for empty), with `$setElementOrder` lists, as `kubectl edit` computes it.
pub fn create_two_way_merge_patch(
    original: &Value,
    modified: &Value,
    schema: Option<SchemaRef<'_>>,
) -> Result<Value, PatchError> {
    let opts = DiffOptions {
        set_element_order: true,
        ..DiffOptions::default()
    };
    let patch = diff_maps(
        as_object(original, "original")?,
        as_object(modified, "modified")?,
        schema,
        opts,
        &Loc::Root,
    )?;
    Ok(Value::Object(patch))
}

/// The strategic merge patch client-side `kubectl apply` sends: the changes from `current`
/// (the live object) to `modified` (the new configuration), without deleting what others set,
/// plus the deletions from `original` (the last-applied configuration, if any) to `modified`.
///
/// Applying it to `current` with [`strategic_merge_patch`](super::strategic_merge_patch)
/// yields `modified` plus the fields of `current` that neither configuration mentions. Like
/// `kubectl apply` (whose `--overwrite` is on by default), it does not report conflicts with
/// changes made to the live object since the last apply.
pub fn create_three_way_merge_patch(
    original: Option<&Value>,
    modified: &Value,
    current: &Value,
    schema: Option<SchemaRef<'_>>,
) -> Result<Value, PatchError> {
    let empty = Value::Null;
    let original = as_object(original.unwrap_or(&empty), "original")?;
    let modified = as_object(modified, "modified")?;
    let current = as_object(current, "current")?;
    let delta = diff_maps(
        current,
        modified,
        schema,
        DiffOptions {
            set_element_order: true,
            ignore_deletions: true,
            ..DiffOptions::default()
        },
        &Loc::Root,
    )?;
    let deletions = diff_maps(
        original,
        modified,
        schema,
        DiffOptions {
            set_element_order: true,
            ignore_changes_and_additions: true,
            ..DiffOptions::default()
        },
        &Loc::Root,
    )?;
    let patch = merge_map(deletions, &delta, schema, COMBINE, &Loc::Root)?;
    Ok(Value::Object(patch))
}

static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);

fn as_object<'v>(value: &'v Value, what: &str) -> Result<&'v Map<String, Value>, PatchError> {
    match value {
        Value::Object(map) => Ok(map),
        Value::Null => Ok(&EMPTY),
        _ => Err(PatchError::Mismatch {
            path: ".".into(),
            message: format!("the {what} document must be a JSON object"),
        }),
    }
}

/// The patch from `original` to `modified`.
fn diff_maps(
    original: &Map<String, Value>,
    modified: &Map<String, Value>,
    schema: Option<SchemaRef<'_>>,
    opts: DiffOptions,
    loc: &Loc<'_>,
) -> Result<Map<String, Value>, PatchError> {
    let mut patch = Map::new();
    let mut retain_keys = Vec::new();
    for (key, modified_value) in modified {
        if opts.build_retain_keys && !modified_value.is_null() {
            retain_keys.push(key.clone());
        }
        let Some(original_value) = original.get(key) else {
            if !opts.ignore_changes_and_additions {
                patch.insert(key.clone(), modified_value.clone());
            }
            continue;
        };
        if key == DIRECTIVE {
            match (original_value.as_str(), modified_value.as_str()) {
                (Some(a), Some(b)) => {
                    if a != b {
                        patch.insert(key.clone(), modified_value.clone());
                    }
                }
                _ => {
                    return Err(mismatch(loc, format!("invalid value for {DIRECTIVE}")));
                }
            }
            continue;
        }
        let field_loc = loc.key(key);
        match (original_value, modified_value) {
            (Value::Object(o), Value::Object(m)) => {
                diff_map_field(key, o, m, &mut patch, schema, opts, &field_loc)?;
            }
            (Value::Array(o), Value::Array(m)) => {
                diff_list_field(key, o, m, &mut patch, schema, opts, &field_loc)?;
            }
            (o, m) => {
                if !opts.ignore_changes_and_additions && !json_eq(o, m) {
                    patch.insert(key.clone(), m.clone());
                }
            }
        }
    }
    if !opts.ignore_deletions {
        for key in original.keys() {
            if !modified.contains_key(key) {
                patch.insert(key.clone(), Value::Null);
            }
        }
    }
    let original_has_more = original
        .iter()
        .any(|(k, v)| !v.is_null() && !modified.contains_key(k));
    if !retain_keys.is_empty() && (!patch.is_empty() || original_has_more) {
        retain_keys.sort();
        let keys = retain_keys.into_iter().map(Value::String).collect();
        patch.insert(RETAIN_KEYS.to_owned(), Value::Array(keys));
    }
    Ok(patch)
}

fn diff_map_field(
    key: &str,
    original: &Map<String, Value>,
    modified: &Map<String, Value>,
    patch: &mut Map<String, Value>,
    schema: Option<SchemaRef<'_>>,
    opts: DiffOptions,
    loc: &Loc<'_>,
) -> Result<(), PatchError> {
    let meta = FieldMeta::lookup(schema, key);
    if meta.strategy.replace {
        if !opts.ignore_changes_and_additions {
            patch.insert(key.to_owned(), Value::Object(modified.clone()));
        }
        return Ok(());
    }
    let opts = DiffOptions {
        build_retain_keys: meta.strategy.retain_keys,
        ..opts
    };
    let diff = diff_maps(original, modified, meta.schema, opts, loc)?;
    if !diff.is_empty() {
        patch.insert(key.to_owned(), Value::Object(diff));
    }
    Ok(())
}

fn diff_list_field(
    key: &str,
    original: &[Value],
    modified: &[Value],
    patch: &mut Map<String, Value>,
    schema: Option<SchemaRef<'_>>,
    opts: DiffOptions,
    loc: &Loc<'_>,
) -> Result<(), PatchError> {
    let meta = FieldMeta::lookup(schema, key);
    if !meta.strategy.merge {
        if !opts.ignore_changes_and_additions && !slices_eq(original, modified) {
            patch.insert(key.to_owned(), Value::Array(modified.to_vec()));
        }
        return Ok(());
    }
    let opts = DiffOptions {
        build_retain_keys: meta.strategy.retain_keys,
        ..opts
    };
    let lists = diff_lists(original, modified, meta, opts, loc)?;
    if !lists.patch.is_empty() {
        patch.insert(key.to_owned(), Value::Array(lists.patch));
    }
    if !lists.deletions.is_empty() {
        let directive = format!("{DELETE_FROM_PRIMITIVE_LIST}/{key}");
        patch.insert(directive, Value::Array(lists.deletions));
    }
    if !lists.order.is_empty() {
        patch.insert(
            format!("{SET_ELEMENT_ORDER}/{key}"),
            Value::Array(lists.order),
        );
    }
    Ok(())
}

/// The patch of a merge list: changed and added items (and `$patch: delete` items), the
/// primitives to delete, the `$setElementOrder` list.
#[derive(Debug, Default)]
struct ListDiff {
    patch: Vec<Value>,
    deletions: Vec<Value>,
    order: Vec<Value>,
}

fn diff_lists(
    original: &[Value],
    modified: &[Value],
    meta: FieldMeta<'_>,
    opts: DiffOptions,
    loc: &Loc<'_>,
) -> Result<ListDiff, PatchError> {
    if original.is_empty() {
        if modified.is_empty() || opts.ignore_changes_and_additions {
            return Ok(ListDiff::default());
        }
        return Ok(ListDiff {
            patch: modified.to_vec(),
            ..ListDiff::default()
        });
    }
    let kind = element_kind(original, modified, loc)?;
    if kind == Some(ElementKind::Object) {
        let Some(key) = meta.strategy.merge_key else {
            return Err(mismatch(
                loc,
                "cannot diff a list of objects without a merge key".into(),
            ));
        };
        let (changes, deletes) = diff_lists_of_maps(original, modified, meta, key, opts, loc)?;
        let mut patch = normalize_slice_order(changes, modified, Some(key), loc)?;
        let order_same = is_order_same(original, modified, key, loc)?;
        patch.extend(deletes);
        let mut order = Vec::new();
        if opts.set_element_order
            && ((!opts.ignore_changes_and_additions && (!patch.is_empty() || !order_same))
                || (!opts.ignore_deletions && !patch.is_empty()))
        {
            for item in modified {
                let mut entry = Map::new();
                if let Some(value) = item.get(key) {
                    entry.insert(key.to_owned(), value.clone());
                }
                order.push(Value::Object(entry));
            }
        }
        return Ok(ListDiff {
            patch,
            deletions: Vec::new(),
            order,
        });
    }
    let (additions, deletions) = diff_lists_of_scalars(original, modified, opts);
    let patch = normalize_slice_order(additions, modified, None, loc)?;
    let mut order = Vec::new();
    if opts.set_element_order
        && ((!opts.ignore_deletions && !deletions.is_empty())
            || (!opts.ignore_changes_and_additions && !slices_eq(original, modified)))
    {
        order = modified.to_vec();
    }
    Ok(ListDiff {
        patch,
        deletions,
        order,
    })
}

fn is_order_same(
    original: &[Value],
    modified: &[Value],
    key: &str,
    loc: &Loc<'_>,
) -> Result<bool, PatchError> {
    if original.len() != modified.len() {
        return Ok(false);
    }
    for (o, m) in original.iter().zip(modified) {
        if !merge_key_value_equal(o, m, Some(key), loc)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Diffs two lists of objects merged by `key`: the changed items (as patches carrying the
/// key), the added items, and `$patch: delete` items for the removed ones.
fn diff_lists_of_maps(
    original: &[Value],
    modified: &[Value],
    meta: FieldMeta<'_>,
    key: &str,
    opts: DiffOptions,
    loc: &Loc<'_>,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let original = sorted_by_key(original, key, loc)?;
    let modified = sorted_by_key(modified, key, loc)?;
    let item_schema = meta.items();
    let mut patch = Vec::new();
    let mut deletions = Vec::new();
    let (mut o, mut m) = (0, 0);
    while o < original.len() || m < modified.len() {
        let ordering = match (original.get(o), modified.get(m)) {
            (Some(a), Some(b)) => a.sort_key.cmp(&b.sort_key),
            // Only modified items left: additions.
            (None, Some(_)) => Ordering::Greater,
            // Only original items left: deletions.
            _ => Ordering::Less,
        };
        match ordering {
            Ordering::Equal => {
                let (a, b) = (&original[o], &modified[m]);
                let item_loc = loc.index(b.index);
                let mut diff = diff_maps(a.map, b.map, item_schema, opts, &item_loc)?;
                if !diff.is_empty() {
                    diff.insert(key.to_owned(), b.key_value.clone());
                    patch.push(Value::Object(diff));
                }
                o += 1;
                m += 1;
            }
            Ordering::Greater => {
                if !opts.ignore_changes_and_additions {
                    patch.push(Value::Object(modified[m].map.clone()));
                }
                m += 1;
            }
            Ordering::Less => {
                if !opts.ignore_deletions {
                    let mut directive = Map::new();
                    directive.insert(key.to_owned(), original[o].key_value.clone());
                    directive.insert(DIRECTIVE.to_owned(), Value::String("delete".into()));
                    deletions.push(Value::Object(directive));
                }
                o += 1;
            }
        }
    }
    Ok((patch, deletions))
}

/// A list item with its merge key value and the string its list is sorted by.
struct KeyedItem<'v> {
    map: &'v Map<String, Value>,
    key_value: &'v Value,
    sort_key: String,
    index: usize,
}

fn sorted_by_key<'v>(
    items: &'v [Value],
    key: &str,
    loc: &Loc<'_>,
) -> Result<Vec<KeyedItem<'v>>, PatchError> {
    let mut out = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let item_loc = loc.index(index);
        let Some(map) = item.as_object() else {
            return Err(mismatch(
                &item_loc,
                format!("expected an object, got {item}"),
            ));
        };
        let key_value = merge_key_of(map, key, &item_loc)?;
        out.push(KeyedItem {
            map,
            key_value,
            sort_key: go_string(key_value),
            index,
        });
    }
    out.sort_by(|a, b| a.sort_key.cmp(&b.sort_key));
    Ok(out)
}

/// Diffs two lists of primitives: the values added and the values removed (deduplicated).
fn diff_lists_of_scalars(
    original: &[Value],
    modified: &[Value],
    opts: DiffOptions,
) -> (Vec<Value>, Vec<Value>) {
    let original = sorted_scalars(original);
    let modified = sorted_scalars(modified);
    let mut additions = Vec::new();
    let mut deletions: Vec<Value> = Vec::new();
    let (mut o, mut m) = (0, 0);
    while o < original.len() || m < modified.len() {
        let ordering = match (original.get(o), modified.get(m)) {
            (Some(a), Some(b)) => a.0.cmp(&b.0),
            (None, Some(_)) => Ordering::Greater,
            _ => Ordering::Less,
        };
        match ordering {
            Ordering::Equal => {
                o += 1;
                m += 1;
            }
            Ordering::Greater => {
                if !opts.ignore_changes_and_additions {
                    additions.push(modified[m].1.clone());
                }
                m += 1;
            }
            Ordering::Less => {
                let value = original[o].1;
                if !opts.ignore_deletions && !deletions.iter().any(|d| json_eq(d, value)) {
                    deletions.push(value.clone());
                }
                o += 1;
            }
        }
    }
    (additions, deletions)
}

fn sorted_scalars(list: &[Value]) -> Vec<(String, &Value)> {
    let mut out: Vec<(String, &Value)> = list.iter().map(|v| (go_string(v), v)).collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn slices_eq(a: &[Value], b: &[Value]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| json_eq(x, y))
}

/// A value as Go's `fmt` `%v` prints the decoded JSON value, which upstream sorts lists by.
fn go_string(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "<nil>".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) if f.fract() == 0.0 && f.abs() < 1e21 => format!("{f:.0}"),
            (_, _, Some(f)) => f.to_string(),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}
