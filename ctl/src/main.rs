//! `rkubectl`: parses the command line, runs the command, prints the error kubectl's way and
//! exits non-zero on failure.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = rkube_ctl::cli::Cli::parse();
    match rkube_ctl::run(cli) {
        Ok(()) => Ok(()),
        Err(e) => {
            let msg = e.to_string();
            if !msg.is_empty() {
                eprintln!("{msg}");
            }
            std::process::exit(e.exit_code());
        }
    }
}
