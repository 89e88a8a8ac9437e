//! What the benchmarks share: an in-process API server on a free loopback port (embedded store,
//! or etcd) serving HTTPS with authentication and RBAC on, as every rkube API server does; one
//! bench CA all of them use, so that one pooled HTTPS client (the admin's certificate) talks to
//! any of them; identities for the components the benchmarks run; helpers to create objects
//! with many requests in flight.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use rkube_apiserver::kubeconfig::{Credentials, render, write_text};
use rkube_apiserver::pki::Pki;
use rkube_testkit::etcd::EtcdServer;

/// A pooled HTTPS client (HTTP/1.1) of the bench CA's admin.
pub(crate) type Http = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The CA every benchmarked API server uses (copied into its data directory before it starts),
/// and the TLS settings of its admin: the CA as the only root, the admin client certificate.
struct BenchPki {
    _dir: tempfile::TempDir,
    ca_dir: PathBuf,
    pki: Pki,
    tls: rustls::ClientConfig,
}

fn bench_pki() -> &'static BenchPki {
    static PKI: OnceLock<BenchPki> = OnceLock::new();
    PKI.get_or_init(|| {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
        let dir = tempfile::tempdir().expect("a temp dir for the bench CA");
        let ca_dir = dir.path().join("pki");
        let pki = Pki::load_or_create(&ca_dir).expect("the bench CA");
        let admin = pki.admin().expect("the admin certificate");
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(pki.ca_der().expect("CA DER")))
            .expect("CA in the root store");
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![CertificateDer::from_pem_slice(admin.cert_pem.as_bytes()).expect("admin cert")],
            PrivateKeyDer::from_pem_slice(admin.key_pem.as_bytes()).expect("admin key"),
        )
        .expect("client certificate");
        BenchPki {
            _dir: dir,
            ca_dir,
            pki,
            tls,
        }
    })
}

/// Puts the bench CA into an API server's data directory (before it starts): the server issues
/// its serving certificate from it, and [`http`] clients trust it and are its admin.
fn use_bench_ca(data_dir: &std::path::Path) -> std::io::Result<()> {
    let pki_dir = data_dir.join("pki");
    std::fs::create_dir_all(&pki_dir)?;
    for f in ["ca.crt", "ca.key"] {
        std::fs::copy(bench_pki().ca_dir.join(f), pki_dir.join(f))?;
    }
    Ok(())
}

/// An HTTPS client (HTTP/1.1) with the admin certificate of the bench CA, keeping up to 512
/// idle connections per host.
pub(crate) fn http() -> Http {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(bench_pki().tls.clone())
        .https_only()
        .enable_http1()
        .build();
    Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_max_idle_per_host(512)
        .build(https)
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
    /// `https://127.0.0.1:PORT`.
    pub(crate) url: String,
    /// The admin kubeconfig it wrote.
    pub(crate) kubeconfig: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    dir: tempfile::TempDir,
}

/// Starts an API server in this process on a free loopback port, on the embedded store in a
/// temporary directory or on `etcd`, with the bench CA, and waits until it has written its
/// kubeconfig.
pub(crate) async fn start_server(etcd: Option<&EtcdServer>) -> anyhow::Result<Server> {
    let dir = tempfile::tempdir()?;
    use_bench_ca(dir.path())?;
    let mut config = rkube_apiserver::server::Config::new(dir.path());
    if let Some(e) = etcd {
        config.etcd_servers = vec![e.endpoint()];
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("https://{}", listener.local_addr()?);
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
        dir,
    })
}

impl Server {
    /// The cluster CA certificate (PEM file), e.g. for kubelets' `--client-ca-file`.
    pub(crate) fn ca_file(&self) -> PathBuf {
        self.dir.path().join("pki").join("ca.crt")
    }

    /// A kubeconfig (written into the server's directory) for a user with a client certificate
    /// of the bench CA — a component's identity, e.g. `system:kube-scheduler`.
    pub(crate) fn kubeconfig_for_user(
        &self,
        user: &str,
        groups: &[&str],
    ) -> anyhow::Result<PathBuf> {
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        let cert = bench_pki()
            .pki
            .issue_client(user, &groups, Duration::from_secs(24 * 3600))?;
        let creds = Credentials::Certificate {
            cert_pem: cert.cert_pem,
            key_pem: cert.key_pem,
        };
        self.write_kubeconfig(user, &creds)
    }

    /// A kubeconfig (written into the server's directory) for ServiceAccount `namespace/name`,
    /// created if missing, with a token requested as the admin.
    pub(crate) async fn kubeconfig_for_service_account(
        &self,
        c: &Http,
        namespace: &str,
        name: &str,
    ) -> anyhow::Result<PathBuf> {
        let base = format!("{}/api/v1/namespaces/{namespace}/serviceaccounts", self.url);
        let sa = serde_json::json!({"apiVersion": "v1", "kind": "ServiceAccount",
                                    "metadata": {"name": name}});
        let (code, _) = request(c, "POST", &base, Some(Bytes::from(sa.to_string()))).await?;
        if code != 201 && code != 409 {
            bail!("cannot create ServiceAccount {namespace}/{name}: {code}");
        }
        let req = serde_json::json!({"apiVersion": "authentication.k8s.io/v1",
                                     "kind": "TokenRequest", "spec": {}});
        let (code, body) = request(
            c,
            "POST",
            &format!("{base}/{name}/token"),
            Some(Bytes::from(req.to_string())),
        )
        .await?;
        if code != 201 {
            bail!("TokenRequest for {namespace}/{name}: {code}");
        }
        let v: serde_json::Value = serde_json::from_slice(&body)?;
        let token = v["status"]["token"]
            .as_str()
            .context("TokenRequest without a token")?;
        let user = format!("system:serviceaccount:{namespace}:{name}");
        self.write_kubeconfig(&user, &Credentials::Token(token.to_string()))
    }

    fn write_kubeconfig(&self, user: &str, creds: &Credentials) -> anyhow::Result<PathBuf> {
        let file: String = user
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let path = self.dir.path().join(format!("{file}.kubeconfig"));
        write_text(
            &path,
            &render(&self.url, bench_pki().pki.ca_pem(), user, creds),
        )?;
        Ok(path)
    }
}

/// A kube-rs client configuration from a kubeconfig file.
pub(crate) async fn kube_config(path: &std::path::Path) -> anyhow::Result<kube::Config> {
    let kc = kube::config::Kubeconfig::read_from(path)?;
    Ok(kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?)
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
