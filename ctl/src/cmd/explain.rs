//! `explain TYPE[.FIELD…]`: field documentation from the server's OpenAPI v3 documents
//! (`/openapi/v3` → the group-version document → the schema of the kind its resource paths
//! name), rendered the way kubectl's `plaintext` explain template renders it: the same
//! sections, the same type hints (`[]Container`, `map[string]string`, `Object`), enums,
//! descriptions of a field and of the type it refers to, word wrapping at 76/78 columns with
//! go-wordwrap's rules, `--recursive` field trees, and the errors of unknown fields.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::cli::ExplainArgs;
use crate::client::Ctx;
use crate::error::{CtlError, Result};
use crate::output::out;

const REF_PREFIX: &str = "#/components/schemas/";

/// Runs `explain`.
pub async fn run(ctx: &Ctx, args: &ExplainArgs) -> Result<()> {
    let mut parts = args.resource.split('.');
    let ty = parts.next().unwrap_or_default();
    let fields: Vec<&str> = parts.filter(|p| !p.is_empty()).collect();
    let mut info = ctx.resolve(ty).await.map_err(|e| match e {
        CtlError::Mapping(m) => CtlError::Plain(m),
        other => other,
    })?;
    if let Some(av) = &args.api_version {
        let (g, v) = av.split_once('/').unwrap_or(("", av));
        info = ctx
            .discovery()
            .await?
            .resources
            .iter()
            .find(|r| r.group == g && r.version == v && r.resource == info.resource)
            .cloned()
            .ok_or_else(|| {
                CtlError::Other(format!(
                    "couldn't find resource for \"{g}/{v}, Resource={}\"",
                    info.resource
                ))
            })?;
    }
    let index = ctx.get_json("/openapi/v3").await?;
    let key = if info.group.is_empty() {
        format!("api/{}", info.version)
    } else {
        format!("apis/{}/{}", info.group, info.version)
    };
    let url = index["paths"][&key]["serverRelativeURL"]
        .as_str()
        .ok_or_else(|| CtlError::Other(format!("the server has no OpenAPI document for {key}")))?;
    let doc = ctx.get_json(url).await?;
    let (text, err) = Explainer {
        doc: &doc,
        recursive: args.recursive,
    }
    .explain(&info.group, &info.version, &info.resource, &fields);
    out(&text);
    match err {
        None => Ok(()),
        Some(e) => Err(CtlError::Other(e)),
    }
}

/// The template's walk over one OpenAPI v3 document.
struct Explainer<'a> {
    doc: &'a Value,
    recursive: bool,
}

/// `a` when it is "truthy" in Go templates (present, not null/false/empty), else `None`.
fn truthy(v: &Value) -> Option<&Value> {
    match v {
        Value::Null | Value::Bool(false) => None,
        Value::String(s) if s.is_empty() => None,
        Value::Array(a) if a.is_empty() => None,
        Value::Object(m) if m.is_empty() => None,
        Value::Number(n) if n.as_f64() == Some(0.0) => None,
        other => Some(other),
    }
}

/// A map schema's value schema (`additionalProperties` that is a schema, not a bool).
fn additional(s: &Value) -> Option<&Value> {
    truthy(&s["additionalProperties"]).filter(|v| !v.is_boolean())
}

impl<'a> Explainer<'a> {
    fn resolve_ref(&self, r: &Value) -> Option<&'a Value> {
        let name = r.as_str()?.strip_prefix(REF_PREFIX)?;
        let name = percent_decode(name);
        let s = &self.doc["components"]["schemas"][name.as_str()];
        (!s.is_null()).then_some(s)
    }

    /// The whole output, and the error to print after it (kubectl writes the header first).
    fn explain(
        &self,
        group: &str,
        version: &str,
        resource: &str,
        path: &[&str],
    ) -> (String, Option<String>) {
        let prefix = if group.is_empty() {
            "/api".to_string()
        } else {
            format!("/apis/{group}")
        };
        let searches = [
            format!("{prefix}/{version}/{resource}"),
            format!("{prefix}/{version}/{resource}/{{name}}"),
            format!("{prefix}/{version}/namespaces/{{namespace}}/{resource}"),
            format!("{prefix}/{version}/namespaces/{{namespace}}/{resource}/{{name}}"),
        ];
        let mut gvk: Option<&Value> = None;
        'find: for p in &searches {
            let el = &self.doc["paths"][p.as_str()];
            for m in ["get", "post", "put", "patch", "delete"] {
                if let Some(g) = truthy(&el[m]["x-kubernetes-group-version-kind"]) {
                    gvk = Some(g);
                    break 'find;
                }
            }
        }
        let Some(gvk) = gvk else {
            return (
                String::new(),
                Some(format!(
                    "GVR ({group}/{version}, Resource={resource}) not found in OpenAPI schema"
                )),
            );
        };
        let mut out = String::new();
        let g = gvk["group"].as_str().unwrap_or_default();
        if !g.is_empty() {
            out.push_str(&format!("GROUP:      {g}\n"));
        }
        out.push_str(&format!(
            "KIND:       {}\nVERSION:    {}\n\n",
            gvk["kind"].as_str().unwrap_or_default(),
            gvk["version"].as_str().unwrap_or_default()
        ));
        // The first schema (in key order) that declares this GVK.
        let schema = self.doc["components"]["schemas"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(_, s)| s)
            .find(|s| {
                s["x-kubernetes-group-version-kind"]
                    .as_array()
                    .is_some_and(|a| a.contains(gvk))
            });
        let Some(schema) = schema else {
            return (out, Some(format!("GVK {gvk} not found in OpenAPI schema")));
        };
        let body = self.output(schema, &BTreeSet::new(), path);
        if body.is_empty() {
            let field = path.last().copied().unwrap_or_default();
            return (out, Some(format!("field \"{field}\" does not exist")));
        }
        out.push_str(&body);
        out.push('\n');
        (out, None)
    }

    /// The template's `output`: follows the field path, then prints the description and the
    /// field list of where it ends.
    fn output(&self, schema: &'a Value, history: &BTreeSet<String>, path: &[&str]) -> String {
        let ref_string = schema["$ref"].as_str().unwrap_or_default().to_string();
        let mut next_history = history.clone();
        next_history.insert(ref_string.clone());
        let resolved = self.resolve_ref(&schema["$ref"]).unwrap_or(schema);
        let mut out = String::new();
        if path.is_empty() {
            out.push_str("DESCRIPTION:\n");
            let mut d = String::new();
            self.description(resolved, &mut d);
            if d.is_empty() {
                d = "<empty>".into();
            }
            out.push_str(&indent(&wrap(&d, 76), 4));
            out.push('\n');
            let mut fields = String::new();
            self.field_list(resolved, 1, &BTreeSet::new(), &mut fields);
            if !fields.is_empty() {
                out.push_str("FIELDS:\n");
                out.push_str(&fields);
            }
        } else if !ref_string.is_empty() && history.contains(&ref_string) {
            // A cycle.
        } else if let Some(sub) = truthy(&resolved["properties"]).and_then(|p| truthy(&p[path[0]]))
        {
            if path.len() == 1 {
                out.push_str(&format!("FIELD: {} <{}>\n", path[0], self.type_guess(sub)));
                out.push_str(&self.enum_text(sub, true, -1, 0));
                out.push_str("\n\n");
            }
            out.push_str(&self.output(sub, &BTreeSet::new(), &path[1..]));
        } else if let Some(items) = truthy(&resolved["items"]) {
            out.push_str(&self.output(items, &next_history, path));
        } else if let Some(add) = additional(resolved) {
            out.push_str(&self.output(add, &next_history, path));
        } else {
            for sub in resolved["allOf"].as_array().into_iter().flatten() {
                let o = self.output(sub, &next_history, path);
                if !o.is_empty() {
                    out.push_str(&o);
                    break;
                }
            }
        }
        out
    }

    /// The template's `description`: the schema's own, then those of what it is made of.
    fn description(&self, schema: &'a Value, out: &mut String) {
        let s = self.resolve_ref(&schema["$ref"]).unwrap_or(schema);
        if let Some(d) = truthy(&s["description"]).and_then(Value::as_str) {
            out.push_str(d);
            out.push('\n');
        }
        for sub in s["allOf"].as_array().into_iter().flatten() {
            self.description(sub, out);
        }
        if let Some(items) = truthy(&s["items"]) {
            self.description(items, out);
        }
        if let Some(add) = additional(s) {
            self.description(add, out);
        }
    }

    /// The template's `fieldList`.
    fn field_list(
        &self,
        schema: &'a Value,
        level: usize,
        history: &BTreeSet<String>,
        out: &mut String,
    ) {
        let ref_string = schema["$ref"].as_str().unwrap_or_default().to_string();
        if !ref_string.is_empty() && history.contains(&ref_string) {
            return;
        }
        let mut next = history.clone();
        next.insert(ref_string);
        let resolved = self.resolve_ref(&schema["$ref"]).unwrap_or(schema);
        if let Some(props) = resolved["properties"].as_object() {
            for (name, v) in props {
                self.field_detail(resolved, name, level, out);
                if self.recursive {
                    self.field_list(v, level + 1, &next, out);
                }
            }
        }
        for sub in resolved["allOf"].as_array().into_iter().flatten() {
            self.field_list(sub, level, &next, out);
        }
        if let Some(items) = truthy(&resolved["items"]) {
            self.field_list(items, level, &next, out);
        }
        if let Some(add) = additional(resolved) {
            self.field_list(add, level, &next, out);
        }
    }

    /// The template's `fieldDetail`.
    fn field_detail(&self, parent: &Value, name: &str, level: usize, out: &mut String) {
        let amount = level * 2;
        let field = &parent["properties"][name];
        out.push_str(&indent(name, amount));
        out.push_str(&format!("\t<{}>", self.type_guess(field)));
        if parent["required"]
            .as_array()
            .is_some_and(|r| r.iter().any(|x| x == name))
        {
            out.push_str(" -required-");
        }
        out.push_str(&self.enum_text(field, false, 4, amount));
        out.push('\n');
        if !self.recursive {
            let d = truthy(&field["description"])
                .and_then(Value::as_str)
                .unwrap_or("<no description>");
            out.push_str(&indent(&wrap(d, 78 - amount), amount + 2));
            out.push_str("\n\n");
        }
    }

    /// The template's `typeGuess`: `string`, `[]Container`, `map[string]string`, `Object`…
    fn type_guess(&self, s: &Value) -> String {
        if let Some(items) = truthy(&s["items"]) {
            return format!("[]{}", self.type_guess(items));
        }
        if let Some(add) = additional(s) {
            return format!("map[string]{}", self.type_guess(add));
        }
        if let Some(all) = truthy(&s["allOf"]).and_then(Value::as_array)
            && truthy(&s["properties"]).is_none()
            && all.len() == 1
        {
            return self.type_guess(&all[0]);
        }
        let type_or_object = |v: &Value| {
            truthy(v)
                .and_then(Value::as_str)
                .unwrap_or("Object")
                .to_string()
        };
        if let Some(r) = truthy(&s["$ref"]).and_then(Value::as_str) {
            let target = self.resolve_ref(&s["$ref"]);
            let ty = target.and_then(|t| truthy(&t["type"]));
            return match ty {
                None => {
                    let name = r.rsplit('/').next().unwrap_or_default();
                    let short = name.rsplit('.').next().unwrap_or_default();
                    if short.is_empty() {
                        "Object".into()
                    } else {
                        short.to_string()
                    }
                }
                Some(t) if t == "object" => {
                    let name = r.rsplit('/').next().unwrap_or_default();
                    let short = name.rsplit('.').next().unwrap_or_default();
                    if short.is_empty() {
                        "Object".into()
                    } else {
                        short.to_string()
                    }
                }
                Some(t) => type_or_object(t),
            };
        }
        if s["type"] == "object" {
            "Object".into()
        } else {
            type_or_object(&s["type"])
        }
    }

    /// The template's `extractEnum`: `ENUM:` lines (long view) or `enum: a, b, ….` (short).
    fn enum_text(&self, s: &Value, long: bool, limit: i64, amount: usize) -> String {
        let Some(values) = truthy(&s["enum"]).and_then(Value::as_array) else {
            return String::new();
        };
        let mut out = String::new();
        if long {
            out.push_str("ENUM:");
        } else {
            out.push('\n');
            out.push_str(&" ".repeat(amount));
            out.push_str("enum: ");
        }
        for (i, v) in values.iter().enumerate() {
            if limit > -1 && i as i64 >= limit {
                out.push_str(", ....");
                break;
            }
            if i > 0 && !long {
                out.push_str(", ");
            } else if long {
                out.push_str("\n    ");
            }
            match v {
                Value::String(t) if t.is_empty() => out.push_str("\"\""),
                Value::String(t) => out.push_str(t),
                other => out.push_str(&crate::print::json::to_compact(other)),
            }
        }
        out
    }
}

/// `%XX` escapes of a `$ref` decoded (Go's `url.PathUnescape`).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len() + 1
            && let Some(h) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(h, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// sprig's `indent`: every line (also the empty ones, and the text after a trailing newline)
/// starts with `n` spaces.
fn indent(s: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    format!("{pad}{}", s.replace('\n', &format!("\n{pad}")))
}

/// go-wordwrap's `WrapString` (kubectl's explain wraps with it): breaks before a word that
/// would pass `lim` columns, dropping the spaces there; keeps existing line breaks and runs
/// of spaces; a word longer than `lim` stays whole.
pub fn wrap(s: &str, lim: usize) -> String {
    let mut buf = String::with_capacity(s.len());
    let mut current = 0usize;
    let (mut word, mut space) = (String::new(), String::new());
    let (mut word_len, mut space_len) = (0usize, 0usize);
    for c in s.chars() {
        if c == '\n' {
            if word.is_empty() {
                if current + space_len <= lim {
                    buf.push_str(&space);
                }
            } else {
                buf.push_str(&space);
                buf.push_str(&word);
                word.clear();
                word_len = 0;
            }
            space.clear();
            space_len = 0;
            buf.push(c);
            current = 0;
        } else if c.is_whitespace() && c != '\u{a0}' {
            if space.is_empty() || !word.is_empty() {
                current += space_len + word_len;
                buf.push_str(&space);
                buf.push_str(&word);
                space.clear();
                space_len = 0;
                word.clear();
                word_len = 0;
            }
            space.push(c);
            space_len += 1;
        } else {
            word.push(c);
            word_len += 1;
            if current + space_len + word_len > lim && word_len < lim {
                buf.push('\n');
                current = 0;
                space.clear();
                space_len = 0;
            }
        }
    }
    if word.is_empty() {
        if current + space_len <= lim {
            buf.push_str(&space);
        }
    } else {
        buf.push_str(&space);
        buf.push_str(&word);
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wraps_like_go_wordwrap() {
        assert_eq!(wrap("aaa bbb ccc", 7), "aaa bbb\nccc");
        assert_eq!(wrap("a  b", 10), "a  b", "runs of spaces stay");
        assert_eq!(wrap("x\n  * item", 80), "x\n  * item", "line breaks stay");
        assert_eq!(wrap("short verylongwordhere", 8), "short\nverylongwordhere");
        let t = "word ".repeat(30);
        for line in wrap(t.trim(), 76).lines() {
            assert!(line.chars().count() <= 76, "{line}");
        }
        assert_eq!(indent("a\nb\n", 4), "    a\n    b\n    ");
    }

    fn doc() -> Value {
        json!({
            "paths": {"/apis/demo/v1/namespaces/{namespace}/widgets": {"get": {"x-kubernetes-group-version-kind": {"group": "demo", "version": "v1", "kind": "Widget"}}}},
            "components": {"schemas": {
                "demo.v1.Widget": {
                    "description": "A widget.",
                    "x-kubernetes-group-version-kind": [{"group": "demo", "version": "v1", "kind": "Widget"}],
                    "properties": {
                        "spec": {"allOf": [{"$ref": "#/components/schemas/demo.v1.Spec"}], "description": "The spec."},
                        "tags": {"type": "object", "additionalProperties": {"type": "string"}}
                    },
                    "required": ["spec"]
                },
                "demo.v1.Spec": {
                    "type": "object",
                    "description": "Spec of a widget.",
                    "properties": {
                        "mode": {"type": "string", "enum": ["", "Fast", "Slow"], "description": "How."},
                        "parts": {"type": "array", "items": {"$ref": "#/components/schemas/demo.v1.Spec"}}
                    }
                }
            }}
        })
    }

    #[test]
    fn renders_kinds_fields_and_enums_like_the_template() {
        let d = doc();
        let e = Explainer {
            doc: &d,
            recursive: false,
        };
        let (out, err) = e.explain("demo", "v1", "widgets", &[]);
        assert_eq!(err, None);
        assert_eq!(
            out,
            "GROUP:      demo\nKIND:       Widget\nVERSION:    v1\n\nDESCRIPTION:\n    A widget.\n    \nFIELDS:\n  spec\t<Spec> -required-\n    The spec.\n\n  tags\t<map[string]string>\n    <no description>\n\n\n"
        );
        let (out, _) = e.explain("demo", "v1", "widgets", &["spec", "mode"]);
        assert!(
            out.ends_with(
                "FIELD: mode <string>\nENUM:\n    \"\"\n    Fast\n    Slow\n\nDESCRIPTION:\n    How.\n    \n\n"
            ),
            "{out}"
        );
        let (out, err) = e.explain("demo", "v1", "widgets", &["spec", "nope"]);
        assert_eq!(
            out,
            "GROUP:      demo\nKIND:       Widget\nVERSION:    v1\n\n"
        );
        assert_eq!(err.as_deref(), Some("field \"nope\" does not exist"));
        let r = Explainer {
            doc: &d,
            recursive: true,
        };
        let (out, _) = r.explain("demo", "v1", "widgets", &["spec"]);
        // The recursion stops at the cycle (parts → Spec, already being listed).
        assert!(
            out.ends_with(
                "FIELDS:\n  mode\t<string>\n  enum: \"\", Fast, Slow\n  parts\t<[]Spec>\n\n"
            ),
            "{out}"
        );
    }
}
