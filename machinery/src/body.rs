//! Request bodies as the API server decodes them: JSON, or YAML when the content type says so,
//! into a `serde_json::Value` ([`parse_body`]), then into the typed k8s-openapi object of the
//! resource ([`decode`]). The messages are the ones the API server returns in its 400s.

use serde::de::DeserializeOwned;
use serde_json::Value;

/// Why a request body could not be parsed or decoded; the `Display` text is the message of the
/// API server's 400 Bad Request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The body is empty or only whitespace.
    #[error("the request body is empty")]
    Empty,
    /// A YAML body is not UTF-8.
    #[error("the YAML body is not UTF-8")]
    YamlNotUtf8,
    /// A YAML body does not parse.
    #[error("error converting YAML to JSON: {0}")]
    Yaml(String),
    /// A JSON body does not parse.
    #[error("the body of the request is not valid JSON: {0}")]
    Json(String),
    /// The body parses but is not a valid object of its kind.
    #[error("{kind} in version \"{version}\" cannot be handled as a {kind}: {message}")]
    Decode {
        /// The kind the request path serves.
        kind: String,
        /// The version (without group) the request path serves.
        version: String,
        /// What the decoder found wrong.
        message: String,
    },
}

/// Parses a request body: JSON, or YAML when `yaml` (the content type is a YAML one).
pub fn parse_body(body: &[u8], yaml: bool) -> Result<Value, BodyError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(BodyError::Empty);
    }
    if yaml {
        let text = std::str::from_utf8(body).map_err(|_| BodyError::YamlNotUtf8)?;
        return serde_saphyr::from_str::<Value>(text).map_err(|e| BodyError::Yaml(e.to_string()));
    }
    serde_json::from_slice(body).map_err(|e| BodyError::Json(e.to_string()))
}

/// Decodes a parsed request object into its typed form `T`, the resource of `kind` in
/// `api_version` (`v1`, `apps/v1`); errors read like Kubernetes'.
pub fn decode<T: DeserializeOwned>(
    v: Value,
    kind: &str,
    api_version: &str,
) -> Result<T, BodyError> {
    serde_json::from_value(v).map_err(|e| BodyError::Decode {
        kind: kind.to_string(),
        version: api_version
            .rsplit('/')
            .next()
            .unwrap_or(api_version)
            .to_string(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::ConfigMap;

    #[test]
    fn bodies_parse_as_json_or_yaml() {
        assert_eq!(parse_body(b"  \n", false), Err(BodyError::Empty));
        assert_eq!(parse_body(b"", true), Err(BodyError::Empty));
        assert!(matches!(parse_body(b"{", false), Err(BodyError::Json(_))));
        assert!(matches!(parse_body(b"a: [", true), Err(BodyError::Yaml(_))));
        assert_eq!(parse_body(b"a: \xff", true), Err(BodyError::YamlNotUtf8));
        let v = parse_body(b"kind: X\nmetadata:\n  name: a\n", true).unwrap();
        assert_eq!(v["metadata"]["name"], "a");
        let v = parse_body(br#"{"kind":"X","metadata":{"name":"a"}}"#, false).unwrap();
        assert_eq!(v["metadata"]["name"], "a");
    }

    #[test]
    fn decode_gives_typed_objects_and_kubernetes_messages() {
        let v = parse_body(b"metadata:\n  name: a\ndata:\n  k: v\n", true).unwrap();
        let cm: ConfigMap = decode(v, "ConfigMap", "v1").unwrap();
        assert_eq!(cm.metadata.name.as_deref(), Some("a"));
        assert_eq!(cm.data.unwrap()["k"], "v");

        let v = parse_body(br#"{"spec":{"replicas":"three"}}"#, false).unwrap();
        let err = decode::<Deployment>(v, "Deployment", "apps/v1").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with(
                "Deployment in version \"v1\" cannot be handled as a Deployment: invalid type"
            ),
            "{msg}"
        );
    }
}
