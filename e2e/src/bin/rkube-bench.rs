//! `rkube-bench`: runs rkube's benchmarks and prints a table (and writes JSON) per workload.

// Many small, short-lived allocations per request: mimalloc handles them better than glibc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;

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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let report = match cli.workload {
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
    println!("results written to {}", path.display());
    Ok(())
}
