//! `pods/log`: finds the node running the pod and streams the container log from that node's
//! kubelet (`GET /containerLogs/<ns>/<pod>/<container>` over HTTPS, as the API server's kubelet
//! client — [`crate::kubelet`]), passing `follow`, `tailLines`, `previous`, `timestamps`,
//! `sinceSeconds`, `sinceTime` and `limitBytes` through.

use axum::body::Body;
use axum::response::Response;
use k8s_openapi::api::core::v1::{Node, Pod};

use super::request::Query;
use crate::error::ApiError;
use crate::kubelet::KubeletClient;
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

/// An object of `def`, decoded.
pub(super) async fn read<T: serde::de::DeserializeOwned>(
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
pub(super) fn pick_container(pod: &Pod, name: &str, q: &Query) -> Result<String, ApiError> {
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

/// What a kubelet's answer other than success means for the client of `pods/<sub>` of pod
/// `name`: its 400s and 404s are the client's, a refusal of the API server or anything else
/// is the server's (with what the kubelet said).
pub(super) async fn kubelet_refusal(
    status: axum::http::StatusCode,
    body: Body,
    node_name: &str,
    sub: &str,
    name: &str,
) -> ApiError {
    let bytes = http_body_util::BodyExt::collect(body)
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).trim().to_string();
    match status.as_u16() {
        404 => ApiError::not_found("", &format!("pods/{sub}"), name),
        400 => ApiError::bad_request(text),
        401 | 403 => ApiError::internal(format!(
            "the kubelet on {node_name} refused the API server ({status}: {text}): {}",
            crate::kubelet::REFUSED_HINT
        )),
        _ => ApiError::internal(format!(
            "the kubelet on {node_name} answered {status}: {text}"
        )),
    }
}

/// The node pod `name` is bound to; a Status when it is not bound.
pub(super) fn node_of(pod: &Pod, name: &str) -> Result<String, ApiError> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad_request(format!("pod {name} does not have a host assigned")))
}

/// Streams a container's log from the kubelet of the pod's node.
pub async fn pod_log(
    api: &Api,
    kubelet: &KubeletClient,
    ns: &str,
    name: &str,
    q: &Query,
) -> Result<Response, ApiError> {
    let pod: Pod = read(api, &resources::PODS, Some(ns), name).await?;
    let container = pick_container(&pod, name, q)?;
    let node_name = node_of(&pod, name)?;
    let node: Node = read(api, &resources::NODES, None, &node_name).await?;
    let query = {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for k in PASSED {
            if let Some(v) = q.get(k) {
                query.append_pair(k, v);
            }
        }
        query.finish()
    };
    let resp = kubelet
        .get(
            &node,
            &format!("/containerLogs/{ns}/{name}/{container}?{query}"),
        )
        .await?;
    let status = resp.status();
    let (parts, body) = resp.into_parts();
    if !status.is_success() {
        return Err(kubelet_refusal(status, Body::new(body), &node_name, "log", name).await);
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
