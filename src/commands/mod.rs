//! One module per command family; shared helpers to load the configuration and reach the bus.

pub mod apikey;
mod dlq;
mod health;
mod payments;
mod serve;
mod stats;
mod tasks;
mod tree;
mod workflows;

use crate::cli::{BusCommand, Cli, Command, ConfigCommand, RedisOpt, TaskCommand, WorkflowCommand};
use crate::config::{self, ServiceConfig};
use anyhow::{bail, Context, Result};
use genesis_actors::bus::redis::RedisBus;
use genesis_actors::bus::Bus;
use genesis_actors::connection::{Connector, RedisOptions, RedisTarget};
use genesis_actors::executor::ExecutorRegistry;
use genesis_actors::task::TopicName;

/// A command that ran to the end and printed its result, but whose result is not a success: the
/// process exits with `code` (and prints nothing more). Scripts tell the results apart by the code,
/// e.g. `genesis payments intent`: 3 denied, 4 held for review.
#[derive(Debug, thiserror::Error)]
#[error("exit status {code}")]
pub struct Exit {
    pub code: u8,
}

async fn workflow(cfg: &ServiceConfig, command: WorkflowCommand) -> Result<()> {
    match command {
        WorkflowCommand::Start { redis, template, plan, input, tenant, business, budget_cents, json } => {
            let bus = connect(cfg, &redis).await?;
            let args = workflows::StartArgs { template, plan, input, tenant, business, budget_cents, json };
            workflows::start(cfg, &bus, args).await
        }
        WorkflowCommand::Get { redis, id, json } => workflows::get(cfg, &connect(cfg, &redis).await?, &id, json).await,
        WorkflowCommand::List { redis, status, tenant, limit, json } => {
            let bus = connect(cfg, &redis).await?;
            workflows::list(cfg, &bus, status.as_deref(), tenant, limit, json).await
        }
        WorkflowCommand::Cancel { redis, id, json } => {
            workflows::cancel(cfg, &connect(cfg, &redis).await?, &id, json).await
        }
        WorkflowCommand::Retry { redis, id, json } => {
            workflows::retry(cfg, &connect(cfg, &redis).await?, &id, json).await
        }
    }
}

pub async fn run(cli: Cli) -> Result<()> {
    let cfg = load(&cli)?;
    let level = if matches!(cli.command, Command::Serve { .. }) { "info" } else { "warn" };
    let node = match &cli.command {
        Command::Serve { node_id: Some(id), .. } => id.clone(),
        _ => cfg.settings.node_id.clone(),
    };
    let telemetry = crate::telemetry::init(level, &cfg.telemetry, &node);
    let result = dispatch(cfg, cli.command).await;
    telemetry.shutdown();
    result
}

async fn dispatch(cfg: ServiceConfig, command: Command) -> Result<()> {
    match command {
        Command::Serve { redis, node_id, http_addr, metrics_addr } => {
            serve::run(cfg, redis, node_id, http_addr, metrics_addr).await
        }
        Command::Apikey { command } => apikey::run(&cfg, command).await,
        Command::Publish { redis, topic, payload, tenant, reply_to, correlation_id, json } => {
            let payload =
                serde_json::from_str(&payload).map_err(|e| anyhow::anyhow!("--payload is not valid JSON: {e}"))?;
            let bus = connect(&cfg, &redis).await?;
            let req = crate::submit::SubmitRequest { topic, payload, tenant: Some(tenant), reply_to, correlation_id };
            tasks::publish(&cfg, &bus, req, json).await
        }
        Command::Task { command: TaskCommand::Get { redis, id, topic, json } } => {
            let bus = connect(&cfg, &redis).await?;
            tasks::get(&cfg, &bus, &id, topic.as_deref(), json).await
        }
        Command::Task { command: TaskCommand::Tree { redis, id, json } } => {
            let bus = connect(&cfg, &redis).await?;
            tree::tree(&cfg, &bus, &id, json).await
        }
        Command::Task { command: TaskCommand::Cancel { redis, id, topic, json } } => {
            let bus = connect(&cfg, &redis).await?;
            tasks::cancel(&cfg, &bus, &id, topic.as_deref(), json).await
        }
        Command::Workflow { command } => workflow(&cfg, command).await,
        Command::Dlq { command } => dlq::run(&cfg, command).await,
        Command::Bus { command: BusCommand::Stats { redis, json } } => {
            let bus = connect(&cfg, &redis).await?;
            stats::run(&cfg, &bus, json).await
        }
        Command::Health { redis, json } => {
            let bus = connect(&cfg, &redis).await?;
            health::run(&cfg, &bus, json).await
        }
        Command::Payments { command } => payments::run(&cfg, command).await,
        Command::Budget { command } => payments::budget(&cfg, command).await,
        Command::Config { command: ConfigCommand::Check { json } } => {
            let summary = serde_json::json!({
                "ok": true,
                "config": cfg.source.display().to_string(),
                "node_id": cfg.settings.node_id,
                "bus": if cfg.redis.url.is_some() { "redis" } else { "memory" },
                "agents": cfg.roster.agents.len(),
                "http_auth": match cfg.http.auth.mode {
                    crate::http::auth::AuthMode::Required => "required",
                    crate::http::auth::AuthMode::Off => "off",
                },
                "api_keys_in_config": cfg.http.auth.configured.len(),
            });
            if json {
                outln!("{summary}");
            } else {
                outln!(
                    "ok: {} is valid ({} agents, node {}, {} bus)",
                    cfg.source.display(),
                    cfg.roster.agents.len(),
                    cfg.settings.node_id,
                    summary["bus"].as_str().unwrap_or("?")
                );
            }
            Ok(())
        }
    }
}

fn load(cli: &Cli) -> Result<ServiceConfig> {
    let registry = ExecutorRegistry::builtin();
    let path = config::locate(cli.config.as_deref())?;
    Ok(config::load(&path, &registry.names())?)
}

/// Where Redis is, checked: the flag's URL (or `GENESIS_REDIS_URL`) over the configuration's, with the
/// configuration's TLS and password files. `None`: no Redis configured (the in-process bus).
fn redis_target(cfg: &ServiceConfig, opt: &RedisOpt) -> Result<Option<RedisTarget>> {
    let (opts, key) = match opt.redis_url.clone().filter(|u| !u.is_empty()) {
        Some(url) => (RedisOptions { url: Some(url.into()), ..cfg.redis.clone() }, "--redis-url"),
        None => (cfg.redis.clone(), "bus.redis_url"),
    };
    if opts.url.is_none() {
        return Ok(None);
    }
    Ok(Some(RedisTarget::resolve(&opts, key)?))
}

fn connector(cfg: &ServiceConfig, target: RedisTarget) -> Result<Connector> {
    let shown = target.shown.clone();
    Connector::new(target, cfg.settings.bus.reconnect).map_err(|e| {
        anyhow::anyhow!("bus.redis_url = \"{shown}\": {}", genesis_actors::secret::redact_url(&e.to_string()))
    })
}

/// Connect to Redis for a one-shot command. The embedded bus lives only inside `genesis serve`, so
/// these commands need Redis.
async fn connect(cfg: &ServiceConfig, opt: &RedisOpt) -> Result<Bus> {
    let Some(target) = redis_target(cfg, opt)? else {
        bail!(
            "no Redis URL: pass --redis-url, set GENESIS_REDIS_URL, or set bus.redis_url in {} \
             (the in-process bus lives inside `genesis serve` and cannot be reached from another process)",
            cfg.source.display()
        );
    };
    let shown = target.shown.clone();
    let bus = RedisBus::open(connector(cfg, target)?, cfg.replication)
        .await
        .with_context(|| format!("cannot connect to {shown}"))?;
    Ok(Bus::Redis(bus))
}

/// Parse a topic given on the command line and check it is in the roster.
fn roster_topic(cfg: &ServiceConfig, flag: &str, value: &str) -> Result<TopicName> {
    Ok(crate::submit::roster_topic(&cfg.roster, flag, value)?)
}
