//! The workflow numbers a run reports (issue 11's metrics: workflows by status, step latency, time
//! to first step), read from the stored workflows and the events, and how checks 11–17 print.

use super::{number, Inputs};
use crate::check::CheckReport;
use crate::workload::workflows::Via;
use genesis_actors::workflow::events::kind;
use serde::Serialize;
use std::collections::BTreeMap;

/// Milliseconds at the 50th and 95th percentile and the highest.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Spread {
    pub count: usize,
    pub p50_ms: u64,
    pub p95_ms: u64,
    pub max_ms: u64,
}

impl Spread {
    fn of(mut v: Vec<u64>) -> Spread {
        v.sort_unstable();
        let at = |q: f64| v.get(((v.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0);
        Spread { count: v.len(), p50_ms: at(0.5), p95_ms: at(0.95), max_ms: v.last().copied().unwrap_or(0) }
    }
}

impl std::fmt::Display for Spread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "p50 {} ms, p95 {} ms, max {} ms (n {})", self.p50_ms, self.p95_ms, self.max_ms, self.count)
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct WorkflowStats {
    pub workflows: usize,
    pub by_status: BTreeMap<String, usize>,
    pub by_reason: BTreeMap<String, usize>,
    pub by_shape: BTreeMap<String, usize>,
    pub via_cli: usize,
    pub steps_planned: usize,
    /// `step.started` events over every run (tasks published for steps).
    pub steps_started: usize,
    /// Final step statuses in the stored workflows.
    pub steps_by_status: BTreeMap<String, usize>,
    pub compensations_started: usize,
    pub compensations_failed: usize,
    pub cancels_accepted: usize,
    pub cancels_refused: usize,
    pub retries_accepted: usize,
    pub events: usize,
    /// Events the stream holds more than once (at-least-once delivery).
    pub events_redelivered: usize,
    /// From a step's start (publish) to its outcome, over every run.
    pub step_latency: Spread,
    /// Which step took longest (workflow, step, run).
    pub slowest_step: String,
    /// From a workflow's start to its first step's success.
    pub time_to_first_step: Spread,
    /// From a workflow's start to its end.
    pub duration: Spread,
}

pub(super) fn stats(x: &Inputs<'_>) -> WorkflowStats {
    let mut s = WorkflowStats { workflows: x.run.workflows.len(), ..Default::default() };
    let (mut latency, mut first, mut duration) = (Vec::new(), Vec::new(), Vec::new());
    for w in &x.run.workflows {
        *s.by_shape.entry(w.shape.as_str().to_string()).or_default() += 1;
        s.via_cli += usize::from(w.via == Via::Cli);
        s.steps_planned += w.steps.len();
        if let Some(c) = &w.cancel {
            if c.accepted {
                s.cancels_accepted += 1;
            } else {
                s.cancels_refused += 1;
            }
        }
        s.retries_accepted += w.retries.iter().filter(|r| r.accepted).count();
        if let Some(doc) = x.docs.get(&w.id) {
            *s.by_status.entry(doc.status.as_str().to_string()).or_default() += 1;
            if let Some(r) = &doc.reason {
                *s.by_reason.entry(r.clone()).or_default() += 1;
            }
            for st in &doc.steps {
                *s.steps_by_status.entry(st.status.as_str().to_string()).or_default() += 1;
            }
            if let Some(end) = doc.ended_at {
                duration.push(end.saturating_sub(doc.created_at));
            }
        }
        let Some(evs) = x.events.get(&w.id) else { continue };
        s.events += evs.len();
        let started_at = evs.iter().find(|e| e.kind == kind::WORKFLOW_STARTED).map(|e| e.at);
        let mut began: BTreeMap<(u32, &str), u64> = BTreeMap::new();
        for e in evs {
            let Some(step) = e.step.as_deref() else { continue };
            match e.kind.as_str() {
                kind::STEP_STARTED => {
                    s.steps_started += 1;
                    began.insert((e.run, step), e.at);
                }
                kind::STEP_SUCCEEDED | kind::STEP_FAILED | kind::STEP_CANCELLED => {
                    if let Some(b) = began.get(&(e.run, step)) {
                        let took = e.at.saturating_sub(*b);
                        if latency.iter().all(|l| *l < took) {
                            s.slowest_step = format!("{} step {step} run {} ({})", w.id, e.run, e.kind);
                        }
                        latency.push(took);
                    }
                }
                kind::COMPENSATION_STARTED => s.compensations_started += 1,
                kind::COMPENSATION_FAILED => s.compensations_failed += 1,
                _ => {}
            }
        }
        let first_ok = evs.iter().filter(|e| e.kind == kind::STEP_SUCCEEDED).min_by_key(|e| number(e));
        if let (Some(start), Some(ok)) = (started_at, first_ok) {
            first.push(ok.at.saturating_sub(start));
        }
    }
    s.step_latency = Spread::of(latency);
    s.time_to_first_step = Spread::of(first);
    s.duration = Spread::of(duration);
    s
}

impl CheckReport {
    /// Checks 11–17 and the workflow numbers (runs with workflows only).
    pub fn print_workflow_checks(&self) {
        let Some(s) = &self.workflows else { return };
        let verdict = |n: &str| self.verdict(n);
        println!(
            "11. step outcomes recorded once ... {}: {} workflows, {} steps planned, {} step starts, {} events ({} delivered twice)",
            verdict("11"),
            s.workflows,
            s.steps_planned,
            s.steps_started,
            s.events,
            s.events_redelivered
        );
        println!("12. no step before its needs ..... {}", verdict("12"));
        println!("13. joins fire once .............. {}", verdict("13"));
        println!(
            "14. nothing starts after a cancel  {}: cancels accepted {}, refused (already ended) {}",
            verdict("14"),
            s.cancels_accepted,
            s.cancels_refused
        );
        println!(
            "15. compensations in reverse order {}: {} compensations started, {} failed",
            verdict("15"),
            s.compensations_started,
            s.compensations_failed
        );
        println!("16. workflow budgets ............. not checked: the workflow budget scope is not on main (the plans spend nothing)");
        println!(
            "17. every workflow ends .......... {}: {:?}, reasons {:?}; retries accepted {}",
            verdict("17"),
            s.by_status,
            s.by_reason,
            s.retries_accepted
        );
        println!("== workflows");
        println!("   shapes {:?}; started with the CLI: {}", s.by_shape, s.via_cli);
        println!("   steps by final status {:?}", s.steps_by_status);
        println!("   step latency (publish to outcome): {}; slowest: {}", s.step_latency, s.slowest_step);
        println!("   time to first step: {}", s.time_to_first_step);
        println!("   workflow duration: {}", s.duration);
    }
}
