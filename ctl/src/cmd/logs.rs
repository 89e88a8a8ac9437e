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
            if containers.len() > 1 && !multi {
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
                let d = crate::util::parse_duration(s)
                    .ok_or_else(|| CtlError::Usage(format!("invalid --since {s:?}")))?;
                q.push(("sinceSeconds", d.as_secs().max(1).to_string()));
            }
            if args.timestamps {
                q.push(("timestamps", "true".into()));
            }
            let path = format!("/api/v1/namespaces/{ns}/pods/{name}/log{}", query(&q));
            let prefix = if multi || args.prefix || args.all_containers && containers.len() > 1 {
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
    let obj = ctx.get_json(&info.object_path(Some(ns), name)).await?;
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
    // Prefer running pods, then the oldest, as kubectl does.
    pods.sort_by_key(|p| {
        (
            p["status"]["phase"].as_str() != Some("Running"),
            p["metadata"]["creationTimestamp"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        )
    });
    pods.into_iter()
        .next()
        .ok_or_else(|| CtlError::Other(format!("no pods found for {}/{name}", info.kind_prefix())))
}
