//! Request bodies of creates and updates as the API server decodes them: the bytes as JSON and
//! as YAML (`parse_body`), the unknown-field check of `fieldValidation=Strict|Warn`, then the
//! typed Pod, Deployment, Service and ConfigMap (`decode`). A decoded object must survive what
//! the server does next — encode it to JSON for storage and decode it again — unchanged.

#![no_main]

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use libfuzzer_sys::fuzz_target;
use rkube_machinery::body;
use rkube_machinery::schema::{Schemas, unknown_fields};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    for yaml in [false, true] {
        let Ok(v) = body::parse_body(data, yaml) else {
            continue;
        };
        rkube_fuzz::assert_json_round_trip(&v);
        check::<Pod>(&v, "", "v1", "Pod");
        check::<Deployment>(&v, "apps", "v1", "Deployment");
        check::<Service>(&v, "", "v1", "Service");
        check::<ConfigMap>(&v, "", "v1", "ConfigMap");
    }
});

fn check<T>(v: &Value, group: &str, version: &str, kind: &str)
where
    T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug,
{
    let schema = Schemas::builtin()
        .for_kind(group, version, kind)
        .expect("a built-in kind");
    unknown_fields(schema, v);
    let api_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let Ok(obj) = body::decode::<T>(v.clone(), kind, &api_version) else {
        return;
    };
    // Stored as JSON, read back (through a `Value`, the decoder `decode` instantiates: one
    // copy of each kind's deserializer keeps the build small).
    let stored = serde_json::to_value(&obj).expect("a typed object encodes");
    let back: T = body::decode(stored.clone(), kind, &api_version)
        .unwrap_or_else(|e| panic!("a stored {kind} does not decode: {e}: {stored}"));
    assert_eq!(obj, back, "a {kind} changed through storage");
}
