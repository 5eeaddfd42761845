//! The payment authority. No agent spends money without an approved intent, and no rule can be
//! bypassed by amount, retries, concurrency or running several processes:
//!
//! - [`types`]: the intent and decision, parsed once at the edge;
//! - [`vendor`]: host normalization, whitelist and look-alike detection;
//! - [`policy`]: the checks in their order, as pure functions (the reference semantics);
//! - [`ledger`]: budgets, reservations and idempotency, atomic in Redis (or in memory);
//! - [`authority`]: validation + ledger: the one code path every decision takes;
//! - [`meta_agent`]: the MetaAgent actor that answers intents by message;
//! - [`for_task`]: the business and workflow budget a task's intents are for (one rule for every way
//!   a task asks);
//! - [`token`]: task-bound payment tokens, with which outside agents ask as their task's agent;
//! - [`outside`]: an outside agent's intent (as the HTTP API receives it) bound to its token;
//! - [`settlement`]: a task's reservations follow its outcome (captured on success, released on death);
//! - [`notify`]: summaries and fraud alerts to webhooks, never blocking a decision.
//!
//! The guarantees are in `docs/semantics.md`, section "Money".

pub mod authority;
pub mod for_task;
pub mod ledger;
pub mod meta_agent;
pub mod notify;
pub mod outside;
pub mod policy;
pub mod settlement;
pub mod token;
pub mod types;
pub mod vendor;

use policy::{Limits, PaymentRules};
use std::collections::BTreeMap;
use std::time::Duration;

/// Budgets from configuration: defaults plus per-name overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct Budgets {
    pub agent_daily_cents: u64,
    pub business_total_cents: u64,
    pub tenant_daily_cents: u64,
    pub per_agent_daily: BTreeMap<String, u64>,
    pub per_business_total: BTreeMap<String, u64>,
    pub per_tenant_daily: BTreeMap<String, u64>,
}

impl Default for Budgets {
    /// $200 per agent per tenant per UTC day, $5,000 per business in all, $1,000 per tenant per UTC
    /// day: each at least the default hard cap ([`PaymentRules::default`]), so any single intent the
    /// cap allows, reviewed or not, fits a fresh budget.
    fn default() -> Self {
        Budgets {
            agent_daily_cents: 20_000,
            business_total_cents: 500_000,
            tenant_daily_cents: 100_000,
            per_agent_daily: BTreeMap::new(),
            per_business_total: BTreeMap::new(),
            per_tenant_daily: BTreeMap::new(),
        }
    }
}

impl Budgets {
    pub fn limits(&self, agent: &str, business: &str, tenant: &str) -> Limits {
        Limits {
            agent_daily_cents: *self.per_agent_daily.get(agent).unwrap_or(&self.agent_daily_cents),
            business_total_cents: *self.per_business_total.get(business).unwrap_or(&self.business_total_cents),
            tenant_daily_cents: *self.per_tenant_daily.get(tenant).unwrap_or(&self.tenant_daily_cents),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PaymentsSettings {
    pub rules: PaymentRules,
    pub whitelist: vendor::Whitelist,
    pub budgets: Budgets,
    /// An approved reservation not captured within this time is released automatically.
    pub reservation_ttl: Duration,
    /// How long mandates (idempotency) and the decision log are kept.
    pub retention: Duration,
    /// How often expired reservations are released.
    pub expiry_interval: Duration,
    /// How often the reconciler looks for tasks that reached their final status with reservations
    /// still open (a crash between the outcome and its settlement), and how long after a reservation
    /// it first looks at its task.
    pub reconcile_interval: Duration,
    /// The key of task-bound payment tokens, shared by every node; `None`: a random key per process
    /// (tokens then verify only on the node that made them).
    pub token_key: Option<token::TokenKey>,
    pub notify: notify::NotifySettings,
}
