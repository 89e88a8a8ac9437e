//! Query parameters read the way Kubernetes reads them (its `runtime` conversions of URL
//! query values), so every client's spelling means the same here as upstream.

/// A boolean query parameter: false only for `0` and `false` in any case, true for anything
/// else — `true`, `True` (the official Python client's spelling), `1`, and an empty value
/// (`?watch`). This is Kubernetes' `Convert_Slice_string_To_bool`.
pub fn bool_value(v: &str) -> bool {
    !(v == "0" || v.eq_ignore_ascii_case("false"))
}

#[cfg(test)]
mod tests {
    use super::bool_value;

    #[test]
    fn booleans_as_kubernetes_reads_them() {
        for t in ["true", "True", "TRUE", "1", "", "yes"] {
            assert!(bool_value(t), "{t:?}");
        }
        for f in ["false", "False", "FALSE", "0"] {
            assert!(!bool_value(f), "{f:?}");
        }
    }
}
