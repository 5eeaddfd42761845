//! The order of things in a workflow: check 12 (no step before its needs), 14 (nothing starts after a
//! cancel — after the run began compensating, for any reason) and 15 (compensations in reverse order
//! of completion, one at a time, once no step runs). Order is the events' numbers (the engine's order
//! of transitions) and, for what ran, the executions the executor reported.

use super::{is_compensation_terminal, is_step_terminal, number, violation, Inputs, CLOCK_SLACK_US};
use crate::check::Violation;
use crate::secs;
use genesis_actors::workflow::events::{kind, WorkflowEvent};
use genesis_actors::workflow::state::StepStatus;

pub const CHECK_12: &str = "12 no step before its needs";
pub const CHECK_14: &str = "14 nothing starts after a cancel";
pub const CHECK_15: &str = "15 compensations in reverse order";

/// The outcome of `need` that lets a step of run `run` start, recorded before event number `before`:
/// a success (of any run: a retry keeps it), or a failure of an optional need in the same run.
fn satisfying<'a>(
    evs: &'a [WorkflowEvent],
    need: &str,
    optional: bool,
    run: u32,
    before: u64,
) -> Option<&'a WorkflowEvent> {
    evs.iter().filter(|e| number(e) < before && e.step.as_deref() == Some(need)).find(|e| {
        e.kind == kind::STEP_SUCCEEDED && e.run <= run || optional && e.kind == kind::STEP_FAILED && e.run == run
    })
}

/// Check 12. For every `step.started` (run r, number n) and every need of its step: an outcome that
/// lets it run is numbered before n, and the step's task began executing (its first start report)
/// after that outcome. On the stored document: a step's `started_at` is not before the `ended_at` of
/// any satisfied need of its run or an earlier one.
pub(super) fn needs_first(x: &Inputs<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    for w in &x.run.workflows {
        let Some(evs) = x.events.get(&w.id) else { continue };
        let v = |d: String| violation(CHECK_12, &w.id, d);
        for e in evs.iter().filter(|e| e.kind == kind::STEP_STARTED) {
            let Some(step) = e.step.as_deref().and_then(|s| w.step(s)) else { continue };
            let n = number(e);
            for need in &step.needs {
                let optional = w.step(need).is_some_and(|s| s.optional);
                let Some(sat) = satisfying(evs, need, optional, e.run, n) else {
                    out.push(v(format!(
                        "step {} started in run {} ({}) before any outcome of its need {need} that lets it run",
                        step.id, e.run, e.event_id
                    )));
                    continue;
                };
                let (Some(task), outcome_at) = (e.task_id.as_deref(), x.at_us(sat)) else { continue };
                if let Some(began) = x.first_start(task) {
                    if began + CLOCK_SLACK_US < outcome_at {
                        out.push(v(format!(
                            "step {}'s task {task} (run {}) began at {}, before its need {need}'s outcome {} at {}",
                            step.id,
                            e.run,
                            secs(began),
                            sat.kind,
                            secs(outcome_at)
                        )));
                    }
                }
            }
        }
        let Some(doc) = x.docs.get(&w.id) else { continue };
        for s in doc.steps.iter().filter(|s| s.status != StepStatus::Skipped) {
            let Some(started) = s.started_at else { continue };
            // A step kept from an earlier run (it succeeded then) may need an optional step that
            // failed in that run and ran again in a later one: only needs of its run or before count.
            for need in s.needs.iter().filter_map(|n| doc.step(n)).filter(|n| n.run <= s.run) {
                if let Some(ended) = need.ended_at.filter(|_| need.satisfies_needs()) {
                    if started < ended {
                        out.push(v(format!(
                            "stored step {} started at {started} ms, before its need {} ended at {ended} ms",
                            s.id, need.id
                        )));
                    }
                }
            }
        }
    }
    out
}

/// The number of a run's `workflow.compensating` event, with its reason.
fn compensating(evs: &[WorkflowEvent], run: u32) -> Option<(u64, Option<&str>)> {
    evs.iter().find(|e| e.run == run && e.kind == kind::WORKFLOW_COMPENSATING).map(|e| (number(e), e.reason.as_deref()))
}

fn runs(evs: &[WorkflowEvent]) -> Vec<u32> {
    let mut r: Vec<u32> = evs.iter().map(|e| e.run).collect();
    r.sort_unstable();
    r.dedup();
    r
}

/// Check 14: in a run that began compensating (cancelled, failed, past its deadline), no
/// `step.started` is numbered after its `workflow.compensating`.
pub(super) fn nothing_after_compensating(x: &Inputs<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    for w in &x.run.workflows {
        let Some(evs) = x.events.get(&w.id) else { continue };
        for run in runs(evs) {
            let Some((c, reason)) = compensating(evs, run) else { continue };
            let what = if reason == Some("cancelled") { "the cancel" } else { "the workflow began compensating" };
            for e in evs.iter().filter(|e| e.run == run && e.kind == kind::STEP_STARTED && number(e) > c) {
                out.push(violation(
                    CHECK_14,
                    &w.id,
                    format!(
                        "step {} started in run {run} ({}) after {what} (event {c}, reason {reason:?})",
                        e.step.as_deref().unwrap_or("?"),
                        e.event_id
                    ),
                ));
            }
        }
    }
    out
}

/// Check 15, per run that compensated: the compensations started are exactly the compensated steps
/// that had succeeded (in this run or one before it), latest success first; each starts after the
/// previous one's outcome (and its task after that outcome); the first starts after the outcome of
/// every step of the run; none in a run that did not compensate.
pub(super) fn compensations(x: &Inputs<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    for w in &x.run.workflows {
        let Some(evs) = x.events.get(&w.id) else { continue };
        let v = |d: String| violation(CHECK_15, &w.id, d);
        for run in runs(evs) {
            let started: Vec<&WorkflowEvent> =
                evs.iter().filter(|e| e.run == run && e.kind == kind::COMPENSATION_STARTED).collect();
            let Some((c, _)) = compensating(evs, run) else {
                if !started.is_empty() {
                    out.push(v(format!(
                        "run {run} never began compensating but started {} compensations",
                        started.len()
                    )));
                }
                continue;
            };
            let first = started.first().map(|e| number(e)).unwrap_or(u64::MAX);
            // Latest success first, among the compensated steps that had succeeded by then.
            let mut done: Vec<&WorkflowEvent> = evs
                .iter()
                .filter(|e| e.kind == kind::STEP_SUCCEEDED && e.run <= run && number(e) < first)
                .filter(|e| e.step.as_deref().and_then(|s| w.step(s)).is_some_and(|s| s.compensate.is_some()))
                .collect();
            done.sort_by_key(|e| std::cmp::Reverse(number(e)));
            let want: Vec<&str> = done.iter().filter_map(|e| e.step.as_deref()).collect();
            let got: Vec<&str> = started.iter().filter_map(|e| e.step.as_deref()).collect();
            if want != got {
                out.push(v(format!("run {run} compensated {got:?}; the reverse order of completion is {want:?}")));
            }
            let last_step_end = evs
                .iter()
                .filter(|e| e.run == run && is_step_terminal(&e.kind) && e.kind != kind::STEP_SKIPPED)
                .map(number)
                .max()
                .unwrap_or(0);
            if first != u64::MAX && (first < c || first < last_step_end) {
                out.push(v(format!(
                    "run {run}'s first compensation (event {first}) started while steps still ran (last step outcome: event {last_step_end}, compensating: event {c})"
                )));
            }
            for pair in started.windows(2) {
                let (prev, next) = (pair[0], pair[1]);
                let prev_step = prev.step.as_deref().unwrap_or("?");
                let ended = evs.iter().find(|e| {
                    e.run == run && e.step.as_deref() == Some(prev_step) && is_compensation_terminal(&e.kind)
                });
                match ended {
                    Some(end) if number(end) < number(next) => {
                        let began = next.task_id.as_deref().and_then(|t| x.first_start(t));
                        if let Some(began) = began.filter(|b| b + CLOCK_SLACK_US < x.at_us(end)) {
                            out.push(v(format!(
                                "the compensation of {:?} began at {}, before the one of {prev_step} ended at {}",
                                next.step,
                                secs(began),
                                secs(x.at_us(end))
                            )));
                        }
                    }
                    _ => out.push(v(format!(
                        "the compensation of {:?} started ({}) before the one of {prev_step} ended",
                        next.step, next.event_id
                    ))),
                }
            }
        }
    }
    out
}
