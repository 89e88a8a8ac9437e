//! `metadata.managedFields` entries: decoding (with Kubernetes' validation), the identity of a
//! manager, encoding in Kubernetes' order, and the cap on the number of `Update` managers.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::fieldpath::FieldSet;

/// The `operation` of an `Apply` entry.
pub(crate) const OPERATION_APPLY: &str = "Apply";
/// The `operation` of an `Update` entry.
pub(crate) const OPERATION_UPDATE: &str = "Update";
/// The only `fieldsType` there is.
const FIELDS_V1: &str = "FieldsV1";
/// The manager the oldest `Update` entries are merged into beyond the cap.
const ANCIENT_CHANGES: &str = "ancient-changes";

/// What tells entries apart: one entry per manager, operation and subresource, and per API
/// version for `Update` entries (appliers keep one entry whatever version they apply with).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Identity {
    pub(crate) manager: String,
    /// `true` for `Apply`, `false` for `Update` (so `Apply` sorts first).
    pub(crate) applied: bool,
    /// Empty for `Apply` entries.
    pub(crate) api_version: String,
    /// Empty for the main resource.
    pub(crate) subresource: String,
}

impl Identity {
    pub(crate) fn new(
        manager: &str,
        applied: bool,
        api_version: &str,
        subresource: Option<&str>,
    ) -> Identity {
        Identity {
            manager: manager.to_owned(),
            applied,
            api_version: if applied {
                String::new()
            } else {
                api_version.to_owned()
            },
            subresource: subresource.unwrap_or_default().to_owned(),
        }
    }
}

/// One decoded `managedFields` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) manager: String,
    pub(crate) applied: bool,
    pub(crate) api_version: String,
    /// `None` for the main resource.
    pub(crate) subresource: Option<String>,
    /// RFC 3339, normalised to whole seconds in UTC when it parses.
    pub(crate) time: Option<String>,
    pub(crate) set: FieldSet,
}

impl Entry {
    pub(crate) fn identity(&self) -> Identity {
        Identity::new(
            &self.manager,
            self.applied,
            &self.api_version,
            self.subresource.as_deref(),
        )
    }

    /// Whether this entry has that identity (as [`Entry::identity`], without building it).
    pub(crate) fn is(&self, id: &Identity) -> bool {
        self.applied == id.applied
            && self.manager == id.manager
            && (self.applied || self.api_version == id.api_version)
            && self.subresource.as_deref().unwrap_or_default() == id.subresource
    }

    /// Whether two entries have the same identity.
    fn same_identity(&self, other: &Entry) -> bool {
        self.applied == other.applied
            && self.manager == other.manager
            && (self.applied || self.api_version == other.api_version)
            && self.subresource.as_deref().unwrap_or_default()
                == other.subresource.as_deref().unwrap_or_default()
    }

    fn seconds(&self) -> i64 {
        self.time.as_deref().and_then(unix_seconds).unwrap_or(0)
    }

    fn to_json(&self) -> Value {
        let mut out = Map::new();
        if !self.manager.is_empty() {
            out.insert("manager".into(), Value::String(self.manager.clone()));
        }
        let operation = if self.applied {
            OPERATION_APPLY
        } else {
            OPERATION_UPDATE
        };
        out.insert("operation".into(), Value::String(operation.into()));
        out.insert("apiVersion".into(), Value::String(self.api_version.clone()));
        if let Some(time) = &self.time {
            out.insert("time".into(), Value::String(time.clone()));
        }
        out.insert("fieldsType".into(), Value::String(FIELDS_V1.into()));
        out.insert("fieldsV1".into(), self.set.to_fields_v1());
        if let Some(subresource) = &self.subresource {
            out.insert("subresource".into(), Value::String(subresource.clone()));
        }
        Value::Object(out)
    }
}

/// The Unix time of an RFC 3339 timestamp.
fn unix_seconds(time: &str) -> Option<i64> {
    time.parse::<jiff::Timestamp>().ok().map(|t| t.as_second())
}

/// An RFC 3339 timestamp as Kubernetes writes it (UTC, whole seconds); unparsable text is
/// kept as it is.
pub(crate) fn normalize_time(time: &str) -> String {
    match time.parse::<jiff::Timestamp>() {
        Ok(t) => jiff::Timestamp::from_second(t.as_second())
            .map(|t| t.to_string())
            .unwrap_or_else(|_| time.to_owned()),
        Err(_) => time.to_owned(),
    }
}

/// Decodes `metadata.managedFields` as Kubernetes does: every entry needs an operation of
/// `Apply` or `Update`, an API version, `fieldsType: FieldsV1` and a valid field set. A later
/// entry with the identity of an earlier one replaces it.
pub(crate) fn decode(value: &Value) -> Result<Vec<Entry>, String> {
    let list = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Array(list) => list,
        _ => return Err("managedFields must be a list".into()),
    };
    let mut out: Vec<Entry> = Vec::with_capacity(list.len());
    for (index, item) in list.iter().enumerate() {
        let Value::Object(item) = item else {
            return Err(format!("managed fields entry {index} must be an object"));
        };
        let text = |name: &str| -> Result<&str, String> {
            match item.get(name) {
                None | Some(Value::Null) => Ok(""),
                Some(Value::String(s)) => Ok(s),
                Some(_) => Err(format!(
                    "{name} of managed fields entry {index} must be a string"
                )),
            }
        };
        let applied = match text("operation")? {
            OPERATION_APPLY => true,
            OPERATION_UPDATE => false,
            _ => return Err("operation must be `Apply` or `Update`".into()),
        };
        let api_version = text("apiVersion")?;
        if api_version.is_empty() {
            return Err("apiVersion must not be empty".into());
        }
        match text("fieldsType")? {
            FIELDS_V1 => {}
            "" => {
                return Err(format!(
                    "missing fieldsType in managed fields entry {index}"
                ));
            }
            other => {
                return Err(format!(
                    "invalid fieldsType {other:?} in managed fields entry {index}"
                ));
            }
        }
        let set = FieldSet::from_fields_v1(item.get("fieldsV1").unwrap_or(&Value::Null))
            .map_err(|e| format!("error decoding managed fields entry {index}: {e}"))?;
        let time = text("time")?;
        let subresource = text("subresource")?;
        let entry = Entry {
            manager: text("manager")?.to_owned(),
            applied,
            api_version: api_version.to_owned(),
            subresource: (!subresource.is_empty()).then(|| subresource.to_owned()),
            time: (!time.is_empty()).then(|| normalize_time(time)),
            set,
        };
        match out.iter_mut().find(|e| e.same_identity(&entry)) {
            Some(existing) => *existing = entry,
            None => out.push(entry),
        }
    }
    Ok(out)
}

/// Whether a `managedFields` value sent by a client asks to clear the tracking: an empty
/// list, or a list of one empty entry.
pub(crate) fn is_reset(value: &Value) -> bool {
    match value {
        Value::Array(list) if list.is_empty() => true,
        Value::Array(list) if list.len() == 1 => match &list[0] {
            Value::Object(entry) => entry.values().all(|v| match v {
                Value::Null => true,
                Value::String(s) => s.is_empty(),
                _ => false,
            }),
            _ => false,
        },
        _ => false,
    }
}

/// The entries in Kubernetes' order (operation, time, manager, API version, subresource), as
/// the value of `metadata.managedFields`; `None` when there are none.
pub(crate) fn encode(entries: &[Entry]) -> Option<Value> {
    if entries.is_empty() {
        return None;
    }
    let mut sorted: Vec<(i64, &Entry)> = entries.iter().map(|e| (e.seconds(), e)).collect();
    sorted.sort_by(|(ps, p), (qs, q)| {
        q.applied
            .cmp(&p.applied)
            .then_with(|| ps.cmp(qs))
            .then_with(|| p.manager.cmp(&q.manager))
            .then_with(|| p.api_version.cmp(&q.api_version))
            .then_with(|| p.subresource.cmp(&q.subresource))
    });
    Some(Value::Array(
        sorted.into_iter().map(|(_, e)| e.to_json()).collect(),
    ))
}

/// Keeps at most `max` `Update` entries: the oldest are merged, per API version, into an
/// `ancient-changes` entry (Kubernetes' `capManagersManager`).
pub(crate) fn cap_updates(entries: &mut Vec<Entry>, max: usize) {
    let mut updaters: Vec<(i64, Identity)> = entries
        .iter()
        .filter(|e| !e.applied)
        .map(|e| (e.seconds(), e.identity()))
        .collect();
    if updaters.len() <= max {
        return;
    }
    updaters.sort_by(|a, b| match a.0.cmp(&b.0) {
        Ordering::Equal => a.1.cmp(&b.1),
        other => other,
    });
    let position = |entries: &Vec<Entry>, id: &Identity| entries.iter().position(|e| e.is(id));
    let mut first_of_version: BTreeMap<String, Identity> = BTreeMap::new();
    let mut length = updaters.len();
    for (_, id) in updaters {
        if length <= max {
            break;
        }
        let Some(index) = position(entries, &id) else {
            continue;
        };
        let version = entries[index].api_version.clone();
        let Some(first) = first_of_version.get(&version) else {
            first_of_version.insert(version, id);
            continue;
        };
        let bucket = Identity::new(ANCIENT_CHANGES, false, &version, None);
        if position(entries, &bucket).is_none()
            && let Some(first_index) = position(entries, first)
        {
            let first_entry = entries.remove(first_index);
            entries.push(Entry {
                manager: ANCIENT_CHANGES.to_owned(),
                applied: false,
                api_version: version.clone(),
                subresource: None,
                time: first_entry.time,
                set: first_entry.set,
            });
        }
        let Some(index) = position(entries, &id) else {
            continue;
        };
        let merged = entries.remove(index);
        if let Some(bucket_index) = position(entries, &bucket) {
            let target = &mut entries[bucket_index];
            target.set = merged.set.union(&target.set);
            target.time = merged.time;
        }
        length -= 1;
    }
}
