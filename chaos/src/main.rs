//! `genesis-chaos`: the chaos harness of Genesis Orchestrator. See `docs/CHAOS.md`.
//!
//! Exit status: 0 when every invariant holds, 1 on any violation, 2 on a harness error.

use clap::{Args, Parser, Subcommand};
use genesis_chaos::check::{self, Options};
use genesis_chaos::harness::{self, RunOptions};
use genesis_chaos::parse_duration;
use genesis_chaos::record::{AgentsMode, RunRecord, Workload};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "genesis-chaos",
    version,
    about = "Chaos harness: kill nodes and Redis under load, then check the invariants"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start Redis and nodes, publish a seeded workload, cause chaos, wait, check.
    Run(RunArgs),
    /// Check a Redis against a recorded run (`run.json` of a run kept with --keep-dir).
    Check {
        #[arg(long)]
        redis_url: String,
        /// The run record (tasks, reports, events) written by `run`.
        #[arg(long, alias = "tasks-file")]
        run_file: PathBuf,
        #[arg(long, default_value_t = 5)]
        trim_slack: u64,
        #[arg(long)]
        report_json: Option<PathBuf>,
    },
}

#[derive(Args, Debug)]
struct RunArgs {
    /// How long tasks are published and chaos is caused.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    /// Tasks to publish, spread evenly over the duration.
    #[arg(long, default_value_t = 2000)]
    tasks: usize,
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Seeds the workload and the chaos schedule.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Mean interval between node kills (±30 %); 0 disables.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    node_kill_every: Duration,
    /// Mean interval between Redis kills (±30 %); 0 disables.
    #[arg(long, default_value = "25s", value_parser = parse_duration)]
    redis_restart_every: Duration,
    /// The roster's agents: `simulated` (the simulated executor) or `outside` (real A2A agents on
    /// a2a-sdk and process agents, from tests/agents/).
    #[arg(long, value_enum, default_value_t = AgentsMode::Simulated)]
    agents: AgentsMode,
    /// What the run publishes: `tasks` (plain tasks), `workflows` (random DAG workflows, some
    /// cancelled, some retried; simulated agents only) or `mixed` (both).
    #[arg(long, value_enum, default_value_t = Workload::Tasks)]
    workload: Workload,
    /// Workflows started over the duration (`--workload workflows` or `mixed`).
    #[arg(long, default_value_t = 100)]
    workflows: usize,
    /// Outside agents: mean interval between SIGKILLs of an A2A agent's server (±30 %; back on its
    /// port 1–3 s later); 0 disables.
    #[arg(long, default_value = "8s", value_parser = parse_duration)]
    agent_kill_every: Duration,
    /// Tasks that crash their first delivery: worker panics (simulated), process-agent crashes (outside).
    #[arg(long, default_value_t = 0.05)]
    panic_ratio: f64,
    #[arg(long, default_value_t = 0.1)]
    fail_ratio: f64,
    /// Tasks that ask for money (simulated agents; process agents' `pay` in outside runs).
    #[arg(long, default_value_t = 0.1)]
    pay_ratio: f64,
    /// Outside agents: long tasks, half of them past the agent's timeout (cancelled at the agent).
    #[arg(long, default_value_t = 0.05)]
    slow_ratio: f64,
    /// The `genesis` binary (default: next to this executable).
    #[arg(long)]
    genesis_bin: Option<PathBuf>,
    /// Write the full report (numbers, violations, events) as JSON.
    #[arg(long)]
    report_json: Option<PathBuf>,
    /// Keep the run directory (Redis data, node logs, run.json).
    #[arg(long)]
    keep_dir: bool,
    /// How long to wait for every task to be final after the chaos phase.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    settle_timeout: Duration,
    /// RUST_LOG of the nodes.
    #[arg(long, default_value = "info")]
    node_log: String,
}

fn nonzero(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

async fn run(a: RunArgs) -> anyhow::Result<bool> {
    let ratios = [a.panic_ratio, a.fail_ratio, a.pay_ratio, a.slow_ratio];
    if ratios.iter().any(|r| !(0.0..=1.0).contains(r)) {
        anyhow::bail!("ratios must be within 0..1");
    }
    match a.agents {
        AgentsMode::Simulated if a.panic_ratio * 1.1 + a.fail_ratio + a.pay_ratio > 0.99 => {
            anyhow::bail!("ratios must leave room for no-op tasks (panic×1.1 + fail + pay ≤ 0.99)")
        }
        AgentsMode::Outside if a.panic_ratio + a.fail_ratio + a.pay_ratio + a.slow_ratio > 0.99 => {
            anyhow::bail!("ratios must leave room for echo tasks (panic + fail + pay + slow ≤ 0.99)")
        }
        _ => {}
    }
    if a.workload.workflows() && a.agents != AgentsMode::Simulated {
        anyhow::bail!("--workload {:?} runs on the simulated agents only (drop --agents outside)", a.workload);
    }
    if a.nodes == 0 {
        anyhow::bail!("--nodes must be at least 1");
    }
    let genesis_bin = match a.genesis_bin {
        Some(p) => p,
        None => std::env::current_exe()?.parent().map(|d| d.join("genesis")).unwrap_or_else(|| "genesis".into()),
    };
    let report_json = a.report_json.clone();
    let o = RunOptions {
        duration: a.duration,
        tasks: a.tasks,
        nodes: a.nodes,
        seed: a.seed,
        node_kill_every: nonzero(a.node_kill_every),
        redis_restart_every: nonzero(a.redis_restart_every),
        panic_ratio: a.panic_ratio,
        fail_ratio: a.fail_ratio,
        pay_ratio: a.pay_ratio,
        slow_ratio: a.slow_ratio,
        agents: a.agents,
        workload: a.workload,
        workflows: a.workflows,
        agent_kill_every: nonzero(a.agent_kill_every),
        genesis_bin,
        report_json: a.report_json,
        keep_dir: a.keep_dir,
        settle_timeout: a.settle_timeout,
        node_log: a.node_log,
    };
    let report = harness::run(o).await?;
    report.print();
    if let Some(path) = report_json {
        std::fs::write(&path, serde_json::to_vec_pretty(&report)?)?;
    }
    Ok(report.ok)
}

async fn check_cmd(
    url: String,
    run_file: PathBuf,
    trim_slack: u64,
    report_json: Option<PathBuf>,
) -> anyhow::Result<bool> {
    let record: RunRecord = serde_json::from_slice(&std::fs::read(&run_file)?)?;
    let report = check::check(&url, &record, Options { trim_slack, ..Options::default() }).await?;
    report.print();
    println!("== {}", if report.ok() { "PASS: every invariant holds" } else { "FAIL: invariants violated" });
    if let Some(path) = report_json {
        std::fs::write(&path, serde_json::to_vec_pretty(&report)?)?;
    }
    Ok(report.ok())
}

fn main() {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("genesis-chaos: harness error: {e}");
            std::process::exit(2);
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Command::Run(a) => run(a).await,
            Command::Check { redis_url, run_file, trim_slack, report_json } => {
                check_cmd(redis_url, run_file, trim_slack, report_json).await
            }
        }
    });
    let code = match result {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            eprintln!("genesis-chaos: harness error: {e:#}");
            2
        }
    };
    drop(rt);
    std::process::exit(code);
}
