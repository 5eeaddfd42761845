//! Executors: the trait every agent's work runs through, the registry of named executors, and the
//! outside-agent executors chosen in `agents.toml` (`a2a`, `http`, `process`).
//!
//! Whatever the executor, the same rules hold (docs/semantics.md): the agent's timeout fires
//! [`TaskContext::cancel`] and the executor stops the work *at the agent* (A2A `CancelTask`, SIGTERM to
//! the process group) before it returns; an agent that cannot be reached is [`ExecError::Unavailable`]
//! (no attempt spent, the circuit counts it); a child process that dies is [`ExecError::Crashed`] (a
//! delivery, bounded by the poison limit, like a worker panic).

pub mod a2a;
pub mod http;
pub mod orchestrate;
pub mod process;
pub mod simulated;

use crate::roster::{AgentSpec, ExecutorSpec};
use crate::task::TaskId;
use futures::future::BoxFuture;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What an executor knows about the task it runs.
#[derive(Debug, Clone)]
pub struct TaskContext {
    pub agent: String,
    pub node_id: String,
    pub worker: usize,
    pub task_id: TaskId,
    pub attempt: u32,
    /// Redis's delivery counter for this entry (1 on first delivery; grows on replays after crashes).
    pub deliveries: u32,
    pub tenant_id: crate::tenant::TenantId,
    pub correlation_id: String,
    /// W3C `traceparent` of this attempt's span, for the agent to continue the trace.
    pub traceparent: Option<String>,
    /// When the agent's timeout fires, in Unix milliseconds (sent to outside agents as `deadline`).
    pub deadline_ms: u64,
    /// Fired when the attempt must stop (timeout, `genesis task cancel`): the executor cancels the work
    /// at its agent and returns; the worker waits [`CANCEL_GRACE`] for that before dropping the future.
    pub cancel: CancellationToken,
    /// Where the agent's progress reports go (kept on the task record).
    pub progress: Progress,
    /// A short-lived token bound to this task (agent, business, tenant) that lets an outside agent ask
    /// the node's MetaAgent for money as itself and no one else; `None` without payments.
    pub payment_token: Option<String>,
    /// The way to ask the MetaAgent for money; `approve` fails if payments are not configured.
    pub payments: crate::payments::meta_agent::PaymentsClient,
    /// The workflow step (or compensation) this task is, from its envelope: its payments count toward
    /// the workflow's budget ([`TaskContext::workflow_budget`]).
    pub workflow: Option<crate::workflow::state::WorkflowRef>,
    /// The envelope's `business_id` (a workflow's business): preferred to the payload's
    /// ([`TaskContext::business`]).
    pub business_id: Option<String>,
}

impl TaskContext {
    /// A context outside any node (first attempt, no deadline to speak of, no payments): for tests,
    /// benchmarks and tools that drive an executor directly.
    pub fn detached(agent: &str, task_id: TaskId) -> Self {
        TaskContext {
            agent: agent.to_string(),
            node_id: "detached".into(),
            worker: 0,
            task_id,
            attempt: 1,
            deliveries: 1,
            tenant_id: crate::tenant::TenantId::default(),
            correlation_id: task_id.to_string(),
            traceparent: None,
            deadline_ms: crate::task::now_ms().saturating_add(3_600_000),
            cancel: CancellationToken::new(),
            progress: Progress::default(),
            payment_token: None,
            payments: Default::default(),
            workflow: None,
            business_id: None,
        }
    }

    /// The business this task's payments are for: the envelope's, else the payload's, else `default`
    /// (one rule for every executor and the payment token: [`crate::payments::for_task::business_of`]).
    pub fn business(&self, payload: &serde_json::Value) -> Result<String, crate::payments::types::Rejection> {
        crate::payments::for_task::business_of(self.business_id.as_deref(), payload)
    }

    /// The workflow budget this task's payments count toward, if it is a workflow step with one.
    pub fn workflow_budget(&self) -> Option<crate::payments::types::WorkflowBudget> {
        crate::payments::for_task::workflow_of(self.workflow.as_ref())
    }
}

/// How long a cancelled executor gets to stop its agent's work before the worker drops it.
pub const CANCEL_GRACE: Duration = Duration::from_secs(5);

/// A sink for progress reports; cheap to clone, never blocks (the latest report wins).
#[derive(Clone, Default)]
pub struct Progress(Option<Arc<dyn Fn(serde_json::Value) + Send + Sync>>);

impl Progress {
    pub fn new(sink: impl Fn(serde_json::Value) + Send + Sync + 'static) -> Self {
        Progress(Some(Arc::new(sink)))
    }

    pub fn report(&self, progress: serde_json::Value) {
        if let Some(sink) = &self.0 {
            sink(progress);
        }
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Progress(sink)" } else { "Progress(none)" })
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExecError {
    /// Worth another attempt after the retry delay.
    #[error("{0}")]
    Retryable(String),
    /// Worth another attempt, but not before `after` (the agent said so, e.g. HTTP 429 `Retry-After`).
    #[error("{error}")]
    RetryAfter { error: String, after: Duration },
    /// The endpoint failed on its side (HTTP 5xx): retryable, and a failure for its circuit breaker.
    #[error("{error}")]
    Server { error: String, retry_after: Option<Duration> },
    /// Retrying cannot help (e.g. the payload is invalid): dead-letter at once.
    #[error("{0}")]
    Fatal(String),
    /// The agent could not be reached (connection refused, no agent card): the attempt did not start,
    /// is not counted, and counts against the circuit breaker; the task waits for the agent.
    #[error("agent unavailable: {0}")]
    Unavailable(String),
    /// The agent's process died or broke its protocol mid-task: treated like a worker crash (the task
    /// is replayed to a fresh worker; a delivery, so the poison limit bounds it).
    #[error("agent crashed: {0}")]
    Crashed(String),
    /// The work was cancelled on request.
    #[error("cancelled: {0}")]
    Cancelled(String),
}

impl ExecError {
    /// Does this say the endpoint itself is unhealthy (as opposed to this one task failing)?
    pub fn is_endpoint_fault(&self) -> bool {
        matches!(self, ExecError::Unavailable(_) | ExecError::Server { .. })
    }
}

/// Runs one task. A panic inside `execute` crashes the worker actor, which its supervisor restarts and
/// hands the same entry again.
pub trait Executor: Send + Sync + 'static {
    fn execute<'a>(
        &'a self,
        ctx: &'a TaskContext,
        payload: &'a serde_json::Value,
    ) -> BoxFuture<'a, Result<serde_json::Value, ExecError>>;

    /// Stop everything this executor started (child processes); called when the node stops.
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// Why an agent's executor could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("agent {agent}: executor `{executor}`: {problem}")]
pub struct BuildError {
    pub agent: String,
    pub executor: String,
    pub problem: String,
}

/// Named executors, and the factory for the configured outside-agent executors.
#[derive(Clone)]
pub struct ExecutorRegistry {
    by_name: BTreeMap<String, Arc<dyn Executor>>,
}

/// The `executor` values that take their settings from `agents.toml` instead of the registry.
pub const CONFIGURED: [&str; 3] = [a2a::NAME, http::NAME, process::NAME];

/// The `executor` values the node builds itself, from its own parts (the workflow engine).
pub const BUILT_BY_NODE: [&str; 1] = [orchestrate::NAME];

impl ExecutorRegistry {
    /// The built-in named executors (`simulated`, steered: `pay` and `report_to` honoured), as tests,
    /// benchmarks and the chaos harness use them.
    pub fn builtin() -> Self {
        Self::node(true)
    }

    /// The built-in named executors of a node: the simulated executor honours `pay` and
    /// `report_to` only with `steering` (`[executors.simulated] steering`, default off).
    pub fn node(steering: bool) -> Self {
        let mut by_name: BTreeMap<String, Arc<dyn Executor>> = BTreeMap::new();
        by_name.insert(simulated::NAME.to_string(), Arc::new(simulated::Simulated { steering }));
        ExecutorRegistry { by_name }
    }

    pub fn register(&mut self, name: impl Into<String>, executor: Arc<dyn Executor>) {
        self.by_name.insert(name.into(), executor);
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn Executor>> {
        self.by_name.get(name).cloned()
    }

    /// Every valid `executor` value: the named ones and the configured kinds.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.by_name.keys().map(String::as_str).collect();
        names.extend(CONFIGURED);
        names.extend(BUILT_BY_NODE);
        names.sort_unstable();
        names.dedup();
        names
    }

    /// The executor of one agent (built once per node; an agent supervisor restart reuses it).
    pub fn for_agent(&self, spec: &AgentSpec) -> Result<Arc<dyn Executor>, BuildError> {
        let err = |problem: String| BuildError {
            agent: spec.name.clone(),
            executor: spec.executor.name().to_string(),
            problem,
        };
        match &spec.executor {
            ExecutorSpec::Named(name) => self.get(name).ok_or_else(|| {
                let known: Vec<&str> = self.by_name.keys().map(String::as_str).collect();
                err(format!("unknown executor (known: {})", known.join(", ")))
            }),
            ExecutorSpec::A2a(endpoint) => a2a::build(spec, endpoint).map_err(err),
            ExecutorSpec::Http(endpoint) => http::build(spec, endpoint).map_err(err),
            ExecutorSpec::Process(p) => process::build(spec, p).map_err(err),
        }
    }
}
