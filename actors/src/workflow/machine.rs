//! The workflow state machine: pure transitions of a [`Workflow`] on an [`Input`] (a step's outcome, a
//! cancel, a retry, the clock), each adding to the outbox the effects it asks for. Pure and
//! deterministic, so the same input applied twice is a no-op the second time (a step's outcome
//! advances its workflow exactly once), and property tests can drive it through random DAGs.

use super::events::{kind, WorkflowEvent};
use super::plan::Plan;
use super::route::Route;
use super::state::*;
use crate::task::{TaskId, TenantId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A final outcome of a step's (or compensation's) task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TaskOutcome {
    Succeeded {
        output: Value,
        attempts: u32,
    },
    /// Dead: `reason` is the dead-letter reason code (`retries_exhausted`, `fatal`, `cancelled`, …).
    Dead {
        reason: String,
        error: String,
        attempts: u32,
    },
}

/// What can happen to a workflow.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A task the workflow published ended (identified by its task id: an outcome of an older run's
    /// task, or one already recorded, changes nothing).
    TaskEnded {
        task_id: TaskId,
        outcome: TaskOutcome,
    },
    Cancel,
    Retry,
    /// The clock: a running workflow past its deadline fails.
    Tick,
}

/// A control request that the workflow's status does not allow (the API answers 409).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("workflow {id} is {status}: {why}")]
pub struct Refused {
    pub id: String,
    pub status: &'static str,
    pub why: &'static str,
}

/// The context a new workflow starts with.
#[derive(Debug, Clone)]
pub struct Start {
    pub id: String,
    pub tenant_id: TenantId,
    pub business_id: String,
    pub correlation_id: String,
    pub template: Option<String>,
    pub projected_revenue_cents: Option<u64>,
    pub now: u64,
}

/// A new workflow from a validated plan and its routes (one per step, in order), with its first steps
/// in the outbox.
pub fn create(plan: &Plan, routes: Vec<Route>, start: Start) -> Workflow {
    let deadline_ms = plan.deadline().ok().flatten().map(|d| d.as_millis() as u64);
    let steps = plan
        .steps
        .iter()
        .zip(routes)
        .map(|(s, r)| Step {
            id: s.id.clone(),
            agent: r.agent,
            route: r.reason,
            input: s.input.clone(),
            needs: s.needs.clone(),
            budget_cents: s.budget_cents,
            optional: s.optional,
            compensate: s.compensate.clone(),
            status: StepStatus::Pending,
            run: 1,
            task_id: None,
            attempts: 0,
            started_at: None,
            ended_at: None,
            output: None,
            error: None,
            completed_seq: None,
        })
        .collect();
    let mut wf = Workflow {
        id: start.id,
        tenant_id: start.tenant_id,
        business_id: start.business_id,
        correlation_id: start.correlation_id,
        template: start.template,
        status: WorkflowStatus::Running,
        ending: None,
        reason: None,
        error: None,
        budget_cents: plan.budget_cents,
        deadline_ms,
        deadline_at: deadline_ms.map(|d| start.now.saturating_add(d)),
        projected_revenue_cents: start.projected_revenue_cents,
        created_at: start.now,
        updated_at: start.now,
        ended_at: None,
        run: 1,
        steps,
        compensations: None,
        completed: 0,
        outbox: Vec::new(),
        events: 0,
    };
    emit(&mut wf, kind::WORKFLOW_STARTED, None, start.now);
    advance(&mut wf, start.now);
    wf
}

/// Apply `input` at time `now`. Returns whether anything changed (an input that changes nothing —
/// a duplicate outcome, a tick before the deadline — leaves the workflow as it was).
pub fn apply(wf: &mut Workflow, input: Input, now: u64) -> Result<bool, Refused> {
    let before = wf.clone();
    match input {
        Input::TaskEnded { task_id, outcome } => task_ended(wf, task_id, outcome, now),
        Input::Cancel => {
            if wf.status != WorkflowStatus::Running {
                return Err(refused(wf, "only a running workflow can be cancelled"));
            }
            fail(wf, WorkflowStatus::Cancelled, reason::CANCELLED, "cancelled on request".into(), now);
        }
        Input::Retry => retry(wf, now)?,
        Input::Tick => {
            if wf.status == WorkflowStatus::Running && wf.deadline_at.is_some_and(|d| now >= d) {
                let msg = format!("the workflow's deadline passed at {}", wf.deadline_at.unwrap_or_default());
                fail(wf, WorkflowStatus::Failed, reason::DEADLINE, msg, now);
            }
        }
    }
    advance(wf, now);
    let changed = *wf != before;
    if changed {
        wf.updated_at = now;
    }
    Ok(changed)
}

fn refused(wf: &Workflow, why: &'static str) -> Refused {
    Refused { id: wf.id.clone(), status: wf.status.as_str(), why }
}

fn task_ended(wf: &mut Workflow, task_id: TaskId, outcome: TaskOutcome, now: u64) {
    if let Some(i) = wf.steps.iter().position(|s| s.task_id == Some(task_id) && s.status == StepStatus::Running) {
        let compensating = wf.status != WorkflowStatus::Running;
        let step = &mut wf.steps[i];
        step.ended_at = Some(now);
        let (event, failed_required) = match outcome {
            TaskOutcome::Succeeded { output, attempts } => {
                step.status = StepStatus::Succeeded;
                step.output = Some(output);
                step.attempts = attempts;
                wf.completed += 1;
                step.completed_seq = Some(wf.completed);
                (kind::STEP_SUCCEEDED, None)
            }
            TaskOutcome::Dead { reason: why, error, attempts } => {
                step.attempts = attempts;
                step.error = Some(format!("{why}: {error}"));
                if compensating && why == "cancelled" {
                    step.status = StepStatus::Cancelled;
                    (kind::STEP_CANCELLED, None)
                } else {
                    step.status = StepStatus::Failed;
                    let required = !step.optional;
                    (kind::STEP_FAILED, required.then(|| (step.id.clone(), error)))
                }
            }
        };
        let id = wf.steps[i].id.clone();
        emit(wf, event, Some(&id), now);
        if let Some((step, error)) = failed_required {
            if wf.status == WorkflowStatus::Running {
                let code = if is_over_budget(&error) { reason::OVER_BUDGET } else { reason::STEP_FAILED };
                fail(wf, WorkflowStatus::Failed, code, format!("step {step} failed: {error}"), now);
            }
        }
        return;
    }
    let Some(comps) = wf.compensations.as_mut() else { return };
    if let Some(c) = comps.iter_mut().find(|c| c.task_id == Some(task_id) && c.status == CompensationStatus::Running) {
        c.ended_at = Some(now);
        let event = match outcome {
            TaskOutcome::Succeeded { .. } => {
                c.status = CompensationStatus::Succeeded;
                kind::COMPENSATION_SUCCEEDED
            }
            TaskOutcome::Dead { reason, error, .. } => {
                c.status = CompensationStatus::Failed;
                c.error = Some(format!("{reason}: {error}"));
                kind::COMPENSATION_FAILED
            }
        };
        let step = c.step.clone();
        emit(wf, event, Some(&step), now);
    }
}

/// A payment refused for the workflow's budget (the payment authority's code) fails it as `over_budget`.
fn is_over_budget(error: &str) -> bool {
    error.contains(crate::payments::types::code::OVER_WORKFLOW_BUDGET)
}

/// Stop starting steps, cancel the running ones, and compensate once they have ended.
fn fail(wf: &mut Workflow, ending: WorkflowStatus, code: &str, error: String, now: u64) {
    wf.status = WorkflowStatus::Compensating;
    wf.ending = Some(ending);
    wf.reason = Some(code.to_string());
    wf.error = Some(error);
    let mut effects = Vec::new();
    let mut skipped = Vec::new();
    for s in &mut wf.steps {
        match s.status {
            StepStatus::Pending => {
                s.status = StepStatus::Skipped;
                skipped.push(s.id.clone());
            }
            StepStatus::Running => {
                if let Some(task_id) = s.task_id {
                    effects.push(Effect::Cancel { agent: s.agent.clone(), task_id });
                }
            }
            _ => {}
        }
    }
    wf.outbox.extend(effects);
    emit(wf, kind::WORKFLOW_COMPENSATING, None, now);
    for id in skipped {
        emit(wf, kind::STEP_SKIPPED, Some(&id), now);
    }
}

fn retry(wf: &mut Workflow, now: u64) -> Result<(), Refused> {
    if wf.status != WorkflowStatus::Failed {
        return Err(refused(wf, "only a failed workflow can be retried"));
    }
    wf.run += 1;
    let run = wf.run;
    for s in wf.steps.iter_mut().filter(|s| s.status != StepStatus::Succeeded) {
        s.status = StepStatus::Pending;
        s.run = run;
        s.task_id = None;
        s.attempts = 0;
        s.started_at = None;
        s.ended_at = None;
        s.output = None;
        s.error = None;
    }
    wf.status = WorkflowStatus::Running;
    wf.ending = None;
    wf.reason = None;
    wf.error = None;
    wf.ended_at = None;
    wf.compensations = None;
    wf.deadline_at = wf.deadline_ms.map(|d| now.saturating_add(d));
    emit(wf, kind::WORKFLOW_RETRIED, None, now);
    Ok(())
}

/// Carry the workflow as far as its state allows: publish every ready step; end a running workflow
/// whose steps are all done; in a compensating one, once no step runs, run the compensations one at a
/// time (latest completed first) and then end it.
fn advance(wf: &mut Workflow, now: u64) {
    match wf.status {
        WorkflowStatus::Running => {
            let ready: Vec<usize> = (0..wf.steps.len())
                .filter(|&i| {
                    let s = &wf.steps[i];
                    s.status == StepStatus::Pending
                        && s.needs.iter().all(|n| wf.step(n).is_some_and(Step::satisfies_needs))
                })
                .collect();
            for i in ready {
                let (id, run) = (wf.steps[i].id.clone(), wf.steps[i].run);
                let task_id = wf.task_id(TaskKind::Step, &id, run);
                let s = &mut wf.steps[i];
                s.status = StepStatus::Running;
                s.task_id = Some(task_id);
                s.started_at = Some(now);
                wf.outbox.push(Effect::Publish { kind: TaskKind::Step, step: id.clone(), task_id });
                emit(wf, kind::STEP_STARTED, Some(&id), now);
            }
            if wf.steps.iter().all(Step::satisfies_needs) {
                wf.status = WorkflowStatus::Succeeded;
                wf.ended_at = Some(now);
                emit(wf, kind::WORKFLOW_SUCCEEDED, None, now);
                if wf.template.as_deref() == Some("business") {
                    emit(wf, kind::BUSINESS_CREATED, None, now);
                }
                wf.outbox.push(Effect::Summary);
            }
        }
        WorkflowStatus::Compensating => {
            if wf.steps.iter().any(|s| s.status == StepStatus::Running) {
                return;
            }
            if wf.compensations.is_none() {
                let mut done: Vec<&Step> =
                    wf.steps.iter().filter(|s| s.status == StepStatus::Succeeded && s.compensate.is_some()).collect();
                done.sort_by_key(|s| std::cmp::Reverse(s.completed_seq));
                let comps = done
                    .into_iter()
                    .filter_map(|s| {
                        let c = s.compensate.as_ref()?;
                        Some(CompensationRun {
                            step: s.id.clone(),
                            agent: c.agent.clone(),
                            input: c.input.clone(),
                            status: CompensationStatus::Pending,
                            task_id: None,
                            started_at: None,
                            ended_at: None,
                            error: None,
                        })
                    })
                    .collect();
                wf.compensations = Some(comps);
            }
            let run = wf.run;
            let comps = wf.compensations.as_deref().unwrap_or_default();
            if comps.iter().any(|c| c.status == CompensationStatus::Running) {
                return;
            }
            if let Some(i) = comps.iter().position(|c| c.status == CompensationStatus::Pending) {
                let step = comps[i].step.clone();
                let task_id = wf.task_id(TaskKind::Compensate, &step, run);
                if let Some(c) = wf.compensations.as_mut().and_then(|c| c.get_mut(i)) {
                    c.status = CompensationStatus::Running;
                    c.task_id = Some(task_id);
                    c.started_at = Some(now);
                }
                wf.outbox.push(Effect::Publish { kind: TaskKind::Compensate, step: step.clone(), task_id });
                emit(wf, kind::COMPENSATION_STARTED, Some(&step), now);
                return;
            }
            let ending = wf.ending.unwrap_or(WorkflowStatus::Failed);
            wf.status = ending;
            wf.ended_at = Some(now);
            let event =
                if ending == WorkflowStatus::Cancelled { kind::WORKFLOW_CANCELLED } else { kind::WORKFLOW_FAILED };
            emit(wf, event, None, now);
            wf.outbox.push(Effect::Summary);
        }
        _ => {}
    }
}

fn emit(wf: &mut Workflow, kind: &str, step: Option<&str>, now: u64) {
    wf.events += 1;
    let (agent, task_id) = match step {
        None => (None, None),
        Some(id) if kind.starts_with("compensation.") => {
            let c = wf.compensations.as_deref().unwrap_or_default().iter().find(|c| c.step == id);
            (c.map(|c| c.agent.clone()), c.and_then(|c| c.task_id).map(|t| t.to_string()))
        }
        Some(id) => match wf.step(id) {
            Some(s) => (Some(s.agent.clone()), s.task_id.map(|t| t.to_string())),
            None => (None, None),
        },
    };
    let error = match step {
        Some(id) if kind == kind::STEP_FAILED || kind == kind::STEP_CANCELLED => {
            wf.step(id).and_then(|s| s.error.clone())
        }
        None if kind == kind::WORKFLOW_COMPENSATING || kind == kind::WORKFLOW_FAILED => wf.error.clone(),
        _ => None,
    };
    let event = WorkflowEvent {
        event_id: format!("{}:{}", wf.id, wf.events),
        kind: kind.to_string(),
        workflow_id: wf.id.clone(),
        tenant_id: wf.tenant_id.to_string(),
        business_id: wf.business_id.clone(),
        correlation_id: wf.correlation_id.clone(),
        run: wf.run,
        step: step.map(str::to_string),
        agent,
        task_id,
        status: wf.status.as_str().to_string(),
        reason: if step.is_none() { wf.reason.clone() } else { None },
        error,
        at: now,
    };
    wf.outbox.push(Effect::Emit { event: Box::new(event) });
}

#[cfg(test)]
mod tests;
