//! Check 11, every step's outcome recorded once, and check 13, joins fire once.

use super::{is_compensation_terminal, is_step_terminal, number, violation, Inputs};
use crate::check::Violation;
use genesis_actors::workflow::events::{kind, WorkflowEvent};
use genesis_actors::workflow::state::StepStatus;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

pub const CHECK_11: &str = "11 step outcomes recorded once";
pub const CHECK_13: &str = "13 joins fire once";

/// The events of each (run, step), in order.
pub(super) fn by_step(evs: &[WorkflowEvent]) -> BTreeMap<(u32, &str), Vec<&WorkflowEvent>> {
    let mut m: BTreeMap<(u32, &str), Vec<&WorkflowEvent>> = BTreeMap::new();
    for e in evs {
        if let Some(s) = e.step.as_deref() {
            m.entry((e.run, s)).or_default().push(e);
        }
    }
    m
}

fn kinds(evs: &[&WorkflowEvent]) -> Vec<String> {
    evs.iter().map(|e| format!("{} ({})", e.kind, e.event_id)).collect()
}

/// The stored step status an outcome event leaves.
fn status_of(k: &str) -> Option<StepStatus> {
    match k {
        kind::STEP_SUCCEEDED => Some(StepStatus::Succeeded),
        kind::STEP_FAILED => Some(StepStatus::Failed),
        kind::STEP_CANCELLED => Some(StepStatus::Cancelled),
        kind::STEP_SKIPPED => Some(StepStatus::Skipped),
        _ => None,
    }
}

/// Check 11: per workflow, every event number from 1 to the document's count is in the stream; per
/// run and step at most one outcome, exactly one once the step started (when the workflow ended),
/// none without a start (a skip excepted); each outcome agrees with its task's record; the stored
/// step agrees with its last outcome. The same for compensations.
pub(super) fn recorded_once(x: &Inputs<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    for w in &x.run.workflows {
        let Some(evs) = x.events.get(&w.id) else { continue };
        let v = |d: String| violation(CHECK_11, &w.id, d);
        let doc = x.docs.get(&w.id);
        if let Some(doc) = doc {
            let have: BTreeSet<u64> = evs.iter().map(number).collect();
            let missing: Vec<u64> = (1..=doc.events).filter(|n| !have.contains(n)).collect();
            if !missing.is_empty() {
                out.push(v(format!("events {missing:?} of its {} are not in the events stream", doc.events)));
            }
        }
        let ended = doc.is_some_and(|d| d.status.is_final());
        for ((run, step), list) in by_step(evs) {
            let started: Vec<&&WorkflowEvent> = list.iter().filter(|e| e.kind == kind::STEP_STARTED).collect();
            let ends: Vec<&WorkflowEvent> = list.iter().copied().filter(|e| is_step_terminal(&e.kind)).collect();
            if ends.len() > 1 {
                out.push(v(format!("step {step} of run {run} has {} outcomes: {:?}", ends.len(), kinds(&ends))));
            }
            let skipped_only = ends.iter().all(|e| e.kind == kind::STEP_SKIPPED);
            if started.is_empty() && !ends.is_empty() && !skipped_only {
                out.push(v(format!("step {step} of run {run} has an outcome but never started: {:?}", kinds(&ends))));
            }
            if !started.is_empty() && ends.is_empty() && ended {
                out.push(v(format!("step {step} started in run {run}, but its outcome was never recorded")));
            }
            for e in &ends {
                let Some(task) = e.task_id.as_deref() else { continue };
                let want = match e.kind.as_str() {
                    kind::STEP_SUCCEEDED => "succeeded",
                    kind::STEP_FAILED | kind::STEP_CANCELLED => "dead",
                    _ => continue,
                };
                let got = x.task_status.get(task).map(String::as_str).unwrap_or("missing");
                if got != want {
                    out.push(v(format!(
                        "step {step} of run {run} was recorded as {} ({}), but its task {task} is {got}",
                        e.kind, e.event_id
                    )));
                }
            }
            let comp_ends: Vec<&WorkflowEvent> =
                list.iter().copied().filter(|e| is_compensation_terminal(&e.kind)).collect();
            if comp_ends.len() > 1 {
                out.push(v(format!(
                    "the compensation of {step} in run {run} has {} outcomes: {:?}",
                    comp_ends.len(),
                    kinds(&comp_ends)
                )));
            }
        }
        // The stored step is what its last outcome says.
        if let Some(doc) = doc.filter(|d| d.status.is_final()) {
            for s in &doc.steps {
                let last = evs.iter().rfind(|e| e.step.as_deref() == Some(s.id.as_str()) && is_step_terminal(&e.kind));
                let said = last.and_then(|e| status_of(&e.kind));
                if said != Some(s.status) {
                    out.push(v(format!(
                        "step {} is stored {:?}, but its last recorded outcome is {:?}",
                        s.id,
                        s.status,
                        last.map(|e| &e.kind)
                    )));
                }
            }
        }
    }
    out
}

/// Check 13: per run and step at most one `step.started` (and one compensation start); one task per
/// (step, run), never shared; a step that succeeded is not started again by a later run; no task
/// ran (a start report) that neither the run published nor a workflow started.
pub(super) fn joins_once(x: &Inputs<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut owners: HashMap<&str, (String, u32, String)> = HashMap::new();
    for w in &x.run.workflows {
        let Some(evs) = x.events.get(&w.id) else { continue };
        let v = |d: String| violation(CHECK_13, &w.id, d);
        let mut succeeded: HashMap<&str, (u32, &str)> = HashMap::new();
        for e in evs {
            let Some(step) = e.step.as_deref() else { continue };
            if e.kind == kind::STEP_STARTED {
                if let Some((run, id)) = succeeded.get(step) {
                    out.push(v(format!(
                        "step {step} started again in run {} ({}) after it succeeded in run {run} ({id})",
                        e.run, e.event_id
                    )));
                }
            }
            if e.kind == kind::STEP_SUCCEEDED {
                succeeded.insert(step, (e.run, &e.event_id));
            }
            if e.kind == kind::STEP_STARTED || e.kind == kind::COMPENSATION_STARTED {
                let Some(task) = e.task_id.as_deref() else {
                    out.push(v(format!("{} of {step} ({}) names no task", e.kind, e.event_id)));
                    continue;
                };
                let me = (w.id.clone(), e.run, format!("{}:{step}", e.kind));
                if let Some(other) = owners.get(task).filter(|o| **o != me) {
                    out.push(v(format!("task {task} of {} {step} run {} is also {other:?}", e.kind, e.run)));
                }
                owners.insert(task, me);
            }
        }
        for ((run, step), list) in by_step(evs) {
            for k in [kind::STEP_STARTED, kind::COMPENSATION_STARTED] {
                let n: Vec<&WorkflowEvent> = list.iter().copied().filter(|e| e.kind == k).collect();
                if n.len() > 1 {
                    out.push(v(format!("{k} of {step} in run {run} {} times: {:?}", n.len(), kinds(&n))));
                }
                let tasks: HashSet<Option<&str>> = n.iter().map(|e| e.task_id.as_deref()).collect();
                if tasks.len() > 1 {
                    out.push(v(format!("{step} in run {run} was published as {} tasks: {tasks:?}", tasks.len())));
                }
            }
        }
    }
    let plain: HashSet<&str> = x.run.tasks.iter().map(|t| t.task_id.as_str()).collect();
    let mut unknown: Vec<&&str> =
        x.starts.keys().filter(|t| !plain.contains(**t) && !owners.contains_key(**t)).collect();
    unknown.sort();
    for t in unknown {
        out.push(Violation {
            check: CHECK_13.into(),
            detail: format!(
                "task {t} ran ({} start reports), but no step or compensation started it",
                x.starts[*t].len()
            ),
        });
    }
    out
}
