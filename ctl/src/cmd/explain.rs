//! `explain TYPE[.FIELD…]`: field documentation from the server's OpenAPI v3 documents
//! (`/openapi/v3` → the group-version document → the kind's schema), in kubectl's layout.

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
    let fields: Vec<&str> = parts.collect();
    let mut info = ctx.resolve(ty).await?;
    if let Some(av) = &args.api_version {
        let (g, v) = av.split_once('/').unwrap_or(("", av));
        info = ctx
            .discovery()
            .await?
            .resources
            .iter()
            .find(|r| r.group == g && r.version == v && r.kind == info.kind)
            .cloned()
            .ok_or_else(|| {
                CtlError::Other(format!(
                    "couldn't find resource for \"{}\" in {av}",
                    args.resource
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
    let schemas = &doc["components"]["schemas"];
    let root = schemas
        .as_object()
        .into_iter()
        .flatten()
        .find(|(_, s)| {
            s["x-kubernetes-group-version-kind"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|g| {
                    g["group"].as_str().unwrap_or_default() == info.group
                        && g["version"] == info.version.as_str()
                        && g["kind"] == info.kind.as_str()
                })
        })
        .map(|(_, s)| s.clone())
        .ok_or_else(|| CtlError::Other(format!("couldn't find the schema of {}", info.kind)))?;
    out(&render(
        schemas,
        &root,
        &info.group,
        &info.version,
        &info.kind,
        &fields,
        args.recursive,
    )?);
    Ok(())
}

fn resolve<'a>(schemas: &'a Value, mut s: &'a Value) -> &'a Value {
    for _ in 0..32 {
        if let Some(r) = s["$ref"].as_str().and_then(|r| r.strip_prefix(REF_PREFIX)) {
            s = &schemas[r];
            continue;
        }
        if let Some(all) = s["allOf"].as_array()
            && all.len() == 1
        {
            s = &all[0];
            continue;
        }
        break;
    }
    s
}

fn ref_name(s: &Value) -> Option<String> {
    let r = s["$ref"]
        .as_str()
        .or_else(|| s["allOf"][0]["$ref"].as_str())?;
    Some(r.rsplit('.').next().unwrap_or(r).to_string())
}

/// kubectl's type label: `string`, `integer`, `[]Container`, `map[string]string`, `Object`…
fn type_name(schemas: &Value, s: &Value) -> String {
    if let Some(n) = ref_name(s) {
        let target = resolve(schemas, s);
        return match target["type"].as_str() {
            Some("object") | None => n,
            Some(t) => t.to_string(),
        };
    }
    match s["type"].as_str() {
        Some("array") => format!("[]{}", type_name(schemas, &s["items"])),
        Some("object") if s["additionalProperties"].is_object() => {
            format!(
                "map[string]{}",
                type_name(schemas, &s["additionalProperties"])
            )
        }
        Some("object") => "Object".into(),
        Some("number") => "number".into(),
        Some(t) => t.to_string(),
        None if s["x-kubernetes-int-or-string"].as_bool() == Some(true) => "IntOrString".into(),
        None => "Object".into(),
    }
}

/// Wraps text to 80 columns with an indent.
fn wrap(text: &str, indent: usize) -> String {
    let pad = " ".repeat(indent);
    let mut out = String::new();
    for para in text.split('\n') {
        let mut line = pad.clone();
        for word in para.split(' ').filter(|w| !w.is_empty()) {
            if line.len() > indent && line.len() + 1 + word.len() > 80 {
                out.push_str(line.trim_end());
                out.push('\n');
                line = pad.clone();
            }
            if line.len() > indent {
                line.push(' ');
            }
            line.push_str(word);
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn render(
    schemas: &Value,
    root: &Value,
    group: &str,
    version: &str,
    kind: &str,
    path: &[&str],
    recursive: bool,
) -> Result<String> {
    let mut cur = root.clone();
    let mut field_line = None;
    for (i, f) in path.iter().enumerate() {
        let mut obj = resolve(schemas, &cur).clone();
        while obj["type"] == "array" {
            obj = resolve(schemas, &obj["items"]).clone();
        }
        let prop = obj["properties"]
            .get(*f)
            .cloned()
            .ok_or_else(|| CtlError::Other(format!("field \"{f}\" does not exist")))?;
        if i == path.len() - 1 {
            field_line = Some(format!("FIELD: {} <{}>\n\n", f, type_name(schemas, &prop)));
        }
        cur = prop;
    }
    let mut out = String::new();
    if !group.is_empty() {
        out.push_str(&format!("GROUP:      {group}\n"));
    }
    out.push_str(&format!("KIND:       {kind}\nVERSION:    {version}\n\n"));
    if let Some(f) = field_line {
        out.push_str(&f);
    }
    let description = cur["description"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| {
            resolve(schemas, &cur)["description"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        });
    out.push_str("\nDESCRIPTION:\n");
    out.push_str(&wrap(&description, 4));
    out.push_str("    \n");
    let mut obj = resolve(schemas, &cur).clone();
    while obj["type"] == "array" {
        obj = resolve(schemas, &obj["items"]).clone();
    }
    if let Some(props) = obj["properties"].as_object().filter(|p| !p.is_empty()) {
        out.push_str("FIELDS:\n");
        fields(schemas, &obj, props, 1, recursive, &mut out, 0);
    }
    Ok(out)
}

fn fields(
    schemas: &Value,
    obj: &Value,
    props: &serde_json::Map<String, Value>,
    level: usize,
    recursive: bool,
    out: &mut String,
    depth: usize,
) {
    let required: Vec<&str> = obj["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let mut names: Vec<&String> = props.keys().collect();
    names.sort();
    for n in names {
        let p = &props[n];
        let req = if required.contains(&n.as_str()) {
            " -required-"
        } else {
            ""
        };
        let indent = "  ".repeat(level);
        out.push_str(&format!("{indent}{n}\t<{}>{req}\n", type_name(schemas, p)));
        if recursive {
            let mut inner = resolve(schemas, p).clone();
            while inner["type"] == "array" {
                inner = resolve(schemas, &inner["items"]).clone();
            }
            if depth < 15
                && let Some(ip) = inner["properties"].as_object()
            {
                fields(schemas, &inner, ip, level + 1, recursive, out, depth + 1);
            }
        } else {
            let d = p["description"].as_str().unwrap_or_else(|| {
                resolve(schemas, p)["description"]
                    .as_str()
                    .unwrap_or_default()
            });
            out.push_str(&wrap(d, 2 * level + 2));
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wraps_at_80() {
        let t = "word ".repeat(30);
        for line in wrap(t.trim(), 4).lines() {
            assert!(line.len() <= 80, "{line}");
            assert!(line.starts_with("    word"));
        }
    }

    #[test]
    fn type_names() {
        let schemas = json!({"io.k8s.api.core.v1.Container": {"type": "object", "properties": {}}});
        assert_eq!(
            type_name(
                &schemas,
                &json!({"type": "array", "items": {"$ref": "#/components/schemas/io.k8s.api.core.v1.Container"}})
            ),
            "[]Container"
        );
        assert_eq!(
            type_name(
                &schemas,
                &json!({"type": "object", "additionalProperties": {"type": "string"}})
            ),
            "map[string]string"
        );
        assert_eq!(type_name(&schemas, &json!({"type": "integer"})), "integer");
    }
}
