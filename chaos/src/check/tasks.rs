//! The checks read from each task's result record: 1 none lost, 3 bounded attempts, 7 outcome as
//! steered, and 9 (in `circuit`) on its history.

use super::circuit::{self, is_unavailable};
use super::{history, CheckReport, HistoryItem};
use crate::record::{run_us, EventKind, ExecReport, Expect, PublishedTask, RunRecord};
use crate::secs;
use std::collections::{BTreeSet, HashMap};

/// How the A2A executor words an exchange that a dying agent cut short: the connection broke, or
/// no answer came. Such a failure spends an attempt by design (the agent may have started the work:
/// docs/agents.md, "a broken connection … server error: retryable").
fn cut_short(error: &str) -> bool {
    !is_unavailable(error) && (error.contains("broke off") || error.contains("no answer from"))
}

/// A failure of the task's attempt that a kill of its agent explains: cut short (above), written
/// from 0.5 s before to 5 s after a kill of the task's agent (the outcome is written once the worker
/// sees the broken exchange; a Redis outage may delay it).
fn cut_by_agent_kill(run: &RunRecord, t: &PublishedTask, h: &[HistoryItem]) -> Option<String> {
    if run.clock_unix_ms == 0 {
        return None;
    }
    let kills: Vec<u64> = run
        .events
        .iter()
        .filter(|e| e.kind == EventKind::AgentKill && e.agent.as_deref() == Some(t.topic.as_str()))
        .map(|e| e.at_us)
        .collect();
    h.iter().filter(|x| cut_short(&x.error)).find_map(|x| {
        let at = run_us(run.clock_unix_ms, x.at);
        kills
            .iter()
            .find(|k| **k <= at + 500_000 && at <= **k + 5_000_000)
            .map(|k| format!("attempt {} cut short by the agent kill at {}: {}", x.attempt, secs(*k), x.error))
    })
}

pub(super) fn per_task(
    run: &RunRecord,
    records: &[HashMap<String, String>],
    dlq_by_task: &HashMap<String, Vec<String>>,
    starts_by_task: &HashMap<&str, Vec<&ExecReport>>,
    r: &mut CheckReport,
) {
    let max_retries = run.max_retries_by_topic();
    for (t, rec) in run.tasks.iter().zip(records) {
        let id = &t.task_id;
        let ks = r.by_kind.entry(t.kind.clone()).or_default();
        ks.published += 1;
        let status = rec.get("status").map(String::as_str).unwrap_or("");
        let reason = rec.get("reason").map(String::as_str).unwrap_or("");
        let dlq = dlq_by_task.get(id.as_str()).map(Vec::len).unwrap_or(0);
        match status {
            "" => {
                r.missing += 1;
                r.violate("1 none lost", format!("task {id} ({}, {}): no result record", t.topic, t.kind));
            }
            "succeeded" => {
                ks.succeeded += 1;
                r.succeeded += 1;
                if dlq > 0 {
                    r.violate(
                        "1 none lost",
                        format!("task {id} ({}): succeeded but also dead-lettered: {:?}", t.topic, dlq_by_task[id]),
                    );
                }
            }
            "dead" => {
                ks.dead += 1;
                r.dead += 1;
                *r.dead_by_reason.entry(reason.to_string()).or_default() += 1;
                if reason.is_empty() {
                    r.violate("1 none lost", format!("task {id} ({}): dead without a reason", t.topic));
                }
                if dlq != 1 {
                    r.violate(
                        "1 none lost",
                        format!(
                            "task {id} ({}): dead with {dlq} dead letters (want 1): {:?}",
                            t.topic,
                            dlq_by_task.get(id)
                        ),
                    );
                }
            }
            other => {
                r.stuck += 1;
                r.violate(
                    "1 none lost",
                    format!(
                        "task {id} ({}, {}): stuck in status `{other}` (attempts {:?})",
                        t.topic,
                        t.kind,
                        rec.get("attempts")
                    ),
                );
            }
        }
        let is_final = matches!(status, "succeeded" | "dead");
        if is_final && !starts_by_task.contains_key(id.as_str()) {
            r.final_tasks_without_start_report += 1;
        }
        // 3
        let limit = max_retries.get(&t.topic).copied().unwrap_or(t.max_retries) + 1;
        let attempts: u32 = rec.get("attempts").and_then(|a| a.parse().ok()).unwrap_or(0);
        r.max_attempts_recorded = r.max_attempts_recorded.max(attempts);
        if attempts > limit {
            r.violate("3 bounded attempts", format!("task {id} ({}): attempts {attempts} > {limit}", t.topic));
        }
        if let Some(starts) = starts_by_task.get(id.as_str()) {
            let distinct: BTreeSet<u32> = starts.iter().map(|s| s.attempt).collect();
            let highest = distinct.iter().max().copied().unwrap_or(0);
            if distinct.len() as u32 > limit || highest > limit {
                r.violate(
                    "3 bounded attempts",
                    format!("task {id} ({}): executions reported for attempts {distinct:?}, limit {limit}", t.topic),
                );
            }
        }
        let hist = history(rec);
        // 7
        let steered = match &t.expect {
            Expect::Succeeded => status == "succeeded",
            Expect::Dead(want) => status == "dead" && reason == want,
            Expect::Either => true,
        };
        if !steered && is_final {
            match cut_by_agent_kill(run, t, &hist) {
                Some(_) => r.outcomes_changed_by_agent_kills += 1,
                None => r.violate(
                    "7 outcome as steered",
                    format!(
                        "task {id} ({}, {}): expected {:?}, got {status} {reason} (attempts {attempts}, error {:?})",
                        t.topic,
                        t.kind,
                        t.expect,
                        rec.get("error").cloned().unwrap_or_default()
                    ),
                ),
            }
        }
        // 9
        if is_final {
            let v = circuit::attempts_accounted(id, status, attempts, &hist, &mut r.circuit);
            r.violations.extend(v);
        }
    }
}
