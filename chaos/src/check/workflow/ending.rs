//! Check 17, every workflow ends: each workflow the run started is stored as succeeded, failed or
//! cancelled with nothing left in its outbox, ended by the run's deadline, its last event is that
//! ending, every step of it is final, and it ended as steered (status, reason, runs).

use super::{number, violation, Inputs};
use crate::check::Violation;
use crate::record::run_us;
use crate::secs;
use genesis_actors::workflow::events::kind;
use genesis_actors::workflow::state::{StepStatus, WorkflowStatus};

pub const CHECK_17: &str = "17 every workflow ends";

fn final_event(s: WorkflowStatus) -> Option<&'static str> {
    match s {
        WorkflowStatus::Succeeded => Some(kind::WORKFLOW_SUCCEEDED),
        WorkflowStatus::Failed => Some(kind::WORKFLOW_FAILED),
        WorkflowStatus::Cancelled => Some(kind::WORKFLOW_CANCELLED),
        _ => None,
    }
}

pub(super) fn every_workflow_ends(x: &Inputs<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    for w in &x.run.workflows {
        let v = |d: String| violation(CHECK_17, &w.id, d);
        if let Some(e) = &w.start_error {
            out.push(v(format!("could not be started: {e}")));
            continue;
        }
        let Some(doc) = x.docs.get(&w.id) else {
            out.push(v("was started, but no workflow is stored under its id".into()));
            continue;
        };
        if !doc.status.is_final() || !doc.outbox.is_empty() {
            out.push(v(format!(
                "has not ended: {} with {} effects in its outbox (reason {:?})",
                doc.status.as_str(),
                doc.outbox.len(),
                doc.reason
            )));
            continue;
        }
        if let Some(ended) = doc.ended_at.map(|e| run_us(x.run.clock_unix_ms, e)) {
            if x.run.workflows_deadline_us > 0 && ended > x.run.workflows_deadline_us {
                out.push(v(format!(
                    "ended at {}, after the run's deadline {}",
                    secs(ended),
                    secs(x.run.workflows_deadline_us)
                )));
            }
        }
        let last = x.events.get(&w.id).and_then(|e| e.iter().max_by_key(|e| number(e)));
        let want_last = final_event(doc.status);
        if last.map(|e| e.kind.as_str()) != want_last || last.map(|e| e.run) != Some(doc.run) {
            out.push(v(format!(
                "is {} (run {}), but its last event is {:?}",
                doc.status.as_str(),
                doc.run,
                last.map(|e| (&e.kind, e.run, &e.event_id))
            )));
        }
        let open: Vec<&str> = doc
            .steps
            .iter()
            .filter(|s| matches!(s.status, StepStatus::Pending | StepStatus::Running))
            .map(|s| s.id.as_str())
            .collect();
        if !open.is_empty() {
            out.push(v(format!("ended {}, but steps {open:?} are still pending or running", doc.status.as_str())));
        }
        let (status, reason) = w.expect();
        if doc.status.as_str() != status || doc.reason.as_deref() != reason {
            out.push(v(format!(
                "ended {} (reason {:?}, error {:?}), but its shape {} steers it to {status} (reason {reason:?}); cancel {:?}, retries {:?}",
                doc.status.as_str(),
                doc.reason,
                doc.error,
                w.shape.as_str(),
                w.cancel,
                w.retries
            )));
        }
        if doc.run != w.expected_runs() {
            out.push(v(format!("had {} runs; {} retries were accepted", doc.run, w.expected_runs() - 1)));
        }
    }
    out
}
