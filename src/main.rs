//! `genesis`: the Genesis Orchestrator binary. Parses the command line and configuration at the edge
//! and wires the actor runtime (`genesis-actors`) to a bus; `anyhow` lives here and nowhere else.

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
    match commands::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<commands::Exit>() {
            // The command ran and printed its result; the status says which result it was.
            Some(exit) => ExitCode::from(exit.code),
            None => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}
