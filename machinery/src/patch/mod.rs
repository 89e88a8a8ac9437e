//! The Kubernetes patch types over `serde_json::Value`: JSON patch (RFC 6902), JSON merge
//! patch (RFC 7386) and strategic merge patch, plus the three-way strategic merge patch
//! `kubectl apply` (client-side) computes.
//!
//! Strategic merge patch follows Kubernetes' `strategicpatch` package: lists with a merge key
//! merge by that key, `$patch: replace|delete|merge`, `$retainKeys`, `$setElementOrder/<field>`,
//! `$deleteFromPrimitiveList/<field>` directives, the same element ordering. The patch metadata
//! (strategy, merge key) comes from a [`SchemaRef`]; where there is
//! none (unknown fields, no schema) objects merge like a JSON merge patch and lists are
//! replaced.

mod diff;
mod loc;
mod strategic;
#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

use crate::schema::SchemaRef;

pub use diff::{create_three_way_merge_patch, create_two_way_merge_patch};
pub use strategic::strategic_merge_patch;

/// Most operations a JSON patch may have (as the Kubernetes API server allows).
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// Why a patch could not be applied or computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The patch document does not have the shape its type requires.
    #[error("invalid patch: {0}")]
    InvalidPatch(String),
    /// A JSON patch operation is malformed.
    #[error("invalid JSON patch operation {index}: {message}")]
    InvalidOperation {
        /// Index of the operation in the patch.
        index: usize,
        /// What is wrong with it.
        message: String,
    },
    /// A JSON patch operation could not be applied.
    #[error("JSON patch operation {index} ({op} {path}) failed: {message}")]
    OperationFailed {
        /// Index of the operation in the patch.
        index: usize,
        /// The operation (`add`, `remove`, `replace`, `move`, `copy`, `test`).
        op: String,
        /// The operation's path.
        path: String,
        /// Why it failed.
        message: String,
    },
    /// The JSON patch has more than [`MAX_JSON_PATCH_OPERATIONS`] operations.
    #[error("the JSON patch has {0} operations, more than the {MAX_JSON_PATCH_OPERATIONS} allowed")]
    TooManyOperations(usize),
    /// A strategic-merge-patch directive is malformed.
    #[error("invalid strategic merge patch at {path}: {message}")]
    BadDirective {
        /// Where in the patch (`.spec.containers[1]`).
        path: String,
        /// What is wrong.
        message: String,
    },
    /// An item of a list merged by key lacks the key.
    #[error("invalid strategic merge patch at {path}: list item has no merge key {key:?}: {item}")]
    MissingMergeKey {
        /// Where in the patch or document.
        path: String,
        /// The merge key.
        key: String,
        /// The item, as JSON.
        item: String,
    },
    /// The document and the patch (or the documents of a diff) do not fit together.
    #[error("cannot merge at {path}: {message}")]
    Mismatch {
        /// Where.
        path: String,
        /// What does not fit.
        message: String,
    },
    /// The patch type is not supported by this function.
    #[error("unsupported patch type {0}")]
    Unsupported(String),
}

/// The patch types of `PATCH` requests, by content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json` (RFC 6902).
    Json,
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/strategic-merge-patch+json`.
    StrategicMerge,
    /// `application/apply-patch+yaml` (server-side apply, not handled here).
    Apply,
}

impl PatchType {
    /// The patch type of a request's content type (parameters such as `; charset=utf-8` are
    /// ignored), if it is one.
    pub fn from_content_type(content_type: &str) -> Option<PatchType> {
        let media = content_type.split(';').next().unwrap_or("").trim();
        match media.to_ascii_lowercase().as_str() {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::StrategicMerge),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
                Some(PatchType::Apply)
            }
            _ => None,
        }
    }

    /// The content type of the patch type.
    pub fn content_type(self) -> &'static str {
        match self {
            PatchType::Json => "application/json-patch+json",
            PatchType::Merge => "application/merge-patch+json",
            PatchType::StrategicMerge => "application/strategic-merge-patch+json",
            PatchType::Apply => "application/apply-patch+yaml",
        }
    }
}

/// Applies a patch of the given type. `schema` is used by strategic merge patches only;
/// [`PatchType::Apply`] is rejected with [`PatchError::Unsupported`].
pub fn apply_patch(
    patch_type: PatchType,
    doc: &Value,
    patch: &Value,
    schema: Option<SchemaRef<'_>>,
) -> Result<Value, PatchError> {
    match patch_type {
        PatchType::Json => json_patch(doc, patch),
        PatchType::Merge => {
            if !patch.is_object() {
                return Err(PatchError::InvalidPatch(
                    "a merge patch for an object must be a JSON object".into(),
                ));
            }
            Ok(merge_patch(doc, patch))
        }
        PatchType::StrategicMerge => strategic_merge_patch(doc, patch, schema),
        PatchType::Apply => Err(PatchError::Unsupported(patch_type.content_type().into())),
    }
}

/// Applies a JSON patch (RFC 6902): a list of `add`, `remove`, `replace`, `move`, `copy` and
/// `test` operations, all or nothing. Errors name the operation that failed.
pub fn json_patch(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    let ops = patch.as_array().ok_or_else(|| {
        PatchError::InvalidPatch("a JSON patch must be a list of operations".into())
    })?;
    if ops.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(PatchError::TooManyOperations(ops.len()));
    }
    let mut parsed = Vec::with_capacity(ops.len());
    for (index, op) in ops.iter().enumerate() {
        let op = serde_json::from_value::<json_patch::PatchOperation>(op.clone()).map_err(|e| {
            PatchError::InvalidOperation {
                index,
                message: e.to_string(),
            }
        })?;
        parsed.push(op);
    }
    // All or nothing: the operations apply to a copy, dropped on failure. (Not
    // `json_patch::patch`, which undoes them in place instead and panics when the undo fails —
    // as it does for a `move` that fails after an operation on its `from` path.)
    let mut out = doc.clone();
    json_patch::patch_unsafe(&mut out, &parsed).map_err(|e| PatchError::OperationFailed {
        index: e.operation,
        op: parsed
            .get(e.operation)
            .map(op_name)
            .unwrap_or("?")
            .to_owned(),
        path: e.path.to_string(),
        message: e.kind.to_string(),
    })?;
    Ok(out)
}

fn op_name(op: &json_patch::PatchOperation) -> &'static str {
    use json_patch::PatchOperation as Op;
    match op {
        Op::Add(_) => "add",
        Op::Remove(_) => "remove",
        Op::Replace(_) => "replace",
        Op::Move(_) => "move",
        Op::Copy(_) => "copy",
        Op::Test(_) => "test",
    }
}

/// Applies a JSON merge patch (RFC 7386): objects merge recursively, `null` deletes a key,
/// anything else (lists included) replaces.
pub fn merge_patch(doc: &Value, patch: &Value) -> Value {
    merge_patch_owned(doc.clone(), patch)
}

fn merge_patch_owned(doc: Value, patch: &Value) -> Value {
    let Value::Object(patch) = patch else {
        return patch.clone();
    };
    let mut target = match doc {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            let current = target.remove(key).unwrap_or(Value::Null);
            target.insert(key.clone(), merge_patch_owned(current, value));
        }
    }
    Value::Object(target)
}
