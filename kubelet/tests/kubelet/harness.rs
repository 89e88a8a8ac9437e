//! A real node for the kubelet's integration tests: an in-process API server (testkit), a
//! network namespace standing for the node's machine (a veth pair to the host, the node's IP
//! inside, a route from the host to the pod CIDR through it), and the kubelet started in-process
//! with its managed containerd running in that namespace (`nsenter --net`), images imported
//! from an images directory the offline builder wrote, and its HTTP server listening on the
//! node's IP inside the namespace — so the API server reaches it as it would a remote node.
//!
//! Everything a node makes is its own: the namespace (bridge, iptables rules, hostPorts), the
//! temp directory (containerd root/state/socket, pod volumes, logs, CNI IPAM), and the cgroup
//! root. Dropping a node kills what is left (containers by cgroup, containerd and shims by
//! command line), unmounts, and deletes the namespace and cgroups.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use rkube_kubelet::config::ManagedContainerd;
use rkube_kubelet::cri::Cri;
use rkube_kubelet::{Config, Kubelet, RuntimeMode};
use rkube_testkit::apiserver::{Backend, Identity, TestServer};
use tokio::time::Instant;

/// How long a test waits for anything that needs a real container to happen.
pub const WAIT: Duration = Duration::from_secs(90);

/// Address slots in use by this process (10.250.S.0/30 link, 10.251.S.0/24 pods).
static SLOTS: Mutex<Option<HashSet<u8>>> = Mutex::new(None);

fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ip(args: &[&str]) {
    run("ip", args).unwrap_or_else(|e| panic!("{e}"));
}

/// Picks a slot no address or route of this machine uses yet.
fn take_slot() -> u8 {
    let in_use =
        run("ip", &["-o", "addr"]).unwrap_or_default() + &run("ip", &["route"]).unwrap_or_default();
    let mut guard = SLOTS.lock().unwrap();
    let slots = guard.get_or_insert_with(HashSet::new);
    for _ in 0..1000 {
        let s: u8 = rand::random_range(1..=250);
        if slots.contains(&s)
            || in_use.contains(&format!("10.250.{s}."))
            || in_use.contains(&format!("10.251.{s}."))
        {
            continue;
        }
        slots.insert(s);
        return s;
    }
    panic!("no free address slot");
}

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
    /// Starts an API server on the embedded store.
    pub async fn start() -> Self {
        init_tracing();
        let api = TestServer::start(Backend::Embedded).await;
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

/// One node: its network namespace, directories and (when started) its kubelet.
pub struct TestNode {
    /// The node's name.
    pub name: String,
    /// The network namespace (`/run/netns/<netns>`).
    pub netns: String,
    host_if: String,
    /// The node's IP (its InternalIP, inside the namespace).
    pub node_ip: Ipv4Addr,
    /// The pod CIDR the test assigns to the Node.
    pub pod_cidr: String,
    /// Holds the data and images directories.
    pub dir: tempfile::TempDir,
    /// The cgroup root of this node's pods.
    pub cgroup_root: String,
    slot: u8,
    /// The running kubelet.
    pub kubelet: Option<Kubelet>,
    /// An admin client (what the test does as the cluster's operator).
    client: kube::Client,
    /// The kubelet's own client: `system:node:<name>` in `system:nodes`, so that the Node
    /// authorizer and the `system:node` role decide what it may do.
    kubelet_client: kube::Client,
}

impl TestNode {
    /// Makes the namespace and the link, writes the offline images; the kubelet is not started.
    pub async fn new(cluster: &Cluster) -> Self {
        let client = &cluster.client;
        let slot = take_slot();
        let tag = format!("{}x{slot}", std::process::id() % 100_000);
        let netns = format!("rkt{tag}");
        let host_if = format!("rkh{tag}");
        let host_ip = Ipv4Addr::new(10, 250, slot, 1);
        let node_ip = Ipv4Addr::new(10, 250, slot, 2);
        let pod_cidr = format!("10.251.{slot}.0/24");
        let dir = tempfile::tempdir().unwrap();
        let node = TestNode {
            name: format!("node-{slot}"),
            netns: netns.clone(),
            host_if: host_if.clone(),
            node_ip,
            pod_cidr: pod_cidr.clone(),
            dir,
            cgroup_root: format!("/rkube-test-{tag}"),
            slot,
            kubelet: None,
            client: client.clone(),
            kubelet_client: cluster
                .api
                .client_as(&Identity::node(&format!("node-{slot}")))
                .await,
        };
        ip(&["netns", "add", &netns]);
        ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", "eth0", "netns", &netns,
        ]);
        ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &host_if]);
        ip(&["link", "set", &host_if, "up"]);
        ip(&["-n", &netns, "link", "set", "lo", "up"]);
        ip(&[
            "-n",
            &netns,
            "addr",
            "add",
            &format!("{node_ip}/30"),
            "dev",
            "eth0",
        ]);
        ip(&["-n", &netns, "link", "set", "eth0", "up"]);
        ip(&[
            "-n",
            &netns,
            "route",
            "add",
            "default",
            "via",
            &host_ip.to_string(),
        ]);
        ip(&[
            "route",
            "add",
            &pod_cidr,
            "via",
            &node_ip.to_string(),
            "dev",
            &host_if,
        ]);
        rkube_images::write_default_images(&node.images_dir())
            .expect("building the offline images (busybox-static and catatonit installed?)");
        node
    }

    /// The kubelet's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The images directory.
    pub fn images_dir(&self) -> PathBuf {
        self.dir.path().join("images")
    }

    /// A scratch directory for hostPath volumes.
    pub fn scratch(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join("scratch").join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    /// The kubelet configuration tests start from: managed containerd in the namespace,
    /// short periods and back-offs.
    pub fn config(&self) -> Config {
        let mut cfg = Config::new(self.name.clone(), self.data_dir());
        cfg.client = Some(self.kubelet_client.clone());
        cfg.runtime = RuntimeMode::Managed(ManagedContainerd {
            wrapper: vec![
                "nsenter".into(),
                format!("--net=/run/netns/{}", self.netns).into(),
                "--".into(),
            ],
            ..Default::default()
        });
        cfg.node_ip = Some(IpAddr::V4(self.node_ip));
        cfg.cluster_dns = vec![IpAddr::V4(Ipv4Addr::new(10, 96, 0, 10))];
        cfg.images_dir = Some(self.images_dir());
        cfg.cgroup_root = self.cgroup_root.clone();
        cfg.sync_frequency = Duration::from_secs(3);
        cfg.node_status_update_frequency = Duration::from_secs(1);
        cfg.crash_backoff = (Duration::from_secs(1), Duration::from_secs(8));
        cfg.image_backoff = (Duration::from_secs(1), Duration::from_secs(8));
        cfg
    }

    /// A listener on the node's IP inside its namespace (the kubelet's port).
    pub fn listener(&self) -> tokio::net::TcpListener {
        let path = format!("/run/netns/{}", self.netns);
        let addr = (self.node_ip, 0);
        let std = std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).expect("the node's netns");
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            let l = std::net::TcpListener::bind(addr).expect("binding in the netns");
            l.set_nonblocking(true).unwrap();
            l
        })
        .join()
        .unwrap();
        tokio::net::TcpListener::from_std(std).unwrap()
    }

    /// Starts the kubelet with `cfg`, gives the Node its pod CIDR (as the controller manager
    /// would) and waits until the Node is Ready.
    pub async fn start_with(&mut self, cfg: Config) {
        let kubelet = Kubelet::start_with_listener(cfg, self.listener())
            .await
            .expect("kubelet start");
        self.kubelet = Some(kubelet);
        let nodes: Api<Node> = Api::all(self.client.clone());
        nodes
            .patch(
                &self.name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"spec": {"podCIDR": self.pod_cidr}})),
            )
            .await
            .unwrap();
        let deadline = Instant::now() + WAIT;
        loop {
            let n = nodes.get(&self.name).await.unwrap();
            let ready = n
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
                .map(|c| (c.status.clone(), c.message.clone().unwrap_or_default()));
            if ready.as_ref().is_some_and(|(s, _)| s == "True") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node {} did not become Ready: {ready:?}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Starts the kubelet with the test configuration.
    pub async fn start(&mut self) {
        let cfg = self.config();
        self.start_with(cfg).await;
    }

    /// The running kubelet's CRI client.
    pub fn cri(&self) -> Cri {
        self.kubelet.as_ref().expect("kubelet running").cri()
    }

    /// The kubelet's HTTP port.
    pub fn port(&self) -> u16 {
        self.kubelet.as_ref().expect("kubelet running").port()
    }

    /// Stops the kubelet (and its containerd); pods keep running.
    pub async fn stop_kubelet(&mut self) {
        if let Some(k) = self.kubelet.take() {
            k.stop().await;
        }
    }

    /// Deletes the node's pods (grace 1 s: test containers often ignore SIGTERM) and waits
    /// until its kubelet removed their containers and sandboxes (network teardown included),
    /// then stops the kubelet.
    pub async fn shutdown(mut self) {
        if let Some(k) = &self.kubelet {
            let all: Api<Pod> = Api::all(self.client.clone());
            let on_node = all
                .list(&ListParams::default().fields(&format!("spec.nodeName={}", self.name)))
                .await
                .unwrap();
            for p in on_node.items {
                let api: Api<Pod> = Api::namespaced(
                    self.client.clone(),
                    p.metadata.namespace.as_deref().unwrap_or("default"),
                );
                let _ = api
                    .delete(
                        p.metadata.name.as_deref().unwrap_or_default(),
                        &DeleteParams {
                            grace_period_seconds: Some(1),
                            ..Default::default()
                        },
                    )
                    .await;
            }
            let cri = k.cri();
            eventually("the kubelet removing every pod", || {
                let cri = cri.clone();
                async move {
                    let left = cri.list_containers(&[]).await.ok()?.len()
                        + cri.list_pod_sandbox(&[]).await.ok()?.len();
                    (left == 0).then_some(())
                }
            })
            .await;
        }
        self.stop_kubelet().await;
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

/// Every pid in the cgroup tree `dir`.
fn cgroup_pids(dir: &Path, out: &mut Vec<i32>) {
    if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        out.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                cgroup_pids(&e.path(), out);
            }
        }
    }
}

fn kill(pid: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

impl Drop for TestNode {
    fn drop(&mut self) {
        // A kubelet dropped without `stop` (a failed test) ends its loops and containerd's
        // supervision, so nothing restarts what is killed below.
        drop(self.kubelet.take());
        let data = self.dir.path().to_string_lossy().into_owned();
        // containerd and its shims (their command lines name the socket under the data dir).
        if let Ok(rd) = std::fs::read_dir("/proc") {
            for e in rd.flatten() {
                let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                    continue;
                };
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                if String::from_utf8_lossy(&cmdline).contains(&data) {
                    kill(pid);
                }
            }
        }
        // Containers left behind (a test that failed half-way).
        let mut pids = Vec::new();
        let rel = self.cgroup_root.trim_start_matches('/');
        cgroup_pids(&Path::new("/sys/fs/cgroup").join(rel), &mut pids);
        for h in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            cgroup_pids(&h.path().join(rel), &mut pids);
        }
        for pid in &pids {
            kill(*pid);
        }
        // Mounts under the temp dir (pod volumes, sandbox netns files), deepest first.
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut points: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&data))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in points {
            let _ = nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH);
        }
        // What killed shims and skipped network teardowns leave on the host: the shims'
        // sockets (named by the hash of containerd's address, namespace and task id) and
        // libcni's result cache entries of the sandboxes.
        let containerd = self.data_dir().join("containerd");
        let socket = containerd.join("containerd.sock");
        let tasks = containerd.join("state/io.containerd.runtime.v2.task/k8s.io");
        let cache: Vec<PathBuf> = std::fs::read_dir("/var/lib/cni/results")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        for task in std::fs::read_dir(tasks).into_iter().flatten().flatten() {
            let id = task.file_name().to_string_lossy().into_owned();
            let key = format!("{}/k8s.io/{id}", socket.display());
            let _ = std::fs::remove_file(
                Path::new("/run/containerd/s").join(rkube_images::sha256(key.as_bytes())),
            );
            for f in &cache {
                if f.to_string_lossy().contains(&format!("-{id}-")) {
                    let _ = std::fs::remove_file(f);
                }
            }
        }
        let _ = run("ip", &["link", "del", &self.host_if]);
        let _ = run("ip", &["netns", "del", &self.netns]);
        // The cgroups go once their processes are gone.
        for _ in 0..50 {
            rkube_kubelet::cgroups::remove_root(&self.cgroup_root);
            let gone = std::fs::read_dir("/sys/fs/cgroup")
                .into_iter()
                .flatten()
                .flatten()
                .all(|h| !h.path().join(rel).exists());
            if gone {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if let Some(s) = SLOTS.lock().unwrap().as_mut() {
            s.remove(&self.slot);
        }
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
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what} did not happen in time");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
