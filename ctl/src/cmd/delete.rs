//! `delete`: by `-f`, by names, by `-l` or `--all`; `--cascade=background|foreground|orphan`,
//! `--grace-period`, `--now`, `--force`; `--wait` (on by default) until the objects are gone.

use std::time::{Duration, Instant};

use kube::api::{DeleteParams, PropagationPolicy};

use crate::cli::{Cascade, DeleteArgs, DryRun};
use crate::client::Ctx;
use crate::error::{CtlError, Result};
use crate::output::{errln, outln};
use crate::resource::{self, ExpandOptions, Target};

/// Runs `delete`.
pub async fn run(ctx: &Ctx, args: &DeleteArgs) -> Result<()> {
    let targets = targets(ctx, args).await?;
    if targets.is_empty() {
        if args.filename.is_empty() {
            let ns_msg = if args.all_namespaces {
                String::new()
            } else {
                format!(" in {} namespace", ctx.namespace)
            };
            errln(&format!("No resources found{ns_msg}"));
        }
        return Ok(());
    }
    if args.force && args.grace_period > 0 {
        return Err(CtlError::Usage(
            "--force and --grace-period greater than 0 cannot be specified together".into(),
        ));
    }
    let grace = if args.force {
        errln(
            "Warning: Immediate deletion does not wait for confirmation that the running resource has been terminated. The resource may continue to run on the cluster indefinitely.",
        );
        Some(0)
    } else if args.now {
        Some(1)
    } else if args.grace_period == 0 {
        // As kubectl: `--grace-period=0` without `--force` means 1 (no accidental immediate
        // deletion).
        Some(1)
    } else if args.grace_period > 0 {
        Some(args.grace_period as u32)
    } else {
        None
    };
    let dp = DeleteParams {
        dry_run: args.dry_run == DryRun::Server,
        grace_period_seconds: grace,
        propagation_policy: Some(match args.cascade {
            Cascade::Background => PropagationPolicy::Background,
            Cascade::Foreground => PropagationPolicy::Foreground,
            Cascade::Orphan => PropagationPolicy::Orphan,
        }),
        preconditions: None,
    };
    let mut errors = Vec::new();
    let mut deleted: Vec<(Target, Option<String>)> = Vec::new();
    for t in targets {
        if args.dry_run == DryRun::Client {
            print_deleted(&t, args);
            continue;
        }
        let api = ctx.api(&t.info, t.namespace.as_deref().unwrap_or_default());
        match api.delete(&t.name, &dp).await {
            Ok(res) => {
                // The object while it is still being deleted; for most kinds, once it is gone
                // at once, a Status naming it.
                let uid = res.either(
                    |o| o.metadata.uid,
                    |s| s.details.map(|d| d.uid).filter(|u| !u.is_empty()),
                );
                print_deleted(&t, args);
                deleted.push((t, uid));
            }
            Err(e) => {
                let e = CtlError::from(e);
                if !(e.is_not_found() && args.ignore_not_found) {
                    errors.push(e);
                }
            }
        }
    }
    if args.wait && args.dry_run == DryRun::None && !deleted.is_empty() {
        let timeout = rkube_machinery::duration::parse(&args.timeout).filter(|d| !d.is_zero());
        wait_gone(ctx, &deleted, timeout).await?;
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(CtlError::Many(errors)),
    }
}

fn print_deleted(t: &Target, args: &DeleteArgs) {
    if args.output.as_deref() == Some("name") {
        outln(&t.kind_name());
    } else {
        let verb = if args.force {
            "force deleted"
        } else {
            "deleted"
        };
        outln(&format!(
            "{} \"{}\" {verb}{}",
            t.info.kind_prefix(),
            t.name,
            args.dry_run.suffix()
        ));
    }
}

async fn targets(ctx: &Ctx, args: &DeleteArgs) -> Result<Vec<Target>> {
    if !args.filename.is_empty() {
        let m = crate::manifest::read(&args.filename, args.recursive)
            .map_err(|e| CtlError::Input(e.to_string()))?;
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
    if args.resources.is_empty() {
        return Err(CtlError::Usage("You must provide one or more resources by argument or filename.\nExample resource specifications include:\n   '-f rsrc.yaml'\n   '--filename=rsrc.json'\n   '<resource> <name>'\n   '<resource>'".into()));
    }
    let sels = resource::parse(ctx, &args.resources).await?;
    resource::expand(
        ctx,
        &sels,
        &ExpandOptions {
            selector: args.selector.clone(),
            field_selector: args.field_selector.clone(),
            all: args.all,
            all_namespaces: args.all_namespaces,
        },
    )
    .await
}

/// Waits until each object is gone (or was replaced by a new object of the same name),
/// telling on stderr what it waits for when that takes a while.
async fn wait_gone(
    ctx: &Ctx,
    objs: &[(Target, Option<String>)],
    timeout: Option<Duration>,
) -> Result<()> {
    let start = Instant::now();
    let mut announced = false;
    for (t, uid) in objs {
        loop {
            let gone = match ctx.get_json(&t.path()).await {
                Ok(v) => uid
                    .as_deref()
                    .is_some_and(|u| v["metadata"]["uid"].as_str() != Some(u)),
                Err(e) if e.is_not_found() => true,
                Err(e) => return Err(e),
            };
            if gone {
                break;
            }
            if let Some(to) = timeout
                && start.elapsed() > to
            {
                return Err(CtlError::Other(format!(
                    "timed out waiting for the condition on {}",
                    t.kind_name()
                )));
            }
            if !announced && start.elapsed() > Duration::from_secs(1) {
                errln(&format!("waiting for {} to be deleted...", t.kind_name()));
                announced = true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}
