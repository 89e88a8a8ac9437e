//! The commands, one module each, and the dispatch from the parsed command line.

pub mod api;
pub mod apply;
pub mod common;
pub mod completion;
pub mod config;
pub mod create;
pub mod delete;
pub mod describe;
pub mod edit;
pub mod explain;
pub mod expose;
pub mod get;
pub mod label;
pub mod logs;
pub mod node;
pub mod patch;
pub mod podresources;
pub mod rollout;
pub mod scale;
pub mod set;
pub mod top;
pub mod version;
pub mod wait;

use crate::cli::{Cli, Command};
use crate::client::Ctx;
use crate::error::Result;

/// Connects and runs a command that talks to the server.
pub async fn dispatch(cli: Cli) -> Result<()> {
    let ctx = Ctx::new(&cli.global).await?;
    match &cli.command {
        Command::Apply(a) => apply::run(&ctx, a).await,
        Command::Create(a) => create::run(&ctx, a).await,
        Command::Get(a) => get::run(&ctx, a).await,
        Command::Describe(a) => describe::run(&ctx, a).await,
        Command::Delete(a) => delete::run(&ctx, a).await,
        Command::Edit(a) => edit::run(&ctx, a).await,
        Command::Patch(a) => patch::run(&ctx, a).await,
        Command::Label(a) => label::run(&ctx, a, label::Which::Labels).await,
        Command::Annotate(a) => label::run(&ctx, a, label::Which::Annotations).await,
        Command::Scale(a) => scale::run(&ctx, a).await,
        Command::Rollout(a) => rollout::run(&ctx, &a.command).await,
        Command::Set(a) => set::run(&ctx, &a.command).await,
        Command::Expose(a) => expose::run(&ctx, a).await,
        Command::Logs(a) => logs::run(&ctx, a).await,
        Command::Wait(a) => wait::run(&ctx, a).await,
        Command::Cordon(a) => node::cordon(&ctx, a, true).await,
        Command::Uncordon(a) => node::cordon(&ctx, a, false).await,
        Command::Drain(a) => node::drain(&ctx, a).await,
        Command::Top(a) => top::run(&ctx, &a.command).await,
        Command::ApiResources(a) => api::api_resources(&ctx, a).await,
        Command::ApiVersions => api::api_versions(&ctx).await,
        Command::Explain(a) => explain::run(&ctx, a).await,
        Command::ClusterInfo => api::cluster_info(&ctx).await,
        Command::Version(a) => version::run(&ctx, a).await,
        // Handled before a connection is made (see `crate::run`).
        Command::Config(c) => config::run(&cli.global, c),
        Command::Completion(c) => completion::run(c),
    }
}
