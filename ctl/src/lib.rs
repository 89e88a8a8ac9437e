//! rkubectl, rkube's kubectl-compatible command line client: kubeconfig handling like
//! kubectl's, kube-rs for every API call, the server's tables and kubectl's output formats,
//! and the commands of `kubectl` users reach for (apply, get, describe, delete, edit, patch,
//! label, annotate, scale, rollout, set image, expose, create, logs, wait, cordon, drain,
//! api-resources, explain, config, completion…).
//!
//! Start-up stays cheap: arguments are parsed before anything else, and commands that need no
//! server (`version --client`, `config`, `completion`) never build a runtime or a client.

pub mod cli;
pub mod client;
pub mod cmd;
pub mod config;
pub mod discovery;
pub mod error;
pub mod manifest;
pub mod output;
pub mod print;
pub mod resource;
pub mod util;

use cli::{Cli, Command};
use error::Result;

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match &cli.command {
        Command::Version(v) if v.client => return cmd::version::client_only(v),
        Command::Completion(c) => return cmd::completion::run(c),
        Command::Config(c) => return cmd::config::run(&cli.global, c),
        _ => {}
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(cmd::dispatch(cli))
}
