//! Money: the payment authority on both ledgers (Redis, started by the harness; and in-memory), the
//! Redis ledger on a one-node Redis Cluster (every script in one slot, tenants in different slots), the
//! MetaAgent inside a running runtime, and webhook delivery. See docs/semantics.md, "Money".
// Tests and benches report by panicking: unwrap/expect are allowed here (not in the crates).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use genesis_actors::bus::memory::MemoryBus;
use genesis_actors::bus::{Bus, TaskStatus};
use genesis_actors::executor::ExecutorRegistry;
use genesis_actors::payments::authority::Authority;
use genesis_actors::payments::ledger::memory::MemoryLedger;
use genesis_actors::payments::ledger::redis::RedisLedger;
use genesis_actors::payments::ledger::{Ledger, Settle, Settled};
use genesis_actors::payments::notify::{Notifier, NotifySettings};
use genesis_actors::payments::policy::{utc_day, FraudRules, PaymentRules};
use genesis_actors::payments::types::{Outcome, PaymentIntent};
use genesis_actors::payments::vendor::Whitelist;
use genesis_actors::payments::{Budgets, PaymentsSettings};
use genesis_actors::runtime::Runtime;
use genesis_actors::tenant::TenantId;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::*;

const WAIT: Duration = Duration::from_secs(30);

fn settings() -> PaymentsSettings {
    let agents = [
        "a-basic",
        "a-dup",
        "a-struct",
        "a-vel",
        "a-anom",
        "a-budget",
        "a-review",
        "a-many",
        "a-late",
        "a-late2",
        "genesis.commerce",
    ];
    PaymentsSettings {
        rules: PaymentRules {
            hard_cap_cents: 100_000,
            auto_approve_cents: 1000,
            review_above_cents: 20_000,
            fraud: FraudRules {
                velocity_max_count: 5,
                velocity_max_sum_cents: 60_000,
                anomaly_min_samples: 3,
                ..FraudRules::default()
            },
            known_agents: agents.iter().map(|s| s.to_string()).collect(),
            suspicious_patterns: vec!["gift card".into()],
        },
        whitelist: Whitelist::new(&["openai.com", "stripe.com", "vercel.com"].map(String::from)).expect("whitelist"),
        budgets: Budgets {
            agent_daily_cents: 50_000,
            business_total_cents: 1_000_000,
            tenant_daily_cents: 1_000_000,
            per_agent_daily: BTreeMap::from([
                ("a-budget".to_string(), 5000),
                ("a-late".to_string(), 30_000),
                ("a-late2".to_string(), 30_000),
            ]),
            per_business_total: BTreeMap::new(),
            per_tenant_daily: BTreeMap::new(),
        },
        reservation_ttl: Duration::from_secs(3600),
        retention: Duration::from_secs(86_400),
        expiry_interval: Duration::from_millis(50),
        reconcile_interval: Duration::from_secs(60),
        token_key: None,
        notify: NotifySettings::default(),
    }
}

fn intent(agent: &str, vendor: &str, cents: i64, mandate: &str) -> PaymentIntent {
    PaymentIntent {
        agent_id: agent.into(),
        vendor: vendor.into(),
        amount_cents: cents,
        reason: "credits".into(),
        mandate_id: mandate.into(),
        business_id: "biz-1".into(),
        tenant_id: tid("tenant-1"),
        task_id: None,
        workflow: None,
    }
}

/// The same intent from another tenant, for another business.
fn of(tenant: &str, business: &str, i: PaymentIntent) -> PaymentIntent {
    PaymentIntent { tenant_id: tid(tenant), business_id: business.into(), ..i }
}

fn tid(t: &str) -> TenantId {
    TenantId::parse(t).expect("a valid tenant id")
}

fn today() -> String {
    utc_day(genesis_actors::task::now_ms())
}

async fn redis_ledger(server: &RedisServer) -> Ledger {
    Ledger::Redis(RedisLedger::connect(&server.url()).await.expect("ledger"))
}

/// (intent, expected outcome, expected code), run in order against one ledger.
fn table() -> Vec<(PaymentIntent, Outcome, &'static str)> {
    use Outcome::*;
    let mut t = vec![
        (intent("a-basic", "openai.com", 500, "m-1"), Approved, "approved"),
        (intent("a-basic", "https://API.OpenAI.com/v1", 600, "m-2"), Approved, "approved"),
        (intent("a-basic", "example.com", 999, "m-3"), Denied, "vendor_not_whitelisted"),
        (intent("a-basic", "0penai.com", 100, "m-4"), Denied, "vendor_lookalike"),
        (intent("a-basic", "openai.com.evil.io", 100, "m-5"), Denied, "vendor_lookalike"),
        (intent("a-basic", "openai.com", 0, "m-6"), Denied, "invalid_amount"),
        (intent("a-basic", "openai.com", 100_001, "m-7"), Denied, "over_hard_cap"),
        (intent("a-basic", "openai.com", 100, "bad mandate!"), Denied, "invalid_mandate"),
        (intent("nobody", "openai.com", 100, "m-8"), Denied, "unknown_agent"),
        (intent("a-dup", "openai.com", 300, "m-dup"), Approved, "approved"),
        (intent("a-dup", "openai.com", 300, "m-dup"), Approved, "approved"),
        (intent("a-dup", "openai.com", 301, "m-dup"), Denied, "mandate_conflict"),
        (intent("a-review", "openai.com", 25_000, "m-rev"), NeedsReview, "needs_review"),
    ];
    let mut gift = intent("a-basic", "openai.com", 100, "m-gift");
    gift.reason = "buy a Gift Card for the team".into();
    t.push((gift, Denied, "suspicious_pattern"));
    // Structuring: $9.99 three times to one vendor from one business.
    for (i, expect) in [(0, Approved), (1, Approved), (2, Denied)] {
        let code = if expect == Approved { "approved" } else { "structuring" };
        t.push((intent("a-struct", "stripe.com", 999, &format!("m-s{i}")), expect, code));
    }
    // Velocity: the sixth intent within the window.
    for i in 0..6 {
        let (o, c) = if i < 5 { (Approved, "approved") } else { (Denied, "velocity_count") };
        t.push((intent("a-vel", "vercel.com", 100, &format!("m-v{i}")), o, c));
    }
    // Anomaly: three approvals at 100 (anomaly_min_samples), then 2000 (> 10 × median).
    for i in 0..3 {
        t.push((intent("a-anom", "openai.com", 100, &format!("m-a{i}")), Approved, "approved"));
    }
    t.push((intent("a-anom", "openai.com", 2000, "m-a3"), Denied, "amount_anomaly"));
    // Budget: agent daily 5000.
    t.push((intent("a-budget", "openai.com", 3000, "m-b1"), Approved, "approved"));
    t.push((intent("a-budget", "openai.com", 2500, "m-b2"), Denied, "over_agent_daily_budget"));
    // Tenants: the same agent has a daily budget of its own in each tenant.
    t.push((of("tenant-2", "biz-t2", intent("a-budget", "openai.com", 3000, "m-b3")), Approved, "approved"));
    t.push((
        of("tenant-2", "biz-t2", intent("a-budget", "openai.com", 2500, "m-b4")),
        Denied,
        "over_agent_daily_budget",
    ));
    // A business belongs to the first tenant that spends for it; a mandate id to the first that uses it.
    t.push((of("tenant-2", "biz-1", intent("a-basic", "openai.com", 100, "m-t1")), Denied, "business_tenant_mismatch"));
    t.push((intent("a-basic", "openai.com", 100, "m-t1"), Denied, "mandate_conflict"));
    t.push((of("tenant-2", "biz-t2", intent("a-dup", "openai.com", 300, "m-dup")), Denied, "mandate_conflict"));
    t
}

async fn run_table(ledger: Ledger) {
    let a = Authority::new(settings(), ledger.clone(), None);
    for (i, (intent, outcome, code)) in table().into_iter().enumerate() {
        let d = a.approve(&intent).await.expect("decision");
        assert_eq!((d.outcome, d.code.as_str()), (outcome, code), "row {i}: {intent:?} → {d:?}");
    }
    // The duplicate mandate reserved once: a-dup used 300, not 600.
    let day = today();
    assert_eq!(ledger.usage_agent(&tid("tenant-1"), "a-dup", &day).await.expect("usage").reserved, 300);
    // One agent, two tenants, two budgets; the refused intents bound nothing and reserved nothing.
    for t in ["tenant-1", "tenant-2"] {
        assert_eq!(ledger.usage_agent(&tid(t), "a-budget", &day).await.expect("usage").reserved, 3000, "{t}");
    }
    assert_eq!(ledger.business_tenant("biz-1").await.expect("owner").as_deref(), Some("tenant-1"));
    assert_eq!(ledger.business_tenant("biz-t2").await.expect("owner").as_deref(), Some("tenant-2"));
    let parties = ledger.known_parties().await.expect("parties");
    assert_eq!(parties.keys().map(|t| t.as_str()).collect::<Vec<_>>(), ["tenant-1", "tenant-2"]);
    assert_eq!(parties[&tid("tenant-2")], ["biz-t2"], "biz-1 is not a business of tenant-2");
    // Review approval re-checks the budget and reserves.
    match a.review("m-rev", true).await.expect("review") {
        Settled::Done(m) => assert_eq!((m.decision.outcome, m.status.as_str()), (Outcome::Approved, "approved")),
        other => panic!("{other:?}"),
    }
    assert_eq!(ledger.usage_agent(&tid("tenant-1"), "a-review", &day).await.expect("usage").reserved, 25_000);
    assert!(a.reviews().await.expect("reviews").is_empty());
    review_on_a_later_day(&ledger).await;
}

/// Noon UTC on 2024-02-28 and on the next day.
const DAY_1_NOON: u64 = 1_709_121_600_000;
const DAY_2_NOON: u64 = DAY_1_NOON + 86_400_000;

/// Money 5: approving a held intent re-checks and charges the budgets of the day of the approval,
/// not those of the day it was held (two agents with 30,000 cents a day; reviews above 20,000).
async fn review_on_a_later_day(ledger: &Ledger) {
    let now = Arc::new(std::sync::atomic::AtomicU64::new(DAY_1_NOON));
    let clock = now.clone();
    let a = Authority::new(settings(), ledger.clone(), None).with_clock(Arc::new(move || clock.load(Ordering::SeqCst)));
    let decide = |x: PaymentIntent| {
        let a = a.clone();
        async move { a.approve(&x).await.expect("decision").outcome }
    };
    // Day 1: a-late is held for 25,000 and then spends 20,000 of that day; a-late2 is held for 25,000.
    assert_eq!(decide(intent("a-late", "openai.com", 25_000, "m-late-1")).await, Outcome::NeedsReview);
    assert_eq!(decide(intent("a-late", "openai.com", 20_000, "m-late-2")).await, Outcome::Approved);
    assert_eq!(decide(intent("a-late2", "openai.com", 25_000, "m-late-3")).await, Outcome::NeedsReview);
    // Day 2: a-late2 spends 10,000 of the new day; then both held intents are reviewed.
    now.store(DAY_2_NOON, Ordering::SeqCst);
    assert_eq!(decide(intent("a-late2", "openai.com", 10_000, "m-late-4")).await, Outcome::Approved);
    let reviewed = |id: &'static str| {
        let a = a.clone();
        async move {
            match a.review(id, true).await.expect("review") {
                Settled::Done(m) => (m.decision.outcome, m.decision.code),
                other => panic!("{id}: {other:?}"),
            }
        }
    };
    // Day 1's budget is spent (20,000 + 25,000 > 30,000), today's is free: approved, charged today.
    assert_eq!(reviewed("m-late-1").await, (Outcome::Approved, "approved".to_string()));
    // Day 1's budget is free, today's is not (10,000 + 25,000 > 30,000): over budget.
    assert_eq!(reviewed("m-late-3").await, (Outcome::Denied, "review_over_budget".to_string()));
    let (d1, d2) = (utc_day(DAY_1_NOON), utc_day(DAY_2_NOON));
    let used = |agent: &'static str, day: String| {
        let l = ledger.clone();
        async move {
            let u = l.usage_agent(&tid("tenant-1"), agent, &day).await.expect("usage");
            (u.reserved, u.captured)
        }
    };
    assert_eq!(used("a-late", d1.clone()).await, (20_000, 0), "the held day is not charged");
    assert_eq!(used("a-late", d2.clone()).await, (25_000, 0), "the approval's day is");
    assert_eq!(used("a-late2", d2.clone()).await, (10_000, 0));
    // The reservation belongs to the approval's day: capturing it moves that day's money.
    assert!(matches!(a.settle("m-late-1", Settle::Captured).await.expect("capture"), Settled::Done(_)));
    assert_eq!(used("a-late", d2.clone()).await, (0, 25_000));
    assert_eq!(used("a-late", d1).await, (20_000, 0));
    let tenant_d2 = ledger.usage_tenant(&tid("tenant-1"), &d2).await.expect("usage");
    assert_eq!((tenant_d2.reserved, tenant_d2.captured), (10_000, 25_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rule_and_code_redis() {
    let server = RedisServer::start();
    run_table(redis_ledger(&server).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rule_and_code_memory() {
    run_table(Ledger::Memory(MemoryLedger::new())).await;
}

/// 1,000 concurrent intents from two authorities on separate connections against one budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_intents_from_two_authorities_never_exceed_the_budget() {
    let server = RedisServer::start();
    let mut s = settings();
    s.rules.fraud.velocity_max_count = 1_000_000;
    s.rules.fraud.velocity_max_sum_cents = 1 << 40;
    s.budgets.per_business_total.insert("biz-shared".into(), 100_000);
    s.budgets.per_agent_daily.insert("a-many".into(), 10_000_000);
    let one = Authority::new(s.clone(), redis_ledger(&server).await, None);
    let two = Authority::new(s, redis_ledger(&server).await, None);
    let mut handles = Vec::new();
    for i in 0..1000 {
        let a = if i % 2 == 0 { one.clone() } else { two.clone() };
        handles.push(tokio::spawn(async move {
            let mut x = intent("a-many", "openai.com", 300, &format!("c-{i}"));
            x.business_id = "biz-shared".into();
            a.approve(&x).await.expect("decision")
        }));
    }
    let mut approved = 0;
    for h in handles {
        let d = h.await.expect("task");
        match d.outcome {
            Outcome::Approved => approved += 1,
            _ => assert_eq!(d.code, "over_business_budget", "{d:?}"),
        }
    }
    assert_eq!(approved, 100_000 / 300, "exactly floor(budget / amount)");
    let used = one.ledger().usage_business(&tid("tenant-1"), "biz-shared").await.expect("usage");
    assert_eq!(used.reserved, 333 * 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_mandate_under_concurrency_is_approved_once() {
    let server = RedisServer::start();
    let one = Authority::new(settings(), redis_ledger(&server).await, None);
    let two = Authority::new(settings(), redis_ledger(&server).await, None);
    let mut handles = Vec::new();
    for i in 0..100 {
        let a = if i % 2 == 0 { one.clone() } else { two.clone() };
        handles.push(tokio::spawn(
            async move { a.approve(&intent("a-dup", "openai.com", 700, "same")).await.expect("d") },
        ));
    }
    for h in handles {
        assert_eq!(h.await.expect("task").outcome, Outcome::Approved);
    }
    let day = today();
    assert_eq!(
        one.ledger().usage_agent(&tid("tenant-1"), "a-dup", &day).await.expect("usage").reserved,
        700,
        "reserved once"
    );
    let decided = one.ledger().log(&day, 10_000).await.expect("log").iter().filter(|e| e.event == "decided").count();
    assert_eq!(decided, 1, "one decision recorded for the mandate");
}

async fn settle_and_expire(ledger: Ledger) {
    let mut s = settings();
    s.reservation_ttl = Duration::from_millis(50);
    let short = Authority::new(s, ledger.clone(), None);
    let a = Authority::new(settings(), ledger.clone(), None);
    let day = today();
    for (m, cents) in [("x-cap", 1000), ("x-rel", 2000)] {
        assert_eq!(a.approve(&intent("a-basic", "openai.com", cents, m)).await.expect("d").outcome, Outcome::Approved);
    }
    assert_eq!(
        short.approve(&intent("a-basic", "openai.com", 4000, "x-exp")).await.expect("d").outcome,
        Outcome::Approved
    );
    assert!(matches!(a.settle("x-cap", Settle::Captured).await.expect("c"), Settled::Done(_)));
    assert!(matches!(a.settle("x-cap", Settle::Captured).await.expect("c"), Settled::Already(_)), "idempotent");
    assert!(
        matches!(a.settle("x-cap", Settle::Released).await.expect("r"), Settled::Refused(_)),
        "spent money stays spent"
    );
    assert!(matches!(a.settle("x-rel", Settle::Released).await.expect("r"), Settled::Done(_)));
    assert!(matches!(a.settle("nope", Settle::Captured).await.expect("c"), Settled::Missing));
    eventually(WAIT, "the uncaptured reservation expires", || async {
        short.expire_due().await.ok().filter(|n| *n == 1)
    })
    .await;
    let used = ledger.usage_agent(&tid("tenant-1"), "a-basic", &day).await.expect("usage");
    assert_eq!((used.reserved, used.captured), (0, 1000), "only the captured amount remains used");
    let sum = a.summary("biz-1").await.expect("summary");
    assert_eq!((sum.spent_cents, sum.reserved_cents, sum.released_cents), (1000, 0, 6000));
    assert_eq!(sum.by_vendor.get("openai.com"), Some(&1000));
    assert!(matches!(a.settle("x-exp", Settle::Captured).await.expect("c"), Settled::Refused(_)), "expired is final");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_release_and_expiry_keep_the_ledger_exact_redis() {
    let server = RedisServer::start();
    settle_and_expire(redis_ledger(&server).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_release_and_expiry_keep_the_ledger_exact_memory() {
    settle_and_expire(Ledger::Memory(MemoryLedger::new())).await;
}

/// Two tenants side by side: settlement, review, expiry, the log, summaries and the budget report
/// find each mandate and business in its own tenant, and one tenant's spend never shows in another's.
async fn two_tenants(ledger: Ledger) {
    let mut s = settings();
    s.reservation_ttl = Duration::from_millis(50);
    let short = Authority::new(s, ledger.clone(), None);
    let a = Authority::new(settings(), ledger.clone(), None);
    let day = today();
    let cases = [
        (of("tenant-1", "biz-1", intent("a-basic", "openai.com", 1000, "t1-cap")), Outcome::Approved),
        (of("tenant-2", "biz-2", intent("a-basic", "openai.com", 2000, "t2-cap")), Outcome::Approved),
        (of("tenant-2", "biz-2", intent("a-review", "openai.com", 25_000, "t2-rev")), Outcome::NeedsReview),
        (of("tenant-1", "biz-1", intent("a-review", "openai.com", 25_000, "t1-rev")), Outcome::NeedsReview),
    ];
    for (x, want) in &cases {
        assert_eq!(a.approve(x).await.expect("decision").outcome, *want, "{x:?}");
    }
    let mut held: Vec<String> =
        a.reviews().await.expect("reviews").into_iter().map(|m| m.decision.mandate_id).collect();
    held.sort();
    assert_eq!(held, ["t1-rev", "t2-rev"], "reviews of every tenant");
    assert!(matches!(a.settle("t2-cap", Settle::Captured).await.expect("capture"), Settled::Done(_)));
    assert!(matches!(a.review("t1-rev", true).await.expect("review"), Settled::Done(_)));
    assert!(matches!(a.review("t2-rev", false).await.expect("review"), Settled::Done(_)));
    let usage = |t: &'static str, agent: &'static str| {
        let l = ledger.clone();
        let day = day.clone();
        async move {
            let u = l.usage_agent(&tid(t), agent, &day).await.expect("usage");
            (u.reserved, u.captured)
        }
    };
    assert_eq!(usage("tenant-1", "a-basic").await, (1000, 0));
    assert_eq!(usage("tenant-2", "a-basic").await, (0, 2000));
    assert_eq!(usage("tenant-1", "a-review").await, (25_000, 0));
    assert_eq!(usage("tenant-2", "a-review").await, (0, 0));
    let m = ledger.mandate("t2-cap").await.expect("mandate").expect("stored");
    assert_eq!((m.decision.tenant_id.as_str(), m.status.as_str()), ("tenant-2", "captured"));
    assert_eq!(a.summary("biz-2").await.expect("summary").spent_cents, 2000, "found through its tenant");
    assert_eq!(a.summary("biz-none").await.expect("summary").spent_cents, 0);

    // Expiry visits every tenant.
    for x in [
        of("tenant-1", "biz-1", intent("a-vel", "vercel.com", 300, "t1-exp")),
        of("tenant-2", "biz-2", intent("a-vel", "vercel.com", 400, "t2-exp")),
    ] {
        assert_eq!(short.approve(&x).await.expect("decision").outcome, Outcome::Approved);
    }
    let expired = Arc::new(AtomicU32::new(0));
    eventually(WAIT, "both tenants' uncaptured reservations expire", || {
        let (short, expired) = (short.clone(), expired.clone());
        async move {
            let n = short.expire_due().await.ok()? as u32;
            (expired.fetch_add(n, Ordering::SeqCst) + n == 2).then_some(())
        }
    })
    .await;
    for id in ["t1-exp", "t2-exp"] {
        assert_eq!(ledger.mandate(id).await.expect("mandate").map(|m| m.status).as_deref(), Some("expired"));
    }

    // The log: every tenant's entries, or one tenant's.
    let all = ledger.log(&day, 1000).await.expect("log");
    let decided = |t: &str| all.iter().filter(|e| e.event == "decided" && e.tenant_id == t).count();
    assert_eq!((decided("tenant-1"), decided("tenant-2")), (3, 3));
    let two = ledger.tenant_log(&tid("tenant-2"), &day, 1000).await.expect("log");
    assert!(two.iter().all(|e| e.tenant_id == "tenant-2") && two.len() == 6, "{two:?}");
    assert!(all.windows(2).all(|w| w[0].at_ms <= w[1].at_ms), "merged oldest first");

    // `budget show`: per tenant.
    let lines = a.budgets_report(&["a-basic".to_string()], &[]).await.expect("report");
    let line = |t: &str, kind: &str, name: &str| {
        lines.iter().find(|l| l.tenant == t && l.kind == kind && l.name == name).map(|l| l.remaining_cents)
    };
    assert_eq!(line("tenant-1", "agent_daily", "a-basic"), Some(50_000 - 1000));
    assert_eq!(line("tenant-2", "agent_daily", "a-basic"), Some(50_000 - 2000));
    assert_eq!(line("tenant-2", "business_total", "biz-2"), Some(1_000_000 - 2000));
    assert_eq!(line("tenant-1", "business_total", "biz-2"), None);
    assert_eq!(line("tenant-1", "tenant_daily", "tenant-1"), Some(1_000_000 - 26_000));
    let only = a.budgets_report(&["a-basic".to_string()], &[tid("tenant-2")]).await.expect("report");
    assert!(only.iter().all(|l| l.tenant == "tenant-2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tenants_keep_their_money_apart_redis() {
    let server = RedisServer::start();
    two_tenants(redis_ledger(&server).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tenants_keep_their_money_apart_memory() {
    two_tenants(Ledger::Memory(MemoryLedger::new())).await;
}

/// Money 3 and 10: after the retention a tenant's mandates and log are gone, and so is its place in the
/// index of tenants (and its businesses' in the index of businesses) that the cross-tenant reads
/// visit, once any tenant decides again; a business stays bound to its tenant.
async fn retention_forgets_idle_tenants(ledger: Ledger) {
    let mut s = settings();
    s.retention = Duration::from_millis(400);
    s.reservation_ttl = Duration::from_millis(100);
    let a = Authority::new(s, ledger.clone(), None);
    let old = |i| of("t-old", "biz-old", i);
    assert_eq!(
        a.approve(&old(intent("a-basic", "openai.com", 100, "r-old-1"))).await.expect("d").outcome,
        Outcome::Approved
    );
    assert_eq!(
        a.approve(&old(intent("a-basic", "example.com", 100, "r-old-2"))).await.expect("d").outcome,
        Outcome::Denied
    );
    assert!(matches!(a.settle("r-old-1", Settle::Captured).await.expect("capture"), Settled::Done(_)));
    let parties = ledger.known_parties().await.expect("parties");
    assert_eq!(parties.get(&tid("t-old")).map(Vec::as_slice), Some(&["biz-old".to_string()][..]));
    tokio::time::sleep(Duration::from_millis(600)).await;
    let new = |i| of("t-new", "biz-new", i);
    assert_eq!(
        a.approve(&new(intent("a-basic", "openai.com", 100, "r-new"))).await.expect("d").outcome,
        Outcome::Approved
    );
    let parties = ledger.known_parties().await.expect("parties");
    assert_eq!(parties.keys().map(|t| t.as_str()).collect::<Vec<_>>(), ["t-new"], "the idle tenant left the index");
    assert_eq!(parties[&tid("t-new")], ["biz-new"]);
    for id in ["r-old-1", "r-old-2"] {
        assert_eq!(ledger.mandate(id).await.expect("mandate"), None, "{id} is past the retention");
    }
    let log = ledger.log(&today(), 1000).await.expect("log");
    assert!(log.iter().all(|e| e.tenant_id == "t-new"), "{log:?}");
    assert_eq!(ledger.business_tenant("biz-old").await.expect("owner").as_deref(), Some("t-old"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_forgets_idle_tenants_redis() {
    let server = RedisServer::start();
    retention_forgets_idle_tenants(redis_ledger(&server).await).await;
    // The index of businesses expires with its tenant's last decision.
    let ttl: i64 =
        redis::cmd("PTTL").arg("genesis:{pay:t-new}:index:businesses:active").query(&mut server.conn()).expect("PTTL");
    assert!(ttl > 0 && ttl <= 400, "{ttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_forgets_idle_tenants_memory() {
    retention_forgets_idle_tenants(Ledger::Memory(MemoryLedger::new())).await;
}

/// The plain sets of tenants and businesses of earlier versions are adopted when a ledger opens, so
/// their tenants' reviews and reservations stay visible.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_of_an_earlier_version_is_adopted() {
    let server = RedisServer::start();
    let mut c = server.conn();
    let _: () = redis::cmd("SADD").arg("genesis:pay:tenants").arg("tenant-9").query(&mut c).expect("SADD");
    let _: () =
        redis::cmd("SADD").arg("genesis:{pay:tenant-9}:index:businesses").arg("biz-9").query(&mut c).expect("SADD");
    let ledger = redis_ledger(&server).await;
    let parties = ledger.known_parties().await.expect("parties");
    assert_eq!(parties.get(&tid("tenant-9")).map(Vec::as_slice), Some(&["biz-9".to_string()][..]));
    let left: i64 = redis::cmd("EXISTS")
        .arg("genesis:pay:tenants")
        .arg("genesis:{pay:tenant-9}:index:businesses")
        .query(&mut c)
        .expect("EXISTS");
    assert_eq!(left, 0, "the old sets are gone");
    redis_ledger(&server).await; // a second open finds nothing to adopt
    assert_eq!(ledger.known_parties().await.expect("parties").len(), 1);
}

/// Every scenario above on a one-node Redis Cluster, which refuses any script whose keys span two
/// slots (`CROSSSLOT`); then every key in it is either in its tenant's slot or one of the global
/// single keys, and the two tenants' slots differ.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_cluster_mode_each_script_stays_in_one_slot_and_tenants_spread() {
    let mut slots: BTreeMap<String, std::collections::BTreeSet<i64>> = BTreeMap::new();
    for scenario in 0..3 {
        let server = RedisServer::builder().single_node_cluster().start();
        let ledger = redis_ledger(&server).await;
        match scenario {
            0 => run_table(ledger).await,
            1 => settle_and_expire(ledger).await,
            _ => two_tenants(ledger).await,
        }
        let mut c = server.conn();
        let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut c).expect("KEYS");
        assert!(keys.len() > 10, "{keys:?}");
        for k in keys {
            let slot: i64 = redis::cmd("CLUSTER").arg("KEYSLOT").arg(&k).query(&mut c).expect("KEYSLOT");
            match k.strip_prefix("genesis:{pay:").and_then(|r| r.split_once("}:")) {
                Some((tenant, _)) => {
                    slots.entry(tenant.to_string()).or_default().insert(slot);
                }
                None => assert!(k.starts_with("genesis:pay:") && !k.contains('{'), "{k}: neither a shard's nor global"),
            }
        }
    }
    assert_eq!(slots.keys().collect::<Vec<_>>(), ["tenant-1", "tenant-2"]);
    for (tenant, s) in &slots {
        assert_eq!(s.len(), 1, "every key of {tenant} in one slot: {s:?}");
    }
    assert_ne!(slots["tenant-1"], slots["tenant-2"], "two tenants, two slots");
}

/// A local webhook receiver that fails the first `fail_first` posts with 500.
async fn receiver(fail_first: u32) -> (String, Arc<AtomicU32>, Arc<std::sync::Mutex<Vec<String>>>) {
    let hits = Arc::new(AtomicU32::new(0));
    let bodies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (h, b) = (hits.clone(), bodies.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(v): axum::Json<serde_json::Value>| {
            let (h, b) = (h.clone(), b.clone());
            async move {
                let n = h.fetch_add(1, Ordering::SeqCst);
                if n < fail_first {
                    return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
                }
                b.lock().expect("lock").push(v["content"].as_str().unwrap_or_default().to_string());
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/hook"), hits, bodies)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fraud_alerts_reach_the_webhook_through_failures_and_never_block_decisions() {
    let (url, hits, bodies) = receiver(2).await;
    let mut s = settings();
    s.notify.alerts_webhook = Some(genesis_actors::secret::SecretText::new(url));
    s.notify.backoff =
        genesis_actors::policy::backoff::Backoff::new(Duration::from_millis(10), Duration::from_millis(50), 2.0);
    let notifier = Notifier::start(s.notify.clone());
    let a = Authority::new(s, Ledger::Memory(MemoryLedger::new()), Some(notifier.clone()));
    let d = a.approve(&intent("a-basic", "0penai.com", 100, "f-1")).await.expect("d");
    assert_eq!(d.code, "vendor_lookalike");
    eventually(WAIT, "the alert is delivered after two failed posts", || async {
        (notifier.counters.posted.load(Ordering::Relaxed) == 1).then_some(())
    })
    .await;
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    assert!(bodies.lock().expect("lock")[0].contains("vendor_lookalike"));

    // A webhook that is down: the post is given up and counted; decisions go on meanwhile.
    let mut s = settings();
    s.notify.alerts_webhook =
        Some(genesis_actors::secret::SecretText::new(format!("http://127.0.0.1:{}/down", free_port())));
    s.notify.attempts = 2;
    s.notify.backoff =
        genesis_actors::policy::backoff::Backoff::new(Duration::from_millis(10), Duration::from_millis(20), 2.0);
    let down = Notifier::start(s.notify.clone());
    let a = Authority::new(s, Ledger::Memory(MemoryLedger::new()), Some(down.clone()));
    for i in 0..3 {
        let d = a.approve(&intent("a-basic", "0penai.com", 100, &format!("f-d{i}"))).await.expect("d");
        assert_eq!(d.code, "vendor_lookalike");
    }
    assert_eq!(a.approve(&intent("a-basic", "openai.com", 100, "f-ok")).await.expect("d").outcome, Outcome::Approved);
    eventually(WAIT, "each of the three alerts is given up and counted", || async {
        (down.counters.failed.load(Ordering::Relaxed) == 3).then_some(())
    })
    .await;
    assert_eq!(down.counters.posted.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_pay_through_the_meta_agent_and_replays_ask_idempotently() {
    let bus = Bus::Memory(MemoryBus::new());
    let ledger = Ledger::Memory(MemoryLedger::new());
    let authority = Authority::new(settings(), ledger.clone(), None);
    let spec = agent("genesis.commerce", 2, 2);
    let rt = Runtime::start_with_payments(
        bus.clone(),
        fast_settings("n1"),
        roster(vec![spec]),
        ExecutorRegistry::builtin(),
        Some(authority),
    )
    .await
    .expect("runtime");
    // Pays, then crashes once: the replay asks again with the same mandate and is not charged twice.
    let t = publish(&bus, "genesis.commerce", json!({"business_id": "biz-1", "simulate": {"panic_deliveries": 1, "pay": [{"vendor": "openai.com", "amount_cents": 400, "reason": "tokens"}]}})).await;
    let r = final_record(&bus, &t, WAIT).await;
    assert_eq!(r.status, TaskStatus::Succeeded, "{r:?}");
    // Charged once, and captured with the task's success (docs/semantics.md, Money 12).
    let used = eventually(WAIT, "the task's reservation is captured", || async {
        let u = ledger.usage_agent(&tid("tenant-test"), "genesis.commerce", &today()).await.ok()?;
        (u.captured > 0).then_some(u)
    })
    .await;
    assert_eq!((used.reserved, used.captured), (0, 400));
    // A denied payment fails the task with the denial's code.
    let bad = publish(
        &bus,
        "genesis.commerce",
        json!({"simulate": {"pay": [{"vendor": "0penai.com", "amount_cents": 100}]}}),
    )
    .await;
    let r = final_record(&bus, &bad, WAIT).await;
    assert_eq!(r.status, TaskStatus::Dead);
    assert!(r.error.as_deref().unwrap_or("").contains("vendor_lookalike"), "{r:?}");
    rt.shutdown().await.expect("clean shutdown");
}

/// `genesis payments intent`: the exit status tells the outcome apart (0 approved, 3 denied, 4 held for
/// review) and the reason is printed as decided (mandate ids keep their case).
#[test]
fn payments_intent_cli_exit_status_and_reason() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().expect("dir");
    let config = write_test_config(dir.path(), &shipped_roster());
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str(
        "[payments]\nhard_cap_cents = 20000\nreview_above_cents = 10000\n[payments.budgets]\nagent_daily_cents = 20000\n",
    );
    std::fs::write(&config, text).expect("config");
    let intent = |mandate: &str, cents: &str| {
        let out = std::process::Command::new(genesis_bin())
            .arg("--config")
            .arg(&config)
            .args(["payments", "intent", "--agent", "genesis.commerce", "--vendor", "openai.com"])
            .args(["--amount-cents", cents, "--mandate", mandate, "--tenant", "tenant-1"])
            .env("GENESIS_REDIS_URL", server.url())
            .output()
            .expect("run genesis");
        (out.status.code(), String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let (code, out) = intent("Order-A1", "500");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("approved [approved]"), "{out}");
    let (code, out) = intent("Order-A1", "501");
    assert_eq!(code, Some(3), "denied: {out}");
    assert!(out.starts_with("denied [mandate_conflict]") && out.contains("`Order-A1`"), "case kept: {out}");
    let (code, out) = intent("Order-B2", "15000");
    assert_eq!(code, Some(4), "held: {out}");
    assert!(out.starts_with("needs_review [needs_review]"), "{out}");
    let help =
        std::process::Command::new(genesis_bin()).args(["payments", "intent", "--help"]).output().expect("run genesis");
    let help = String::from_utf8_lossy(&help.stdout).to_string();
    assert!(help.contains("3 denied") && help.contains("4 held for review"), "{help}");
}
