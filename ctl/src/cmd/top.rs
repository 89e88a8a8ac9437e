//! `top node|pod`: CPU and memory usage in kubectl's tables. From the `metrics.k8s.io` API
//! when the server serves one (metrics-server); otherwise — rkube has no metrics API — from
//! the kubelets' own Summary API (`/stats/summary`, the source metrics-server reads), read
//! through the API server's node proxy (`/api/v1/nodes/<node>/proxy/stats/summary`: the API
//! server authorizes `get` on `nodes/proxy` and reaches the kubelet with its own client
//! certificate, so the user needs no kubelet credentials). Nodes whose kubelet cannot be
//! reached show `<unknown>`, as kubectl shows nodes without metrics.

use std::time::Duration;

use rkube_machinery::quantity::Quantity;
use serde_json::Value;

use crate::cli::TopCommand;
use crate::client::Ctx;
use crate::error::{CtlError, Result};
use crate::output::{errln, out};
use crate::print::tabwriter::TabWriter;

/// The message when neither a metrics API nor any kubelet's stats can be read.
pub const NOT_AVAILABLE: &str = "metrics not available yet";

fn q(v: &Value) -> Quantity {
    v.as_str()
        .and_then(|s| Quantity::parse(s).ok())
        .unwrap_or_else(Quantity::zero)
}

/// Usage of one node or pod: CPU in millicores, memory in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// CPU, millicores.
    pub cpu_milli: i64,
    /// Memory (working set), bytes.
    pub memory: i64,
}

/// A pod's usage from the Summary API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodUsage {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Usage.
    pub usage: Usage,
}

fn nano_to_milli(n: &Value) -> i64 {
    // Quantity's MilliValue rounds up, as kubectl's conversion of nano-cores does.
    let n = n.as_i64().unwrap_or(0);
    (n + 999_999) / 1_000_000
}

/// The node's usage in a kubelet summary (`None` without CPU or memory figures).
pub fn node_usage(summary: &Value) -> Option<Usage> {
    let n = &summary["node"];
    if n["cpu"]["usageNanoCores"].is_null() || n["memory"]["workingSetBytes"].is_null() {
        return None;
    }
    Some(Usage {
        cpu_milli: nano_to_milli(&n["cpu"]["usageNanoCores"]),
        memory: n["memory"]["workingSetBytes"].as_i64().unwrap_or(0),
    })
}

/// The pods' usage in a kubelet summary: containers added up, as metrics-server does.
pub fn pod_usages(summary: &Value) -> Vec<PodUsage> {
    summary["pods"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let containers = p["containers"].as_array().cloned().unwrap_or_default();
            let nano: i64 = containers
                .iter()
                .map(|c| c["cpu"]["usageNanoCores"].as_i64().unwrap_or(0))
                .sum();
            let memory: i64 = containers
                .iter()
                .map(|c| c["memory"]["workingSetBytes"].as_i64().unwrap_or(0))
                .sum();
            PodUsage {
                namespace: p["podRef"]["namespace"].as_str().unwrap_or_default().into(),
                name: p["podRef"]["name"].as_str().unwrap_or_default().into(),
                usage: Usage {
                    cpu_milli: nano_to_milli(&Value::from(nano)),
                    memory,
                },
            }
        })
        .collect()
}

/// Whether CPU rates are still missing (a kubelet computes them from its previous sample).
fn lacks_rates(summary: &Value) -> bool {
    summary["node"]["cpu"]["usageNanoCores"].as_i64() == Some(0)
        || summary["pods"].as_array().into_iter().flatten().any(|p| {
            p["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["cpu"]["usageNanoCores"].as_i64() == Some(0))
        })
}

/// A node's kubelet summary through the API server's node proxy (a second sample a second
/// later when rates are missing).
async fn summary(ctx: &Ctx, node: &str) -> Result<Value> {
    let path = format!("/api/v1/nodes/{node}/proxy/stats/summary");
    let first = ctx.get_json(&path).await?;
    if !lacks_rates(&first) {
        return Ok(first);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    ctx.get_json(&path).await
}

/// Runs `top`.
pub async fn run(ctx: &Ctx, cmd: &TopCommand) -> Result<()> {
    let disc = ctx.discovery().await?;
    if let Some(m) = disc
        .resources
        .iter()
        .find(|r| r.group == "metrics.k8s.io" && r.preferred)
    {
        return from_metrics_api(ctx, cmd, &format!("/apis/metrics.k8s.io/{}", m.version)).await;
    }
    let nodes: Vec<Value> = match cmd {
        TopCommand::Node { name: Some(n) } => {
            vec![ctx.get_json(&format!("/api/v1/nodes/{n}")).await?]
        }
        _ => ctx.get_json("/api/v1/nodes").await?["items"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
    };
    let mut summaries: Vec<(Value, Option<Value>)> = Vec::new();
    for node in nodes {
        let name = node["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let s = match summary(ctx, &name).await {
            Ok(s) => Some(s),
            Err(e) => {
                errln(&format!(
                    "Warning: no stats from the kubelet of node {name}: {e}"
                ));
                None
            }
        };
        summaries.push((node, s));
    }
    if summaries.iter().all(|(_, s)| s.is_none()) {
        return Err(CtlError::Other(NOT_AVAILABLE.into()));
    }
    let mut w = TabWriter::new();
    match cmd {
        TopCommand::Node { .. } => {
            w.write("NAME\tCPU(cores)\tCPU(%)\tMEMORY(bytes)\tMEMORY(%)\t\n");
            let mut unknown = Vec::new();
            for (node, s) in &summaries {
                let name = node["metadata"]["name"].as_str().unwrap_or_default();
                let Some(u) = s.as_ref().and_then(node_usage) else {
                    unknown.push(name.to_string());
                    continue;
                };
                w.write(&node_row(name, u, &node["status"]["allocatable"]));
            }
            for name in unknown {
                w.write(&format!(
                    "{name}\t<unknown>\t<unknown>\t<unknown>\t<unknown>\t\n"
                ));
            }
        }
        TopCommand::Pod {
            name,
            all_namespaces,
        } => {
            let mut pods: Vec<PodUsage> = summaries
                .iter()
                .filter_map(|(_, s)| s.as_ref())
                .flat_map(pod_usages)
                .filter(|p| *all_namespaces || p.namespace == ctx.namespace)
                .filter(|p| name.as_ref().is_none_or(|n| &p.name == n))
                .collect();
            pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
            if pods.is_empty() {
                if let Some(n) = name {
                    return Err(CtlError::Other(format!(
                        "pods \"{n}\" not found in namespace \"{}\"",
                        ctx.namespace
                    )));
                }
                errln(&format!(
                    "No resources found in {} namespace.",
                    ctx.namespace
                ));
                return Ok(());
            }
            if *all_namespaces {
                w.write("NAMESPACE\t");
            }
            w.write("NAME\tCPU(cores)\tMEMORY(bytes)\t\n");
            for p in pods {
                if *all_namespaces {
                    w.write(&format!("{}\t", p.namespace));
                }
                w.write(&format!(
                    "{}\t{}m\t{}Mi\t\n",
                    p.name,
                    p.usage.cpu_milli,
                    p.usage.memory / (1024 * 1024)
                ));
            }
        }
    }
    out(&w.flush());
    Ok(())
}

/// A `top node` row: usage and its share of the node's allocatable.
fn node_row(name: &str, u: Usage, allocatable: &Value) -> String {
    let acpu = q(&allocatable["cpu"]).to_milli();
    let amem = q(&allocatable["memory"]).to_value();
    let pct = |part: i64, whole: i64| {
        if whole == 0 {
            0
        } else {
            (part as f64 / whole as f64 * 100.0) as i64
        }
    };
    format!(
        "{name}\t{}m\t{}%\t{}Mi\t{}%\t\n",
        u.cpu_milli,
        pct(u.cpu_milli, acpu),
        u.memory / (1024 * 1024),
        pct(u.memory, amem)
    )
}

/// `top` from a `metrics.k8s.io` API.
async fn from_metrics_api(ctx: &Ctx, cmd: &TopCommand, base: &str) -> Result<()> {
    let mut w = TabWriter::new();
    match cmd {
        TopCommand::Node { name } => {
            let metrics = match name {
                Some(n) => vec![ctx.get_json(&format!("{base}/nodes/{n}")).await?],
                None => ctx.get_json(&format!("{base}/nodes")).await?["items"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
            };
            w.write("NAME\tCPU(cores)\tCPU(%)\tMEMORY(bytes)\tMEMORY(%)\t\n");
            for mtr in metrics {
                let n = mtr["metadata"]["name"].as_str().unwrap_or_default();
                let node = ctx.get_json(&format!("/api/v1/nodes/{n}")).await?;
                let u = Usage {
                    cpu_milli: q(&mtr["usage"]["cpu"]).to_milli(),
                    memory: q(&mtr["usage"]["memory"]).to_value(),
                };
                w.write(&node_row(n, u, &node["status"]["allocatable"]));
            }
        }
        TopCommand::Pod {
            name,
            all_namespaces,
        } => {
            let coll = if *all_namespaces {
                format!("{base}/pods")
            } else {
                format!("{base}/namespaces/{}/pods", ctx.namespace)
            };
            let metrics = match name {
                Some(n) => vec![ctx.get_json(&format!("{coll}/{n}")).await?],
                None => ctx.get_json(&coll).await?["items"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
            };
            if *all_namespaces {
                w.write("NAMESPACE\t");
            }
            w.write("NAME\tCPU(cores)\tMEMORY(bytes)\t\n");
            for mtr in metrics {
                let (mut cpu, mut mem) = (0, 0);
                for c in mtr["containers"].as_array().into_iter().flatten() {
                    cpu += q(&c["usage"]["cpu"]).to_milli();
                    mem += q(&c["usage"]["memory"]).to_value();
                }
                if *all_namespaces {
                    w.write(&format!(
                        "{}\t",
                        mtr["metadata"]["namespace"].as_str().unwrap_or_default()
                    ));
                }
                w.write(&format!(
                    "{}\t{cpu}m\t{}Mi\t\n",
                    mtr["metadata"]["name"].as_str().unwrap_or_default(),
                    mem / (1024 * 1024)
                ));
            }
        }
    }
    out(&w.flush());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn summaries_become_usage() {
        let s = json!({
            "node": {"cpu": {"usageNanoCores": 250_000_001}, "memory": {"workingSetBytes": 3_i64 << 30}},
            "pods": [{
                "podRef": {"namespace": "default", "name": "p"},
                "containers": [
                    {"cpu": {"usageNanoCores": 1_000_000}, "memory": {"workingSetBytes": 1 << 20}},
                    {"cpu": {"usageNanoCores": 500_000}, "memory": {"workingSetBytes": 2 << 20}}
                ]
            }]
        });
        assert_eq!(
            node_usage(&s),
            Some(Usage {
                cpu_milli: 251,
                memory: 3_i64 << 30
            })
        );
        assert_eq!(
            pod_usages(&s),
            [PodUsage {
                namespace: "default".into(),
                name: "p".into(),
                usage: Usage {
                    cpu_milli: 2,
                    memory: 3 << 20
                }
            }]
        );
        assert!(!lacks_rates(&s));
        assert_eq!(
            node_row(
                "n1",
                node_usage(&s).unwrap(),
                &json!({"cpu": "4", "memory": "8Gi"})
            ),
            "n1\t251m\t6%\t3072Mi\t37%\t\n"
        );
    }
}
