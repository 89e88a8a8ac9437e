//! `pods/exec`, `pods/attach` and `pods/portforward`: the streams of `kubectl exec`, `attach`
//! and `port-forward` (and of client libraries' `stream`/`exec`). The request — an HTTP/1.1
//! upgrade to SPDY/3.1 or to a WebSocket `*.channel.k8s.io` protocol — is checked here (the
//! pod is bound and not finished, the container exists, exec has a command) and relayed to the
//! kubelet of the pod's node (`/exec/<ns>/<pod>/<container>`, `/attach/…`,
//! `/portForward/<ns>/<pod>`, as the API server's kubelet client), which relays it to the
//! container runtime's streaming server; the API server only joins the connections.

use axum::http::{HeaderMap, Method};
use axum::response::Response;
use hyper::upgrade::OnUpgrade;
use k8s_openapi::api::core::v1::{Node, Pod};

use super::logs::{kubelet_refusal, node_of, pick_container, read};
use super::request::Query;
use crate::error::ApiError;
use crate::kubelet::KubeletClient;
use crate::registry::Api;
use crate::resources;

/// Query parameters the kubelet reads, by the names clients send them to the API server
/// (PodExecOptions, PodAttachOptions, PodPortForwardOptions).
const PASSED: &[&str] = &["stdin", "stdout", "stderr", "tty", "command", "port"];

/// One stream request: the subresource (`exec`, `attach`, `portforward`) of pod `ns/name`.
pub struct StreamRequest<'a> {
    /// `exec`, `attach` or `portforward`.
    pub sub: &'a str,
    /// The pod's namespace.
    pub ns: &'a str,
    /// The pod.
    pub name: &'a str,
    /// GET (WebSocket) or POST (SPDY).
    pub method: Method,
    /// The client's headers (the upgrade's are passed on).
    pub headers: &'a HeaderMap,
    /// The client's query.
    pub query: &'a Query,
    /// The client connection's upgrade, when it can switch protocols (HTTP/1.1).
    pub upgrade: Option<OnUpgrade>,
}

/// The query's values of `key`, in order (`command` and `port` repeat).
fn values<'q>(q: &'q Query, key: &'q str) -> impl Iterator<Item = String> + 'q {
    form_urlencoded::parse(q.raw().as_bytes())
        .filter(move |(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// The kubelet path and query for `r` on `pod`.
fn kubelet_path(r: &StreamRequest<'_>, pod: &Pod) -> Result<String, ApiError> {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for key in PASSED {
        for v in values(r.query, key) {
            query.append_pair(key, &v);
        }
    }
    if r.sub == "portforward" {
        // PodPortForwardOptions' `ports` (WebSocket clients name them in the query, each
        // value a comma-separated list), as the kubelet's `port`.
        for list in values(r.query, "ports") {
            for p in list.split(',') {
                match p.trim().parse::<u16>() {
                    Ok(n) if n > 0 => {
                        query.append_pair("port", &n.to_string());
                    }
                    _ => {
                        return Err(ApiError::bad_request(format!(
                            "invalid port {p:?}: ports must be 1-65535"
                        )));
                    }
                }
            }
        }
    }
    let query = query.finish();
    let (ns, name) = (r.ns, r.name);
    Ok(match r.sub {
        "portforward" => format!("/portForward/{ns}/{name}?{query}"),
        sub => {
            if sub == "exec" && values(r.query, "command").next().is_none() {
                return Err(ApiError::bad_request(
                    "you must specify at least one command for the container",
                ));
            }
            let container = pick_container(pod, name, r.query)?;
            format!("/{sub}/{ns}/{name}/{container}?{query}")
        }
    })
}

/// Checks `r` and relays it to the kubelet of the pod's node.
pub async fn pod_stream(
    api: &Api,
    kubelet: &KubeletClient,
    r: StreamRequest<'_>,
) -> Result<Response, ApiError> {
    let pod: Pod = read(api, &resources::PODS, Some(r.ns), r.name).await?;
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default();
    if matches!(phase, "Succeeded" | "Failed") {
        return Err(ApiError::bad_request(format!(
            "cannot {} a container in a completed pod; current phase is {phase}",
            if r.sub == "portforward" {
                "port-forward to"
            } else {
                r.sub
            }
        )));
    }
    let path = kubelet_path(&r, &pod)?;
    let node_name = node_of(&pod, r.name)?;
    let Some(upgrade) = r.upgrade else {
        return Err(ApiError::bad_request("Upgrade request required"));
    };
    if !rkube_machinery::https::upgrade::is_upgrade(r.headers) {
        return Err(ApiError::bad_request("Upgrade request required"));
    }
    let node: Node = read(api, &resources::NODES, None, &node_name).await?;
    let resp = kubelet
        .relay_upgrade(&node, r.method, &path, r.headers, upgrade)
        .await?;
    let status = resp.status();
    if status == axum::http::StatusCode::SWITCHING_PROTOCOLS {
        return Ok(resp);
    }
    Err(kubelet_refusal(status, resp.into_body(), &node_name, r.sub, r.name).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]}
        }))
        .unwrap()
    }

    fn req<'a>(sub: &'a str, q: &'a Query, h: &'a HeaderMap) -> StreamRequest<'a> {
        StreamRequest {
            sub,
            ns: "ns",
            name: "p",
            method: Method::POST,
            headers: h,
            query: q,
            upgrade: None,
        }
    }

    #[test]
    fn kubelet_paths_keep_repeated_commands_and_ports() {
        let h = HeaderMap::new();
        let q = Query::parse(Some(
            "command=sh&command=-c&command=echo+a%26b&container=b&stdout=true&tty=false&x=1",
        ));
        assert_eq!(
            kubelet_path(&req("exec", &q, &h), &pod()).unwrap(),
            "/exec/ns/p/b?stdout=true&tty=false&command=sh&command=-c&command=echo+a%26b"
        );
        let q = Query::parse(Some("port=80&port=8080"));
        assert_eq!(
            kubelet_path(&req("portforward", &q, &h), &pod()).unwrap(),
            "/portForward/ns/p?port=80&port=8080"
        );
        // WebSocket clients' `ports`, comma-separated or repeated.
        let q = Query::parse(Some("ports=80,8080&ports=9090"));
        assert_eq!(
            kubelet_path(&req("portforward", &q, &h), &pod()).unwrap(),
            "/portForward/ns/p?port=80&port=8080&port=9090"
        );
        let q = Query::parse(Some("ports=80,x"));
        let e = kubelet_path(&req("portforward", &q, &h), &pod()).unwrap_err();
        assert_eq!(e.code, 400, "{e}");
    }

    #[test]
    fn exec_needs_a_command_and_a_container_of_the_pod() {
        let h = HeaderMap::new();
        let q = Query::parse(Some("container=a"));
        let e = kubelet_path(&req("exec", &q, &h), &pod()).unwrap_err();
        assert!(e.to_string().contains("at least one command"), "{e}");
        let q = Query::parse(Some("command=ls"));
        let e = kubelet_path(&req("exec", &q, &h), &pod()).unwrap_err();
        assert!(e.to_string().contains("choose one of: [a b]"), "{e}");
        let q = Query::parse(Some("command=ls&container=c"));
        let e = kubelet_path(&req("attach", &q, &h), &pod()).unwrap_err();
        assert!(e.to_string().contains("not valid for pod p"), "{e}");
    }
}
