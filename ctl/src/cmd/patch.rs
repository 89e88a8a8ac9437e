//! `patch`: JSON, merge or strategic merge patches (`--type`), from `-p` or `--patch-file`,
//! JSON or YAML, on objects or their subresources (`--subresource=status|scale`); prints
//! `kind/name patched` or `patched (no change)` like kubectl.

use crate::cli::PatchArgs;
use crate::client::Ctx;
use crate::cmd::common::{self, comparable};
use crate::error::{CtlError, Result};
use crate::output::{out, outln};
use crate::print::{OutputFormat, print_objects};
use crate::resource::ExpandOptions;

/// Runs `patch`.
pub async fn run(ctx: &Ctx, args: &PatchArgs) -> Result<()> {
    let text = match (&args.patch, &args.patch_file) {
        (Some(p), None) => p.clone(),
        (None, Some(f)) => std::fs::read_to_string(f)
            .map_err(|e| CtlError::Input(format!("unable to read patch file {f:?}: {e}")))?,
        (Some(_), Some(_)) => {
            return Err(CtlError::Usage(
                "--patch and --patch-file are mutually exclusive".into(),
            ));
        }
        (None, None) => {
            return Err(CtlError::Usage(
                "must specify --patch or --patch-file containing the contents of the patch".into(),
            ));
        }
    };
    let content_type = match args.type_.as_str() {
        "json" => "application/json-patch+json",
        "merge" => "application/merge-patch+json",
        "strategic" => "application/strategic-merge-patch+json",
        other => {
            return Err(CtlError::Usage(format!(
                "--type must be one of [json merge strategic], not \"{other}\""
            )));
        }
    };
    let body = common::parse_json_or_yaml(&text)?;
    let format = match args.output.as_deref() {
        None => None,
        o => Some(OutputFormat::parse(o).map_err(|e| CtlError::Usage(e.to_string()))?),
    };
    let targets = common::targets(
        ctx,
        &args.resources,
        &args.filename,
        &ExpandOptions::default(),
    )
    .await?;
    for t in targets {
        let mut path = t.path();
        if let Some(sub) = &args.subresource {
            path.push('/');
            path.push_str(sub);
        }
        if args.type_ == "strategic"
            && rkube_machinery::schema::Schemas::builtin()
                .for_kind(&t.info.group, &t.info.version, &t.info.kind)
                .is_none()
        {
            return Err(CtlError::Usage(format!(
                "strategic merge patch is not supported for {}, use --type=merge or --type=json",
                t.info.group_resource()
            )));
        }
        let before = ctx.get_json(&path).await?;
        if args.dry_run == crate::cli::DryRun::Client {
            outln(&format!("{} patched (dry run)", t.kind_name()));
            continue;
        }
        let after = common::patch(
            ctx,
            &path,
            content_type,
            &body,
            &args.field_manager,
            args.dry_run,
        )
        .await?;
        match &format {
            Some(OutputFormat::Name) => outln(&t.kind_name()),
            Some(f) => out(&print_objects(
                f,
                vec![common::hide_managed_fields(after)],
                true,
            )),
            None => {
                let no_change = if comparable(&before) == comparable(&after) {
                    " (no change)"
                } else {
                    ""
                };
                outln(&format!(
                    "{} patched{no_change}{}",
                    t.kind_name(),
                    args.dry_run.suffix()
                ));
            }
        }
    }
    Ok(())
}
