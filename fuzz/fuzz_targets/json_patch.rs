//! JSON patches (RFC 6902, `application/json-patch+json`): a document, the separator line
//! `---`, then the patch, each parsed as the API server parses bodies. A patch either fails or
//! gives JSON that round-trips; applying it all at once is applying its operations one after
//! the other, and when an operation fails, the error names it and the ones before it apply.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rkube_machinery::body;
use rkube_machinery::patch::{self, PatchError};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let (doc, p) = rkube_fuzz::split_pair(data);
    let Ok(doc) = body::parse_body(doc, false) else {
        return;
    };
    let Ok(Value::Array(ops)) = body::parse_body(p, false) else {
        return;
    };
    let whole = patch::json_patch(&doc, &Value::Array(ops.clone()));
    if let Err(PatchError::InvalidOperation { index, .. }) = &whole {
        // Every operation is read before any is applied: the first malformed one is named.
        for (i, op) in ops[..=*index].iter().enumerate() {
            let alone = patch::json_patch(&Value::Null, &Value::Array(vec![op.clone()]));
            assert_eq!(
                matches!(alone, Err(PatchError::InvalidOperation { .. })),
                i == *index,
                "operation {i} of a patch failing with {whole:?}: {alone:?}"
            );
        }
        return;
    }
    if ops.len() > patch::MAX_JSON_PATCH_OPERATIONS {
        assert!(matches!(whole, Err(PatchError::TooManyOperations(_))));
        return;
    }
    let mut step = doc.clone();
    for (i, op) in ops.iter().enumerate() {
        match patch::json_patch(&step, &Value::Array(vec![op.clone()])) {
            Ok(next) => step = next,
            Err(err) => {
                let Err(PatchError::OperationFailed { index, .. }) = &whole else {
                    panic!("operation {i} fails alone ({err}), the patch gives {whole:?}");
                };
                assert_eq!(*index, i, "{whole:?} names the wrong operation");
                let before = Value::Array(ops[..i].to_vec());
                assert_eq!(patch::json_patch(&doc, &before), Ok(step));
                return;
            }
        }
    }
    let whole = whole.unwrap_or_else(|e| panic!("every operation applies, the patch fails: {e}"));
    assert_eq!(
        whole, step,
        "the patch and its operations one by one differ"
    );
    rkube_fuzz::assert_json_round_trip(&whole);
});
