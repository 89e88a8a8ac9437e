//! Managed containerd (`--managed-containerd`, as k3s does it): the kubelet writes a
//! containerd config with its own root, state, socket and runc root under the data dir
//! (`restrict_oom_score_adj = true`, CNI plugins from `/usr/lib/cni`, the configured sandbox
//! image), starts containerd as a child, restarts it when it dies and stops it on exit. It also
//! writes the CNI conflist (bridge + host-local + portmap; containerd adds loopback itself)
//! from the Node's `spec.podCIDR`.
//!
//! A containerd left running by a kubelet that was killed is recognised by its pid file and
//! command line and stopped before a new one starts (containers keep running: their shims are
//! independent of containerd, and the new kubelet adopts them).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::ManagedContainerd;
use crate::cri::Cri;
use crate::metrics::Metrics;

/// Why the managed containerd could not be run.
#[derive(Debug, thiserror::Error)]
pub enum ContainerdError {
    /// A file could not be written.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
    /// containerd could not be started at all.
    #[error("cannot start {binary}: {source} (install containerd and runc with scripts/setup)")]
    Spawn {
        /// The binary.
        binary: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// containerd started but did not answer in time.
    #[error("containerd did not become ready within {0:?}; see {1}")]
    NotReady(Duration, PathBuf),
    /// The pod CIDR is not a CIDR.
    #[error("invalid pod CIDR {0:?}")]
    Cidr(String),
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ContainerdError {
    let context = context.into();
    move |source| ContainerdError::Io { context, source }
}

/// Where the managed containerd keeps its files.
#[derive(Clone, Debug)]
pub struct Paths {
    /// `DATA/containerd`.
    pub dir: PathBuf,
    /// The config file.
    pub config: PathBuf,
    /// The gRPC socket.
    pub socket: PathBuf,
    /// containerd's output.
    pub log: PathBuf,
    /// The pid file.
    pub pid: PathBuf,
    /// The CNI config directory.
    pub cni_conf_dir: PathBuf,
    /// host-local IPAM state.
    pub cni_ipam_dir: PathBuf,
}

impl Paths {
    /// The paths under a data dir.
    pub fn new(data_dir: &Path) -> Self {
        let dir = data_dir.join("containerd");
        Paths {
            config: dir.join("config.toml"),
            socket: dir.join("containerd.sock"),
            log: dir.join("containerd.log"),
            pid: dir.join("containerd.pid"),
            cni_conf_dir: data_dir.join("cni").join("net.d"),
            cni_ipam_dir: data_dir.join("cni").join("networks"),
            dir,
        }
    }
}

/// The containerd config for these paths.
pub fn config_toml(paths: &Paths, cfg: &ManagedContainerd) -> String {
    let d = paths.dir.display();
    let q = |p: &Path| toml_string(&p.display().to_string());
    format!(
        r#"# Written by rkubelet (--managed-containerd); rewritten at every start.
version = 2
root = {root}
state = {state}
oom_score = 0

[grpc]
  address = {socket}

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = {opt}
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = {sandbox}
    restrict_oom_score_adj = true
    netns_mounts_under_state_dir = true
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = {cni_bin}
      conf_dir = {cni_conf}
      max_conf_num = 1
    [plugins."io.containerd.grpc.v1.cri".containerd]
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          Root = {runc_root}
          SystemdCgroup = false
"#,
        root = toml_string(&format!("{d}/root")),
        state = toml_string(&format!("{d}/state")),
        socket = q(&paths.socket),
        opt = toml_string(&format!("{d}/opt")),
        sandbox = toml_string(&cfg.sandbox_image),
        cni_bin = q(&cfg.cni_bin_dir),
        cni_conf = q(&paths.cni_conf_dir),
        runc_root = toml_string(&format!("{d}/runc")),
    )
}

fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The CNI conflist for a pod CIDR: a bridge with host-local IPAM (state under the data dir)
/// and portmap for hostPorts.
pub fn cni_conflist(pod_cidr: &str, ipam_dir: &Path) -> Result<String, ContainerdError> {
    let net: ipnet::IpNet = pod_cidr
        .parse()
        .map_err(|_| ContainerdError::Cidr(pod_cidr.into()))?;
    let default_route = if net.addr().is_ipv4() {
        "0.0.0.0/0"
    } else {
        "::/0"
    };
    let conf = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "rkube",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "rkube0",
                "isGateway": true,
                "ipMasq": true,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "dataDir": ipam_dir.display().to_string(),
                    "ranges": [[{ "subnet": net.trunc().to_string() }]],
                    "routes": [{ "dst": default_route }],
                },
            },
            { "type": "portmap", "capabilities": { "portMappings": true } },
        ],
    });
    Ok(serde_json::to_string_pretty(&conf).expect("JSON"))
}

/// A running managed containerd.
pub struct ManagedRuntime {
    /// Its paths.
    pub paths: Paths,
    cancel: CancellationToken,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Counts the times containerd was (re)started.
    pub starts: watch::Receiver<u64>,
}

/// Whether process `pid` runs with `needle` on its command line.
fn process_runs(pid: i32, needle: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains(needle))
        .unwrap_or(false)
}

fn signal(pid: i32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
}

/// Stops a containerd a previous kubelet left running (found by pid file and config path).
async fn stop_leftover(paths: &Paths) {
    let Ok(text) = std::fs::read_to_string(&paths.pid) else {
        return;
    };
    let Ok(pid) = text.trim().parse::<i32>() else {
        return;
    };
    let needle = paths.config.display().to_string();
    if !process_runs(pid, &needle) {
        return;
    }
    tracing::warn!(
        pid,
        "stopping the containerd a previous kubelet left running"
    );
    signal(pid, nix::sys::signal::Signal::SIGTERM);
    for _ in 0..100 {
        if !process_runs(pid, &needle) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    signal(pid, nix::sys::signal::Signal::SIGKILL);
    for _ in 0..50 {
        if !process_runs(pid, &needle) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn spawn(paths: &Paths, cfg: &ManagedContainerd) -> Result<tokio::process::Child, ContainerdError> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&paths.log)
        .map_err(io(format!("opening {}", paths.log.display())))?;
    let log2 = log
        .try_clone()
        .map_err(io(format!("opening {}", paths.log.display())))?;
    let mut command = match cfg.wrapper.split_first() {
        Some((program, args)) => {
            let mut c = tokio::process::Command::new(program);
            c.args(args).arg(&cfg.containerd);
            c
        }
        None => tokio::process::Command::new(&cfg.containerd),
    };
    let child = command
        .arg("--config")
        .arg(&paths.config)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log2))
        .kill_on_drop(false)
        .spawn()
        .map_err(|source| ContainerdError::Spawn {
            binary: cfg
                .wrapper
                .first()
                .map(PathBuf::from)
                .unwrap_or_else(|| cfg.containerd.clone()),
            source,
        })?;
    if let Some(pid) = child.id() {
        let _ = std::fs::write(&paths.pid, pid.to_string());
    }
    Ok(child)
}

/// Stops a child: SIGTERM, then SIGKILL after 10 s.
async fn stop_child(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id() {
        signal(pid as i32, nix::sys::signal::Signal::SIGTERM);
        if tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .is_ok()
        {
            return;
        }
    }
    let _ = child.kill().await;
}

/// Waits until containerd answers `Version` on its socket.
async fn wait_ready(paths: &Paths, limit: Duration) -> Result<(), ContainerdError> {
    let cri = Cri::connect_path(&paths.socket, Arc::new(Metrics::default()));
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if paths.socket.exists() && cri.version().await.is_ok() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ContainerdError::NotReady(limit, paths.log.clone()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl ManagedRuntime {
    /// Writes the config, starts containerd, waits until it answers and keeps it running
    /// (restarting it with back-off when it exits) until `stop`.
    pub async fn start(data_dir: &Path, cfg: &ManagedContainerd) -> Result<Self, ContainerdError> {
        let paths = Paths::new(data_dir);
        for d in [&paths.dir, &paths.cni_conf_dir, &paths.cni_ipam_dir] {
            std::fs::create_dir_all(d).map_err(io(format!("creating {}", d.display())))?;
        }
        std::fs::write(&paths.config, config_toml(&paths, cfg))
            .map_err(io(format!("writing {}", paths.config.display())))?;
        stop_leftover(&paths).await;
        let mut child = spawn(&paths, cfg)?;
        let started = tokio::time::Instant::now();
        if let Err(e) = wait_ready(&paths, Duration::from_secs(30)).await {
            stop_child(&mut child).await;
            return Err(e);
        }
        tracing::info!(
            socket = %paths.socket.display(),
            took = ?started.elapsed(),
            "managed containerd is ready"
        );
        let cancel = CancellationToken::new();
        let (starts_tx, starts) = watch::channel(1u64);
        let task = {
            let (paths, cfg, cancel) = (paths.clone(), cfg.clone(), cancel.clone());
            tokio::spawn(async move { supervise(child, paths, cfg, cancel, starts_tx).await })
        };
        Ok(ManagedRuntime {
            paths,
            cancel,
            task: std::sync::Mutex::new(Some(task)),
            starts,
        })
    }

    /// The CRI endpoint.
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.paths.socket.display())
    }

    /// Writes the CNI conflist for the pod CIDR; `true` if it changed.
    pub fn write_cni_config(&self, pod_cidr: &str) -> Result<bool, ContainerdError> {
        let text = cni_conflist(pod_cidr, &self.paths.cni_ipam_dir)?;
        let path = self.paths.cni_conf_dir.join("10-rkube.conflist");
        if std::fs::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
            return Ok(false);
        }
        let tmp = self.paths.cni_conf_dir.join(".10-rkube.conflist.tmp");
        std::fs::write(&tmp, &text).map_err(io(format!("writing {}", tmp.display())))?;
        std::fs::rename(&tmp, &path).map_err(io(format!("writing {}", path.display())))?;
        tracing::info!(pod_cidr, path = %path.display(), "wrote the CNI config");
        Ok(true)
    }

    /// Stops containerd (SIGTERM, then SIGKILL) and waits for it.
    pub async fn stop(&self) {
        self.cancel.cancel();
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = task {
            let _ = t.await;
        }
    }

    /// The token that ends the supervision (and stops containerd) when cancelled.
    pub(crate) fn supervision(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// The pid of the running containerd (tests kill it to check that the kubelet copes).
    pub fn pid(&self) -> Option<i32> {
        std::fs::read_to_string(&self.paths.pid)
            .ok()
            .and_then(|p| p.trim().parse().ok())
    }
}

impl Drop for ManagedRuntime {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn supervise(
    mut child: tokio::process::Child,
    paths: Paths,
    cfg: ManagedContainerd,
    cancel: CancellationToken,
    starts: watch::Sender<u64>,
) {
    let mut backoff = Duration::from_millis(500);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => {
                stop_child(&mut child).await;
                let _ = std::fs::remove_file(&paths.pid);
                return;
            }
            status = child.wait() => {
                tracing::error!(?status, log = %paths.log.display(), "managed containerd exited; restarting it");
            }
        }
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
            match spawn(&paths, &cfg) {
                Ok(c) => {
                    child = c;
                    if wait_ready(&paths, Duration::from_secs(30)).await.is_ok() {
                        backoff = Duration::from_millis(500);
                        starts.send_modify(|n| *n += 1);
                        tracing::info!("managed containerd restarted");
                    }
                    break;
                }
                Err(e) => tracing::error!(error = %e, "restarting containerd failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_what_the_platform_needs() {
        let paths = Paths::new(Path::new("/data/n1"));
        let text = config_toml(&paths, &ManagedContainerd::default());
        assert!(text.contains("restrict_oom_score_adj = true"));
        assert!(text.contains(r#"root = "/data/n1/containerd/root""#));
        assert!(text.contains(r#"address = "/data/n1/containerd/containerd.sock""#));
        assert!(text.contains(r#"bin_dir = "/usr/lib/cni""#));
        assert!(text.contains(r#"conf_dir = "/data/n1/cni/net.d""#));
        assert!(text.contains(r#"sandbox_image = "registry.k8s.io/pause:3.9""#));
        assert!(text.contains(r#"Root = "/data/n1/containerd/runc""#));
        assert_eq!(toml_string(r#"a"b\c"#), r#""a\"b\\c""#);
    }

    #[test]
    fn conflist_from_pod_cidr() {
        let text = cni_conflist("10.244.3.0/24", Path::new("/d/ipam")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let bridge = &v["plugins"][0];
        assert_eq!(bridge["type"], "bridge");
        assert_eq!(bridge["ipam"]["type"], "host-local");
        assert_eq!(bridge["ipam"]["ranges"][0][0]["subnet"], "10.244.3.0/24");
        assert_eq!(bridge["ipam"]["dataDir"], "/d/ipam");
        assert_eq!(v["plugins"][1]["type"], "portmap");
        assert_eq!(v["plugins"][1]["capabilities"]["portMappings"], true);
        assert!(cni_conflist("nonsense", Path::new("/x")).is_err());
        // A host address inside the CIDR is normalised to the network.
        let text = cni_conflist("10.244.3.7/24", Path::new("/d")).unwrap();
        assert!(text.contains("10.244.3.0/24"));
    }
}
