//! Resource quantities (`100m`, `1.5Gi`, `2e3`): a quantity that parses prints canonically as
//! a string that parses to the same value, and printing that again gives a fixed point; Kubernetes' serialization and
//! the JSON form parse back to the same value; arithmetic fails cleanly instead of overflowing.

#![no_main]

use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use libfuzzer_sys::fuzz_target;
use rkube_machinery::quantity::{Quantity, parse_quantity};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(q) = parse_quantity(&K8sQuantity(text.to_string())) else {
        return;
    };
    let canonical = q.canonical();
    let again = Quantity::parse(&canonical)
        .unwrap_or_else(|e| panic!("{text:?} is canonically {canonical:?}, which fails: {e}"));
    assert_eq!(again, q, "{text:?} and its canonical {canonical:?} differ");
    // Not always a fixed point at once, as in Kubernetes: `62.5Ki` prints as `64000` (binary,
    // not a whole number of Ki), which parses as a decimal quantity printing as `64k`.
    let stable = again.canonical();
    assert_eq!(
        Quantity::parse(&stable).map(|q| q.canonical()).as_deref(),
        Ok(stable.as_str()),
        "the canonical form of {text:?} does not settle"
    );

    let k8s = q.to_k8s_string();
    assert_eq!(
        Quantity::parse(&k8s).ok(),
        Some(q.clone()),
        "{text:?} serialized as {k8s:?}"
    );
    let json = serde_json::to_string(&q).expect("a quantity encodes");
    let back: Quantity = serde_json::from_str(&json).expect("a quantity's JSON decodes");
    assert_eq!(back, q);

    let _ = (
        q.to_value(),
        q.to_milli(),
        q.as_approximate_f64(),
        q.signum(),
    );
    if let Ok(sum) = q.checked_add(&q)
        && let Ok(zero) = sum.checked_sub(&q).and_then(|d| d.checked_sub(&q))
    {
        assert!(zero.is_zero(), "{text:?} + itself - itself twice is {zero}");
    }
    assert_eq!(-(-q.clone()), q);
});
