//! Label selectors: the `?labelSelector=` string syntax, and `metav1.LabelSelector` objects
//! (`matchLabels` / `matchExpressions`, as in a Deployment's `spec.selector`) when the input is
//! one in JSON. A selector that parses or converts prints (`Display`, the canonical form) as a
//! string that parses to the same selector (up to the order of values) and prints the same.

#![no_main]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as K8sLabelSelector;
use libfuzzer_sys::fuzz_target;
use rkube_machinery::selector::LabelSelector;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(selector) = LabelSelector::parse(text)
    {
        check(&selector);
    }
    if let Ok(object) = serde_json::from_slice::<K8sLabelSelector>(data)
        && let Ok(selector) = LabelSelector::from_k8s(&object)
    {
        check(&selector);
    }
});

fn check(selector: &LabelSelector) {
    let printed = selector.to_string();
    let reparsed = LabelSelector::parse(&printed)
        .unwrap_or_else(|e| panic!("{selector:?} prints as {printed:?}, which fails: {e}"));
    // A selector from an object keeps its values as given (as apimachinery does); parsing
    // sorts and deduplicates them.
    assert_eq!(
        normalized(selector),
        normalized(&reparsed),
        "{printed:?} parses to another selector"
    );
    let again = reparsed.to_string();
    assert_eq!(
        LabelSelector::parse(&again).as_ref(),
        Ok(&reparsed),
        "printing a parsed selector is not canonical: {again:?}"
    );
}

/// The requirements as (key, operator, sorted distinct values).
fn normalized(selector: &LabelSelector) -> Vec<(String, String, Vec<String>)> {
    selector
        .requirements()
        .iter()
        .map(|r| {
            let mut values = r.values().to_vec();
            values.sort();
            values.dedup();
            (r.key().to_string(), r.operator().to_string(), values)
        })
        .collect()
}
