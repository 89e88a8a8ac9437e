//! What tests make on this machine beyond their temporary directories — network namespaces,
//! tmpfs mounts, processes, cgroups — and their teardown, shared by the harnesses that run
//! real nodes (`node`, the `rkube` binary's tests, the whole-cluster e2e suite).
//!
//! Everything is named after [`unique_tag`] so that test processes running at once never
//! share a name, and removed by what identifies it: processes by a path their command line
//! contains (a data directory under the test's temp dir), containers by their cgroup root,
//! mounts by the directory they are under. Teardown functions ignore what is already gone, so
//! they can run from `Drop` — also while a failed test unwinds.
//!
//! Needs root and iproute2 (`ip`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Why something could not be made on the host.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// A command failed or could not run.
    #[error("{command}: {message}")]
    Command {
        /// The command line.
        command: String,
        /// Its error output, or why it did not run.
        message: String,
    },
    /// A mount failed.
    #[error("mounting a tmpfs on {path}: {source}")]
    Mount {
        /// The mount point.
        path: PathBuf,
        /// The cause.
        source: nix::Error,
    },
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A short tag unique on this machine while this process runs: the process id and a counter
/// (`4711x3`), for names of namespaces, interfaces (at most 15 bytes) and cgroups.
pub fn unique_tag() -> String {
    format!(
        "{}x{}",
        std::process::id() % 100_000,
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// Runs `cmd args…`; its stdout, or an error with its stderr.
pub fn run(cmd: &str, args: &[&str]) -> Result<String, HostError> {
    let command = || format!("{cmd} {}", args.join(" "));
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| HostError::Command {
            command: command(),
            message: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(HostError::Command {
            command: command(),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A network namespace (`/run/netns/NAME`), deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates the namespace with its loopback up.
    pub fn create(name: impl Into<String>) -> Result<Netns, HostError> {
        let name = name.into();
        run("ip", &["netns", "add", &name])?;
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its file, `/run/netns/NAME`.
    pub fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    /// Runs `ip -n NAME args…`.
    pub fn ip(&self, args: &[&str]) -> Result<String, HostError> {
        let mut a = vec!["-n", &self.name];
        a.extend_from_slice(args);
        run("ip", &a)
    }

    /// The `nsenter` option that enters it (`--net=/run/netns/NAME`).
    pub fn nsenter_arg(&self) -> String {
        format!("--net={}", self.path().display())
    }

    /// A command run in the namespace: `nsenter --net=… -- program`.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(self.nsenter_arg()).arg("--").arg(program);
        cmd
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.name]);
    }
}

/// A tmpfs mounted on a directory (created if missing, mode 0700); on drop, it and every mount
/// under it are detached.
#[derive(Debug)]
pub struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`512m`, `1g`) on `path`.
    ///
    /// A data directory on a tmpfs of its own keeps the kubelet's disk-pressure threshold (10%
    /// of its filesystem free) away from a nearly full build disk.
    pub fn mount(path: impl Into<PathBuf>, size: &str) -> Result<Tmpfs, HostError> {
        let path = path.into();
        std::fs::create_dir_all(&path).map_err(|source| HostError::Io {
            context: format!("creating {}", path.display()),
            source,
        })?;
        nix::mount::mount(
            Some("tmpfs"),
            &path,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some(format!("size={size},mode=0700").as_str()),
        )
        .map_err(|source| HostError::Mount {
            path: path.clone(),
            source,
        })?;
        Ok(Tmpfs { path })
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        unmount_under(&self.path);
    }
}

/// Processes whose command line contains `needle` (pid and command line, arguments joined
/// by spaces), this process excluded.
pub fn processes_mentioning(needle: &str) -> Vec<(i32, String)> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if text.contains(needle) {
            out.push((pid, text.trim_end().to_string()));
        }
    }
    out
}

/// Sends SIGKILL to `pid` (gone already: nothing happens).
pub fn kill(pid: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// Kills every process whose command line contains `needle`.
pub fn kill_mentioning(needle: &str) {
    for (pid, _) in processes_mentioning(needle) {
        kill(pid);
    }
}

fn tree_pids(dir: &Path, out: &mut Vec<i32>) {
    if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        out.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            tree_pids(&e.path(), out);
        }
    }
}

/// Every process in the cgroup tree `root` (`/kubepods-test`), in every hierarchy (cgroup v1
/// has one per controller, v2 one), sorted, without duplicates.
pub fn cgroup_pids(root: &str) -> Vec<i32> {
    let rel = root.trim_start_matches('/');
    let base = Path::new("/sys/fs/cgroup");
    let mut pids = Vec::new();
    if !rel.is_empty() {
        tree_pids(&base.join(rel), &mut pids);
        for h in std::fs::read_dir(base).into_iter().flatten().flatten() {
            tree_pids(&h.path().join(rel), &mut pids);
        }
    }
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// Kills every process of the cgroup tree `root` (containers a test left behind).
pub fn kill_cgroup(root: &str) {
    for pid in cgroup_pids(root) {
        kill(pid);
    }
}

/// Removes the cgroup tree `root` in every hierarchy, waiting up to 5 s for killed processes
/// to leave it.
pub fn remove_cgroups(root: &str) {
    let rel = root.trim_start_matches('/');
    if rel.is_empty() {
        return;
    }
    for _ in 0..50 {
        rkube_kubelet::cgroups::remove_root(root);
        let gone = std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
            .all(|h| !h.path().join(rel).exists());
        if gone {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Detaches every mount of this mount namespace at or under `path`, deepest first.
pub fn unmount_under(path: &Path) {
    let prefix = path.display().to_string();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| {
            m.strip_prefix(prefix.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_unique_and_short() {
        let a = unique_tag();
        let b = unique_tag();
        assert_ne!(a, b);
        assert!(a.len() <= 10, "{a}");
    }

    #[test]
    fn commands_report_their_errors() {
        assert_eq!(run("echo", &["hi"]).unwrap(), "hi\n");
        let e = run("sh", &["-c", "echo oops >&2; exit 3"])
            .unwrap_err()
            .to_string();
        assert_eq!(e, "sh -c echo oops >&2; exit 3: oops");
        let e = run("/nonexistent/tool", &[]).unwrap_err().to_string();
        assert!(e.starts_with("/nonexistent/tool : "), "{e}");
    }

    #[test]
    fn processes_are_found_by_command_line() {
        let marker = format!("rkube-testkit-marker-{}", unique_tag());
        // A shell waiting in a builtin (`read` on a pipe kept open): it forks no children,
        // which would carry its command line until they exec.
        let mut child = Command::new("sh")
            .args(["-c", "read line", &marker])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Until the child has exec'd, its command line is still this test's.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut found = processes_mentioning(&marker);
        while found.is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
            found = processes_mentioning(&marker);
        }
        assert_eq!(
            found.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
            [child.id() as i32]
        );
        kill_mentioning(&marker);
        assert!(!child.wait().unwrap().success());
        assert!(processes_mentioning(&marker).is_empty());
    }
}
