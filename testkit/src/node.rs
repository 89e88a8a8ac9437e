//! A real node on this machine, for the kubelet's integration tests and the pod-startup
//! benchmark: a network namespace standing for the node's machine (a veth pair to the host, the
//! node's IP inside, a route from the host to the pod CIDR through it), and the kubelet started
//! in-process with its managed containerd running in that namespace (`nsenter --net`), images
//! imported from an images directory the offline builder (`rkube-images`) wrote, and its HTTPS
//! API listening on the node's IP inside the namespace — so the API server reaches it as it
//! would a remote node.
//!
//! Everything a node makes is its own: the namespace (bridge, iptables rules, hostPorts), the
//! temp directory (containerd root/state/socket, pod volumes, logs, CNI IPAM), and the cgroup
//! root. Dropping a node kills what is left (containers by cgroup, containerd and shims by
//! command line), unmounts, and deletes the namespace and cgroups — also when whoever made it
//! fails half-way.
//!
//! It needs root and the packages of `scripts/setup` (containerd, runc, CNI plugins,
//! busybox-static, catatonit, iproute2, util-linux).

use std::collections::HashSet;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use rkube_kubelet::config::ManagedContainerd;
use rkube_kubelet::cri::Cri;
use rkube_kubelet::{Config, Kubelet, RuntimeMode};
use tokio::time::Instant;

use crate::host;

/// How long anything that needs a real container to happen is waited for.
pub const WAIT: Duration = Duration::from_secs(90);

/// Why a node could not be made, started or emptied.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A command (`ip`, …) failed.
    #[error("{0}")]
    Command(String),
    /// Every address slot is taken.
    #[error("no free address slot (10.250.S.0/30, 10.251.S.0/24)")]
    NoSlot,
    /// A file or socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The offline images could not be built.
    #[error("building the offline images (busybox-static and catatonit installed?): {0}")]
    Images(#[from] rkube_images::Error),
    /// The kubelet did not start.
    #[error("kubelet start: {0}")]
    Kubelet(#[from] rkube_kubelet::Error),
    /// An API request failed.
    #[error("API request: {0}")]
    Api(#[from] kube::Error),
    /// Something did not happen in time.
    #[error("{0} did not happen within {WAIT:?}")]
    Timeout(String),
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> NodeError {
    let context = context.into();
    move |source| NodeError::Io { context, source }
}

/// Address slots in use by this process (10.250.S.0/30 link, 10.251.S.0/24 pods).
static SLOTS: Mutex<Option<HashSet<u8>>> = Mutex::new(None);

fn run(cmd: &str, args: &[&str]) -> Result<String, NodeError> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| NodeError::Command(format!("{cmd}: {e}")))?;
    if !out.status.success() {
        return Err(NodeError::Command(format!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ip(args: &[&str]) -> Result<(), NodeError> {
    run("ip", args).map(drop)
}

/// Picks a slot no address or route of this machine uses yet.
fn take_slot() -> Result<u8, NodeError> {
    let in_use =
        run("ip", &["-o", "addr"]).unwrap_or_default() + &run("ip", &["route"]).unwrap_or_default();
    let mut guard = SLOTS.lock().unwrap_or_else(|e| e.into_inner());
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
        return Ok(s);
    }
    Err(NodeError::NoSlot)
}

/// Polls `f` every 250 ms until it returns `Some`; [`NodeError::Timeout`] naming `what` after
/// [`WAIT`].
pub async fn poll<T, F, Fut>(what: &str, mut f: F) -> Result<T, NodeError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            return Err(NodeError::Timeout(what.into()));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// One node: its network namespace, directories and (when started) its kubelet.
pub struct NetnsNode {
    /// The node's name.
    pub name: String,
    /// The network namespace (`/run/netns/<netns>`).
    pub netns: String,
    host_if: String,
    /// The node's IP (its InternalIP, inside the namespace).
    pub node_ip: Ipv4Addr,
    /// The pod CIDR given to the Node.
    pub pod_cidr: String,
    /// Holds the data and images directories.
    pub dir: tempfile::TempDir,
    /// The cgroup root of this node's pods.
    pub cgroup_root: String,
    slot: u8,
    /// The running kubelet.
    pub kubelet: Option<Kubelet>,
    /// The harness's own requests (the Node's pod CIDR, deleting pods).
    client: kube::Client,
    /// The kubelet's client (by default the harness's).
    kubelet_client: kube::Client,
}

impl NetnsNode {
    /// Makes the namespace and the link, writes the offline images; the kubelet is not
    /// started. What was made before a failure is undone.
    pub fn new(client: &kube::Client) -> Result<Self, NodeError> {
        let slot = take_slot()?;
        let tag = format!("{}x{slot}", std::process::id() % 100_000);
        let netns = format!("rkt{tag}");
        let host_if = format!("rkh{tag}");
        let host_ip = Ipv4Addr::new(10, 250, slot, 1);
        let node_ip = Ipv4Addr::new(10, 250, slot, 2);
        let pod_cidr = format!("10.251.{slot}.0/24");
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => {
                release_slot(slot);
                return Err(io("creating the node's temp dir")(e));
            }
        };
        // Made first, so that its Drop undoes whatever a failing step below leaves.
        let node = NetnsNode {
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
            kubelet_client: client.clone(),
        };
        ip(&["netns", "add", &netns])?;
        ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", "eth0", "netns", &netns,
        ])?;
        ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &host_if])?;
        ip(&["link", "set", &host_if, "up"])?;
        ip(&["-n", &netns, "link", "set", "lo", "up"])?;
        ip(&[
            "-n",
            &netns,
            "addr",
            "add",
            &format!("{node_ip}/30"),
            "dev",
            "eth0",
        ])?;
        ip(&["-n", &netns, "link", "set", "eth0", "up"])?;
        ip(&[
            "-n",
            &netns,
            "route",
            "add",
            "default",
            "via",
            &host_ip.to_string(),
        ])?;
        ip(&[
            "route",
            "add",
            &pod_cidr,
            "via",
            &node_ip.to_string(),
            "dev",
            &host_if,
        ])?;
        rkube_images::write_default_images(&node.images_dir())?;
        Ok(node)
    }

    /// Runs the kubelet with `client` — e.g. the node's own identity, `system:node:<name>`,
    /// under the Node authorizer — instead of the client given to [`NetnsNode::new`], which the
    /// harness keeps for its own requests.
    pub fn set_kubelet_client(&mut self, client: kube::Client) {
        self.kubelet_client = client;
    }

    /// The kubelet's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The images directory.
    pub fn images_dir(&self) -> PathBuf {
        self.dir.path().join("images")
    }

    /// The kubelet configuration of this node: managed containerd in the namespace, the node's
    /// IP, its images directory and cgroup root, the health port on any free loopback port;
    /// kubelet defaults otherwise (a self-signed serving certificate among them).
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
        cfg.images_dir = Some(self.images_dir());
        cfg.cgroup_root = self.cgroup_root.clone();
        // Many nodes share the test's loopback: each its own health port.
        cfg.serving.healthz_port = Some(0);
        cfg
    }

    /// A listener on the node's IP inside its namespace (the kubelet's port).
    pub fn listener(&self) -> Result<tokio::net::TcpListener, NodeError> {
        let path = format!("/run/netns/{}", self.netns);
        let addr = (self.node_ip, 0);
        let std = std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).map_err(io(format!("opening {path}")))?;
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| io(format!("entering {path}"))(e.into()))?;
            let l = std::net::TcpListener::bind(addr)
                .map_err(io("binding the kubelet's port in the namespace"))?;
            l.set_nonblocking(true)
                .map_err(io("making the kubelet's listener non-blocking"))?;
            Ok::<_, NodeError>(l)
        })
        .join()
        .map_err(|_| NodeError::Command("the thread binding in the namespace panicked".into()))??;
        tokio::net::TcpListener::from_std(std).map_err(io("registering the kubelet's listener"))
    }

    /// Starts the kubelet with `cfg`, gives the Node its pod CIDR (as the controller manager
    /// would) and waits until the Node is Ready.
    pub async fn start_with(&mut self, cfg: Config) -> Result<(), NodeError> {
        let kubelet = Box::pin(Kubelet::start_with_listener(cfg, self.listener()?)).await?;
        self.kubelet = Some(kubelet);
        let nodes: Api<Node> = Api::all(self.client.clone());
        nodes
            .patch(
                &self.name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"spec": {"podCIDR": self.pod_cidr}})),
            )
            .await?;
        let deadline = Instant::now() + WAIT;
        loop {
            let n = nodes.get(&self.name).await?;
            let ready = n
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
                .map(|c| (c.status.clone(), c.message.clone().unwrap_or_default()));
            if ready.as_ref().is_some_and(|(s, _)| s == "True") {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(NodeError::Timeout(format!(
                    "node {} becoming Ready (its Ready condition: {ready:?})",
                    self.name
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Starts the kubelet with [`NetnsNode::config`].
    pub async fn start(&mut self) -> Result<(), NodeError> {
        let cfg = self.config();
        self.start_with(cfg).await
    }

    /// The running kubelet's CRI client.
    pub fn cri(&self) -> Cri {
        self.kubelet.as_ref().expect("kubelet running").cri()
    }

    /// The kubelet's HTTPS port (on the node's IP).
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
    /// until its kubelet removed their containers and sandboxes (network teardown included).
    pub async fn delete_pods(&self) -> Result<(), NodeError> {
        let Some(k) = &self.kubelet else {
            return Ok(());
        };
        let all: Api<Pod> = Api::all(self.client.clone());
        let on_node = all
            .list(&ListParams::default().fields(&format!("spec.nodeName={}", self.name)))
            .await?;
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
        poll("the kubelet removing every pod", || {
            let cri = cri.clone();
            async move {
                let left = cri.list_containers(&[]).await.ok()?.len()
                    + cri.list_pod_sandbox(&[]).await.ok()?.len();
                (left == 0).then_some(())
            }
        })
        .await
    }

    /// [`NetnsNode::delete_pods`], then stops the kubelet (the kubelet is stopped also when
    /// the pods could not all be removed).
    pub async fn shutdown(mut self) -> Result<(), NodeError> {
        let deleted = self.delete_pods().await;
        self.stop_kubelet().await;
        deleted
    }
}

fn release_slot(slot: u8) {
    if let Some(s) = SLOTS.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        s.remove(&slot);
    }
}

impl Drop for NetnsNode {
    fn drop(&mut self) {
        // A kubelet dropped without `stop` (a failed test) ends its loops and containerd's
        // supervision, so nothing restarts what is killed below.
        drop(self.kubelet.take());
        let data = self.dir.path().to_string_lossy().into_owned();
        // containerd and its shims (their command lines name the socket under the data dir),
        // then containers left behind (a test that failed half-way), then the mounts under the
        // temp dir (pod volumes, sandbox netns files).
        host::kill_mentioning(&data);
        host::kill_cgroup(&self.cgroup_root);
        host::unmount_under(self.dir.path());
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
        host::remove_cgroups(&self.cgroup_root);
        release_slot(self.slot);
    }
}
