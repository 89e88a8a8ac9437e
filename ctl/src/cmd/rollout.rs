//! `rollout status|history|undo|restart|pause|resume` over Deployments (status also for
//! DaemonSets and StatefulSets): status follows the object and prints kubectl's progress
//! lines, failing on `ProgressDeadlineExceeded` or `--timeout`; history and undo read the
//! ReplicaSets the Deployment owns and their `deployment.kubernetes.io/revision`.

use serde_json::{Value, json};

use crate::cli::{DryRun, RolloutCommand};
use crate::client::Ctx;
use crate::cmd::common;
use crate::cmd::describe::{owned_replicasets, revision, same_template};
use crate::error::{CtlError, Result};
use crate::output::{out, outln};
use crate::print::tabwriter::TabWriter;
use crate::resource::{ExpandOptions, Target};

/// Runs a `rollout` subcommand.
pub async fn run(ctx: &Ctx, cmd: &RolloutCommand) -> Result<()> {
    let resources = match cmd {
        RolloutCommand::Status { resources, .. }
        | RolloutCommand::History { resources, .. }
        | RolloutCommand::Undo { resources, .. }
        | RolloutCommand::Restart { resources }
        | RolloutCommand::Pause { resources }
        | RolloutCommand::Resume { resources } => resources,
    };
    let targets = common::targets(ctx, resources, &[], &ExpandOptions::default()).await?;
    for t in targets {
        let kind = t.info.kind.as_str();
        let supported = match cmd {
            RolloutCommand::Status { .. } => {
                matches!(kind, "Deployment" | "DaemonSet" | "StatefulSet")
            }
            _ => kind == "Deployment",
        };
        if !supported {
            return Err(CtlError::Other(format!(
                "no {} for {}",
                "rollout support",
                t.info.group_resource()
            )));
        }
        match cmd {
            RolloutCommand::Status {
                watch,
                timeout,
                revision,
                ..
            } => status(ctx, &t, *watch, timeout, *revision).await?,
            RolloutCommand::History { revision, .. } => history(ctx, &t, *revision).await?,
            RolloutCommand::Undo {
                to_revision,
                dry_run,
                ..
            } => undo(ctx, &t, *to_revision, *dry_run).await?,
            RolloutCommand::Restart { .. } => restart(ctx, &t).await?,
            RolloutCommand::Pause { .. } => pause(ctx, &t, true).await?,
            RolloutCommand::Resume { .. } => pause(ctx, &t, false).await?,
        }
    }
    Ok(())
}

/// kubectl's status line for a Deployment, and whether the rollout is done.
pub fn deployment_status(d: &Value) -> Result<(String, bool)> {
    let name = d["metadata"]["name"].as_str().unwrap_or_default();
    let n = |v: &Value| v.as_i64().unwrap_or(0);
    let st = &d["status"];
    if n(&d["metadata"]["generation"]) <= n(&st["observedGeneration"]) {
        let progressing = st["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Progressing"));
        if progressing.is_some_and(|c| c["reason"] == "ProgressDeadlineExceeded") {
            return Err(CtlError::Other(format!(
                "deployment \"{name}\" exceeded its progress deadline"
            )));
        }
        let replicas = d["spec"]["replicas"].as_i64().unwrap_or(1);
        let updated = n(&st["updatedReplicas"]);
        if updated < replicas {
            return Ok((
                format!(
                    "Waiting for deployment \"{name}\" rollout to finish: {updated} out of {replicas} new replicas have been updated..."
                ),
                false,
            ));
        }
        if n(&st["replicas"]) > updated {
            return Ok((
                format!(
                    "Waiting for deployment \"{name}\" rollout to finish: {} old replicas are pending termination...",
                    n(&st["replicas"]) - updated
                ),
                false,
            ));
        }
        if n(&st["availableReplicas"]) < updated {
            return Ok((
                format!(
                    "Waiting for deployment \"{name}\" rollout to finish: {} of {updated} updated replicas are available...",
                    n(&st["availableReplicas"])
                ),
                false,
            ));
        }
        return Ok((
            format!("deployment \"{name}\" successfully rolled out"),
            true,
        ));
    }
    Ok((
        "Waiting for deployment spec update to be observed...".into(),
        false,
    ))
}

fn daemonset_status(d: &Value) -> (String, bool) {
    let name = d["metadata"]["name"].as_str().unwrap_or_default();
    let n = |v: &Value| v.as_i64().unwrap_or(0);
    let st = &d["status"];
    if n(&d["metadata"]["generation"]) > n(&st["observedGeneration"]) {
        return (
            "Waiting for daemon set spec update to be observed...".into(),
            false,
        );
    }
    let desired = n(&st["desiredNumberScheduled"]);
    if n(&st["updatedNumberScheduled"]) < desired {
        return (
            format!(
                "Waiting for daemon set \"{name}\" rollout to finish: {} out of {desired} new pods have been updated...",
                n(&st["updatedNumberScheduled"])
            ),
            false,
        );
    }
    if n(&st["numberAvailable"]) < desired {
        return (
            format!(
                "Waiting for daemon set \"{name}\" rollout to finish: {} of {desired} updated pods are available...",
                n(&st["numberAvailable"])
            ),
            false,
        );
    }
    (
        format!("daemon set \"{name}\" successfully rolled out"),
        true,
    )
}

fn statefulset_status(s: &Value) -> (String, bool) {
    let n = |v: &Value| v.as_i64().unwrap_or(0);
    let st = &s["status"];
    if n(&s["metadata"]["generation"]) > n(&st["observedGeneration"]) {
        return (
            "Waiting for statefulset spec update to be observed...".into(),
            false,
        );
    }
    let replicas = s["spec"]["replicas"].as_i64().unwrap_or(1);
    if n(&st["readyReplicas"]) < replicas {
        return (
            format!(
                "Waiting for {} pods to be ready...",
                replicas - n(&st["readyReplicas"])
            ),
            false,
        );
    }
    if st["updateRevision"] != st["currentRevision"] {
        return (
            format!(
                "waiting for statefulset rolling update to complete {} pods at revision {}...",
                n(&st["updatedReplicas"]),
                st["updateRevision"].as_str().unwrap_or_default()
            ),
            false,
        );
    }
    (
        format!(
            "statefulset rolling update complete {} pods at revision {}...",
            n(&st["currentReplicas"]),
            st["currentRevision"].as_str().unwrap_or_default()
        ),
        true,
    )
}

/// The status line of the object and whether its rollout is done (`rev`: the revision the
/// Deployment must be at).
fn object_status(kind: &str, obj: &Value, rev: i64) -> Result<(String, bool)> {
    match kind {
        "Deployment" => {
            if rev > 0 {
                let running = revision(obj);
                if running != rev {
                    return Err(CtlError::Other(format!(
                        "desired revision ({rev}) is different from the running revision ({running})"
                    )));
                }
            }
            deployment_status(obj)
        }
        "DaemonSet" => Ok(daemonset_status(obj)),
        _ => Ok(statefulset_status(obj)),
    }
}

/// `rollout status`: a status line for the object now and, with `--watch` (the default), one
/// per change the watch reports until the rollout is done, fails, or `--timeout` passes.
async fn status(ctx: &Ctx, t: &Target, watch: bool, timeout: &str, rev: i64) -> Result<()> {
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, watcher};

    let timeout = crate::util::parse_duration(timeout)
        .ok_or_else(|| CtlError::Usage(format!("invalid --timeout {timeout:?}")))?;
    // The object must exist (a NotFound is the answer otherwise).
    let obj = ctx.get_json(&t.path()).await?;
    let kind = t.info.kind.as_str();
    if !watch {
        let (msg, _) = object_status(kind, &obj, rev)?;
        outln(&msg);
        return Ok(());
    }
    let api = ctx.api(&t.info, t.namespace.as_deref().unwrap_or_default());
    let cfg = watcher::Config::default().fields(&format!("metadata.name={}", t.name));
    let follow = async {
        let mut events = Box::pin(watcher(api, cfg).default_backoff());
        while let Some(ev) = events.next().await {
            let obj = match ev.map_err(|e| CtlError::Other(e.to_string()))? {
                watcher::Event::Apply(o) | watcher::Event::InitApply(o) => o,
                watcher::Event::Delete(_) => {
                    return Err(CtlError::Other("object has been deleted".into()));
                }
                watcher::Event::Init | watcher::Event::InitDone => continue,
            };
            let (msg, done) = object_status(kind, &serde_json::to_value(obj)?, rev)?;
            outln(&msg);
            if done {
                return Ok(());
            }
        }
        Ok(())
    };
    if timeout.is_zero() {
        return follow.await;
    }
    tokio::time::timeout(timeout, follow)
        .await
        .map_err(|_| CtlError::Other("timed out waiting for the condition".into()))?
}

async fn history(ctx: &Ctx, t: &Target, rev: i64) -> Result<()> {
    let d = ctx.get_json(&t.path()).await?;
    let mut rss = owned_replicasets(ctx, &d).await?;
    rss.sort_by_key(revision);
    if rev > 0 {
        let rs = rss
            .iter()
            .find(|rs| revision(rs) == rev)
            .ok_or_else(|| CtlError::Other("unable to find the specified revision".into()))?;
        // kubectl shows the ReplicaSet's template as it is (with `pod-template-hash`).
        let tpl = &rs["spec"]["template"];
        out(&format!("{} with revision #{rev}\n", t.kind_name()));
        out(&format!(
            "{}\n",
            crate::cmd::describe::pod_template_text(tpl)
        ));
        return Ok(());
    }
    let mut w = TabWriter::with(0, 2);
    w.write("REVISION\tCHANGE-CAUSE\n");
    for rs in &rss {
        let cause = rs["metadata"]["annotations"]["kubernetes.io/change-cause"]
            .as_str()
            .unwrap_or("<none>");
        w.write(&format!("{}\t{cause}\n", revision(rs)));
    }
    out(&format!("{} \n{}\n", t.kind_name(), w.flush()));
    Ok(())
}

async fn undo(ctx: &Ctx, t: &Target, to: i64, dry_run: DryRun) -> Result<()> {
    let d = ctx.get_json(&t.path()).await?;
    let name = t.name.as_str();
    if d["spec"]["paused"].as_bool() == Some(true) {
        return Err(CtlError::Other(
            "you cannot rollback a paused deployment; resume it first with 'rkubectl rollout resume' and try again".into(),
        ));
    }
    let rss = owned_replicasets(ctx, &d).await?;
    let target = if to == 0 {
        // The previous revision: the highest one below the current.
        let mut revs: Vec<&Value> = rss.iter().collect();
        revs.sort_by_key(|rs| std::cmp::Reverse(revision(rs)));
        if revs.len() < 2 {
            return Err(CtlError::Other(format!(
                "no rollout history found for deployment \"{name}\""
            )));
        }
        revs[1].clone()
    } else {
        rss.iter()
            .find(|rs| revision(rs) == to)
            .cloned()
            .ok_or_else(|| {
                CtlError::Other(format!("unable to find specified revision {to} in history"))
            })?
    };
    if same_template(&target, &d) {
        outln(&format!(
            "{} skipped rollback (current template already matches revision {})",
            t.kind_name(),
            revision(&target)
        ));
        return Ok(());
    }
    let mut tpl = target["spec"]["template"].clone();
    if let Some(l) = tpl["metadata"]["labels"].as_object_mut() {
        l.remove("pod-template-hash");
    }
    let mut annotations = d["metadata"]["annotations"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for (k, v) in target["metadata"]["annotations"]
        .as_object()
        .into_iter()
        .flatten()
    {
        if !matches!(
            k.as_str(),
            "deployment.kubernetes.io/revision"
                | "deployment.kubernetes.io/revision-history"
                | "deployment.kubernetes.io/desired-replicas"
                | "deployment.kubernetes.io/max-replicas"
                | "kubectl.kubernetes.io/last-applied-configuration"
        ) {
            annotations.insert(k.clone(), v.clone());
        }
    }
    let patch = json!([
        {"op": "replace", "path": "/spec/template", "value": tpl},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    ]);
    if dry_run != DryRun::Client {
        common::patch(
            ctx,
            &t.path(),
            "application/json-patch+json",
            &patch,
            "rkubectl-rollout",
            dry_run,
        )
        .await?;
    }
    outln(&format!(
        "{} rolled back{}",
        t.kind_name(),
        dry_run.suffix()
    ));
    Ok(())
}

async fn restart(ctx: &Ctx, t: &Target) -> Result<()> {
    let d = ctx.get_json(&t.path()).await?;
    if d["spec"]["paused"].as_bool() == Some(true) {
        return Err(CtlError::Other(format!(
            "{} can't restart paused deployment (run rollout resume first)",
            t.kind_name()
        )));
    }
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": now}}}}});
    common::patch(
        ctx,
        &t.path(),
        "application/strategic-merge-patch+json",
        &patch,
        "rkubectl-rollout",
        DryRun::None,
    )
    .await?;
    outln(&format!("{} restarted", t.kind_name()));
    Ok(())
}

async fn pause(ctx: &Ctx, t: &Target, pause: bool) -> Result<()> {
    let d = ctx.get_json(&t.path()).await?;
    let paused = d["spec"]["paused"].as_bool() == Some(true);
    if paused == pause {
        return Err(CtlError::Other(format!(
            "{} \"{}\" is {}",
            t.info.group_resource(),
            t.name,
            if pause {
                "already paused"
            } else {
                "not paused"
            }
        )));
    }
    // kubectl's patch sets `paused: true`, or removes the field on resume.
    let patch = json!({"spec": {"paused": if pause { Value::Bool(true) } else { Value::Null }}});
    common::patch(
        ctx,
        &t.path(),
        "application/merge-patch+json",
        &patch,
        "rkubectl-rollout",
        DryRun::None,
    )
    .await?;
    outln(&format!(
        "{} {}",
        t.kind_name(),
        if pause { "paused" } else { "resumed" }
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(generation: i64, observed: i64, replicas: i64, status: Value) -> Value {
        let mut st = status;
        st["observedGeneration"] = json!(observed);
        json!({"metadata": {"name": "web", "generation": generation}, "spec": {"replicas": replicas}, "status": st})
    }

    #[test]
    fn status_lines_like_kubectl() {
        let (m, done) = deployment_status(&dep(2, 1, 3, json!({}))).unwrap();
        assert_eq!(m, "Waiting for deployment spec update to be observed...");
        assert!(!done);
        let (m, _) = deployment_status(&dep(1, 1, 3, json!({"updatedReplicas": 1}))).unwrap();
        assert_eq!(
            m,
            "Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas have been updated..."
        );
        let (m, _) =
            deployment_status(&dep(1, 1, 3, json!({"updatedReplicas": 3, "replicas": 4}))).unwrap();
        assert_eq!(
            m,
            "Waiting for deployment \"web\" rollout to finish: 1 old replicas are pending termination..."
        );
        let (m, _) = deployment_status(&dep(
            1,
            1,
            3,
            json!({"updatedReplicas": 3, "replicas": 3, "availableReplicas": 2}),
        ))
        .unwrap();
        assert_eq!(
            m,
            "Waiting for deployment \"web\" rollout to finish: 2 of 3 updated replicas are available..."
        );
        let (m, done) = deployment_status(&dep(
            1,
            1,
            3,
            json!({"updatedReplicas": 3, "replicas": 3, "availableReplicas": 3}),
        ))
        .unwrap();
        assert_eq!(m, "deployment \"web\" successfully rolled out");
        assert!(done);
        let e = deployment_status(&dep(
            1,
            1,
            3,
            json!({"conditions": [{"type": "Progressing", "reason": "ProgressDeadlineExceeded"}]}),
        ))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "error: deployment \"web\" exceeded its progress deadline"
        );
    }
}
