//! Request parsing: resource paths (`/api/v1/namespaces/NS/pods/NAME/status`), query
//! parameters, and content negotiation (JSON, YAML, Table).

use std::collections::HashMap;

use axum::http::HeaderMap;

use crate::error::ApiError;
use crate::registry::store::{DeleteOptions, FieldValidation, WriteOptions};
use crate::resources::{self, ResourceDef};

/// What a resource path names.
#[derive(Clone, Debug)]
pub struct Target {
    /// The resource.
    pub def: &'static ResourceDef,
    /// The namespace in the path (`None`: cluster-scoped, or all namespaces).
    pub namespace: Option<String>,
    /// The object name.
    pub name: Option<String>,
    /// The subresource.
    pub sub: Option<String>,
    /// The legacy `/watch/` path prefix was used.
    pub watch_prefix: bool,
    /// What follows a `proxy` subresource (`/api/v1/nodes/n1/proxy/stats/summary`:
    /// `stats/summary`; empty for `…/proxy`).
    pub proxy_path: Option<String>,
}

/// A parsed path: discovery of a group-version, or a resource target.
#[derive(Debug)]
pub enum PathKind {
    /// `/api/v1` or `/apis/<group>/<version>`.
    GroupVersion(String, String),
    /// `/apis/<group>`.
    Group(String),
    /// A resource.
    Resource(Target),
}

/// The name, subresource and proxied path after a resource's path segment; `None` when they
/// do not form one (more than a subresource, unless it is a `proxy` the resource serves).
type Tail = (Option<String>, Option<String>, Option<String>);

fn split_tail(def: &ResourceDef, tail: &[&str]) -> Option<Tail> {
    let own = |s: &&str| Some(s.to_string());
    match tail {
        [] => Some((None, None, None)),
        [name] => Some((own(name), None, None)),
        [name, sub] if *sub == "proxy" && def.has_sub("proxy") => {
            Some((own(name), own(sub), Some(String::new())))
        }
        [name, sub] => Some((own(name), own(sub), None)),
        [name, sub, rest @ ..] if *sub == "proxy" && def.has_sub("proxy") => {
            Some((own(name), own(sub), Some(rest.join("/"))))
        }
        _ => None,
    }
}

/// Parses an API path; `None` when it is not under `/api` or `/apis`.
pub fn parse_path(path: &str) -> Result<Option<PathKind>, ApiError> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", "v1", rest @ ..] => ("", "v1", rest),
        ["api", _, ..] => return Err(ApiError::no_route(path)),
        ["apis", g] => return Ok(Some(PathKind::Group((*g).to_string()))),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Ok(None),
    };
    if rest.is_empty() || rest == [""] {
        return Ok(Some(PathKind::GroupVersion(group.into(), version.into())));
    }
    let (watch_prefix, rest) = match rest {
        ["watch", tail @ ..] => (true, tail),
        other => (false, other),
    };
    let find = |res: &str| resources::find(group, version, res);
    let target = match rest {
        ["namespaces", ns, res, tail @ ..] if find(res).is_some_and(|d| d.namespaced) => {
            let def = find(res).expect("checked");
            let (name, sub, proxy_path) =
                split_tail(def, tail).ok_or_else(|| ApiError::no_route(path))?;
            Target {
                def,
                namespace: Some((*ns).to_string()),
                name,
                sub,
                watch_prefix,
                proxy_path,
            }
        }
        [res, tail @ ..] => {
            let def = find(res).ok_or_else(|| ApiError::no_route(path))?;
            let (name, sub, proxy_path) =
                split_tail(def, tail).ok_or_else(|| ApiError::no_route(path))?;
            if def.namespaced && name.is_some() {
                // A namespaced object needs its namespace in the path.
                return Err(ApiError::no_route(path));
            }
            Target {
                def,
                namespace: None,
                name,
                sub,
                watch_prefix,
                proxy_path,
            }
        }
        [] => return Err(ApiError::no_route(path)),
    };
    if let Some(sub) = &target.sub
        && !target.def.has_sub(sub)
    {
        return Err(ApiError::no_route(path));
    }
    if target.name.as_deref() == Some("") {
        return Err(ApiError::no_route(path));
    }
    Ok(Some(PathKind::Resource(target)))
}

/// Query parameters, decoded, and the query string as it came (what proxies pass on).
#[derive(Clone, Debug, Default)]
pub struct Query {
    params: HashMap<String, String>,
    raw: String,
}

impl Query {
    /// Parses a raw query string.
    pub fn parse(raw: Option<&str>) -> Self {
        let raw = raw.unwrap_or_default();
        Self {
            params: form_urlencoded::parse(raw.as_bytes())
                .into_owned()
                .collect(),
            raw: raw.to_string(),
        }
    }

    /// A parameter.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.params.get(k).map(String::as_str)
    }

    /// The query string as it came (without `?`).
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// A boolean parameter, present and not `0` or `false` (as Kubernetes reads it).
    pub fn flag(&self, k: &str) -> bool {
        self.get(k).is_some_and(rkube_machinery::query::bool_value)
    }

    /// An integer parameter; 400 if malformed.
    pub fn int(&self, k: &str) -> Result<Option<i64>, ApiError> {
        self.get(k)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<i64>()
                    .map_err(|_| ApiError::bad_request(format!("invalid value for {k}: {s:?}")))
            })
            .transpose()
    }

    /// `dryRun=All`; 400 for other values.
    pub fn dry_run(&self) -> Result<bool, ApiError> {
        match self.get("dryRun") {
            None | Some("") => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "Invalid dry run value: {other:?}: supported values: \"All\""
            ))),
        }
    }

    /// Write options from the query and headers.
    pub fn write_options(&self, headers: &HeaderMap) -> Result<WriteOptions, ApiError> {
        let validation = match self.get("fieldValidation") {
            None | Some("") | Some("Warn") => FieldValidation::Warn,
            Some("Strict") => FieldValidation::Strict,
            Some("Ignore") => FieldValidation::Ignore,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "fieldValidation must be one of \"Ignore\", \"Warn\", or \"Strict\", got {other:?}"
                )));
            }
        };
        if let Some(m) = self.get("fieldManager")
            && m.len() > 128
        {
            return Err(ApiError::bad_request(
                "fieldManager: Too long: may not be longer than 128",
            ));
        }
        Ok(WriteOptions {
            dry_run: self.dry_run()?,
            field_manager: self.get("fieldManager").map(str::to_string),
            validation,
            user_agent: headers
                .get(axum::http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string(),
            applied: false,
            user: None,
        })
    }

    /// Delete options from the query, overlaid by a `DeleteOptions` body.
    pub fn delete_options(&self, body: &[u8]) -> Result<DeleteOptions, ApiError> {
        let mut opts = DeleteOptions {
            dry_run: self.dry_run()?,
            grace_period_seconds: self.int("gracePeriodSeconds")?,
            propagation_policy: self.get("propagationPolicy").map(str::to_string),
            ..Default::default()
        };
        if self.flag("orphanDependents") {
            opts.propagation_policy
                .get_or_insert_with(|| "Orphan".into());
        }
        if !body.iter().all(u8::is_ascii_whitespace) {
            let v: serde_json::Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?;
            if let Some(g) = v
                .get("gracePeriodSeconds")
                .and_then(serde_json::Value::as_i64)
            {
                opts.grace_period_seconds = Some(g);
            }
            if let Some(p) = v
                .get("propagationPolicy")
                .and_then(serde_json::Value::as_str)
            {
                opts.propagation_policy = Some(p.to_string());
            }
            if v.get("orphanDependents") == Some(&serde_json::Value::Bool(true)) {
                opts.propagation_policy
                    .get_or_insert_with(|| "Orphan".into());
            }
            if let Some(dry) = v.get("dryRun").and_then(serde_json::Value::as_array)
                && dry.iter().any(|d| d == "All")
            {
                opts.dry_run = true;
            }
            if let Some(pre) = v.get("preconditions") {
                opts.uid = pre.get("uid").and_then(|u| u.as_str()).map(str::to_string);
                opts.resource_version = pre
                    .get("resourceVersion")
                    .and_then(|u| u.as_str())
                    .map(str::to_string);
            }
        }
        if let Some(g) = opts.grace_period_seconds
            && g < 0
        {
            opts.grace_period_seconds = Some(0);
        }
        Ok(opts)
    }
}

/// What the client accepts back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// JSON.
    Json,
    /// YAML.
    Yaml,
    /// A `meta.k8s.io/v1` Table.
    Table,
    /// Only the objects' metadata: `PartialObjectMetadata` (and `PartialObjectMetadataList`
    /// for lists), as metadata-only clients ask (client-go's metadata informers, kube-rs'
    /// `get_metadata` / `list_metadata` / `Api<PartialObjectMeta<K>>`).
    Metadata,
}

/// Picks the response format from `Accept`; 406 when nothing acceptable is offered.
pub fn negotiate(headers: &HeaderMap) -> Result<Output, ApiError> {
    let accept = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.trim().is_empty() {
        return Ok(Output::Json);
    }
    for item in accept.split(',') {
        let mut parts = item.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default().to_ascii_lowercase();
        let params: HashMap<String, String> = parts
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let json_like = matches!(media.as_str(), "application/json" | "*/*" | "application/*");
        let meta_v1 = params.get("g").map(String::as_str) == Some("meta.k8s.io")
            && matches!(params.get("v").map(String::as_str), Some("v1" | "v1beta1"));
        if json_like
            && matches!(
                params.get("as").map(String::as_str),
                Some("PartialObjectMetadata" | "PartialObjectMetadataList")
            )
        {
            if meta_v1 {
                return Ok(Output::Metadata);
            }
            continue;
        }
        if json_like && params.get("as").map(String::as_str) == Some("Table") {
            if params.get("g").map(String::as_str) == Some("meta.k8s.io")
                && params.get("v").map(String::as_str) == Some("v1")
            {
                return Ok(Output::Table);
            }
            continue;
        }
        if json_like && !params.contains_key("as") {
            return Ok(Output::Json);
        }
        if media == "application/yaml" && !params.contains_key("as") {
            return Ok(Output::Yaml);
        }
    }
    Err(ApiError::not_acceptable(accept))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(path: &str) -> Target {
        match parse_path(path).unwrap().unwrap() {
            PathKind::Resource(t) => t,
            other => panic!("not a resource: {other:?}"),
        }
    }

    #[test]
    fn parses_resource_paths() {
        let t = target("/api/v1/namespaces/default/pods/web/status");
        assert_eq!(t.def.resource, "pods");
        assert_eq!(t.namespace.as_deref(), Some("default"));
        assert_eq!(t.name.as_deref(), Some("web"));
        assert_eq!(t.sub.as_deref(), Some("status"));
        let t = target("/api/v1/pods");
        assert_eq!((t.namespace, t.name), (None, None));
        let t = target("/api/v1/namespaces/kube-system");
        assert_eq!(t.def.resource, "namespaces");
        assert_eq!(t.name.as_deref(), Some("kube-system"));
        let t = target("/api/v1/namespaces/x/finalize");
        assert_eq!(t.sub.as_deref(), Some("finalize"));
        let t = target("/apis/apps/v1/namespaces/ns/deployments/d/scale");
        assert_eq!(t.def.kind, "Deployment");
        assert_eq!(t.sub.as_deref(), Some("scale"));
        let t = target("/api/v1/watch/namespaces/ns/pods");
        assert!(t.watch_prefix);
        assert!(parse_path("/api/v1/namespaces/ns/nothings").is_err());
        assert!(parse_path("/api/v1/namespaces/ns/pods/a/b/c").is_err());
        assert!(parse_path("/api/v1/namespaces/ns/configmaps/a/status").is_err());
        assert!(parse_path("/healthz").unwrap().is_none());
        let t = target("/api/v1/nodes/n1/proxy/stats/summary");
        assert_eq!(t.name.as_deref(), Some("n1"));
        assert_eq!(t.sub.as_deref(), Some("proxy"));
        assert_eq!(t.proxy_path.as_deref(), Some("stats/summary"));
        let t = target("/api/v1/nodes/n1/proxy");
        assert_eq!(t.proxy_path.as_deref(), Some(""));
        assert!(parse_path("/api/v1/nodes/n1/status/x").is_err());
        assert!(parse_path("/api/v1/namespaces/ns/configmaps/a/proxy/x").is_err());
        assert!(matches!(
            parse_path("/apis/apps/v1").unwrap(),
            Some(PathKind::GroupVersion(..))
        ));
    }

    #[test]
    fn negotiates_tables_metadata_json_yaml() {
        let mut h = HeaderMap::new();
        h.insert(
            "accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
                .parse()
                .unwrap(),
        );
        assert_eq!(negotiate(&h).unwrap(), Output::Table);
        h.insert(
            "accept",
            "application/vnd.kubernetes.protobuf, application/json"
                .parse()
                .unwrap(),
        );
        assert_eq!(negotiate(&h).unwrap(), Output::Json);
        h.insert("accept", "application/yaml".parse().unwrap());
        assert_eq!(negotiate(&h).unwrap(), Output::Yaml);
        // client-go's metadata client: protobuf first, then JSON metadata, then plain JSON.
        h.insert(
            "accept",
            "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
                .parse()
                .unwrap(),
        );
        assert_eq!(negotiate(&h).unwrap(), Output::Metadata);
        h.insert(
            "accept",
            "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
                .parse()
                .unwrap(),
        );
        assert_eq!(negotiate(&h).unwrap(), Output::Metadata);
        h.insert(
            "accept",
            "application/json;as=PartialObjectMetadata;g=example.com;v=v1, application/yaml"
                .parse()
                .unwrap(),
        );
        assert_eq!(negotiate(&h).unwrap(), Output::Yaml);
        h.insert(
            "accept",
            "application/vnd.kubernetes.protobuf".parse().unwrap(),
        );
        assert!(negotiate(&h).is_err());
    }
}
