//! `rkube-bench`: runs rkube's benchmarks and prints a table (and writes JSON) per workload.

// Many small, short-lived allocations per request: mimalloc handles them better than glibc.
#[global_allocator]
static GLOBAL: rkube_alloc::Allocator = rkube_alloc::Allocator;

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use rkube_e2e::bench;

#[derive(Parser)]
#[command(
    about = "rkube benchmarks: every figure is compared with a baseline measured in the same run"
)]
struct Cli {
    /// Where to write the JSON results.
    #[arg(long, default_value = "bench-results")]
    out: PathBuf,
    #[command(subcommand)]
    workload: Workload,
}

#[derive(Subcommand)]
enum Workload {
    /// Draws the chart (SVG, next to it) of results written before: `rkube-bench chart
    /// bench-results/*.json`.
    Chart {
        /// JSON results of rkube-bench.
        #[arg(required = true)]
        results: Vec<PathBuf>,
    },
    /// API server: pod creates/gets per second, listing 10k pods, watch fan-out — on the
    /// embedded store and on etcd — with raw etcd puts as the baseline.
    Api {
        /// Pods created (and read) per backend.
        #[arg(long, default_value_t = 5_000)]
        creates: usize,
        /// Requests in flight.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Pods listed.
        #[arg(long, default_value_t = 10_000)]
        list_size: usize,
        /// Watchers.
        #[arg(long, default_value_t = 100)]
        watchers: usize,
        /// Objects written while watched.
        #[arg(long, default_value_t = 2_000)]
        watch_events: usize,
        /// Rounds of the create measurement (the median is reported).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Cluster DNS: rkube-dns on one thread under a UDP load generator — queries/s and p99
    /// for cached cluster names and NXDOMAIN, with a UDP echo responder as the baseline.
    Dns {
        /// Services in the zone.
        #[arg(long, default_value_t = 1_000)]
        services: usize,
        /// Queries per measurement.
        #[arg(long, default_value_t = 200_000)]
        queries: usize,
        /// Generator sockets.
        #[arg(long, default_value_t = 4)]
        sockets: usize,
        /// Queries in flight per socket.
        #[arg(long, default_value_t = 16)]
        window: usize,
        /// Rounds (the median is reported).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Service proxy (nftables, in namespaces it creates; needs root): rule sync time for N
    /// Services x E endpoints (full, and one added Service) and ClusterIP vs direct throughput.
    Proxy {
        /// Service counts to sync (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
        services: Vec<usize>,
        /// Ready endpoints per Service.
        #[arg(long, default_value_t = 10)]
        endpoints: usize,
        /// Services added one at a time to the largest table.
        #[arg(long, default_value_t = 20)]
        adds: usize,
        /// MiB per throughput download.
        #[arg(long, default_value_t = 512)]
        transfer_mib: usize,
        /// Rounds (the median is reported).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Controller manager: a Deployment of N replicas against an in-process API server and
    /// rkube-controller-manager — time to all pods and pod creates/s — with the client creating
    /// the same pods itself as the baseline.
    Controllers {
        /// Replicas of the Deployment.
        #[arg(long, default_value_t = 1000)]
        replicas: usize,
        /// Pod creates in flight for the baseline.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
    /// Pod startup: create→Running latency (p50/p99/max) of pods already bound to one real
    /// node (rkubelet + its containerd in a network namespace; needs root), created one at a
    /// time and all at once; the pods/s 100 hollow kubelets in a hollow cluster in this process
    /// sustain, with the client creating the pods and writing their Running status itself as
    /// the baseline; and a Deployment of 1,000 replicas on the hollow nodes — time to all
    /// Running, p50/p99 pod startup latency.
    PodStartup {
        /// Parts to run (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "real,hollow,deployment")]
        parts: Vec<Part>,
        /// Pods on the real node, per mode (one at a time, then all at once).
        #[arg(long, default_value_t = 50)]
        pods: usize,
        /// Hollow nodes.
        #[arg(long, default_value_t = 100)]
        hollow_nodes: usize,
        /// Pods spread across the hollow nodes.
        #[arg(long, default_value_t = 2_000)]
        hollow_pods: usize,
        /// Pod creates in flight in the hollow part and its baseline.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Replicas of the Deployment part's Deployment.
        #[arg(long, default_value_t = 1_000)]
        replicas: usize,
        /// Run the hollow clusters' API server on etcd (started here).
        #[arg(long)]
        etcd: bool,
        /// The Deployment part's scheduler spreads pods over the nodes (NodeResourcesFit
        /// LeastAllocated, Kubernetes' default) instead of packing them (rkube's default).
        #[arg(long)]
        spread: bool,
    },
    /// Churn: R pod changes a second (pods created, patched, deleted; Deployments scaled) for
    /// a duration on a hollow cluster in this process — API p99 per verb (the API server's
    /// histograms and the client's own), errors, watch lag.
    Churn {
        /// Hollow nodes.
        #[arg(long, default_value_t = 100)]
        nodes: usize,
        /// Pod changes per second.
        #[arg(long, default_value_t = 20.0)]
        rate: f64,
        /// How long (e.g. 300s, 5m).
        #[arg(long, default_value = "5m", value_parser = duration)]
        duration: std::time::Duration,
        /// Deployments scaled up and down.
        #[arg(long, default_value_t = 10)]
        deployments: usize,
        /// Their replicas at the start.
        #[arg(long, default_value_t = 30)]
        replicas: usize,
        /// Run the API server on etcd (started here).
        #[arg(long)]
        etcd: bool,
    },
    /// Footprint: RSS and CPU of each control plane process (rkube-apiserver,
    /// rkube-scheduler, rkube-controller-manager, rkube-dns; then the all-in-one `rkube server
    /// --disable agent`) idle with 3 hollow nodes and with 1,000 nodes / 30,000 pods, and the
    /// growth per 1,000 pods. The hollow nodes run in this process.
    Footprint {
        /// Control planes to measure (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "separate,all-in-one")]
        setups: Vec<SetupArg>,
        /// Hollow nodes while idle.
        #[arg(long, default_value_t = 3)]
        idle_nodes: usize,
        /// Hollow nodes at scale.
        #[arg(long, default_value_t = 1_000)]
        nodes: usize,
        /// Pods at scale.
        #[arg(long, default_value_t = 30_000)]
        pods: usize,
        /// Deployments the pods come in (RSS sampled after each).
        #[arg(long, default_value_t = 3)]
        steps: usize,
        /// How long idle CPU is measured (after as long to settle).
        #[arg(long, default_value = "10s", value_parser = duration)]
        idle_window: std::time::Duration,
        /// Where the component binaries are [default: next to rkube-bench].
        #[arg(long)]
        bin_dir: Option<PathBuf>,
    },
    /// Scale limit: a control plane of processes and hollow nodes in this process, grown in
    /// steps (nodes, and pods per node through a Deployment) until an API verb's p99 crosses
    /// the limit in a steady window after a step, the API server's RSS crosses the cap, a
    /// step fails, or --max-nodes is reached; reports every step and where it stopped.
    ScaleLimit {
        /// How the control plane runs.
        #[arg(long, value_enum, default_value = "separate")]
        setup: SetupArg,
        /// Nodes added a step.
        #[arg(long, default_value_t = 250)]
        step_nodes: usize,
        /// Pods added a step per node added.
        #[arg(long, default_value_t = 30)]
        pods_per_node: usize,
        /// Stop at this many nodes.
        #[arg(long, default_value_t = 5_000)]
        max_nodes: usize,
        /// The API p99 latency limit (any verb).
        #[arg(long, default_value = "1s", value_parser = duration)]
        p99_limit: std::time::Duration,
        /// The API server's RSS cap in MiB.
        #[arg(long, default_value_t = 4096)]
        rss_cap_mib: u64,
        /// The steady window measured after each step.
        #[arg(long, default_value = "15s", value_parser = duration)]
        window: std::time::Duration,
        /// Where the component binaries are [default: next to rkube-bench].
        #[arg(long)]
        bin_dir: Option<PathBuf>,
    },
    /// Scheduler: N Node objects (no kubelets) and P pods against an in-process API server and
    /// rkube-scheduler — pods/s, create-to-bound p50/p99, cycle vs binding time — with the
    /// client creating and binding the same pods itself as the baseline.
    Scheduler {
        /// Runs as NODESxPODS, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1000x5000,5000x10000")]
        runs: Vec<String>,
        /// Pod creates in flight.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// percentageOfNodesToScore (0: Kubernetes' adaptive default).
        #[arg(long, default_value_t = 0)]
        percentage_of_nodes_to_score: i32,
    },
    /// Storage layer: raw etcd puts vs creates over etcd and on the embedded store; watch fan-out.
    Storage {
        /// Writes per round and backend.
        #[arg(long, default_value_t = 5_000)]
        writes: usize,
        /// Writes in flight at once.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Rounds (the median is reported).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Watchers in the fan-out measurement.
        #[arg(long, default_value_t = 100)]
        watchers: usize,
        /// Events written in the fan-out measurement.
        #[arg(long, default_value_t = 5_000)]
        fanout_events: usize,
    },
}

/// A duration: a number of seconds, or with a unit (`ms`, `s`, `m`, `h`).
fn duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: f64 = n.parse().map_err(|_| format!("not a duration: {s:?}"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("unknown unit in {s:?} (ms, s, m, h)")),
    };
    Ok(std::time::Duration::from_secs_f64(secs))
}

/// How the control plane runs in the footprint and scale-limit workloads.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum SetupArg {
    /// Each component its own process.
    Separate,
    /// `rkube server --disable agent`.
    AllInOne,
}

impl From<SetupArg> for bench::control_plane::Setup {
    fn from(s: SetupArg) -> Self {
        match s {
            SetupArg::Separate => bench::control_plane::Setup::Separate,
            SetupArg::AllInOne => bench::control_plane::Setup::AllInOne,
        }
    }
}

/// A part of the pod-startup workload.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Part {
    /// One node with real containerd.
    Real,
    /// Hollow kubelets, pods created bound.
    Hollow,
    /// A Deployment on hollow kubelets.
    Deployment,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let report = match cli.workload {
        Workload::Chart { results } => {
            for json in results {
                let text = std::fs::read_to_string(&json)
                    .with_context(|| format!("reading {}", json.display()))?;
                let report: bench::report::Report =
                    serde_json::from_str(&text).with_context(|| {
                        format!("{} is not a result of rkube-bench", json.display())
                    })?;
                let chart = json.with_extension("svg");
                bench::chart::write_svg(&report, &chart)?;
                println!("{}", chart.display());
            }
            return Ok(());
        }
        Workload::Api {
            creates,
            concurrency,
            list_size,
            watchers,
            watch_events,
            rounds,
        } => {
            let cfg = bench::api::Config {
                creates,
                concurrency,
                list_size,
                watchers,
                watch_events,
                rounds,
            };
            bench::api::run(&cfg).await?
        }
        Workload::Dns {
            services,
            queries,
            sockets,
            window,
            rounds,
        } => {
            let cfg = bench::dns::Config {
                services,
                queries,
                sockets: sockets.max(1),
                window: window.max(1),
                rounds: rounds.max(1),
            };
            bench::dns::run(&cfg).await?
        }
        Workload::Proxy {
            services,
            endpoints,
            adds,
            transfer_mib,
            rounds,
        } => {
            let cfg = bench::proxy::Config {
                service_counts: services,
                endpoints: endpoints.max(1),
                rounds: rounds.max(1),
                adds,
                transfer_mib: transfer_mib.max(1),
            };
            bench::proxy::run(&cfg).await?
        }
        Workload::Controllers {
            replicas,
            concurrency,
        } => {
            let cfg = bench::controllers::Config {
                replicas: replicas.max(1),
                concurrency: concurrency.max(1),
            };
            bench::controllers::run(&cfg).await?
        }
        Workload::PodStartup {
            parts,
            pods,
            hollow_nodes,
            hollow_pods,
            concurrency,
            replicas,
            etcd,
            spread,
        } => {
            let cfg = bench::pod_startup::Config {
                real: parts.contains(&Part::Real),
                hollow: parts.contains(&Part::Hollow),
                pods: pods.max(1),
                hollow_nodes: hollow_nodes.max(1),
                hollow_pods: hollow_pods.max(1),
                concurrency: concurrency.max(1),
                deployment: parts.contains(&Part::Deployment),
                replicas: replicas.max(1),
                etcd,
                spread,
            };
            bench::pod_startup::run(&cfg).await?
        }
        Workload::Churn {
            nodes,
            rate,
            duration,
            deployments,
            replicas,
            etcd,
        } => {
            let cfg = bench::churn::Config {
                nodes: nodes.max(1),
                rate,
                duration,
                deployments: deployments.max(1),
                replicas,
                etcd,
            };
            bench::churn::run(&cfg).await?
        }
        Workload::Footprint {
            setups,
            idle_nodes,
            nodes,
            pods,
            steps,
            idle_window,
            bin_dir,
        } => {
            let cfg = bench::footprint::Config {
                setups: setups.into_iter().map(Into::into).collect(),
                idle_nodes: idle_nodes.max(1),
                nodes: nodes.max(idle_nodes.max(1)),
                pods,
                steps: steps.max(1),
                idle_window,
                bin_dir,
            };
            bench::footprint::run(&cfg).await?
        }
        Workload::ScaleLimit {
            setup,
            step_nodes,
            pods_per_node,
            max_nodes,
            p99_limit,
            rss_cap_mib,
            window,
            bin_dir,
        } => {
            let cfg = bench::scale_limit::Config {
                setup: setup.into(),
                step_nodes: step_nodes.max(1),
                pods_per_node,
                max_nodes: max_nodes.max(1),
                p99_limit,
                rss_cap: rss_cap_mib << 20,
                window,
                bin_dir,
                ..Default::default()
            };
            bench::scale_limit::run(&cfg).await?
        }
        Workload::Scheduler {
            runs,
            concurrency,
            percentage_of_nodes_to_score,
        } => {
            let mut parsed = Vec::new();
            for r in &runs {
                let (n, p) = r
                    .split_once('x')
                    .ok_or_else(|| anyhow::anyhow!("--runs takes NODESxPODS, got {r:?}"))?;
                parsed.push((n.trim().parse()?, p.trim().parse()?));
            }
            let cfg = bench::scheduler::Config {
                runs: parsed,
                concurrency: concurrency.max(1),
                percentage_of_nodes_to_score: (percentage_of_nodes_to_score > 0)
                    .then_some(percentage_of_nodes_to_score),
                ..Default::default()
            };
            bench::scheduler::run(&cfg).await?
        }
        Workload::Storage {
            writes,
            concurrency,
            rounds,
            watchers,
            fanout_events,
        } => {
            let cfg = bench::storage::Config {
                writes,
                concurrency,
                rounds: rounds.max(1),
                watchers,
                fanout_events,
            };
            bench::storage::run(&cfg).await?
        }
    };
    println!("{}", report.table());
    std::fs::create_dir_all(&cli.out)?;
    let path = cli.out.join(format!("{}.json", report.workload));
    std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
    let chart = path.with_extension("svg");
    bench::chart::write_svg(&report, &chart)?;
    println!(
        "results written to {} and {}",
        path.display(),
        chart.display()
    );
    Ok(())
}
