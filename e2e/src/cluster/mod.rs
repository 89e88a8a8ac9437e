//! The whole-cluster harness: a real rkube cluster on this machine, as users run one — one
//! `rkube server` and any number of `rkube agent`s, each node a machine of its own
//! ([`Node`]: network namespace, mount namespace, data directory on a tmpfs) with its IP on a
//! bridge, used through the real `kubectl` and `rkubectl`.
//!
//! The bridge lives in a "hub" network namespace of the cluster's own, so a cluster changes
//! nothing in the host's network namespace and every cluster can use the same addresses
//! ([`SUBNET`]); names (namespaces, cgroup roots) carry a tag unique to the test process and
//! cluster, so tests run in parallel. The API server is reached from the server's namespace
//! (`kubectl` runs there, with the admin kubeconfig the server writes).
//!
//! Waiting is polling with a deadline ([`Cluster::eventually`]); a timeout says what was
//! waited for and shows `kubectl get nodes,pods -A -o wide` and the events. When a test fails
//! (a panic while a [`Cluster`] is alive), dropping the cluster prints that state and the tail
//! of every component's log — the server's, each agent's, etcd's. Dropping it always tears
//! everything down: processes, containers, mounts, cgroups, namespaces.
//!
//! Needs root and what `scripts/setup` installs (containerd, runc, CNI plugins,
//! busybox-static, catatonit, etcd, kubectl, iproute2, util-linux).

mod binaries;
mod node;

use std::cell::Cell;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use rkube_testkit::host::{self, Netns, Tmpfs};
use serde::de::DeserializeOwned;

pub use binaries::{Binaries, binaries, workspace_binary};
pub use node::{Node, Role};

/// How long anything that involves real containers is waited for by default (generous: CI
/// runs two clusters at once on two cores).
pub const WAIT: Duration = Duration::from_secs(150);

/// The first three octets of every cluster's bridge subnet (a /24): the server is `.10`,
/// agent `i` is `.(10 + i)`.
pub const SUBNET: [u8; 3] = [10, 77, 0];

/// The name of the bridge in the hub namespace.
const BRIDGE: &str = "br0";

/// How a cluster is made.
#[derive(Clone, Debug, Default)]
pub struct ClusterSpec {
    /// `rkube agent`s besides the server. With agents, the server's own node is tainted
    /// `node-role.kubernetes.io/control-plane:NoSchedule`, so workloads run on the agents
    /// (the server's node still serves the cluster DNS).
    pub agents: usize,
    /// Run the API server on a real etcd (started in the server's namespace) instead of
    /// the embedded store.
    pub etcd: bool,
    /// Extra flags of `rkube server`.
    pub server_args: Vec<String>,
    /// Extra flags of every `rkube agent`.
    pub agent_args: Vec<String>,
}

impl ClusterSpec {
    /// A server and `agents` agents.
    pub fn with_agents(agents: usize) -> Self {
        ClusterSpec {
            agents,
            ..Default::default()
        }
    }

    /// Adds flags of `rkube server`.
    pub fn server_args(mut self, args: &[&str]) -> Self {
        self.server_args.extend(args.iter().map(|s| s.to_string()));
        self
    }

    /// Runs the API server on etcd.
    pub fn on_etcd(mut self) -> Self {
        self.etcd = true;
        self
    }
}

/// A one-member etcd on the server's machine (client port 2379 on its loopback), its data on
/// a tmpfs; killed on drop.
struct Etcd {
    child: Child,
    dir: PathBuf,
    _data: Tmpfs,
}

impl Etcd {
    fn start(server: &Node, dir: &Path) -> Etcd {
        let data = Tmpfs::mount(dir.join("data"), "512m").unwrap_or_else(|e| panic!("etcd: {e}"));
        let log = std::fs::File::create(dir.join("etcd.log")).expect("etcd log file");
        let child = server
            .command("etcd")
            .args(["--name", "e2e", "--data-dir"])
            .arg(data.path().join("etcd"))
            .args([
                "--listen-client-urls=http://127.0.0.1:2379",
                "--advertise-client-urls=http://127.0.0.1:2379",
                "--listen-peer-urls=http://127.0.0.1:2380",
                "--initial-advertise-peer-urls=http://127.0.0.1:2380",
                "--initial-cluster=e2e=http://127.0.0.1:2380",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("etcd (apt package etcd-server, scripts/setup)");
        let etcd = Etcd {
            child,
            dir: dir.to_path_buf(),
            _data: data,
        };
        let deadline = Instant::now() + WAIT;
        loop {
            let out = server
                .command("etcdctl")
                .args(["--endpoints=http://127.0.0.1:2379", "endpoint", "health"])
                .env("ETCDCTL_API", "3")
                .output()
                .expect("etcdctl");
            if out.status.success() {
                return etcd;
            }
            assert!(
                Instant::now() < deadline,
                "etcd did not become healthy within {WAIT:?}: {}",
                etcd.log_tail(40)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(self.dir.join("etcd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let skip = lines.len().saturating_sub(n);
        format!(
            "----- etcd: last {} lines\n{}\n",
            lines.len() - skip,
            lines[skip..].join("\n")
        )
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        host::kill_mentioning(&self.dir.display().to_string());
    }
}

/// A running cluster. Fields drop in order: agents, server, etcd, the hub namespace, the
/// temporary directory.
pub struct Cluster {
    /// The agents' machines (`agent-1`, `agent-2`, …).
    pub agents: Vec<Node>,
    /// The server's machine (node `server`).
    pub server: Node,
    etcd: Option<Etcd>,
    hub: Netns,
    dir: tempfile::TempDir,
    binaries: Binaries,
    /// Whether a timeout already showed the cluster's state (not repeated at drop).
    state_shown: Cell<bool>,
}

/// The node name of agent `i` (from 1).
pub fn agent_name(i: usize) -> String {
    format!("agent-{i}")
}

fn node_ip(index: u8) -> Ipv4Addr {
    Ipv4Addr::new(SUBNET[0], SUBNET[1], SUBNET[2], 10 + index)
}

impl Cluster {
    /// Makes the machines, starts the server (and etcd), then the agents with the server's
    /// node token, and waits until every node is Ready.
    ///
    /// # Panics
    /// When something cannot be made or started, or the nodes are not Ready within [`WAIT`]
    /// (with the cluster's state and every log).
    pub fn start(spec: ClusterSpec) -> Cluster {
        let binaries = binaries().clone();
        let tag = host::unique_tag();
        let dir = tempfile::Builder::new()
            .prefix("rkube-e2e-")
            .tempdir()
            .expect("a temp dir for the cluster");
        let hub = Netns::create(format!("rke{tag}-hub")).unwrap_or_else(|e| panic!("{e}"));
        for args in [
            &["link", "add", BRIDGE, "type", "bridge"][..],
            &["link", "set", BRIDGE, "up"],
        ] {
            hub.ip(args).unwrap_or_else(|e| panic!("{e}"));
        }
        let server = Node::new(
            "server",
            Role::Server,
            node_ip(0),
            &tag,
            dir.path(),
            &hub,
            BRIDGE,
        );
        let mut cluster = Cluster {
            agents: Vec::new(),
            server,
            etcd: None,
            hub,
            dir,
            binaries,
            state_shown: Cell::new(false),
        };
        let started = Instant::now();
        if spec.etcd {
            let etcd_dir = cluster.dir.path().join("etcd");
            cluster.etcd = Some(Etcd::start(&cluster.server, &etcd_dir));
        }
        let ip = cluster.server.ip.to_string();
        let mut args: Vec<String> = [
            "--data-dir",
            &cluster.server.data().display().to_string(),
            "--node-name",
            "server",
            "--node-ip",
            &ip,
            "--cgroup-root",
            &cluster.server.cgroup_root,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if spec.etcd {
            args.extend(["--etcd-servers".into(), "http://127.0.0.1:2379".into()]);
        }
        // With agents, workloads go to them (the server's defaults serve agents: the API
        // server on every address, its certificate naming the node IP).
        if spec.agents > 0 {
            args.extend([
                "--node-taint".to_string(),
                "node-role.kubernetes.io/control-plane:NoSchedule".to_string(),
            ]);
        }
        args.extend(spec.server_args.iter().cloned());
        let rkube = cluster.binaries.rkube.clone();
        cluster.server.start(&rkube, args);
        cluster.server.wait_log("rkube server is up");
        if spec.agents > 0 {
            let token = std::fs::read_to_string(cluster.server.data().join("node-token"))
                .expect("the server's node-token");
            for i in 1..=spec.agents {
                let name = agent_name(i);
                let mut node = Node::new(
                    &name,
                    Role::Agent,
                    node_ip(i as u8),
                    &tag,
                    cluster.dir.path(),
                    &cluster.hub,
                    BRIDGE,
                );
                let mut args: Vec<String> = [
                    "--server",
                    &format!("https://{ip}:6443"),
                    "--token",
                    token.trim(),
                    "--data-dir",
                    &node.data().display().to_string(),
                    "--node-name",
                    &name,
                    "--node-ip",
                    &node.ip.to_string(),
                    "--cgroup-root",
                    &node.cgroup_root,
                ]
                .iter()
                .map(|s| s.to_string())
                .collect();
                args.extend(spec.agent_args.iter().cloned());
                node.start(&rkube, args);
                cluster.agents.push(node);
            }
        }
        let names = cluster.node_names();
        cluster.eventually(&format!("nodes {names:?} Ready"), |c| {
            let ready = c.ready_nodes();
            names.iter().all(|n| ready.contains(n)).then_some(())
        });
        eprintln!(
            "TIMING cluster of {} node(s) Ready {:.2?} after the server's start",
            names.len(),
            started.elapsed()
        );
        cluster
    }

    /// Every node's name, the server's first.
    pub fn node_names(&self) -> Vec<String> {
        std::iter::once(&self.server)
            .chain(&self.agents)
            .map(|n| n.name.clone())
            .collect()
    }

    /// The nodes workloads run on: the agents, or the server when there are none.
    pub fn workers(&self) -> Vec<String> {
        if self.agents.is_empty() {
            vec![self.server.name.clone()]
        } else {
            self.agents.iter().map(|n| n.name.clone()).collect()
        }
    }

    /// The machine of node `name`.
    ///
    /// # Panics
    /// When there is no such node.
    pub fn node(&self, name: &str) -> &Node {
        std::iter::once(&self.server)
            .chain(&self.agents)
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    /// The machine of node `name`, mutable.
    ///
    /// # Panics
    /// When there is no such node.
    pub fn node_mut(&mut self, name: &str) -> &mut Node {
        std::iter::once(&mut self.server)
            .chain(self.agents.iter_mut())
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    /// The programs in use.
    pub fn binaries(&self) -> &Binaries {
        &self.binaries
    }

    /// The cluster's temporary directory (kubectl's home; manifests tests write).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The admin kubeconfig the server wrote.
    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.server.data().join("admin.kubeconfig")
    }

    /// Stops (SIGTERM) and starts the server again on its data; waits for its API.
    pub fn restart_server(&mut self) {
        let status = self.server.stop();
        assert!(status.success(), "rkube server stopped with {status}");
        let rkube = self.binaries.rkube.clone();
        self.server.restart(&rkube);
        self.server.wait_log("rkube server is up");
    }

    /// Runs `etcdctl` (v3 API) against the cluster's etcd; its stdout.
    ///
    /// # Panics
    /// When the cluster has no etcd or etcdctl fails.
    pub fn etcdctl(&self, args: &[&str]) -> String {
        assert!(
            self.etcd.is_some(),
            "the cluster runs on the embedded store"
        );
        let out = self
            .server
            .command("etcdctl")
            .arg("--endpoints=http://127.0.0.1:2379")
            .args(args)
            .env("ETCDCTL_API", "3")
            .output()
            .expect("etcdctl");
        ok("etcdctl", args, out)
    }

    /// Takes node `name`'s machine off the network (its link on the bridge down).
    pub fn cut_link(&self, name: &str) {
        let link = self.node(name).link();
        self.hub
            .ip(&["link", "set", &link, "down"])
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Puts node `name`'s machine back on the network.
    pub fn restore_link(&self, name: &str) {
        let link = self.node(name).link();
        self.hub
            .ip(&["link", "set", &link, "up"])
            .unwrap_or_else(|e| panic!("{e}"));
    }

    fn client_command(&self, program: &Path, args: &[&str]) -> Command {
        let mut cmd = self.server.netns.command(program);
        cmd.arg("--kubeconfig")
            .arg(self.admin_kubeconfig())
            .args(args)
            .env_remove("KUBECONFIG")
            .env("HOME", self.dir.path());
        cmd
    }

    /// The real kubectl as the cluster admin, to run as the test likes (a child that keeps
    /// running, an environment of its own).
    pub fn kubectl_command(&self, args: &[&str]) -> Command {
        self.client_command(&self.binaries.kubectl, args)
    }

    /// Runs the real kubectl as the cluster admin.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.client_command(&self.binaries.kubectl, args)
            .output()
            .expect("kubectl")
    }

    /// Runs rkubectl as the cluster admin.
    pub fn rkubectl(&self, args: &[&str]) -> Output {
        self.client_command(&self.binaries.rkubectl, args)
            .output()
            .expect("rkubectl")
    }

    /// Runs kubectl with `input` on its stdin (`apply -f -`).
    pub fn kubectl_input(&self, args: &[&str], input: &str) -> Output {
        run_with_input(self.client_command(&self.binaries.kubectl, args), input)
    }

    /// Runs rkubectl with `input` on its stdin.
    pub fn rkubectl_input(&self, args: &[&str], input: &str) -> Output {
        run_with_input(self.client_command(&self.binaries.rkubectl, args), input)
    }

    /// Runs kubectl; its stdout.
    ///
    /// # Panics
    /// When it fails (with its output).
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        ok("kubectl", args, self.kubectl(args))
    }

    /// Runs rkubectl; its stdout.
    ///
    /// # Panics
    /// When it fails (with its output).
    pub fn rkubectl_ok(&self, args: &[&str]) -> String {
        ok("rkubectl", args, self.rkubectl(args))
    }

    /// `kubectl apply -f -` of `manifest` (YAML or JSON).
    ///
    /// # Panics
    /// When kubectl fails.
    pub fn apply(&self, manifest: &str) -> String {
        ok(
            "kubectl",
            &["apply", "-f", "-"],
            self.kubectl_input(&["apply", "-f", "-"], manifest),
        )
    }

    /// `kubectl get ARGS -o json`, deserialized; `None` when kubectl fails (not found).
    pub fn get<T: DeserializeOwned>(&self, args: &[&str]) -> Option<T> {
        self.try_get(args).ok()
    }

    /// `kubectl get ARGS -o json`, deserialized, or kubectl's error output.
    fn try_get<T: DeserializeOwned>(&self, args: &[&str]) -> Result<T, String> {
        let mut a = vec!["get"];
        a.extend_from_slice(args);
        a.extend(["-o", "json"]);
        let out = self.kubectl(&a);
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        match serde_json::from_slice(&out.stdout) {
            Ok(v) => Ok(v),
            Err(e) => panic!(
                "kubectl {}: unexpected JSON ({e}): {}",
                a.join(" "),
                String::from_utf8_lossy(&out.stdout)
            ),
        }
    }

    /// The items of `kubectl get KIND ARGS -o json`.
    ///
    /// # Panics
    /// When kubectl fails.
    pub fn list<T: DeserializeOwned>(&self, args: &[&str]) -> Vec<T> {
        #[derive(serde::Deserialize)]
        struct Items<T> {
            items: Vec<T>,
        }
        match self.try_get::<Items<T>>(args) {
            Ok(l) => l.items,
            Err(e) => panic!("kubectl get {} failed: {e}", args.join(" ")),
        }
    }

    /// The pods of namespace `ns` matching the label selector `selector`.
    pub fn pods(&self, ns: &str, selector: &str) -> Vec<Pod> {
        self.list(&["pods", "-n", ns, "-l", selector])
    }

    /// Names of the nodes whose Ready condition is True.
    pub fn ready_nodes(&self) -> Vec<String> {
        self.list::<k8s_openapi::api::core::v1::Node>(&["nodes"])
            .into_iter()
            .filter(|n| node_ready(n) == Some(true))
            .filter_map(|n| n.metadata.name)
            .collect()
    }

    /// A container's log (`kubectl logs`), empty when there is none yet.
    pub fn logs(&self, ns: &str, pod: &str, container: &str) -> String {
        let out = self.kubectl(&["logs", "-n", ns, pod, "-c", container]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `script` (`sh -c`) in a one-off busybox pod named `name` in `ns` (on node `node`
    /// when given), waits until it has ended, deletes it, and returns its phase and log.
    ///
    /// # Panics
    /// When it has not ended within [`WAIT`].
    pub fn run_pod(&self, ns: &str, name: &str, node: Option<&str>, script: &str) -> PodRun {
        let mut pod = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": {"e2e-run": name}},
            "spec": {
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 1,
                "containers": [{
                    "name": "run",
                    "image": rkube_images::BUSYBOX_REF,
                    "command": ["sh", "-c", script],
                }],
            },
        });
        if let Some(node) = node {
            pod["spec"]["nodeName"] = node.into();
        }
        self.apply(&pod.to_string());
        let phase = self.eventually(&format!("pod {ns}/{name} ending"), |c| {
            let p: Pod = c.get(&["pod", "-n", ns, name])?;
            let phase = p.status?.phase?;
            matches!(phase.as_str(), "Succeeded" | "Failed").then_some(phase)
        });
        let log = self.logs(ns, name, "run");
        self.kubectl_ok(&["delete", "pod", "-n", ns, name, "--wait=false"]);
        PodRun { phase, log }
    }

    /// The processes of the first container of pod `ns/pod` (on its node, by cgroup).
    ///
    /// # Panics
    /// When the pod has no running container.
    pub fn container_pids(&self, ns: &str, pod: &str) -> Vec<i32> {
        let p: Pod = self
            .get(&["pod", "-n", ns, pod])
            .unwrap_or_else(|| panic!("no pod {ns}/{pod}"));
        let node = p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_else(|| panic!("pod {ns}/{pod} is not scheduled"));
        let id = p
            .status
            .and_then(|s| s.container_statuses)
            .and_then(|c| c.into_iter().next())
            .and_then(|c| c.container_id)
            .unwrap_or_else(|| panic!("pod {ns}/{pod} has no container yet"));
        self.node(&node).container_pids(&id)
    }

    /// Polls `f` (every 500 ms) until it returns `Some`, for at most [`WAIT`].
    ///
    /// # Panics
    /// After [`WAIT`], saying what was waited for, with the cluster's state.
    pub fn eventually<T>(&self, what: &str, f: impl FnMut(&Cluster) -> Option<T>) -> T {
        self.eventually_within(what, WAIT, f)
    }

    /// [`Cluster::eventually`] with another limit.
    ///
    /// # Panics
    /// After `limit`, saying what was waited for, with the cluster's state.
    pub fn eventually_within<T>(
        &self,
        what: &str,
        limit: Duration,
        mut f: impl FnMut(&Cluster) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(v) = f(self) {
                return v;
            }
            if Instant::now() >= deadline {
                self.state_shown.set(true);
                panic!(
                    "timed out after {limit:?} waiting for {what}\n{}",
                    self.state()
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// `kubectl get nodes,pods -A -o wide` and the events, for failure messages.
    pub fn state(&self) -> String {
        let show = |args: &[&str]| {
            let out = self.kubectl(args);
            format!(
                "$ kubectl {}\n{}{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        };
        format!(
            "{}\n{}",
            show(&["get", "nodes,pods", "-A", "-o", "wide"]),
            show(&["get", "events", "-A", "--sort-by=.lastTimestamp"]),
        )
    }

    /// The last `n` lines of every component's log: server, agents, etcd.
    pub fn log_tails(&self, n: usize) -> String {
        let mut out = self.server.log_tail(n);
        for a in &self.agents {
            out.push_str(&a.log_tail(n));
        }
        if let Some(e) = &self.etcd {
            out.push_str(&e.log_tail(n));
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if !self.state_shown.get() {
                eprintln!("===== cluster state\n{}", self.state());
            }
            eprintln!("===== component logs\n{}", self.log_tails(80));
        }
    }
}

/// What [`Cluster::run_pod`] saw.
#[derive(Clone, Debug)]
pub struct PodRun {
    /// `Succeeded` or `Failed`.
    pub phase: String,
    /// The container's output.
    pub log: String,
}

/// The Ready condition of a node: `Some(true)` when True.
pub fn node_ready(n: &k8s_openapi::api::core::v1::Node) -> Option<bool> {
    n.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status == "True")
}

fn run_with_input(mut cmd: Command, input: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl");
    let mut stdin = child.stdin.take().expect("piped");
    let input = input.to_string();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let out = child.wait_with_output().expect("kubectl's output");
    let _ = writer.join();
    out
}

fn ok(program: &str, args: &[&str], out: Output) -> String {
    assert!(
        out.status.success(),
        "{program} {} failed ({}): {}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
