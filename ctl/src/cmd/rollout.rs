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
        check_supported(cmd, &t)?;
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

/// `Kind.group` (`ReplicaSet.apps`), as kubectl names a kind in its messages.
fn group_kind(t: &Target) -> String {
    if t.info.group.is_empty() {
        t.info.kind.clone()
    } else {
        format!("{}.{}", t.info.kind, t.info.group)
    }
}

/// kubectl's refusal of a subcommand for a kind it does not handle.
fn check_supported(cmd: &RolloutCommand, t: &Target) -> Result<()> {
    let workload = matches!(
        (t.info.group.as_str(), t.info.kind.as_str()),
        ("apps", "Deployment" | "DaemonSet" | "StatefulSet")
    );
    let deployment = t.info.group == "apps" && t.info.kind == "Deployment";
    let gk = group_kind(t);
    let not_supported = |verb: &str| {
        CtlError::Other(format!(
            "{} \"{}\" {verb} is not supported",
            t.info.group_resource(),
            t.name
        ))
    };
    match cmd {
        RolloutCommand::Status { .. } if !workload => Err(CtlError::Other(format!(
            "no status viewer has been implemented for {gk}"
        ))),
        RolloutCommand::History { .. } if !workload => Err(CtlError::Other(format!(
            "no history viewer has been implemented for \"{gk}\""
        ))),
        RolloutCommand::Undo { .. } if !workload => Err(CtlError::Other(format!(
            "no rollbacker has been implemented for \"{gk}\""
        ))),
        RolloutCommand::Restart { .. } if !workload => Err(not_supported("restarting")),
        RolloutCommand::Pause { .. } if !deployment => Err(not_supported("pausing")),
        RolloutCommand::Resume { .. } if !deployment => Err(not_supported("resuming")),
        _ => Ok(()),
    }
}

/// One revision of a workload: a Deployment's ReplicaSet, or a DaemonSet's or StatefulSet's
/// ControllerRevision.
#[derive(Debug, Clone)]
struct Revision {
    number: i64,
    /// The pod template of the revision.
    template: Value,
    /// `kubernetes.io/change-cause`.
    cause: Option<String>,
    /// A ControllerRevision's data (the patch that restores it).
    data: Option<Value>,
}

/// The ControllerRevisions a DaemonSet or StatefulSet owns (matching its selector).
async fn controller_revisions(ctx: &Ctx, obj: &Value) -> Result<Vec<Revision>> {
    let ns = obj["metadata"]["namespace"].as_str().unwrap_or_default();
    let uid = obj["metadata"]["uid"].as_str().unwrap_or_default();
    let selector = crate::cmd::describe::format_selector(&obj["spec"]["selector"]);
    let list = ctx
        .get_json(&format!(
            "/apis/apps/v1/namespaces/{ns}/controllerrevisions{}",
            crate::client::query(&[("labelSelector", selector)])
        ))
        .await
        .map_err(|e| {
            let why = match e {
                CtlError::Api(s) => s.message,
                other => other.to_string(),
            };
            CtlError::Other(format!(
                "unable to find history controlled by {} {}: {why}",
                obj["kind"].as_str().unwrap_or_default(),
                obj["metadata"]["name"].as_str().unwrap_or_default()
            ))
        })?;
    Ok(list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|cr| {
            cr["metadata"]["ownerReferences"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|o| o["uid"] == uid && o["controller"].as_bool() == Some(true))
        })
        .map(|cr| {
            let mut template = cr["data"]["spec"]["template"].clone();
            if let Some(m) = template.as_object_mut() {
                m.remove("$patch");
            }
            Revision {
                number: cr["revision"].as_i64().unwrap_or(0),
                template,
                cause: cr["metadata"]["annotations"]["kubernetes.io/change-cause"]
                    .as_str()
                    .map(str::to_string),
                data: Some(cr["data"].clone()),
            }
        })
        .collect())
}

/// The revisions of a workload, oldest first (one per number, as kubectl keeps them).
async fn revisions(ctx: &Ctx, t: &Target, obj: &Value) -> Result<Vec<Revision>> {
    let mut revs = if t.info.kind == "Deployment" {
        owned_replicasets(ctx, obj)
            .await?
            .into_iter()
            .map(|rs| Revision {
                number: revision(&rs),
                cause: rs["metadata"]["annotations"]["kubernetes.io/change-cause"]
                    .as_str()
                    .map(str::to_string),
                template: rs["spec"]["template"].clone(),
                data: None,
            })
            .collect()
    } else {
        controller_revisions(ctx, obj).await?
    };
    revs.sort_by_key(|r| r.number);
    revs.dedup_by_key(|r| r.number);
    Ok(revs)
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

/// kubectl's status line for a DaemonSet, and whether the rollout is done.
pub fn daemonset_status(d: &Value) -> Result<(String, bool)> {
    let name = d["metadata"]["name"].as_str().unwrap_or_default();
    let n = |v: &Value| v.as_i64().unwrap_or(0);
    let st = &d["status"];
    if d["spec"]["updateStrategy"]["type"].as_str() != Some("RollingUpdate") {
        return Err(CtlError::Other(
            "rollout status is only available for RollingUpdate strategy type".into(),
        ));
    }
    if n(&d["metadata"]["generation"]) > n(&st["observedGeneration"]) {
        return Ok((
            "Waiting for daemon set spec update to be observed...".into(),
            false,
        ));
    }
    let desired = n(&st["desiredNumberScheduled"]);
    if n(&st["updatedNumberScheduled"]) < desired {
        return Ok((
            format!(
                "Waiting for daemon set \"{name}\" rollout to finish: {} out of {desired} new pods have been updated...",
                n(&st["updatedNumberScheduled"])
            ),
            false,
        ));
    }
    if n(&st["numberAvailable"]) < desired {
        return Ok((
            format!(
                "Waiting for daemon set \"{name}\" rollout to finish: {} of {desired} updated pods are available...",
                n(&st["numberAvailable"])
            ),
            false,
        ));
    }
    Ok((
        format!("daemon set \"{name}\" successfully rolled out"),
        true,
    ))
}

/// kubectl's status line for a StatefulSet, and whether the rollout is done.
pub fn statefulset_status(s: &Value) -> Result<(String, bool)> {
    let n = |v: &Value| v.as_i64().unwrap_or(0);
    let st = &s["status"];
    let strategy = &s["spec"]["updateStrategy"];
    if strategy["type"].as_str() != Some("RollingUpdate") {
        return Err(CtlError::Other(
            "rollout status is only available for RollingUpdate strategy type".into(),
        ));
    }
    if n(&st["observedGeneration"]) == 0
        || n(&s["metadata"]["generation"]) > n(&st["observedGeneration"])
    {
        return Ok((
            "Waiting for statefulset spec update to be observed...".into(),
            false,
        ));
    }
    let replicas = s["spec"]["replicas"].as_i64();
    if let Some(r) = replicas
        && n(&st["readyReplicas"]) < r
    {
        return Ok((
            format!(
                "Waiting for {} pods to be ready...",
                r - n(&st["readyReplicas"])
            ),
            false,
        ));
    }
    if strategy["rollingUpdate"].is_object() {
        if let (Some(r), Some(p)) = (replicas, strategy["rollingUpdate"]["partition"].as_i64())
            && n(&st["updatedReplicas"]) < r - p
        {
            return Ok((
                format!(
                    "Waiting for partitioned roll out to finish: {} out of {} new pods have been updated...",
                    n(&st["updatedReplicas"]),
                    r - p
                ),
                false,
            ));
        }
        return Ok((
            format!(
                "partitioned roll out complete: {} new pods have been updated...",
                n(&st["updatedReplicas"])
            ),
            true,
        ));
    }
    if st["updateRevision"] != st["currentRevision"] {
        return Ok((
            format!(
                "waiting for statefulset rolling update to complete {} pods at revision {}...",
                n(&st["updatedReplicas"]),
                st["updateRevision"].as_str().unwrap_or_default()
            ),
            false,
        ));
    }
    Ok((
        format!(
            "statefulset rolling update complete {} pods at revision {}...",
            n(&st["currentReplicas"]),
            st["currentRevision"].as_str().unwrap_or_default()
        ),
        true,
    ))
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
        "DaemonSet" => daemonset_status(obj),
        _ => statefulset_status(obj),
    }
}

/// `rollout status`: a status line for the object now and, with `--watch` (the default), one
/// per change the watch reports until the rollout is done, fails, or `--timeout` passes.
async fn status(ctx: &Ctx, t: &Target, watch: bool, timeout: &str, rev: i64) -> Result<()> {
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, watcher};

    let timeout = rkube_machinery::duration::parse(timeout)
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
    let obj = ctx.get_json(&t.path()).await?;
    let revs = revisions(ctx, t, &obj).await?;
    if revs.is_empty() {
        out(&format!("{} \nNo rollout history found.\n", t.kind_name()));
        return Ok(());
    }
    if rev > 0 {
        let r = revs
            .iter()
            .find(|r| r.number == rev)
            .ok_or_else(|| CtlError::Other("unable to find the specified revision".into()))?;
        // The template as the revision holds it (a ReplicaSet's keeps `pod-template-hash`).
        out(&format!("{} with revision #{rev}\n", t.kind_name()));
        out(&format!(
            "{}\n",
            crate::cmd::describe::pod_template_text(&r.template)
        ));
        return Ok(());
    }
    let mut w = TabWriter::with(0, 2);
    w.write("REVISION\tCHANGE-CAUSE\n");
    for r in &revs {
        w.write(&format!(
            "{}\t{}\n",
            r.number,
            r.cause.as_deref().unwrap_or("<none>")
        ));
    }
    out(&format!("{} \n{}\n", t.kind_name(), w.flush()));
    Ok(())
}

/// `rollout undo` of a DaemonSet or StatefulSet: the ControllerRevision's data is the
/// strategic merge patch that restores its template.
async fn undo_controller_revision(ctx: &Ctx, t: &Target, to: i64, dry_run: DryRun) -> Result<()> {
    let obj = ctx.get_json(&t.path()).await?;
    let revs = revisions(ctx, t, &obj).await?;
    let target = if to == 0 {
        (revs.len() >= 2).then(|| &revs[revs.len() - 2])
    } else {
        revs.iter().find(|r| r.number == to)
    };
    let Some(target) = target else {
        return Err(CtlError::Other(format!(
            "unable to find specified revision {to} in history"
        )));
    };
    if target.template == obj["spec"]["template"] {
        outln(&format!(
            "{} skipped rollback (current template already matches revision {})",
            t.kind_name(),
            target.number
        ));
        return Ok(());
    }
    if dry_run != DryRun::Client {
        common::patch(
            ctx,
            &t.path(),
            "application/strategic-merge-patch+json",
            target.data.as_ref().unwrap_or(&Value::Null),
            "rkubectl-rollout",
            dry_run,
        )
        .await
        .map_err(|e| {
            CtlError::Other(format!(
                "failed restoring revision {}: {}",
                target.number,
                e.to_string().trim_start_matches("error: ")
            ))
        })?;
    }
    outln(&format!(
        "{} rolled back{}",
        t.kind_name(),
        dry_run.suffix()
    ));
    Ok(())
}

async fn undo(ctx: &Ctx, t: &Target, to: i64, dry_run: DryRun) -> Result<()> {
    if t.info.kind != "Deployment" {
        return undo_controller_revision(ctx, t, to, dry_run).await;
    }
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

    #[test]
    fn daemonset_and_statefulset_lines_like_kubectl() {
        let ds = |st: Value| json!({"metadata": {"name": "agent", "generation": 1}, "spec": {"updateStrategy": {"type": "RollingUpdate"}}, "status": st});
        assert_eq!(
            daemonset_status(&ds(json!({"observedGeneration": 1, "desiredNumberScheduled": 2, "updatedNumberScheduled": 1}))).unwrap().0,
            "Waiting for daemon set \"agent\" rollout to finish: 1 out of 2 new pods have been updated..."
        );
        assert_eq!(
            daemonset_status(&ds(json!({"observedGeneration": 1, "desiredNumberScheduled": 2, "updatedNumberScheduled": 2, "numberAvailable": 2}))).unwrap(),
            ("daemon set \"agent\" successfully rolled out".to_string(), true)
        );
        let ondelete =
            json!({"metadata": {"name": "x"}, "spec": {"updateStrategy": {"type": "OnDelete"}}});
        assert!(daemonset_status(&ondelete).is_err());
        let sts = |spec: Value, st: Value| json!({"metadata": {"name": "db", "generation": 1}, "spec": spec, "status": st});
        let partitioned = json!({"replicas": 3, "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}});
        assert_eq!(
            statefulset_status(&sts(partitioned.clone(), json!({})))
                .unwrap()
                .0,
            "Waiting for statefulset spec update to be observed..."
        );
        assert_eq!(
            statefulset_status(&sts(
                partitioned.clone(),
                json!({"observedGeneration": 1, "readyReplicas": 1})
            ))
            .unwrap()
            .0,
            "Waiting for 2 pods to be ready..."
        );
        assert_eq!(
            statefulset_status(&sts(
                partitioned.clone(),
                json!({"observedGeneration": 1, "readyReplicas": 3, "updatedReplicas": 1})
            ))
            .unwrap()
            .0,
            "Waiting for partitioned roll out to finish: 1 out of 2 new pods have been updated..."
        );
        assert_eq!(
            statefulset_status(&sts(
                partitioned,
                json!({"observedGeneration": 1, "readyReplicas": 3, "updatedReplicas": 2})
            ))
            .unwrap(),
            (
                "partitioned roll out complete: 2 new pods have been updated...".to_string(),
                true
            )
        );
        let plain = json!({"replicas": 1, "updateStrategy": {"type": "RollingUpdate"}});
        assert_eq!(
            statefulset_status(&sts(plain, json!({"observedGeneration": 1, "readyReplicas": 1, "currentReplicas": 1, "currentRevision": "db-1", "updateRevision": "db-1"}))).unwrap().0,
            "statefulset rolling update complete 1 pods at revision db-1..."
        );
    }
}
