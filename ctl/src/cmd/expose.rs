//! `expose`: a Service for a deployment, replica set, pod or service, with the resource's
//! selector, the given or the containers' ports, and the resource's labels, as kubectl makes
//! it; prints `service/NAME exposed`.

use serde_json::{Map, Value, json};

use crate::cli::{DryRun, ExposeArgs};
use crate::client::Ctx;
use crate::cmd::common;
use crate::error::{CtlError, Result};
use crate::output::{out, outln};
use crate::print::{OutputFormat, print_generated, print_objects};
use crate::resource::ExpandOptions;

fn parse_map(s: &str) -> Result<Map<String, Value>> {
    let mut m = Map::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| CtlError::Usage(format!("invalid label spec: {part}")))?;
        m.insert(k.to_string(), Value::String(v.to_string()));
    }
    Ok(m)
}

fn port_value(s: &str) -> Value {
    match s.parse::<i64>() {
        Ok(n) => json!(n),
        Err(_) => json!(s),
    }
}

/// Runs `expose`.
pub async fn run(ctx: &Ctx, args: &ExposeArgs) -> Result<()> {
    let targets = common::targets(ctx, &args.resources, &[], &ExpandOptions::default()).await?;
    for t in targets {
        let obj = ctx.get_json(&t.path()).await?;
        let (selector, pod_spec) = match t.info.kind.as_str() {
            "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" => {
                let sel = &obj["spec"]["selector"];
                if sel["matchExpressions"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty())
                {
                    return Err(CtlError::Other(format!(
                        "couldn't retrieve selectors via --selector flag or introspection: {} has a selector with matchExpressions, which is not supported",
                        t.kind_name()
                    )));
                }
                (
                    sel["matchLabels"].as_object().cloned().unwrap_or_default(),
                    obj["spec"]["template"]["spec"].clone(),
                )
            }
            "ReplicationController" => (
                obj["spec"]["selector"]
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
                obj["spec"]["template"]["spec"].clone(),
            ),
            "Pod" => (
                obj["metadata"]["labels"]
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
                obj["spec"].clone(),
            ),
            "Service" => (
                obj["spec"]["selector"]
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
                Value::Null,
            ),
            _ => return Err(CtlError::Other(format!("cannot expose a {}", t.info.kind))),
        };
        let selector = match &args.selector {
            Some(s) => parse_map(s)?,
            None => selector,
        };
        if selector.is_empty() {
            return Err(CtlError::Other(format!(
                "couldn't retrieve selectors via --selector flag or introspection: the {} has no selector",
                t.kind_name()
            )));
        }
        let protocol = args.protocol.clone();
        let mut ports: Vec<Value> = Vec::new();
        if let Some(p) = &args.port {
            let mut port = json!({"port": port_value(p), "protocol": protocol.clone().unwrap_or_else(|| "TCP".into())});
            port["targetPort"] = port_value(args.target_port.as_deref().unwrap_or(p));
            ports.push(port);
        } else {
            // The ports to serve: a service's own, or the containers' (kubectl's
            // introspection), each with its protocol.
            let container_ports: Vec<(&Value, &Value)> = if t.info.kind == "Service" {
                obj["spec"]["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| (&p["port"], &p["protocol"]))
                    .collect()
            } else {
                pod_spec["containers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|c| c["ports"].as_array().into_iter().flatten())
                    .map(|p| (&p["containerPort"], &p["protocol"]))
                    .collect()
            };
            if container_ports.is_empty() {
                return Err(CtlError::Other(
                    "couldn't find port via --port flag or introspection".into(),
                ));
            }
            let many = container_ports.len() > 1;
            for (i, (number, proto)) in container_ports.iter().enumerate() {
                let mut port = json!({
                    "port": number,
                    "protocol": protocol.clone().or_else(|| proto.as_str().map(str::to_string)).unwrap_or_else(|| "TCP".into()),
                    "targetPort": match &args.target_port { Some(tp) => port_value(tp), None => (*number).clone() },
                });
                if many {
                    port["name"] = json!(format!("port-{}", i + 1));
                }
                ports.push(port);
            }
        }
        let name = args.name.clone().unwrap_or_else(|| t.name.clone());
        let labels = match &args.labels {
            Some(l) => Value::Object(parse_map(l)?),
            None => obj["metadata"]["labels"].clone(),
        };
        let mut svc = json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"creationTimestamp": null, "name": name},
            "spec": {"ports": ports, "selector": selector},
            "status": {"loadBalancer": {}},
        });
        if labels.as_object().is_some_and(|m| !m.is_empty()) {
            svc["metadata"]["labels"] = labels;
        }
        if let Some(ty) = &args.type_ {
            svc["spec"]["type"] = json!(ty);
        }
        let ns = t.namespace.clone().unwrap_or_else(|| ctx.namespace.clone());
        let created = if args.dry_run == DryRun::Client {
            svc
        } else {
            let dry = if args.dry_run == DryRun::Server {
                "?dryRun=All"
            } else {
                ""
            };
            ctx.request(
                http::Method::POST,
                &format!("/api/v1/namespaces/{ns}/services{dry}"),
                None,
                Some("application/json"),
                serde_json::to_vec(&svc)?,
            )
            .await?
        };
        match args.output.as_deref() {
            None => outln(&format!("service/{name} exposed{}", args.dry_run.suffix())),
            o => {
                let f = OutputFormat::parse(o).map_err(|e| CtlError::Usage(e.to_string()))?;
                let objects = vec![common::hide_managed_fields(created)];
                out(&if args.dry_run == DryRun::Client {
                    print_generated(&f, objects, true)
                } else {
                    print_objects(&f, objects, true)
                });
            }
        }
    }
    Ok(())
}
