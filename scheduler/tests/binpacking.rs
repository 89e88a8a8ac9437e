//! Bin-packing quality: 500 pods of mixed sizes (deterministic seed) scheduled one by one with
//! the default profile onto 100 identical nodes use at most 1.15 × the lower bound
//! ceil(max(Σcpu / node cpu, Σmemory / node memory)) nodes. The same pods with LeastAllocated
//! spread over (nearly) every node, so the figure measures the strategy.

use std::collections::HashSet;
use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rkube_scheduler::cache::{Cache, Snapshot};
use rkube_scheduler::config::Profile;
use rkube_scheduler::framework::CycleState;
use rkube_scheduler::framework::registry::{Handle, Registry};
use rkube_scheduler::framework::runtime::{CycleContext, Framework};
use rkube_scheduler::pod_info::PodInfo;
use rkube_scheduler::testing;

const NODES: usize = 100;
const PODS: usize = 500;
const NODE_MILLI_CPU: i64 = 16_000;
const NODE_MEMORY_MI: i64 = 64 * 1024;

/// 500 pods: cpu from 250m to 4, memory from 512Mi to 8Gi, drawn independently.
fn workload(seed: u64) -> Vec<(i64, i64)> {
    let cpus = [250, 500, 1000, 2000, 4000];
    let mems = [512, 1024, 2048, 4096, 8192];
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..PODS)
        .map(|_| {
            (
                cpus[rng.random_range(0..cpus.len())],
                mems[rng.random_range(0..mems.len())],
            )
        })
        .collect()
}

/// Schedules the workload with a profile; returns the number of nodes used.
fn nodes_used(profile: &Profile, pods: &[(i64, i64)]) -> usize {
    let fwk = Framework::new(profile, &Registry::in_tree(), &Handle::default(), None, 1).unwrap();
    let mut cache = Cache::new();
    for i in 0..NODES {
        cache.add_or_update_node(testing::node(
            &format!("node-{i:03}"),
            &format!("{NODE_MILLI_CPU}m"),
            &format!("{NODE_MEMORY_MI}Mi"),
        ));
    }
    let mut snap = Snapshot::new();
    let mut state = CycleState::new();
    let mut ctx = CycleContext::new(42);
    let mut used = HashSet::new();
    for (i, (cpu, mem)) in pods.iter().enumerate() {
        let pod = Arc::new(PodInfo::new(Arc::new(testing::pod(
            &format!("pod-{i}"),
            &format!("{cpu}m"),
            &format!("{mem}Mi"),
        ))));
        cache.update_snapshot(&mut snap);
        let result = fwk
            .schedule_pod(&mut state, &pod, &snap, &mut ctx)
            .unwrap_or_else(|e| panic!("pod {i} ({cpu}m, {mem}Mi) did not fit: {e}"));
        cache.assume_pod(pod, &result.node).unwrap();
        used.insert(result.node);
    }
    used.len()
}

fn lower_bound(pods: &[(i64, i64)]) -> usize {
    let cpu: i64 = pods.iter().map(|p| p.0).sum();
    let mem: i64 = pods.iter().map(|p| p.1).sum();
    let by_cpu = (cpu as f64 / NODE_MILLI_CPU as f64).ceil() as usize;
    let by_mem = (mem as f64 / NODE_MEMORY_MI as f64).ceil() as usize;
    by_cpu.max(by_mem)
}

#[test]
fn most_allocated_packs_within_fifteen_percent_of_the_lower_bound() {
    for seed in [1, 2, 3] {
        let pods = workload(seed);
        let bound = lower_bound(&pods);
        let used = nodes_used(&Profile::default(), &pods);
        println!("seed {seed}: lower bound {bound}, MostAllocated used {used}");
        assert!(
            used as f64 <= 1.15 * bound as f64,
            "seed {seed}: {used} nodes used, lower bound {bound}"
        );
    }
}

#[test]
fn least_allocated_spreads_instead() {
    let pods = workload(1);
    let bound = lower_bound(&pods);
    let profile: Profile = serde_json::from_value(serde_json::json!({
        "pluginConfig": [{"name": "NodeResourcesFit",
                          "args": {"scoringStrategy": {"type": "LeastAllocated"}}}]
    }))
    .unwrap();
    let used = nodes_used(&profile, &pods);
    println!("LeastAllocated used {used} (lower bound {bound})");
    assert!(used as f64 > 1.5 * bound as f64, "{used} vs {bound}");
}
