//! An API server started in-process on a free loopback port (embedded store or a real etcd the
//! test starts), with the real kubectl run against it — for the components' integration tests.
//! It serves HTTPS with authentication and RBAC on, like a real one: [`TestServer::client`],
//! [`TestServer::http`] and [`TestServer::kubectl`] act as the cluster admin (client
//! certificate, `system:masters`); [`Identity`] and [`TestServer::client_as`],
//! [`TestServer::http_as`], [`TestServer::kubeconfig_for`] act as anyone else (a user or node
//! certificate, a static token, a ServiceAccount token, or nobody).

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::etcd::EtcdServer;
use rkube_apiserver::kubeconfig::{Credentials, render, write_text};
use rkube_apiserver::pki::Pki;
use rkube_apiserver::server::{Config, run};

/// Who a client acts as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    /// The cluster admin (`admin` in `system:masters`, the admin kubeconfig).
    Admin,
    /// No credentials at all.
    Anonymous,
    /// A client certificate of the cluster CA for a user in groups.
    User {
        /// The user (certificate CN).
        name: String,
        /// The groups (certificate O).
        groups: Vec<String>,
    },
    /// A kubelet: `system:node:<name>` in `system:nodes` (client certificate).
    Node(String),
    /// A bearer token (e.g. of a `--token-auth-file` user).
    Token(String),
    /// A client certificate obtained elsewhere (e.g. signed through a CertificateSigningRequest).
    Certificate {
        /// The user it names (for the kubeconfig's user entry).
        name: String,
        /// The certificate (PEM).
        cert_pem: String,
        /// Its private key (PEM).
        key_pem: String,
    },
    /// A ServiceAccount token (TokenRequest; the ServiceAccount must exist).
    ServiceAccount {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
}

impl Identity {
    /// A certificate user with groups.
    pub fn user(name: &str, groups: &[&str]) -> Self {
        Identity::User {
            name: name.to_string(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    /// A kubelet's identity: `system:node:<name>` in `system:nodes` (client certificate), which
    /// the Node authorizer and the `system:node` role govern.
    pub fn node(name: &str) -> Self {
        Identity::Node(name.to_string())
    }

    /// The scheduler's identity, `system:kube-scheduler` (client certificate; the
    /// `system:kube-scheduler` and `system:volume-scheduler` roles).
    pub fn scheduler() -> Self {
        Identity::user("system:kube-scheduler", &[])
    }

    /// The controller manager's identity, `system:kube-controller-manager` (client certificate;
    /// the `system:kube-controller-manager` role: informers, leader election and the
    /// controllers' ServiceAccount tokens).
    pub fn controller_manager() -> Self {
        Identity::user("system:kube-controller-manager", &[])
    }

    /// kube-proxy's identity, `system:kube-proxy` (client certificate; the
    /// `system:node-proxier` role).
    pub fn proxy() -> Self {
        Identity::user("system:kube-proxy", &[])
    }

    /// The cluster DNS: the ServiceAccount `kube-system/kube-dns` (the `system:kube-dns` role).
    pub fn dns() -> Self {
        Identity::service_account("kube-system", "kube-dns")
    }

    /// A ServiceAccount (created by the admin when it does not exist yet).
    pub fn service_account(namespace: &str, name: &str) -> Self {
        Identity::ServiceAccount {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }

    fn file_name(&self) -> String {
        let raw = match self {
            Identity::Admin => "admin".to_string(),
            Identity::Anonymous => "anonymous".to_string(),
            Identity::User { name, .. } => format!("user-{name}"),
            Identity::Node(n) => format!("node-{n}"),
            Identity::Token(t) => format!("token-{}", t.len()),
            Identity::Certificate { name, .. } => format!("cert-{name}"),
            Identity::ServiceAccount { namespace, name } => format!("sa-{namespace}-{name}"),
        };
        let safe: String = raw
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("{safe}-{}.kubeconfig", rand_suffix())
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Which storage backend the server uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The embedded store in the test's data directory.
    Embedded,
    /// A real etcd started for the test.
    Etcd,
}

/// A running API server.
pub struct TestServer {
    /// The data directory (holds admin.kubeconfig).
    pub dir: tempfile::TempDir,
    /// `DIR/admin.kubeconfig`.
    pub kubeconfig: PathBuf,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
    /// The etcd server, for the etcd backend.
    pub etcd: Option<EtcdServer>,
}

impl TestServer {
    /// Starts a server and waits until it answers.
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, |_| {}).await
    }

    /// Starts a server with adjusted settings.
    pub async fn start_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> Self {
        Self::start_listening(backend, "127.0.0.1:0", adjust).await
    }

    /// Starts a server listening on `listen` (e.g. `0.0.0.0:0`); `url` is its loopback
    /// address.
    pub async fn start_listening(
        backend: Backend,
        listen: &str,
        adjust: impl FnOnce(&mut Config),
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let etcd = (backend == Backend::Etcd)
            .then(|| std::thread::spawn(EtcdServer::start).join().unwrap());
        let mut config = Config::new(dir.path());
        if let Some(e) = &etcd {
            config.etcd_servers = vec![e.endpoint()];
        }
        adjust(&mut config);
        let listener = tokio::net::TcpListener::bind(listen).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let url = match addr.ip() {
            std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
                format!("https://127.0.0.1:{}", addr.port())
            }
            std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
                format!("https://[::1]:{}", addr.port())
            }
            _ => format!("https://{addr}"),
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            run(config, listener, async {
                let _ = rx.await;
            })
            .await
            .expect("apiserver failed");
        });
        let kubeconfig = dir.path().join("admin.kubeconfig");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !kubeconfig.exists() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "apiserver did not start"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self {
            dir,
            kubeconfig,
            url,
            shutdown: Some(tx),
            handle: Some(handle),
            etcd,
        }
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = tokio::time::timeout(Duration::from_secs(20), h).await;
        }
    }

    /// A raw HTTP request as the admin: the status code, headers and the body parsed as JSON
    /// (`Null` if it is not JSON).
    pub async fn http(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (u16, axum::http::HeaderMap, serde_json::Value) {
        self.http_as(&Identity::Admin, method, path, headers, body)
            .await
    }

    /// A raw HTTP request as `id` (a plain hyper client over rustls: no retries, no headers
    /// added but the credentials): status, headers, body as JSON (`Null` if not JSON).
    pub async fn http_as(
        &self,
        id: &Identity,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (u16, axum::http::HeaderMap, serde_json::Value) {
        let (code, headers, bytes) = self.http_raw(id, method, path, headers, body).await;
        (
            code,
            headers,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    }

    /// A raw HTTP request as `id`: status, headers and the body bytes.
    pub async fn http_raw(
        &self,
        id: &Identity,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (u16, axum::http::HeaderMap, bytes::Bytes) {
        let url = format!("{}{path}", self.url);
        self.https_request(id, method, &url, headers, body)
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"))
    }

    /// An HTTPS request as `id` to any server whose certificate is of the cluster CA (a
    /// kubelet's, say): status, headers and body bytes, or why there was no answer.
    pub async fn https_request(
        &self,
        id: &Identity,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<(u16, axum::http::HeaderMap, bytes::Bytes), String> {
        use http_body_util::BodyExt;
        let (client, token) = self.raw_client(id).await;
        let mut req = axum::http::Request::builder().method(method).uri(url);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let resp = client.request(req).await.map_err(|e| {
            let mut text = e.to_string();
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                text = format!("{text}: {c}");
                cause = c.source();
            }
            text
        })?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, headers, bytes))
    }

    /// A kubelet's serving certificate from the cluster CA for `node` and `ips`, written with
    /// its key and the CA into `dir`: what the kubelet's `--tls-cert-file`,
    /// `--tls-private-key-file` and `--client-ca-file` take (in that order).
    pub fn kubelet_serving_files(
        &self,
        node: &str,
        ips: &[std::net::IpAddr],
        dir: &std::path::Path,
    ) -> (PathBuf, PathBuf, PathBuf) {
        let pki = self.pki();
        let names = rkube_apiserver::pki::ServingNames {
            dns: vec![node.to_string(), "localhost".to_string()],
            ips: ips.to_vec(),
        };
        let cert = pki
            .issue_serving(&format!("system:node:{node}"), &names)
            .unwrap();
        std::fs::create_dir_all(dir).unwrap();
        let paths = (
            dir.join("kubelet-serving.crt"),
            dir.join("kubelet-serving.key"),
            dir.join("ca.crt"),
        );
        write_text(&paths.0, &cert.cert_pem).unwrap();
        write_text(&paths.1, &cert.key_pem).unwrap();
        write_text(&paths.2, pki.ca_pem()).unwrap();
        paths
    }

    /// A plain HTTPS client (HTTP/1.1 and h2) trusting the cluster CA and presenting `id`'s
    /// certificate, if it has one; the bearer token to send, if it has one.
    pub async fn raw_client(&self, id: &Identity) -> (RawClient, Option<String>) {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
        let (_, creds) = self.credentials_for(id).await;
        let pki = self.pki();
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(pki.ca_der().unwrap()))
            .unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
        let mut token = None;
        let config = match creds {
            Credentials::Certificate { cert_pem, key_pem } => {
                let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap();
                let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
                builder.with_client_auth_cert(vec![cert], key).unwrap()
            }
            Credentials::Token(t) => {
                token = Some(t);
                builder.with_no_client_auth()
            }
            Credentials::None => builder.with_no_client_auth(),
        };
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_only()
            .enable_http1()
            .enable_http2()
            .build();
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(https);
        (client, token)
    }

    /// An authenticated client for raw requests (`http_raw`, `kube::Client::send`) as the admin.
    pub async fn http_client(&self) -> kube::Client {
        self.client().await
    }

    /// A kube-rs client from the admin kubeconfig.
    pub async fn client(&self) -> kube::Client {
        client_from(&self.kubeconfig).await
    }

    /// A kube-rs client acting as `id`.
    pub async fn client_as(&self, id: &Identity) -> kube::Client {
        kube::Client::try_from(self.config_as(id).await).unwrap()
    }

    /// The kube-rs client configuration acting as `id` (from its kubeconfig).
    pub async fn config_as(&self, id: &Identity) -> kube::Config {
        config_from(&self.kubeconfig_for(id).await).await
    }

    /// The cluster CA (loaded from the server's data directory).
    pub fn pki(&self) -> Pki {
        Pki::load_or_create(&self.dir.path().join("pki")).unwrap()
    }

    /// A kubeconfig file acting as `id` (written into the data directory).
    pub async fn kubeconfig_for(&self, id: &Identity) -> PathBuf {
        if *id == Identity::Admin {
            return self.kubeconfig.clone();
        }
        let (user, creds) = self.credentials_for(id).await;
        let path = self.dir.path().join(id.file_name());
        write_text(
            &path,
            &render(&self.url, self.pki().ca_pem(), &user, &creds),
        )
        .unwrap();
        path
    }

    /// The user name and credentials of `id` (certificates are issued by the cluster CA,
    /// ServiceAccount tokens requested as the admin).
    pub async fn credentials_for(&self, id: &Identity) -> (String, Credentials) {
        let pki = self.pki();
        let cert = |name: &str, groups: &[String]| {
            let c = pki
                .issue_client(name, groups, Duration::from_secs(24 * 3600))
                .unwrap();
            Credentials::Certificate {
                cert_pem: c.cert_pem,
                key_pem: c.key_pem,
            }
        };
        match id {
            Identity::Admin => {
                let c = pki.admin().unwrap();
                (
                    "admin".to_string(),
                    Credentials::Certificate {
                        cert_pem: c.cert_pem,
                        key_pem: c.key_pem,
                    },
                )
            }
            Identity::Anonymous => ("anonymous".to_string(), Credentials::None),
            Identity::User { name, groups } => (name.clone(), cert(name, groups)),
            Identity::Node(n) => {
                let name = format!("system:node:{n}");
                let creds = cert(&name, &["system:nodes".to_string()]);
                (name, creds)
            }
            Identity::Token(t) => ("token-user".to_string(), Credentials::Token(t.clone())),
            Identity::Certificate {
                name,
                cert_pem,
                key_pem,
            } => (
                name.clone(),
                Credentials::Certificate {
                    cert_pem: cert_pem.clone(),
                    key_pem: key_pem.clone(),
                },
            ),
            Identity::ServiceAccount { namespace, name } => {
                let token = self.service_account_token(namespace, name, None).await;
                (
                    format!("system:serviceaccount:{namespace}:{name}"),
                    Credentials::Token(token),
                )
            }
        }
    }

    /// A token of ServiceAccount `namespace/name` (TokenRequest as the admin; the ServiceAccount
    /// is created when missing), optionally bound to a pod.
    pub async fn service_account_token(
        &self,
        namespace: &str,
        name: &str,
        pod: Option<&str>,
    ) -> String {
        self.ensure_service_account(namespace, name).await;
        let mut spec = serde_json::json!({"expirationSeconds": 3600});
        if let Some(p) = pod {
            spec["boundObjectRef"] =
                serde_json::json!({"kind": "Pod", "apiVersion": "v1", "name": p});
        }
        let body = serde_json::json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec});
        let api: kube::Api<k8s_openapi::api::core::v1::ServiceAccount> =
            kube::Api::namespaced(self.client().await, namespace);
        let v: serde_json::Value = api
            .create_subresource("token", name, &Default::default(), &body)
            .await
            .unwrap_or_else(|e| panic!("TokenRequest for {namespace}/{name} failed: {e}"));
        v["status"]["token"].as_str().unwrap().to_string()
    }

    /// Creates ServiceAccount `namespace/name` (as the admin) unless it exists.
    pub async fn ensure_service_account(&self, namespace: &str, name: &str) {
        use k8s_openapi::api::core::v1::ServiceAccount;
        let api: kube::Api<ServiceAccount> = kube::Api::namespaced(self.client().await, namespace);
        let sa = ServiceAccount {
            metadata: kube::api::ObjectMeta {
                name: Some(name.to_string()),
                ..Default::default()
            },
            ..Default::default()
        };
        match api.create(&Default::default(), &sa).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => panic!("creating ServiceAccount {namespace}/{name}: {e}"),
        }
    }

    /// Runs the real kubectl with the admin kubeconfig (blocking).
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_with(args, None, &[])
    }

    /// Runs kubectl with stdin and extra environment.
    pub fn kubectl_with(&self, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Output {
        self.kubectl_in(&self.kubeconfig, args, stdin, env)
    }

    /// Runs kubectl with another kubeconfig (see [`TestServer::kubeconfig_for`]).
    pub fn kubectl_in(
        &self,
        kubeconfig: &std::path::Path,
        args: &[&str],
        stdin: Option<&str>,
        env: &[(&str, &str)],
    ) -> Output {
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(kubeconfig)
            .args(args)
            .env_remove("KUBECONFIG")
            .env("HOME", self.dir.path())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .expect("run kubectl (is /usr/bin/kubectl installed?)");
        if let Some(input) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        child.wait_with_output().unwrap()
    }

    /// Runs kubectl, asserts success, returns stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {} failed:\nstdout: {}\nstderr: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl, asserts failure, returns stderr.
    pub fn kubectl_err(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            !out.status.success(),
            "kubectl {} should fail:\nstdout: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// The path of a file under the repository's `manifests/`.
    pub fn manifests(sub: &str) -> String {
        format!("{}/../manifests/{sub}", env!("CARGO_MANIFEST_DIR"))
    }

    /// The server's address as `host:port`.
    pub fn addr(&self) -> &str {
        self.url.trim_start_matches("https://")
    }
}

/// The raw HTTPS client of [`TestServer::raw_client`].
pub type RawClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    http_body_util::Full<bytes::Bytes>,
>;

async fn client_from(kubeconfig: &std::path::Path) -> kube::Client {
    kube::Client::try_from(config_from(kubeconfig).await).unwrap()
}

async fn config_from(kubeconfig: &std::path::Path) -> kube::Config {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
    kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap()
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.abort();
        }
    }
}
