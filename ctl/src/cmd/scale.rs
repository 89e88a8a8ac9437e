//! `scale`: sets `spec.replicas` through the `scale` subresource (deployments, replica sets,
//! stateful sets), with the `--current-replicas` precondition; prints `kind/name scaled`.

use serde_json::json;

use crate::cli::{DryRun, ScaleArgs};
use crate::client::Ctx;
use crate::cmd::common;
use crate::error::{CtlError, Result};
use crate::output::outln;
use crate::resource::ExpandOptions;

/// Runs `scale`.
pub async fn run(ctx: &Ctx, args: &ScaleArgs) -> Result<()> {
    if args.replicas < 0 {
        return Err(CtlError::Usage(
            "The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0"
                .into(),
        ));
    }
    let targets = common::targets(
        ctx,
        &args.resources,
        &args.filename,
        &ExpandOptions {
            selector: args.selector.clone(),
            all: args.all,
            ..Default::default()
        },
    )
    .await?;
    for t in targets {
        if !t.info.subresources.iter().any(|s| s == "scale") {
            return Err(CtlError::Other(format!(
                "cannot scale {}: the resource has no scale subresource",
                t.info.group_resource()
            )));
        }
        let path = format!("{}/scale", t.path());
        if args.current_replicas >= 0 {
            let scale = ctx.get_json(&path).await?;
            let cur = scale["spec"]["replicas"].as_i64().unwrap_or(0);
            if cur != args.current_replicas as i64 {
                return Err(CtlError::Other(format!(
                    "Expected replicas to be {}, was {cur}",
                    args.current_replicas
                )));
            }
        }
        if args.dry_run != DryRun::Client {
            common::patch(
                ctx,
                &path,
                "application/merge-patch+json",
                &json!({"spec": {"replicas": args.replicas}}),
                "rkubectl-scale",
                args.dry_run,
            )
            .await?;
        }
        outln(&format!(
            "{} scaled{}",
            t.kind_name(),
            args.dry_run.suffix()
        ));
    }
    Ok(())
}
