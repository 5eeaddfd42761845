//! Command-line interface.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "genesis", version, about = "Genesis Orchestrator: supervised AI business agents over Redis Streams")]
pub struct Cli {
    /// Service configuration file (names the roster file too).
    #[arg(long, global = true, env = "GENESIS_CONFIG", default_value = "config/genesis.toml")]
    pub config: PathBuf,
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
    },
    /// Publish a task; prints its task id.
    Publish {
        #[command(flatten)]
        redis: RedisOpt,
        #[arg(long)]
        topic: String,
        /// The task payload, as JSON.
        #[arg(long)]
        payload: String,
        #[arg(long, default_value = "default")]
        tenant: String,
        /// Topic that receives this task's result as a new task.
        #[arg(long)]
        reply_to: Option<String>,
        /// Correlation id (defaults to the task id).
        #[arg(long)]
        correlation_id: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Inspect tasks.
    Task {
        #[command(subcommand)]
        command: TaskCommand,
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
        id: String,
        /// Look only in this topic (default: every roster topic).
        #[arg(long)]
        topic: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum DlqCommand {
    /// List dead letters of a topic.
    List {
        #[command(flatten)]
        redis: RedisOpt,
        #[arg(long)]
        topic: String,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Put dead letters back on their topic as attempt 1.
    Replay {
        #[command(flatten)]
        redis: RedisOpt,
        #[arg(long)]
        topic: String,
        #[arg(long, required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Delete every dead letter of a topic.
    Purge {
        #[command(flatten)]
        redis: RedisOpt,
        #[arg(long)]
        topic: String,
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
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Validate genesis.toml and the roster; names the exact key and problem on error.
    Check {
        #[arg(long)]
        json: bool,
    },
}
