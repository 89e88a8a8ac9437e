//! Strategic merge patches (`application/strategic-merge-patch+json`) with the schema of the
//! document's kind (its `apiVersion` and `kind`; the Pod's when it names none): a document,
//! the separator line `---`, then the patch. Results round-trip as JSON; without directives
//! (`$patch`, `$retainKeys`, …) a patch is idempotent, and without a schema (and without
//! `null`s in lists) it is a JSON merge patch.

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
    let schema = rkube_fuzz::schema_of(&doc);
    let directives = rkube_fuzz::has_directive(&p);

    let without_schema = patch::strategic_merge_patch(&doc, &p, None);
    // Upstream drops the `null`s of objects in the lists a patch sets (and so does rkube),
    // where a merge patch keeps them.
    if !directives
        && !rkube_fuzz::has_null_in_list(&p)
        && p.is_object()
        && (doc.is_object() || doc.is_null())
    {
        let merged = patch::merge_patch(&doc, &p);
        assert_eq!(
            without_schema.as_ref(),
            Ok(&merged),
            "without a schema, a patch without directives is not a merge patch"
        );
    }

    let Ok(once) = patch::strategic_merge_patch(&doc, &p, Some(schema)) else {
        return;
    };
    assert!(once.is_object(), "a strategic merge patch gave {once}");
    rkube_fuzz::assert_json_round_trip(&once);
    if !directives {
        let twice = patch::strategic_merge_patch(&once, &p, Some(schema));
        assert_eq!(
            Ok(&once),
            twice.as_ref(),
            "a strategic merge patch is not idempotent"
        );
    }
});
