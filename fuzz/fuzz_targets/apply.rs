//! Server-side apply (`application/apply-patch+yaml`) with the schema of the applied object's
//! kind: the live object as stored (JSON; empty for a create), the separator line `---`, then
//! the applied configuration (YAML, as the API server parses it). Creating never conflicts; a
//! forced apply followed by the same apply of the same manager does not conflict, and changes
//! nothing when the object's fields are tracked; results round-trip as JSON.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rkube_machinery::apply::{self, ApplyError, Manager};
use rkube_machinery::body;

const TIME: &str = "2025-01-02T03:04:05Z";

fuzz_target!(|data: &[u8]| {
    let (live, applied) = rkube_fuzz::split_pair(data);
    let live = if live.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        match body::parse_body(live, false) {
            Ok(v) => Some(v),
            Err(_) => return,
        }
    };
    let Ok(applied) = body::parse_body(applied, true) else {
        return;
    };
    let api_version = rkube_fuzz::type_meta(&applied).map_or("v1", |(v, _)| v);
    let schema = rkube_fuzz::schema_of(&applied);
    let m = Manager {
        name: "fuzz",
        api_version,
        subresource: None,
        time: TIME,
    };

    match apply::apply(None, &applied, &m, false, Some(schema)) {
        Ok(created) => rkube_fuzz::assert_json_round_trip(&created),
        Err(ApplyError::Conflicts(c)) => panic!("creating conflicts: {c:?}"),
        Err(ApplyError::Invalid { .. }) => {}
    }

    let Some(live) = live else { return };
    let Ok(once) = apply::apply(Some(&live), &applied, &m, true, Some(schema)) else {
        return;
    };
    rkube_fuzz::assert_json_round_trip(&once);
    let twice = apply::apply(Some(&once), &applied, &m, false, Some(schema))
        .unwrap_or_else(|e| panic!("applying the same configuration again failed: {e}"));
    // When no manager is left owning anything (the configuration sets nothing but the name),
    // the object has no managedFields, and the next apply first records the fields it finds
    // as the `before-first-apply` manager's, as upstream does.
    let tracked = once["metadata"]["managedFields"]
        .as_array()
        .is_some_and(|entries| !entries.is_empty());
    if tracked {
        assert_eq!(once, twice, "applying the same configuration again changed");
    }
});
