//! `create -f` (POST each object; `AlreadyExists` like kubectl) and `create deployment |
//! service clusterip|nodeport|loadbalancer | namespace | configmap | secret generic`, building
//! the same objects kubectl builds (so `--dry-run=client -o yaml` prints the same manifests).

use base64::Engine;
use serde_json::{Map, Value, json};

use crate::cli::{
    CreateArgs, CreateCommon, CreateKind, CreateSecret, CreateService, DryRun, ServiceFlags,
};
use crate::client::{Ctx, query};
use crate::cmd::common::hide_managed_fields;
use crate::error::{CtlError, Result};
use crate::output::{out, outln};
use crate::print::{OutputFormat, object_kind_name, print_generated, print_objects};
use crate::resource::{self, Resolved};

/// Runs `create`.
pub async fn run(ctx: &Ctx, args: &CreateArgs) -> Result<()> {
    if let Some(kind) = &args.kind {
        let (obj, common) = build(kind)?;
        return create_objects(ctx, vec![obj], common).await;
    }
    if args.filename.is_empty() {
        return Err(CtlError::Usage("must specify one of -f and -k".into()));
    }
    let m = crate::manifest::read(&args.filename, args.recursive)
        .map_err(|e| CtlError::Input(e.to_string()))?;
    let resolved = resource::resolve_manifests(ctx, m).await?;
    let common = CreateCommon {
        dry_run: args.dry_run,
        output: args.output.clone(),
        field_manager: args.field_manager.clone(),
        validate: args.validate,
    };
    let mut errors = Vec::new();
    let format = output_format(&common)?;
    let mut printed = Vec::new();
    for r in &resolved {
        match post(ctx, r, &common).await {
            Ok(o) => report(&format, &mut printed, o, r.kind_name(), &common),
            Err(e) => errors.push(e.with_source("creating", &r.source)),
        }
    }
    if let Some(f) = &format
        && !matches!(f, OutputFormat::Name)
    {
        out(&print_objects(f, printed, resolved.len() == 1));
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(CtlError::Many(errors)),
    }
}

fn output_format(c: &CreateCommon) -> Result<Option<OutputFormat>> {
    match c.output.as_deref() {
        None => Ok(None),
        o => Ok(Some(
            OutputFormat::parse(o).map_err(|e| CtlError::Usage(e.to_string()))?,
        )),
    }
}

fn report(
    format: &Option<OutputFormat>,
    printed: &mut Vec<Value>,
    obj: Value,
    kind_name: String,
    c: &CreateCommon,
) {
    match format {
        Some(OutputFormat::Name) => outln(&kind_name),
        Some(_) => printed.push(hide_managed_fields(obj)),
        None => outln(&format!("{kind_name} created{}", c.dry_run.suffix())),
    }
}

async fn post(ctx: &Ctx, r: &Resolved, c: &CreateCommon) -> Result<Value> {
    if c.dry_run == DryRun::Client {
        return Ok(r.object.clone());
    }
    let mut q = vec![
        ("fieldManager", c.field_manager.clone()),
        ("fieldValidation", c.validate.directive().to_string()),
    ];
    if c.dry_run == DryRun::Server {
        q.push(("dryRun", "All".into()));
    }
    ctx.request(
        http::Method::POST,
        &format!(
            "{}{}",
            r.info.collection_path(r.namespace.as_deref()),
            query(&q)
        ),
        None,
        Some("application/json"),
        serde_json::to_vec(&r.object)?,
    )
    .await
}

async fn create_objects(ctx: &Ctx, objs: Vec<Value>, c: &CreateCommon) -> Result<()> {
    let format = output_format(c)?;
    let mut printed = Vec::new();
    let n = objs.len();
    for obj in objs {
        if c.dry_run == DryRun::Client {
            let name = object_kind_name(&obj);
            report(&format, &mut printed, obj, name, c);
            continue;
        }
        let m = crate::manifest::Manifest {
            source: String::new(),
            document: 1,
            object: obj,
        };
        let r = resource::resolve_manifests(ctx, vec![m]).await?.remove(0);
        let created = post(ctx, &r, c).await?;
        report(&format, &mut printed, created, r.kind_name(), c);
    }
    if let Some(f) = &format
        && !matches!(f, OutputFormat::Name)
    {
        if c.dry_run == DryRun::Client {
            out(&print_generated(f, printed, n == 1));
        } else {
            out(&print_objects(f, printed, n == 1));
        }
    }
    Ok(())
}

/// The container name kubectl derives from an image (`registry/app:1.0` → `app`).
pub fn container_name(image: &str) -> String {
    let base = image.rsplit('/').next().unwrap_or(image);
    let base = base.split('@').next().unwrap_or(base);
    let base = base.split(':').next().unwrap_or(base);
    base.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

/// The object a `create <kind>` command creates, and its common flags.
pub fn build(kind: &CreateKind) -> Result<(Value, &CreateCommon)> {
    Ok(match kind {
        CreateKind::Deployment {
            name,
            image,
            replicas,
            port,
            common,
        } => {
            // kubectl gives the port to the first container only.
            let containers: Vec<Value> = image
                .iter()
                .enumerate()
                .map(|(n, i)| {
                    let mut c = json!({"image": i, "name": container_name(i), "resources": {}});
                    if let Some(p) = port.filter(|_| n == 0) {
                        c["ports"] = json!([{"containerPort": p}]);
                    }
                    c
                })
                .collect();
            (
                json!({
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "metadata": {"creationTimestamp": null, "labels": {"app": name}, "name": name},
                    "spec": {
                        "replicas": replicas,
                        "selector": {"matchLabels": {"app": name}},
                        "strategy": {},
                        "template": {
                            "metadata": {"creationTimestamp": null, "labels": {"app": name}},
                            "spec": {"containers": containers},
                        },
                    },
                    "status": {},
                }),
                common,
            )
        }
        CreateKind::Service(s) => {
            let (ty, f) = match s {
                CreateService::Clusterip(f) => ("ClusterIP", f),
                CreateService::Nodeport(f) => ("NodePort", f),
                CreateService::Loadbalancer(f) => ("LoadBalancer", f),
            };
            (service(ty, f)?, &f.common)
        }
        CreateKind::Namespace { name, common } => (
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"creationTimestamp": null, "name": name}, "spec": {}, "status": {}}),
            common,
        ),
        CreateKind::Configmap {
            name,
            from_literal,
            from_file,
            common,
        } => {
            let (data, binary) = collect_data(from_literal, from_file, false)?;
            let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"creationTimestamp": null, "name": name}});
            if !data.is_empty() {
                cm["data"] = Value::Object(data);
            }
            if !binary.is_empty() {
                cm["binaryData"] = Value::Object(binary);
            }
            (cm, common)
        }
        CreateKind::Secret(CreateSecret::Generic {
            name,
            from_literal,
            from_file,
            type_,
            common,
        }) => {
            let (data, _) = collect_data(from_literal, from_file, true)?;
            let mut s = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"creationTimestamp": null, "name": name}});
            if !data.is_empty() {
                s["data"] = Value::Object(data);
            }
            if let Some(t) = type_ {
                s["type"] = json!(t);
            }
            (s, common)
        }
    })
}

fn service(ty: &str, f: &ServiceFlags) -> Result<Value> {
    let mut ports = Vec::new();
    for p in &f.tcp {
        let (port, target) = p.split_once(':').unwrap_or((p, p));
        let port_n: i64 = port
            .parse()
            .map_err(|_| CtlError::Usage(format!("invalid port {port:?} in --tcp={p}")))?;
        let target_v = match target.parse::<i64>() {
            Ok(n) => json!(n),
            Err(_) => json!(target),
        };
        // kubectl names the port after the flag's value (`80:8080` → `80-8080`).
        let mut entry = json!({"name": p.replace(':', "-"), "port": port_n, "protocol": "TCP", "targetPort": target_v});
        if let Some(np) = f.node_port {
            entry["nodePort"] = json!(np);
        }
        ports.push(entry);
    }
    let mut spec = json!({"selector": {"app": f.name}, "type": ty});
    if !ports.is_empty() {
        spec["ports"] = Value::Array(ports);
    }
    if let Some(ip) = &f.clusterip {
        spec["clusterIP"] = json!(ip);
    }
    Ok(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"creationTimestamp": null, "labels": {"app": f.name}, "name": f.name},
        "spec": spec,
        "status": {"loadBalancer": {}},
    }))
}

type DataMaps = (Map<String, Value>, Map<String, Value>);

fn collect_data(literals: &[String], files: &[String], encode: bool) -> Result<DataMaps> {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let mut data = Map::new();
    let mut binary = Map::new();
    let put = |k: String,
               bytes: Vec<u8>,
               data: &mut Map<String, Value>,
               binary: &mut Map<String, Value>|
     -> Result<()> {
        if data.contains_key(&k) || binary.contains_key(&k) {
            return Err(CtlError::Usage(format!(
                "cannot add key {k}, another key by that name already exists"
            )));
        }
        if encode {
            data.insert(k, json!(b64(&bytes)));
        } else {
            match String::from_utf8(bytes) {
                Ok(s) => {
                    data.insert(k, json!(s));
                }
                Err(e) => {
                    binary.insert(k, json!(b64(e.as_bytes())));
                }
            }
        }
        Ok(())
    };
    for l in literals {
        let (k, v) = l.split_once('=').ok_or_else(|| {
            CtlError::Usage(format!("invalid literal source {l}, expected key=value"))
        })?;
        put(k.to_string(), v.as_bytes().to_vec(), &mut data, &mut binary)?;
    }
    for f in files {
        let (key, path) = match f.split_once('=') {
            Some((k, p)) => (Some(k.to_string()), p.to_string()),
            None => (None, f.clone()),
        };
        let p = std::path::Path::new(&path);
        if p.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(p)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|e| e.is_file())
                .collect();
            entries.sort();
            for e in entries {
                let k = e
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                put(k, std::fs::read(&e)?, &mut data, &mut binary)?;
            }
        } else {
            let bytes = std::fs::read(p)
                .map_err(|e| CtlError::Input(format!("error reading {path}: {e}")))?;
            let k = key.unwrap_or_else(|| {
                p.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            });
            put(k, bytes, &mut data, &mut binary)?;
        }
    }
    Ok((data, binary))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_names_follow_kubectl() {
        assert_eq!(container_name("nginx"), "nginx");
        assert_eq!(container_name("registry.io/team/app:1.2"), "app");
        assert_eq!(container_name("busybox@sha256:abc"), "busybox");
    }

    #[test]
    fn secrets_are_base64_and_duplicates_rejected() {
        let (d, _) = collect_data(&["a=hello".into()], &[], true).unwrap();
        assert_eq!(d["a"], "aGVsbG8=");
        assert!(collect_data(&["a=1".into(), "a=2".into()], &[], false).is_err());
    }
}
