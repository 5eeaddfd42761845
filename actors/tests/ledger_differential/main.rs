//! The two payment ledgers are one contract (docs/semantics.md, "Money"): the in-memory ledger and the
//! Redis ledger, each behind an [`Authority`] reading one pinned clock, are driven with the same random
//! sequences of operations — intents (fresh, repeated, repeated with one detail changed), capture,
//! release, expiry, review approve/deny, the expiry job, clock steps (across UTC midnights) — and must
//! agree after every step: the decision or settlement returned (outcome, code, reason, mandate state,
//! and whether the code raises a fraud alert), and everything observable — every mandate id used so far,
//! the review list, usage of every agent, business and tenant budget on every day the clock has seen
//! and of every workflow's (intents may count toward a workflow's budget, with one of two budgets),
//! business stats and owners, the index of tenants, `budget show`, and each tenant's decision log.
//!
//! Nothing is normalised but the decision log's `at_ms`: the Redis ledger's log entry ids are Redis's
//! own clock (`XADD *`), so the log is read there by the real day of the run, and here by the pinned
//! days (the entries' `day` field, the day of the budgets they moved, is compared as is).
//!
//! The universe is small so that limits are reached: three tenants, four businesses (`biz-x` is asked
//! for by every tenant, so `business_tenant_mismatch` happens), three known agents and an unknown one,
//! whitelisted, subdomain, unlisted, look-alike and invalid vendors, amounts at the thresholds, forty
//! mandate ids (repeats are idempotent or `mandate_conflict`). The clock starts an hour before a UTC
//! midnight and never moves more than 2.5 days, well inside the retention and the daily usage TTL: the
//! Redis ledger's key expiries run on Redis's real clock, the in-memory ledger's pruning on the pinned
//! one, so a longer span would compare two different clocks instead of two ledgers.
//!
//! 128 cases from a fixed seed, against one real `redis-server` flushed between cases. At the end the
//! run must have produced every decision code and the cross-day review rule, or it tested too little.
//! `universe.rs` is what the operations draw from; `regressions.rs` holds the focused tests of the
//! divergences this test found.
// Tests and benches report by panicking: unwrap/expect are allowed here (not in the crates).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod regressions;
mod universe;

use futures::future::join_all;
use genesis_actors::payments::authority::Authority;
use genesis_actors::payments::ledger::memory::MemoryLedger;
use genesis_actors::payments::ledger::redis::RedisLedger;
use genesis_actors::payments::ledger::{Ledger, LedgerError, Settled};
use genesis_actors::payments::policy::utc_day;
use genesis_actors::payments::types::{is_fraud_code, Decision, PaymentIntent};
use genesis_testkit::{Persistence, RedisServer};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use universe::*;

pub fn error(e: &LedgerError) -> Value {
    // A failure of a ledger itself (Redis down, a bad reply), not a difference of contract: show it all.
    json!({"unexpected": e.to_string()})
}

pub fn decision(d: &Decision) -> Value {
    let mut v = json!(d);
    v["fraud_alert"] = json!(is_fraud_code(&d.code));
    v
}

pub fn settled(s: &Settled) -> Value {
    match s {
        Settled::Done(r) => json!({"done": r}),
        Settled::Already(r) => json!({"already": r}),
        Settled::Refused(r) => json!({"refused": r}),
        Settled::Missing => json!("missing"),
    }
}

pub fn result<T>(r: Result<T, LedgerError>, f: impl FnOnce(&T) -> Value) -> Value {
    r.as_ref().map_or_else(error, f)
}

/// One ledger behind its authority.
pub struct Side {
    authority: Authority,
}

impl Side {
    fn ledger(&self) -> &Ledger {
        self.authority.ledger()
    }

    async fn apply(&self, op: &Op, intent: Option<&PaymentIntent>, target: &str) -> Value {
        let a = &self.authority;
        match op {
            Op::Intent { .. } | Op::Repeat { .. } => match intent {
                Some(i) => result(a.approve(i).await, decision),
                None => json!("skip"),
            },
            Op::Settle { to, .. } => result(a.settle(target, *to).await, settled),
            Op::Review { approve, .. } => result(a.review(target, *approve).await, settled),
            Op::ExpireDue => result(a.expire_due().await, |n| json!(n)),
            Op::Tick { .. } | Op::NextDay { .. } => json!("tick"),
        }
    }

    /// Everything observable after a step. `log_days`: the days whose log to read (see the module docs).
    /// The reads are independent, so they are sent together (one round trip's latency, not a hundred).
    async fn observe(&self, used: &[String], days: &[String], log_days: &[String]) -> Value {
        let l = self.ledger();
        let mandates =
            join_all(used.iter().map(|id| async move { json!([id, result(l.mandate(id).await, |m| json!(m))]) }));
        let mut budgets = Vec::new();
        for t in TENANTS.map(tid) {
            for day in days {
                for a in KNOWN_AGENTS {
                    budgets.push((t.clone(), Some(a), None, Some(day)));
                }
                budgets.push((t.clone(), None, None, Some(day)));
            }
            for b in BUSINESSES {
                budgets.push((t.clone(), None, Some(b), None));
            }
        }
        let workflows = join_all(TENANTS.map(tid).into_iter().flat_map(|t| {
            WORKFLOW_IDS.map(|w| {
                let t = t.clone();
                async move { json!([t, w, result(l.usage_workflow(&t, w).await, |u| json!(u))]) }
            })
        }));
        let usage = join_all(budgets.iter().map(|(t, agent, business, day)| async move {
            let got = match (agent, business, day) {
                (Some(a), _, Some(d)) => l.usage_agent(t, a, d).await,
                (_, Some(b), _) => l.usage_business(t, b).await,
                (_, _, d) => l.usage_tenant(t, d.map_or("", |d| d.as_str())).await,
            };
            json!([t, agent, business, day, result(got, |u| json!(u))])
        }));
        let businesses = join_all(BUSINESSES.map(|b| async move {
            let (owner, stats) = futures::join!(l.business_tenant(b), l.business_stats(b));
            json!({"business": b, "owner": result(owner, |o| json!(o)), "stats": result(stats, |s| json!(s))})
        }));
        let logs = join_all(TENANTS.map(tid).into_iter().map(|t| async move {
            let mut entries = Vec::new();
            for day in log_days {
                match l.tenant_log(&t, day, 10_000).await {
                    Ok(got) => entries.extend(got.into_iter().map(|mut e| {
                        e.at_ms = 0;
                        json!(e)
                    })),
                    Err(e) => entries.push(error(&e)),
                }
            }
            json!([t, entries])
        }));
        let agents: Vec<String> = KNOWN_AGENTS.map(String::from).to_vec();
        let (reviews, mandates, (usage, workflows), businesses, parties, report, logs) = futures::join!(
            self.authority.reviews(),
            mandates,
            futures::future::join(usage, workflows),
            businesses,
            l.known_parties(),
            self.authority.budgets_report(&agents, &[]),
            logs,
        );
        json!({
            "reviews": result(reviews, |r| json!(r)), "mandates": mandates, "usage": usage, "workflows": workflows,
            "businesses": businesses, "parties": result(parties, |p| json!(p)),
            "budgets": result(report, |b| json!(b)), "log": logs,
        })
    }
}

/// What the whole run has exercised, from the in-memory side's answers (equal to the Redis side's).
#[derive(Default)]
pub struct Coverage {
    pub codes: BTreeMap<String, usize>,
    pub replays: usize,
    pub settled: BTreeSet<&'static str>,
    pub expired_by_job: usize,
    pub reviewed_next_day: usize,
}

impl Coverage {
    fn note(&mut self, op: &Op, got: &Value, now: u64) {
        if let Some(code) = got.get("code").and_then(Value::as_str) {
            *self.codes.entry(code.to_string()).or_default() += 1;
            if got.get("decided_at_ms").and_then(Value::as_u64).is_some_and(|at| at != now) {
                self.replays += 1;
            }
        }
        let done = got.get("done");
        match op {
            Op::Settle { to, .. } if done.is_some() => {
                self.settled.insert(to.as_str());
            }
            Op::Review { .. } => {
                let Some(r) = done else { return };
                if let Some(code) = r.get("code").and_then(Value::as_str) {
                    *self.codes.entry(format!("review:{code}")).or_default() += 1;
                    if r.get("reason").and_then(Value::as_str).is_some_and(|why| why.contains("but workflow")) {
                        *self.codes.entry(format!("review:{code}:workflow")).or_default() += 1;
                    }
                }
                let held = r.get("decided_at_ms").and_then(Value::as_u64).map(utc_day);
                if r.get("status").and_then(Value::as_str) == Some("approved") && held != Some(utc_day(now)) {
                    self.reviewed_next_day += 1;
                }
            }
            Op::ExpireDue => self.expired_by_job += got.as_u64().unwrap_or(0) as usize,
            _ => {}
        }
    }
}

/// The days of the real clock a case's Redis log entries can carry (a run may cross a real midnight).
pub fn real_days() -> Vec<String> {
    let now = genesis_actors::task::now_ms();
    vec![utc_day(now - DAY), utc_day(now)]
}

pub async fn run_case(redis: &RedisLedger, url: &str, ops: &[Op], coverage: &Mutex<Coverage>) -> Result<(), String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut conn = client.get_multiplexed_async_connection().await.map_err(|e| e.to_string())?;
    let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await.map_err(|e| e.to_string())?;
    let clock = Arc::new(AtomicU64::new(START));
    let side = |ledger: Ledger| {
        let clock = clock.clone();
        Side {
            authority: Authority::new(settings(), ledger, None)
                .with_clock(Arc::new(move || clock.load(Ordering::SeqCst))),
        }
    };
    let memory = side(Ledger::Memory(MemoryLedger::new()));
    let real = side(Ledger::Redis(redis.clone()));
    let mut script = Script { clock: clock.clone(), intents: Vec::new(), used: Vec::new(), days: vec![utc_day(START)] };
    for (n, op) in ops.iter().enumerate() {
        let intent = script.intent(op);
        let target = match op {
            Op::Review { k, .. } => match memory.authority.reviews().await {
                Ok(held) if !held.is_empty() => held[k % held.len()].decision.mandate_id.clone(),
                _ => script.target(*k),
            },
            Op::Settle { k, .. } => script.target(*k),
            _ => String::new(),
        };
        match op {
            Op::Tick { ms } => {
                script.move_to(script.now() + ms);
            }
            Op::NextDay { offset_ms } => {
                let midnight = (script.now() / DAY + 1) * DAY;
                script.move_to(midnight.saturating_add_signed(*offset_ms));
            }
            _ => {}
        }
        let a = memory.apply(op, intent.as_ref(), &target).await;
        let b = real.apply(op, intent.as_ref(), &target).await;
        if let Some(i) = intent {
            script.use_mandate(&i.mandate_id);
            script.intents.push(i);
        }
        if a != b {
            return Err(format!("step {n} {op:?} (target {target:?}): results differ\n memory: {a}\n  redis: {b}"));
        }
        coverage.lock().unwrap().note(op, &a, script.now());
        let a = memory.observe(&script.used, &script.days, &script.days).await;
        let b = real.observe(&script.used, &script.days, &real_days()).await;
        if a != b {
            return Err(format!("after step {n} {op:?}: state differs\n{}", diff(&a, &b)));
        }
    }
    Ok(())
}

/// The parts of two observations that differ, by path.
pub fn diff(a: &Value, b: &Value) -> String {
    fn walk(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in keys {
                    let (u, v) = (x.get(k).unwrap_or(&Value::Null), y.get(k).unwrap_or(&Value::Null));
                    walk(&format!("{path}.{k}"), u, v, out);
                }
            }
            (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
                for (n, (u, v)) in x.iter().zip(y).enumerate() {
                    walk(&format!("{path}[{n}]"), u, v, out);
                }
            }
            _ if a != b => out.push(format!("{path}\n memory: {a}\n  redis: {b}")),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk("", a, b, &mut out);
    out.join("\n")
}

#[test]
pub fn the_memory_ledger_and_the_redis_ledger_agree() {
    let server = RedisServer::builder().persistence(Persistence::None).start();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let redis = rt.block_on(RedisLedger::connect(&server.url())).expect("connect");
    let config = Config {
        cases: 128,
        rng_seed: RngSeed::Fixed(0x1ed6_e125),
        failure_persistence: None,
        max_shrink_iters: 512,
        ..Config::default()
    };
    let coverage = Mutex::new(Coverage::default());
    let mut runner = TestRunner::new(config);
    let url = server.url();
    let outcome = runner.run(&prop::collection::vec(op(), 1..64), |ops| {
        rt.block_on(run_case(&redis, &url, &ops, &coverage)).map_err(TestCaseError::fail)
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
    let c = coverage.into_inner().unwrap();
    let codes: Vec<&str> = [
        "approved",
        "needs_review",
        "review_denied",
        "review_over_budget",
        "mandate_conflict",
        "business_tenant_mismatch",
        "velocity_count",
        "velocity_sum",
        "structuring",
        "amount_anomaly",
        "suspicious_pattern",
        "vendor_not_whitelisted",
        "vendor_lookalike",
        "over_agent_daily_budget",
        "over_business_budget",
        "over_tenant_daily_budget",
        "over_workflow_budget",
        "over_hard_cap",
        "unknown_agent",
    ]
    .into_iter()
    .filter(|code| !c.codes.contains_key(*code) && !c.codes.contains_key(&format!("review:{code}")))
    .collect();
    assert!(codes.is_empty(), "the run never produced {codes:?} (seen: {:?})", c.codes);
    assert!(c.replays > 0, "no idempotent replay");
    assert_eq!(c.settled.len(), 3, "settled only as {:?}", c.settled);
    assert!(c.expired_by_job > 0, "the expiry job never released a reservation");
    assert!(c.reviewed_next_day > 0, "no review approved on a later day than the intent was held");
    assert!(
        c.codes.contains_key("review:review_over_budget:workflow"),
        "no review over a workflow's budget: {:?}",
        c.codes
    );
}
