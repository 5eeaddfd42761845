//! `genesis`: the Genesis Orchestrator binary. Parses the command line and configuration at the edge
//! and wires the actor runtime (`genesis-actors`) to a bus; `anyhow` lives here and nowhere else.
//!
//! Output goes through `outln!`/`errln!` (module `output`), never `println!`: a closed pipe must end
//! a command quietly, not panic. The lints below keep it that way.
#![warn(clippy::print_stdout, clippy::print_stderr)]

#[macro_use]
mod output;
mod cli;
mod commands;
mod config;
mod http;
mod submit;
mod systemd;
mod telemetry;

use clap::Parser;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let code = match commands::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<commands::Exit>() {
            // The command ran and printed its result; the status says which result it was.
            Some(exit) => ExitCode::from(exit.code),
            None => {
                errln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
    };
    match output::finish() {
        Some(e) if code == ExitCode::SUCCESS => {
            errln!("error: cannot write the output: {e}");
            ExitCode::FAILURE
        }
        _ => code,
    }
}
