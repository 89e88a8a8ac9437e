//! Relaying upgraded connections — the streams of `kubectl exec`, `attach` and `port-forward`
//! (SPDY/3.1 or WebSocket `*.channel.k8s.io`) — from a client to the server that speaks them,
//! as Kubernetes' upgrade-aware proxy does: the API server relays a `pods/exec` request to the
//! kubelet, the kubelet relays it to the container runtime's streaming server. The request is
//! sent on over HTTP/1.1 with its upgrade headers; when the server answers 101 Switching
//! Protocols, the client gets that answer and from then on the bytes of both connections are
//! copied both ways until either side closes. Any other answer (a refused upgrade, an error
//! `Status`) is passed back as it is. The relay never reads the streams themselves.

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

/// Why a relay could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    /// The request to the server could not be sent or was not answered.
    #[error("relaying the stream: {0}")]
    Http(#[from] hyper::Error),
    /// The request to the server could not be built.
    #[error("relaying the stream: {0}")]
    Request(#[from] http::Error),
}

/// Headers of the client's request passed on to the server: the upgrade itself and what the
/// streaming protocols negotiate with.
fn forwarded(name: &header::HeaderName) -> bool {
    let n = name.as_str();
    n == "connection"
        || n == "upgrade"
        || n.starts_with("sec-websocket-")
        || n == "x-stream-protocol-version"
        || n == "origin"
}

/// Whether a request asks for a protocol upgrade (`Connection: Upgrade` and an `Upgrade`).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    connection_upgrade && headers.contains_key(header::UPGRADE)
}

/// Sends `method path_and_query` with the client's upgrade headers over `io` (a fresh
/// connection to the server, HTTP/1.1) and relays the answer: on 101 the two connections are
/// joined once the client's side has switched too (`client` is the client request's
/// [`OnUpgrade`]); otherwise the server's answer is the client's.
pub async fn relay<I>(
    io: I,
    method: Method,
    host: &str,
    path_and_query: &str,
    headers: &HeaderMap,
    extra: &[(header::HeaderName, HeaderValue)],
    client: OnUpgrade,
) -> Result<Response, UpgradeError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Body>(io).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "stream relay connection ended");
        }
    });
    let mut req = http::Request::builder()
        .method(method)
        .uri(path_and_query)
        .header(header::HOST, host);
    for (name, value) in headers {
        if forwarded(name) {
            req = req.header(name, value);
        }
    }
    for (name, value) in extra {
        req = req.header(name, value);
    }
    let mut resp = sender.send_request(req.body(Body::empty())?).await?;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        let (parts, body) = resp.into_parts();
        return Ok(Response::from_parts(parts, Body::new(body)));
    }
    let server = hyper::upgrade::on(&mut resp);
    let mut answer = Response::builder().status(StatusCode::SWITCHING_PROTOCOLS);
    for (name, value) in resp.headers() {
        answer = answer.header(name, value);
    }
    tokio::spawn(async move {
        let (client, server) = match tokio::join!(client, server) {
            (Ok(c), Ok(s)) => (c, s),
            (Err(e), _) | (_, Err(e)) => {
                tracing::debug!(error = %e, "a side of the stream relay did not switch");
                return;
            }
        };
        let (mut client, mut server) = (TokioIo::new(client), TokioIo::new(server));
        match tokio::io::copy_bidirectional(&mut client, &mut server).await {
            Ok((up, down)) => tracing::debug!(up, down, "stream relay closed"),
            Err(e) => tracing::debug!(error = %e, "stream relay ended"),
        }
    });
    Ok(answer.body(Body::empty())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrade_requests_are_recognised() {
        let mut h = HeaderMap::new();
        assert!(!is_upgrade(&h));
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert!(!is_upgrade(&h));
        h.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
        assert!(is_upgrade(&h));
        assert!(forwarded(&header::HeaderName::from_static(
            "sec-websocket-protocol"
        )));
        assert!(forwarded(&header::HeaderName::from_static(
            "x-stream-protocol-version"
        )));
        assert!(!forwarded(&header::AUTHORIZATION));
        assert!(!forwarded(&header::HeaderName::from_static(
            "impersonate-user"
        )));
    }
}
