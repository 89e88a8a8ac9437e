//! `completion bash|zsh|fish`: shell completion scripts generated from the command line
//! definition.

use clap::CommandFactory;

use crate::cli::{Cli, CompletionArgs};
use crate::error::Result;

/// Prints the completion script.
pub fn run(args: &CompletionArgs) -> Result<()> {
    let mut buf = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "rkubectl", &mut buf);
    crate::output::out(&String::from_utf8_lossy(&buf));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bash_script_names_commands() {
        let mut buf = Vec::new();
        clap_complete::generate(
            clap_complete::Shell::Bash,
            &mut Cli::command(),
            "rkubectl",
            &mut buf,
        );
        let s = String::from_utf8(buf).unwrap();
        assert!(s.contains("rkubectl"));
        assert!(s.contains("apply"));
        assert!(s.contains("rollout"));
    }
}
