//! `nodes/proxy`: `GET /api/v1/nodes/<name>/proxy/<path>?<query>` relayed to the node's kubelet
//! (`GET /<path>?<query>` over HTTPS, as the API server's kubelet client — [`crate::kubelet`])
//! and its answer — status, content type, body streamed — passed back as it is. It is how
//! clients read a kubelet without reaching its port or holding its credentials, e.g.
//! `kubectl get --raw /api/v1/nodes/N/proxy/stats/summary` and `rkubectl top`; the API server
//! authorizes it as `get` on `nodes/proxy`.

use axum::body::Body;
use axum::http::header;
use axum::response::Response;
use k8s_openapi::api::core::v1::Node;

use super::logs::read;
use super::request::Query;
use crate::error::ApiError;
use crate::kubelet::KubeletClient;
use crate::registry::Api;
use crate::resources;

/// Relays `GET /<path>?<query>` to the kubelet of node `name`.
pub async fn node_proxy(
    api: &Api,
    kubelet: &KubeletClient,
    name: &str,
    path: &str,
    q: &Query,
) -> Result<Response, ApiError> {
    let node: Node = read(api, &resources::NODES, None, name).await?;
    let mut target = format!("/{path}");
    if !q.raw().is_empty() {
        target.push('?');
        target.push_str(q.raw());
    }
    let resp = kubelet.get(&node, &target).await?;
    let (parts, body) = resp.into_parts();
    let mut out = Response::builder().status(parts.status);
    for h in [header::CONTENT_TYPE, header::CONTENT_ENCODING] {
        if let Some(v) = parts.headers.get(&h) {
            out = out.header(h, v);
        }
    }
    out.body(Body::new(body))
        .map_err(|e| ApiError::internal(e.to_string()))
}
