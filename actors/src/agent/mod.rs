//! One agent, all in this folder: its [`supervisor`] (dispatcher and restarts), the [`fetcher`] that
//! reads its topic and the [`worker`]s that run tasks, and the messages they share. Children hold a
//! narrow handle to the supervisor that can send only their own report (`DerivedActorRef`).

pub mod breaker;
pub mod fetcher;
pub mod progress;
pub mod rate;
pub mod supervisor;
pub mod worker;

use crate::bus::{Bus, Delivery};
use crate::events::Events;
use crate::executor::Executor;
use crate::roster::AgentSpec;
use crate::settings::RuntimeSettings;
use crate::task::{DecodeError, TaskEnvelope};
use std::sync::Arc;

/// What every actor of one agent shares; rebuilt never, cloned by `Arc`.
pub struct AgentContext {
    pub spec: AgentSpec,
    pub node_id: String,
    /// `<node_id>/<agent>`: this agent's consumer in the topic's group.
    pub consumer: String,
    pub bus: Bus,
    pub settings: Arc<RuntimeSettings>,
    pub executor: Arc<dyn Executor>,
    /// The circuit breaker of this agent's endpoint (shared by its fetcher and workers).
    pub breaker: Arc<breaker::Breaker>,
    pub events: Events,
    pub payments: crate::payments::meta_agent::PaymentsClient,
    /// The workflows of this bus: a step's final outcome advances its workflow.
    pub workflows: crate::workflow::Workflows,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// This node's running attempts, by task id, for the canceller to stop.
    pub running: Arc<crate::node::running::RunningAttempts>,
}

/// A decoded delivery on its way to a worker.
#[derive(Debug, Clone)]
pub struct Job {
    pub delivery: Delivery,
    pub envelope: TaskEnvelope,
    /// The `begin` step found a cancel request: dead-letter it as `cancelled` without running it.
    pub cancel_requested: bool,
}

/// What is left of an undecodable entry that was a workflow's task: enough to tell its workflow.
#[derive(serde::Deserialize)]
struct WorkflowTaskIds {
    task_id: crate::task::TaskId,
    topic: String,
    workflow: Option<WorkflowId>,
}

#[derive(serde::Deserialize)]
struct WorkflowId {
    id: String,
}

/// An entry that could not be decoded is dead-lettered without its envelope, so no outcome reaches
/// the workflow whose task it was, and its step would wait for ever. When its JSON still names a
/// workflow and a task id (it was too large for this node's `bus.max_payload_bytes`, or written by a
/// version whose envelope this node cannot read), tell the workflow the task is dead (`decode_error`;
/// its record stays `queued`, the dead letter has no task id). The
/// engine never publishes such a task ([`crate::workflow::envelope::check`]); this covers nodes whose
/// limits differ. A failure is logged: the step then waits for the workflow's deadline.
pub(crate) async fn undecodable(ctx: &AgentContext, d: &Delivery, error: &DecodeError) {
    let Some(ids) = d.raw.as_deref().and_then(|raw| serde_json::from_str::<WorkflowTaskIds>(raw).ok()) else {
        return;
    };
    let Some(wf) = ids.workflow.filter(|_| ids.topic == d.topic.as_str()) else { return };
    let outcome = crate::workflow::machine::TaskOutcome::Dead {
        reason: crate::policy::outcome::reason::DECODE.into(),
        error: format!("its task was dead-lettered undecoded by agent {}: {error}", ctx.spec.name),
        attempts: 0,
    };
    if let Err(e) = ctx.workflows.task_of_ended(&wf.id, ids.task_id, outcome).await {
        tracing::warn!(workflow = %wf.id, task_id = %ids.task_id, error = %e, "cannot tell the workflow that its task was undecodable");
    }
}

/// Decode a delivery's envelope, enforcing the size limit and that it belongs to the topic it was read
/// from.
pub(crate) fn decode(ctx: &AgentContext, d: &Delivery) -> Result<TaskEnvelope, DecodeError> {
    let raw = d.raw.as_deref().ok_or(DecodeError::MissingField)?;
    let env = TaskEnvelope::decode(raw, ctx.settings.bus.max_payload_bytes)?;
    if env.topic != d.topic {
        return Err(DecodeError::WrongTopic { expected: d.topic.to_string(), found: env.topic.to_string() });
    }
    Ok(env)
}
