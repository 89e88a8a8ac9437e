//! `set image`: changes container images of pod templates (deployments, replica sets, daemon
//! sets, stateful sets, jobs) or pods, `CONTAINER=IMAGE` (`*=IMAGE` for all), with a
//! strategic merge patch; prints `kind/name image updated`.

use serde_json::{Value, json};

use crate::cli::{DryRun, SetCommand};
use crate::client::Ctx;
use crate::cmd::common;
use crate::error::{CtlError, Result};
use crate::output::outln;
use crate::resource::ExpandOptions;

/// Runs a `set` subcommand.
pub async fn run(ctx: &Ctx, cmd: &SetCommand) -> Result<()> {
    let SetCommand::Image {
        args,
        all,
        selector,
        dry_run,
    } = cmd;
    let (resources, pairs): (Vec<String>, Vec<String>) =
        args.iter().cloned().partition(|a| !a.contains('='));
    if pairs.is_empty() {
        return Err(CtlError::Usage(
            "at least one image update is required".into(),
        ));
    }
    let updates: Vec<(String, String)> = pairs
        .iter()
        .map(|p| {
            let (c, i) = p.split_once('=').unwrap_or((p, ""));
            (c.to_string(), i.to_string())
        })
        .collect();
    let targets = common::targets(
        ctx,
        &resources,
        &[],
        &ExpandOptions {
            selector: selector.clone(),
            all: *all,
            ..Default::default()
        },
    )
    .await?;
    for t in targets {
        let obj = ctx.get_json(&t.path()).await?;
        let is_pod = t.info.kind == "Pod";
        let spec = if is_pod {
            &obj["spec"]
        } else if t.info.kind == "CronJob" {
            &obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        } else {
            &obj["spec"]["template"]["spec"]
        };
        let mut containers: Vec<Value> = Vec::new();
        let mut init: Vec<Value> = Vec::new();
        for (c, image) in &updates {
            let mut found = false;
            for (list, key) in [
                (&mut containers, "containers"),
                (&mut init, "initContainers"),
            ] {
                for existing in spec[key].as_array().into_iter().flatten() {
                    let name = existing["name"].as_str().unwrap_or_default();
                    if c == "*" || c == name {
                        found = true;
                        list.retain(|x: &Value| x["name"] != name);
                        list.push(json!({"name": name, "image": image}));
                    }
                }
            }
            if !found {
                return Err(CtlError::Other(format!(
                    "unable to find container named \"{c}\""
                )));
            }
        }
        let mut inner = json!({});
        if !containers.is_empty() {
            inner["containers"] = Value::Array(containers);
        }
        if !init.is_empty() {
            inner["initContainers"] = Value::Array(init);
        }
        let patch = if is_pod {
            json!({"spec": inner})
        } else if t.info.kind == "CronJob" {
            json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": inner}}}}})
        } else {
            json!({"spec": {"template": {"spec": inner}}})
        };
        if *dry_run != DryRun::Client {
            common::patch(
                ctx,
                &t.path(),
                "application/strategic-merge-patch+json",
                &patch,
                "rkubectl-set",
                *dry_run,
            )
            .await?;
        }
        outln(&format!(
            "{} image updated{}",
            t.kind_name(),
            dry_run.suffix()
        ));
    }
    Ok(())
}
