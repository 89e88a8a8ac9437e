//! The kubelet's integration test harness: an in-process API server (testkit) that verifies
//! kubelets' serving certificates against the cluster CA, and real nodes —
//! [`rkube_testkit::node::NetnsNode`]: a network namespace standing for the node's machine, the
//! kubelet started in-process with its managed containerd running in that namespace and
//! images from the offline builder, serving HTTPS with a certificate of the cluster CA and
//! taking client certificates of it — with test settings (short periods and back-offs), plus
//! helpers to create, wait for and inspect pods and to call a kubelet's API.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams};
use rkube_kubelet::Config;
use rkube_kubelet::cri::Cri;
use rkube_testkit::apiserver::{Backend, Identity, TestServer};
use rkube_testkit::node::NetnsNode;
pub use rkube_testkit::node::WAIT;
use tokio::time::Instant;

/// Logs to the test output when `RUST_LOG` is set (e.g. `RUST_LOG=rkube_kubelet=debug`).
pub fn init_tracing() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("RUST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_test_writer()
                .try_init();
        }
    });
}

/// The API server and a client for it.
pub struct Cluster {
    /// The API server.
    pub api: TestServer,
    /// An admin client.
    pub client: kube::Client,
}

impl Cluster {
    /// Starts an API server on the embedded store, verifying kubelets' serving certificates
    /// against the cluster CA (as `rkube server` does). Pod Security admission enforces
    /// nothing here: these tests are of what the kubelet does with hostPath volumes, host ports,
    /// host networking and privileged containers.
    pub async fn start() -> Self {
        init_tracing();
        let api = TestServer::start_with(Backend::Embedded, |c| {
            c.kubelet_client.certificate_authority = Some(c.data_dir.join("pki").join("ca.crt"));
            c.settings.pod_security_default = rkube_apiserver::pod_security::Level::Privileged;
        })
        .await;
        let client = api.client().await;
        Cluster { api, client }
    }

    /// Pods in `default`.
    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    /// Runs the real kubectl (blocking, on a worker thread).
    pub async fn kubectl(&self, args: &[&str]) -> std::process::Output {
        let kubeconfig = self.api.kubeconfig.clone();
        let home = self.api.dir.path().to_path_buf();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            kubectl_command(&kubeconfig, &home, &args)
                .output()
                .expect("running kubectl (is /usr/bin/kubectl installed?)")
        })
        .await
        .unwrap()
    }

    /// A kubectl command line (for streaming commands the test reads as they run).
    pub fn kubectl_command(&self, args: &[&str]) -> Command {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        kubectl_command(&self.api.kubeconfig, self.api.dir.path(), &args)
    }
}

fn kubectl_command(kubeconfig: &Path, home: &Path, args: &[String]) -> Command {
    let mut cmd = Command::new("kubectl");
    cmd.arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env_remove("KUBECONFIG")
        .env("HOME", home);
    cmd
}

/// One node ([`NetnsNode`]) with the tests' kubelet settings; failures panic.
pub struct TestNode {
    node: NetnsNode,
    /// The kubelet's serving settings (a certificate of the cluster CA).
    serving: rkube_kubelet::config::ServingConfig,
}

impl std::ops::Deref for TestNode {
    type Target = NetnsNode;

    fn deref(&self) -> &NetnsNode {
        &self.node
    }
}

impl std::ops::DerefMut for TestNode {
    fn deref_mut(&mut self) -> &mut NetnsNode {
        &mut self.node
    }
}

/// The serving settings of a kubelet with a certificate of the cluster CA for `node` at `ip`
/// (files written under `dir`), taking client certificates of the cluster CA.
pub fn serving_of_cluster_ca(
    cluster: &Cluster,
    node: &str,
    ip: IpAddr,
    dir: &Path,
) -> rkube_kubelet::config::ServingConfig {
    let (cert, key, ca) = cluster.api.kubelet_serving_files(node, &[ip], dir);
    rkube_kubelet::config::ServingConfig {
        tls_cert_file: Some(cert),
        tls_private_key_file: Some(key),
        client_ca_file: Some(ca),
        healthz_port: Some(0),
        ..Default::default()
    }
}

/// A GET of `path` on the kubelet API at `ip`:`port` as `id` (HTTPS, the kubelet's
/// certificate verified against the cluster CA): status and body.
pub async fn kubelet_get(
    cluster: &Cluster,
    id: &Identity,
    ip: IpAddr,
    port: u16,
    path: &str,
) -> Result<(u16, String), String> {
    let url = format!("https://{ip}:{port}{path}");
    let (code, _, body) = cluster
        .api
        .https_request(id, "GET", &url, &[], vec![])
        .await?;
    Ok((code, String::from_utf8_lossy(&body).into_owned()))
}

impl TestNode {
    /// Makes the namespace and the link, writes the offline images; the kubelet is not started.
    /// The kubelet will act as the node (`system:node:<name>` in `system:nodes`), so that the
    /// Node authorizer and the `system:node` role decide what it may do.
    pub async fn new(cluster: &Cluster) -> Self {
        let mut node =
            NetnsNode::new(&cluster.client).unwrap_or_else(|e| panic!("making a node: {e}"));
        let own = cluster.api.client_as(&Identity::node(&node.name)).await;
        node.set_kubelet_client(own);
        let serving = serving_of_cluster_ca(
            cluster,
            &node.name,
            IpAddr::V4(node.node_ip),
            &node.dir.path().join("serving"),
        );
        TestNode { node, serving }
    }

    /// A scratch directory for hostPath volumes.
    pub fn scratch(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join("scratch").join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    /// The kubelet configuration tests start from: the node's (managed containerd in the
    /// namespace), serving a certificate of the cluster CA and taking client certificates of
    /// it, with cluster DNS and short periods and back-offs.
    pub fn config(&self) -> Config {
        let mut cfg = self.node.config();
        cfg.serving = self.serving.clone();
        cfg.cluster_dns = vec![IpAddr::V4(Ipv4Addr::new(10, 96, 0, 10))];
        cfg.sync_frequency = Duration::from_secs(3);
        cfg.node_status_update_frequency = Duration::from_secs(1);
        cfg.crash_backoff = (Duration::from_secs(1), Duration::from_secs(8));
        cfg.image_backoff = (Duration::from_secs(1), Duration::from_secs(8));
        cfg
    }

    /// Starts the kubelet with `cfg`, gives the Node its pod CIDR and waits until it is Ready.
    pub async fn start_with(&mut self, cfg: Config) {
        self.node
            .start_with(cfg)
            .await
            .unwrap_or_else(|e| panic!("starting node {}: {e}", self.name));
    }

    /// Starts the kubelet with the test configuration.
    pub async fn start(&mut self) {
        let cfg = self.config();
        self.start_with(cfg).await;
    }

    /// Deletes the node's pods, waits until its kubelet removed them, stops the kubelet.
    pub async fn shutdown(self) {
        self.node
            .shutdown()
            .await
            .unwrap_or_else(|e| panic!("shutting the node down: {e}"));
    }
}

/// The user and password of the test registry.
pub const REGISTRY_USER: (&str, &str) = ("puller", "pull-s3cret");
/// bcrypt of [`REGISTRY_USER`]'s password, for the registry's htpasswd file.
const REGISTRY_HTPASSWD: &str =
    "puller:$2b$05$qEWFSLBP9H6YQAWhlJmk1OACCzUmwuUtC7V74DKls6us2HoMv8TEa\n";
/// The registry's port inside the node's namespace (containerd pulls from 127.0.0.1 there).
pub const REGISTRY_PORT: u16 = 5000;

/// A private registry (Debian's docker-registry, htpasswd auth) in the node's namespace.
pub struct Registry {
    child: std::process::Child,
    /// Where the test pushes (the node's IP).
    pub host: IpAddr,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TestNode {
    /// Starts a registry requiring [`REGISTRY_USER`] in the node's namespace.
    pub async fn start_registry(&self) -> Registry {
        let dir = self.dir.path().join("registry");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("htpasswd"), REGISTRY_HTPASSWD).unwrap();
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: 0.0.0.0:{REGISTRY_PORT}\n  secret: rkube-test\n\
                 auth:\n  htpasswd:\n    realm: rkube-test\n    path: {}\n",
                dir.join("data").display(),
                dir.join("htpasswd").display()
            ),
        )
        .unwrap();
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.netns))
            .args(["--", "docker-registry", "serve"])
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.join("log")).unwrap())
            .spawn()
            .expect("docker-registry (apt package docker-registry, scripts/setup)");
        let registry = Registry {
            child,
            host: IpAddr::V4(self.node_ip),
        };
        eventually("the registry answering", || async {
            let (code, _) = http_get(registry.host, REGISTRY_PORT, "/v2/").await.ok()?;
            (code == 401).then_some(())
        })
        .await;
        registry
    }
}

impl Registry {
    async fn request(
        &self,
        method: &str,
        uri: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (u16, Option<String>) {
        use base64::Engine;
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<http_body_util::Full<bytes::Bytes>>();
        let uri = if uri.starts_with("http") {
            uri.to_string()
        } else {
            format!("http://{}:{REGISTRY_PORT}{uri}", self.host)
        };
        let auth = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", REGISTRY_USER.0, REGISTRY_USER.1));
        let req = axum::http::Request::builder()
            .method(method)
            .uri(&uri)
            .header("Authorization", format!("Basic {auth}"))
            .header("Content-Type", content_type)
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .unwrap();
        let resp = client.request(req).await.unwrap();
        let location = resp
            .headers()
            .get("Location")
            .map(|l| l.to_str().unwrap().to_string());
        (resp.status().as_u16(), location)
    }

    /// Pushes an image the offline builder made as `<repository>:<tag>`.
    pub async fn push(&self, image: &rkube_images::Image, repository: &str, tag: &str) {
        let tar = image.oci_tar().unwrap();
        let mut files = std::collections::HashMap::new();
        let mut archive = tar::Archive::new(tar.as_slice());
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            files.insert(path, data);
        }
        let index: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
        let blob = |digest: &str| files[&format!("blobs/sha256/{}", &digest[7..])].clone();
        let manifest = blob(index["manifests"][0]["digest"].as_str().unwrap());
        let m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
        let mut digests = vec![m["config"]["digest"].as_str().unwrap().to_string()];
        for l in m["layers"].as_array().unwrap() {
            digests.push(l["digest"].as_str().unwrap().to_string());
        }
        for digest in digests {
            let (code, location) = self
                .request(
                    "POST",
                    &format!("/v2/{repository}/blobs/uploads/"),
                    "application/octet-stream",
                    Vec::new(),
                )
                .await;
            assert_eq!(code, 202, "starting a blob upload");
            let location = location.expect("upload location");
            let sep = if location.contains('?') { '&' } else { '?' };
            let (code, _) = self
                .request(
                    "PUT",
                    &format!("{location}{sep}digest={digest}"),
                    "application/octet-stream",
                    blob(&digest),
                )
                .await;
            assert_eq!(code, 201, "uploading blob {digest}");
        }
        let (code, _) = self
            .request(
                "PUT",
                &format!("/v2/{repository}/manifests/{tag}"),
                "application/vnd.oci.image.manifest.v1+json",
                manifest,
            )
            .await;
        assert_eq!(code, 201, "putting the manifest");
    }
}

/// A pod from JSON (metadata.name and spec), bound to `node`.
pub fn pod(node: &str, name: &str, spec: serde_json::Value) -> Pod {
    let mut spec = spec;
    spec["nodeName"] = serde_json::json!(node);
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    }))
    .unwrap()
}

/// Creates a pod.
pub async fn create(api: &Api<Pod>, pod: &Pod) -> Pod {
    api.create(&PostParams::default(), pod).await.unwrap()
}

/// Polls the pod until `pred` holds; panics with the last status after [`WAIT`].
pub async fn wait_pod(api: &Api<Pod>, name: &str, what: &str, pred: impl Fn(&Pod) -> bool) -> Pod {
    wait_pod_for(api, name, what, WAIT, pred).await
}

/// [`wait_pod`] with a deadline.
pub async fn wait_pod_for(
    api: &Api<Pod>,
    name: &str,
    what: &str,
    limit: Duration,
    pred: impl Fn(&Pod) -> bool,
) -> Pod {
    let deadline = Instant::now() + limit;
    loop {
        let p = api.get_opt(name).await.unwrap();
        if let Some(p) = &p
            && pred(p)
        {
            return p.clone();
        }
        if Instant::now() >= deadline {
            panic!(
                "pod {name}: {what} did not happen within {limit:?}; status: {}",
                p.map(|p| serde_json::to_string_pretty(&p.status).unwrap())
                    .unwrap_or_else(|| "(gone)".into())
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the pod object is gone.
pub async fn wait_gone(api: &Api<Pod>, name: &str) {
    let deadline = Instant::now() + WAIT;
    while api.get_opt(name).await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "pod {name} was not deleted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Deletes a pod with a grace period.
pub async fn delete(api: &Api<Pod>, name: &str, grace: u32) {
    api.delete(
        name,
        &DeleteParams {
            grace_period_seconds: Some(grace),
            ..Default::default()
        },
    )
    .await
    .unwrap();
}

/// The status of container `name`.
pub fn container_status(
    p: &Pod,
    name: &str,
) -> Option<k8s_openapi::api::core::v1::ContainerStatus> {
    p.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == name)
        .cloned()
}

/// Whether the pod runs with every container running.
pub fn running(p: &Pod) -> bool {
    let Some(st) = &p.status else { return false };
    st.phase.as_deref() == Some("Running")
        && st
            .container_statuses
            .iter()
            .flatten()
            .all(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
}

/// The pod's condition `type_` is `True`.
pub fn condition(p: &Pod, type_: &str) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == type_ && c.status == "True"))
}

/// The runtime's id of container `name` (without the `containerd://` prefix).
pub fn container_id(p: &Pod, name: &str) -> String {
    container_status(p, name)
        .and_then(|c| c.container_id)
        .map(|id| id.split("://").last().unwrap_or_default().to_string())
        .unwrap_or_default()
}

/// Runs a command in a container (CRI ExecSync): exit code and stdout.
pub async fn exec(cri: &Cri, id: &str, cmd: &[&str]) -> (i32, String) {
    let r = cri
        .exec_sync(id, cmd.iter().map(|s| s.to_string()).collect(), 20)
        .await
        .unwrap_or_else(|e| panic!("exec {cmd:?} in {id}: {e}"));
    (r.exit_code, String::from_utf8_lossy(&r.stdout).into_owned())
}

/// A plain HTTP GET: the status line's code and the body.
pub async fn http_get(host: IpAddr, port: u16, path: &str) -> Result<(u16, String), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fut = async {
        let mut s = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|e| e.to_string())?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let code = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("not HTTP: {text:?}"))?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Ok((code, body))
    };
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .map_err(|_| "timed out".to_string())?
}

/// Polls `f` until it returns `Some`, panicking with `what` after [`WAIT`].
pub async fn eventually<T, F, Fut>(what: &str, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    rkube_testkit::node::poll(what, f)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}
