//! `api-resources`, `api-versions` and `cluster-info`: what the server serves, from
//! discovery, printed as kubectl prints it.

use serde_json::Value;

use crate::cli::ApiResourcesArgs;
use crate::client::{Ctx, query};
use crate::discovery::ResourceInfo;
use crate::error::{CtlError, Result};
use crate::output::{out, outln};
use crate::print::tabwriter::TabWriter;

/// Runs `api-resources`.
pub async fn api_resources(ctx: &Ctx, args: &ApiResourcesArgs) -> Result<()> {
    let disc = ctx.discovery().await?;
    let mut rs: Vec<&ResourceInfo> = disc
        .resources
        .iter()
        .filter(|r| r.preferred)
        .filter(|r| args.namespaced.is_none_or(|n| n == r.namespaced))
        .filter(|r| args.api_group.as_ref().is_none_or(|g| g == &r.group))
        .filter(|r| args.verbs.iter().all(|v| r.has_verb(v)))
        .filter(|r| args.categories.iter().all(|c| r.categories.contains(c)))
        .collect();
    match args.sort_by.as_deref() {
        None => rs.sort_by(|a, b| (&a.group, &a.resource).cmp(&(&b.group, &b.resource))),
        Some("name") => rs.sort_by(|a, b| a.resource.cmp(&b.resource)),
        Some("kind") => rs.sort_by(|a, b| a.kind.cmp(&b.kind)),
        Some(o) => {
            return Err(CtlError::Usage(format!(
                "--sort-by accepts only name or kind, got {o:?}"
            )));
        }
    }
    let wide = match args.output.as_deref() {
        None => false,
        Some("wide") => true,
        Some("name") => {
            for r in rs {
                outln(&r.group_resource());
            }
            return Ok(());
        }
        Some(o) => return Err(CtlError::Usage(format!("--output {o} is not available"))),
    };
    let mut w = TabWriter::new();
    if !args.no_headers {
        w.write("NAME\tSHORTNAMES\tAPIVERSION\tNAMESPACED\tKIND");
        w.write(if wide { "\tVERBS\tCATEGORIES\n" } else { "\n" });
    }
    for r in rs {
        w.write(&format!(
            "{}\t{}\t{}\t{}\t{}",
            r.resource,
            r.short_names.join(","),
            r.api_version(),
            r.namespaced,
            r.kind
        ));
        if wide {
            let mut verbs = r.verbs.clone();
            verbs.sort();
            w.write(&format!(
                "\t{}\t{}",
                verbs.join(","),
                r.categories.join(",")
            ));
        }
        w.write("\n");
    }
    out(&w.flush());
    Ok(())
}

/// Runs `api-versions`.
pub async fn api_versions(ctx: &Ctx) -> Result<()> {
    let disc = ctx.discovery().await?;
    let mut v = disc.group_versions.clone();
    v.sort();
    v.dedup();
    for gv in v {
        outln(&gv);
    }
    Ok(())
}

/// Runs `cluster-info`.
pub async fn cluster_info(ctx: &Ctx) -> Result<()> {
    // Reaching the server is part of the answer.
    ctx.get_json("/version").await?;
    let mut text = format!("Kubernetes control plane is running at {}\n", ctx.server);
    let services = ctx
        .get_json(&format!(
            "/api/v1/namespaces/kube-system/services{}",
            query(&[(
                "labelSelector",
                "kubernetes.io/cluster-service=true".to_string()
            )])
        ))
        .await
        .unwrap_or(Value::Null);
    for s in services["items"].as_array().into_iter().flatten() {
        let name = s["metadata"]["labels"]["kubernetes.io/name"]
            .as_str()
            .or(s["metadata"]["name"].as_str())
            .unwrap_or_default();
        let port = s["spec"]["ports"][0]["name"].as_str().unwrap_or_default();
        let svc = s["metadata"]["name"].as_str().unwrap_or_default();
        let target = if port.is_empty() {
            svc.to_string()
        } else {
            format!("{svc}:{port}")
        };
        text.push_str(&format!(
            "{name} is running at {}/api/v1/namespaces/kube-system/services/{target}/proxy\n",
            ctx.server
        ));
    }
    text.push_str(
        "\nTo further debug and diagnose cluster problems, use 'kubectl cluster-info dump'.\n",
    );
    out(&text);
    Ok(())
}
