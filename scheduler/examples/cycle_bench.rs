//! The scheduling cycle alone, without an API server: N nodes and P pods (scheduler_perf's
//! shapes: nodes of 4 cpu / 32Gi / 110 pods, pods of 100m / 500Mi) scheduled one by one with
//! the default profile — snapshot update, PreFilter, Filter, PreScore, Score, assume — to see
//! what a cycle costs on this machine. The whole path through the API server is measured by
//! `rkube-bench scheduler`.
//!
//! `cargo run --release -p rkube-scheduler --example cycle_bench [-- NODES PODS [THREADS]]`

use std::sync::Arc;
use std::time::Instant;

use rkube_scheduler::cache::{Cache, Snapshot};
use rkube_scheduler::config::{Profile, SchedulerConfiguration};
use rkube_scheduler::framework::CycleState;
use rkube_scheduler::framework::registry::{Handle, Registry};
use rkube_scheduler::framework::runtime::{CycleContext, Framework};
use rkube_scheduler::pod_info::PodInfo;
use rkube_scheduler::testing;

fn run(nodes: usize, pods: usize, threads: usize) {
    let fwk = Framework::new(
        &Profile::default(),
        &Registry::in_tree(),
        &Handle::default(),
        None,
        threads,
    )
    .expect("the default profile builds");
    let mut cache = Cache::new();
    for i in 0..nodes {
        cache.add_or_update_node(testing::node(&format!("node-{i:05}"), "4", "32Gi"));
    }
    let infos: Vec<Arc<PodInfo>> = (0..pods)
        .map(|i| {
            Arc::new(PodInfo::new(Arc::new(testing::pod(
                &format!("pod-{i:05}"),
                "100m",
                "500Mi",
            ))))
        })
        .collect();
    let mut snap = Snapshot::new();
    let mut state = CycleState::new();
    let mut ctx = CycleContext::new(1);
    let mut cycle_us = Vec::with_capacity(pods);
    let start = Instant::now();
    for pod in infos {
        let t = Instant::now();
        cache.update_snapshot(&mut snap);
        let result = fwk
            .schedule_pod(&mut state, &pod, &snap, &mut ctx)
            .expect("every pod fits");
        cache
            .assume_pod(pod, &result.node)
            .expect("not assumed yet");
        cycle_us.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let secs = start.elapsed().as_secs_f64();
    cycle_us.sort_by(f64::total_cmp);
    let q = |p: f64| cycle_us[((cycle_us.len() as f64 - 1.0) * p) as usize];
    println!(
        "{nodes} nodes, {pods} pods, {threads} thread(s): {:.0} pods/s; cycle p50 {:.0} us, \
         p99 {:.0} us",
        pods as f64 / secs,
        q(0.5),
        q(0.99)
    );
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("NODES PODS [THREADS] as numbers"))
        .collect();
    let threads = args
        .get(2)
        .copied()
        .unwrap_or_else(|| SchedulerConfiguration::default().threads());
    match args[..] {
        [nodes, pods, ..] => run(nodes, pods, threads),
        _ => {
            run(1_000, 5_000, threads);
            run(5_000, 10_000, threads);
        }
    }
}
