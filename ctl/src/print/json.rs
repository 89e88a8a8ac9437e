//! JSON as Go's `encoding/json` writes it, which kubectl's output and annotations use: keys in
//! byte order, `<`, `>`, `&`, U+2028 and U+2029 escaped, `\u00XX` for other control
//! characters, integral floats without a fraction. `-o json` is the indented form (4 spaces,
//! like `json.MarshalIndent`); the compact form is the last-applied-configuration annotation.

use serde_json::Value;

/// Compact JSON, as `json.Marshal` writes it.
pub fn to_compact(v: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, v, None, 0, None);
    out
}

/// Indented JSON with 4 spaces and a trailing newline, as `kubectl get -o json` prints it.
pub fn to_pretty(v: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, v, Some("    "), 0, None);
    out.push('\n');
    out
}

/// Indented JSON of an object rkubectl built itself (`create deployment …`, `expose`), with
/// keys in the field order of the Go types, which is how kubectl prints the typed objects of
/// its generators (objects read from the server are printed with sorted keys instead).
pub fn to_pretty_struct_order(v: &Value) -> String {
    to_pretty_in_order(v, GO_FIELD_ORDER)
}

/// Indented JSON with the keys in the order of `fields` (others after them, sorted).
pub fn to_pretty_in_order(v: &Value, fields: &[&str]) -> String {
    let mut out = String::new();
    write_value(&mut out, v, Some("    "), 0, Some(fields));
    out.push('\n');
    out
}

/// The field order of the Go types (ObjectMeta, DeploymentSpec, Container, ServiceSpec,
/// ServicePort, ConfigMap, Secret…) behind the objects kubectl's generators print. One list
/// fits all of them because no two of those types order a shared pair of fields differently.
const GO_FIELD_ORDER: &[&str] = &[
    "kind",
    "apiVersion",
    "metadata",
    "name",
    "generateName",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "immutable",
    "data",
    "stringData",
    "binaryData",
    "spec",
    "replicas",
    "image",
    "ports",
    "containerPort",
    "protocol",
    "port",
    "targetPort",
    "nodePort",
    "selector",
    "matchLabels",
    "matchExpressions",
    "clusterIP",
    "externalName",
    "template",
    "strategy",
    "containers",
    "resources",
    "type",
    "status",
    "loadBalancer",
];

/// How an object's keys are ordered: sorted (`None`, Go's maps), or by a field list.
type Order<'a> = Option<&'a [&'a str]>;

fn compare_keys(order: Order<'_>, a: &str, b: &str) -> std::cmp::Ordering {
    let Some(fields) = order else {
        return a.cmp(b);
    };
    let rank = |k: &str| fields.iter().position(|f| *f == k).unwrap_or(usize::MAX);
    rank(a).cmp(&rank(b)).then_with(|| a.cmp(b))
}

fn newline(out: &mut String, indent: Option<&str>, level: usize) {
    if let Some(ind) = indent {
        out.push('\n');
        for _ in 0..level {
            out.push_str(ind);
        }
    }
}

fn write_value(out: &mut String, v: &Value, indent: Option<&str>, level: usize, order: Order<'_>) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&number(n)),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, indent, level + 1);
                write_value(out, item, indent, level + 1, order);
            }
            newline(out, indent, level);
            out.push(']');
        }
        Value::Object(map) => {
            if map.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push('{');
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| compare_keys(order, a, b));
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, indent, level + 1);
                write_string(out, k);
                out.push(':');
                if indent.is_some() {
                    out.push(' ');
                }
                write_value(out, &map[k], indent, level + 1, order);
            }
            newline(out, indent, level);
            out.push('}');
        }
    }
}

/// A number as Go prints a float64 or integer.
pub fn number(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    if f.fract() == 0.0 && f.abs() < 1e21 {
        return format!("{}", f as i128);
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        // Go uses exponent form with at least two exponent digits: 1e-07.
        let s = format!("{f:e}");
        if let Some((m, e)) = s.split_once('e') {
            let (sign, digits) = match e.strip_prefix('-') {
                Some(d) => ("-", d),
                None => ("+", e),
            };
            return format!("{m}e{sign}{digits:0>2}");
        }
        return s;
    }
    format!("{f}")
}

/// Writes a JSON string literal with Go's escaping.
pub fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn compact_sorts_and_escapes_like_go() {
        let v = json!({"b": 1, "a": "<x> & y\u{8}", "c": [], "d": {}, "e": 1.0, "f": 0.5});
        assert_eq!(
            to_compact(&v),
            r#"{"a":"\u003cx\u003e \u0026 y\u0008","b":1,"c":[],"d":{},"e":1,"f":0.5}"#
        );
    }

    #[test]
    fn pretty_uses_four_spaces() {
        let v = json!({"kind": "List", "items": [{"a": null}], "metadata": {}});
        assert_eq!(
            to_pretty(&v),
            "{\n    \"items\": [\n        {\n            \"a\": null\n        }\n    ],\n    \"kind\": \"List\",\n    \"metadata\": {}\n}\n"
        );
    }

    #[test]
    fn small_and_large_floats_use_go_exponents() {
        assert_eq!(
            number(&serde_json::Number::from_f64(1e-7).unwrap()),
            "1e-07"
        );
        assert_eq!(
            number(&serde_json::Number::from_f64(2.5e22).unwrap()),
            "2.5e+22"
        );
    }
}
