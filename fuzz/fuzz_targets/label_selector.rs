//! Label selectors: the `?labelSelector=` string syntax, and `metav1.LabelSelector` objects
//! (`matchLabels` / `matchExpressions`, as in a Deployment's `spec.selector`) when the input is
//! one in JSON. A selector that parses or converts prints (`Display`, the canonical form) as a
//! string that parses to the same selector and prints the same.

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
    assert_eq!(
        selector.requirements(),
        reparsed.requirements(),
        "{printed:?} parses to another selector"
    );
    assert_eq!(reparsed.to_string(), printed, "printing is not canonical");
}
