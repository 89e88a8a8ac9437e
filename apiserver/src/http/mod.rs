//! The HTTP layer: routing of Kubernetes API paths to the registry, request decoding, content
//! negotiation, the patch types, subresources (status, scale, binding, eviction, log,
//! finalize, token, node proxy, approval), discovery, OpenAPI, health and metrics endpoints.

pub mod auth;
pub mod discovery;
pub mod guard;
pub mod list;
pub mod logs;
pub mod metadata;
pub mod metrics;
pub mod patch;
pub mod proxy;
pub mod request;
pub mod stream;
pub mod table;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::registry::store::{Sub, Written};
use crate::registry::{Api, KindOps};
use request::{Output, PathKind, Query, Target};

pub use guard::ConnInfo;

use crate::auth::UserInfo;

/// The largest request body accepted (Kubernetes' limit).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// Shared state of the HTTP layer.
pub struct AppState {
    /// The registry and storage.
    pub api: Arc<Api>,
    /// Cancelled at shutdown: watches end cleanly.
    pub shutdown: CancellationToken,
    /// Request metrics.
    pub metrics: metrics::Metrics,
    /// The address clients reach us at (for `/api`).
    pub server_address: String,
    /// Who requests come from.
    pub authn: crate::auth::Authenticator,
    /// What they may do.
    pub authz: crate::auth::Authorizer,
    /// The audit log, if enabled.
    pub audit: Option<crate::audit::AuditLog>,
    /// In-flight and watch limits.
    pub limits: Arc<guard::Limits>,
    /// The client of kubelets (`pods/log`, `nodes/proxy`).
    pub kubelet: crate::kubelet::KubeletClient,
}

/// The router of every endpoint.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/version", get(version))
        // The official Python client asks for `/version/`.
        .route("/version/", get(version))
        .route("/healthz", get(health))
        .route("/livez", get(health))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics_endpoint))
        .route("/openapi/v2", get(openapi_v2))
        .route("/openapi/v3", get(openapi_v3_index))
        .route("/openapi/v3/{*path}", get(openapi_v3_doc))
        .fallback(api_handler)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::guard,
        ))
        .with_state(state)
}

async fn version() -> Response {
    json_response(200, &discovery::version())
}

async fn health() -> &'static str {
    "ok"
}

async fn ready(State(st): State<Arc<AppState>>) -> Response {
    let check = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        st.api.store.current_revision(),
    )
    .await;
    match check {
        Ok(Ok(_)) if !st.shutdown.is_cancelled() => "ok".into_response(),
        Ok(Ok(_)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "[-]shutdown failed: server is shutting down\n",
        )
            .into_response(),
        Ok(Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("[-]storage failed: {e}\nreadyz check failed\n"),
        )
            .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "[-]storage failed: timed out\nreadyz check failed\n",
        )
            .into_response(),
    }
}

async fn metrics_endpoint(State(st): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        st.metrics.render(),
    )
        .into_response()
}

fn served() -> Vec<rkube_machinery::schema::ServedResource> {
    crate::resources::ALL
        .iter()
        .map(|d| rkube_machinery::schema::ServedResource {
            group: d.group.to_string(),
            version: d.version.to_string(),
            resource: d.resource.to_string(),
            kind: d.kind.to_string(),
            namespaced: d.namespaced,
            verbs: d.verbs().iter().map(|s| s.to_string()).collect(),
            subresources: d.subresources.iter().map(|s| s.to_string()).collect(),
        })
        .collect()
}

/// The Swagger 2.0 document: JSON, or gnostic's protobuf encoding when the client asks for it
/// (kubectl's client-side validation reads only that).
async fn openapi_v2(headers: HeaderMap) -> Response {
    use rkube_machinery::schema::swagger_pb;
    static JSON: std::sync::LazyLock<Bytes> = std::sync::LazyLock::new(|| {
        Bytes::from(
            serde_json::to_vec(&rkube_machinery::schema::openapi_v2(&served())).unwrap_or_default(),
        )
    });
    static PROTOBUF: std::sync::LazyLock<Bytes> = std::sync::LazyLock::new(|| {
        Bytes::from(swagger_pb::encode(&rkube_machinery::schema::openapi_v2(
            &served(),
        )))
    });
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if swagger_pb::accepts_protobuf(accept) {
        return Response::builder()
            .status(200)
            .header(header::CONTENT_TYPE, swagger_pb::CONTENT_TYPE)
            .body(Body::from(PROTOBUF.clone()))
            .unwrap_or_default();
    }
    raw_json_response(200, JSON.clone())
}

async fn openapi_v3_index() -> Response {
    json_response(200, &rkube_machinery::schema::openapi_v3_index(&served()))
}

async fn openapi_v3_doc(axum::extract::Path(path): axum::extract::Path<String>) -> Response {
    let (group, version) = match path.split('/').collect::<Vec<_>>().as_slice() {
        ["api", v] => (String::new(), (*v).to_string()),
        ["apis", g, v] => ((*g).to_string(), (*v).to_string()),
        _ => return ApiError::no_route(&format!("/openapi/v3/{path}")).into_response(),
    };
    let served: Vec<_> = served()
        .into_iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if served.is_empty() {
        return ApiError::no_route(&format!("/openapi/v3/{path}")).into_response();
    }
    json_response(
        200,
        &rkube_machinery::schema::openapi_v3_group_version(&group, &version, &served),
    )
}

/// A JSON response.
pub fn json_response(code: u16, v: &Value) -> Response {
    raw_json_response(code, Bytes::from(serde_json::to_vec(v).unwrap_or_default()))
}

/// A response of JSON bytes.
pub fn raw_json_response(code: u16, body: Bytes) -> Response {
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap_or_default()
}

/// A YAML response.
pub fn yaml_response(code: u16, v: &Value) -> Response {
    let text = serde_saphyr::to_string(v).unwrap_or_default();
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/yaml")
        .body(Body::from(text))
        .unwrap_or_default()
}

fn respond_object(
    code: u16,
    body: Bytes,
    output: Output,
    kind: &dyn KindOps,
    q: &Query,
) -> Result<Response, ApiError> {
    match output {
        Output::Json => Ok(raw_json_response(code, body)),
        Output::Yaml => {
            let v: Value =
                serde_json::from_slice(&body).map_err(|e| ApiError::internal(e.to_string()))?;
            Ok(yaml_response(code, &v))
        }
        Output::Table => {
            let t = table::table(kind, std::slice::from_ref(&body), None, q)?;
            Ok(json_response(code, &t))
        }
        Output::Metadata => Ok(raw_json_response(code, metadata::object(&body)?)),
    }
}

fn written_response(
    w: Written,
    output: Output,
    kind: &dyn KindOps,
    q: &Query,
) -> Result<Response, ApiError> {
    // An object still being deleted is 200 too: Kubernetes answers 202 only to the deprecated
    // `orphanDependents=false`.
    let code = if w.created { 201 } else { 200 };
    let mut resp = respond_object(code, w.body, output, kind, q)?;
    for warning in w.warnings {
        if let Ok(v) = format!("299 - {warning:?}").parse() {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    Ok(resp)
}

/// What a delete that removed the object at once answers for most kinds (Kubernetes'
/// `finalizeDelete`): a success `Status` naming the object, so a client can tell it is gone
/// rather than waiting for finalizers.
fn deleted_status(def: &crate::resources::ResourceDef, body: &[u8]) -> Response {
    #[derive(serde::Deserialize)]
    struct Deleted {
        metadata: DeletedMeta,
    }
    #[derive(Default, serde::Deserialize)]
    struct DeletedMeta {
        #[serde(default)]
        name: String,
        #[serde(default)]
        uid: String,
    }
    let m = serde_json::from_slice::<Deleted>(body)
        .map(|d| d.metadata)
        .unwrap_or_default();
    let mut details = json!({"name": m.name, "kind": def.resource, "uid": m.uid});
    if !def.group.is_empty() {
        details["group"] = json!(def.group);
    }
    json_response(
        200,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}),
    )
}

fn success_status(code: u16) -> Response {
    json_response(
        code,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code}),
    )
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Parses a create/update body by content type: JSON, YAML, or Kubernetes protobuf (what
/// kubectl's typed clients send); `expected` is the (apiVersion, kind) the path serves.
fn object_body(
    headers: &HeaderMap,
    body: &[u8],
    expected: (&str, &str),
) -> Result<Value, ApiError> {
    let ct = content_type(headers);
    match ct.as_str() {
        "application/json" | "" | "*/*" => crate::registry::codec::parse_body(body, false),
        "application/yaml" | "application/x-yaml" | "text/yaml" => {
            crate::registry::codec::parse_body(body, true)
        }
        rkube_machinery::protobuf::CONTENT_TYPE => {
            let mut v = rkube_machinery::protobuf::decode_as(body, expected.0, expected.1)
                .map_err(|e| {
                    ApiError::bad_request(format!("cannot decode the protobuf body: {e}"))
                })?;
            if let Some(o) = v.as_object_mut() {
                o.entry("apiVersion").or_insert_with(|| expected.0.into());
                o.entry("kind").or_insert_with(|| expected.1.into());
            }
            Ok(v)
        }
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

/// A DeleteOptions body (JSON or protobuf) as JSON bytes.
fn delete_body(headers: &HeaderMap, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    if content_type(headers) == rkube_machinery::protobuf::CONTENT_TYPE {
        let v = rkube_machinery::protobuf::decode_as(body, "v1", "DeleteOptions")
            .map_err(|e| ApiError::bad_request(format!("cannot decode the protobuf body: {e}")))?;
        return serde_json::to_vec(&v).map_err(|e| ApiError::internal(e.to_string()));
    }
    Ok(body.to_vec())
}

async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, MAX_BODY).await.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.to_string().contains("length limit exceeded"))
            || e.to_string().contains("length limit exceeded");
        if too_large {
            ApiError::too_large(MAX_BODY)
        } else {
            ApiError::bad_request(format!("cannot read the request body: {e}"))
        }
    })
}

/// Every `/api` and `/apis` request.
async fn api_handler(State(st): State<Arc<AppState>>, req: Request) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let q = Query::parse(req.uri().query());
    let (mut parts, body) = req.into_parts();
    let user = parts.extensions.get::<Arc<UserInfo>>().cloned();
    let upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
    let (verb, resource, result) = route(
        &st,
        &method,
        &path,
        q,
        &parts.headers,
        (body, upgrade),
        user,
    )
    .await;
    let resp = result.unwrap_or_else(IntoResponse::into_response);
    st.metrics
        .observe(verb, &resource, resp.status().as_u16(), started.elapsed());
    if resp.status().is_server_error() {
        tracing::warn!(%method, %path, status = resp.status().as_u16(), "request failed");
    } else {
        tracing::debug!(%method, %path, status = resp.status().as_u16(), "request");
    }
    resp
}

type Routed = (&'static str, String, Result<Response, ApiError>);

async fn route(
    st: &Arc<AppState>,
    method: &Method,
    path: &str,
    q: Query,
    headers: &HeaderMap,
    (body, upgrade): (Body, Option<hyper::upgrade::OnUpgrade>),
    user: Option<Arc<UserInfo>>,
) -> Routed {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match path.trim_end_matches('/') {
        "/api" | "/apis" => {
            let legacy = path.trim_end_matches('/') == "/api";
            if let Some(v) = discovery::wants_aggregated(accept) {
                let doc = discovery::aggregated(legacy, v);
                let mut resp = json_response(200, &doc);
                if let Ok(ct) =
                    format!("application/json;g=apidiscovery.k8s.io;v={v};as=APIGroupDiscoveryList")
                        .parse()
                {
                    resp.headers_mut().insert(header::CONTENT_TYPE, ct);
                }
                return ("get", "discovery".into(), Ok(resp));
            }
            let doc = if legacy {
                discovery::api_versions(&st.server_address)
            } else {
                discovery::api_group_list()
            };
            return ("get", "discovery".into(), Ok(json_response(200, &doc)));
        }
        _ => {}
    }
    let parsed = match request::parse_path(path) {
        Ok(Some(p)) => p,
        Ok(None) => return ("get", String::new(), Err(ApiError::no_route(path))),
        Err(e) => return ("get", String::new(), Err(e)),
    };
    let target = match parsed {
        PathKind::Group(g) => {
            return (
                "get",
                "discovery".into(),
                discovery::api_group(&g)
                    .map(|v| json_response(200, &v))
                    .ok_or_else(|| ApiError::no_route(path)),
            );
        }
        PathKind::GroupVersion(g, v) => {
            return (
                "get",
                "discovery".into(),
                discovery::api_resource_list(&g, &v)
                    .map(|v| json_response(200, &v))
                    .ok_or_else(|| ApiError::no_route(path)),
            );
        }
        PathKind::Resource(t) => t,
    };
    let resource = match &target.sub {
        Some(s) => format!("{}/{s}", target.def.resource),
        None => target.def.resource.to_string(),
    };
    if std::ptr::eq(target.def, &crate::resources::PODS)
        && let Some(sub @ ("exec" | "attach" | "portforward")) = target.sub.as_deref()
        && let (Some(ns), Some(name)) = (target.namespace.as_deref(), target.name.as_deref())
    {
        let verb = if *method == Method::GET {
            "get"
        } else {
            "create"
        };
        if *method != Method::GET && *method != Method::POST {
            let e = ApiError::method_not_supported(&resource, method.as_str());
            return (verb, resource, Err(e));
        }
        let r = stream::StreamRequest {
            sub,
            ns,
            name,
            method: method.clone(),
            headers,
            query: &q,
            upgrade,
        };
        let result = stream::pod_stream(&st.api, &st.kubelet, r).await;
        return (verb, resource, result);
    }
    if target.def.create_only {
        let result = review(st, &target, method, headers, body, user.as_deref()).await;
        return ("create", resource, result);
    }
    let Some(kind) = st.api.kind(target.def).cloned() else {
        return ("get", resource, Err(ApiError::no_route(path)));
    };
    let (verb, result) = dispatch(st, kind, &target, method, q, headers, body, user).await;
    (verb, resource, result)
}

/// The create-only review resources (access reviews, SelfSubjectReview, TokenReview).
async fn review(
    st: &Arc<AppState>,
    t: &Target,
    method: &Method,
    headers: &HeaderMap,
    body: Body,
    user: Option<&UserInfo>,
) -> Result<Response, ApiError> {
    if *method != Method::POST || t.name.is_some() {
        return Err(ApiError::method_not_supported(
            t.def.resource,
            method.as_str(),
        ));
    }
    let anonymous = UserInfo::anonymous();
    let user = user.unwrap_or(&anonymous);
    let bytes = read_body(body).await?;
    let v = object_body(headers, &bytes, (&t.def.api_version(), t.def.kind))?;
    let out = if std::ptr::eq(t.def, &crate::resources::SELFSUBJECTACCESSREVIEWS) {
        auth::self_subject_access_review(st, user, v).await?
    } else if std::ptr::eq(t.def, &crate::resources::SUBJECTACCESSREVIEWS) {
        auth::subject_access_review(st, v).await?
    } else if std::ptr::eq(t.def, &crate::resources::SELFSUBJECTRULESREVIEWS) {
        auth::self_subject_rules_review(st, user, v)
    } else if std::ptr::eq(t.def, &crate::resources::TOKENREVIEWS) {
        auth::token_review(st, v).await?
    } else {
        auth::self_subject_review(user)
    };
    Ok(json_response(201, &out))
}

/// After a write of an RBAC object: waits until the authorizer has seen it, so the writer's
/// next request is decided by it.
async fn settle(api: &crate::registry::Api, t: &Target, w: &Written, dry_run: bool) {
    if t.def.group != "rbac.authorization.k8s.io" || dry_run {
        return;
    }
    #[derive(serde::Deserialize)]
    struct Meta {
        #[serde(rename = "resourceVersion")]
        resource_version: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Obj {
        metadata: Option<Meta>,
    }
    let rev = serde_json::from_slice::<Obj>(&w.body)
        .ok()
        .and_then(|o| o.metadata?.resource_version?.parse::<i64>().ok());
    if let Some(rev) = rev {
        api.rbac
            .wait_for(rev, std::time::Duration::from_secs(2))
            .await;
    }
}

#[allow(clippy::too_many_arguments)] // One request's parts, passed along unbundled.
async fn dispatch(
    st: &Arc<AppState>,
    kind: Arc<dyn KindOps>,
    t: &Target,
    method: &Method,
    q: Query,
    headers: &HeaderMap,
    body: Body,
    user: Option<Arc<UserInfo>>,
) -> (&'static str, Result<Response, ApiError>) {
    let api = &st.api;
    let ns = t.namespace.as_deref();
    let name = t.name.as_deref();
    let sub = t.sub.as_deref();
    let output = match request::negotiate(headers) {
        Ok(o) => o,
        Err(e) => return ("get", Err(e)),
    };
    if *method == Method::GET {
        let watching = t.watch_prefix || q.flag("watch");
        return match (name, sub) {
            (None, _) if watching => (
                "watch",
                list::watch(api.clone(), kind, t, q, output, st.shutdown.clone()).await,
            ),
            (None, _) => ("list", list::list(api, kind.as_ref(), t, &q, output).await),
            (Some(_), _) if watching => (
                "watch",
                list::watch(api.clone(), kind, t, q, output, st.shutdown.clone()).await,
            ),
            (Some(n), None | Some("status") | Some("approval")) => (
                "get",
                async {
                    let body = kind.get(api, ns, n).await?;
                    respond_object(200, body, output, kind.as_ref(), &q)
                }
                .await,
            ),
            (Some(n), Some("scale")) => ("get", scale_get(api, kind.as_ref(), ns, n).await),
            (Some(n), Some("log")) => (
                "get",
                logs::pod_log(api, &st.kubelet, ns.unwrap_or_default(), n, &q).await,
            ),
            (Some(n), Some("proxy")) => (
                "get",
                proxy::node_proxy(
                    api,
                    &st.kubelet,
                    n,
                    t.proxy_path.as_deref().unwrap_or_default(),
                    &q,
                )
                .await,
            ),
            _ => (
                "get",
                Err(ApiError::method_not_supported(t.def.resource, "GET")),
            ),
        };
    }
    let bytes = match read_body(body).await {
        Ok(b) => b,
        Err(e) => return ("write", Err(e)),
    };
    let opts = match q.write_options(headers) {
        Ok(o) => crate::registry::WriteOptions {
            user: user.clone(),
            ..o
        },
        Err(e) => return ("write", Err(e)),
    };
    match *method {
        Method::POST => match (name, sub) {
            (None, None) => (
                "create",
                async {
                    let v = object_body(headers, &bytes, (&t.def.api_version(), t.def.kind))?;
                    if let Some(u) = &user {
                        crate::auth::node::admit_create(u, t.def.resource, &v)
                            .map_err(ApiError::forbidden)?;
                    }
                    let w = kind.create(api, ns, v, &opts).await?;
                    settle(api, t, &w, opts.dry_run).await;
                    written_response(w, output, kind.as_ref(), &q)
                }
                .await,
            ),
            (Some(n), Some("binding")) => (
                "create",
                async {
                    let v = object_body(headers, &bytes, ("v1", "Binding"))?;
                    bind_pod(api, kind.as_ref(), ns, n, v, &opts).await
                }
                .await,
            ),
            (Some(n), Some("token")) => (
                "create",
                async {
                    let v = object_body(
                        headers,
                        &bytes,
                        ("authentication.k8s.io/v1", "TokenRequest"),
                    )?;
                    let out = st
                        .authn
                        .service_accounts
                        .token_request(api, ns.unwrap_or_default(), n, &v)
                        .await?;
                    Ok(json_response(201, &out))
                }
                .await,
            ),
            (Some(n), Some("eviction")) => (
                "create",
                async {
                    use crate::registry::eviction::{Answer, evict};
                    let v = object_body(headers, &bytes, ("policy/v1", "Eviction"))?;
                    let del = q.delete_options(
                        &serde_json::to_vec(v.get("deleteOptions").unwrap_or(&Value::Null))
                            .unwrap_or_default(),
                    )?;
                    let ns = ns.unwrap_or_default();
                    match evict(api, kind.as_ref(), ns, n, &v, del, &opts).await? {
                        Answer::Evicted => Ok(success_status(201)),
                        Answer::Status(code, status) => Ok(json_response(code, &status)),
                    }
                }
                .await,
            ),
            _ => (
                "create",
                Err(ApiError::method_not_supported(t.def.resource, "POST")),
            ),
        },
        Method::PUT => {
            let Some(n) = name else {
                return (
                    "update",
                    Err(ApiError::method_not_supported(t.def.resource, "PUT")),
                );
            };
            let result = async {
                let expected = match sub {
                    Some("scale") => ("autoscaling/v1".to_string(), "Scale"),
                    _ => (t.def.api_version(), t.def.kind),
                };
                let v = object_body(headers, &bytes, (&expected.0, expected.1))?;
                match sub {
                    Some("scale") => {
                        scale_update(api, kind.as_ref(), ns, n, &opts, &move |_| Ok(v.clone()))
                            .await
                    }
                    _ => {
                        let which = match sub {
                            None => Sub::Main,
                            Some("status") => Sub::Status,
                            Some("finalize") => Sub::Finalize,
                            Some("approval") => Sub::Approval,
                            Some(_) => {
                                return Err(ApiError::method_not_supported(t.def.resource, "PUT"));
                            }
                        };
                        let w = kind
                            .update(api, ns, n, which, &opts, &move |_| Ok(v.clone()))
                            .await?;
                        settle(api, t, &w, opts.dry_run).await;
                        written_response(w, output, kind.as_ref(), &q)
                    }
                }
            }
            .await;
            ("update", result)
        }
        Method::PATCH => {
            let Some(n) = name else {
                return (
                    "patch",
                    Err(ApiError::method_not_supported(t.def.resource, "PATCH")),
                );
            };
            let result = async {
                let p = patch::Patch::parse(&content_type(headers), &bytes, &q)?;
                let opts = crate::registry::WriteOptions {
                    applied: p.is_apply(),
                    ..opts.clone()
                };
                match sub {
                    Some("scale") => {
                        let f = |cur: &Value| p.apply_to(cur, None, &opts);
                        scale_update(api, kind.as_ref(), ns, n, &opts, &f).await
                    }
                    None | Some("status") | Some("approval") => {
                        let which = match sub {
                            Some("status") => Sub::Status,
                            Some("approval") => Sub::Approval,
                            _ => Sub::Main,
                        };
                        let def = t.def;
                        let f = |cur: &Value| p.apply_to(cur, Some(def), &opts);
                        let mut attempts = 0;
                        let w = loop {
                            attempts += 1;
                            match kind.update(api, ns, n, which, &opts, &f).await {
                                // Server-side apply creates what does not exist yet.
                                Err(e) if e.code == 404 && p.is_apply() && which == Sub::Main => {
                                    let desired = p.apply_to(&Value::Null, Some(def), &opts)?;
                                    let named = desired["metadata"]["name"].as_str() == Some(n);
                                    if !named {
                                        return Err(ApiError::bad_request(format!(
                                            "the name of the object does not match the name on the URL ({n})"
                                        )));
                                    }
                                    match kind.create(api, ns, desired, &opts).await {
                                        Err(e) if e.reason == "AlreadyExists" && attempts < 3 => continue,
                                        other => break other?,
                                    }
                                }
                                other => break other?,
                            }
                        };
                        settle(api, t, &w, opts.dry_run).await;
                        written_response(w, output, kind.as_ref(), &q)
                    }
                    Some(_) => Err(ApiError::method_not_supported(t.def.resource, "PATCH")),
                }
            }
            .await;
            ("patch", result)
        }
        Method::DELETE => match (name, sub) {
            (Some(n), None) => (
                "delete",
                async {
                    let del = q.delete_options(&delete_body(headers, &bytes)?)?;
                    if std::ptr::eq(t.def, &crate::resources::NAMESPACES) && !del.dry_run {
                        api.namespace_deleted(n);
                    }
                    let w = kind.delete(api, ns, n, &del).await?;
                    settle(api, t, &w, del.dry_run).await;
                    if !w.pending_deletion && !t.def.return_deleted_object {
                        return Ok(deleted_status(t.def, &w.body));
                    }
                    written_response(w, output, kind.as_ref(), &q)
                }
                .await,
            ),
            (None, None) => (
                "deletecollection",
                async {
                    let body = delete_body(headers, &bytes)?;
                    delete_collection(api, kind.as_ref(), t, &q, &body).await
                }
                .await,
            ),
            _ => (
                "delete",
                Err(ApiError::method_not_supported(t.def.resource, "DELETE")),
            ),
        },
        _ => (
            "unknown",
            Err(ApiError::method_not_supported(
                t.def.resource,
                method.as_str(),
            )),
        ),
    }
}

async fn delete_collection(
    api: &Api,
    kind: &dyn KindOps,
    t: &Target,
    q: &Query,
    body: &[u8],
) -> Result<Response, ApiError> {
    let del = q.delete_options(body)?;
    let listed = list::list_objects(api, kind, t, q).await?;
    let mut deleted = Vec::new();
    for raw in &listed.items {
        let v: Value =
            serde_json::from_slice(raw).map_err(|e| ApiError::internal(e.to_string()))?;
        let name = v["metadata"]["name"].as_str().unwrap_or_default();
        let ns = v["metadata"]["namespace"].as_str();
        match kind.delete(api, ns, name, &del).await {
            Ok(w) => deleted.push(w.body),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let out = list::Listed {
        items: deleted,
        revision: listed.revision,
        continue_token: None,
        remaining_item_count: None,
    };
    Ok(raw_json_response(200, list::list_body(kind, &out)))
}

fn scale_object(obj: &Value, info: &crate::registry::ScaleInfo) -> Value {
    let m = &obj["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": m["name"],
            "namespace": m["namespace"],
            "uid": m["uid"],
            "resourceVersion": m["resourceVersion"],
            "creationTimestamp": m["creationTimestamp"],
        },
        "spec": {"replicas": info.spec_replicas},
        "status": {"replicas": info.status_replicas, "selector": info.selector},
    })
}

async fn scale_get(
    api: &Api,
    kind: &dyn KindOps,
    ns: Option<&str>,
    name: &str,
) -> Result<Response, ApiError> {
    let raw = kind.get(api, ns, name).await?;
    let obj: Value = serde_json::from_slice(&raw).map_err(|e| ApiError::internal(e.to_string()))?;
    let info = kind
        .scale(&obj)?
        .ok_or_else(|| ApiError::method_not_supported(kind.def().resource, "scale"))?;
    Ok(json_response(200, &scale_object(&obj, &info)))
}

/// Updates spec.replicas through a Scale: `mutate` turns the current Scale into the desired one.
async fn scale_update(
    api: &Api,
    kind: &dyn KindOps,
    ns: Option<&str>,
    name: &str,
    opts: &crate::registry::WriteOptions,
    mutate: &(dyn Fn(&Value) -> Result<Value, ApiError> + Send + Sync),
) -> Result<Response, ApiError> {
    let f = |cur: &Value| -> Result<Value, ApiError> {
        if cur.is_null() {
            return Err(ApiError::not_found(
                kind.def().group,
                kind.def().resource,
                name,
            ));
        }
        let info = kind
            .scale(cur)?
            .ok_or_else(|| ApiError::method_not_supported(kind.def().resource, "scale"))?;
        let desired = mutate(&scale_object(cur, &info))?;
        let replicas = desired["spec"]["replicas"]
            .as_i64()
            .and_then(|r| i32::try_from(r).ok())
            .unwrap_or(0);
        if replicas < 0 {
            return Err(ApiError::invalid(
                "autoscaling",
                "Scale",
                name,
                vec![crate::error::FieldError::invalid(
                    "spec.replicas",
                    replicas,
                    "must be greater than or equal to 0",
                )],
            ));
        }
        let mut next = kind.with_replicas(cur.clone(), replicas)?;
        // The Scale's resourceVersion, if given, is a precondition on the object.
        let rv = desired["metadata"]["resourceVersion"].clone();
        match rv.as_str().filter(|s| !s.is_empty()) {
            Some(_) => next["metadata"]["resourceVersion"] = rv,
            None => {
                if let Some(m) = next["metadata"].as_object_mut() {
                    m.remove("resourceVersion");
                }
            }
        }
        Ok(next)
    };
    let w = kind.update(api, ns, name, Sub::Main, opts, &f).await?;
    let obj: Value =
        serde_json::from_slice(&w.body).map_err(|e| ApiError::internal(e.to_string()))?;
    let info = kind
        .scale(&obj)?
        .ok_or_else(|| ApiError::method_not_supported(kind.def().resource, "scale"))?;
    Ok(json_response(200, &scale_object(&obj, &info)))
}

/// `pods/binding`: assigns a pod to a node, once.
async fn bind_pod(
    api: &Api,
    kind: &dyn KindOps,
    ns: Option<&str>,
    name: &str,
    binding: Value,
    opts: &crate::registry::WriteOptions,
) -> Result<Response, ApiError> {
    let node = binding["target"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if node.is_empty() {
        return Err(ApiError::invalid(
            "",
            "Binding",
            name,
            vec![crate::error::FieldError::required("target.name")],
        ));
    }
    if let Some(bname) = binding["metadata"]["name"].as_str()
        && !bname.is_empty()
        && bname != name
    {
        return Err(ApiError::bad_request(format!(
            "the name of the binding ({bname}) does not match the pod ({name})"
        )));
    }
    let now = crate::registry::meta::now();
    let f = |cur: &Value| -> Result<Value, ApiError> {
        if cur.is_null() {
            return Err(ApiError::not_found("", "pods", name));
        }
        if cur["metadata"]
            .get("deletionTimestamp")
            .is_some_and(|v| !v.is_null())
        {
            return Err(ApiError::conflict(
                "",
                "pods",
                name,
                "pod is being deleted, cannot be assigned to a host",
            ));
        }
        if let Some(existing) = cur["spec"]["nodeName"].as_str().filter(|s| !s.is_empty()) {
            return Err(ApiError::conflict(
                "",
                "pods",
                name,
                &format!("pod {name} is already assigned to node {existing:?}"),
            ));
        }
        let mut next = cur.clone();
        next["spec"]["nodeName"] = Value::String(node.clone());
        if let Some(m) = next["metadata"].as_object_mut() {
            m.remove("resourceVersion");
        }
        if let Some(ann) = binding["metadata"]["annotations"].as_object() {
            for (k, v) in ann {
                next["metadata"]["annotations"][k] = v.clone();
            }
        }
        // The PodScheduled condition, in the same write (as the binding REST of Kubernetes).
        let mut conds: Vec<Value> = next["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|c| c["type"] != "PodScheduled")
            .collect();
        conds.push(
            json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null,
                          "lastTransitionTime": now}),
        );
        next["status"]["conditions"] = Value::Array(conds);
        Ok(next)
    };
    kind.update(api, ns, name, Sub::Binding, opts, &f).await?;
    Ok(success_status(201))
}
