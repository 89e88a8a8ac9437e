//! Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`, what kubectl's
//! typed clients send): decoded with the kind the envelope names, or as a Pod, a Deployment, a
//! Service or a ConfigMap when it names none (the kind of the request path). A decoded body is
//! a JSON object that round-trips.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rkube_machinery::protobuf;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = protobuf::decode(data) {
        assert!(v.is_object(), "decoded to {v}");
        rkube_fuzz::assert_json_round_trip(&v);
    }
    for (api_version, kind) in [
        ("v1", "Pod"),
        ("apps/v1", "Deployment"),
        ("v1", "Service"),
        ("v1", "ConfigMap"),
    ] {
        if let Ok(v) = protobuf::decode_as(data, api_version, kind) {
            assert!(v.is_object(), "decoded to {v}");
            rkube_fuzz::assert_json_round_trip(&v);
        }
    }
});
