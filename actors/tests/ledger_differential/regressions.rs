//! Focused regression tests of the divergences the differential test found (each names its defect).

use super::universe::*;
use super::{run_case, Coverage};
use genesis_actors::payments::authority::Authority;
use genesis_actors::payments::ledger::keys::{mandate_tenant, Shard};
use genesis_actors::payments::ledger::memory::MemoryLedger;
use genesis_actors::payments::ledger::redis::RedisLedger;
use genesis_actors::payments::ledger::{Ledger, Settle, Settled};
use genesis_actors::payments::types::PaymentIntent;
use genesis_actors::payments::PaymentsSettings;
use genesis_testkit::{wait_blocking, Persistence, RedisServer};
use std::sync::Mutex;
use std::time::Duration;

/// Runs `ops` on both ledgers (panicking where they differ): what it exercised, and the usage of
/// `wf-1` in tenant-a at the end (on Redis; the run checked the in-memory ledger agrees).
fn both_agree_on(ops: &[Op]) -> (Coverage, genesis_actors::payments::ledger::Usage) {
    let server = RedisServer::builder().persistence(Persistence::None).start();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let redis = rt.block_on(RedisLedger::connect(&server.url())).expect("connect");
    let coverage = Mutex::new(Coverage::default());
    if let Err(e) = rt.block_on(run_case(&redis, &server.url(), ops, &coverage)) {
        panic!("{e}");
    }
    let usage = rt.block_on(Ledger::Redis(redis).usage_workflow(&tid("tenant-a"), "wf-1")).expect("usage");
    (coverage.into_inner().unwrap(), usage)
}

fn pay(tenant: usize, business: usize, agent: usize, vendor: usize, amount: i64, mandate: usize) -> Op {
    Op::Intent { tenant, business, agent, vendor, amount, mandate, reason: 0, workflow: 0 }
}

/// An intent of tenant a for business a to openai.com, counting toward `WORKFLOWS[workflow - 1]`.
fn pay_wf(agent: usize, amount: i64, mandate: usize, workflow: usize) -> Op {
    Op::Intent { tenant: 0, business: 0, agent, vendor: 0, amount, mandate, reason: 0, workflow }
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
    let (c, _) = both_agree_on(&ops);
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

/// A workflow's budget on both ledgers: checked (in the same words), reserved, released and captured
/// with its mandates, re-checked by a review under the budget the intent carried, and shared by the
/// intents that name the workflow with another budget (each checked against its own).
#[test]
fn a_workflows_budget_is_decided_reserved_and_settled_alike() {
    let (wf1, wf1_larger) = (1, 3); // wf-1 with 900, wf-1 with 1300
    let ops = [
        pay_wf(0, 500, 20, wf1), // approved: 500 of 900
        pay_wf(0, 500, 21, wf1), // over_workflow_budget: 500 + 500 > 900
        Op::Tick { ms: 61_000 },
        Op::Settle { k: 0, to: Settle::Released }, // m-20: the 500 leave the workflow's usage
        pay_wf(0, 800, 22, wf1),                   // approved: 800 of 900
        pay_wf(1, 400, 23, wf1_larger),            // approved: 1200 of 1300
        Op::Tick { ms: 61_000 },
        pay_wf(1, 1600, 24, wf1),                    // needs_review
        Op::Review { k: 0, approve: true },          // review_over_budget: 1200 + 1600 > 900
        Op::Settle { k: 2, to: Settle::Captured },   // m-22: 800 stay spent
        Op::Repeat { k: 0, tweak: Tweak::Workflow }, // mandate_conflict: m-20 under another budget
        pay(0, 0, 2, 0, 300, 25),                    // no workflow: approved, the usage untouched
    ];
    let (c, usage) = both_agree_on(&ops);
    let want =
        ["approved", "over_workflow_budget", "needs_review", "review:review_over_budget:workflow", "mandate_conflict"];
    let missing: Vec<&str> = want.into_iter().filter(|code| !c.codes.contains_key(*code)).collect();
    assert!(missing.is_empty(), "never decided {missing:?}: {:?}", c.codes);
    assert_eq!((c.codes.get("approved"), c.codes.get("over_workflow_budget")), (Some(&4), Some(&1)), "{:?}", c.codes);
    assert_eq!((usage.reserved, usage.captured), (400, 800), "wf-1 in tenant-a at the end");
}

/// A retention as short as the reservation TTL (the shortest `genesis config check` accepts) forgets
/// no reservation (docs/semantics.md, Money 3): the Redis ledger once let the mandate — and the entry
/// naming its tenant — expire a retention after the decision, which is when the reservation falls due,
/// so the expiry job found nothing to release and the money stayed reserved for good (for the
/// business's total: forever). And the tenant stays in the index the expiry job visits even when
/// another tenant's decision prunes the index after the deadline. Real time (Redis expires keys by
/// its own clock): the wait is for a probe key with the same lifetime to expire. Once settled, the
/// mandate is kept for what is left of its retention: nothing, here, so it goes.
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
                task_id: None,
                workflow: None,
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
        wait_blocking(Duration::from_secs(20), "the probe to expire", || {
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
            let business = a.ledger().usage_business(&tenant, "biz-a").await.expect("usage");
            assert_eq!((business.reserved, business.captured), (0, 0), "the money went back to the budget");
        }
        // Settled past its retention, a mandate goes: no key is kept for good.
        for id in [reserved, held] {
            let keys = [Shard::of(&tenant).mandate(id), mandate_tenant(id)];
            wait_blocking(Duration::from_secs(20), "the settled mandate to expire", || {
                let left: i64 = redis::cmd("EXISTS").arg(&keys[..]).query(&mut c).expect("EXISTS");
                (left == 0).then_some(())
            });
        }
    });
}
