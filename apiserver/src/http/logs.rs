//! `pods/log`: finds the node running the pod and streams the container log from that node's
//! kubelet (`GET /containerLogs/<ns>/<pod>/<container>`), passing `follow`, `tailLines`,
//! `previous`, `timestamps`, `sinceSeconds`, `sinceTime` and `limitBytes` through.

use axum::body::Body;
use axum::response::Response;
use k8s_openapi::api::core::v1::{Node, Pod};

use super::request::Query;
use crate::error::ApiError;
use crate::registry::Api;
use crate::resources;

const PASSED: &[&str] = &[
    "follow",
    "tailLines",
    "previous",
    "timestamps",
    "sinceSeconds",
    "sinceTime",
    "limitBytes",
];

async fn read<T: serde::de::DeserializeOwned>(
    api: &Api,
    def: &'static resources::ResourceDef,
    ns: Option<&str>,
    name: &str,
) -> Result<T, ApiError> {
    let kind = api
        .kind(def)
        .ok_or_else(|| ApiError::internal(format!("{} not served", def.resource)))?;
    let raw = kind.get(api, ns, name).await?;
    serde_json::from_slice(&raw).map_err(|e| ApiError::internal(e.to_string()))
}

/// The container whose log is asked for: the `container` parameter, or the only one.
fn pick_container(pod: &Pod, name: &str, q: &Query) -> Result<String, ApiError> {
    let spec = pod.spec.clone().unwrap_or_default();
    let all: Vec<String> = spec
        .containers
        .iter()
        .map(|c| c.name.clone())
        .chain(
            spec.init_containers
                .iter()
                .flatten()
                .map(|c| c.name.clone()),
        )
        .chain(
            spec.ephemeral_containers
                .iter()
                .flatten()
                .map(|c| c.name.clone()),
        )
        .collect();
    match q.get("container").filter(|c| !c.is_empty()) {
        Some(c) if all.iter().any(|x| x == c) => Ok(c.to_string()),
        Some(c) => Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {name}"
        ))),
        None if spec.containers.len() == 1 => Ok(spec.containers[0].name.clone()),
        None => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            spec.containers
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        ))),
    }
}

/// The kubelet address of a node: its InternalIP (else ExternalIP, else Hostname) and port.
fn kubelet_address(node: &Node) -> Option<(String, i32)> {
    let status = node.status.as_ref()?;
    let addrs = status.addresses.as_ref()?;
    let pick = |t: &str| {
        addrs
            .iter()
            .find(|a| a.type_ == t)
            .map(|a| a.address.clone())
    };
    let host = pick("InternalIP")
        .or_else(|| pick("ExternalIP"))
        .or_else(|| pick("Hostname"))?;
    let port = status
        .daemon_endpoints
        .as_ref()
        .and_then(|d| d.kubelet_endpoint.as_ref())
        .map(|e| e.port)
        .filter(|p| *p > 0)
        .unwrap_or(10250);
    Some((host, port))
}

/// Streams a container's log from the kubelet of the pod's node.
pub async fn pod_log(api: &Api, ns: &str, name: &str, q: &Query) -> Result<Response, ApiError> {
    let pod: Pod = read(api, &resources::PODS, Some(ns), name).await?;
    let container = pick_container(&pod, name, q)?;
    let node_name = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(format!("pod {name} does not have a host assigned"))
        })?;
    let node: Node = read(api, &resources::NODES, None, &node_name).await?;
    let (host, port) = kubelet_address(&node).ok_or_else(|| {
        ApiError::bad_request(format!("node {node_name} has no address for its kubelet"))
    })?;
    let query = {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for k in PASSED {
            if let Some(v) = q.get(k) {
                query.append_pair(k, v);
            }
        }
        query.finish()
    };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    let url = format!("http://{host}:{port}/containerLogs/{ns}/{name}/{container}?{query}");
    let uri: axum::http::Uri = url
        .parse()
        .map_err(|e| ApiError::internal(format!("bad kubelet URL {url}: {e}")))?;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Body>();
    let resp = tokio::time::timeout(std::time::Duration::from_secs(10), client.get(uri))
        .await
        .map_err(|_| ApiError::unavailable(format!("the kubelet on {node_name} did not answer")))?
        .map_err(|e| {
            ApiError::unavailable(format!(
                "cannot reach the kubelet on {node_name} ({host}:{port}): {e}"
            ))
        })?;
    let status = resp.status();
    let (parts, body) = resp.into_parts();
    if !status.is_success() {
        let bytes = http_body_util::BodyExt::collect(body)
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes).trim().to_string();
        return Err(match status.as_u16() {
            404 => ApiError::not_found("", "pods/log", name),
            400 => ApiError::bad_request(text),
            _ => ApiError::internal(format!("kubelet answered {status}: {text}")),
        });
    }
    let content_type = parts
        .headers
        .get(axum::http::header::CONTENT_TYPE)
        .cloned()
        .unwrap_or_else(|| axum::http::HeaderValue::from_static("text/plain"));
    Ok(Response::builder()
        .status(200)
        .header(axum::http::header::CONTENT_TYPE, content_type)
        .body(Body::new(body))
        .unwrap_or_default())
}
