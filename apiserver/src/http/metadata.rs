//! Metadata-only responses: `meta.k8s.io/v1` `PartialObjectMetadata` for an object (a get, a
//! write's answer, each watch event) and `PartialObjectMetadataList` for a list, as clients
//! that only need names, labels, owners and finalizers ask (`Accept:
//! application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1`) — client-go's metadata
//! informers (the garbage collector's) and kube-rs' `get_metadata`, `list_metadata` and
//! `Api<PartialObjectMeta<K>>`.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::list::Listed;
use crate::error::ApiError;

#[derive(Deserialize)]
struct OnlyMetadata {
    #[serde(default)]
    metadata: Value,
}

/// The `PartialObjectMetadata` of a stored object.
pub fn object_value(raw: &[u8]) -> Result<Value, ApiError> {
    let m: OnlyMetadata =
        serde_json::from_slice(raw).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": m.metadata,
    }))
}

/// [`object_value`], encoded.
pub fn object(raw: &[u8]) -> Result<Bytes, ApiError> {
    Ok(Bytes::from(object_value(raw)?.to_string()))
}

/// A `PartialObjectMetadataList` of listed objects.
pub fn list(listed: &Listed) -> Result<Bytes, ApiError> {
    let meta = listed.meta();
    let items = listed
        .items
        .iter()
        .map(|raw| object_value(raw))
        .collect::<Result<Vec<_>, _>>()?;
    let list = json!({
        "kind": "PartialObjectMetadataList",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "items": items,
    });
    Ok(Bytes::from(list.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_metadata_and_nothing_else() {
        let raw = br#"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p","resourceVersion":"7","labels":{"a":"b"}},"spec":{"containers":[]},"status":{}}"#;
        let v = object_value(raw).unwrap();
        assert_eq!(
            v,
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                   "metadata": {"name": "p", "resourceVersion": "7", "labels": {"a": "b"}}})
        );
        let listed = Listed {
            items: vec![Bytes::from_static(raw)],
            revision: 9,
            continue_token: Some("c".into()),
            remaining_item_count: Some(4),
        };
        let l: Value = serde_json::from_slice(&list(&listed).unwrap()).unwrap();
        assert_eq!(l["kind"], "PartialObjectMetadataList");
        assert_eq!(
            l["metadata"],
            json!({"resourceVersion": "9", "continue": "c", "remainingItemCount": 4})
        );
        assert_eq!(l["items"][0], v);
    }
}
