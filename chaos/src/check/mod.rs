//! The invariant checker: reads the final state of Redis and compares it with what the run published,
//! what the executors reported and which chaos events happened. It can be run on any Redis and any
//! [`RunRecord`], including a planted one (tests do).
//!
//! Checks (numbered as in `docs/CHAOS.md`), one module per concept:
//! 1. none lost (`tasks`): every published task has a final record (`succeeded`, or `dead` with a
//!    reason and exactly one dead letter); none is queued/running/retrying; a succeeded task has no
//!    dead letter.
//! 2. nothing pending (here): XPENDING is 0 and the retry set is empty on every topic.
//! 3. bounded attempts (`tasks`): `attempts` ≤ max_retries + 1, in the record and in the reported
//!    executions.
//! 4. at-least-once only at crashes (`duplicates`): a (task, attempt) started again is explained by a
//!    planned crash or by a crash (node kill/exit, Redis outage, kill of its agent) since its previous
//!    start.
//! 5. money (`money`): reserved + captured ≤ the limit for every usage hash; usage equals the sum of
//!    the reserved/captured mandates; each mandate has at most one `decided` event and one approval.
//! 6. streams trimmed (here): XLEN ≤ pending + slack on every topic.
//! 7. outcome as steered (`tasks`): tasks whose payload fixes the outcome got that outcome (unless a
//!    kill of their agent demonstrably cut an attempt short).
//! 9. an unreachable agent spends no attempt (`circuit`), from each task's history.
//! 10. money settles with the task (`settlement`): no open reservation of a final task, read from the
//!     task's reservations.
//!
//! 11–17, the workflow checks (`workflow`, runs with workflows): step outcomes recorded once, no
//!     step before its needs, joins fire once, nothing starts after a cancel, compensations in
//!     reverse order, (16, budgets: not checked yet), every workflow ends as steered. The tasks the
//!     workflows published are checked by 1–7 and 9 too.
//!
//! (Check 8, node lifecycle — no node exits on its own, every node exits 0 on SIGTERM — is added by the
//! harness, which watched the processes.)

mod circuit;
mod duplicates;
mod money;
mod print;
pub mod settlement;
mod store;
mod tasks;
pub mod workflow;

pub use self::circuit::{CircuitStats, UNAVAILABLE_PREFIX};
pub use self::store::{statuses, stream_state};

use self::store::{connect, dlq_key, pending_count, records, retry_key, stream_key, xrange_all};
use crate::metrics::Totals;
use crate::record::{AgentsMode, ExecReport, RunRecord};
use genesis_actors::payments::ledger::redis::RedisLedger;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Allowed XLEN above the pending count (the last delivered entry always stays, for example).
    pub trim_slack: u64,
    /// Reports are stamped on arrival: a start sent just before a kill may arrive just after it.
    pub dup_slack_us: u64,
    /// After Redis answers again, heartbeats expired during the outage are rewritten within about a
    /// reconnect delay plus a heartbeat interval; takeovers in that window are caused by the outage.
    pub outage_grace_us: u64,
    /// How long check 10 waits for the reconciler to settle what a killed node left open.
    pub settle_deadline: std::time::Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            trim_slack: 5,
            dup_slack_us: 100_000,
            outage_grace_us: 2_000_000,
            settle_deadline: std::time::Duration::from_secs(15),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    pub check: String,
    pub detail: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct KindStats {
    pub published: usize,
    pub succeeded: usize,
    pub dead: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct TopicState {
    pub length: u64,
    pub pending: u64,
    pub retrying: u64,
    pub dlq: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReport {
    pub published: usize,
    pub succeeded: usize,
    pub dead: usize,
    pub dead_by_reason: BTreeMap<String, usize>,
    pub by_kind: BTreeMap<String, KindStats>,
    pub missing: usize,
    pub stuck: usize,
    pub topics: BTreeMap<String, TopicState>,
    pub max_attempts_recorded: u32,
    pub starts: usize,
    pub ends: usize,
    pub final_tasks_without_start_report: usize,
    pub duplicate_starts: usize,
    pub duplicates_explained_by_panic: usize,
    pub duplicates_explained_by_node_crash: usize,
    pub duplicates_explained_by_redis_outage: usize,
    pub duplicates_explained_by_agent_kill: usize,
    pub duplicates_unexplained: usize,
    pub mandates: usize,
    pub mandates_by_status: BTreeMap<String, usize>,
    pub denied_by_code: BTreeMap<String, usize>,
    pub usage_hashes: usize,
    pub max_usage: BTreeMap<String, String>,
    pub decided_events: usize,
    pub approval_events: usize,
    /// Check 7 mismatches explained by an agent kill that cut an attempt short.
    pub outcomes_changed_by_agent_kills: usize,
    pub circuit: CircuitStats,
    /// The nodes' `/metrics` as the run scraped them (outside runs).
    pub node_metrics: Totals,
    /// Whether check 10 ran (see [`settlement`]).
    pub settlement_checked: bool,
    pub mode: AgentsMode,
    /// The workflow numbers (runs with workflows).
    pub workflows: Option<workflow::WorkflowStats>,
    pub violations: Vec<Violation>,
}

impl CheckReport {
    fn violate(&mut self, check: &str, detail: String) {
        self.violations.push(Violation { check: check.to_string(), detail });
    }

    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }

    /// Violations of one check (by its number, e.g. "1").
    pub fn of(&self, check: &str) -> Vec<&Violation> {
        self.violations.iter().filter(|v| v.check.split(' ').next() == Some(check)).collect()
    }
}

/// One item of a task record's `history` (what `complete_many.lua` appends for every outcome that
/// was not a success): the attempts spent at that point, the error, and Redis's time in Unix ms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryItem {
    pub attempt: u32,
    pub error: String,
    #[serde(default)]
    pub at: u64,
}

/// The `history` of a result record (empty when it has none or it is not a JSON list).
pub(crate) fn history(rec: &HashMap<String, String>) -> Vec<HistoryItem> {
    match rec.get("history") {
        Some(s) if s.starts_with('[') => serde_json::from_str(s).unwrap_or_default(),
        _ => Vec::new(),
    }
}

fn topics_of(run: &RunRecord) -> Vec<String> {
    let mut t: BTreeSet<String> = run.agents.iter().map(|a| a.name.clone()).collect();
    t.extend(run.tasks.iter().map(|x| x.topic.clone()));
    t.into_iter().collect()
}

/// Check every invariant against the Redis at `url`.
pub async fn check(url: &str, run: &RunRecord, opts: Options) -> anyhow::Result<CheckReport> {
    let mut c = connect(url).await?;
    // The workflows' step and compensation tasks are tasks of the run too.
    let wf_data = match run.workflows.is_empty() {
        true => None,
        false => Some(workflow::load(&mut c, run).await?),
    };
    let with_steps;
    let run = match &wf_data {
        Some(d) => {
            let mut r = run.clone();
            r.tasks.extend(workflow::step_tasks(run, d));
            with_steps = r;
            &with_steps
        }
        None => run,
    };
    let mut r = CheckReport {
        published: run.tasks.len(),
        node_metrics: run.node_metrics.clone(),
        mode: run.mode,
        ..Default::default()
    };

    // -- 2 and 6: per topic state
    let mut dlq_by_task: HashMap<String, Vec<String>> = HashMap::new();
    for t in &topics_of(run) {
        let length: u64 = redis::cmd("XLEN").arg(stream_key(t)).query_async(&mut c).await?;
        let pending = pending_count(&mut c, t).await?;
        let retrying: u64 = redis::cmd("ZCARD").arg(retry_key(t)).query_async(&mut c).await?;
        let dlq = xrange_all(&mut c, &dlq_key(t)).await?;
        for (id, f) in &dlq {
            let task = f.get("task_id").cloned().unwrap_or_default();
            dlq_by_task
                .entry(task)
                .or_default()
                .push(format!("{id} ({})", f.get("reason").cloned().unwrap_or_default()));
        }
        r.topics.insert(t.clone(), TopicState { length, pending, retrying, dlq: dlq.len() as u64 });
        if pending > 0 {
            r.violate("2 nothing pending", format!("{t}: XPENDING count {pending}"));
        }
        if retrying > 0 {
            r.violate("2 nothing pending", format!("{t}: {retrying} entries in the retry set {}", retry_key(t)));
        }
        if length > pending + opts.trim_slack {
            r.violate(
                "6 streams trimmed",
                format!("{t}: XLEN {length} > pending {pending} + slack {}", opts.trim_slack),
            );
        }
    }

    // -- 1, 3, 7, 9: task records
    let records = records(&mut c, &run.tasks).await?;
    let mut starts_by_task: HashMap<&str, Vec<&ExecReport>> = HashMap::new();
    for rep in &run.reports {
        match rep.phase.as_str() {
            "start" => {
                r.starts += 1;
                starts_by_task.entry(rep.task_id.as_str()).or_default().push(rep);
            }
            "end" => r.ends += 1,
            _ => {}
        }
    }
    tasks::per_task(run, &records, &dlq_by_task, &starts_by_task, &mut r);

    // -- 4: repeated executions of one attempt
    duplicates::duplicates(run, &starts_by_task, opts, &mut r);

    // -- 5: money
    if let Some(limits) = run.limits {
        money::money(&mut c, limits, &mut r).await?;
    }

    // -- 11 to 17: workflows
    if let Some(d) = &wf_data {
        let status: HashMap<String, String> = run
            .tasks
            .iter()
            .zip(&records)
            .filter_map(|(t, rec)| Some((t.task_id.clone(), rec.get("status")?.clone())))
            .collect();
        workflow::check(run, d, &starts_by_task, &status, &mut r);
    }

    // -- 10: money settles with the task: the worker settles right after the outcome; a node killed in
    // between leaves it to the reconciler (every `payments.reconcile_interval`), so wait for that.
    let status: HashMap<&str, &str> = run
        .tasks
        .iter()
        .zip(&records)
        .filter_map(|(t, rec)| rec.get("status").map(|s| (t.task_id.as_str(), s.as_str())))
        .collect();
    let ledger = RedisLedger::connect(url).await.map_err(|e| anyhow::anyhow!("payment ledger: {e}"))?;
    let deadline = tokio::time::Instant::now() + opts.settle_deadline;
    let violations = loop {
        let open = settlement::open_reservations(&ledger, &run.tasks, &records).await?;
        let v = settlement::settlement(&run.tasks, &status, &open);
        if v.is_empty() || tokio::time::Instant::now() >= deadline {
            break v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    for v in violations {
        r.violate(&v.check, v.detail);
    }
    r.settlement_checked = true;
    Ok(r)
}
