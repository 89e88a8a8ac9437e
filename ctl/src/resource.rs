//! Which objects a command is about, from its arguments as kubectl reads them: `TYPE NAME…`,
//! `TYPE[,TYPE…]` (all of them, or those matching `-l`), `TYPE/NAME…`, or the objects of
//! `-f` files; and the namespace each object lives in.

use serde_json::Value;

use crate::client::Ctx;
use crate::discovery::ResourceInfo;
use crate::error::{CtlError, Result};
use crate::manifest::Manifest;

/// Objects of one resource type a command acts on.
#[derive(Debug, Clone)]
pub struct Selection {
    /// The resource.
    pub info: ResourceInfo,
    /// Names; empty means every object (filtered by selectors).
    pub names: Vec<String>,
}

/// Parses resource arguments. `TYPE/NAME` arguments can be mixed only with each other.
pub async fn parse(ctx: &Ctx, args: &[String]) -> Result<Vec<Selection>> {
    if args.is_empty() {
        return Ok(Vec::new());
    }
    let slashed = args.iter().filter(|a| a.contains('/')).count();
    if slashed > 0 {
        if slashed != args.len() {
            return Err(CtlError::Usage(
                "there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (e.g. 'rkubectl get resource/<resource_name>' instead of 'rkubectl get resource resource/<resource_name>'".into(),
            ));
        }
        let mut out: Vec<Selection> = Vec::new();
        for a in args {
            let (t, name) = a.split_once('/').unwrap_or((a, ""));
            if name.is_empty() {
                return Err(CtlError::Usage(
                    "arguments in resource/name form must have a single resource and name".into(),
                ));
            }
            let info = ctx.resolve(t).await?;
            match out.iter_mut().find(|s| s.info == info) {
                Some(s) => s.names.push(name.to_string()),
                None => out.push(Selection {
                    info,
                    names: vec![name.to_string()],
                }),
            }
        }
        return Ok(out);
    }
    let disc = ctx.discovery().await?;
    let mut out: Vec<Selection> = Vec::new();
    for t in args[0].split(',').filter(|t| !t.is_empty()) {
        for info in disc.resolve_many(t)? {
            if !out.iter().any(|s| &s.info == info) {
                out.push(Selection {
                    info: info.clone(),
                    names: args[1..].to_vec(),
                });
            }
        }
    }
    Ok(out)
}

/// An object from a manifest with its resource and effective namespace.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The resource serving the object's kind.
    pub info: ResourceInfo,
    /// The namespace (`None` for cluster-scoped resources).
    pub namespace: Option<String>,
    /// The object, with `metadata.namespace` set for namespaced resources.
    pub object: Value,
    /// Its file.
    pub source: String,
}

impl Resolved {
    /// The object's name.
    pub fn name(&self) -> &str {
        self.object["metadata"]["name"].as_str().unwrap_or_default()
    }

    /// `kind.group/name`.
    pub fn kind_name(&self) -> String {
        format!("{}/{}", self.info.kind_prefix(), self.name())
    }
}

/// Resolves the objects of manifests through discovery, setting their namespace like kubectl
/// (the object's own, else `-n`/the context's; a conflict with `-n` is an error).
pub async fn resolve_manifests(ctx: &Ctx, manifests: Vec<Manifest>) -> Result<Vec<Resolved>> {
    let disc = ctx.discovery().await?;
    let mut out = Vec::with_capacity(manifests.len());
    for m in manifests {
        let mut obj = m.object;
        let api_version = obj["apiVersion"].as_str().unwrap_or_default().to_string();
        let kind = obj["kind"].as_str().unwrap_or_default().to_string();
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let ns_in_obj = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let info = disc.for_kind(&api_version, &kind).map_err(|e| {
            CtlError::Mapping(format!(
                "resource mapping not found for name: \"{name}\" namespace: \"{ns_in_obj}\" from \"{}\": {e}\nensure CRDs are installed first",
                m.source
            ))
        })?;
        let namespace = if info.namespaced {
            let ns = if ns_in_obj.is_empty() {
                ctx.namespace.clone()
            } else {
                if ctx.explicit_namespace && ns_in_obj != ctx.namespace {
                    return Err(CtlError::Usage(format!(
                        "the namespace from the provided object \"{ns_in_obj}\" does not match the namespace \"{}\". You must pass '--namespace={ns_in_obj}' to perform this operation.",
                        ctx.namespace
                    )));
                }
                ns_in_obj
            };
            if !obj["metadata"].is_object() {
                obj["metadata"] = serde_json::json!({});
            }
            obj["metadata"]["namespace"] = Value::String(ns.clone());
            Some(ns)
        } else {
            None
        };
        out.push(Resolved {
            info: info.clone(),
            namespace,
            object: obj,
            source: m.source,
        });
    }
    Ok(out)
}

/// One object to act on, found by name or listed.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its resource.
    pub info: ResourceInfo,
    /// Its namespace (`None` when cluster-scoped).
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
}

impl Target {
    /// `kind.group/name`.
    pub fn kind_name(&self) -> String {
        format!("{}/{}", self.info.kind_prefix(), self.name)
    }

    /// The object's path.
    pub fn path(&self) -> String {
        self.info.object_path(self.namespace.as_deref(), &self.name)
    }
}

/// Options for expanding selections into objects.
#[derive(Debug, Clone, Default)]
pub struct ExpandOptions {
    /// `-l`.
    pub selector: Option<String>,
    /// `--field-selector`.
    pub field_selector: Option<String>,
    /// `--all` (required to act on every object of a type without a selector).
    pub all: bool,
    /// `-A`.
    pub all_namespaces: bool,
}

/// The objects of selections: named ones as they are, types by listing (with selectors).
pub async fn expand(ctx: &Ctx, sels: &[Selection], opts: &ExpandOptions) -> Result<Vec<Target>> {
    let mut out = Vec::new();
    for s in sels {
        let ns = if s.info.namespaced {
            Some(ctx.namespace.clone())
        } else {
            None
        };
        if !s.names.is_empty() {
            for n in &s.names {
                out.push(Target {
                    info: s.info.clone(),
                    namespace: ns.clone(),
                    name: n.clone(),
                });
            }
            continue;
        }
        if opts.selector.is_none() && opts.field_selector.is_none() && !opts.all {
            return Err(CtlError::Usage(
                "resource(s) were provided, but no name was specified".into(),
            ));
        }
        let list_ns = if opts.all_namespaces {
            None
        } else {
            ns.as_deref()
        };
        let mut pairs: Vec<(&str, String)> = Vec::new();
        if let Some(l) = &opts.selector {
            pairs.push(("labelSelector", l.clone()));
        }
        if let Some(f) = &opts.field_selector {
            pairs.push(("fieldSelector", f.clone()));
        }
        let path = format!(
            "{}{}",
            s.info.collection_path(list_ns),
            crate::client::query(&pairs)
        );
        let list = ctx.get_json(&path).await?;
        for item in list["items"].as_array().cloned().unwrap_or_default() {
            out.push(Target {
                info: s.info.clone(),
                namespace: item["metadata"]["namespace"].as_str().map(str::to_string),
                name: item["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            });
        }
    }
    Ok(out)
}

/// Sets `apiVersion` and `kind` on list items that lack them.
pub fn with_type(mut obj: Value, info: &ResourceInfo) -> Value {
    if obj
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .is_empty()
    {
        obj["kind"] = Value::String(info.kind.clone());
    }
    if obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .is_empty()
    {
        obj["apiVersion"] = Value::String(info.api_version());
    }
    obj
}
