//! Check 9, an unreachable agent spends no attempt (docs/semantics.md: "an open circuit stops the
//! fetcher instead of burning attempts"; docs/agents.md: "an agent that cannot be reached spends no
//! attempt").
//!
//! The proof is in each task's record. Every outcome that was not final appended one item to its
//! `history` with the attempts spent so far: a failed attempt spends one (`attempt` = the previous
//! item's + 1), an unreachable agent none (its item, `agent unavailable: …`, repeats the previous
//! count). The final outcome is the next attempt (`attempts` = spent + 1; a dead task's last item is
//! that attempt). So, walking the history of every final task:
//! - an `agent unavailable` item must not raise the count, any other failure raises it by exactly one;
//! - a failure that says the agent could not be connected to must be an `agent unavailable` one (a
//!   connection refused that was booked as a failed attempt is the bug this check exists for);
//! - the final `attempts` must be the count + 1, and no task is dead-lettered for being unreachable.
//!
//! In particular a task that met only a down agent (every failure `agent unavailable`) ends on
//! attempt 1, whatever its agent's `max_retries`. The nodes' `/metrics` (genesis_tasks_unavailable_total,
//! genesis_circuit_transitions_total, genesis_circuit_wait_seconds) are printed beside it as evidence
//! that outages happened and circuits opened; they are lower bounds (a killed node's last moments are
//! not scraped), so the verdict comes from the records.

use super::{HistoryItem, Violation};
use serde::Serialize;

/// How the worker words a requeue for an unreachable agent (`ExecError::Unavailable`'s display).
pub const UNAVAILABLE_PREFIX: &str = "agent unavailable: ";

/// How the A2A and HTTP executors word a failed connect (`cannot connect to <url>: …`).
const CONNECT_FAILURE: &str = "cannot connect to ";

#[derive(Debug, Clone, Default, Serialize)]
pub struct CircuitStats {
    /// `agent unavailable` items in all histories (requeues that spent no attempt).
    pub unavailable_outcomes: usize,
    /// Tasks with at least one of them.
    pub tasks_met_down_agent: usize,
    /// Of those, tasks with no other failure (they failed only because their agent was down).
    pub tasks_met_only_down_agent: usize,
    /// Of those, the ones that ended succeeded on attempt 1 (must be all of them).
    pub tasks_met_only_down_agent_succeeded_first: usize,
}

pub fn is_unavailable(error: &str) -> bool {
    error.starts_with(UNAVAILABLE_PREFIX)
}

/// The violations of one final task (`status` is `succeeded` or `dead`), counted into `stats`.
pub fn attempts_accounted(
    task_id: &str,
    status: &str,
    attempts: u32,
    history: &[HistoryItem],
    stats: &mut CircuitStats,
) -> Vec<Violation> {
    let v = |detail: String| Violation { check: "9 unreachable agent spends no attempt".into(), detail };
    let mut out = Vec::new();
    let dead = status == "dead";
    let (retries, last) = match (dead, history.split_last()) {
        (true, Some((last, rest))) => (rest, Some(last)),
        _ => (history, None),
    };
    let mut spent = 0u32;
    let mut down = 0usize;
    let mut others = 0usize;
    for (i, h) in retries.iter().enumerate() {
        let unavailable = is_unavailable(&h.error);
        let want = if unavailable { spent } else { spent + 1 };
        if unavailable {
            down += 1;
        } else {
            others += 1;
        }
        if h.attempt != want {
            out.push(v(format!(
                "task {task_id}: history item {i} ({:?}) books {} attempts spent after {spent}; {} ({history:?})",
                h.error,
                h.attempt,
                if unavailable { "an unreachable agent spends none" } else { "a failed attempt spends one" }
            )));
        }
        if !unavailable && h.error.contains(CONNECT_FAILURE) {
            out.push(v(format!(
                "task {task_id}: history item {i}: a connection failure was booked as a failed attempt: {:?}",
                h.error
            )));
        }
        spent = h.attempt;
    }
    match last {
        Some(l) => {
            others += 1;
            if is_unavailable(&l.error) {
                out.push(v(format!("task {task_id}: dead-lettered for an unreachable agent: {:?}", l.error)));
            }
            if l.attempt != spent + 1 || attempts != l.attempt {
                out.push(v(format!(
                    "task {task_id}: dead on attempt {} (record says {attempts}) after {spent} spent ({history:?})",
                    l.attempt
                )));
            }
        }
        None if dead => out.push(v(format!("task {task_id}: dead without a history item for its last attempt"))),
        None => {
            if attempts != spent + 1 {
                out.push(v(format!(
                    "task {task_id}: succeeded with attempts {attempts}, but its history spent {spent} before the last ({history:?})"
                )));
            }
        }
    }
    stats.unavailable_outcomes += down;
    if down > 0 {
        stats.tasks_met_down_agent += 1;
        if others == 0 {
            stats.tasks_met_only_down_agent += 1;
            if status == "succeeded" && attempts == 1 {
                stats.tasks_met_only_down_agent_succeeded_first += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(attempt: u32, error: &str) -> HistoryItem {
        HistoryItem { attempt, error: error.into(), at: 0 }
    }
    const DOWN: &str =
        "agent unavailable: agent card at http://127.0.0.1:1: cannot connect to http://127.0.0.1:1: refused";

    fn check(status: &str, attempts: u32, history: &[HistoryItem]) -> (Vec<Violation>, CircuitStats) {
        let mut s = CircuitStats::default();
        (attempts_accounted("t", status, attempts, history, &mut s), s)
    }

    #[test]
    fn requeues_for_a_down_agent_keep_the_attempt() {
        let (v, s) = check("succeeded", 1, &[h(0, DOWN), h(0, DOWN), h(0, DOWN)]);
        assert!(v.is_empty(), "{v:?}");
        assert_eq!((s.unavailable_outcomes, s.tasks_met_only_down_agent_succeeded_first), (3, 1));
        let (v, _) = check("succeeded", 3, &[h(1, "boom"), h(1, DOWN), h(2, "boom"), h(2, DOWN)]);
        assert!(v.is_empty(), "{v:?}");
        let (v, s) = check("dead", 2, &[h(0, DOWN), h(1, "boom"), h(2, "boom")]);
        assert!(v.is_empty(), "{v:?}");
        assert_eq!((s.tasks_met_down_agent, s.tasks_met_only_down_agent), (1, 0));
        assert!(check("succeeded", 1, &[]).0.is_empty());
    }

    #[test]
    fn a_down_agent_that_spends_an_attempt_is_reported() {
        // The requeue booked attempt 1 as spent, and the task succeeded on attempt 2.
        let (v, s) = check("succeeded", 2, &[h(1, DOWN)]);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("an unreachable agent spends none"), "{v:?}");
        assert_eq!((s.tasks_met_only_down_agent, s.tasks_met_only_down_agent_succeeded_first), (1, 0));
        // A refused connection booked as an ordinary failed attempt.
        let (v, _) = check("succeeded", 2, &[h(1, "SendMessage: cannot connect to http://127.0.0.1:1: refused")]);
        assert!(v.iter().any(|v| v.detail.contains("connection failure")), "{v:?}");
        // Dead-lettered while unreachable.
        let (v, _) = check("dead", 1, &[h(1, DOWN)]);
        assert!(v.iter().any(|v| v.detail.contains("dead-lettered for an unreachable agent")), "{v:?}");
    }

    #[test]
    fn attempts_must_match_the_history() {
        assert_eq!(check("succeeded", 1, &[h(1, "boom")]).0.len(), 1);
        assert_eq!(check("succeeded", 3, &[h(1, "boom")]).0.len(), 1);
        assert_eq!(check("dead", 3, &[h(1, "boom"), h(2, "boom")]).0.len(), 1);
        assert_eq!(check("dead", 1, &[]).0.len(), 1);
    }
}
