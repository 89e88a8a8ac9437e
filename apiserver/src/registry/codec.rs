//! Object encoding: stored objects are JSON without `metadata.resourceVersion` (the store's
//! revision is the resourceVersion); reads splice it in without re-parsing the object.

use bytes::{BufMut, Bytes, BytesMut};
use rkube_machinery::body;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ApiError;

const META: &[u8] = b"\"metadata\":{";

/// `raw` (a stored object) with `metadata.resourceVersion` set to `rev`.
///
/// Stored objects are compact JSON without resourceVersion (see [`encode_object`]), so
/// inserting it right after the top-level `"metadata":{` is a splice; anything else falls back
/// to a parse.
pub fn with_resource_version(raw: &[u8], rev: i64) -> Bytes {
    if let Some(insert_at) = top_level_metadata(raw) {
        let rv = format!("\"resourceVersion\":\"{rev}\"");
        let mut out = BytesMut::with_capacity(raw.len() + rv.len() + 1);
        out.put_slice(&raw[..insert_at]);
        out.put_slice(rv.as_bytes());
        if raw.get(insert_at) != Some(&b'}') {
            out.put_u8(b',');
        }
        out.put_slice(&raw[insert_at..]);
        return out.freeze();
    }
    match serde_json::from_slice::<Value>(raw) {
        Ok(mut v) => {
            set_resource_version(&mut v, rev);
            Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
        }
        Err(_) => Bytes::copy_from_slice(raw),
    }
}

/// The position just after the `{` of the top-level `"metadata"` object, if any.
fn top_level_metadata(raw: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
        } else {
            match b {
                b'"' if depth == 1 && raw[i..].starts_with(META) => return Some(i + META.len()),
                b'"' => in_string = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        i += 1;
    }
    None
}

/// Sets `metadata.resourceVersion` in a JSON object.
pub fn set_resource_version(v: &mut Value, rev: i64) {
    if let Some(obj) = v.as_object_mut() {
        let meta = obj
            .entry("metadata")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(m) = meta.as_object_mut() {
            m.insert("resourceVersion".into(), Value::String(rev.to_string()));
        }
    }
}

/// Encodes an object for storage: JSON, without resourceVersion (the caller clears it; see
/// [`encode_object`]). The result is an exact-size copy: the encoder's buffer grows by
/// doubling, and a `Bytes` made from it would keep the spare capacity (up to as much again)
/// for as long as the watch cache holds the object.
pub fn encode<T: Serialize>(obj: &T) -> Result<Bytes, ApiError> {
    serde_json::to_vec(obj)
        .map(Bytes::from)
        .map_err(|e| ApiError::internal(format!("cannot encode object: {e}")))
}

/// Encodes a typed object for storage, without resourceVersion and selfLink (taken out for
/// the encoding and put back: the object is not copied).
pub fn encode_object<T>(obj: &mut T) -> Result<Bytes, ApiError>
where
    T: Serialize
        + k8s_openapi::Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>,
{
    let m = obj.metadata_mut();
    let resource_version = m.resource_version.take();
    let self_link = m.self_link.take();
    let encoded = encode(obj);
    let m = obj.metadata_mut();
    m.resource_version = resource_version;
    m.self_link = self_link;
    encoded
}

/// Decodes a request object into its typed form; errors read like Kubernetes'.
pub fn decode<T: DeserializeOwned>(v: Value, kind: &str, api_version: &str) -> Result<T, ApiError> {
    body::decode(v, kind, api_version).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// Parses a request body: JSON, or YAML when the content type says so.
pub fn parse_body(body: &[u8], yaml: bool) -> Result<Value, ApiError> {
    body::parse_body(body, yaml).map_err(|e| ApiError::bad_request(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splices_resource_version() {
        let raw = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"},"data":{}}"#;
        let out = with_resource_version(raw, 42);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["metadata"]["resourceVersion"], "42");
        assert_eq!(v["metadata"]["name"], "a");
        let empty = with_resource_version(br#"{"kind":"X","metadata":{}}"#, 7);
        let v: Value = serde_json::from_slice(&empty).unwrap();
        assert_eq!(v["metadata"]["resourceVersion"], "7");
        // A nested "metadata" before the top-level one is not the object's.
        let nested = with_resource_version(
            br#"{"a":{"metadata":{}},"b":"\"metadata\":{","metadata":{"name":"n"}}"#,
            9,
        );
        let v: Value = serde_json::from_slice(&nested).unwrap();
        assert_eq!(v["metadata"]["resourceVersion"], "9");
        assert!(v["a"]["metadata"].get("resourceVersion").is_none());
        let none = with_resource_version(br#"{"kind":"X"}"#, 8);
        let v: Value = serde_json::from_slice(&none).unwrap();
        assert_eq!(v["metadata"]["resourceVersion"], "8");
    }

    #[test]
    fn encode_strips_resource_version() {
        let cm = k8s_openapi::api::core::v1::ConfigMap {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some("a".into()),
                resource_version: Some("5".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let mut cm = cm;
        let b = encode_object(&mut cm).unwrap();
        assert!(!String::from_utf8_lossy(&b).contains("resourceVersion"));
        assert_eq!(cm.metadata.resource_version.as_deref(), Some("5"));
        assert!(
            String::from_utf8_lossy(&b)
                .starts_with(r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"#)
        );
    }

    #[test]
    fn bodies_parse_as_json_or_yaml() {
        assert!(parse_body(b"{", false).is_err());
        assert!(parse_body(b"  ", false).is_err());
        let v = parse_body(b"kind: X\nmetadata:\n  name: a\n", true).unwrap();
        assert_eq!(v["metadata"]["name"], "a");
    }
}
