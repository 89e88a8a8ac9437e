//! The scheduler against a real API server (in-process, embedded store): N Node objects (no
//! kubelets), then P pods created 64 at a time while the scheduler runs. Prints pods/s from
//! the first create to the last binding seen on a watch, the create→bound latency p50/p99, and
//! where the scheduler's time went (scheduling cycles vs binding round trips). A developer's
//! tool; the benchmark of record is `rkube-bench scheduler`.
//!
//! `cargo run --release -p rkube-scheduler --example api_bench [-- NODES PODS]`

#[global_allocator]
static GLOBAL: rkube_alloc::Allocator = rkube_alloc::Allocator;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, PostParams};
use kube::runtime::watcher;
use rkube_scheduler::{Options, Scheduler, SchedulerConfiguration, testing};
use rkube_testkit::apiserver::{Backend, Identity, TestServer};

const IN_FLIGHT: usize = 64;

async fn create_nodes(client: &kube::Client, n: usize) {
    let api: Api<Node> = Api::all(client.clone());
    futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                let node = testing::node(&format!("node-{i:05}"), "4", "32Gi");
                let mut created = api.create(&PostParams::default(), &node).await?;
                created.status = node.status;
                let name = created.metadata.name.clone().unwrap_or_default();
                api.replace_status(&name, &PostParams::default(), &created)
                    .await
                    .map(|_| ())
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .try_collect::<Vec<_>>()
        .await
        .expect("nodes are created");
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p) as usize].as_secs_f64() * 1e3
}

async fn run(nodes: usize, pods: usize) {
    let server = TestServer::start(Backend::Embedded).await;
    let client = server.client().await;
    let t = Instant::now();
    create_nodes(&client, nodes).await;
    println!(
        "{nodes} nodes created in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // The scheduler as Kubernetes runs it: system:kube-scheduler with its default roles.
    let own = server.client_as(&Identity::scheduler()).await;
    let mut opts = Options::new(own, SchedulerConfiguration::default());
    opts.seed = Some(1);
    let scheduler = Scheduler::new(opts).expect("the default configuration is valid");
    let handle = scheduler.handle();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(scheduler.run(async {
        let _ = stopped.await;
    }));
    let mut synced = handle.synced.clone();
    synced.wait_for(|s| *s).await.expect("the caches sync");

    // Bindings as the watch shows them.
    let bound: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let (all_bound_tx, mut all_bound) = tokio::sync::watch::channel(false);
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let seen = bound.clone();
    let watch = tokio::spawn(async move {
        let stream = watcher::watcher(api, watcher::Config::default());
        futures::pin_mut!(stream);
        while let Some(Ok(ev)) = stream.next().await {
            let p = match ev {
                watcher::Event::Apply(p) | watcher::Event::InitApply(p) => p,
                _ => continue,
            };
            if p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some() {
                let mut b = seen.lock().unwrap();
                b.entry(p.metadata.name.unwrap_or_default())
                    .or_insert_with(Instant::now);
                if b.len() == pods {
                    all_bound_tx.send_replace(true);
                }
            }
        }
    });
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let created: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let start = Instant::now();
    futures::stream::iter(0..pods)
        .map(|i| {
            let api = api.clone();
            let created = created.clone();
            async move {
                let name = format!("pod-{i:05}");
                let mut pod = testing::pod(&name, "100m", "500Mi");
                pod.metadata.uid = None;
                pod.metadata.creation_timestamp = None;
                created.lock().unwrap().insert(name, Instant::now());
                api.create(&PostParams::default(), &pod).await.map(|_| ())
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .try_collect::<Vec<_>>()
        .await
        .expect("pods are created");
    let created_in = start.elapsed();
    tokio::time::timeout(Duration::from_secs(600), all_bound.wait_for(|b| *b))
        .await
        .expect("every pod is bound within 10 minutes")
        .expect("the watch runs");
    let bound = bound.lock().unwrap().clone();
    let last = bound.values().max().copied().expect("pods were bound");
    let wall = last - start;
    let created = created.lock().unwrap().clone();
    let mut latencies: Vec<Duration> = bound
        .iter()
        .map(|(name, at)| at.saturating_duration_since(created[name]))
        .collect();
    latencies.sort();
    // The bind tasks count a pod once the API answered, a moment after the watch saw it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let totals = loop {
        let t = handle.metrics.totals();
        if t.scheduled as usize >= pods || Instant::now() > deadline {
            break t;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let n = totals.scheduled.max(1) as f64;
    println!(
        "{nodes} nodes, {pods} pods: {:.0} pods/s (creates alone: {:.0}/s); create->bound p50 \
         {:.1} ms, p99 {:.1} ms; cycle mean {:.0} us ({:.1} s in all), binding round trip \
         mean {:.1} ms",
        pods as f64 / wall.as_secs_f64(),
        pods as f64 / created_in.as_secs_f64(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        totals.cycle_time.as_secs_f64() * 1e6 / n,
        totals.cycle_time.as_secs_f64(),
        totals.bind_time.as_secs_f64() * 1e3 / n,
    );
    let _ = stop.send(());
    let _ = task.await;
    watch.abort();
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("NODES PODS as numbers"))
        .collect();
    match args[..] {
        [nodes, pods] => run(nodes, pods).await,
        _ => {
            run(1_000, 5_000).await;
            run(5_000, 10_000).await;
        }
    }
}
