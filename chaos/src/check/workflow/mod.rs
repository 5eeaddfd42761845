//! The workflow checks (11–17, `docs/CHAOS.md`), on what a workflow run leaves in Redis: each
//! workflow's stored document, the workflow events stream, the step tasks' records, and the
//! executions the simulated executor reported (`report_to` in every step's and compensation's
//! `simulate`).
//!
//! - 11 outcomes recorded once (`outcomes`): one terminal event per step per run, every event number
//!   present, a redelivered event identical to the first, and each outcome agreeing with its task's
//!   record and the stored step.
//! - 12 no step before its needs (`order`): each `step.started` comes after an outcome of every need
//!   that lets it run, and the step's task began executing after those outcomes.
//! - 13 joins fire once (`outcomes`): one `step.started` (one task) per step per run; a step that
//!   succeeded is not run again by a retry; no task ran that no step started.
//! - 14 nothing starts after a cancel (`order`): no `step.started` after the run's
//!   `workflow.compensating` (a cancel, a failure or the deadline).
//! - 15 compensations in reverse completion order, one at a time, once no step runs (`order`).
//! - 16 budgets: not checked (the workflow budget scope is not on main; the plans spend nothing).
//! - 17 every workflow ends (`ending`): final, outbox empty, by the run's deadline, last event the
//!   final one, and as steered (status, reason, runs).
//!
//! Events are delivered at least once: they are deduplicated by `event_id` first, and ordered by the
//! number in it (the engine's own order of transitions).

mod ending;
mod order;
mod outcomes;
mod stats;

pub use self::stats::WorkflowStats;

use super::store::xrange_all;
use super::{CheckReport, Violation};
use crate::record::{run_us, ExecReport, Expect, PublishedTask, RunRecord};
use crate::workload::workflows::WorkflowRecord;
use genesis_actors::workflow::events::{kind, WorkflowEvent};
use genesis_actors::workflow::state::Workflow;
use genesis_actors::workflow::store::keys;
use redis::aio::MultiplexedConnection;
use std::collections::{BTreeMap, HashMap};

/// Reports are stamped when they arrive and events carry milliseconds: an execution may look up to
/// this much older than the outcome it waited for.
pub const CLOCK_SLACK_US: u64 = 5_000;

/// What Redis holds about the run's workflows.
#[derive(Debug, Clone, Default)]
pub struct Data {
    /// The stored document of each workflow of the run that has one.
    pub docs: HashMap<String, Workflow>,
    /// The events stream, in stream order (the run's workflows only).
    pub raw: Vec<WorkflowEvent>,
}

/// Read the documents of the run's workflows and the whole events stream.
pub async fn load(c: &mut MultiplexedConnection, run: &RunRecord) -> anyhow::Result<Data> {
    let mut docs = HashMap::new();
    for w in &run.workflows {
        let doc: Option<String> = redis::cmd("HGET").arg(keys::doc(&w.id)).arg("doc").query_async(c).await?;
        if let Some(doc) = doc {
            let wf: Workflow = serde_json::from_str(&doc)
                .map_err(|e| anyhow::anyhow!("workflow {}: unreadable document: {e}", w.id))?;
            docs.insert(w.id.clone(), wf);
        }
    }
    let ours: std::collections::HashSet<&str> = run.workflows.iter().map(|w| w.id.as_str()).collect();
    let mut raw = Vec::new();
    for (id, fields) in xrange_all(c, &keys::events()).await? {
        let Some(json) = fields.get("event") else { continue };
        let e: WorkflowEvent =
            serde_json::from_str(json).map_err(|e| anyhow::anyhow!("event {id}: unreadable: {e}"))?;
        if ours.contains(e.workflow_id.as_str()) {
            raw.push(e);
        }
    }
    Ok(Data { docs, raw })
}

/// How many of the workflows `ids` have not ended (not final, or effects left in the outbox; a
/// missing one counts as not ended). What the harness polls while it waits.
pub async fn not_ended(url: &str, ids: &[String]) -> anyhow::Result<usize> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut c = super::store::connect(url).await?;
    let mut pipe = redis::pipe();
    for id in ids {
        pipe.cmd("HGET").arg(keys::doc(id)).arg("doc");
    }
    let docs: Vec<Option<String>> = pipe.query_async(&mut c).await?;
    Ok(docs
        .iter()
        .filter(|d| {
            let wf = d.as_deref().and_then(|d| serde_json::from_str::<Workflow>(d).ok());
            !wf.is_some_and(|w| w.status.is_final() && w.outbox.is_empty())
        })
        .count())
}

/// The number `n` of an event id `<workflow>:<n>` (0 when it has none).
pub fn number(e: &WorkflowEvent) -> u64 {
    e.event_id.rsplit(':').next().and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// Each workflow's events, deduplicated by `event_id` and ordered by number; with how many were
/// delivered again. Two different events under one id are a violation (check 11).
pub fn dedup(raw: &[WorkflowEvent], violations: &mut Vec<Violation>) -> (BTreeMap<String, Vec<WorkflowEvent>>, usize) {
    let mut by_id: BTreeMap<&str, &WorkflowEvent> = BTreeMap::new();
    let mut again = 0;
    for e in raw {
        match by_id.get(e.event_id.as_str()) {
            None => {
                by_id.insert(&e.event_id, e);
            }
            Some(first) if *first == e => again += 1,
            Some(first) => violations.push(Violation {
                check: outcomes::CHECK_11.into(),
                detail: format!(
                    "event {} was appended twice with different contents: {} {:?} then {} {:?}",
                    e.event_id, first.kind, first.step, e.kind, e.step
                ),
            }),
        }
    }
    let mut out: BTreeMap<String, Vec<WorkflowEvent>> = BTreeMap::new();
    for e in by_id.into_values() {
        out.entry(e.workflow_id.clone()).or_default().push(e.clone());
    }
    for v in out.values_mut() {
        v.sort_by_key(number);
    }
    (out, again)
}

/// Whether an event is a step's outcome (or its skip): what "recorded once" counts.
pub fn is_step_terminal(k: &str) -> bool {
    matches!(k, kind::STEP_SUCCEEDED | kind::STEP_FAILED | kind::STEP_CANCELLED | kind::STEP_SKIPPED)
}

pub fn is_compensation_terminal(k: &str) -> bool {
    matches!(k, kind::COMPENSATION_SUCCEEDED | kind::COMPENSATION_FAILED)
}

/// The tasks the run's workflows published — every `step.started` and `compensation.started`,
/// over every run — as published tasks, so checks 1–7 hold for them as for plain tasks. A step's
/// task is steered by its plan (`fail_runs` by the run), except one cancelled at its agent.
pub fn step_tasks(run: &RunRecord, data: &Data) -> Vec<PublishedTask> {
    let mut ignored = Vec::new();
    let (events, _) = dedup(&data.raw, &mut ignored);
    let plans: HashMap<&str, &WorkflowRecord> = run.workflows.iter().map(|w| (w.id.as_str(), w)).collect();
    let mut out = Vec::new();
    for (wf, evs) in &events {
        let Some(plan) = plans.get(wf.as_str()) else { continue };
        let cancelled: Vec<(&str, u32)> = evs
            .iter()
            .filter(|e| e.kind == kind::STEP_CANCELLED)
            .filter_map(|e| Some((e.step.as_deref()?, e.run)))
            .collect();
        for e in evs {
            let (Some(step), Some(task_id)) = (e.step.as_deref(), e.task_id.as_deref()) else { continue };
            let Some(sp) = plan.step(step) else { continue };
            let (kind, expect, panic_deliveries, max_retries) = match e.kind.as_str() {
                kind::STEP_STARTED => {
                    let expect = if cancelled.contains(&(step, e.run)) { Expect::Either } else { sp.expect(e.run) };
                    (format!("wf.{}", sp.kind), expect, sp.panic_deliveries, sp.max_retries)
                }
                kind::COMPENSATION_STARTED => {
                    let Some(c) = &sp.compensate else { continue };
                    let expect = if c.fails { Expect::Dead("fatal_error".into()) } else { Expect::Succeeded };
                    let k = if c.fails { "wf.compensate_fails" } else { "wf.compensate" };
                    (k.to_string(), expect, 0, c.max_retries)
                }
                _ => continue,
            };
            out.push(PublishedTask {
                task_id: task_id.to_string(),
                topic: e.agent.clone().unwrap_or_default(),
                kind,
                panic_deliveries,
                max_retries,
                expect,
                published_at_us: run_us(run.clock_unix_ms, e.at),
            });
        }
    }
    out
}

/// Everything the workflow checks read.
pub struct Inputs<'a> {
    pub run: &'a RunRecord,
    pub docs: &'a HashMap<String, Workflow>,
    /// Each workflow's events, deduplicated and in order ([`dedup`]).
    pub events: &'a BTreeMap<String, Vec<WorkflowEvent>>,
    /// Start reports by task id.
    pub starts: &'a HashMap<&'a str, Vec<&'a ExecReport>>,
    /// Task record status by task id (the run's tasks, plain and of workflows).
    pub task_status: &'a HashMap<String, String>,
}

impl Inputs<'_> {
    /// When a task's first reported execution began (run clock).
    pub fn first_start(&self, task_id: &str) -> Option<u64> {
        self.starts.get(task_id)?.iter().map(|r| r.at_us).min()
    }

    /// An event's time on the run clock.
    pub fn at_us(&self, e: &WorkflowEvent) -> u64 {
        run_us(self.run.clock_unix_ms, e.at)
    }
}

/// Checks 11–17 over the run's workflows; their numbers go to `r.workflows`.
pub fn check(
    run: &RunRecord,
    data: &Data,
    starts: &HashMap<&str, Vec<&ExecReport>>,
    task_status: &HashMap<String, String>,
    r: &mut CheckReport,
) {
    let mut violations = Vec::new();
    let (events, redelivered) = dedup(&data.raw, &mut violations);
    let inputs = Inputs { run, docs: &data.docs, events: &events, starts, task_status };
    violations.extend(outcomes::recorded_once(&inputs));
    violations.extend(outcomes::joins_once(&inputs));
    violations.extend(order::needs_first(&inputs));
    violations.extend(order::nothing_after_compensating(&inputs));
    violations.extend(order::compensations(&inputs));
    violations.extend(ending::every_workflow_ends(&inputs));
    let mut s = stats::stats(&inputs);
    s.events_redelivered = redelivered;
    r.workflows = Some(s);
    r.violations.extend(violations);
}

/// A violation of check `check` about workflow `wf`.
pub(crate) fn violation(check: &str, wf: &str, detail: String) -> Violation {
    Violation { check: check.to_string(), detail: format!("workflow {wf}: {detail}") }
}

#[cfg(test)]
mod tests;
