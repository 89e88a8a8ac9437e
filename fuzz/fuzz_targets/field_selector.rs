//! Field selectors (`?fieldSelector=`): a selector that parses prints as a string that parses
//! to the same terms, and escaping a value then unescaping it gives the value back.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rkube_machinery::selector::{FieldSelector, escape_value, unescape_value};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    assert_eq!(
        unescape_value(&escape_value(text)).as_deref(),
        Ok(text),
        "escaping does not round-trip"
    );
    let Ok(selector) = FieldSelector::parse(text) else {
        return;
    };
    let printed = selector.to_string();
    let reparsed = FieldSelector::parse(&printed)
        .unwrap_or_else(|e| panic!("{selector:?} prints as {printed:?}, which fails: {e}"));
    // Parsing orders terms by their text, which printing may change (`\,` sorts before `a`).
    let mut a = selector.requirements().to_vec();
    let mut b = reparsed.requirements().to_vec();
    a.sort_by_key(ToString::to_string);
    b.sort_by_key(ToString::to_string);
    assert_eq!(a, b, "{printed:?} parses to other terms");
});
