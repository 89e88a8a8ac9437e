//! The kubelet's stream endpoints — `/exec/{namespace}/{pod}/{container}`,
//! `/attach/{namespace}/{pod}/{container}` and `/portForward/{namespace}/{pod}` — that the API
//! server relays `pods/exec`, `pods/attach` and `pods/portforward` to. As Kubernetes' kubelet
//! does, each asks the runtime over CRI (`Exec`, `Attach`, `PortForward`) for a URL on the
//! runtime's streaming server (containerd's, on loopback) and relays the client's upgrade
//! request there, so the runtime speaks SPDY or WebSocket with the client directly.
//!
//! Options come as the API server passes them: `command` (repeated), `stdin`, `stdout`,
//! `stderr`, `tty`, `port` (repeated) — and under the kubelet's own names (`input`, `output`,
//! `error`) too.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use hyper::upgrade::OnUpgrade;
use rkube_cri::v1 as cri;

use super::{ServerState, pod_container, text};
use crate::runtime::State as CState;

/// The values of `key` in `query`, in order.
fn values(query: &str, key: &str) -> Vec<String> {
    form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
        .collect()
}

/// Whether the boolean option (`stdin`, or its kubelet name `input`, …) is set.
fn flag(query: &str, keys: &[&str]) -> bool {
    keys.iter().any(|k| {
        values(query, k)
            .iter()
            .any(|v| rkube_machinery::query::bool_value(v))
    })
}

/// What a stream request asks for.
#[derive(Debug, PartialEq)]
struct Streams {
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
}

fn streams(query: &str) -> Streams {
    let tty = flag(query, &["tty"]);
    Streams {
        stdin: flag(query, &["stdin", "input"]),
        stdout: flag(query, &["stdout", "output"]),
        // With a terminal, standard error is merged into standard output.
        stderr: !tty && flag(query, &["stderr", "error"]),
        tty,
    }
}

/// The id of the running container `container` of pod `namespace/pod`, or the answer saying
/// why there is none.
async fn running_container(
    s: &ServerState,
    namespace: &str,
    pod_name: &str,
    container: &str,
) -> Result<String, Response> {
    let (rt, kind) = pod_container(s, namespace, pod_name, container).await?;
    rt.named(container, kind)
        .find(|c| c.state == CState::Running)
        .map(|c| c.id.clone())
        .ok_or_else(|| {
            text(
                StatusCode::BAD_REQUEST,
                format!("container {container} of pod {pod_name} is not running"),
            )
        })
}

/// The running container an exec or attach is for, and the streams the query asks for.
async fn target(
    s: &ServerState,
    namespace: &str,
    pod_name: &str,
    container: &str,
    query: &str,
) -> Result<(String, Streams), Response> {
    let id = running_container(s, namespace, pod_name, container).await?;
    Ok((id, streams(query)))
}

/// Relays `req` to the runtime's streaming server at `url` (what the CRI call `op` answered).
async fn relay_to(
    url: Result<String, crate::cri::CriError>,
    op: &str,
    mut req: Request,
) -> Response {
    let url = match url {
        Ok(u) => u,
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, format!("{op}: {e}")),
    };
    let url = url.as_str();
    let Some(upgrade) = req.extensions_mut().remove::<OnUpgrade>() else {
        return text(StatusCode::BAD_REQUEST, "Upgrade request required");
    };
    let Ok(uri) = url.parse::<axum::http::Uri>() else {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the runtime's stream URL {url:?} is not a URL"),
        );
    };
    let (Some(host), port) = (uri.host(), uri.port_u16().unwrap_or(80)) else {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the runtime's stream URL {url:?} has no host"),
        );
    };
    if uri.scheme_str() != Some("http") {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the runtime's stream URL {url:?} is not plain HTTP on loopback"),
        );
    }
    let tcp = match tokio::net::TcpStream::connect((host, port)).await {
        Ok(t) => t,
        Err(e) => {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("connecting to the runtime's streaming server {host}:{port}: {e}"),
            );
        }
    };
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let method = req.method().clone();
    match rkube_machinery::https::upgrade::relay(
        hyper_util::rt::TokioIo::new(tcp),
        method,
        &format!("{host}:{port}"),
        &path,
        req.headers(),
        &[],
        upgrade,
    )
    .await
    {
        Ok(resp) if resp.status() == StatusCode::SWITCHING_PROTOCOLS => resp,
        Ok(resp) => {
            // The runtime refused the upgrade (an unsupported protocol version, say):
            // said as the kubelet's answer, not passed on as if the kubelet had refused.
            let status = resp.status();
            let body = http_body_util::BodyExt::collect(resp.into_body())
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let detail = String::from_utf8_lossy(&body).trim().to_string();
            text(
                StatusCode::BAD_REQUEST,
                format!(
                    "the container runtime refused the stream upgrade ({status}{}{detail})",
                    if detail.is_empty() { "" } else { ": " }
                ),
            )
        }
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `/exec/{namespace}/{pod}/{container}?command=…`.
pub(super) async fn exec(
    State(s): State<Arc<ServerState>>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    req: Request,
) -> Response {
    let query = req.uri().query().unwrap_or_default().to_string();
    let cmd = values(&query, "command");
    if cmd.is_empty() {
        return text(
            StatusCode::BAD_REQUEST,
            "you must specify at least one command for the container",
        );
    }
    let (id, st) = match target(&s, &namespace, &pod, &container, &query).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let url = s
        .ctx
        .cri
        .exec(cri::ExecRequest {
            container_id: id,
            cmd,
            tty: st.tty,
            stdin: st.stdin,
            stdout: st.stdout,
            stderr: st.stderr,
        })
        .await;
    relay_to(url, "exec", req).await
}

/// `/attach/{namespace}/{pod}/{container}`.
pub(super) async fn attach(
    State(s): State<Arc<ServerState>>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    req: Request,
) -> Response {
    let query = req.uri().query().unwrap_or_default().to_string();
    let (id, st) = match target(&s, &namespace, &pod, &container, &query).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let url = s
        .ctx
        .cri
        .attach(cri::AttachRequest {
            container_id: id,
            stdin: st.stdin,
            tty: st.tty,
            stdout: st.stdout,
            stderr: st.stderr,
        })
        .await;
    relay_to(url, "attach", req).await
}

/// `/portForward/{namespace}/{pod}?port=…`.
pub(super) async fn port_forward(
    State(s): State<Arc<ServerState>>,
    Path((namespace, pod_name)): Path<(String, String)>,
    req: Request,
) -> Response {
    let query = req.uri().query().unwrap_or_default().to_string();
    let mut ports = Vec::new();
    for p in values(&query, "port") {
        match p.parse::<u16>() {
            Ok(n) if n > 0 => ports.push(i32::from(n)),
            _ => return text(StatusCode::BAD_REQUEST, format!("invalid port {p:?}")),
        }
    }
    let Some(pod) = s.ctx.pods.by_name(&namespace, &pod_name) else {
        return text(
            StatusCode::NOT_FOUND,
            format!("pod {namespace}/{pod_name} not found on this node"),
        );
    };
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let sandbox = match s.ctx.runtime.pod(&uid).await {
        Ok(rt) => rt
            .latest_sandbox()
            .filter(|sb| sb.ready)
            .map(|sb| sb.id.clone()),
        Err(e) => return text(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    let Some(sandbox) = sandbox else {
        return text(
            StatusCode::BAD_REQUEST,
            format!("pod {pod_name} has no running sandbox"),
        );
    };
    let url = s
        .ctx
        .cri
        .port_forward(cri::PortForwardRequest {
            pod_sandbox_id: sandbox,
            port: ports.clone(),
        })
        .await
        .map(|u| with_ports(u, &ports));
    relay_to(url, "port forward", req).await
}

/// The runtime's port-forward URL with the ports as `port` parameters: a WebSocket
/// port-forward (the official Python client's) names its ports in the query the streaming
/// server reads, as Kubernetes' kubelet passes it on; SPDY names them in its streams.
fn with_ports(url: String, ports: &[i32]) -> String {
    if ports.is_empty() {
        return url;
    }
    let mut query = form_urlencoded::Serializer::new(String::new());
    for p in ports {
        query.append_pair("port", &p.to_string());
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{}", query.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_forward_urls_carry_the_ports() {
        assert_eq!(
            with_ports("http://127.0.0.1:1/portforward/tok".into(), &[80, 8080]),
            "http://127.0.0.1:1/portforward/tok?port=80&port=8080"
        );
        assert_eq!(
            with_ports("http://h/p?x=1".into(), &[5]),
            "http://h/p?x=1&port=5"
        );
        assert_eq!(with_ports("http://h/p".into(), &[]), "http://h/p");
    }

    #[test]
    fn options_under_both_names() {
        assert_eq!(
            streams("stdin=true&stdout=1&stderr=true&tty=false"),
            Streams {
                stdin: true,
                stdout: true,
                stderr: true,
                tty: false
            }
        );
        assert_eq!(
            streams("input=1&output=1&error=1&tty=1"),
            Streams {
                stdin: true,
                stdout: true,
                stderr: false,
                tty: true
            }
        );
        assert_eq!(
            values("command=sh&command=-c&command=echo+a%26b", "command"),
            ["sh", "-c", "echo a&b"]
        );
    }
}
