//! Check 4, at-least-once only at crashes: an attempt of a task may start more than once only when a
//! crash explains it — a planned one (a payload that panics the worker or crashes the process agent),
//! a node kill or exit, a Redis outage, or a kill of the task's A2A agent — between the two starts.

use super::{CheckReport, Options};
use crate::record::{EventKind, ExecReport, PublishedTask, RunRecord};
use crate::secs;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// An interval during which running work may have been interrupted, with its cause.
struct CrashWindow {
    from_us: u64,
    to_us: u64,
    cause: Cause,
    what: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Cause {
    Node,
    Redis,
    /// A kill of this agent's server: it explains repeats of that agent's tasks only.
    Agent(String),
}

fn crash_windows(run: &RunRecord, opts: Options) -> Vec<CrashWindow> {
    let mut events = run.events.clone();
    events.sort_by_key(|e| e.at_us);
    let mut out = Vec::new();
    for (i, e) in events.iter().enumerate() {
        match e.kind {
            // A node's own exit is noticed by polling, up to a moment later (the harness may be busy
            // restarting Redis): count it from 2 s before it was noticed.
            EventKind::NodeKill | EventKind::NodeExited => out.push(CrashWindow {
                from_us: if e.kind == EventKind::NodeExited { e.at_us.saturating_sub(2_000_000) } else { e.at_us },
                to_us: e.at_us,
                cause: Cause::Node,
                what: format!("{:?} {} at {}", e.kind, e.node.as_deref().unwrap_or("?"), secs(e.at_us)),
            }),
            EventKind::RedisKill => {
                let up = events[i + 1..].iter().find(|x| x.kind == EventKind::RedisUp).map(|x| x.at_us);
                out.push(CrashWindow {
                    from_us: e.at_us,
                    to_us: up.map(|u| u + opts.outage_grace_us).unwrap_or(u64::MAX),
                    cause: Cause::Redis,
                    what: format!("Redis outage from {}", secs(e.at_us)),
                });
            }
            EventKind::AgentKill => {
                let agent = e.agent.clone().unwrap_or_default();
                out.push(CrashWindow {
                    from_us: e.at_us,
                    to_us: e.at_us,
                    what: format!("AgentKill {agent} at {}", secs(e.at_us)),
                    cause: Cause::Agent(agent),
                })
            }
            _ => {}
        }
    }
    out
}

/// Check 4 over the reported starts of each task.
pub(super) fn duplicates(
    run: &RunRecord,
    starts: &HashMap<&str, Vec<&ExecReport>>,
    opts: Options,
    r: &mut CheckReport,
) {
    let windows = crash_windows(run, opts);
    let tasks: HashMap<&str, &PublishedTask> = run.tasks.iter().map(|t| (t.task_id.as_str(), t)).collect();
    let ends: BTreeSet<(&str, u32, u32, &str)> = run
        .reports
        .iter()
        .filter(|x| x.phase == "end")
        .map(|x| (x.task_id.as_str(), x.attempt, x.deliveries, x.node.as_str()))
        .collect();
    let mut keys: Vec<&&str> = starts.keys().collect();
    keys.sort();
    for task_id in keys {
        let mut by_attempt: BTreeMap<u32, Vec<&ExecReport>> = BTreeMap::new();
        for s in &starts[*task_id] {
            by_attempt.entry(s.attempt).or_default().push(s);
        }
        let task = tasks.get(*task_id);
        let planned = task.map(|t| t.panic_deliveries).unwrap_or(0);
        let topic = task.map(|t| t.topic.as_str()).unwrap_or("");
        // Outside agents do not know the delivery counter: their first `planned` repeats are the
        // planned crashes (a crash is always the first thing the payload does).
        let mut planned_left = planned;
        for (attempt, mut v) in by_attempt {
            v.sort_by_key(|s| s.at_us);
            for pair in v.windows(2) {
                let (prev, cur) = (pair[0], pair[1]);
                r.duplicate_starts += 1;
                let planned_crash = if prev.deliveries > 0 {
                    prev.deliveries <= planned
                } else if planned_left > 0 {
                    planned_left -= 1;
                    true
                } else {
                    false
                };
                if planned_crash {
                    r.duplicates_explained_by_panic += 1;
                    continue;
                }
                let lo = prev.at_us.saturating_sub(opts.dup_slack_us);
                let explains = |w: &&CrashWindow| {
                    w.from_us <= cur.at_us
                        && w.to_us >= lo
                        && match &w.cause {
                            Cause::Agent(a) => a == topic,
                            _ => true,
                        }
                };
                match windows.iter().find(explains).map(|w| &w.cause) {
                    Some(Cause::Redis) => r.duplicates_explained_by_redis_outage += 1,
                    Some(Cause::Node) => r.duplicates_explained_by_node_crash += 1,
                    Some(Cause::Agent(_)) => r.duplicates_explained_by_agent_kill += 1,
                    None => {
                        r.duplicates_unexplained += 1;
                        let prev_ended =
                            ends.contains(&(prev.task_id.as_str(), prev.attempt, prev.deliveries, prev.node.as_str()));
                        let near: Vec<&str> = windows
                            .iter()
                            .filter(|w| w.from_us <= cur.at_us + 5_000_000 && w.to_us + 5_000_000 >= prev.at_us)
                            .map(|w| w.what.as_str())
                            .collect();
                        let node = |n: &str| if n.is_empty() { "an outside agent".to_string() } else { n.to_string() };
                        r.violate(
                            "4 at-least-once only at crashes",
                            format!(
                                "task {task_id} attempt {attempt}: started on {} (delivery {}) at {}{}, then again on {} (delivery {}) at {} with no crash in between; crashes within 5 s: {near:?}",
                                node(&prev.node),
                                prev.deliveries,
                                secs(prev.at_us),
                                if prev_ended { " and ended" } else { "" },
                                node(&cur.node),
                                cur.deliveries,
                                secs(cur.at_us)
                            ),
                        );
                    }
                }
            }
        }
    }
}
