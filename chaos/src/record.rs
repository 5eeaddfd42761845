//! What a run records: the tasks it published, the executions the executor reported and the chaos
//! events it caused. Timestamps are microseconds since the start of the run (one monotonic clock).
//! A run writes all of it to `run.json` so `genesis-chaos check` can check the same Redis again.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Instant;

/// The run's clock: microseconds since it started.
#[derive(Debug, Clone, Copy)]
pub struct Clock(Instant);

impl Clock {
    pub fn start() -> Self {
        Clock(Instant::now())
    }

    pub fn us(&self) -> u64 {
        self.0.elapsed().as_micros() as u64
    }
}

/// The outcome the payload steers the task to (`Either` when it depends on budgets or outages).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    Succeeded,
    /// Dead with this reason (`retries_exhausted`, `poison`, `fatal_error`).
    Dead(String),
    Either,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublishedTask {
    pub task_id: String,
    pub topic: String,
    /// noop | sleep | panic | poison | fail_ok | fail_dead | fatal | pay
    pub kind: String,
    pub panic_deliveries: u32,
    pub max_retries: u32,
    pub expect: Expect,
    pub published_at_us: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecReport {
    pub task_id: String,
    pub attempt: u32,
    pub deliveries: u32,
    pub node: String,
    pub agent: String,
    /// start | end
    pub phase: String,
    #[serde(default)]
    pub outcome: Option<String>,
    /// When the harness received it.
    pub at_us: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// SIGKILL of a node by the harness.
    NodeKill,
    /// A node process exited without the harness killing it (e.g. its root supervisor gave up).
    NodeExited,
    NodeRestart,
    /// SIGKILL of redis-server.
    RedisKill,
    /// redis-server answers PING again after a restart.
    RedisUp,
}

impl EventKind {
    /// Whether the event interrupts running work (and so may explain a repeated execution).
    pub fn is_crash(self) -> bool {
        matches!(self, EventKind::NodeKill | EventKind::NodeExited | EventKind::RedisKill)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChaosEvent {
    pub at_us: u64,
    pub kind: EventKind,
    #[serde(default)]
    pub node: Option<String>,
    pub detail: String,
}

/// Configured money limits (no per-name overrides in the chaos config).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Limits {
    pub agent_daily_cents: u64,
    pub business_total_cents: u64,
    pub tenant_daily_cents: u64,
}

/// One agent of the generated roster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentConf {
    pub name: String,
    pub concurrency: u32,
    pub max_retries: u32,
}

/// Everything the checker needs besides Redis.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunRecord {
    pub seed: u64,
    pub agents: Vec<AgentConf>,
    pub limits: Option<Limits>,
    pub tasks: Vec<PublishedTask>,
    pub reports: Vec<ExecReport>,
    pub events: Vec<ChaosEvent>,
}

impl RunRecord {
    pub fn max_retries_by_topic(&self) -> BTreeMap<String, u32> {
        self.agents.iter().map(|a| (a.name.clone(), a.max_retries)).collect()
    }
}
