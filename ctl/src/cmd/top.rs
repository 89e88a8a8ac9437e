//! `top node|pod`: resource usage from the `metrics.k8s.io` API. rkube's kubelet does not
//! serve resource metrics yet, so on rkube this says plainly that metrics are not available;
//! against a server that serves the API it prints kubectl's tables.

use rkube_machinery::quantity::Quantity;
use serde_json::Value;

use crate::cli::TopCommand;
use crate::client::Ctx;
use crate::error::{CtlError, Result};
use crate::output::out;
use crate::print::tabwriter::TabWriter;

/// The message when no metrics API is served.
pub const NOT_AVAILABLE: &str = "Metrics API not available: rkube does not collect resource metrics yet (they will come from the kubelet's stats once the kubelet serves them)";

fn q(v: &Value) -> Quantity {
    v.as_str()
        .and_then(|s| Quantity::parse(s).ok())
        .unwrap_or_else(Quantity::zero)
}

/// CPU as kubectl prints it (`250m`) and memory in Mi (`128Mi`).
pub fn cpu_milli(v: &Value) -> i64 {
    q(v).to_milli()
}

fn mem_mi(v: &Value) -> i64 {
    q(v).to_value() / (1024 * 1024)
}

/// Runs `top`.
pub async fn run(ctx: &Ctx, cmd: &TopCommand) -> Result<()> {
    let disc = ctx.discovery().await?;
    let Some(m) = disc
        .resources
        .iter()
        .find(|r| r.group == "metrics.k8s.io" && r.preferred)
    else {
        return Err(CtlError::Other(NOT_AVAILABLE.into()));
    };
    let base = format!("/apis/metrics.k8s.io/{}", m.version);
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
            w.write("NAME\tCPU(cores)\tCPU(%)\tMEMORY(bytes)\tMEMORY(%)\n");
            for mtr in metrics {
                let n = mtr["metadata"]["name"].as_str().unwrap_or_default();
                let node = ctx.get_json(&format!("/api/v1/nodes/{n}")).await?;
                let cpu = cpu_milli(&mtr["usage"]["cpu"]);
                let mem = mem_mi(&mtr["usage"]["memory"]);
                let acpu = cpu_milli(&node["status"]["allocatable"]["cpu"]).max(1);
                let amem = mem_mi(&node["status"]["allocatable"]["memory"]).max(1);
                w.write(&format!(
                    "{n}\t{cpu}m\t{}%\t{mem}Mi\t{}%\n",
                    cpu * 100 / acpu,
                    mem * 100 / amem
                ));
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
            w.write("NAME\tCPU(cores)\tMEMORY(bytes)\n");
            for mtr in metrics {
                let (mut cpu, mut mem) = (0, 0);
                for c in mtr["containers"].as_array().into_iter().flatten() {
                    cpu += cpu_milli(&c["usage"]["cpu"]);
                    mem += mem_mi(&c["usage"]["memory"]);
                }
                if *all_namespaces {
                    w.write(&format!(
                        "{}\t",
                        mtr["metadata"]["namespace"].as_str().unwrap_or_default()
                    ));
                }
                w.write(&format!(
                    "{}\t{cpu}m\t{mem}Mi\n",
                    mtr["metadata"]["name"].as_str().unwrap_or_default()
                ));
            }
        }
    }
    out(&w.flush());
    Ok(())
}
