//! `rkube`: the all-in-one binary (see the library). Parses the flags, sets up logging and
//! runs the server or the agent until SIGTERM or Ctrl-C, or a `rkube token` command.

// Many small, short-lived allocations (requests, watch events): mimalloc handles them better
// than glibc.
#[global_allocator]
static GLOBAL: rkube_alloc::Allocator = rkube_alloc::Allocator;

use anyhow::Context;
use clap::Parser;
use rkube::cli::{Cli, Command, TokenArgs, TokenCommand};
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
        Command::Agent(args) => {
            let config = args.into_config()?;
            Box::pin(rkube::agent::run(config, shutdown_signal()))
                .await
                .context("rkube agent")?;
        }
        Command::Token(args) => token(args).await?,
    }
    Ok(())
}

/// `rkube token create|list|delete` with the server's admin kubeconfig.
async fn token(args: TokenArgs) -> anyhow::Result<()> {
    let layout = rkube::config::Layout::new(&args.data_dir);
    let kubeconfig = layout.admin_kubeconfig();
    if !kubeconfig.exists() {
        anyhow::bail!(
            "{} does not exist: run `rkube token` on the server, with its --data-dir",
            kubeconfig.display()
        );
    }
    let client = rkube::server::client_from(&kubeconfig).await?;
    match args.command {
        TokenCommand::Create { ttl, description } => {
            let ttl = rkube::token::parse_ttl(&ttl)?;
            let ca = std::fs::read_to_string(layout.pki().join("ca.crt"))
                .with_context(|| format!("reading the cluster CA in {}", layout.pki().display()))?;
            let ca_der = rkube_machinery::https::x509::pem_der(&ca)
                .with_context(|| format!("{}/ca.crt", layout.pki().display()))?;
            let token = rkube::token::create(&client, &description, ttl).await?;
            let join = rkube::token::JoinToken {
                ca_hash: rkube::token::ca_hash(&ca_der),
                token,
            };
            println!("{join}");
        }
        TokenCommand::List => {
            let tokens = rkube::token::list(&client).await?;
            print!("{}", rkube::token::table(&tokens, jiff::Timestamp::now()));
        }
        TokenCommand::Delete { tokens } => {
            for t in tokens {
                let id = rkube::token::id_of(&t)?;
                rkube::token::delete(&client, &id).await?;
                println!("bootstrap token {id:?} deleted");
            }
        }
    }
    Ok(())
}
