use super::*;
use crate::payments::policy::{validate, PaymentRules};
use crate::payments::types::PaymentIntent;
use crate::payments::vendor::Whitelist;

const DAY: u64 = 86_400_000;
/// 2024-02-29T00:00:00Z
const START: u64 = 1_709_164_800_000;

/// An embedded node that decides for a month, with a new tenant and business every day, holds only
/// what its retention (two days) covers: mandates, log, windows, daily usage and the index of tenants
/// stay bounded. Money still reserved is never forgotten; businesses stay bound to their tenant.
#[tokio::test]
async fn a_month_of_decisions_keeps_only_the_retention() {
    let rules = PaymentRules { known_agents: ["agent-a".to_string()].into(), ..PaymentRules::default() };
    let whitelist = Whitelist::new(&["openai.com".to_string()]).expect("whitelist");
    let limits = Limits { agent_daily_cents: 1 << 40, business_total_cents: 1 << 40, tenant_daily_cents: 1 << 40 };
    let retention = 2 * DAY;
    let ledger = MemoryLedger::new();
    for day in 0..30u64 {
        for n in 0..20u64 {
            let now = START + day * DAY + n * 120_000;
            let raw = PaymentIntent {
                agent_id: "agent-a".into(),
                vendor: if n % 4 == 0 { "example.com".into() } else { "openai.com".into() },
                amount_cents: 100,
                reason: String::new(),
                mandate_id: if (day, n) == (0, 1) { "kept".into() } else { format!("m-{day}-{n}") },
                business_id: format!("biz-{day}"),
                tenant_id: TenantId::parse(&format!("tenant-{day}")).expect("tenant"),
                task_id: None,
                workflow: None,
            };
            let intent = validate(&raw, &rules, &whitelist).expect("valid");
            let input = DecideInput {
                intent: &intent,
                rules: &rules,
                whitelist: &whitelist,
                limits,
                now_ms: now,
                // "kept" outlives the run (the others expire as the expiry job would expire them).
                reservation_ttl_ms: if raw.mandate_id == "kept" { 40 * DAY } else { DAY },
                retention_ms: retention,
                check_task_after_ms: DAY,
            };
            let decided = ledger.decide(&input).await.expect("decide");
            assert!(matches!(decided, Decided::New(_)), "{decided:?}");
            for id in ledger.due_reservations(now, 1000).await.expect("due") {
                let expired = ledger.settle(&id, Settle::Expired, now, retention).await;
                assert!(matches!(expired, Ok(Settled::Done(_))), "{expired:?}");
            }
            if n % 4 == 2 {
                let settled = ledger.settle(raw.mandate_id.as_str(), Settle::Captured, now, retention).await;
                assert!(matches!(settled, Ok(Settled::Done(_))), "{settled:?}");
            }
        }
    }
    let s = ledger.lock();
    // Two days of 20 (plus the pruning interval's slack) and the one reservation never settled.
    assert!(s.mandates.len() <= 3 * 20 + 1, "{} mandates", s.mandates.len());
    assert!(s.mandates.contains_key("kept"), "a live reservation keeps its mandate");
    assert!(!s.mandates.contains_key("m-0-2"), "a settled mandate past the retention is forgotten");
    assert!(s.mandate_tenants.len() <= 3 * 20 + 1, "{}", s.mandate_tenants.len());
    assert!(s.log.len() <= 3 * 25, "{} log entries", s.log.len());
    // The tenants of the retention (with their amounts), and the one whose reservation is live (it
    // stays findable).
    let parties: Vec<&str> = s.parties.keys().map(TenantId::as_str).collect();
    assert!(parties.len() <= 4 && parties.contains(&"tenant-0"), "{parties:?}");
    assert!(s.agent_windows.len() <= 1 && s.agent_windows.values().all(|w| w.len() <= 1));
    assert!(s.approved.len() <= 4, "{}", s.approved.len());
    // Daily usage of the last three days (agent and tenant), and every business's total.
    let daily = s.usage.keys().filter(|k| !k.contains(":used:business:")).count();
    assert!(daily <= 2 * 4, "{daily} daily usage keys");
    assert_eq!(s.usage.len() - daily, 30, "business totals are all-time");
    assert_eq!(s.business_tenants.len(), 30, "a business stays bound to its tenant");
}
