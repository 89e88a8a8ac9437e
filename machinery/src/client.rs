//! API clients that speak HTTP/2: kube-rs' default client offers only HTTP/1.1 in its TLS
//! handshake, so each watch and each concurrent request holds its own TCP and TLS connection
//! (a kubelet with a dozen informers keeps a dozen; a thousand hollow nodes, tens of
//! thousands — each costing the API server its buffers). This builds the same stack (base URI,
//! authentication, extra headers, retries of 5xx answers when the config asks) on a connector
//! that speaks only `h2`, so one connection per client carries every request and watch as
//! streams, as client-go's clients do. (Only: a client that may also fall back to HTTP/1.1
//! learns which it got from each handshake, so requests made together before the first
//! connection is up each open their own. Both rkube's API server and kube-apiserver speak h2.)
//!
//! HTTP/2 has no connection upgrades (exec, attach and port-forward over WebSocket), so the
//! CLI keeps kube-rs' default client; the components use this one.

use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use kube::client::{Body, ClientBuilder, ConfigExt as _, DynBody, RustlsTlsError};
use tower::{BoxError, ServiceBuilder, ServiceExt as _};

/// How often an idle connection is pinged, and how long a ping may go unanswered before the
/// connection counts as dead (its watches then end and are restarted by their owners).
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// Bytes a stream may receive before its reader takes them (client-go: 4 MiB).
const STREAM_WINDOW: u32 = 4 << 20;
/// Bytes all streams of a connection may receive before they are read (client-go: 1 GiB).
const CONNECTION_WINDOW: u32 = 1 << 30;

/// The service stack of [`builder`]'s clients, the same type kube-rs' default builder makes.
pub type Service =
    tower::util::BoxService<http::Request<Body>, http::Response<Box<DynBody>>, BoxError>;

/// A client for `config` over HTTP/2 (see the module's documentation).
pub fn client(config: kube::Config) -> Result<kube::Client, kube::Error> {
    Ok(builder(config)?.build())
}

/// A [`ClientBuilder`] for `config` over HTTP/2, to add layers to before building. A config
/// with a proxy gets kube-rs' own builder (HTTP/1.1), which knows how to tunnel through one.
pub fn builder(config: kube::Config) -> Result<ClientBuilder<Service>, kube::Error> {
    if config.proxy_url.is_some() {
        return ClientBuilder::try_from(config);
    }
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(config.connect_timeout);
    // Besides h2's pings, TCP keep-alive finds a peer that vanished.
    http.set_keepalive(Some(KEEP_ALIVE_INTERVAL));
    let tls = config.rustls_client_config()?;
    let mut https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    if let Some(name) = &config.tls_server_name {
        let name = name
            .clone()
            .try_into()
            .map_err(RustlsTlsError::InvalidServerName)
            .map_err(kube::Error::RustlsTls)?;
        https = https.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name));
    }
    let https = https.enable_http2().wrap_connector(http);
    let hyper = hyper_util::client::legacy::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .http2_only(true)
        .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
        .http2_keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
        .http2_keep_alive_while_idle(true)
        // Flow-control windows as client-go's: each stream may have 4 MiB in flight, and the
        // connection as good as unlimited. A watch whose reader is busy (say, awaiting a
        // request of its own on this connection) then stalls only itself; with a small
        // shared connection window its unread events would block every other stream,
        // including the response its reader waits for.
        .http2_initial_stream_window_size(STREAM_WINDOW)
        .http2_initial_connection_window_size(CONNECTION_WINDOW)
        .build::<_, Body>(https);

    let retry = config
        .default_retry
        .then(|| tower::retry::RetryLayer::new(kube::client::retry::RetryPolicy::server_retry()));
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(retry)
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(BoxError::from)
        .service(hyper)
        .map_response(|res: http::Response<hyper::body::Incoming>| {
            res.map(|body| {
                Box::new(http_body_util::BodyExt::map_err(body, BoxError::from)) as Box<DynBody>
            })
        })
        .boxed();
    Ok(ClientBuilder::new(service, config.default_namespace))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use tokio_util::sync::CancellationToken;

    /// An HTTPS server (machinery's own accept loop) whose one route answers, after a pause
    /// that keeps requests in flight together, with the HTTP version the request came over;
    /// and a count of the connections it accepted.
    async fn server() -> (kube::Config, Arc<AtomicUsize>, CancellationToken) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec![
            "127.0.0.1".to_string(),
            "apiserver.test".to_string(),
        ])
        .unwrap();
        let cert = params.self_signed(&key).unwrap();
        let der = cert.der().to_vec();
        let tls = crate::https::server_config(
            vec![CertificateDer::from(der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            None,
        )
        .unwrap();
        let app = axum::Router::new()
            .route(
                "/version",
                axum::routing::get(|req: axum::extract::Request| async move {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    format!("{:?}", req.version())
                }),
            )
            // 2 MiB at once, like a burst of watch events.
            .route(
                "/burst",
                axum::routing::get(|| async { vec![b'x'; 2 << 20] }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        let stop = CancellationToken::new();
        tokio::spawn(crate::https::serve::serve(
            listener,
            Arc::new(tls),
            app,
            stop.clone(),
            std::time::Duration::from_secs(1),
            move |_, _| {
                counted.fetch_add(1, Ordering::SeqCst);
                http::Extensions::new()
            },
        ));
        let mut config = kube::Config::new(format!("https://{addr}").parse().unwrap());
        config.root_cert = Some(vec![der]);
        (config, connections, stop)
    }

    /// The HTTP versions `n` requests made at once by `client` came over, as the server saw them.
    async fn versions(client: &kube::Client, n: usize) -> Vec<String> {
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..n {
            let client = client.clone();
            calls.spawn(async move {
                client
                    .request_text(http::Request::get("/version").body(Vec::new()).unwrap())
                    .await
                    .unwrap()
            });
        }
        calls.join_all().await
    }

    #[tokio::test]
    async fn one_connection_carries_every_request_over_h2() {
        let (config, connections, stop) = server().await;
        let client = super::client(config).unwrap();
        let seen = versions(&client, 50).await;
        assert_eq!(seen.len(), 50);
        assert!(seen.iter().all(|v| v == "HTTP/2.0"), "{seen:?}");
        assert_eq!(connections.load(Ordering::SeqCst), 1);
        // And again later: the connection is kept and reused.
        versions(&client, 10).await;
        assert_eq!(connections.load(Ordering::SeqCst), 1);
        stop.cancel();
    }

    /// A stream nobody reads (a watch whose reader is awaiting a request of its own) holds
    /// up only itself: the request it waits for still gets its answer.
    #[tokio::test]
    async fn an_unread_stream_does_not_block_the_connection() {
        let (config, connections, stop) = server().await;
        let client = super::client(config).unwrap();
        let unread = client
            .send(
                http::Request::get("/burst")
                    .body(kube::client::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let answered =
            tokio::time::timeout(std::time::Duration::from_secs(10), versions(&client, 1)).await;
        assert_eq!(
            answered.expect("a request behind an unread stream"),
            ["HTTP/2.0"]
        );
        assert_eq!(connections.load(Ordering::SeqCst), 1);
        drop(unread);
        stop.cancel();
    }

    /// The kubeconfig's `tls-server-name` is the name the certificate is checked against, and
    /// a proxy is never bypassed.
    #[tokio::test]
    async fn server_name_and_proxy_settings_are_honoured() {
        let (config, _, stop) = server().await;
        let named = |name: &str| {
            let mut c = config.clone();
            c.tls_server_name = Some(name.to_string());
            super::client(c).unwrap()
        };
        assert_eq!(versions(&named("apiserver.test"), 1).await, ["HTTP/2.0"]);
        let wrong = named("other.test")
            .request_text(http::Request::get("/version").body(Vec::new()).unwrap())
            .await;
        assert!(wrong.is_err(), "{wrong:?}");
        let mut proxied = config.clone();
        proxied.proxy_url = Some("http://127.0.0.1:1".parse().unwrap());
        if let Ok(client) = super::client(proxied) {
            let r = client
                .request_text(http::Request::get("/version").body(Vec::new()).unwrap())
                .await;
            assert!(r.is_err(), "went around the proxy: {r:?}");
        }
        stop.cancel();
    }

    /// What this module is for: kube-rs' own client opens a connection per request in flight.
    #[tokio::test]
    async fn kube_rs_default_client_needs_a_connection_per_request_in_flight() {
        let (config, connections, stop) = server().await;
        let client = kube::Client::try_from(config).unwrap();
        let seen = versions(&client, 20).await;
        assert!(seen.iter().all(|v| v == "HTTP/1.1"), "{seen:?}");
        assert!(connections.load(Ordering::SeqCst) >= 10);
        stop.cancel();
    }
}
