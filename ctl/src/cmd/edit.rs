//! `edit`: opens the object in `$KUBE_EDITOR` / `$EDITOR` (else `vi`) as YAML or JSON, sends
//! the two-way strategic merge patch of the changes (a merge patch for kinds without a
//! schema), and re-opens the file with the server's error at the top when the edit is
//! invalid — as kubectl does.

use rkube_machinery::patch::create_two_way_merge_patch;
use rkube_machinery::schema::Schemas;
use serde_json::Value;

use crate::cli::{DryRun, EditArgs};
use crate::client::Ctx;
use crate::cmd::common;
use crate::error::{CtlError, Result};
use crate::output::outln;
use crate::print::{json as gojson, yaml};
use crate::resource::ExpandOptions;

const HEADER: &str = "# Please edit the object below. Lines beginning with a '#' will be ignored,\n# and an empty file will abort the edit. If an error occurs while saving this file will be\n# reopened with the relevant failures.\n#\n";

/// Runs `edit`.
pub async fn run(ctx: &Ctx, args: &EditArgs) -> Result<()> {
    let json_out = match args.output.as_str() {
        "yaml" => false,
        "json" => true,
        o => {
            return Err(CtlError::Usage(format!(
                "the edit mode must be 'yaml' or 'json', not {o:?}"
            )));
        }
    };
    let targets = common::targets(ctx, &args.resources, &[], &ExpandOptions::default()).await?;
    let editor = std::env::var("KUBE_EDITOR")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".into());
    for t in targets {
        let original = common::hide_managed_fields(ctx.get_json(&t.path()).await?);
        let render = |v: &Value| {
            if json_out {
                gojson::to_pretty(v)
            } else {
                yaml::to_string(v)
            }
        };
        let body = render(&original);
        let dir = tempfile::tempdir()?;
        let file = dir.path().join(format!(
            "rkubectl-edit.{}",
            if json_out { "json" } else { "yaml" }
        ));
        let mut error_note = String::new();
        let mut last_attempt: Option<String> = None;
        loop {
            let text = match &last_attempt {
                Some(prev) => format!("{HEADER}{error_note}{}", strip_comments(prev)),
                None => format!("{HEADER}{body}"),
            };
            std::fs::write(&file, &text)?;
            let status = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("{editor} \"$1\""))
                .arg("sh")
                .arg(&file)
                .status()
                .map_err(|e| {
                    CtlError::Other(format!("unable to launch the editor {editor:?}: {e}"))
                })?;
            if !status.success() {
                return Err(CtlError::Other(format!(
                    "there was a problem with the editor {editor:?}"
                )));
            }
            let edited = std::fs::read_to_string(&file)?;
            let content = strip_comments(&edited);
            if content.trim().is_empty() {
                outln("Edit cancelled, no changes made.");
                return Ok(());
            }
            if last_attempt.as_deref().map(strip_comments).as_deref() == Some(content.as_str()) {
                let keep =
                    std::env::temp_dir().join(format!("rkubectl-edit-{}.yaml", std::process::id()));
                std::fs::write(&keep, &edited)?;
                return Err(CtlError::Other(format!(
                    "A copy of your changes has been stored to \"{}\"\nerror: Edit cancelled, no valid changes were saved.",
                    keep.display()
                )));
            }
            if content == strip_comments(&body) {
                outln("Edit cancelled, no changes made.");
                return Ok(());
            }
            let modified = match common::parse_json_or_yaml(&content) {
                Ok(v) => v,
                Err(e) => {
                    error_note = format!(
                        "# The edited file had a syntax error: {}\n#\n",
                        e.to_string().replace('\n', "\n# ")
                    );
                    last_attempt = Some(edited);
                    continue;
                }
            };
            let schema = Schemas::builtin().for_kind(&t.info.group, &t.info.version, &t.info.kind);
            let (patch, content_type) = if schema.is_some() {
                (
                    create_two_way_merge_patch(&original, &modified, schema),
                    "application/strategic-merge-patch+json",
                )
            } else {
                (
                    create_two_way_merge_patch(&original, &modified, None),
                    "application/merge-patch+json",
                )
            };
            let patch = patch.map_err(|e| CtlError::Other(e.to_string()))?;
            if patch.as_object().is_some_and(|m| m.is_empty()) {
                outln("Edit cancelled, no changes made.");
                return Ok(());
            }
            match common::patch(
                ctx,
                &t.path(),
                content_type,
                &patch,
                &args.field_manager,
                DryRun::None,
            )
            .await
            {
                Ok(_) => {
                    outln(&format!("{} edited", t.kind_name()));
                    break;
                }
                Err(CtlError::Api(s)) => {
                    let mut note = format!(
                        "# {} \"{}\" was not valid:\n",
                        t.info.group_resource(),
                        t.name
                    );
                    let causes = s
                        .details
                        .as_ref()
                        .map(|d| d.causes.clone())
                        .unwrap_or_default();
                    if causes.is_empty() {
                        note.push_str(&format!("# * {}\n", s.message));
                    }
                    for c in causes {
                        note.push_str(&format!("# * {}: {}\n", c.field, c.message));
                    }
                    note.push_str("#\n");
                    error_note = note;
                    last_attempt = Some(edited);
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

fn strip_comments(s: &str) -> String {
    s.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect()
}
