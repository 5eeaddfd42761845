//! The sweeper's pass over the workflows that have not ended ([`Workflows::sweep`], run by every
//! node every `workflows.sweep_interval`): the repair half of "a node killed mid-workflow loses
//! nothing". For each open workflow:
//!
//! - **Deadline**: a running workflow past its deadline fails (`Input::Tick`).
//! - **Outcomes the hook missed**: a running step (or compensation) whose task record is final gets
//!   that outcome applied (succeeded → its result; dead → its reason and error). Applying an outcome
//!   twice changes nothing, so racing the worker's hook is harmless.
//! - **Effects left undone**: an outbox that is not empty and has not moved for a sweep interval (its
//!   writer died between the two CAS) is carried out again.
//! - **Lost publishes**: a running step whose task has no record and whose publish is no longer in the
//!   outbox (a publish that a failover lost, a record expired before its task ran) is published again
//!   (same derived task id) while the workflow runs; once it is compensating or cancelled, a step whose
//!   task was lost is not started any more: it ends `cancelled`. A compensation is always published
//!   again. A task that cannot be published (its agent could not decode it, no topic) ends its step
//!   dead instead ([`super::envelope::Refusal`]).
//!
//! What is left can only wait for an agent: a task queued for an agent that no node runs stays queued
//! (a plan's `deadline` bounds that), and one running on a node that died is reclaimed by another. An
//! entry an agent dead-letters undecoded (`decode_error`, e.g. a node with a smaller
//! `bus.max_payload_bytes`) is reported to its workflow by that agent (`crate::agent::undecodable`).
//!
//! Every node sweeps; they may race, and every repair is idempotent. Then the store prunes ended
//! workflows past their retention from its indexes.

use super::engine::{SweepReport, WorkflowError, Workflows};
use super::envelope::Refusal;
use super::machine::{Input, TaskOutcome};
use super::state::{CompensationStatus, Effect, StepStatus, TaskKind, Workflow, WorkflowStatus};
use crate::bus::{TaskRecord, TaskStatus};
use crate::task::TaskId;

/// Most open workflows visited per pass (oldest first).
pub const BATCH: usize = 1000;
/// Most ended workflows pruned from the indexes per pass.
const PRUNE: usize = 200;

/// The outcome a final task record says, for a task the workflow still thinks is running.
pub fn outcome_of(record: &TaskRecord) -> Option<TaskOutcome> {
    match record.status {
        TaskStatus::Succeeded => Some(TaskOutcome::Succeeded {
            output: record.result.clone().unwrap_or(serde_json::Value::Null),
            attempts: record.attempts,
        }),
        TaskStatus::Dead => Some(TaskOutcome::Dead {
            reason: record.reason.clone().unwrap_or_else(|| "dead".into()),
            error: record.error.clone().unwrap_or_default(),
            attempts: record.attempts,
        }),
        _ => None,
    }
}

/// The outcome of a step whose task was lost (no record, no pending publish) after its workflow
/// stopped starting steps: it never ran, and it will not.
fn lost_after_stop(wf: &Workflow) -> TaskOutcome {
    TaskOutcome::Dead {
        reason: crate::policy::outcome::reason::CANCELLED.into(),
        error: format!(
            "its task was lost before it ran (no record), and the workflow is {}: not published again",
            wf.status.as_str()
        ),
        attempts: 0,
    }
}

/// The tasks of `wf` that are running: (kind, step, agent, task id).
fn running(wf: &Workflow) -> Vec<(TaskKind, String, String, TaskId)> {
    let steps = wf
        .steps
        .iter()
        .filter(|s| s.status == StepStatus::Running)
        .filter_map(|s| Some((TaskKind::Step, s.id.clone(), s.agent.clone(), s.task_id?)));
    let comps = wf
        .compensations
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter(|c| c.status == CompensationStatus::Running)
        .filter_map(|c| Some((TaskKind::Compensate, c.step.clone(), c.agent.clone(), c.task_id?)));
    steps.chain(comps).collect()
}

impl Workflows {
    /// One pass of the sweeper over every open workflow (see the module doc). A workflow that fails
    /// to sweep is logged and counted, and the pass goes on with the others.
    pub async fn sweep(&self) -> Result<SweepReport, WorkflowError> {
        let mut report = SweepReport::default();
        for id in self.store.not_final(BATCH).await? {
            report.visited += 1;
            if let Err(e) = self.sweep_one(&id, &mut report).await {
                report.errors += 1;
                tracing::warn!(workflow = %id, error = %e, "sweeper: cannot repair this workflow now; will try again");
            }
        }
        report.pruned = self.store.prune(PRUNE).await?;
        Ok(report)
    }

    async fn sweep_one(&self, id: &str, report: &mut SweepReport) -> Result<(), WorkflowError> {
        let Some((wf, _)) = self.store.load(id).await? else { return Ok(()) };
        let now = crate::task::now_ms();
        let interval = self.settings.sweep_interval.as_millis() as u64;
        if !wf.outbox.is_empty() && now.saturating_sub(wf.updated_at) >= interval {
            // Counted (and logged) only when this sweeper carried them out: while another driver
            // holds the lease (one that died: until it expires), there is nothing to report yet.
            if self.drive_reporting(id).await?.1 {
                tracing::warn!(workflow = %id, effects = wf.outbox.len(), "sweeper: carried out effects a node left undone");
                report.redriven += 1;
            } else {
                tracing::debug!(workflow = %id, "sweeper: effects left undone, but another driver holds the lease");
            }
        }
        if wf.status == WorkflowStatus::Running && wf.deadline_at.is_some_and(|d| now >= d) {
            let (_, changed) = self.apply_changed(id, Input::Tick).await?;
            report.deadlines += usize::from(changed);
        }
        for (kind, step, agent, task_id) in running(&wf) {
            let Some(topic) = self.topic(&agent) else {
                // Not publishable either: the same refusal a drive gives it, applied here.
                let refusal = Refusal::Unpublishable(format!("agent `{agent}` has no topic on this node"));
                let (_, changed) =
                    self.apply_changed(id, Input::TaskEnded { task_id, outcome: refusal.outcome() }).await?;
                report.outcomes += usize::from(changed);
                continue;
            };
            match self.bus.task(&topic, &task_id.to_string()).await? {
                Some(record) => {
                    let Some(outcome) = outcome_of(&record) else { continue };
                    let (_, changed) = self.apply_changed(id, Input::TaskEnded { task_id, outcome }).await?;
                    if changed {
                        report.outcomes += 1;
                        tracing::warn!(workflow = %id, step, %task_id, "sweeper: applied a task's outcome that its hook did not (a crash or an error in between)");
                    }
                }
                None => {
                    // Still to be published by a drive (the outbox has it), or lost: publish it again.
                    let (fresh, _) = self.load(id).await?;
                    let pending =
                        fresh.outbox.iter().any(|e| matches!(e, Effect::Publish { task_id: t, .. } if *t == task_id));
                    let still_running = running(&fresh).iter().any(|(_, _, _, t)| *t == task_id);
                    // Read again: a publish carried out since the first read wrote its record before it
                    // left the outbox, so a record missing now, with no publish pending, is lost.
                    let lost =
                        !pending && still_running && self.bus.task(&topic, &task_id.to_string()).await?.is_none();
                    if lost {
                        let outcome = if kind == TaskKind::Step && fresh.status != WorkflowStatus::Running {
                            tracing::warn!(workflow = %id, step, %task_id, "sweeper: a running step's task does not exist and the workflow has stopped starting steps; it ends cancelled");
                            Some(lost_after_stop(&fresh))
                        } else {
                            tracing::warn!(workflow = %id, step, %task_id, "sweeper: a running step's task does not exist; publishing it again");
                            report.republished += 1;
                            self.publish(&fresh, kind, &step, task_id).await?.err().map(|r| r.outcome())
                        };
                        if let Some(outcome) = outcome {
                            let (_, changed) = self.apply_changed(id, Input::TaskEnded { task_id, outcome }).await?;
                            report.outcomes += usize::from(changed);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: TaskStatus) -> TaskRecord {
        TaskRecord {
            status,
            attempts: 2,
            result: Some(serde_json::json!({"ok": 1})),
            error: Some("boom".into()),
            reason: Some("retries_exhausted".into()),
            ..TaskRecord::new("t", &TaskId::generate().to_string())
        }
    }

    #[test]
    fn only_final_records_are_outcomes() {
        let ok = outcome_of(&record(TaskStatus::Succeeded));
        assert_eq!(ok, Some(TaskOutcome::Succeeded { output: serde_json::json!({"ok": 1}), attempts: 2 }));
        let dead = outcome_of(&record(TaskStatus::Dead));
        assert_eq!(
            dead,
            Some(TaskOutcome::Dead { reason: "retries_exhausted".into(), error: "boom".into(), attempts: 2 })
        );
        for s in [TaskStatus::Queued, TaskStatus::Running, TaskStatus::Retrying] {
            assert_eq!(outcome_of(&record(s)), None);
        }
    }
}
