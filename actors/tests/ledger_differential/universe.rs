//! The universe the differential test draws from: the settings (small limits, so they are reached),
//! tenants, businesses, agents, vendors, amounts and mandate ids, the operations and their strategies,
//! and [`Script`], the driver's record of a case (the same for both ledgers).

use genesis_actors::payments::ledger::Settle;
use genesis_actors::payments::notify::NotifySettings;
use genesis_actors::payments::policy::{utc_day, FraudRules, PaymentRules};
use genesis_actors::payments::types::{PaymentIntent, WorkflowBudget};
use genesis_actors::payments::vendor::Whitelist;
use genesis_actors::payments::{Budgets, PaymentsSettings};
use genesis_actors::tenant::TenantId;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub const DAY: u64 = 86_400_000;
/// 2024-02-28T23:00:00Z: the first midnight leads into a leap day.
pub const START: u64 = 1_709_164_800_000 - 3_600_000;
/// The clock never passes this (see the module docs).
pub const END: u64 = START + 5 * DAY / 2;

pub const TENANTS: [&str; 3] = ["tenant-a", "tenant-b", "tenant-c"];
/// `biz-a`..`biz-c` are the "home" of one tenant each; `biz-x` is asked for by all.
pub const BUSINESSES: [&str; 4] = ["biz-a", "biz-b", "biz-c", "biz-x"];
/// `ghost` is not in the roster (`unknown_agent`).
pub const AGENTS: [&str; 4] = ["agent-1", "agent-2", "agent-3", "ghost"];
pub const KNOWN_AGENTS: [&str; 3] = ["agent-1", "agent-2", "agent-3"];
pub const VENDORS: [&str; 9] = [
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
pub const REASONS: [&str; 3] = ["credits", "tokens", "Gift Card top-up"];
/// Near every threshold of [`settings`]: near-threshold (80..100), auto-approve, the agent-3 budget,
/// review, budgets, hard cap; and refused at the edge.
pub const AMOUNTS: [i64; 18] =
    [1, 50, 80, 85, 90, 99, 100, 101, 300, 700, 800, 801, 1200, 1500, 1501, 2000, 2500, 3000];
pub const INVALID_AMOUNTS: [i64; 3] = [-5, 0, 3001];
pub const MANDATES: usize = 40;
/// The workflows an intent may count toward (`workflow` 1 and 2 of [`Op::Intent`]; 0 is none), with
/// `wf-1`'s budget below the others so that it is reached, `wf-2`'s above them so that they are reached
/// in a workflow too; `wf-1` comes with a second budget as well (3).
pub const WORKFLOWS: [(&str, u64); 3] = [("wf-1", 900), ("wf-2", 5000), ("wf-1", 1300)];
pub const WORKFLOW_IDS: [&str; 2] = ["wf-1", "wf-2"];
pub const RESERVATION_TTL: Duration = Duration::from_secs(15 * 60);

pub fn settings() -> PaymentsSettings {
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
        reconcile_interval: Duration::from_secs(60),
        token_key: None,
    }
}

pub fn mandate(n: usize) -> String {
    format!("m-{:02}", n % MANDATES)
}

/// 0: none; n: `WORKFLOWS[n - 1]`.
pub fn workflow_budget(n: usize) -> Option<WorkflowBudget> {
    let (id, budget_cents) = *WORKFLOWS.get(n.checked_sub(1)?)?;
    Some(WorkflowBudget { id: id.into(), budget_cents })
}

pub fn tid(t: &str) -> TenantId {
    TenantId::parse(t).expect("tenant")
}

/// What a repeated intent changes: nothing, or a detail outside (reason) or inside the fingerprint.
#[derive(Debug, Clone, Copy)]
pub enum Tweak {
    Same,
    Reason,
    Amount,
    Agent,
    Tenant,
    /// Another workflow (or none, or one after none).
    Workflow,
}

#[derive(Debug, Clone)]
pub enum Op {
    Intent {
        tenant: usize,
        business: usize,
        agent: usize,
        vendor: usize,
        amount: i64,
        mandate: usize,
        reason: usize,
        /// 0: no workflow; n: `WORKFLOWS[n - 1]`.
        workflow: usize,
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

pub fn intent_op() -> impl Strategy<Value = Op> {
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
    let workflow = prop_oneof![5 => Just(0usize), 2 => Just(1usize), 2 => Just(2usize), 1 => Just(3usize)];
    (tenant_business, agent, vendor, amount, 0..MANDATES, reason, workflow).prop_map(
        |((tenant, business), agent, vendor, amount, mandate, reason, workflow)| Op::Intent {
            tenant,
            business,
            agent,
            vendor,
            amount,
            mandate,
            reason,
            workflow,
        },
    )
}

pub fn op() -> impl Strategy<Value = Op> {
    let tweak = prop_oneof![
        3 => Just(Tweak::Same),
        1 => Just(Tweak::Reason),
        1 => Just(Tweak::Amount),
        1 => Just(Tweak::Agent),
        1 => Just(Tweak::Tenant),
        1 => Just(Tweak::Workflow)
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
pub struct Script {
    pub clock: Arc<AtomicU64>,
    pub intents: Vec<PaymentIntent>,
    pub used: Vec<String>,
    pub days: Vec<String>,
}

impl Script {
    pub fn now(&self) -> u64 {
        self.clock.load(Ordering::SeqCst)
    }

    /// Moves the clock to `to` if that is ahead and within [`END`]; says whether it moved.
    pub fn move_to(&mut self, to: u64) -> bool {
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

    pub fn use_mandate(&mut self, id: &str) {
        if !self.used.iter().any(|u| u == id) {
            self.used.push(id.to_string());
        }
    }

    /// The intent an `Intent` or `Repeat` sends, if any.
    pub fn intent(&self, op: &Op) -> Option<PaymentIntent> {
        match *op {
            Op::Intent { tenant, business, agent, vendor, amount, mandate: m, reason, workflow } => {
                Some(PaymentIntent {
                    agent_id: AGENTS[agent].into(),
                    vendor: VENDORS[vendor].into(),
                    amount_cents: amount,
                    reason: REASONS[reason].into(),
                    mandate_id: mandate(m),
                    business_id: BUSINESSES[business].into(),
                    tenant_id: tid(TENANTS[tenant]),
                    task_id: None,
                    workflow: workflow_budget(workflow),
                })
            }
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
                    Tweak::Workflow => {
                        let n = WORKFLOWS
                            .iter()
                            .position(|(id, b)| {
                                i.workflow.as_ref().is_some_and(|w| w.id == *id && w.budget_cents == *b)
                            })
                            .map_or(0, |n| n + 1);
                        i.workflow = workflow_budget((n + 1) % (WORKFLOWS.len() + 1));
                    }
                }
                Some(i)
            }
            _ => None,
        }
    }

    pub fn target(&self, k: usize) -> String {
        match self.used.len() {
            0 => mandate(k),
            n => self.used[k % n].clone(),
        }
    }
}
