//! `apply -f`: server-side apply (field manager `rkubectl`, `--force-conflicts`) by default,
//! client-side three-way apply with `--server-side=false`. Both keep kubectl's
//! `kubectl.kubernetes.io/last-applied-configuration` annotation exactly as kubectl writes it,
//! so rkubectl and kubectl can take turns applying the same files and report `unchanged`.
//! Also `--prune -l`, `--dry-run=client|server`, and a line per object as it goes.

use kube::api::{Patch, PatchParams, ValidationDirective};
use rkube_machinery::patch::create_three_way_merge_patch;
use rkube_machinery::schema::Schemas;
use serde_json::{Value, json};

use crate::cli::{ApplyArgs, DryRun, Validate};
use crate::client::Ctx;
use crate::error::{CtlError, Result};
use crate::output::outln;
use crate::print::{OutputFormat, json as gojson, print_objects};
use crate::resource::{self, Resolved};

/// The annotation client-side apply keeps the applied configuration in.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// kubectl's resource types pruned by default (besides those applied).
const PRUNE_DEFAULTS: &[&str] = &[
    "configmaps",
    "endpoints",
    "persistentvolumeclaims",
    "pods",
    "replicationcontrollers",
    "secrets",
    "services",
    "jobs.batch",
    "cronjobs.batch",
    "ingresses.networking.k8s.io",
    "daemonsets.apps",
    "deployments.apps",
    "replicasets.apps",
    "statefulsets.apps",
];

/// What applying one object did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The object did not exist.
    Created,
    /// The object changed.
    Configured,
    /// Nothing changed.
    Unchanged,
}

impl Outcome {
    fn word(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Configured => "configured",
            Outcome::Unchanged => "unchanged",
        }
    }
}

/// The object with the last-applied annotation set the way kubectl computes it: the compact,
/// key-sorted JSON (Go's escaping, trailing newline) of the object with `annotations` present
/// (possibly empty) and without the annotation itself.
pub fn with_last_applied(obj: &Value) -> Value {
    let mut o = obj.clone();
    if !o["metadata"].is_object() {
        o["metadata"] = json!({});
    }
    let mut annots = o["metadata"]["annotations"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    annots.remove(LAST_APPLIED);
    o["metadata"]["annotations"] = Value::Object(annots.clone());
    let text = format!("{}\n", gojson::to_compact(&o));
    annots.insert(LAST_APPLIED.to_string(), Value::String(text));
    o["metadata"]["annotations"] = Value::Object(annots);
    o
}

/// The object without what changes on every write (for "unchanged" after server-side apply).
fn comparable(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v["metadata"].as_object_mut() {
        m.remove("managedFields");
        m.remove("resourceVersion");
    }
    v
}

/// Runs `apply`.
pub async fn run(ctx: &Ctx, args: &ApplyArgs) -> Result<()> {
    let format = match args.output.as_deref() {
        None => None,
        o => Some(OutputFormat::parse(o).map_err(|e| CtlError::Usage(e.to_string()))?),
    };
    if args.prune && args.selector.is_none() {
        return Err(CtlError::Usage(
            "all resources selected for prune without explicitly passing --all. To prune all resources, pass the --all flag. If you did not mean to prune all resources, specify a label selector".into(),
        ));
    }
    let manifests = crate::manifest::read(&args.filename, args.recursive)
        .map_err(|e| CtlError::Input(e.to_string()))?;
    if manifests.is_empty() {
        return Err(CtlError::Input("no objects passed to apply".into()));
    }
    let objects = resource::resolve_manifests(ctx, manifests).await?;
    let mut errors = Vec::new();
    let mut printed = Vec::new();
    for r in &objects {
        let res = if args.server_side {
            apply_server_side(ctx, r, args).await
        } else {
            apply_client_side(ctx, r, args).await
        };
        match res {
            Ok((outcome, obj)) => match &format {
                Some(OutputFormat::Name) => outln(&r.kind_name()),
                Some(_) => printed.push(obj),
                None => outln(&format!(
                    "{} {}{}",
                    r.kind_name(),
                    outcome.word(),
                    args.dry_run.suffix()
                )),
            },
            Err(e) => errors.push(e),
        }
    }
    if let Some(f) = &format
        && !matches!(f, OutputFormat::Name)
    {
        crate::output::out(&print_objects(f, printed, objects.len() == 1));
    }
    if args.prune && errors.is_empty() {
        prune(ctx, &objects, args).await?;
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(CtlError::Many(errors)),
    }
}

async fn current(ctx: &Ctx, r: &Resolved) -> Result<Option<Value>> {
    match ctx
        .get_json(&r.info.object_path(r.namespace.as_deref(), r.name()))
        .await
    {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

fn require_name(r: &Resolved) -> Result<()> {
    if r.name().is_empty() {
        return Err(CtlError::Other(format!(
            "error when retrieving current configuration of:\nResource: \"{}\", GroupVersionKind: \"{}, Kind={}\"\nfrom server for: \"{}\": resource name may not be empty",
            r.info.group_resource(),
            r.info.api_version(),
            r.info.kind,
            r.source
        )));
    }
    Ok(())
}

async fn apply_server_side(ctx: &Ctx, r: &Resolved, args: &ApplyArgs) -> Result<(Outcome, Value)> {
    require_name(r)?;
    let modified = with_last_applied(&r.object);
    let before = current(ctx, r).await?;
    if args.dry_run == DryRun::Client {
        let o = if before.is_some() {
            Outcome::Configured
        } else {
            Outcome::Created
        };
        return Ok((o, modified));
    }
    let api = ctx.api(&r.info, r.namespace.as_deref().unwrap_or_default());
    let mut pp = PatchParams::apply(&args.field_manager);
    pp.force = args.force_conflicts;
    pp.dry_run = args.dry_run == DryRun::Server;
    pp.field_validation = Some(validation(args.validate));
    let after = api
        .patch(r.name(), &pp, &Patch::Apply(&modified))
        .await
        .map_err(CtlError::from)
        .map_err(|e| {
            if e.is_conflict() && let CtlError::Api(s) = &e && s.message.contains("conflict") {
                CtlError::Other(format!(
                    "{}\nPlease review the fields above--they currently have other managers. Here\nare the ways you can resolve this warning:\n* If you intend to manage all of these fields, please re-run the apply\n  command with the `--force-conflicts` flag.\n* If you do not intend to manage all of the fields, please edit your\n  manifest to remove references to the fields that should keep their\n  current managers.\n* You may co-own fields by updating your manifest to match the existing\n  value; in this case, you'll become the manager if the other manager(s)\n  stop managing the field (remove it from their configuration).\nSee https://kubernetes.io/docs/reference/using-api/server-side-apply/#conflicts",
                    s.message
                ))
            } else {
                // Like `kubectl apply --server-side`, server errors are shown as they are.
                e
            }
        })?;
    let after = serde_json::to_value(after)?;
    let outcome = match before {
        None => Outcome::Created,
        Some(b) if comparable(&b) == comparable(&after) => Outcome::Unchanged,
        Some(_) => Outcome::Configured,
    };
    Ok((outcome, after))
}

/// kube-rs's form of `--validate`.
fn validation(v: Validate) -> ValidationDirective {
    match v {
        Validate::Strict => ValidationDirective::Strict,
        Validate::Warn => ValidationDirective::Warn,
        Validate::Ignore => ValidationDirective::Ignore,
    }
}

/// The client-side apply manager name for a `--field-manager`.
fn csa_manager(m: &str) -> String {
    if m == "rkubectl" {
        "rkubectl-client-side-apply".into()
    } else {
        m.to_string()
    }
}

async fn apply_client_side(ctx: &Ctx, r: &Resolved, args: &ApplyArgs) -> Result<(Outcome, Value)> {
    require_name(r)?;
    let modified = with_last_applied(&r.object);
    let api = ctx.api(&r.info, r.namespace.as_deref().unwrap_or_default());
    let Some(live) = current(ctx, r).await? else {
        if args.dry_run == DryRun::Client {
            return Ok((Outcome::Created, modified));
        }
        let mut q = vec![
            ("fieldManager", csa_manager(&args.field_manager)),
            ("fieldValidation", args.validate.directive().to_string()),
        ];
        if args.dry_run == DryRun::Server {
            q.push(("dryRun", "All".into()));
        }
        let created = ctx
            .request(
                http::Method::POST,
                &format!(
                    "{}{}",
                    r.info.collection_path(r.namespace.as_deref()),
                    crate::client::query(&q)
                ),
                None,
                Some("application/json"),
                serde_json::to_vec(&modified)?,
            )
            .await
            .map_err(|e| e.with_source("creating", &r.source))?;
        return Ok((Outcome::Created, created));
    };
    let original: Option<Value> = live["metadata"]["annotations"][LAST_APPLIED]
        .as_str()
        .and_then(|s| serde_json::from_str(s).ok());
    let schema = Schemas::builtin().for_kind(&r.info.group, &r.info.version, &r.info.kind);
    let strategic = schema.is_some();
    let patch =
        create_three_way_merge_patch(original.as_ref(), &modified, &live, schema).map_err(|e| {
            CtlError::Other(format!(
                "error when computing the patch for \"{}\": {e}",
                r.source
            ))
        })?;
    if patch.as_object().is_some_and(|m| m.is_empty()) {
        return Ok((Outcome::Unchanged, live));
    }
    if args.dry_run == DryRun::Client {
        return Ok((Outcome::Configured, modified));
    }
    let pp = PatchParams {
        dry_run: args.dry_run == DryRun::Server,
        field_manager: Some(csa_manager(&args.field_manager)),
        field_validation: Some(validation(args.validate)),
        ..Default::default()
    };
    let p = if strategic {
        Patch::Strategic(&patch)
    } else {
        Patch::Merge(&patch)
    };
    let after = api
        .patch(r.name(), &pp, &p)
        .await
        .map_err(|e| CtlError::from(e).with_source("applying patch to", &r.source))?;
    Ok((Outcome::Configured, serde_json::to_value(after)?))
}

async fn prune(ctx: &Ctx, applied: &[Resolved], args: &ApplyArgs) -> Result<()> {
    let disc = ctx.discovery().await?;
    let mut types: Vec<crate::discovery::ResourceInfo> = Vec::new();
    for r in applied {
        if !types.contains(&r.info) {
            types.push(r.info.clone());
        }
    }
    for t in PRUNE_DEFAULTS {
        if let Ok(info) = disc.resolve(t)
            && !types.contains(info)
        {
            types.push(info.clone());
        }
    }
    let mut namespaces: Vec<String> = applied.iter().filter_map(|r| r.namespace.clone()).collect();
    namespaces.sort();
    namespaces.dedup();
    if namespaces.is_empty() {
        namespaces.push(ctx.namespace.clone());
    }
    let selector = args.selector.clone().unwrap_or_default();
    for info in types {
        if !info.has_verb("list") || !info.has_verb("delete") {
            continue;
        }
        let scopes: Vec<Option<String>> = if info.namespaced {
            namespaces.iter().cloned().map(Some).collect()
        } else {
            vec![None]
        };
        for ns in scopes {
            let path = format!(
                "{}{}",
                info.collection_path(ns.as_deref()),
                crate::client::query(&[("labelSelector", selector.clone())])
            );
            let list = ctx.get_json(&path).await?;
            for item in list["items"].as_array().cloned().unwrap_or_default() {
                let name = item["metadata"]["name"].as_str().unwrap_or_default();
                let item_ns = item["metadata"]["namespace"].as_str().map(str::to_string);
                let keep = applied.iter().any(|r| {
                    r.info.group == info.group
                        && r.info.kind == info.kind
                        && r.name() == name
                        && r.namespace == item_ns
                });
                if keep || item["metadata"]["annotations"][LAST_APPLIED].is_null() {
                    continue;
                }
                if args.dry_run == DryRun::None || args.dry_run == DryRun::Server {
                    let api = ctx.api(&info, item_ns.as_deref().unwrap_or_default());
                    let dp = kube::api::DeleteParams {
                        dry_run: args.dry_run == DryRun::Server,
                        propagation_policy: Some(kube::api::PropagationPolicy::Background),
                        ..Default::default()
                    };
                    api.delete(name, &dp).await?;
                }
                outln(&format!(
                    "{}/{name} pruned{}",
                    info.kind_prefix(),
                    args.dry_run.suffix()
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_applied_matches_kubectl() {
        // What kubectl 1.32 writes for this manifest (namespace defaulted by the builder).
        let obj = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "web-config", "namespace": "demo"},
            "data": {"index.html": "<h1>rkube</h1>\n", "greeting": "hello"}
        });
        let m = with_last_applied(&obj);
        assert_eq!(
            m["metadata"]["annotations"][LAST_APPLIED],
            "{\"apiVersion\":\"v1\",\"data\":{\"greeting\":\"hello\",\"index.html\":\"\\u003ch1\\u003erkube\\u003c/h1\\u003e\\n\"},\"kind\":\"ConfigMap\",\"metadata\":{\"annotations\":{},\"name\":\"web-config\",\"namespace\":\"demo\"}}\n"
        );
        // Applying the result again yields the same annotation (it is left out of itself).
        assert_eq!(with_last_applied(&m), m);
    }

    #[test]
    fn unchanged_ignores_managed_fields_and_resource_version() {
        let a = json!({"metadata": {"name": "x", "resourceVersion": "1", "managedFields": [1]}, "spec": {"a": 1}});
        let b = json!({"metadata": {"name": "x", "resourceVersion": "2", "managedFields": [1, 2]}, "spec": {"a": 1}});
        assert_eq!(comparable(&a), comparable(&b));
        let c = json!({"metadata": {"name": "x"}, "spec": {"a": 2}});
        assert_ne!(comparable(&a), comparable(&c));
    }
}
