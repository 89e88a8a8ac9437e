//! One machine of a test cluster: a network namespace (its `eth0` on the cluster's bridge with
//! the node's IP and the default route), a mount namespace of its own, a data directory on a
//! tmpfs, and the `rkube server` or `rkube agent` process, which can be stopped, killed and
//! started again on the same data.
//!
//! The mount namespace is what makes the machines separate for containerd: containerd 1.6 keeps
//! its shims' sockets and runc's state under `/run/containerd` whatever its root and state
//! directories are, and libcni its cache under `/var/lib/cni`; the pods' network namespace files
//! go to `/run/netns`. Each node gets private tmpfs copies of these three directories, held by
//! a small holder process (`sleep`, renamed `rkube-e2e-holder NODE-DIR`) that every process of
//! the node joins (`nsenter --mount=/proc/HOLDER/ns/mnt`), so restarting the node's rkube keeps
//! them. Mounts the kubelet makes (volumes, sandbox namespaces) stay in that namespace and go
//! with it.
//!
//! Dropping a [`Node`] kills everything of it — rkube, containerd and shims by their command
//! lines (which name the data directory), containers by the node's cgroup root, the holder —
//! then removes the cgroups, the data tmpfs and the network namespace.

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rkube_testkit::host::{self, Netns, Tmpfs};

use super::WAIT;

/// What a node runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `rkube server` (the control plane, and a local agent unless disabled).
    Server,
    /// `rkube agent`.
    Agent,
}

impl Role {
    fn subcommand(self) -> &'static str {
        match self {
            Role::Server => "server",
            Role::Agent => "agent",
        }
    }
}

/// The mount namespace's holder: private tmpfs copies of the directories containerd, libcni
/// and the sandboxes' network namespaces use, then `sleep` under a name that contains the
/// node's directory (`$0`), so a test runner killing what mentions its temp dir ends it too.
const HOLDER: &str = "set -e
for d in /run/containerd /var/lib/cni /run/netns; do
  mkdir -p \"$d\"
  mount -t tmpfs -o mode=0755,size=64m rkube-e2e \"$d\"
done
echo ready
exec -a \"rkube-e2e-holder $0\" sleep infinity";

/// One machine of the cluster.
pub struct Node {
    /// The node's name (its Node object's).
    pub name: String,
    /// What it runs.
    pub role: Role,
    /// Its IP on the cluster's bridge (its InternalIP).
    pub ip: Ipv4Addr,
    /// Its network namespace.
    pub netns: Netns,
    /// The pods' cgroup root (`--cgroup-root`), unique on the host.
    pub cgroup_root: String,
    /// Its directory: logs, and what tests share with it through hostPath volumes.
    pub dir: PathBuf,
    // Dropped after the processes are killed (field order).
    data: Option<Tmpfs>,
    holder: Option<Child>,
    process: Option<Child>,
    args: Vec<String>,
    starts: u32,
    spawned: Instant,
}

impl Node {
    /// Makes the machine: the namespace with `eth0` (the peer of `link` in `hub`, attached
    /// to `bridge`), the data tmpfs, and the mount namespace. Nothing runs yet.
    ///
    /// # Panics
    /// When a step fails; what was made so far is removed.
    pub(crate) fn new(
        name: &str,
        role: Role,
        ip: Ipv4Addr,
        tag: &str,
        cluster_dir: &Path,
        hub: &Netns,
        bridge: &str,
    ) -> Node {
        let netns = Netns::create(format!("rke{tag}-{name}"))
            .unwrap_or_else(|e| panic!("node {name}: {e}"));
        let dir = cluster_dir.join(name);
        let mut node = Node {
            name: name.to_string(),
            role,
            ip,
            netns,
            cgroup_root: format!("/rkube-e2e-{tag}-{name}"),
            dir: dir.clone(),
            data: None,
            holder: None,
            process: None,
            args: Vec::new(),
            starts: 0,
            spawned: Instant::now(),
        };
        let link = node.link();
        let ns = node.netns.name().to_string();
        let steps: [&[&str]; 2] = [
            &[
                "link", "add", &link, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ],
            &["link", "set", &link, "master", bridge, "up"],
        ];
        for args in steps {
            hub.ip(args).unwrap_or_else(|e| panic!("node {name}: {e}"));
        }
        let cidr = format!("{ip}/24");
        let steps: [&[&str]; 3] = [
            &["addr", "add", &cidr, "dev", "eth0"],
            &["link", "set", "eth0", "up"],
            &["route", "add", "default", "dev", "eth0"],
        ];
        for args in steps {
            node.netns
                .ip(args)
                .unwrap_or_else(|e| panic!("node {name}: {e}"));
        }
        node.data = Some(
            Tmpfs::mount(dir.join("data"), "1g").unwrap_or_else(|e| panic!("node {name}: {e}")),
        );
        node.hold_mount_namespace();
        node
    }

    /// The name of the node's veth end in the hub namespace.
    pub(crate) fn link(&self) -> String {
        format!("v-{}", self.name)
    }

    fn hold_mount_namespace(&mut self) {
        let log = std::fs::File::create(self.dir.join("holder.log")).expect("holder log file");
        let mut child = self
            .netns
            .command("unshare")
            .args(["--mount", "--propagation", "private", "--", "bash", "-c"])
            .arg(HOLDER)
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("nsenter and unshare (util-linux), bash");
        let stdout = child.stdout.take().expect("piped");
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let ok = line.trim() == "ready";
        self.holder = Some(child);
        assert!(
            ok,
            "node {}: making its mount namespace failed: {}",
            self.name,
            std::fs::read_to_string(self.dir.join("holder.log")).unwrap_or_default()
        );
    }

    /// The data directory (`--data-dir`).
    pub fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// A command run on this machine: in its network and mount namespaces.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let holder = self.holder.as_ref().expect("the mount namespace is held");
        let mut cmd = Command::new("nsenter");
        cmd.arg(self.netns.nsenter_arg())
            .arg(format!("--mount=/proc/{}/ns/mnt", holder.id()))
            .arg("--")
            .arg(program);
        cmd
    }

    /// Starts `rkube <role> args…` (the first time; [`Node::restart`] repeats it).
    pub(crate) fn start(&mut self, rkube: &Path, args: Vec<String>) {
        let mut full = vec![self.role.subcommand().to_string()];
        full.extend(args);
        self.args = full;
        self.spawn(rkube);
    }

    fn spawn(&mut self, rkube: &Path) {
        assert!(self.process.is_none(), "node {} is running", self.name);
        self.starts += 1;
        let log = std::fs::File::create(self.log_path()).expect("node log file");
        let child = self
            .command(rkube)
            .args(&self.args)
            .env("RUST_LOG", "info,hickory_server=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("nsenter (util-linux)");
        self.spawned = Instant::now();
        self.process = Some(child);
    }

    /// Starts the node's rkube again with the same flags (after [`Node::stop`] or
    /// [`Node::kill`]).
    pub fn restart(&mut self, rkube: &Path) {
        self.spawn(rkube);
    }

    /// When the current process was started.
    pub fn spawned(&self) -> Instant {
        self.spawned
    }

    /// Whether the node's rkube runs.
    pub fn running(&mut self) -> bool {
        match self.process.as_mut() {
            Some(c) => c.try_wait().ok().flatten().is_none(),
            None => false,
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir
            .join(format!("{}-{}.log", self.role.subcommand(), self.starts))
    }

    /// The current process's output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The last `n` lines of every start's output, each start under a header.
    pub fn log_tail(&self, n: usize) -> String {
        let mut out = String::new();
        for start in 1..=self.starts {
            let path = self
                .dir
                .join(format!("{}-{start}.log", self.role.subcommand()));
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let skip = lines.len().saturating_sub(n);
            out.push_str(&format!(
                "----- {} ({}, start {start}): last {} of {} lines of {}\n",
                self.name,
                self.role.subcommand(),
                lines.len() - skip,
                lines.len(),
                path.display()
            ));
            for l in &lines[skip..] {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }

    /// Waits for a line of the current process's output containing `needle`; returns it.
    ///
    /// # Panics
    /// When the process exits first or after [`WAIT`].
    pub fn wait_log(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let log = self.log();
            if let Some(line) = log.lines().find(|l| l.contains(needle)) {
                return line.to_string();
            }
            if let Some(status) = self.process.as_mut().and_then(|c| c.try_wait().ok()?) {
                panic!(
                    "rkube on node {} exited ({status}) before logging {needle:?}",
                    self.name
                );
            }
            assert!(
                Instant::now() < deadline,
                "rkube on node {} did not log {needle:?} within {WAIT:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, then waits for the exit.
    ///
    /// # Panics
    /// When it has not exited after [`WAIT`] (it is then killed).
    pub fn stop(&mut self) -> ExitStatus {
        let child = self.process.as_ref().expect("running");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let mut child = self.process.take().expect("running");
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = child.try_wait().expect("waiting for rkube") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("rkube on node {} did not stop within {WAIT:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL to the node's rkube only, as a crash: its containerd, shims and containers
    /// keep running.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.process.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Processes of this node found by command line (rkube, containerd, shims).
    pub fn processes(&self) -> Vec<(i32, String)> {
        host::processes_mentioning(&self.data().display().to_string())
    }

    /// The processes of a container (`containerd://ID` or `ID`): those of its cgroup under
    /// the node's cgroup root.
    pub fn container_pids(&self, container_id: &str) -> Vec<i32> {
        let id = container_id
            .rsplit_once("://")
            .map_or(container_id, |(_, id)| id);
        let rel = self.cgroup_root.trim_start_matches('/');
        let mut dirs = Vec::new();
        for h in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            find_dir(&h.path().join(rel), id, &mut dirs);
        }
        let mut pids: Vec<i32> = dirs
            .iter()
            .filter_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
            .flat_map(|t| {
                t.lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .collect::<Vec<i32>>()
            })
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }
}

/// Directories named `name` in the tree `dir`.
fn find_dir(dir: &Path, name: &str, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            if e.file_name().to_string_lossy() == name {
                out.push(e.path());
            } else {
                find_dir(&e.path(), name, out);
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.process.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // rkube, containerd and shims (their command lines name the data directory), the
        // holder (its name names the node's directory), then containers by cgroup.
        host::kill_mentioning(&self.dir.display().to_string());
        host::kill_cgroup(&self.cgroup_root);
        if let Some(mut h) = self.holder.take() {
            let _ = h.kill();
            let _ = h.wait();
        }
        host::remove_cgroups(&self.cgroup_root);
        // The data tmpfs, then (field order) the network namespace.
        self.data.take();
    }
}
