//! What a run records: the tasks it published, the executions the executor reported and the chaos
//! events it caused. Timestamps are microseconds since the start of the run (one monotonic clock).
//! A run writes all of it to `run.json` so `genesis-chaos check` can check the same Redis again.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The run's clock: microseconds since it started. It also knows the Unix time it started at, so
/// times written by others (Redis's `at` in task histories, in Unix milliseconds) can be placed on it.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
    unix_ms: u64,
}

impl Clock {
    pub fn start() -> Self {
        let unix_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        Clock { start: Instant::now(), unix_ms }
    }

    pub fn us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    /// Unix milliseconds at the start of the run.
    pub fn unix_ms(&self) -> u64 {
        self.unix_ms
    }
}

/// Unix milliseconds as run-clock microseconds, given the run's start (0 for times before it).
pub fn run_us(clock_unix_ms: u64, unix_ms: u64) -> u64 {
    unix_ms.saturating_sub(clock_unix_ms).saturating_mul(1000)
}

/// Which agents the roster has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum AgentsMode {
    /// Every agent runs the simulated executor, steered by the payload's `simulate` object.
    #[default]
    Simulated,
    /// Real outside agents: A2A agents (`tests/agents/a2a_agent.py` on a2a-sdk) and process agents
    /// (`tests/agents/process_agent.py`), steered by the payload's `mode`.
    Outside,
}

/// What a run publishes: plain tasks, workflows (random DAG plans of simulated steps, some cancelled,
/// some retried), or both at once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Workload {
    /// `--tasks` plain tasks (the mix of `workload::simulated` or `workload::outside`).
    #[default]
    Tasks,
    /// `--workflows` workflows only (simulated agents).
    Workflows,
    /// Both: the plain tasks and the workflows, over the same duration.
    Mixed,
}

impl Workload {
    pub fn tasks(self) -> bool {
        matches!(self, Workload::Tasks | Workload::Mixed)
    }
    pub fn workflows(self) -> bool {
        matches!(self, Workload::Workflows | Workload::Mixed)
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
    /// Simulated: noop | sleep | panic | poison | fail_ok | fail_dead | fatal | pay. Outside: see
    /// `workload::outside`.
    pub kind: String,
    /// Deliveries planned to end in a crash (a worker panic, or a process agent's `crash`).
    pub panic_deliveries: u32,
    pub max_retries: u32,
    pub expect: Expect,
    pub published_at_us: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecReport {
    pub task_id: String,
    pub attempt: u32,
    /// Redis's delivery counter; 0 when the reporter does not know it (outside agents).
    #[serde(default)]
    pub deliveries: u32,
    /// Empty when the reporter does not know it (outside agents).
    #[serde(default)]
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
    /// SIGKILL of an outside A2A agent's server (`agent` names it).
    AgentKill,
    /// The A2A agent's server is back on its port (it printed READY).
    AgentUp,
}

impl EventKind {
    /// Whether the event interrupts running work (and so may explain a repeated execution).
    pub fn is_crash(self) -> bool {
        matches!(self, EventKind::NodeKill | EventKind::NodeExited | EventKind::RedisKill | EventKind::AgentKill)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChaosEvent {
    pub at_us: u64,
    pub kind: EventKind,
    #[serde(default)]
    pub node: Option<String>,
    /// The roster agent whose server the event is about (agent kills).
    #[serde(default)]
    pub agent: Option<String>,
    pub detail: String,
}

/// Configured money limits (no per-name overrides in the chaos config).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Limits {
    pub agent_daily_cents: u64,
    pub business_total_cents: u64,
    pub tenant_daily_cents: u64,
}

/// How an agent of the generated roster runs its tasks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ExecutorConf {
    #[default]
    Simulated,
    /// An A2A agent server of the harness on this loopback port.
    A2a { port: u16 },
    /// `python3 tests/agents/process_agent.py` children on every node.
    Process,
}

/// One agent of the generated roster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentConf {
    pub name: String,
    pub concurrency: u32,
    pub max_retries: u32,
    #[serde(default)]
    pub executor: ExecutorConf,
    /// The agent's `timeout` in milliseconds (0: the simulated roster's 5 s).
    #[serde(default)]
    pub timeout_ms: u64,
}

/// Everything the checker needs besides Redis.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunRecord {
    pub seed: u64,
    #[serde(default)]
    pub mode: AgentsMode,
    /// [`Clock::unix_ms`] of the run (0 in records written before it was kept).
    #[serde(default)]
    pub clock_unix_ms: u64,
    pub agents: Vec<AgentConf>,
    pub limits: Option<Limits>,
    pub tasks: Vec<PublishedTask>,
    pub reports: Vec<ExecReport>,
    pub events: Vec<ChaosEvent>,
    /// What the nodes' `/metrics` counted (outside runs scrape them; empty otherwise).
    #[serde(default)]
    pub node_metrics: crate::metrics::Totals,
    #[serde(default)]
    pub workload: Workload,
    /// The workflows the run started (workflow and mixed workloads), with what was done to them.
    #[serde(default)]
    pub workflows: Vec<crate::workload::workflows::WorkflowRecord>,
    /// When the run stopped waiting for workflows to end (run clock): every workflow must have ended
    /// by then (check 17). 0: no limit known.
    #[serde(default)]
    pub workflows_deadline_us: u64,
}

impl RunRecord {
    pub fn max_retries_by_topic(&self) -> BTreeMap<String, u32> {
        self.agents.iter().map(|a| (a.name.clone(), a.max_retries)).collect()
    }
}
