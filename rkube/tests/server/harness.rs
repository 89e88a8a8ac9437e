//! The real `rkube` binary run as users run it, for the integration tests: in a network
//! namespace of its own (so its API server on :6443, its health ports, the bridge, the
//! nftables table and the pods' network are the test's alone and nothing of the host's
//! network changes), with a temporary data directory and its own pod cgroup root. kubectl runs
//! in that namespace too. The namespace has a veth pair of its own (`eth0` 10.99.0.2/24 with
//! the default route, so the node IP is detected as on a machine). For more nodes,
//! [`Netns::pair`] makes two such machines on one link (the server's and an agent's, each
//! `eth0`), and [`Server::agent`] runs `rkube agent` in the second.
//!
//! The data directory is a tmpfs of its own: the kubelet reports DiskPressure (and the node
//! is tainted) when less than 10% of the data directory's filesystem is free, which a busy
//! build machine's disk often is — the tests must not depend on that.
//!
//! Dropping a [`Server`] kills what is left (the server, containerd and shims by command line,
//! containers by cgroup), unmounts what it mounted under the data directory and removes the
//! cgroups; dropping the [`Netns`] deletes the namespace.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rkube_testkit::host::{self, Tmpfs};

/// How long the tests wait for anything involving real containers.
pub const WAIT: Duration = Duration::from_secs(120);

/// The node IP inside every test namespace.
pub const NODE_IP: &str = "10.99.0.2";

/// The agent's node IP in the second namespace of a [`Netns::pair`].
pub const AGENT_IP: &str = "10.99.0.3";

fn unique() -> String {
    host::unique_tag()
}

fn ip(args: &[&str]) {
    if let Err(e) = host::run("ip", args) {
        panic!("{e}");
    }
}

/// A network namespace standing for the server's machine.
pub struct Netns {
    /// Its name under /run/netns.
    pub name: String,
    /// The namespace, deleted on drop.
    _ns: host::Netns,
}

impl Netns {
    /// An empty namespace with its loopback up.
    fn bare() -> Arc<Netns> {
        let ns = host::Netns::create(format!("rks{}", unique())).unwrap_or_else(|e| panic!("{e}"));
        Arc::new(Netns {
            name: ns.name().to_string(),
            _ns: ns,
        })
    }

    /// `eth0` up with `addr`/24 and the default route.
    fn configure_eth0(&self, addr: &str) {
        let name = &self.name;
        ip(&[
            "-n",
            name,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            "eth0",
        ]);
        ip(&["-n", name, "link", "set", "eth0", "up"]);
        ip(&["-n", name, "route", "add", "default", "dev", "eth0"]);
    }

    /// Creates it: loopback up, a veth pair inside it, `eth0` with [`NODE_IP`] and the default
    /// route.
    pub fn new() -> Arc<Netns> {
        let ns = Netns::bare();
        let name = ns.name.clone();
        ip(&[
            "-n", &name, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1",
        ]);
        ip(&["-n", &name, "link", "set", "eth1", "up"]);
        ns.configure_eth0(NODE_IP);
        ns
    }

    /// Two machines on one link: a veth pair from the first (`eth0` [`NODE_IP`]) to the
    /// second (`eth0` [`AGENT_IP`]), each with its default route on it.
    pub fn pair() -> (Arc<Netns>, Arc<Netns>) {
        let a = Netns::bare();
        let b = Netns::bare();
        ip(&[
            "-n", &a.name, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns",
            &b.name,
        ]);
        a.configure_eth0(NODE_IP);
        b.configure_eth0(AGENT_IP);
        (a, b)
    }

    /// `nsenter` arguments that run a command in the namespace.
    pub fn enter(&self) -> [String; 2] {
        [format!("--net=/run/netns/{}", self.name), "--".into()]
    }
}

/// A one-member etcd inside a namespace (client port 2379 on its loopback), killed on drop.
pub struct Etcd {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Etcd {
    /// Starts etcd in `netns` and waits until it answers.
    pub fn start(netns: &Netns) -> Etcd {
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("etcd.log")).unwrap();
        let child = Command::new("nsenter")
            .args(netns.enter())
            .args(["etcd", "--name", "n1", "--data-dir"])
            .arg(dir.path().join("data"))
            .args([
                "--listen-client-urls=http://127.0.0.1:2379",
                "--advertise-client-urls=http://127.0.0.1:2379",
                "--listen-peer-urls=http://127.0.0.1:2380",
                "--initial-advertise-peer-urls=http://127.0.0.1:2380",
                "--initial-cluster=n1=http://127.0.0.1:2380",
            ])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("etcd (apt package etcd-server, scripts/setup)");
        let etcd = Etcd { child, _dir: dir };
        let deadline = Instant::now() + WAIT;
        while !etcd.ctl(netns, &["endpoint", "health"]).status.success() {
            assert!(Instant::now() < deadline, "etcd did not become healthy");
            std::thread::sleep(Duration::from_millis(100));
        }
        etcd
    }

    /// Runs etcdctl (v3 API) against it.
    pub fn ctl(&self, netns: &Netns, args: &[&str]) -> Output {
        Command::new("nsenter")
            .args(netns.enter())
            .args(["etcdctl", "--endpoints=http://127.0.0.1:2379"])
            .args(args)
            .env("ETCDCTL_API", "3")
            .output()
            .expect("etcdctl")
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `rkube server` (or `rkube agent`) process and its data directory.
pub struct Server {
    /// Holds the data directory, logs and kubectl's home.
    pub dir: tempfile::TempDir,
    /// The namespace it runs in.
    pub netns: Arc<Netns>,
    /// The pods' cgroup root.
    pub cgroup_root: String,
    args: Vec<String>,
    child: Option<Child>,
    starts: u32,
    /// When the current process was spawned.
    pub spawned: Instant,
    /// The data directory's tmpfs.
    data: Option<Tmpfs>,
}

/// The binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_rkube")
}

impl Server {
    /// Starts `rkube server` with a fresh data directory and `extra` flags.
    pub fn start(netns: Arc<Netns>, extra: &[&str]) -> Server {
        Server::start_command(netns, "server", extra)
    }

    /// Starts `rkube agent --server URL --token TOKEN` with a fresh data directory and `extra`
    /// flags.
    pub fn agent(netns: Arc<Netns>, url: &str, token: &str, extra: &[&str]) -> Server {
        let mut args = vec!["--server", url, "--token", token];
        args.extend_from_slice(extra);
        Server::start_command(netns, "agent", &args)
    }

    /// Starts `rkube <command> --data-dir … --node-name … --cgroup-root … <extra>`.
    fn start_command(netns: Arc<Netns>, command: &str, extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let tmpfs = Tmpfs::mount(&data, "1g").unwrap_or_else(|e| panic!("{e}"));
        let tag = unique();
        let cgroup_root = format!("/rkube-server-test-{tag}");
        let mut args: Vec<String> = vec![
            command.into(),
            "--data-dir".into(),
            data.display().to_string(),
            "--node-name".into(),
            format!("node-{tag}"),
            "--cgroup-root".into(),
            cgroup_root.clone(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut s = Server {
            dir,
            netns,
            cgroup_root,
            args,
            child: None,
            starts: 0,
            spawned: Instant::now(),
            data: Some(tmpfs),
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        self.starts += 1;
        let log = std::fs::File::create(self.log_path()).unwrap();
        let child = Command::new("nsenter")
            .args(self.netns.enter())
            .arg(binary())
            .args(&self.args)
            .env("RUST_LOG", "info,hickory_server=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("nsenter (util-linux)");
        self.spawned = Instant::now();
        self.child = Some(child);
    }

    /// The node's name.
    pub fn node_name(&self) -> &str {
        &self.args[4]
    }

    /// The data directory.
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join(format!("server-{}.log", self.starts))
    }

    /// The current process's output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Waits for a line of the current process's output containing `needle`; returns it.
    pub fn wait_log(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let log = self.log();
            if let Some(line) = log.lines().find(|l| l.contains(needle)) {
                return line.to_string();
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!(
                    "rkube {} exited ({status}) before logging {needle:?}:\n{log}",
                    self.args[0]
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the output of rkube {}:\n{log}",
                self.args[0]
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends SIGTERM and waits for the exit (panics after [`WAIT`]).
    pub fn terminate(&mut self) -> ExitStatus {
        let child = self.child.as_ref().expect("running");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        self.wait_exit()
    }

    /// Waits for the process to exit by itself (panics after [`WAIT`]).
    pub fn wait_exit(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                panic!("rkube {} did not stop:\n{}", self.args[0], self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the server again on the same data directory.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "still running");
        self.spawn();
    }

    /// The kubectl command for the admin kubeconfig (or another one), in the namespace.
    pub fn kubectl_command(&self, kubeconfig: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.args(self.netns.enter())
            .arg("kubectl")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(args)
            .env_remove("KUBECONFIG")
            .env("HOME", self.dir.path());
        cmd
    }

    /// Runs kubectl with `kubeconfig`.
    pub fn kubectl_as(&self, kubeconfig: &Path, args: &[&str]) -> Output {
        self.kubectl_command(kubeconfig, args)
            .output()
            .expect("kubectl (/usr/bin/kubectl)")
    }

    /// Runs kubectl as admin.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_as(&self.data().join("admin.kubeconfig"), args)
    }

    /// Runs kubectl as admin; panics unless it succeeds; returns stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Polls `f` until it returns `Some` (panics after [`WAIT`] with the server's output).
    pub fn eventually<T>(&self, what: &str, mut f: impl FnMut(&Server) -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(v) = f(self) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "{what} did not happen in time; server output:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Pids of processes whose command line mentions the data directory (the server,
    /// containerd, shims).
    pub fn processes(&self) -> Vec<(i32, String)> {
        host::processes_mentioning(&self.data().display().to_string())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // The server, containerd and shims (by command line), then containers (by cgroup),
        // then the mounts under the data directory (pod volumes, sandbox netns files) and its
        // tmpfs, then the cgroups.
        host::kill_mentioning(&self.data().display().to_string());
        host::kill_cgroup(&self.cgroup_root);
        self.data.take();
        host::remove_cgroups(&self.cgroup_root);
    }
}
