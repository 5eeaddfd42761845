//! Command-line interface.

use clap::{Args, Parser, Subcommand};
use genesis_actors::task::{TenantId, DEFAULT_TENANT};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "genesis", version, about = "Genesis Orchestrator: supervised AI business agents over Redis Streams")]
pub struct Cli {
    /// Service configuration file (it names the roster file too). Default: ./config/genesis.toml,
    /// else /etc/genesis/genesis.toml, whichever exists first.
    #[arg(long, global = true, env = "GENESIS_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone, Default)]
pub struct RedisOpt {
    /// Redis URL (redis://, rediss://, unix://); overrides bus.redis_url from the config.
    #[arg(long, env = "GENESIS_REDIS_URL")]
    pub redis_url: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a node: the whole supervised actor tree. Without a Redis URL it runs on the in-process bus.
    Serve {
        #[command(flatten)]
        redis: RedisOpt,
        /// This node's id (overrides node.id). A node restarted with the same id replays its own
        /// pending entries first.
        #[arg(long, env = "GENESIS_NODE_ID")]
        node_id: Option<String>,
        /// Address of the HTTP listener (/healthz, /readyz, /metrics, /v1/tasks), e.g. 127.0.0.1:9465;
        /// overrides http.addr. `--http-addr ""` disables HTTP (an empty GENESIS_HTTP_ADDR counts as unset).
        #[arg(long, env = "GENESIS_HTTP_ADDR", value_name = "IP:PORT")]
        http_addr: Option<String>,
        /// Serve /metrics, open (no API key), on this address of its own; overrides http.metrics_addr.
        /// `--metrics-addr ""` puts it back on the HTTP listener (admin keys only).
        #[arg(long, env = "GENESIS_METRICS_ADDR", value_name = "IP:PORT")]
        metrics_addr: Option<String>,
    },
    /// Publish a task; prints its task id.
    Publish {
        #[command(flatten)]
        redis: RedisOpt,
        /// The roster topic to publish on, e.g. genesis.build.
        #[arg(long)]
        topic: String,
        /// The task payload, as JSON.
        #[arg(long)]
        payload: String,
        /// The task's tenant: 1 to 128 of letters, digits, ':', '.', '_' and '-'.
        #[arg(long, default_value = DEFAULT_TENANT)]
        tenant: TenantId,
        /// Topic that receives this task's result as a new task; `a,b` chains further hops.
        #[arg(long)]
        reply_to: Option<String>,
        /// Correlation id (defaults to the task id).
        #[arg(long)]
        correlation_id: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Inspect tasks.
    Task {
        #[command(subcommand)]
        command: TaskCommand,
    },
    /// Business workflows: DAGs of agent tasks (docs/workflows.md).
    Workflow {
        #[command(subcommand)]
        command: WorkflowCommand,
    },
    /// Inspect and act on dead-letter queues.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Inspect the bus.
    Bus {
        #[command(subcommand)]
        command: BusCommand,
    },
    /// Live nodes (last heartbeat, workers per agent) and queue, pending and DLQ depth per topic.
    Health {
        #[command(flatten)]
        redis: RedisOpt,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The payment authority: intents, settlement, reviews, ledger, summaries.
    Payments {
        #[command(subcommand)]
        command: PaymentsCommand,
    },
    /// Budgets and their use.
    Budget {
        #[command(subcommand)]
        command: BudgetCommand,
    },
    /// The HTTP API's keys: create (shown once), list, revoke. Acts on the bus: no key needed.
    Apikey {
        #[command(subcommand)]
        command: crate::commands::apikey::ApikeyCommand,
    },
    /// Validate the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum TaskCommand {
    /// Show a task's status, attempts, result and error.
    Get {
        #[command(flatten)]
        redis: RedisOpt,
        /// The task id that `publish` printed.
        id: String,
        /// Look only in this topic (default: every roster topic).
        #[arg(long)]
        topic: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// A task with its parents and children: the reply_to hops before and after it, and for a
    /// workflow's step the steps it needs and the steps that need it.
    Tree {
        #[command(flatten)]
        redis: RedisOpt,
        /// The task id.
        id: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Cancel a task: a queued or retrying one is dead-lettered (reason cancelled) without running; a
    /// running one is stopped at its agent by the node running it. A finished task is left as it is
    /// (exit status 1).
    Cancel {
        #[command(flatten)]
        redis: RedisOpt,
        /// The task id that `publish` printed.
        id: String,
        /// Look only in this topic (default: every roster topic).
        #[arg(long)]
        topic: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum WorkflowCommand {
    /// Start a workflow from a template (config/workflows/NAME.toml) or a whole plan; prints its id.
    Start {
        #[command(flatten)]
        redis: RedisOpt,
        /// The template to start, e.g. business or landing-page.
        #[arg(long, conflicts_with = "plan")]
        template: Option<String>,
        /// A whole plan as JSON, or @FILE to read it from a file.
        #[arg(long)]
        plan: Option<String>,
        /// The business request, a JSON object (every template step gets it as `request`).
        #[arg(long)]
        input: Option<String>,
        /// The workflow's tenant: 1 to 128 of letters, digits, ':', '.', '_' and '-'.
        #[arg(long, default_value = DEFAULT_TENANT)]
        tenant: TenantId,
        /// The business the workflow works for (default: the plan's, else the workflow id).
        #[arg(long)]
        business: Option<String>,
        /// The most the workflow's steps may spend together, in cents (overrides the template's).
        #[arg(long, value_name = "CENTS")]
        budget_cents: Option<u64>,
        /// Print the whole workflow as JSON instead of its id.
        #[arg(long)]
        json: bool,
    },
    /// Show a workflow: status, reason, and per step its agent, status, task, attempts, times, output
    /// and why routing chose its agent.
    Get {
        #[command(flatten)]
        redis: RedisOpt,
        /// The workflow id that `start` printed.
        id: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List workflows, newest first.
    List {
        #[command(flatten)]
        redis: RedisOpt,
        /// Only this status: running, compensating, succeeded, failed or cancelled.
        #[arg(long)]
        status: Option<String>,
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<TenantId>,
        /// At most this many (default 50, at most 1000).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Cancel a running workflow: no new steps start, running ones are stopped at their agents, then the
    /// compensations of the steps that succeeded run (latest first).
    Cancel {
        #[command(flatten)]
        redis: RedisOpt,
        /// The workflow id.
        id: String,
        /// Print the workflow as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a failed workflow again from the steps that did not succeed, keeping the others' outputs.
    Retry {
        #[command(flatten)]
        redis: RedisOpt,
        /// The workflow id.
        id: String,
        /// Print the workflow as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum DlqCommand {
    /// List dead letters of a topic, oldest first.
    List {
        #[command(flatten)]
        redis: RedisOpt,
        /// The roster topic whose dead letters to list.
        #[arg(long)]
        topic: String,
        /// Only dead letters with this reason (poison, retries_exhausted, timeout, fatal_error, decode_error).
        #[arg(long)]
        reason: Option<String>,
        /// List at most this many (oldest first).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Put dead letters back on their topic as attempt 1.
    Replay {
        #[command(flatten)]
        redis: RedisOpt,
        /// The roster topic whose dead letters to replay.
        #[arg(long)]
        topic: String,
        /// The dead letter: its DLQ entry id, or the id of the task that died.
        #[arg(long, required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Replay every dead letter of the topic.
        #[arg(long)]
        all: bool,
        /// With --all: only dead letters with this reason.
        #[arg(long, requires = "all")]
        reason: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Delete one dead letter for good.
    Delete {
        #[command(flatten)]
        redis: RedisOpt,
        /// The topic whose DLQ holds it, e.g. genesis.build.
        #[arg(long)]
        topic: String,
        /// The dead letter: its DLQ entry id, or the id of the task that died.
        #[arg(long)]
        id: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Delete every dead letter of a topic (or those with one reason). Asks first on a terminal.
    Purge {
        #[command(flatten)]
        redis: RedisOpt,
        /// The roster topic whose dead letters to delete.
        #[arg(long)]
        topic: String,
        /// Only dead letters with this reason.
        #[arg(long)]
        reason: Option<String>,
        /// Do not ask for confirmation (required when stdin is not a terminal).
        #[arg(long)]
        yes: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum BusCommand {
    /// Per topic: stream length, pending, lag, consumers, retries waiting and DLQ depth.
    Stats {
        #[command(flatten)]
        redis: RedisOpt,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Validate genesis.toml and the roster; names the exact key and problem on error.
    Check {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum PaymentsCommand {
    /// Submit one payment intent to the ledger (the same rules the MetaAgent applies) and print the decision.
    ///
    /// Exit status: 0 approved (reserved), 3 denied, 4 held for review (decide it with `genesis payments
    /// review approve|deny`), 2 bad arguments, 1 no decision was made (configuration, Redis). The
    /// decision is printed in every case.
    Intent {
        #[command(flatten)]
        redis: RedisOpt,
        /// The paying agent (a roster name, e.g. genesis.marketing).
        #[arg(long)]
        agent: String,
        /// The vendor's host, e.g. openai.com; it must be on payments.vendor_whitelist.
        #[arg(long)]
        vendor: String,
        /// The amount, in cents.
        #[arg(long, allow_negative_numbers = true)]
        amount_cents: i64,
        /// What the money is for (kept in the ledger).
        #[arg(long, default_value = "")]
        reason: String,
        /// The idempotency key of this payment: 1 to 128 of A-Z a-z 0-9 : . _ -.
        #[arg(long)]
        mandate: String,
        /// The business paying; it belongs to the first tenant that spends for it.
        #[arg(long, default_value = "default")]
        business: String,
        /// The tenant whose budgets pay.
        #[arg(long, default_value = DEFAULT_TENANT)]
        tenant: TenantId,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Mark an approved reservation as spent.
    Capture {
        #[command(flatten)]
        redis: RedisOpt,
        /// The mandate id of the approved intent.
        #[arg(long)]
        mandate: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Return an approved reservation to its budgets (the purchase did not happen).
    Release {
        #[command(flatten)]
        redis: RedisOpt,
        /// The mandate id of the approved intent.
        #[arg(long)]
        mandate: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Intents held for review (above payments.review_above_cents).
    Review {
        #[command(subcommand)]
        command: ReviewCommand,
    },
    /// The decision log of one UTC day.
    Ledger {
        #[command(flatten)]
        redis: RedisOpt,
        /// Only this agent's decisions.
        #[arg(long)]
        agent: Option<String>,
        /// Only this tenant's decisions (default: every tenant's).
        #[arg(long)]
        tenant: Option<TenantId>,
        /// YYYY-MM-DD (UTC); default today.
        #[arg(long)]
        date: Option<String>,
        /// Show at most this many decisions.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Spend summary of a business; `--post` sends it to the dashboard webhook.
    Summary {
        #[command(flatten)]
        redis: RedisOpt,
        /// The business to summarise.
        #[arg(long)]
        business: String,
        /// Also send it to payments.notify.dashboard_webhook.
        #[arg(long)]
        post: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Record a business's projected revenue (used for ROI in summaries).
    Revenue {
        #[command(flatten)]
        redis: RedisOpt,
        /// The business whose revenue this is.
        #[arg(long)]
        business: String,
        /// Projected revenue, in cents.
        #[arg(long)]
        projected_cents: u64,
    },
}

#[derive(Subcommand, Debug)]
pub enum ReviewCommand {
    /// Intents waiting for a decision.
    List {
        #[command(flatten)]
        redis: RedisOpt,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Approve a held intent; its budgets are checked again now.
    Approve {
        #[command(flatten)]
        redis: RedisOpt,
        /// The mandate id of the held intent.
        mandate: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Deny a held intent.
    Deny {
        #[command(flatten)]
        redis: RedisOpt,
        /// The mandate id of the held intent.
        mandate: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum BudgetCommand {
    /// Limits, reserved, captured and remaining per tenant: each agent (today, in that tenant), the
    /// tenant's businesses, the tenant (today).
    Show {
        #[command(flatten)]
        redis: RedisOpt,
        /// Only this tenant (default: every tenant the ledger knows, or `default` if it knows none).
        #[arg(long)]
        tenant: Option<TenantId>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// Every subcommand has an `about` and every argument a `help`, all the way down, so
    /// `genesis <cmd> --help` never shows a bare flag.
    #[test]
    fn every_command_and_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !builtin && arg.get_help().is_none() {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                let sub_path = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() {
                    missing.push(format!("{sub_path} (about)"));
                }
                walk(sub, &sub_path, missing);
            }
        }
        let cmd = Cli::command();
        cmd.clone().debug_assert();
        let mut missing = Vec::new();
        walk(&cmd, "genesis", &mut missing);
        assert!(missing.is_empty(), "without help text: {missing:#?}");
    }
}
