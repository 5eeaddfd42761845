//! Carrying out a `Publish` effect: build the step's (or compensation's) task from the state
//! ([`super::envelope::build`]), check that its agent will decode it ([`super::envelope::check`]), and
//! put it on the bus — or refuse it, so that the step ends dead instead of waiting for an outcome that
//! cannot come (the caller applies [`Refusal::outcome`]).

use super::engine::{WorkflowError, Workflows};
use super::envelope::{self, Refusal};
use super::state::{TaskKind, Workflow};
use crate::task::TaskId;

impl Workflows {
    /// Publish the task of `step` (or of its compensation), unless its agent could not decode it (or
    /// it has no topic): then `Ok(Err(refusal))`, and nothing is published. The caller applies the
    /// refusal's dead outcome to the step.
    pub(super) async fn publish(
        &self,
        wf: &Workflow,
        kind: TaskKind,
        step: &str,
        task_id: TaskId,
    ) -> Result<Result<(), Refusal>, WorkflowError> {
        let agent = match kind {
            TaskKind::Step => wf.step(step).map(|s| s.agent.clone()),
            TaskKind::Compensate => {
                wf.compensations.as_deref().unwrap_or_default().iter().find(|c| c.step == step).map(|c| c.agent.clone())
            }
        };
        let Some(topic) = agent.as_deref().and_then(|a| self.topic(a)) else {
            let why = format!("agent {agent:?} has no topic (not in this node's roster, nor a valid topic name)");
            return Ok(Err(self.refused(wf, step, task_id, Refusal::Unpublishable(why))));
        };
        let env = match envelope::build(wf, kind, step, task_id, topic, crate::task::now_ms()) {
            Ok(env) => env,
            Err(e) => return Ok(Err(self.refused(wf, step, task_id, e.into()))),
        };
        if let Err(r) = envelope::check(&env, self.max_payload_bytes) {
            return Ok(Err(self.refused(wf, step, task_id, r)));
        }
        self.bus.publish(&env, self.result_ttl).await?;
        Ok(Ok(()))
    }

    fn refused(&self, wf: &Workflow, step: &str, task_id: TaskId, r: Refusal) -> Refusal {
        tracing::warn!(workflow = %wf.id, step, %task_id, reason = r.reason(), error = %r, "a step's task is not published; the step ends dead");
        r
    }
}
