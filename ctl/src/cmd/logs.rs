//! `logs`: a container's log from `pods/log` (served by the kubelet through the API server):
//! `-f`, `-c`, `--previous`, `--tail`, `--since`, `--timestamps`; `TYPE/NAME` picks a pod of a
//! workload; `-l` reads several pods with `[pod/NAME/CONTAINER]` prefixes.

use futures::AsyncBufReadExt;
use futures::StreamExt;
use serde_json::Value;

use crate::cli::LogsArgs;
use crate::client::{Ctx, query};
use crate::error::{CtlError, Result};
use crate::output::{errln, out};

/// Runs `logs`.
pub async fn run(ctx: &Ctx, args: &LogsArgs) -> Result<()> {
    let ns = ctx.namespace.clone();
    let mut container = args.container.clone();
    let pods: Vec<Value> = if let Some(sel) = &args.selector {
        if !args.target.is_empty() {
            return Err(CtlError::Usage(
                "only one of a selector or a pod name may be given".into(),
            ));
        }
        let list = ctx
            .get_json(&format!(
                "/api/v1/namespaces/{ns}/pods{}",
                query(&[("labelSelector", sel.clone())])
            ))
            .await?;
        let items = list["items"].as_array().cloned().unwrap_or_default();
        if items.len() > args.max_log_requests && args.follow {
            return Err(CtlError::Other(format!(
                "you are attempting to follow {} log streams, but maximum allowed concurrency is {}, use --max-log-requests to increase the limit",
                items.len(),
                args.max_log_requests
            )));
        }
        if items.is_empty() {
            errln(&format!("No resources found in {ns} namespace."));
        }
        items
    } else {
        let Some(first) = args.target.first() else {
            return Err(CtlError::Usage(
                "expected POD or TYPE/NAME is a required argument for the logs command".into(),
            ));
        };
        if let Some(c) = args.target.get(1) {
            container = Some(c.clone());
        }
        vec![resolve_pod(ctx, &ns, first).await?]
    };
    let multi = args.selector.is_some();
    let tail = if args.tail < 0 && multi {
        10
    } else {
        args.tail
    };
    let mut streams = Vec::new();
    for pod in &pods {
        let name = pod["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let containers: Vec<String> = pod["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_string))
            .collect();
        let chosen: Vec<String> = if args.all_containers {
            containers.clone()
        } else if let Some(c) = &container {
            if !containers.contains(c) {
                return Err(CtlError::Other(format!(
                    "container {c} is not valid for pod {name}"
                )));
            }
            vec![c.clone()]
        } else {
            let default = pod["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"]
                .as_str()
                .map(str::to_string)
                .or_else(|| containers.first().cloned())
                .unwrap_or_default();
            if containers.len() > 1 {
                errln(&format!(
                    "Defaulted container \"{default}\" out of: {}",
                    containers.join(", ")
                ));
            }
            vec![default]
        };
        for c in chosen {
            let mut q: Vec<(&str, String)> = vec![("container", c.clone())];
            if args.follow {
                q.push(("follow", "true".into()));
            }
            if args.previous {
                q.push(("previous", "true".into()));
            }
            if tail >= 0 {
                q.push(("tailLines", tail.to_string()));
            }
            if let Some(s) = &args.since {
                let d = rkube_machinery::duration::parse(s)
                    .ok_or_else(|| CtlError::Usage(format!("invalid --since {s:?}")))?;
                q.push(("sinceSeconds", d.as_secs().max(1).to_string()));
            }
            if args.timestamps {
                q.push(("timestamps", "true".into()));
            }
            let path = format!("/api/v1/namespaces/{ns}/pods/{name}/log{}", query(&q));
            // Like kubectl, lines carry their source only with `--prefix`.
            let prefix = if args.prefix {
                format!("[pod/{name}/{c}] ")
            } else {
                String::new()
            };
            streams.push((path, prefix));
        }
    }
    if args.follow {
        let mut futs = futures::stream::FuturesUnordered::new();
        for (path, prefix) in streams {
            futs.push(follow(ctx, path, prefix));
        }
        while let Some(r) = futs.next().await {
            r?;
        }
    } else {
        for (path, prefix) in streams {
            let text = ctx.get_text(&path).await?;
            if prefix.is_empty() {
                out(&text);
            } else {
                for line in text.lines() {
                    out(&format!("{prefix}{line}\n"));
                }
            }
        }
    }
    Ok(())
}

async fn follow(ctx: &Ctx, path: String, prefix: String) -> Result<()> {
    let stream = ctx.get_stream(&path).await?;
    let mut lines = stream.lines();
    while let Some(line) = lines.next().await {
        let line = line.map_err(|e| CtlError::Other(e.to_string()))?;
        out(&format!("{prefix}{line}\n"));
    }
    Ok(())
}

/// The pod a `logs` target names: a pod, or a pod of a workload (`deploy/web`, `rs/x`, …).
async fn resolve_pod(ctx: &Ctx, ns: &str, target: &str) -> Result<Value> {
    let (ty, name) = match target.split_once('/') {
        Some((t, n)) => (t, n),
        None => ("pod", target),
    };
    let info = ctx.resolve(ty).await?;
    let obj = ctx
        .get_json(&info.object_path(Some(ns), name))
        .await
        .map_err(|e| {
            if e.is_not_found() {
                // kubectl's words for a missing target of `logs`.
                CtlError::Other(format!(
                    "error from server (NotFound): {} \"{name}\" not found in namespace \"{ns}\"",
                    info.group_resource()
                ))
            } else {
                e
            }
        })?;
    if info.kind == "Pod" {
        return Ok(obj);
    }
    let sel = match info.kind.as_str() {
        "Service" => crate::cmd::describe::format_selector(
            &serde_json::json!({"matchLabels": obj["spec"]["selector"]}),
        ),
        _ => crate::cmd::describe::format_selector(&obj["spec"]["selector"]),
    };
    let list = ctx
        .get_json(&format!(
            "/api/v1/namespaces/{ns}/pods{}",
            query(&[("labelSelector", sel)])
        ))
        .await?;
    let mut pods = list["items"].as_array().cloned().unwrap_or_default();
    // The most active pod first, as kubectl picks it (ties keep the server's name order).
    pods.sort_by(|a, b| {
        if less_active(b, a) {
            std::cmp::Ordering::Less
        } else if less_active(a, b) {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        }
    });
    let count = pods.len();
    let pod = pods.into_iter().next().ok_or_else(|| {
        CtlError::Other(format!("no pods found for {}/{name}", info.kind_prefix()))
    })?;
    if count > 1 {
        errln(&format!(
            "Found {count} pods, using pod/{}",
            pod["metadata"]["name"].as_str().unwrap_or_default()
        ));
    }
    Ok(pod)
}

fn ready_since(p: &Value) -> Option<&str> {
    p["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready" && c["status"] == "True")
        .map(|c| c["lastTransitionTime"].as_str().unwrap_or_default())
}

/// `t1` after `t2`, an empty time counting as earliest (Go's `afterOrZero`; RFC 3339 UTC
/// timestamps order as text).
fn after_or_zero(t1: &str, t2: &str) -> bool {
    if t1.is_empty() || t2.is_empty() {
        return t1.is_empty();
    }
    t1 > t2
}

/// kubectl's `ActivePods` order: whether `a` is less active than `b` (unassigned, pending,
/// not ready, ready for less time, more restarts, newer).
pub fn less_active(a: &Value, b: &Value) -> bool {
    let node = |p: &Value| {
        p["spec"]["nodeName"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let (na, nb) = (node(a), node(b));
    if na != nb && (na.is_empty() || nb.is_empty()) {
        return na.is_empty();
    }
    let phase = |p: &Value| match p["status"]["phase"].as_str() {
        Some("Pending") => 0,
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 0,
    };
    if phase(a) != phase(b) {
        return phase(a) < phase(b);
    }
    let (ra, rb) = (ready_since(a), ready_since(b));
    if ra.is_some() != rb.is_some() {
        return ra.is_none();
    }
    if let (Some(ta), Some(tb)) = (ra, rb)
        && ta != tb
    {
        return after_or_zero(ta, tb);
    }
    let restarts = |p: &Value| {
        p["status"]["containerStatuses"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| c["restartCount"].as_i64().unwrap_or(0))
            .max()
            .unwrap_or(0)
    };
    if restarts(a) != restarts(b) {
        return restarts(a) > restarts(b);
    }
    let created = |p: &Value| {
        p["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    if created(a) != created(b) {
        return after_or_zero(&created(a), &created(b));
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(node: &str, phase: &str, ready: Option<&str>, restarts: i64, created: &str) -> Value {
        let mut p = json!({"spec": {"nodeName": node}, "status": {"phase": phase, "containerStatuses": [{"restartCount": restarts}]}, "metadata": {"creationTimestamp": created}});
        if let Some(t) = ready {
            p["status"]["conditions"] =
                json!([{"type": "Ready", "status": "True", "lastTransitionTime": t}]);
        }
        p
    }

    #[test]
    fn active_pods_order_like_kubectl() {
        let t0 = "2026-01-01T00:00:00Z";
        let t1 = "2026-01-01T00:00:05Z";
        let unassigned = pod("", "Pending", None, 0, t0);
        let pending = pod("n", "Pending", None, 0, t0);
        let running = pod("n", "Running", None, 0, t0);
        let ready_late = pod("n", "Running", Some(t1), 0, t0);
        let ready_early = pod("n", "Running", Some(t0), 0, t0);
        let restarted = pod("n", "Running", Some(t0), 3, t0);
        let newer = pod("n", "Running", Some(t0), 0, t1);
        assert!(less_active(&unassigned, &pending));
        assert!(less_active(&pending, &running));
        assert!(less_active(&running, &ready_late));
        assert!(less_active(&ready_late, &ready_early));
        assert!(less_active(&restarted, &ready_early));
        assert!(less_active(&newer, &ready_early));
        assert!(!less_active(&ready_early, &ready_early));
    }
}
