//! The two payment ledgers are one contract (docs/semantics.md, "Money"): the in-memory ledger and the
//! Redis ledger, each behind an [`Authority`] reading one pinned clock, are driven with the same random
//! sequences of operations — intents (fresh, repeated, repeated with one detail changed), capture,
//! release, expiry, review approve/deny, the expiry job, clock steps (across UTC midnights) — and must
//! agree after every step: the decision or settlement returned (outcome, code, reason, mandate state,
//! and whether the code raises a fraud alert), and everything observable — every mandate of the pool,
//! the review list, usage of every agent, business and tenant budget on every day the clock has seen,
//! business stats and owners, the index of tenants, `budget show`, and each tenant's decision log.
//!
//! Nothing is normalised but the decision log's `at_ms`: the Redis ledger's log entry ids are Redis's
//! own clock (`XADD *`), so the log is read there by the real day of the run, and here by the pinned
//! days (the entries' `day` field, the day of the budgets they moved, is compared as is).
//!
//! The universe is small so that limits are reached: three tenants, four businesses (`biz-x` is asked
//! for by every tenant, so `business_tenant_mismatch` happens), three known agents and an unknown one,
//! whitelisted, subdomain, unlisted, look-alike and invalid vendors, amounts at the thresholds, twelve
//! mandate ids (repeats are idempotent or `mandate_conflict`). The clock starts an hour before a UTC
//! midnight and never moves more than 2.5 days, well inside the retention and the daily usage TTL: the
//! Redis ledger's key expiries run on Redis's real clock, the in-memory ledger's pruning on the pinned
//! one, so a longer span would compare two different clocks instead of two ledgers.
//!
//! 128 cases from a fixed seed, against one real `redis-server` flushed between cases. At the end the
//! run must have produced every decision code and the cross-day review rule, or it tested too little.
// Tests and benches report by panicking: unwrap/expect are allowed here (not in the crates).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures::future::join_all;
use genesis_actors::payments::authority::Authority;
use genesis_actors::payments::ledger::memory::MemoryLedger;
use genesis_actors::payments::ledger::redis::RedisLedger;
use genesis_actors::payments::ledger::{Ledger, LedgerError, Settle, Settled};
use genesis_actors::payments::notify::NotifySettings;
use genesis_actors::payments::policy::{utc_day, FraudRules, PaymentRules};
use genesis_actors::payments::types::{is_fraud_code, Decision, PaymentIntent};
use genesis_actors::payments::vendor::Whitelist;
use genesis_actors::payments::{Budgets, PaymentsSettings};
use genesis_actors::tenant::TenantId;
use genesis_testkit::{Persistence, RedisServer};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const DAY: u64 = 86_400_000;
/// 2024-02-28T23:00:00Z: the first midnight leads into a leap day.
const START: u64 = 1_709_164_800_000 - 3_600_000;
/// The clock never passes this (see the module docs).
const END: u64 = START + 5 * DAY / 2;

const TENANTS: [&str; 3] = ["tenant-a", "tenant-b", "tenant-c"];
/// `biz-a`..`biz-c` are the "home" of one tenant each; `biz-x` is asked for by all.
const BUSINESSES: [&str; 4] = ["biz-a", "biz-b", "biz-c", "biz-x"];
/// `ghost` is not in the roster (`unknown_agent`).
const AGENTS: [&str; 4] = ["agent-1", "agent-2", "agent-3", "ghost"];
const KNOWN_AGENTS: [&str; 3] = ["agent-1", "agent-2", "agent-3"];
const VENDORS: [&str; 9] = [
    "openai.com",
    "https://api.openai.com/v1",
    "stripe.com",
    "example.com",
    "0penai.com",
    "openai.com.evil.io",
    "strlpe.com",
    "\u{43e}penai.com",
    "not a host",
];
const REASONS: [&str; 3] = ["credits", "tokens", "Gift Card top-up"];
/// Near every threshold of [`settings`]: near-threshold (80..100), auto-approve, the agent-3 budget,
/// review, budgets, hard cap; and refused at the edge.
const AMOUNTS: [i64; 18] = [1, 50, 80, 85, 90, 99, 100, 101, 300, 700, 800, 801, 1200, 1500, 1501, 2000, 2500, 3000];
const INVALID_AMOUNTS: [i64; 3] = [-5, 0, 3001];
const MANDATES: usize = 40;
const RESERVATION_TTL: Duration = Duration::from_secs(15 * 60);

fn settings() -> PaymentsSettings {
    PaymentsSettings {
        rules: PaymentRules {
            hard_cap_cents: 3000,
            auto_approve_cents: 100,
            review_above_cents: 1500,
            fraud: FraudRules {
                velocity_window_ms: 60_000,
                velocity_max_count: 3,
                velocity_max_sum_cents: 4000,
                structuring_window_ms: 600_000,
                structuring_near_ratio: 0.8,
                structuring_min_count: 2,
                anomaly_factor: 3.05,
                anomaly_min_samples: 2,
                anomaly_history: 4,
            },
            known_agents: KNOWN_AGENTS.iter().map(|s| s.to_string()).collect(),
            suspicious_patterns: vec!["gift card".into()],
        },
        whitelist: Whitelist::new(&["openai.com", "stripe.com"].map(String::from)).expect("whitelist"),
        budgets: Budgets {
            agent_daily_cents: 2500,
            business_total_cents: 6000,
            tenant_daily_cents: 4000,
            per_agent_daily: BTreeMap::from([("agent-3".to_string(), 800)]),
            per_business_total: BTreeMap::from([("biz-x".to_string(), 2000)]),
            per_tenant_daily: BTreeMap::from([("tenant-c".to_string(), 1200)]),
        },
        reservation_ttl: RESERVATION_TTL,
        retention: Duration::from_secs(30 * 86_400),
        expiry_interval: Duration::from_secs(1),
        notify: NotifySettings::default(),
    }
}

fn mandate(n: usize) -> String {
    format!("m-{:02}", n % MANDATES)
}

fn tid(t: &str) -> TenantId {
    TenantId::parse(t).expect("tenant")
}

/// What a repeated intent changes: nothing, or a detail outside (reason) or inside the fingerprint.
#[derive(Debug, Clone, Copy)]
enum Tweak {
    Same,
    Reason,
    Amount,
    Agent,
    Tenant,
}

#[derive(Debug, Clone)]
enum Op {
    Intent {
        tenant: usize,
        business: usize,
        agent: usize,
        vendor: usize,
        amount: i64,
        mandate: usize,
        reason: usize,
    },
    /// The `k`-th intent so far again, with `tweak`.
    Repeat {
        k: usize,
        tweak: Tweak,
    },
    /// Capture, release or expire the `k`-th mandate id used so far.
    Settle {
        k: usize,
        to: Settle,
    },
    /// Approve or deny the `k`-th held intent (or, none held, the `k`-th mandate id used).
    Review {
        k: usize,
        approve: bool,
    },
    ExpireDue,
    Tick {
        ms: u64,
    },
    /// To the next UTC midnight, plus `offset_ms` (which may be -1).
    NextDay {
        offset_ms: i64,
    },
}

fn intent_op() -> impl Strategy<Value = Op> {
    let amount = prop_oneof![
        1 => prop::sample::select(&INVALID_AMOUNTS[..]),
        8 => prop::sample::select(&AMOUNTS[..]),
        2 => 1i64..=3000,
    ];
    let tenant = prop_oneof![3 => Just(0usize), 2 => Just(1usize), 2 => Just(2usize)];
    // A tenant mostly asks for its home business, sometimes for the shared one or another's.
    let tenant_business =
        tenant.prop_flat_map(|t| (Just(t), prop_oneof![5 => Just(t), 2 => Just(3), 1 => 0..BUSINESSES.len()]));
    let agent = prop_oneof![8 => Just(0usize), 4 => Just(1usize), 4 => Just(2usize), 1 => Just(3usize)];
    let vendor = prop_oneof![8 => Just(0usize), 4 => 1..3usize, 2 => 3..7usize, 1 => 7..VENDORS.len()];
    let reason = prop_oneof![15 => 0..2usize, 1 => Just(2usize)];
    (tenant_business, agent, vendor, amount, 0..MANDATES, reason).prop_map(
        |((tenant, business), agent, vendor, amount, mandate, reason)| Op::Intent {
            tenant,
            business,
            agent,
            vendor,
            amount,
            mandate,
            reason,
        },
    )
}

fn op() -> impl Strategy<Value = Op> {
    let tweak = prop_oneof![
        3 => Just(Tweak::Same),
        1 => Just(Tweak::Reason),
        1 => Just(Tweak::Amount),
        1 => Just(Tweak::Agent),
        1 => Just(Tweak::Tenant)
    ];
    let to = prop_oneof![4 => Just(Settle::Captured), 2 => Just(Settle::Released), 1 => Just(Settle::Expired)];
    let tick =
        prop::sample::select(&[1u64, 500, 2_000, 5_000, 5_000, 20_000, 61_000, 300_000, 1_000_000, 3_600_000][..]);
    let offset = prop::sample::select(&[-1i64, 0, 1, 1_000, 3_600_000][..]);
    prop_oneof![
        12 => intent_op(),
        3 => (any::<usize>(), tweak).prop_map(|(k, tweak)| Op::Repeat { k, tweak }),
        4 => (any::<usize>(), to).prop_map(|(k, to)| Op::Settle { k, to }),
        3 => (any::<usize>(), any::<bool>()).prop_map(|(k, approve)| Op::Review { k, approve }),
        1 => Just(Op::ExpireDue),
        4 => tick.prop_map(|ms| Op::Tick { ms }),
        1 => offset.prop_map(|offset_ms| Op::NextDay { offset_ms }),
    ]
}

/// The driver's own record of a case, the same for both sides: the intents sent, the mandate ids used,
/// the days the clock has been on.
struct Script {
    clock: Arc<AtomicU64>,
    intents: Vec<PaymentIntent>,
    used: Vec<String>,
    days: Vec<String>,
}

impl Script {
    fn now(&self) -> u64 {
        self.clock.load(Ordering::SeqCst)
    }

    /// Moves the clock to `to` if that is ahead and within [`END`]; says whether it moved.
    fn move_to(&mut self, to: u64) -> bool {
        if to <= self.now() || to > END {
            return false;
        }
        self.clock.store(to, Ordering::SeqCst);
        let day = utc_day(to);
        if !self.days.contains(&day) {
            self.days.push(day);
        }
        true
    }

    fn use_mandate(&mut self, id: &str) {
        if !self.used.iter().any(|u| u == id) {
            self.used.push(id.to_string());
        }
    }

    /// The intent an `Intent` or `Repeat` sends, if any.
    fn intent(&self, op: &Op) -> Option<PaymentIntent> {
        match *op {
            Op::Intent { tenant, business, agent, vendor, amount, mandate: m, reason } => Some(PaymentIntent {
                agent_id: AGENTS[agent].into(),
                vendor: VENDORS[vendor].into(),
                amount_cents: amount,
                reason: REASONS[reason].into(),
                mandate_id: mandate(m),
                business_id: BUSINESSES[business].into(),
                tenant_id: tid(TENANTS[tenant]),
            }),
            Op::Repeat { k, tweak } if !self.intents.is_empty() => {
                let mut i = self.intents[k % self.intents.len()].clone();
                match tweak {
                    Tweak::Same => {}
                    Tweak::Reason => i.reason = format!("{} again", i.reason),
                    Tweak::Amount => i.amount_cents += 1,
                    Tweak::Agent => {
                        let n = AGENTS.iter().position(|a| *a == i.agent_id).unwrap_or(0);
                        i.agent_id = KNOWN_AGENTS[(n + 1) % KNOWN_AGENTS.len()].into();
                    }
                    Tweak::Tenant => {
                        let n = TENANTS.iter().position(|t| *t == i.tenant_id.as_str()).unwrap_or(0);
                        i.tenant_id = tid(TENANTS[(n + 1) % TENANTS.len()]);
                    }
                }
                Some(i)
            }
            _ => None,
        }
    }

    fn target(&self, k: usize) -> String {
        match self.used.len() {
            0 => mandate(k),
            n => self.used[k % n].clone(),
        }
    }
}

fn error(e: &LedgerError) -> Value {
    // A failure of a ledger itself (Redis down, a bad reply), not a difference of contract: show it all.
    json!({"unexpected": e.to_string()})
}

fn decision(d: &Decision) -> Value {
    let mut v = json!(d);
    v["fraud_alert"] = json!(is_fraud_code(&d.code));
    v
}

fn settled(s: &Settled) -> Value {
    match s {
        Settled::Done(r) => json!({"done": r}),
        Settled::Already(r) => json!({"already": r}),
        Settled::Refused(r) => json!({"refused": r}),
        Settled::Missing => json!("missing"),
    }
}

fn result<T>(r: Result<T, LedgerError>, f: impl FnOnce(&T) -> Value) -> Value {
    r.as_ref().map_or_else(error, f)
}

/// One ledger behind its authority.
struct Side {
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
        let (reviews, mandates, usage, businesses, parties, report, logs) = futures::join!(
            self.authority.reviews(),
            mandates,
            usage,
            businesses,
            l.known_parties(),
            self.authority.budgets_report(&agents, &[]),
            logs,
        );
        json!({
            "reviews": result(reviews, |r| json!(r)), "mandates": mandates, "usage": usage,
            "businesses": businesses, "parties": result(parties, |p| json!(p)),
            "budgets": result(report, |b| json!(b)), "log": logs,
        })
    }
}

/// What the whole run has exercised, from the in-memory side's answers (equal to the Redis side's).
#[derive(Default)]
struct Coverage {
    codes: BTreeMap<String, usize>,
    replays: usize,
    settled: BTreeSet<&'static str>,
    expired_by_job: usize,
    reviewed_next_day: usize,
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
fn real_days() -> Vec<String> {
    let now = genesis_actors::task::now_ms();
    vec![utc_day(now - DAY), utc_day(now)]
}

async fn run_case(redis: &RedisLedger, url: &str, ops: &[Op], coverage: &Mutex<Coverage>) -> Result<(), String> {
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
fn diff(a: &Value, b: &Value) -> String {
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
fn the_memory_ledger_and_the_redis_ledger_agree() {
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
        "over_hard_cap",
        "unknown_agent",
    ]
    .into_iter()
    .filter(|code| !c.codes.contains_key(*code) && !c.codes.contains_key(&format!("review:{code}")))
    .collect();
    eprintln!(
        "{:?} replays {} settled {:?} expired {} next-day {}",
        c.codes, c.replays, c.settled, c.expired_by_job, c.reviewed_next_day
    );
    assert!(codes.is_empty(), "the run never produced {codes:?} (seen: {:?})", c.codes);
    assert!(c.replays > 0, "no idempotent replay");
    assert_eq!(c.settled.len(), 3, "settled only as {:?}", c.settled);
    assert!(c.expired_by_job > 0, "the expiry job never released a reservation");
    assert!(c.reviewed_next_day > 0, "no review approved on a later day than the intent was held");
}

fn pay(tenant: usize, business: usize, agent: usize, vendor: usize, amount: i64, mandate: usize) -> Op {
    Op::Intent { tenant, business, agent, vendor, amount, mandate, reason: 0 }
}

/// Every check, decided on both ledgers with the same words: the Redis ledger's script once worded its
/// reasons its own way (`3 intents from agent … (limit 3)` where the reference policy, which the
/// in-memory ledger decides with, says `3 intents by this agent … (max 3)`), so one decision read
/// differently depending on the ledger. The anomaly reason's factor (3.05) and median (67.5) are
/// decimals, printed by Rust on one side and by Lua on the other.
#[test]
fn every_check_is_decided_in_the_same_words_on_both_ledgers() {
    let (a, b, c, x) = (0, 1, 2, 3);
    let (openai, stripe) = (0, 2);
    let ops = [
        pay(a, a, 0, openai, 50, 0),
        pay(a, a, 0, openai, 85, 1),
        Op::Tick { ms: 61_000 },
        pay(a, a, 0, openai, 300, 2), // amount_anomaly: 300 > 3.05 × 67.5
        pay(a, a, 0, openai, 90, 3),  // structuring: 85 + 90 near the threshold
        Op::Tick { ms: 61_000 },
        pay(a, a, 1, stripe, 1501, 4), // needs_review
        pay(a, a, 1, stripe, 1400, 5),
        pay(a, a, 1, stripe, 1200, 6), // velocity_sum: 1501 + 1400 + 1200
        pay(a, a, 1, stripe, 1, 7),    // velocity_count: the fourth in a minute
        Op::Tick { ms: 61_000 },
        pay(a, a, 1, stripe, 1200, 8), // over_agent_daily_budget: 1400 + 1200 > 2500
        pay(c, c, 0, openai, 700, 9),
        pay(c, c, 1, openai, 600, 10), // over_tenant_daily_budget: 700 + 600 > 1200
        pay(b, x, 0, openai, 1500, 11),
        Op::Tick { ms: 61_000 },
        pay(b, x, 1, openai, 600, 12), // over_business_budget: 1500 + 600 > 2000
        pay(a, a, 2, stripe, 1600, 13),
        Op::Review { k: 1, approve: true }, // review_over_budget: agent-3 may spend 800
        Op::Settle { k: 5, to: Settle::Released },
        Op::Review { k: 0, approve: true }, // approved: 1501 fits once 1400 is released
        Op::Repeat { k: 0, tweak: Tweak::Same },
        Op::Repeat { k: 0, tweak: Tweak::Amount },
    ];
    let server = RedisServer::builder().persistence(Persistence::None).start();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let redis = rt.block_on(RedisLedger::connect(&server.url())).expect("connect");
    let coverage = Mutex::new(Coverage::default());
    if let Err(e) = rt.block_on(run_case(&redis, &server.url(), &ops, &coverage)) {
        panic!("{e}");
    }
    let c = coverage.into_inner().unwrap();
    let expected = [
        "approved",
        "amount_anomaly",
        "structuring",
        "needs_review",
        "velocity_sum",
        "velocity_count",
        "over_agent_daily_budget",
        "over_tenant_daily_budget",
        "over_business_budget",
        "mandate_conflict",
        "review:review_over_budget",
        "review:approved",
    ];
    let missing: Vec<&str> = expected.into_iter().filter(|code| !c.codes.contains_key(*code)).collect();
    assert!(missing.is_empty(), "never decided {missing:?}: {:?}", c.codes);
    assert_eq!(c.replays, 1, "the repeated intent is answered from the mandate");
}

/// A retention as short as the reservation TTL (the shortest `genesis config check` accepts) forgets
/// no reservation (docs/semantics.md, Money 3): the Redis ledger once let the mandate — and the entry
/// naming its tenant — expire a retention after the decision, which is when the reservation falls due,
/// so the expiry job found nothing to release and the money stayed reserved for good (for the
/// business's total: forever). And the tenant stays in the index the expiry job visits even when
/// another tenant's decision prunes the index after the deadline. Real time (Redis expires keys by
/// its own clock): the wait is for a probe key with the same lifetime to expire.
#[test]
fn a_reservation_outlives_a_retention_as_short_as_its_ttl() {
    let server = RedisServer::builder().persistence(Persistence::None).start();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let short = Duration::from_secs(1);
        let s = PaymentsSettings { reservation_ttl: short, retention: short, ..settings() };
        let redis = Ledger::Redis(RedisLedger::connect(&server.url()).await.expect("connect"));
        let sides = [Ledger::Memory(MemoryLedger::new()), redis].map(|l| Authority::new(s.clone(), l, None));
        let intent =
            |tenant: &str, business: &str, agent: &str, vendor: &str, amount: i64, mandate: &str| PaymentIntent {
                agent_id: agent.into(),
                vendor: vendor.into(),
                amount_cents: amount,
                reason: "credits".into(),
                mandate_id: mandate.into(),
                business_id: business.into(),
                tenant_id: tid(tenant),
            };
        let (tenant, reserved, held) = (tid("tenant-a"), "m-reserved", "m-held");
        for a in &sides {
            let d =
                a.approve(&intent("tenant-a", "biz-a", "agent-1", "openai.com", 300, reserved)).await.expect("approve");
            assert_eq!(d.code, "approved", "{d:?}");
            let d =
                a.approve(&intent("tenant-a", "biz-a", "agent-2", "stripe.com", 1600, held)).await.expect("approve");
            assert_eq!(d.code, "needs_review", "{d:?}");
            let r = a.review(held, true).await.expect("review");
            assert!(matches!(&r, Settled::Done(m) if m.status == "approved"), "{r:?}");
        }
        let mut c = server.conn();
        let _: () =
            redis::cmd("SET").arg("probe").arg(1).arg("PX").arg(short.as_millis() as u64).query(&mut c).expect("probe");
        genesis_testkit::wait_blocking(Duration::from_secs(20), "the probe to expire", || {
            let left: i64 = redis::cmd("EXISTS").arg("probe").query(&mut c).expect("EXISTS");
            (left == 0).then_some(())
        });
        for a in &sides {
            // Another tenant's decision prunes the index of tenants idle for the retention.
            let d =
                a.approve(&intent("tenant-b", "biz-b", "agent-1", "openai.com", 50, "m-other")).await.expect("approve");
            assert_eq!(d.code, "approved", "{d:?}");
            assert!(a.ledger().mandate(reserved).await.expect("mandate").is_some(), "a reservation's mandate is kept");
            assert_eq!(a.expire_due().await.expect("expire"), 2, "both reservations of tenant-a are released");
            for id in [reserved, held] {
                let status = a.ledger().mandate(id).await.expect("mandate").map(|m| m.status);
                assert_eq!(status.as_deref(), Some("expired"), "{id}");
            }
            let business = a.ledger().usage_business(&tenant, "biz-a").await.expect("usage");
            assert_eq!((business.reserved, business.captured), (0, 0), "the money went back to the budget");
        }
        // Once settled, the mandate and its tenant entry expire again (Redis: no key is kept for good).
        for key in [
            genesis_actors::payments::ledger::keys::Shard::of(&tenant).mandate(reserved),
            genesis_actors::payments::ledger::keys::mandate_tenant(reserved),
        ] {
            let ttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut c).expect("PTTL");
            assert!(ttl > 0, "{key} has no expiry ({ttl})");
        }
    });
}
