//! The accept loop of an HTTPS server: each connection's TLS handshake runs in its own task
//! (a slow client holds up no one), HTTP/1.1 or h2 by ALPN, what the connection proved (its
//! verified client certificate, its address) handed to every request as extensions, and a
//! graceful stop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// How long a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How many streams (requests and watches) one h2 connection may have open at once — what
/// kube-apiserver allows; a client with more waits for a stream to end. (hyper's default,
/// 200, is less than a controller manager's informers plus its requests in flight.)
const MAX_CONCURRENT_STREAMS: u32 = 1000;

/// Serves `app` over TLS on `listener` until `stop` is cancelled (handlers of long-running
/// requests watch the same token to end their streams), then waits up to `grace` for open
/// connections to finish. `per_connection` makes, from the established TLS connection and
/// the client's address, the extensions every request of that connection carries.
pub async fn serve<F>(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: axum::Router,
    stop: CancellationToken,
    grace: Duration,
    per_connection: F,
) where
    F: Fn(&rustls::ServerConnection, SocketAddr) -> http::Extensions + Send + Sync + 'static,
{
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let per_connection = Arc::new(per_connection);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: keep serving the connections we have.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        let watcher = graceful.watcher();
        let stop = stop.clone();
        let per_connection = per_connection.clone();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
            let tls = tokio::select! {
                r = handshake => match r {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::debug!(%remote, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%remote, "TLS handshake timed out");
                        return;
                    }
                },
                () = stop.cancelled() => return,
            };
            let extensions = per_connection(tls.get_ref().1, remote);
            let svc = tower::ServiceExt::map_request(
                app,
                move |mut req: http::Request<hyper::body::Incoming>| {
                    req.extensions_mut().extend(extensions.clone());
                    req
                },
            );
            let mut builder =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            builder
                .http2()
                .max_concurrent_streams(MAX_CONCURRENT_STREAMS);
            let conn = builder.serve_connection_with_upgrades(
                hyper_util::rt::TokioIo::new(tls),
                hyper_util::service::TowerToHyperService::new(svc),
            );
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(%remote, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after {grace:?}; closing them");
    }
}
