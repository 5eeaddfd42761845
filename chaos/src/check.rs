//! The invariant checker: reads the final state of Redis and compares it with what the run published,
//! what the executor reported and which chaos events happened. It can be run on any Redis and any
//! [`RunRecord`], including a planted one (tests do).
//!
//! Checks (numbered as in `docs/CHAOS.md`):
//! 1. none lost: every published task has a final record (`succeeded`, or `dead` with a reason and
//!    exactly one dead letter); none is queued/running/retrying; a succeeded task has no dead letter.
//! 2. nothing pending: XPENDING is 0 and the retry set is empty on every topic.
//! 3. bounded attempts: `attempts` ≤ max_retries + 1, in the record and in the reported executions.
//! 4. at-least-once only at crashes: a (task, attempt) started again is explained by a planned panic
//!    or by a crash (node kill/exit, Redis outage) since its previous start.
//! 5. money: reserved + captured ≤ the limit for every usage hash; usage equals the sum of the
//!    reserved/captured mandates; each mandate has at most one `decided` event and one approval.
//! 6. streams trimmed: XLEN ≤ pending + slack on every topic.
//! 7. outcome as steered: tasks whose payload fixes the outcome (all but payments) got that outcome.
//!
//! (Check 8, node lifecycle — no node exits on its own, every node exits 0 on SIGTERM — is added by the
//! harness, which watched the processes.)

use crate::record::{EventKind, ExecReport, Expect, Limits, PublishedTask, RunRecord};
use crate::secs;
use anyhow::Context;
use genesis_actors::payments::ledger::keys::{self, Shard};
use redis::aio::MultiplexedConnection;
use redis::Value;
use serde::Serialize;
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
}

impl Default for Options {
    fn default() -> Self {
        Options { trim_slack: 5, dup_slack_us: 100_000, outage_grace_us: 2_000_000 }
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
    pub duplicates_unexplained: usize,
    pub mandates: usize,
    pub mandates_by_status: BTreeMap<String, usize>,
    pub denied_by_code: BTreeMap<String, usize>,
    pub usage_hashes: usize,
    pub max_usage: BTreeMap<String, String>,
    pub decided_events: usize,
    pub approval_events: usize,
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

    pub fn print(&self) {
        self.print_checks();
        self.print_violations();
    }

    fn counts(&self) -> BTreeMap<&str, usize> {
        let mut checks: BTreeMap<&str, usize> = BTreeMap::new();
        for v in &self.violations {
            *checks.entry(v.check.as_str()).or_default() += 1;
        }
        checks
    }

    /// Print each violation (at most 50 per check).
    pub fn print_violations(&self) {
        if self.violations.is_empty() {
            return;
        }
        let checks = self.counts();
        println!("== {} violations", self.violations.len());
        let mut shown: BTreeMap<&str, usize> = BTreeMap::new();
        for v in &self.violations {
            let n = shown.entry(v.check.as_str()).or_default();
            *n += 1;
            if *n <= 50 {
                println!("VIOLATION [{}] {}", v.check, v.detail);
            } else if *n == 51 {
                println!("VIOLATION [{}] ... and {} more", v.check, checks[v.check.as_str()] - 50);
            }
        }
    }

    /// Print the numbers and the verdict of checks 1 to 7.
    pub fn print_checks(&self) {
        let checks = self.counts();
        let verdict = |n: &str| {
            let k = checks.iter().filter(|(c, _)| c.split(' ').next() == Some(n)).map(|(_, v)| v).sum::<usize>();
            if k == 0 {
                "ok".to_string()
            } else {
                format!("VIOLATED ({k})")
            }
        };
        println!("== checks");
        println!(
            "1. none lost ............ {}: published {}, succeeded {}, dead {} {:?}, missing {}, stuck {}",
            verdict("1"),
            self.published,
            self.succeeded,
            self.dead,
            self.dead_by_reason,
            self.missing,
            self.stuck
        );
        let pending: u64 = self.topics.values().map(|t| t.pending).sum();
        let retrying: u64 = self.topics.values().map(|t| t.retrying).sum();
        println!("2. nothing pending ...... {}: pending {pending}, retrying {retrying}", verdict("2"));
        println!(
            "3. bounded attempts ..... {}: highest recorded attempts {}",
            verdict("3"),
            self.max_attempts_recorded
        );
        println!(
            "4. at-least-once ........ {}: executions started {}, ended {}; duplicate executions explained by crashes: {} (node kill/exit {}, Redis outage {}), by planned panics: {}, unexplained: {}",
            verdict("4"),
            self.starts,
            self.ends,
            self.duplicates_explained_by_node_crash + self.duplicates_explained_by_redis_outage,
            self.duplicates_explained_by_node_crash,
            self.duplicates_explained_by_redis_outage,
            self.duplicates_explained_by_panic,
            self.duplicates_unexplained
        );
        println!(
            "5. money ................ {}: mandates {} {:?}, denials {:?}, usage hashes {}, decided events {}, approvals {}",
            verdict("5"),
            self.mandates,
            self.mandates_by_status,
            self.denied_by_code,
            self.usage_hashes,
            self.decided_events,
            self.approval_events
        );
        for (k, v) in &self.max_usage {
            println!("     highest {k}: {v}");
        }
        let lens: Vec<String> =
            self.topics.iter().map(|(t, s)| format!("{t} {}/{} pending", s.length, s.pending)).collect();
        println!("6. streams trimmed ...... {}: length/pending {}", verdict("6"), lens.join(", "));
        println!("7. outcome as steered ... {}", verdict("7"));
        println!("== by kind (published / succeeded / dead)");
        for (k, s) in &self.by_kind {
            println!("   {k:<10} {:>6} / {:>6} / {:>6}", s.published, s.succeeded, s.dead);
        }
        if self.final_tasks_without_start_report > 0 {
            println!(
                "   note: {} final tasks have no start report (a report lost to a kill, or a task that never ran)",
                self.final_tasks_without_start_report
            );
        }
    }
}

async fn connect(url: &str) -> anyhow::Result<MultiplexedConnection> {
    let client = redis::Client::open(url).context("redis url")?;
    client.get_multiplexed_async_connection().await.context("connect to redis")
}

fn stream_key(topic: &str) -> String {
    format!("genesis:{{{topic}}}:stream")
}
fn dlq_key(topic: &str) -> String {
    format!("genesis:{{{topic}}}:dlq")
}
fn retry_key(topic: &str) -> String {
    format!("genesis:{{{topic}}}:retry")
}
fn result_key(topic: &str, task_id: &str) -> String {
    format!("genesis:{{{topic}}}:task:{task_id}")
}

/// Every entry of a stream, in pages.
async fn xrange_all(
    c: &mut MultiplexedConnection,
    key: &str,
) -> anyhow::Result<Vec<(String, HashMap<String, String>)>> {
    let mut out = Vec::new();
    let mut start = "-".to_string();
    loop {
        let page: Vec<(String, HashMap<String, String>)> =
            redis::cmd("XRANGE").arg(key).arg(&start).arg("+").arg("COUNT").arg(2000).query_async(c).await?;
        let n = page.len();
        if let Some((last, _)) = page.last() {
            start = format!("({last}");
        }
        out.extend(page);
        if n < 2000 {
            return Ok(out);
        }
    }
}

async fn scan(c: &mut MultiplexedConnection, pattern: &str) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) =
            redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(1000).query_async(c).await?;
        out.extend(keys);
        if next == 0 {
            out.sort();
            out.dedup();
            return Ok(out);
        }
        cursor = next;
    }
}

/// XPENDING count of the `genesis` group (0 if the stream or group does not exist).
async fn pending_count(c: &mut MultiplexedConnection, topic: &str) -> anyhow::Result<u64> {
    let key = stream_key(topic);
    let exists: bool = redis::cmd("EXISTS").arg(&key).query_async(c).await?;
    if !exists {
        return Ok(0);
    }
    let v: Value = redis::cmd("XPENDING").arg(&key).arg("genesis").query_async(c).await?;
    match v {
        Value::Array(items) => match items.first() {
            Some(Value::Int(n)) => Ok((*n).max(0) as u64),
            other => anyhow::bail!("unexpected XPENDING reply for {key}: {other:?}"),
        },
        other => anyhow::bail!("unexpected XPENDING reply for {key}: {other:?}"),
    }
}

/// Length and pending count of each topic's stream (for check 6, and for waiting on the trimmer).
pub async fn stream_state(url: &str, topics: &[String]) -> anyhow::Result<BTreeMap<String, (u64, u64)>> {
    let mut c = connect(url).await?;
    let mut out = BTreeMap::new();
    for t in topics {
        let len: u64 = redis::cmd("XLEN").arg(stream_key(t)).query_async(&mut c).await?;
        out.insert(t.clone(), (len, pending_count(&mut c, t).await?));
    }
    Ok(out)
}

/// Status of each task (`None` when it has no record), in the order given.
pub async fn statuses(url: &str, tasks: &[PublishedTask]) -> anyhow::Result<Vec<Option<String>>> {
    let mut c = connect(url).await?;
    let mut out = Vec::with_capacity(tasks.len());
    for chunk in tasks.chunks(1000) {
        let mut pipe = redis::pipe();
        for t in chunk {
            pipe.cmd("HGET").arg(result_key(&t.topic, &t.task_id)).arg("status");
        }
        let v: Vec<Option<String>> = pipe.query_async(&mut c).await?;
        out.extend(v);
    }
    Ok(out)
}

fn topics_of(run: &RunRecord) -> Vec<String> {
    let mut t: BTreeSet<String> = run.agents.iter().map(|a| a.name.clone()).collect();
    t.extend(run.tasks.iter().map(|x| x.topic.clone()));
    t.into_iter().collect()
}

/// Check every invariant against the Redis at `url`.
pub async fn check(url: &str, run: &RunRecord, opts: Options) -> anyhow::Result<CheckReport> {
    let mut c = connect(url).await?;
    let mut r = CheckReport { published: run.tasks.len(), ..Default::default() };
    let topics = topics_of(run);
    let max_retries = run.max_retries_by_topic();

    // -- 2 and 6: per topic state
    let mut dlq_by_task: HashMap<String, Vec<String>> = HashMap::new();
    for t in &topics {
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

    // -- 1, 3, 7: task records
    let mut records: Vec<HashMap<String, String>> = Vec::with_capacity(run.tasks.len());
    for chunk in run.tasks.chunks(1000) {
        let mut pipe = redis::pipe();
        for t in chunk {
            pipe.cmd("HGETALL").arg(result_key(&t.topic, &t.task_id));
        }
        let v: Vec<HashMap<String, String>> = pipe.query_async(&mut c).await?;
        records.extend(v);
    }
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
    for (t, rec) in run.tasks.iter().zip(&records) {
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
        if matches!(status, "succeeded" | "dead") && !starts_by_task.contains_key(id.as_str()) {
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
        // 7
        let steered = match &t.expect {
            Expect::Succeeded => status == "succeeded",
            Expect::Dead(want) => status == "dead" && reason == want,
            Expect::Either => true,
        };
        if !steered && matches!(status, "succeeded" | "dead") {
            r.violate(
                "7 outcome as steered",
                format!(
                    "task {id} ({}, {}): expected {:?}, got {status} {reason} (attempts {attempts}, error {:?})",
                    t.topic,
                    t.kind,
                    t.expect,
                    rec.get("error").cloned().unwrap_or_default()
                ),
            );
        }
    }

    // -- 4: repeated executions of one attempt
    duplicates(run, &starts_by_task, opts, &mut r);

    // -- 5: money
    if let Some(limits) = run.limits {
        money(&mut c, limits, &mut r).await?;
    }
    Ok(r)
}

/// An interval during which running work may have been interrupted, with its cause.
struct CrashWindow {
    from_us: u64,
    to_us: u64,
    redis: bool,
    what: String,
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
                redis: false,
                what: format!("{:?} {} at {}", e.kind, e.node.as_deref().unwrap_or("?"), secs(e.at_us)),
            }),
            EventKind::RedisKill => {
                let up = events[i + 1..].iter().find(|x| x.kind == EventKind::RedisUp).map(|x| x.at_us);
                out.push(CrashWindow {
                    from_us: e.at_us,
                    to_us: up.map(|u| u + opts.outage_grace_us).unwrap_or(u64::MAX),
                    redis: true,
                    what: format!("Redis outage from {}", secs(e.at_us)),
                });
            }
            _ => {}
        }
    }
    out
}

fn duplicates(run: &RunRecord, starts: &HashMap<&str, Vec<&ExecReport>>, opts: Options, r: &mut CheckReport) {
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
        let planned = tasks.get(*task_id).map(|t| t.panic_deliveries).unwrap_or(0);
        for (attempt, mut v) in by_attempt {
            v.sort_by_key(|s| s.at_us);
            for pair in v.windows(2) {
                let (prev, cur) = (pair[0], pair[1]);
                r.duplicate_starts += 1;
                if prev.deliveries <= planned {
                    r.duplicates_explained_by_panic += 1;
                    continue;
                }
                let lo = prev.at_us.saturating_sub(opts.dup_slack_us);
                match windows.iter().find(|w| w.from_us <= cur.at_us && w.to_us >= lo) {
                    Some(w) if w.redis => r.duplicates_explained_by_redis_outage += 1,
                    Some(_) => r.duplicates_explained_by_node_crash += 1,
                    None => {
                        r.duplicates_unexplained += 1;
                        let prev_ended =
                            ends.contains(&(prev.task_id.as_str(), prev.attempt, prev.deliveries, prev.node.as_str()));
                        let near: Vec<&str> = windows
                            .iter()
                            .filter(|w| w.from_us <= cur.at_us + 5_000_000 && w.to_us + 5_000_000 >= prev.at_us)
                            .map(|w| w.what.as_str())
                            .collect();
                        r.violate(
                            "4 at-least-once only at crashes",
                            format!(
                                "task {task_id} attempt {attempt}: started on {} (delivery {}) at {}{}, then again on {} (delivery {}) at {} with no crash in between; crashes within 5 s: {near:?}",
                                prev.node,
                                prev.deliveries,
                                secs(prev.at_us),
                                if prev_ended { " and ended" } else { "" },
                                cur.node,
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

#[derive(Default)]
struct Usage {
    reserved: i64,
    captured: i64,
}

async fn money(c: &mut MultiplexedConnection, limits: Limits, r: &mut CheckReport) -> anyhow::Result<()> {
    // The ledger's tenants, each a shard of its own (the checker may SCAN: it runs on one Redis, offline).
    let mut tenants: Vec<String> = redis::cmd("ZRANGE").arg(keys::TENANTS).arg(0).arg(-1).query_async(c).await?;
    tenants.sort();
    let shards: Vec<Shard> = tenants
        .iter()
        .map(|t| genesis_actors::tenant::TenantId::parse(t).map(|t| Shard::of(&t)))
        .collect::<Result<_, _>>()?;

    // Usage hashes against the limits.
    let mut used: BTreeMap<String, Usage> = BTreeMap::new();
    let mut max_usage: BTreeMap<&str, (i64, String)> = BTreeMap::new();
    for shard in &shards {
        for key in scan(c, &format!("{}used:*", shard.prefix())).await? {
            let (reserved, captured): (Option<i64>, Option<i64>) =
                redis::cmd("HMGET").arg(&key).arg("reserved").arg("captured").query_async(c).await?;
            let (reserved, captured) = (reserved.unwrap_or(0), captured.unwrap_or(0));
            let rest = key.trim_start_matches(shard.prefix()).trim_start_matches("used:");
            let (kind, limit) = match rest.split(':').next() {
                Some("agent") => ("agent/day", limits.agent_daily_cents),
                Some("business") => ("business", limits.business_total_cents),
                Some("tenant") => ("tenant/day", limits.tenant_daily_cents),
                _ => {
                    r.violate("5 money", format!("unknown usage key {key}"));
                    continue;
                }
            };
            r.usage_hashes += 1;
            let total = reserved + captured;
            if reserved < 0 || captured < 0 || total > limit as i64 {
                r.violate(
                    "5 money",
                    format!(
                        "{key}: reserved {reserved} + captured {captured} = {total} (limit {limit}, none negative)"
                    ),
                );
            }
            let m = max_usage.entry(kind).or_insert((i64::MIN, String::new()));
            if total > m.0 {
                *m = (total, format!("{total} of {limit} cents ({key})"));
            }
            used.insert(key, Usage { reserved, captured });
        }
    }
    r.max_usage = max_usage.into_iter().map(|(k, (_, v))| (k.to_string(), v)).collect();

    // Mandates: usage must equal what the mandates hold.
    let mut expect: BTreeMap<String, Usage> = BTreeMap::new();
    let mut approved_mandates: BTreeSet<String> = BTreeSet::new();
    for shard in &shards {
        for key in scan(c, &format!("{}mandate:*", shard.prefix())).await? {
            let m: HashMap<String, String> = redis::cmd("HGETALL").arg(&key).query_async(c).await?;
            r.mandates += 1;
            let get = |k: &str| m.get(k).cloned().unwrap_or_default();
            let status = get("status");
            *r.mandates_by_status.entry(status.clone()).or_default() += 1;
            if get("outcome") == "denied" {
                *r.denied_by_code.entry(get("code")).or_default() += 1;
            }
            if get("outcome") == "approved" {
                approved_mandates.insert(get("mandate_id"));
            }
            let amount: i64 = get("amount_cents").parse().unwrap_or(0);
            for h in shard.budgets(&get("agent_id"), &get("business_id"), &get("day")) {
                let u = expect.entry(h).or_default();
                match status.as_str() {
                    "approved" => u.reserved += amount,
                    "captured" => u.captured += amount,
                    _ => {}
                }
            }
        }
    }
    let names: BTreeSet<&String> = used.keys().chain(expect.keys()).collect();
    for name in names {
        let (a, b) = (used.get(name), expect.get(name));
        let (ur, uc) = a.map(|u| (u.reserved, u.captured)).unwrap_or((0, 0));
        let (er, ec) = b.map(|u| (u.reserved, u.captured)).unwrap_or((0, 0));
        if (ur, uc) != (er, ec) {
            r.violate(
                "5 money",
                format!(
                    "usage {name}: reserved {ur} / captured {uc}, but its mandates hold reserved {er} / captured {ec}"
                ),
            );
        }
    }

    // The decision log: one decision and at most one approval per mandate.
    let mut decided: HashMap<String, usize> = HashMap::new();
    let mut approvals: HashMap<String, usize> = HashMap::new();
    let mut log = Vec::new();
    for shard in &shards {
        log.extend(xrange_all(c, &shard.log()).await?);
    }
    for (_, f) in log {
        let mandate = f.get("mandate_id").cloned().unwrap_or_default();
        let event = f.get("event").map(String::as_str).unwrap_or("");
        if event == "decided" {
            r.decided_events += 1;
            *decided.entry(mandate.clone()).or_default() += 1;
        }
        if matches!(event, "decided" | "reviewed") && f.get("outcome").map(String::as_str) == Some("approved") {
            r.approval_events += 1;
            *approvals.entry(mandate).or_default() += 1;
        }
    }
    let mut multi: Vec<_> = decided.iter().filter(|(_, n)| **n > 1).collect();
    multi.sort();
    for (m, n) in multi {
        r.violate("5 money", format!("mandate {m}: {n} `decided` events (one mandate, one decision)"));
    }
    let mut twice: Vec<_> = approvals.iter().filter(|(_, n)| **n > 1).collect();
    twice.sort();
    for (m, n) in twice {
        r.violate("5 money", format!("mandate {m}: approved {n} times in the decision log"));
    }
    for m in &approved_mandates {
        if !approvals.contains_key(m) {
            r.violate("5 money", format!("mandate {m}: approved, but no approval in the decision log"));
        }
    }
    Ok(())
}
