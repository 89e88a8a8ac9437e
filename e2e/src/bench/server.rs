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

/// Sends one request (a body is sent as JSON): the status code and the body. A 429 is
/// retried (up to 100 times, pausing 50 ms more each time up to a second).
pub(crate) async fn request(
    c: &Http,
    method: &str,
    url: &str,
    body: Option<Bytes>,
) -> anyhow::Result<(u16, Bytes)> {
    request_as(c, method, url, "application/json", body).await
}

/// How often a request answered 429 is sent at most.
const TOO_MANY_RETRIES: u64 = 100;

/// Sends one request with a body of `content_type` (e.g. `application/merge-patch+json`):
/// the status code and the body.
pub(crate) async fn request_as(
    c: &Http,
    method: &str,
    url: &str,
    content_type: &str,
    body: Option<Bytes>,
) -> anyhow::Result<(u16, Bytes)> {
    let body = body.unwrap_or_default();
    // As client-go does, a 429 (the server's max-requests-inflight) is retried after a pause.
    for attempt in 1.. {
        let mut req = axum::http::Request::builder().method(method).uri(url);
        if !body.is_empty() {
            req = req.header("content-type", content_type);
        }
        let resp = c
            .request(req.body(Full::new(body.clone()))?)
            .await
            .with_context(|| format!("{method} {url}"))?;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await?.to_bytes();
        if status == 429 && attempt < TOO_MANY_RETRIES {
            tokio::time::sleep(Duration::from_millis(50 * attempt.min(20))).await;
            continue;
        }
        return Ok((status, bytes));
    }
    unreachable!("the loop returns")
}

/// An API server started by [`start_server`] (a task of this process) or [`start_process`] (a
/// process of its own); stop it with [`stop`].
pub(crate) struct Server {
    /// `https://127.0.0.1:PORT`.
    pub(crate) url: String,
    /// The admin kubeconfig it wrote.
    pub(crate) kubeconfig: PathBuf,
    running: Running,
    dir: tempfile::TempDir,
}

/// How an API server runs.
enum Running {
    /// A task of this process, stopped through the channel.
    Task {
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        task: tokio::task::JoinHandle<()>,
    },
    /// A child process, stopped with SIGTERM.
    Process(std::process::Child),
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
        running: Running::Task {
            stop: Some(tx),
            task,
        },
        dir,
    })
}

impl Drop for Server {
    /// A server process still running (the benchmark failed before [`stop`]) is killed.
    fn drop(&mut self) {
        if let Running::Process(c) = &mut self.running
            && let Ok(None) = c.try_wait()
        {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A free loopback TCP port (bound once and released: another process takes it next).
pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Starts an API server as a process of its own — `program` with the arguments `args` gives
/// for its data directory (a new temporary one, holding the bench CA) and HTTPS port — and
/// waits until it answers `/readyz` with its admin kubeconfig written. Its output goes to
/// `DATA/server.log`.
pub(crate) async fn start_process(
    program: &std::path::Path,
    args: impl FnOnce(&std::path::Path, u16) -> Vec<String>,
) -> anyhow::Result<Server> {
    let dir = tempfile::tempdir()?;
    use_bench_ca(dir.path())?;
    let port = free_port()?;
    let log = std::fs::File::create(dir.path().join("server.log"))?;
    let child = std::process::Command::new(program)
        .args(args(dir.path(), port))
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", program.display()))?;
    let url = format!("https://127.0.0.1:{port}");
    let mut server = Server {
        url,
        kubeconfig: dir.path().join("admin.kubeconfig"),
        running: Running::Process(child),
        dir,
    };
    let c = http();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Running::Process(child) = &mut server.running
            && let Some(status) = child.try_wait()?
        {
            bail!(
                "{} exited ({status}) before it was ready: {}",
                program.display(),
                server.log_tail()
            );
        }
        let ready = server.kubeconfig.exists()
            && matches!(
                request(&c, "GET", &format!("{}/readyz", server.url), None).await,
                Ok((200, _))
            );
        if ready {
            return Ok(server);
        }
        if Instant::now() > deadline {
            let tail = server.log_tail();
            stop(server).await;
            bail!("{} was not ready within 60 s: {tail}", program.display());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Server {
    /// The process id of a server started with [`start_process`].
    pub(crate) fn pid(&self) -> Option<u32> {
        match &self.running {
            Running::Process(c) => Some(c.id()),
            Running::Task { .. } => None,
        }
    }

    /// Its data directory.
    pub(crate) fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The last lines of a process server's log.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }

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
    Ok(rkube_machinery::client::client(
        kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?,
    )?)
}

/// Stops the API server and waits (up to 20 s) for it to close its store.
pub(crate) async fn stop(mut server: Server) {
    match &mut server.running {
        Running::Task { stop, task } => {
            if let Some(stop) = stop.take() {
                let _ = stop.send(());
            }
            let _ = tokio::time::timeout(Duration::from_secs(20), task).await;
        }
        Running::Process(child) => stop_child(child).await,
    }
}

/// Stops a child process: SIGTERM, then SIGKILL after 20 s.
pub(crate) async fn stop_child(child: &mut std::process::Child) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs `total` operations with `concurrency` in flight.
pub(crate) async fn each<F, Fut>(total: usize, concurrency: usize, op: F) -> anyhow::Result<()>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let progress = super::progress::Progress::new(total, "requests");
    let mut s = futures::stream::iter(0..total)
        .map(op)
        .buffer_unordered(concurrency);
    while let Some(r) = s.next().await {
        r?;
        progress.inc();
    }
    Ok(())
}

/// The parts of a watch event the benchmarks read.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct WatchEvent {
    /// `ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK` or `ERROR`.
    #[serde(rename = "type", default)]
    pub(crate) kind: String,
    /// The object.
    pub(crate) object: EventObject,
}

/// The object of a [`WatchEvent`].
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct EventObject {
    /// Its metadata.
    pub(crate) metadata: EventMeta,
    /// Its status (a pod's phase).
    #[serde(default)]
    pub(crate) status: EventStatus,
}

/// The metadata of an [`EventObject`].
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct EventMeta {
    #[serde(default)]
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) namespace: String,
    #[serde(rename = "resourceVersion", default)]
    pub(crate) resource_version: String,
}

/// The status of an [`EventObject`].
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct EventStatus {
    #[serde(default)]
    pub(crate) phase: Option<String>,
}

/// The type of a watch event (`ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK`, `ERROR`).
#[derive(serde::Deserialize)]
struct EventType {
    #[serde(rename = "type")]
    kind: String,
}

/// A page of a list, as [`watch_collection`] reads it.
#[derive(serde::Deserialize)]
struct ListPage {
    metadata: ListPageMeta,
    #[serde(default)]
    items: Vec<EventObject>,
}

#[derive(serde::Deserialize)]
struct ListPageMeta {
    #[serde(rename = "resourceVersion", default)]
    resource_version: String,
    #[serde(rename = "continue", default)]
    continue_: Option<String>,
}

/// How long a watch may stay silent (the server sends a bookmark every few seconds) before it
/// is dropped and resumed on a new connection.
const WATCH_SILENCE: Duration = Duration::from_secs(30);

/// Watches the collection at `path` of the API server at `base` (as the admin) from its
/// current resourceVersion until `stop` turns true, calling `on_event` with each event and
/// when it arrived. A watch the server ends, or one silent for [`WATCH_SILENCE`] (bookmarks
/// included), is resumed from the last resourceVersion seen; one the server answers with an
/// error (its resourceVersion is too old) is replaced by a list — each listed object passed
/// to `on_event` as an event — and a watch from the list's resourceVersion. Both are reported
/// on standard error: a benchmark's figures are exact only without them.
pub(crate) fn watch_collection(
    base: String,
    path: String,
    stop: tokio::sync::watch::Receiver<bool>,
    mut on_event: impl FnMut(&WatchEvent, Instant) + Send + 'static,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    tokio::spawn(async move {
        let c = http();
        let (code, body) = request(&c, "GET", &format!("{base}{path}?limit=1"), None).await?;
        if code != 200 {
            bail!("list {path}: {code}");
        }
        let mut rv = serde_json::from_slice::<ListPage>(&body)?
            .metadata
            .resource_version;
        let mut relist = false;
        loop {
            if relist {
                rv = list_as_events(&c, &base, &path, &mut on_event).await?;
                relist = false;
            }
            let url = format!(
                "{base}{path}?watch=1&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=3600"
            );
            let resp = c
                .request(axum::http::Request::get(url).body(Full::new(Bytes::new()))?)
                .await?;
            if resp.status() != 200 {
                bail!("watch {path}: {}", resp.status());
            }
            let mut body = resp.into_body();
            let mut buf: Vec<u8> = Vec::new();
            let mut stop = stop.clone();
            loop {
                let frame = tokio::select! {
                    f = tokio::time::timeout(WATCH_SILENCE, body.frame()) => match f {
                        Ok(f) => f,
                        Err(_) => {
                            eprintln!("watch {path}: silent for {WATCH_SILENCE:?}; watching again from {rv}");
                            break;
                        }
                    },
                    _ = stop.wait_for(|s| *s) => return Ok(()),
                };
                let Some(Ok(f)) = frame else { break };
                let Some(d) = f.data_ref() else { continue };
                buf.extend_from_slice(d);
                let now = Instant::now();
                let mut start = 0;
                while let Some(len) = buf[start..].iter().position(|b| *b == b'\n') {
                    let line = &buf[start..start + len];
                    start += len + 1;
                    let event = serde_json::from_slice::<WatchEvent>(line);
                    // An ERROR's object is a Status, which does not parse as an EventObject.
                    let error = match &event {
                        Ok(ev) => ev.kind == "ERROR",
                        Err(_) => serde_json::from_slice::<EventType>(line)
                            .is_ok_and(|t| t.kind == "ERROR"),
                    };
                    if error {
                        eprintln!(
                            "watch {path}: {}; listing again",
                            String::from_utf8_lossy(line)
                        );
                        relist = true;
                        continue;
                    }
                    let Ok(ev) = event else { continue };
                    if ev.kind != "BOOKMARK" {
                        on_event(&ev, now);
                    }
                    rv = ev.object.metadata.resource_version;
                }
                buf.drain(..start);
                if relist {
                    break;
                }
            }
            if *stop.borrow() {
                return Ok(());
            }
        }
    })
}

/// Lists the collection at `path` in pages, passing each object to `on_event` as an event;
/// returns the list's resourceVersion.
async fn list_as_events(
    c: &Http,
    base: &str,
    path: &str,
    on_event: &mut (impl FnMut(&WatchEvent, Instant) + Send),
) -> anyhow::Result<String> {
    let mut next: Option<String> = None;
    let mut listed = 0;
    loop {
        let mut url = format!("{base}{path}?limit=500");
        if let Some(token) = &next {
            url.push_str("&continue=");
            url.extend(form_urlencoded::byte_serialize(token.as_bytes()));
        }
        let (code, body) = request(c, "GET", &url, None).await?;
        if code != 200 {
            bail!("list {path}: {code}");
        }
        let page: ListPage = serde_json::from_slice(&body)?;
        let now = Instant::now();
        for object in page.items {
            listed += 1;
            on_event(
                &WatchEvent {
                    kind: "ADDED".into(),
                    object,
                },
                now,
            );
        }
        match page.metadata.continue_.filter(|t| !t.is_empty()) {
            Some(token) => next = Some(token),
            None => {
                eprintln!("watch {path}: listed {listed} objects");
                return Ok(page.metadata.resource_version);
            }
        }
    }
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
