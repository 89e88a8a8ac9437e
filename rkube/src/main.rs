//! `rkube`: the all-in-one binary (see the library). Parses the flags, sets up logging and
//! runs the server until SIGTERM or Ctrl-C.

// Many small, short-lived allocations (requests, watch events): mimalloc handles them better
// than glibc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::Context;
use clap::Parser;
use rkube::cli::{Cli, Command};
use rkube_machinery::process::{describe, shutdown_signal};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match Box::pin(run(cli)).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {}", describe(&*e));
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,hickory_server=warn".into()),
        )
        .init();
    match cli.command {
        Command::Server(args) => {
            let config = args.into_config()?;
            Box::pin(rkube::run(config, shutdown_signal()))
                .await
                .context("rkube server")?;
        }
    }
    Ok(())
}
