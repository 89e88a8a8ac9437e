//! Metadata-only responses: `meta.k8s.io/v1` `PartialObjectMetadata` for an object (a get, a
//! write's answer, each watch event) and `PartialObjectMetadataList` for a list, as clients
//! that only need names, labels, owners and finalizers ask (`Accept:
//! application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1`) — client-go's metadata
//! informers (the garbage collector's) and kube-rs' `get_metadata`, `list_metadata` and
//! `Api<PartialObjectMeta<K>>`.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::list::Listed;
use crate::error::ApiError;

/// The `PartialObjectMetadata` of a stored object, encoded: the stored `metadata` copied as it
/// is (the rest of the object only skipped over, nothing of it built) — what a get, a write's
/// answer, each watch event and each list item of a metadata-only client carry.
pub fn object(raw: &[u8]) -> Result<Bytes, ApiError> {
    #[derive(Deserialize)]
    struct RawMetadata<'a> {
        #[serde(borrow)]
        metadata: Option<&'a RawValue>,
    }
    let m: RawMetadata<'_> =
        serde_json::from_slice(raw).map_err(|e| ApiError::internal(e.to_string()))?;
    let metadata = m.metadata.map_or("{}", RawValue::get);
    let mut out = Vec::with_capacity(metadata.len() + 80);
    out.extend_from_slice(
        br#"{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":"#,
    );
    out.extend_from_slice(metadata.as_bytes());
    out.push(b'}');
    Ok(Bytes::from(out))
}

/// [`object`] as a JSON value (for a Table's rows).
pub fn object_value(raw: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(&object(raw)?).map_err(|e| ApiError::internal(e.to_string()))
}

/// A `PartialObjectMetadataList` of listed objects (each item as [`object`] encodes it).
pub fn list(listed: &Listed) -> Result<Bytes, ApiError> {
    let mut out = format!(
        r#"{{"kind":"PartialObjectMetadataList","apiVersion":"meta.k8s.io/v1","metadata":{},"items":["#,
        listed.meta()
    )
    .into_bytes();
    for (i, raw) in listed.items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&object(raw)?);
    }
    out.extend_from_slice(b"]}");
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        let encoded: Value = serde_json::from_slice(&object(raw).unwrap()).unwrap();
        assert_eq!(encoded, v);
        // Whitespace and escapes inside the stored metadata stay valid JSON.
        let spaced = br#"{ "metadata" : {"name": "q\"x", "annotations": {"k": "a\nb"}} , "spec": {"x": [1, {"metadata": 2}]}}"#;
        let encoded: Value = serde_json::from_slice(&object(spaced).unwrap()).unwrap();
        assert_eq!(
            encoded["metadata"],
            json!({"name": "q\"x", "annotations": {"k": "a\nb"}})
        );
        assert_eq!(encoded["kind"], "PartialObjectMetadata");
        let l: Value = serde_json::from_slice(&list(&listed).unwrap()).unwrap();
        assert_eq!(l["kind"], "PartialObjectMetadataList");
        assert_eq!(
            l["metadata"],
            json!({"resourceVersion": "9", "continue": "c", "remainingItemCount": 4})
        );
        assert_eq!(l["items"][0], v);
    }
}
