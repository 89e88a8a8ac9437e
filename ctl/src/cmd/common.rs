//! Helpers the modifying commands share: finding the objects of `TYPE NAME`/`TYPE/NAME`/`-f`
//! arguments, sending patches, and telling whether a write changed anything.

use serde_json::Value;

use crate::cli::DryRun;
use crate::client::{Ctx, query};
use crate::error::{CtlError, Result};
use crate::resource::{self, ExpandOptions, Target};

/// The objects named by resource arguments or files.
pub async fn targets(
    ctx: &Ctx,
    args: &[String],
    files: &[String],
    opts: &ExpandOptions,
) -> Result<Vec<Target>> {
    if !files.is_empty() {
        let m = crate::manifest::read(files, false).map_err(|e| CtlError::Input(e.to_string()))?;
        let resolved = resource::resolve_manifests(ctx, m).await?;
        return Ok(resolved
            .into_iter()
            .map(|r| Target {
                name: r.name().to_string(),
                info: r.info,
                namespace: r.namespace,
            })
            .collect());
    }
    if args.is_empty() {
        return Err(CtlError::Usage(
            "You must provide one or more resources by argument or filename.".into(),
        ));
    }
    let sels = resource::parse(ctx, args).await?;
    resource::expand(ctx, &sels, opts).await
}

/// Sends a PATCH of the given content type to an object (or its subresource).
pub async fn patch(
    ctx: &Ctx,
    path: &str,
    content_type: &str,
    body: &Value,
    field_manager: &str,
    dry_run: DryRun,
) -> Result<Value> {
    let mut q = vec![("fieldManager", field_manager.to_string())];
    if dry_run == DryRun::Server {
        q.push(("dryRun", "All".to_string()));
    }
    ctx.request(
        http::Method::PATCH,
        &format!("{path}{}", query(&q)),
        None,
        Some(content_type),
        serde_json::to_vec(body)?,
    )
    .await
}

/// The object without the fields every write changes (to tell "no change").
pub fn comparable(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v["metadata"].as_object_mut() {
        m.remove("managedFields");
        m.remove("resourceVersion");
    }
    v
}

/// Removes `metadata.managedFields` (kubectl hides them unless `--show-managed-fields`).
pub fn hide_managed_fields(mut v: Value) -> Value {
    if let Some(m) = v["metadata"].as_object_mut() {
        m.remove("managedFields");
    }
    if let Some(items) = v.get_mut("items").and_then(Value::as_array_mut) {
        for i in items {
            if let Some(m) = i["metadata"].as_object_mut() {
                m.remove("managedFields");
            }
        }
    }
    v
}

/// Parses a patch or object given as JSON or YAML text.
pub fn parse_json_or_yaml(text: &str) -> Result<Value> {
    match serde_json::from_str(text) {
        Ok(v) => Ok(v),
        Err(json_err) => serde_saphyr::from_str::<Value>(text).map_err(|_| {
            CtlError::Input(format!("unable to parse \"{}\": {json_err}", text.trim()))
        }),
    }
}
