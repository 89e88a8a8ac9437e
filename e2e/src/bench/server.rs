//! What the benchmarks share: an in-process API server on a free loopback port (embedded store,
//! or etcd), a pooled HTTP client to talk to it, and helpers to create objects with many
//! requests in flight.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use rkube_testkit::etcd::EtcdServer;

/// A pooled HTTP/1.1 client.
pub(crate) type Http = Client<HttpConnector, Full<Bytes>>;

/// A client keeping up to 512 idle connections per host.
pub(crate) fn http() -> Http {
    Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_max_idle_per_host(512)
        .build_http()
}

/// Sends one request (a body is sent as JSON): the status code and the body.
pub(crate) async fn request(
    c: &Http,
    method: &str,
    url: &str,
    body: Option<Bytes>,
) -> anyhow::Result<(u16, Bytes)> {
    request_as(c, method, url, "application/json", body).await
}

/// Sends one request with a body of `content_type` (e.g. `application/merge-patch+json`):
/// the status code and the body.
pub(crate) async fn request_as(
    c: &Http,
    method: &str,
    url: &str,
    content_type: &str,
    body: Option<Bytes>,
) -> anyhow::Result<(u16, Bytes)> {
    let mut req = axum::http::Request::builder().method(method).uri(url);
    if body.is_some() {
        req = req.header("content-type", content_type);
    }
    let resp = c
        .request(req.body(Full::new(body.unwrap_or_default()))?)
        .await
        .with_context(|| format!("{method} {url}"))?;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await?.to_bytes();
    Ok((status, bytes))
}

/// An API server started by [`start_server`]; stop it with [`stop`].
pub(crate) struct Server {
    /// `http://127.0.0.1:PORT`.
    pub(crate) url: String,
    /// The admin kubeconfig it wrote.
    pub(crate) kubeconfig: std::path::PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

/// Starts an API server in this process on a free loopback port, on the embedded store in a
/// temporary directory or on `etcd`, and waits until it has written its kubeconfig.
pub(crate) async fn start_server(etcd: Option<&EtcdServer>) -> anyhow::Result<Server> {
    let dir = tempfile::tempdir()?;
    let mut config = rkube_apiserver::server::Config::new(dir.path());
    if let Some(e) = etcd {
        config.etcd_servers = vec![e.endpoint()];
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        if let Err(e) = rkube_apiserver::server::run(config, listener, async {
            let _ = rx.await;
        })
        .await
        {
            eprintln!("apiserver failed: {e}");
        }
    });
    let kubeconfig = dir.path().join("admin.kubeconfig");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !kubeconfig.exists() {
        if Instant::now() > deadline {
            bail!("the API server did not start");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(Server {
        url,
        kubeconfig,
        stop: Some(tx),
        task,
        _dir: dir,
    })
}

/// A kube client of `server` (its admin kubeconfig).
pub(crate) async fn kube_client(server: &Server) -> anyhow::Result<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(&server.kubeconfig)?;
    Ok(kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?,
    )?)
}

/// Stops the API server and waits (up to 20 s) for it to close its store.
pub(crate) async fn stop(mut server: Server) {
    if let Some(stop) = server.stop.take() {
        let _ = stop.send(());
    }
    let _ = tokio::time::timeout(Duration::from_secs(20), &mut server.task).await;
}

/// Runs `total` operations with `concurrency` in flight.
pub(crate) async fn each<F, Fut>(total: usize, concurrency: usize, op: F) -> anyhow::Result<()>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut s = futures::stream::iter(0..total)
        .map(op)
        .buffer_unordered(concurrency);
    while let Some(r) = s.next().await {
        r?;
    }
    Ok(())
}

/// Creates the namespace `ns`.
pub(crate) async fn create_namespace(c: &Http, base: &str, ns: &str) -> anyhow::Result<()> {
    let body =
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
    let (code, _) = request(
        c,
        "POST",
        &format!("{base}/api/v1/namespaces"),
        Some(Bytes::from(body.to_string())),
    )
    .await?;
    if code != 201 {
        bail!("cannot create namespace {ns}: {code}");
    }
    Ok(())
}
