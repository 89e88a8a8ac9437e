//! `label` and `annotate`: `key=value` sets, `key-` removes, `--overwrite` to change an
//! existing value, `--list`; by names, `-l`, `--all` or `-f`; sent as merge patches.

use serde_json::{Map, Value, json};

use crate::cli::{DryRun, LabelArgs};
use crate::client::Ctx;
use crate::cmd::common;
use crate::error::{CtlError, Result};
use crate::output::outln;
use crate::resource::ExpandOptions;
use crate::util::{KeyChange, split_key_changes};

/// Which metadata map the command edits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// `metadata.labels`.
    Labels,
    /// `metadata.annotations`.
    Annotations,
}

/// Runs `label` or `annotate`.
pub async fn run(ctx: &Ctx, args: &LabelArgs, which: Which) -> Result<()> {
    let (resources, changes) = split_key_changes(&args.args);
    let (field, noun, verb) = match which {
        Which::Labels => ("labels", "label", "labeled"),
        Which::Annotations => ("annotations", "annotation", "annotated"),
    };
    if changes.is_empty() && !args.list {
        return Err(CtlError::Usage(format!(
            "at least one {noun} update is required"
        )));
    }
    if which == Which::Labels {
        for c in &changes {
            if let KeyChange::Set(k, v) = c {
                let mut errs = rkube_machinery::validation::is_qualified_name(k);
                errs.extend(rkube_machinery::validation::is_valid_label_value(v));
                if !errs.is_empty() {
                    return Err(CtlError::Usage(format!(
                        "invalid label spec: {k}={v}: {}",
                        errs.join("; ")
                    )));
                }
            }
        }
    }
    let targets = common::targets(
        ctx,
        &resources,
        &args.filename,
        &ExpandOptions {
            selector: args.selector.clone(),
            all: args.all,
            ..Default::default()
        },
    )
    .await?;
    for t in targets {
        let obj = ctx.get_json(&t.path()).await?;
        let current = obj["metadata"][field]
            .as_object()
            .cloned()
            .unwrap_or_default();
        if args.list {
            let mut keys: Vec<&String> = current.keys().collect();
            keys.sort();
            for k in keys {
                outln(&format!("{k}={}", current[k].as_str().unwrap_or_default()));
            }
            continue;
        }
        let mut patch = Map::new();
        let mut removed_only = true;
        for c in &changes {
            match c {
                KeyChange::Set(k, v) => {
                    removed_only = false;
                    if let Some(old) = current.get(k).and_then(Value::as_str)
                        && old != v
                        && !args.overwrite
                    {
                        return Err(CtlError::Other(format!(
                            "'{k}' already has a value ({old}), and --overwrite is false"
                        )));
                    }
                    if current.get(k).and_then(Value::as_str) != Some(v.as_str()) {
                        patch.insert(k.clone(), Value::String(v.clone()));
                    }
                }
                KeyChange::Remove(k) => {
                    if current.contains_key(k) {
                        patch.insert(k.clone(), Value::Null);
                    } else {
                        outln(&format!("{noun} \"{k}\" not found."));
                    }
                }
            }
        }
        if patch.is_empty() {
            outln(&format!("{} not {verb}", t.kind_name()));
            continue;
        }
        if args.dry_run != DryRun::Client {
            let body = json!({"metadata": {field: Value::Object(patch)}});
            common::patch(
                ctx,
                &t.path(),
                "application/merge-patch+json",
                &body,
                "rkubectl-label",
                args.dry_run,
            )
            .await?;
        }
        let word = if removed_only && which == Which::Labels {
            "unlabeled"
        } else {
            verb
        };
        if args.output.as_deref() == Some("name") {
            outln(&t.kind_name());
        } else {
            outln(&format!(
                "{} {word}{}",
                t.kind_name(),
                args.dry_run.suffix()
            ));
        }
    }
    Ok(())
}
