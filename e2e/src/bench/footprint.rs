//! The footprint benchmark: the memory (VmRSS, VmHWM) and CPU time (utime + stime) of the
//! control plane's processes, read from `/proc` — each component as its own binary
//! (rkube-apiserver, rkube-scheduler, rkube-controller-manager, rkube-dns), then the all-in-one
//! `rkube server --disable agent` (which runs no DNS without its agent) — idle with 3 hollow
//! nodes, then with 1,000 hollow nodes and 30,000 pods (Deployments, in steps), and the growth
//! per 1,000 pods. The hollow kubelets run in this process, so they do not count. The issue's
//! targets: idle control plane ≤ 60 MB with 3 nodes, ≤ 1 GiB with 1,000 nodes / 30,000 pods.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::control_plane::{ControlPlane, ProcStats, Setup, mib, proc_stats};
use super::hollow_cluster::{HollowNodes, PODS_PER_NAMESPACE, RunningPods, create_spread};
use super::report::Report;
use super::server::http;

/// Parameters of the footprint benchmark.
#[derive(Clone, Debug)]
pub struct Config {
    /// The control planes measured, one after the other.
    pub setups: Vec<Setup>,
    /// Hollow nodes while idle.
    pub idle_nodes: usize,
    /// Hollow nodes at scale.
    pub nodes: usize,
    /// Pods at scale.
    pub pods: usize,
    /// Deployments the pods come in (one after the other, RSS sampled after each).
    pub steps: usize,
    /// How long CPU is measured while idle (after as long to settle).
    pub idle_window: Duration,
    /// Where the binaries are (default: next to this executable, built when missing).
    pub bin_dir: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            setups: vec![Setup::Separate, Setup::AllInOne],
            idle_nodes: 3,
            nodes: 1_000,
            pods: 30_000,
            steps: 3,
            idle_window: Duration::from_secs(10),
            bin_dir: None,
        }
    }
}

/// The stats of every process of the control plane.
fn sample(cp: &ControlPlane) -> anyhow::Result<Vec<(&'static str, ProcStats)>> {
    cp.processes()
        .into_iter()
        .map(|(n, pid)| Ok((n, proc_stats(pid)?)))
        .collect()
}

fn total_rss(s: &[(&'static str, ProcStats)]) -> u64 {
    s.iter().map(|(_, p)| p.rss).sum()
}

/// CPU used between two samples, as % of one core over `secs`, by process.
fn cpu_percent(
    before: &[(&'static str, ProcStats)],
    after: &[(&'static str, ProcStats)],
    secs: f64,
) -> Vec<(&'static str, f64)> {
    after
        .iter()
        .zip(before)
        .map(|((n, a), (_, b))| (*n, 100.0 * (a.cpu - b.cpu) / secs.max(1e-9)))
        .collect()
}

/// Waits `window` to settle, then measures CPU over another `window`: the samples at its end
/// and the CPU shares.
async fn idle(
    cp: &ControlPlane,
    window: Duration,
) -> anyhow::Result<(Vec<(&'static str, ProcStats)>, Vec<(&'static str, f64)>)> {
    tokio::time::sleep(window).await;
    let before = sample(cp)?;
    let t = Instant::now();
    tokio::time::sleep(window).await;
    let after = sample(cp)?;
    let cpu = cpu_percent(&before, &after, t.elapsed().as_secs_f64());
    Ok((after, cpu))
}

/// One control plane: idle, then at scale.
async fn measure(
    report: &mut Report,
    cfg: &Config,
    cp: &mut ControlPlane,
    nodes: &mut HollowNodes,
) -> anyhow::Result<()> {
    let label = cp.setup().label();
    let n0 = cfg.idle_nodes;
    nodes.add(&cp.server, n0).await?;
    let (idle_stats, idle_cpu) = idle(cp, cfg.idle_window).await?;
    cp.check()?;
    let idle_total = total_rss(&idle_stats);
    for ((name, s), (_, cpu)) in idle_stats.iter().zip(&idle_cpu) {
        report.measure(
            &format!("{label}, idle, {n0} nodes: {name} RSS"),
            mib(s.rss),
            "MiB",
        );
        report.measure(
            &format!("{label}, idle, {n0} nodes: {name} CPU"),
            *cpu,
            "% of a core",
        );
    }
    report.measure(
        &format!("{label}, idle, {n0} nodes: control plane RSS"),
        mib(idle_total),
        "MiB",
    );
    report.ratio(
        &format!("{label}: 60 MB target / idle control plane RSS"),
        60.0 / mib(idle_total).max(1e-3),
        1.0,
    );

    // At scale: the nodes, then the pods in steps.
    let load_start = sample(cp)?;
    let t = Instant::now();
    let n = cfg.nodes.max(n0);
    nodes.add(&cp.server, n - n0).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let nodes_only = sample(cp)?;
    report.measure(
        &format!("{label}, {n} nodes, 0 pods: control plane RSS"),
        mib(total_rss(&nodes_only)),
        "MiB",
    );
    let c = http();
    let running = RunningPods::start(&cp.server.url, None);
    let mut next_ns = 0;
    let steps = cfg.steps.max(1);
    let mut created = 0;
    for k in 0..steps {
        let count = cfg.pods * (k + 1) / steps - created;
        if count == 0 {
            continue;
        }
        let step = Instant::now();
        create_spread(&c, &cp.server.url, "fp", &mut next_ns, count).await?;
        created += count;
        running
            .wait(
                created,
                Duration::from_secs(120) + Duration::from_millis(60) * count as u32,
            )
            .await?;
        cp.check()?;
        let s = sample(cp)?;
        eprintln!(
            "{label}: {created} pods Running ({count} in {:.1?}), control plane RSS {:.0} MiB",
            step.elapsed(),
            mib(total_rss(&s))
        );
        report.measure(
            &format!("{label}, {n} nodes, {created} pods: control plane RSS"),
            mib(total_rss(&s)),
            "MiB",
        );
    }
    running.stop().await?;
    let load_secs = t.elapsed().as_secs_f64();
    let loaded = sample(cp)?;
    let (scale_stats, scale_cpu) = idle(cp, cfg.idle_window).await?;
    let scale_total = total_rss(&scale_stats);
    let pods = cfg.pods;
    for (((name, s), (_, cpu)), ((_, during), (_, start))) in scale_stats
        .iter()
        .zip(&scale_cpu)
        .zip(loaded.iter().zip(&load_start))
    {
        let at = format!("{label}, {n} nodes / {pods} pods: {name}");
        report.measure(&format!("{at} RSS"), mib(s.rss), "MiB");
        report.measure(&format!("{at} peak RSS (VmHWM)"), mib(s.hwm), "MiB");
        report.measure(&format!("{at} CPU idle"), *cpu, "% of a core");
        report.measure(
            &format!("{label}: {name} CPU time loading nodes and pods"),
            during.cpu - start.cpu,
            "s",
        );
    }
    report.measure(
        &format!("{label}: loading {n} nodes and {pods} pods took"),
        load_secs,
        "s",
    );
    report.measure(
        &format!("{label}, {n} nodes / {pods} pods: control plane RSS"),
        mib(scale_total),
        "MiB",
    );
    if pods > 0 {
        let growth = (scale_total as f64 - total_rss(&nodes_only) as f64) / (pods as f64 / 1000.0);
        report.measure(
            &format!("{label}: control plane RSS growth per 1,000 pods"),
            growth / (1024.0 * 1024.0),
            "MiB",
        );
    }
    report.ratio(
        &format!("{label}: 1 GiB target / control plane RSS at {n} nodes / {pods} pods"),
        1024.0 / mib(scale_total).max(1e-3),
        1.0,
    );
    Ok(())
}

/// Runs the footprint benchmark.
pub async fn run(cfg: &Config) -> anyhow::Result<Report> {
    let mut report = Report::new("footprint");
    let p = &mut report.parameters;
    p.insert(
        "setups".into(),
        cfg.setups
            .iter()
            .map(|s| s.label())
            .collect::<Vec<_>>()
            .join(", ")
            .into(),
    );
    p.insert("idle_nodes".into(), cfg.idle_nodes.into());
    p.insert("nodes".into(), cfg.nodes.into());
    p.insert("pods".into(), cfg.pods.into());
    p.insert("pod_steps".into(), cfg.steps.into());
    p.insert(
        "pods_per_namespace".into(),
        format!("at most {PODS_PER_NAMESPACE} (one Deployment a namespace)").into(),
    );
    p.insert("idle_window_s".into(), cfg.idle_window.as_secs_f64().into());
    p.insert(
        "measured".into(),
        "VmRSS / VmHWM of /proc/PID/status, utime+stime of /proc/PID/stat; separate \
         processes: rkube-apiserver (embedded store), rkube-scheduler, rkube-controller-manager \
         (--use-service-account-credentials), rkube-dns; all-in-one: rkube server --disable \
         agent (no DNS without its agent); hollow kubelets in the benchmark's process; the \
         60 MB target taken as 60 MiB"
            .into(),
    );
    for &setup in &cfg.setups {
        let mut cp = ControlPlane::start(setup, cfg.bin_dir.as_deref()).await?;
        let mut nodes = HollowNodes::new()?;
        let result = tokio::select! {
            r = measure(&mut report, cfg, &mut cp, &mut nodes) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        };
        nodes.stop().await;
        cp.stop().await;
        result?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_small_footprint_measures_every_process() {
        let cfg = Config {
            setups: vec![Setup::Separate, Setup::AllInOne],
            idle_nodes: 2,
            nodes: 2,
            pods: 30,
            steps: 2,
            idle_window: Duration::from_secs(1),
            bin_dir: None,
        };
        let report = run(&cfg).await.expect("the benchmark runs");
        let value = |name: &str| {
            report
                .value(name)
                .unwrap_or_else(|| panic!("{name} in {:#?}", report.measurements))
        };
        for name in ["apiserver", "scheduler", "controller-manager", "dns"] {
            assert!(value(&format!("separate processes, idle, 2 nodes: {name} RSS")) > 0.0);
        }
        let sep = value("separate processes, 2 nodes / 30 pods: control plane RSS");
        let parts: f64 = ["apiserver", "scheduler", "controller-manager", "dns"]
            .iter()
            .map(|n| value(&format!("separate processes, 2 nodes / 30 pods: {n} RSS")))
            .sum();
        assert!((sep - parts).abs() < 1e-6, "{sep} vs {parts}");
        assert!(value("all-in-one, 2 nodes / 30 pods: rkube server RSS") > 0.0);
        assert!(value("all-in-one, 2 nodes / 30 pods: rkube server peak RSS (VmHWM)") > 0.0);
        assert_eq!(report.ratios.len(), 4);
    }

    /// Every rkube binary runs with rkube-alloc's setting (arenas committed on demand, so
    /// freed memory goes back to the OS), which only holds if the allocator crate's constructor
    /// is linked into the binary; and the environment still overrides it.
    #[test]
    fn every_binary_commits_allocator_arenas_on_demand() {
        use crate::cluster::workspace_binary;
        let binaries = [
            ("rkube", "rkube"),
            ("rkube-apiserver", "rkube-apiserver"),
            ("rkube-scheduler", "rkube-scheduler"),
            ("rkube-controller-manager", "rkube-controller-manager"),
            ("rkube-dns", "rkube-dns"),
            ("rkubelet", "rkube-kubelet"),
        ];
        let option = |bin: &std::path::Path, env: Option<&str>| {
            let mut cmd = std::process::Command::new(bin);
            cmd.arg("--version").env("MIMALLOC_VERBOSE", "1");
            cmd.env_remove("MIMALLOC_ARENA_EAGER_COMMIT");
            if let Some(v) = env {
                cmd.env("MIMALLOC_ARENA_EAGER_COMMIT", v);
            }
            let out = cmd.output().expect("the binary runs");
            assert!(out.status.success(), "{}: {out:?}", bin.display());
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            stderr
                .lines()
                .find_map(|l| l.trim().strip_prefix("option 'arena_eager_commit': "))
                .map(|v| v.trim().to_string())
                .unwrap_or_else(|| panic!("{}: no mimalloc options in {stderr}", bin.display()))
        };
        for (name, package) in binaries {
            let bin = workspace_binary(name, package);
            assert_eq!(option(&bin, None), "0", "{name}");
            assert_eq!(option(&bin, Some("1")), "1", "{name}");
        }
    }
}
