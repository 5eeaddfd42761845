//! The roster: which agents run, on which topic, with what limits. Adding an agent is a config change.

use crate::bus::dlq::DlqOverride;
use crate::secret::Hidden;
use crate::task::TopicName;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// One agent of the roster, already validated (see the binary's `config` module for parsing).
#[derive(Debug, Clone, PartialEq)]
pub struct AgentSpec {
    /// Unique agent name, e.g. `genesis.build`; also the actor name prefix.
    pub name: String,
    /// The topic this agent consumes.
    pub topic: TopicName,
    /// Number of worker actors, i.e. tasks run at once by this agent on one node.
    pub concurrency: usize,
    /// Retries after the first attempt; attempts ≤ max_retries + 1.
    pub max_retries: u32,
    /// Delay before the first retry; later retries grow by the retry backoff multiplier.
    pub retry_delay: Duration,
    /// A handler running longer than this is cancelled and the attempt counts as failed.
    pub timeout: Duration,
    /// What runs this agent's tasks, with its settings.
    pub executor: ExecutorSpec,
    /// A rate limit shared by every node (one Redis key per agent), for a global LLM or vendor quota.
    pub rate: Option<RateLimit>,
    /// When this agent's endpoint counts as down, and for how long the fetcher then stops reading.
    pub breaker: BreakerSpec,
    /// This agent's topic's DLQ retention, where it differs from `bus.dlq_*`.
    pub dlq: DlqOverride,
}

/// The whole roster, in configuration order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Roster {
    pub agents: Vec<AgentSpec>,
}

impl Roster {
    pub fn topics(&self) -> impl Iterator<Item = &TopicName> {
        self.agents.iter().map(|a| &a.topic)
    }

    pub fn by_topic(&self, topic: &TopicName) -> Option<&AgentSpec> {
        self.agents.iter().find(|a| &a.topic == topic)
    }

    pub fn by_name(&self, name: &str) -> Option<&AgentSpec> {
        self.agents.iter().find(|a| a.name == name)
    }
}

/// How an agent's work runs (`executor` in `agents.toml` with its keys).
#[derive(Debug, Clone, PartialEq)]
pub enum ExecutorSpec {
    /// An executor registered by name in the [`crate::executor::ExecutorRegistry`] (`simulated`, or one
    /// an embedding program added).
    Named(String),
    /// An Agent2Agent 1.0 agent at `endpoint` (its card at `/.well-known/agent-card.json`).
    A2a(Endpoint),
    /// Any JSON service: one POST per attempt to `endpoint`.
    Http(Endpoint),
    /// A pool of long-lived child processes speaking JSON lines on stdio.
    Process(ProcessSpec),
}

impl ExecutorSpec {
    /// The `executor` value this came from.
    pub fn name(&self) -> &str {
        match self {
            ExecutorSpec::Named(n) => n,
            ExecutorSpec::A2a(_) => "a2a",
            ExecutorSpec::Http(_) => "http",
            ExecutorSpec::Process(_) => "process",
        }
    }
}

/// An outside agent's base URL and the headers sent on every request (values may be secrets, e.g. a
/// bearer token, so they never print).
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub url: String,
    pub headers: Vec<(String, Hidden)>,
}

/// A process agent: argv, working directory and extra environment.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessSpec {
    pub command: Vec<String>,
    pub cwd: Option<PathBuf>,
    pub env: BTreeMap<String, String>,
}

/// `rate = "60/min"`, `burst = 10`: at most `count` tasks per `per` on average across all nodes, with
/// up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub count: u32,
    pub per: Duration,
    pub burst: u32,
}

impl RateLimit {
    /// The steady interval between two tasks.
    pub fn interval(&self) -> Duration {
        self.per / self.count.max(1)
    }
}

/// Circuit breaker settings: `failures` consecutive endpoint failures open it for `open_for`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerSpec {
    pub failures: u32,
    pub open_for: Duration,
}

impl Default for BreakerSpec {
    fn default() -> Self {
        BreakerSpec { failures: 5, open_for: Duration::from_secs(10) }
    }
}

impl From<&str> for ExecutorSpec {
    fn from(name: &str) -> Self {
        ExecutorSpec::Named(name.to_string())
    }
}
