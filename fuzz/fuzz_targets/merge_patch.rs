//! JSON merge patches (RFC 7386, `application/merge-patch+json`): a document, the separator
//! line `---`, then the patch (a JSON object, as the API server requires). Applying the patch
//! twice gives what applying it once gives, and the result round-trips as JSON.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rkube_machinery::{body, patch};

fuzz_target!(|data: &[u8]| {
    let (doc, p) = rkube_fuzz::split_pair(data);
    let Ok(doc) = body::parse_body(doc, false) else {
        return;
    };
    let Ok(p) = body::parse_body(p, false) else {
        return;
    };
    let Ok(once) = patch::apply_patch(patch::PatchType::Merge, &doc, &p, None) else {
        assert!(!p.is_object(), "a merge patch that is an object failed");
        return;
    };
    let twice = patch::merge_patch(&once, &p);
    assert_eq!(once, twice, "a merge patch is not idempotent");
    rkube_fuzz::assert_json_round_trip(&once);
});
