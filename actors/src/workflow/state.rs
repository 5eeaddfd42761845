//! A workflow's durable state: the plan as routed, each step's progress, the compensations, and the
//! outbox of effects not yet carried out. One JSON document per workflow, stored by
//! [`super::store`] with a version for compare-and-set, so any node can advance any workflow.

use super::plan::Compensation;
use crate::task::{TaskId, TenantId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkflowStatus {
    Running,
    /// Failing or being cancelled: waiting for running steps to end, then running compensations.
    Compensating,
    Succeeded,
    Failed,
    Cancelled,
}

impl WorkflowStatus {
    pub const ALL: [WorkflowStatus; 5] = [
        WorkflowStatus::Running,
        WorkflowStatus::Compensating,
        WorkflowStatus::Succeeded,
        WorkflowStatus::Failed,
        WorkflowStatus::Cancelled,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            WorkflowStatus::Running => "running",
            WorkflowStatus::Compensating => "compensating",
            WorkflowStatus::Succeeded => "succeeded",
            WorkflowStatus::Failed => "failed",
            WorkflowStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<WorkflowStatus> {
        WorkflowStatus::ALL.into_iter().find(|w| w.as_str() == s)
    }

    pub fn is_final(&self) -> bool {
        matches!(self, WorkflowStatus::Succeeded | WorkflowStatus::Failed | WorkflowStatus::Cancelled)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    /// Waiting for its needs.
    Pending,
    /// Published as a task; its outcome is awaited.
    Running,
    Succeeded,
    /// Ended dead (an optional step's failure lets the workflow go on).
    Failed,
    /// Was running when the workflow was cancelled or failed, and ended without succeeding.
    Cancelled,
    /// Never ran: the workflow ended first.
    Skipped,
}

impl StepStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Running => "running",
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Cancelled => "cancelled",
            StepStatus::Skipped => "skipped",
        }
    }
}

/// A step as it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub id: String,
    /// The agent (topic) chosen for it, and the routing rule that chose it.
    pub agent: String,
    pub route: String,
    pub input: Value,
    pub needs: Vec<String>,
    pub budget_cents: Option<u64>,
    pub optional: bool,
    pub compensate: Option<Compensation>,
    pub status: StepStatus,
    /// The run (1, then +1 per `retry`) whose task this step's `task_id` is.
    pub run: u32,
    pub task_id: Option<TaskId>,
    pub attempts: u32,
    pub started_at: Option<u64>,
    pub ended_at: Option<u64>,
    pub output: Option<Value>,
    pub error: Option<String>,
    /// Order of success among the workflow's steps (compensations run in reverse of it).
    pub completed_seq: Option<u32>,
}

impl Step {
    /// Done as far as its dependants are concerned: succeeded, or an optional step that failed.
    pub fn satisfies_needs(&self) -> bool {
        self.status == StepStatus::Succeeded || (self.optional && self.status == StepStatus::Failed)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CompensationStatus {
    Pending,
    Running,
    Succeeded,
    Failed,
}

/// The compensation of one succeeded step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompensationRun {
    pub step: String,
    pub agent: String,
    pub input: Value,
    pub status: CompensationStatus,
    pub task_id: Option<TaskId>,
    pub started_at: Option<u64>,
    pub ended_at: Option<u64>,
    pub error: Option<String>,
}

/// What a task published by a workflow is: one of its steps or the compensation of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    Step,
    Compensate,
}

/// What a task carries when a workflow published it: which workflow, step and run, and the budget its
/// payments count against (the payment authority checks it; see `docs/workflows.md`, "Money").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowRef {
    pub id: String,
    pub step: String,
    pub run: u32,
    pub kind: TaskKind,
    /// The workflow's `budget_cents`: every step's payments count against it together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_cents: Option<u64>,
}

/// An effect the workflow's last transitions asked for, kept until it has been carried out (each is
/// idempotent: a task id is derived, an event has a unique id, a cancel of a final task does nothing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "effect", rename_all = "snake_case")]
pub enum Effect {
    /// Publish the task of a step (or its compensation); the envelope is built from the state.
    Publish { kind: TaskKind, step: String, task_id: TaskId },
    /// Ask the node running this task to stop it.
    Cancel { agent: String, task_id: TaskId },
    /// Append to the events stream.
    Emit { event: Box<super::events::WorkflowEvent> },
    /// Post the spend summary to the dashboard webhook (a business workflow has ended).
    Summary,
}

/// Why the workflow ended other than by succeeding (a stable code; `error` says more).
pub mod reason {
    pub const STEP_FAILED: &str = "step_failed";
    pub const OVER_BUDGET: &str = "over_budget";
    pub const CANCELLED: &str = "cancelled";
    pub const DEADLINE: &str = "deadline";
}

/// One workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workflow {
    pub id: String,
    pub tenant_id: TenantId,
    pub business_id: String,
    pub correlation_id: String,
    /// The template it came from, if any; a `business` workflow announces `business.created`.
    pub template: Option<String>,
    pub status: WorkflowStatus,
    /// What a compensating workflow ends as.
    pub ending: Option<WorkflowStatus>,
    pub reason: Option<String>,
    pub error: Option<String>,
    pub budget_cents: Option<u64>,
    /// The plan's deadline (ms from the start of a run) and when the current run must end.
    pub deadline_ms: Option<u64>,
    pub deadline_at: Option<u64>,
    /// Revenue the business is projected to make, for the spend summary's ROI.
    pub projected_revenue_cents: Option<u64>,
    pub created_at: u64,
    pub updated_at: u64,
    pub ended_at: Option<u64>,
    pub run: u32,
    pub steps: Vec<Step>,
    /// Planned once no step runs any more, in reverse order of completion; run one at a time.
    pub compensations: Option<Vec<CompensationRun>>,
    pub completed: u32,
    /// Effects decided but not yet confirmed carried out.
    pub outbox: Vec<Effect>,
    /// Events emitted so far (gives each event a unique, ordered id).
    pub events: u64,
}

impl Workflow {
    /// Ended, and nothing left in its outbox to carry out: only then does it leave the sweeper's work
    /// list (the open index) and start to expire. A final transition whose effects (its last events,
    /// the spend summary) were not carried out — the node died, or Redis went away, between the two
    /// saves — stays in the list, so a sweeper carries them out.
    pub fn settled(&self) -> bool {
        self.status.is_final() && self.outbox.is_empty()
    }

    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }

    pub fn step_mut(&mut self, id: &str) -> Option<&mut Step> {
        self.steps.iter_mut().find(|s| s.id == id)
    }

    /// The task id of a step's (or a compensation's) task in run `run`: derived, so publishing it
    /// twice is one task, and a retry (a new run) gets a new one.
    pub fn task_id(&self, kind: TaskKind, step: &str, run: u32) -> TaskId {
        let k = match kind {
            TaskKind::Step => "step",
            TaskKind::Compensate => "compensate",
        };
        TaskId::derived(self.created_at, format!("genesis.workflow|{}|{k}|{step}|{run}", self.id).as_bytes())
    }
}
