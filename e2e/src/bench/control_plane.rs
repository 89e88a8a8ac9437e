//! A control plane of real processes, for the workloads that measure its memory and CPU:
//! either each component as its own binary — `rkube-apiserver`, `rkube-scheduler`,
//! `rkube-controller-manager`, `rkube-dns` — with the identity the real deployment gives it,
//! or the all-in-one `rkube server --disable agent`. Hollow nodes run in the benchmark's
//! process ([`super::hollow_cluster::HollowNodes`]), so they do not count. And what `/proc`
//! says of a process: RSS, peak RSS, CPU time.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use anyhow::Context as _;

use super::hollow_cluster::CLUSTER_CIDR;
use super::server::{Server, free_port, start_process, stop, stop_child};

/// How the control plane runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setup {
    /// One process per component.
    Separate,
    /// `rkube server --disable agent`.
    AllInOne,
}

impl Setup {
    /// Its name in reports.
    pub fn label(self) -> &'static str {
        match self {
            Setup::Separate => "separate processes",
            Setup::AllInOne => "all-in-one",
        }
    }
}

/// Where the component binaries are: `dir`, or (None) the target directory of this
/// executable's profile, built there when missing.
fn binary(dir: Option<&Path>, name: &str, package: &str) -> PathBuf {
    match dir {
        Some(d) => d.join(name),
        None => crate::cluster::workspace_binary(name, package),
    }
}

/// A running control plane.
pub(crate) struct ControlPlane {
    /// The API server (or the all-in-one).
    pub(crate) server: Server,
    /// The other components: name and process.
    others: Children,
    setup: Setup,
}

impl ControlPlane {
    /// Starts it (embedded store) and waits until the API server is ready.
    pub(crate) async fn start(setup: Setup, bin_dir: Option<&Path>) -> anyhow::Result<Self> {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        match setup {
            Setup::AllInOne => {
                let rkube = binary(bin_dir, "rkube", "rkube");
                let server = start_process(&rkube, |dir, port| {
                    let mut a = s(&[
                        "server",
                        "--disable",
                        "agent",
                        "--bind-address",
                        "127.0.0.1",
                    ]);
                    a.extend([
                        "--https-listen-port".into(),
                        port.to_string(),
                        "--data-dir".into(),
                        dir.display().to_string(),
                        "--cluster-cidr".into(),
                        CLUSTER_CIDR.into(),
                        "--node-name".into(),
                        "bench-server".into(),
                    ]);
                    a
                })
                .await?;
                Ok(ControlPlane {
                    server,
                    others: Children::default(),
                    setup,
                })
            }
            Setup::Separate => {
                let apiserver = binary(bin_dir, "rkube-apiserver", "rkube-apiserver");
                let server = start_process(&apiserver, |dir, port| {
                    vec![
                        "--data-dir".into(),
                        dir.display().to_string(),
                        "--listen".into(),
                        format!("127.0.0.1:{port}"),
                    ]
                })
                .await?;
                let mut cp = ControlPlane {
                    server,
                    others: Children::default(),
                    setup,
                };
                if let Err(e) = cp.start_components(bin_dir) {
                    cp.stop().await;
                    return Err(e);
                }
                Ok(cp)
            }
        }
    }

    fn start_components(&mut self, bin_dir: Option<&Path>) -> anyhow::Result<()> {
        let loopback = |p: u16| format!("127.0.0.1:{p}");
        let kc = |user: &str, groups: &[&str]| -> anyhow::Result<String> {
            Ok(self
                .server
                .kubeconfig_for_user(user, groups)?
                .display()
                .to_string())
        };
        let scheduler = vec![
            "--kubeconfig".into(),
            kc("system:kube-scheduler", &[])?,
            "--bind-address".into(),
            loopback(free_port()?),
        ];
        let manager = vec![
            "--kubeconfig".into(),
            kc("system:kube-controller-manager", &[])?,
            "--use-service-account-credentials".into(),
            "--cluster-cidr".into(),
            CLUSTER_CIDR.into(),
            "--listen".into(),
            loopback(free_port()?),
        ];
        let dns = vec![
            "--kubeconfig".into(),
            kc(
                "system:serviceaccount:kube-system:kube-dns",
                &[
                    "system:serviceaccounts",
                    "system:serviceaccounts:kube-system",
                ],
            )?,
            "--listen".into(),
            loopback(free_port()?),
            "--metrics-listen".into(),
            loopback(free_port()?),
            "--upstream".into(),
            "127.0.0.1:53".into(),
        ];
        for (name, package, args) in [
            ("scheduler", "rkube-scheduler", scheduler),
            ("controller-manager", "rkube-controller-manager", manager),
            ("dns", "rkube-dns", dns),
        ] {
            let bin = binary(bin_dir, &format!("rkube-{name}"), package);
            let log = std::fs::File::create(self.server.dir().join(format!("{name}.log")))?;
            let child = Command::new(&bin)
                .args(&args)
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .with_context(|| format!("starting {}", bin.display()))?;
            self.others.0.push((name, child));
        }
        Ok(())
    }

    /// Each process: its name and pid.
    pub(crate) fn processes(&self) -> Vec<(&'static str, u32)> {
        let first = match self.setup {
            Setup::Separate => "apiserver",
            Setup::AllInOne => "rkube server",
        };
        let mut out = vec![(first, self.server.pid().expect("a process"))];
        out.extend(self.others.0.iter().map(|(n, c)| (*n, c.id())));
        out
    }

    /// How it runs.
    pub(crate) fn setup(&self) -> Setup {
        self.setup
    }

    /// Fails when a component process has exited.
    pub(crate) fn check(&mut self) -> anyhow::Result<()> {
        for (name, c) in &mut self.others.0 {
            if let Some(status) = c.try_wait()? {
                anyhow::bail!("{name} exited: {status}");
            }
        }
        Ok(())
    }

    /// Stops the components, then the API server.
    pub(crate) async fn stop(mut self) {
        for (_, c) in &mut self.others.0 {
            stop_child(c).await;
        }
        stop(self.server).await;
    }
}

/// Component processes: name and process.
#[derive(Default)]
struct Children(Vec<(&'static str, Child)>);

impl Drop for Children {
    /// Components still running (a benchmark failed before [`ControlPlane::stop`]) are killed.
    fn drop(&mut self) {
        for (_, c) in &mut self.0 {
            if let Ok(None) = c.try_wait() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// What `/proc` says of a process.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct ProcStats {
    /// Resident set size (VmRSS), bytes.
    pub(crate) rss: u64,
    /// Peak resident set size (VmHWM), bytes.
    pub(crate) hwm: u64,
    /// User + system CPU time (utime + stime), seconds.
    pub(crate) cpu: f64,
}

/// Clock ticks a second (`getconf CLK_TCK`; 100 when that fails).
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// Parses `/proc/PID/status` (VmRSS, VmHWM in kB) and `/proc/PID/stat` (utime, stime: fields
/// 14 and 15, after the parenthesised command name).
fn parse_proc(status: &str, stat: &str, ticks: f64) -> Option<ProcStats> {
    let kb = |key: &str| {
        status.lines().find_map(|l| {
            let rest = l.strip_prefix(key)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse::<u64>().ok()
        })
    };
    let after = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state): utime is field 14, stime 15.
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some(ProcStats {
        rss: kb("VmRSS")? * 1024,
        hwm: kb("VmHWM")? * 1024,
        cpu: (utime + stime) / ticks,
    })
}

/// The stats of process `pid`.
pub(crate) fn proc_stats(pid: u32) -> anyhow::Result<ProcStats> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_proc(&status, &stat, clock_ticks()).with_context(|| format!("parsing /proc/{pid}"))
}

/// Bytes in MiB.
pub(crate) fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_are_parsed() {
        let status = "Name:\trkube\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        let stat = "42 (rkube (x) y) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8";
        let s = parse_proc(status, stat, 100.0).unwrap();
        assert_eq!(s.rss, 10 << 20);
        assert_eq!(s.hwm, 20 << 20);
        assert!((s.cpu - 3.0).abs() < 1e-9, "{s:?}");
        assert!(parse_proc("", stat, 100.0).is_none());
    }

    #[test]
    fn this_process_has_stats() {
        let s = proc_stats(std::process::id()).unwrap();
        assert!(s.rss > 0 && s.hwm >= s.rss, "{s:?}");
    }
}
