//! Helpers shared by the fuzz targets: how one input is split into a document and a patch, the
//! schema of a document's kind, and the checks several targets make.

use rkube_machinery::schema::{SchemaRef, Schemas};
use serde_json::Value;

/// The line that separates the two parts of a two-part input (document, then patch).
pub const SEPARATOR: &[u8] = b"\n---\n";

/// Splits an input at the first [`SEPARATOR`]: `(document, patch)`. Without one, the whole
/// input is the patch and the document is empty.
pub fn split_pair(data: &[u8]) -> (&[u8], &[u8]) {
    match data.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
        Some(at) => (&data[..at], &data[at + SEPARATOR.len()..]),
        None => (&[], data),
    }
}

/// The `(apiVersion, kind)` of an object, if both are strings.
pub fn type_meta(v: &Value) -> Option<(&str, &str)> {
    Some((v.get("apiVersion")?.as_str()?, v.get("kind")?.as_str()?))
}

/// The schema of the kind `v` names in its `apiVersion` and `kind` (what the API server takes
/// from the request path), or the Pod's when it names none the server knows.
pub fn schema_of(v: &Value) -> SchemaRef<'static> {
    let schemas = Schemas::builtin();
    type_meta(v)
        .and_then(|(api_version, kind)| {
            let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
            schemas.for_kind(group, version, kind)
        })
        .or_else(|| schemas.for_kind("", "v1", "Pod"))
        .expect("the built-in schemas have the Pod")
}

/// Whether `v` has an object key starting with `$` anywhere (a strategic-merge-patch
/// directive: `$patch`, `$retainKeys`, `$setElementOrder/…`, `$deleteFromPrimitiveList/…`).
pub fn has_directive(v: &Value) -> bool {
    match v {
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| k.starts_with('$') || has_directive(v)),
        Value::Array(items) => items.iter().any(has_directive),
        _ => false,
    }
}

/// Whether `v` has a `null` anywhere inside a list.
pub fn has_null_in_list(v: &Value) -> bool {
    fn any_null(v: &Value) -> bool {
        match v {
            Value::Null => true,
            Value::Object(map) => map.values().any(any_null),
            Value::Array(items) => items.iter().any(any_null),
            _ => false,
        }
    }
    match v {
        Value::Object(map) => map.values().any(has_null_in_list),
        Value::Array(items) => items.iter().any(any_null),
        _ => false,
    }
}

/// Asserts that `v` encodes to JSON that parses again (what the API server stores and reads
/// back), to the same value up to the precision of floating-point numbers.
pub fn assert_json_round_trip(v: &Value) {
    let text = serde_json::to_vec(v).expect("a JSON value encodes");
    let back: Value = serde_json::from_slice(&text).unwrap_or_else(|e| {
        panic!(
            "encoded JSON does not parse: {e}: {}",
            String::from_utf8_lossy(&text)
        )
    });
    assert!(
        same_json(v, &back),
        "JSON round trip changed the value:\n{v}\n{back}"
    );
}

/// Equality of JSON values, with numbers that are floats compared up to a relative 1e-12
/// (`serde_json` parses some floats one unit in the last place off).
pub fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => x == y || (x - y).abs() <= 1e-12 * x.abs().max(y.abs()),
                _ => false,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn splits_at_the_first_separator() {
        assert_eq!(
            split_pair(b"{}\n---\n[]\n---\nx"),
            (&b"{}"[..], &b"[]\n---\nx"[..])
        );
        assert_eq!(split_pair(b"[]"), (&b""[..], &b"[]"[..]));
    }

    #[test]
    fn schema_follows_the_kind() {
        let deploy = schema_of(&json!({"apiVersion": "apps/v1", "kind": "Deployment"}));
        assert_eq!(
            deploy.definition_name(),
            Some("io.k8s.api.apps.v1.Deployment")
        );
        let pod = schema_of(&json!({"kind": "Nope"}));
        assert_eq!(pod.definition_name(), Some("io.k8s.api.core.v1.Pod"));
    }

    #[test]
    fn directives_are_found_at_any_depth() {
        assert!(has_directive(&json!({"a": [{"$patch": "delete"}]})));
        assert!(!has_directive(&json!({"a": [{"b": "$patch"}]})));
    }

    #[test]
    fn nulls_in_lists_are_found() {
        assert!(has_null_in_list(&json!({"a": [{"b": {"c": null}}]})));
        assert!(!has_null_in_list(&json!({"a": null, "b": [1]})));
    }

    #[test]
    fn floats_compare_loosely() {
        assert!(same_json(
            &json!({"a": [0.1]}),
            &json!({"a": [0.1000000000000001]})
        ));
        assert!(!same_json(&json!({"a": 1}), &json!({"a": 2})));
        assert!(!same_json(&json!({"a": 1}), &json!({"a": 1, "b": 1})));
    }
}
