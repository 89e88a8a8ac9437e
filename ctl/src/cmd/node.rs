//! `cordon`, `uncordon` and `drain`: mark nodes (un)schedulable, and evict (or with
//! `--disable-eviction` delete) their pods, refusing DaemonSet-managed pods, pods with
//! emptyDir data and unmanaged pods unless told otherwise — kubectl's checks and words.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cli::{DrainArgs, DryRun, NodeArgs};
use crate::client::{Ctx, query};
use crate::cmd::common;
use crate::error::{CtlError, Result};
use crate::output::{errln, outln};

async fn node_names(ctx: &Ctx, names: &[String], selector: &Option<String>) -> Result<Vec<String>> {
    if let Some(sel) = selector {
        let list = ctx
            .get_json(&format!(
                "/api/v1/nodes{}",
                query(&[("labelSelector", sel.clone())])
            ))
            .await?;
        return Ok(list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_string))
            .collect());
    }
    if names.is_empty() {
        return Err(CtlError::Usage("USAGE: cordon NODE [flags]".into()));
    }
    Ok(names.to_vec())
}

/// Sets `spec.unschedulable`, printing `node/NAME cordoned` (or `already cordoned`).
async fn set_unschedulable(ctx: &Ctx, name: &str, on: bool, dry_run: DryRun) -> Result<()> {
    let path = format!("/api/v1/nodes/{name}");
    let node = ctx.get_json(&path).await?;
    let cur = node["spec"]["unschedulable"].as_bool().unwrap_or(false);
    let word = if on { "cordoned" } else { "uncordoned" };
    if cur == on {
        outln(&format!("node/{name} already {word}"));
        return Ok(());
    }
    if dry_run != DryRun::Client {
        let v = if on { json!(true) } else { Value::Null };
        common::patch(
            ctx,
            &path,
            "application/merge-patch+json",
            &json!({"spec": {"unschedulable": v}}),
            "rkubectl-cordon",
            dry_run,
        )
        .await?;
    }
    outln(&format!("node/{name} {word}{}", dry_run.suffix()));
    Ok(())
}

/// Runs `cordon` (`on`) or `uncordon`.
pub async fn cordon(ctx: &Ctx, args: &NodeArgs, on: bool) -> Result<()> {
    for n in node_names(ctx, &args.nodes, &args.selector).await? {
        set_unschedulable(ctx, &n, on, args.dry_run).await?;
    }
    Ok(())
}

/// Why a pod blocks a drain, or is skipped.
#[derive(Debug, PartialEq, Eq)]
pub enum PodVerdict {
    /// Evict it.
    Evict,
    /// Skip it silently (mirror pods, finished pods).
    Skip,
    /// Skip it with a warning.
    Warn(&'static str),
    /// It blocks the drain.
    Block(&'static str),
}

/// kubectl's drain filters for one pod.
pub fn verdict(pod: &Value, args: &DrainArgs) -> PodVerdict {
    if pod["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_string() {
        return PodVerdict::Skip;
    }
    if matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    ) {
        return PodVerdict::Evict;
    }
    let controller = pod["metadata"]["ownerReferences"].as_array().and_then(|o| {
        o.iter()
            .find(|r| r["controller"].as_bool() == Some(true))
            .cloned()
    });
    if controller
        .as_ref()
        .is_some_and(|c| c["kind"] == "DaemonSet")
    {
        return if args.ignore_daemonsets {
            PodVerdict::Warn("ignoring DaemonSet-managed Pods")
        } else {
            PodVerdict::Block(
                "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore)",
            )
        };
    }
    if controller.is_none() && !args.force {
        return PodVerdict::Block(
            "cannot delete Pods that declare no controller (use --force to override)",
        );
    }
    let empty_dir = pod["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|v| v["emptyDir"].is_object());
    if empty_dir && !args.delete_emptydir_data {
        return PodVerdict::Block(
            "cannot delete Pods with local storage (use --delete-emptydir-data to override)",
        );
    }
    if controller.is_none() {
        return PodVerdict::Warn("deleting Pods that declare no controller");
    }
    PodVerdict::Evict
}

/// Runs `drain`.
pub async fn drain(ctx: &Ctx, args: &DrainArgs) -> Result<()> {
    let timeout = rkube_machinery::duration::parse(&args.timeout).filter(|d| !d.is_zero());
    for node in node_names(ctx, &args.nodes, &args.selector).await? {
        set_unschedulable(ctx, &node, true, args.dry_run).await?;
        let mut q = vec![("fieldSelector", format!("spec.nodeName={node}"))];
        if let Some(sel) = &args.pod_selector {
            q.push(("labelSelector", sel.clone()));
        }
        let list = ctx.get_json(&format!("/api/v1/pods{}", query(&q))).await?;
        let pods = list["items"].as_array().cloned().unwrap_or_default();
        let mut blocked: Vec<(&'static str, String)> = Vec::new();
        let mut warnings: Vec<(&'static str, String)> = Vec::new();
        let mut evict = Vec::new();
        for p in &pods {
            let key = format!(
                "{}/{}",
                p["metadata"]["namespace"].as_str().unwrap_or_default(),
                p["metadata"]["name"].as_str().unwrap_or_default()
            );
            match verdict(p, args) {
                PodVerdict::Evict => evict.push(p.clone()),
                PodVerdict::Skip => {}
                PodVerdict::Warn(w) => {
                    warnings.push((w, key));
                    if w.starts_with("deleting") {
                        evict.push(p.clone());
                    }
                }
                PodVerdict::Block(b) => blocked.push((b, key)),
            }
        }
        if !blocked.is_empty() {
            let msg = group(&blocked);
            errln(&format!(
                "error: unable to drain node \"{node}\" due to error: {msg}, continuing command..."
            ));
            errln("There are pending nodes to be drained:");
            errln(&format!(" {node}"));
            // kubectl ends with the bare message.
            return Err(CtlError::Plain(msg));
        }
        if !warnings.is_empty() {
            errln(&format!("Warning: {}", group(&warnings)));
        }
        let mut waiting = Vec::new();
        for p in &evict {
            let ns = p["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let name = p["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if args.dry_run == DryRun::Client {
                outln(&format!("evicting pod {ns}/{name} (dry run)"));
                continue;
            }
            let mut delete_options = json!({});
            if args.grace_period >= 0 {
                delete_options["gracePeriodSeconds"] = json!(args.grace_period);
            }
            if args.dry_run == DryRun::Server {
                delete_options["dryRun"] = json!(["All"]);
            }
            if args.disable_eviction {
                ctx.request(
                    http::Method::DELETE,
                    &format!("/api/v1/namespaces/{ns}/pods/{name}"),
                    None,
                    Some("application/json"),
                    serde_json::to_vec(&delete_options)?,
                )
                .await?;
            } else {
                outln(&format!("evicting pod {ns}/{name}"));
                let body = json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": ns}, "deleteOptions": delete_options});
                let start = Instant::now();
                loop {
                    match ctx
                        .request(
                            http::Method::POST,
                            &format!("/api/v1/namespaces/{ns}/pods/{name}/eviction"),
                            None,
                            Some("application/json"),
                            serde_json::to_vec(&body)?,
                        )
                        .await
                    {
                        Ok(_) => break,
                        Err(e) if e.is_not_found() => break,
                        Err(e) if e.status_code() == Some(429) => {
                            errln(&format!(
                                "error when evicting pods/\"{name}\" -n \"{ns}\" (will retry after 5s): {e}"
                            ));
                            if timeout.is_some_and(|t| start.elapsed() > t) {
                                return Err(e);
                            }
                            tokio::time::sleep(Duration::from_secs(5)).await;
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            waiting.push((
                ns,
                name,
                p["metadata"]["uid"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            ));
        }
        if args.dry_run == DryRun::None {
            let start = Instant::now();
            for (ns, name, uid) in waiting {
                loop {
                    let gone = match ctx
                        .get_json(&format!("/api/v1/namespaces/{ns}/pods/{name}"))
                        .await
                    {
                        Ok(p) => p["metadata"]["uid"].as_str() != Some(uid.as_str()),
                        Err(e) if e.is_not_found() => true,
                        Err(e) => return Err(e),
                    };
                    if gone {
                        outln(&format!(
                            "pod/{name} {}",
                            if args.disable_eviction {
                                "deleted"
                            } else {
                                "evicted"
                            }
                        ));
                        break;
                    }
                    if timeout.is_some_and(|t| start.elapsed() > t) {
                        return Err(CtlError::Other(format!(
                            "drain did not complete within {}",
                            args.timeout
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
        outln(&format!("node/{node} drained{}", args.dry_run.suffix()));
    }
    Ok(())
}

/// `reason: ns/a, ns/b; reason2: …` as kubectl groups drain messages.
fn group(items: &[(&'static str, String)]) -> String {
    let mut reasons: Vec<&'static str> = Vec::new();
    for (r, _) in items {
        if !reasons.contains(r) {
            reasons.push(r);
        }
    }
    reasons
        .iter()
        .map(|r| {
            let pods: Vec<&str> = items
                .iter()
                .filter(|(x, _)| x == r)
                .map(|(_, p)| p.as_str())
                .collect();
            format!("{r}: {}", pods.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(extra: &[&str]) -> DrainArgs {
        let mut v = vec!["rkubectl", "drain", "n1"];
        v.extend_from_slice(extra);
        match crate::cli::Cli::parse_from(v).command {
            crate::cli::Command::Drain(d) => d,
            _ => unreachable!(),
        }
    }

    #[test]
    fn drain_filters() {
        let ds =
            json!({"metadata": {"ownerReferences": [{"kind": "DaemonSet", "controller": true}]}});
        let rs_empty = json!({"metadata": {"ownerReferences": [{"kind": "ReplicaSet", "controller": true}]}, "spec": {"volumes": [{"emptyDir": {}}]}});
        let bare = json!({"metadata": {}});
        let mirror = json!({"metadata": {"annotations": {"kubernetes.io/config.mirror": "x"}}});
        let a = args(&[]);
        assert!(matches!(verdict(&ds, &a), PodVerdict::Block(_)));
        assert!(matches!(verdict(&rs_empty, &a), PodVerdict::Block(_)));
        assert!(matches!(verdict(&bare, &a), PodVerdict::Block(_)));
        assert_eq!(verdict(&mirror, &a), PodVerdict::Skip);
        let a = args(&["--ignore-daemonsets", "--delete-emptydir-data", "--force"]);
        assert!(matches!(verdict(&ds, &a), PodVerdict::Warn(_)));
        assert_eq!(verdict(&rs_empty, &a), PodVerdict::Evict);
        assert!(matches!(verdict(&bare, &a), PodVerdict::Warn(_)));
        assert_eq!(
            group(&[
                ("r1", "a/p".into()),
                ("r2", "a/q".into()),
                ("r1", "b/s".into())
            ]),
            "r1: a/p, b/s; r2: a/q"
        );
    }
}
