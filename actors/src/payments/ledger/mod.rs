//! The payments ledger: decisions, reservations and their settlement, per-day and per-business usage.
//!
//! Two implementations with one contract: [`redis::RedisLedger`] (Lua scripts; any number of nodes and
//! CLI processes share it and never approve more than a budget together) and [`memory::MemoryLedger`]
//! (one process, behind a mutex, deciding with the reference policy). `tests/payments.rs` runs the same
//! scenarios against both.
//!
//! Tenant = shard ([`keys`]): a tenant's mandates, windows, budgets, reservations, reviews, log and
//! business stats are in its own hash slot. An agent's budget and windows are per tenant; a business
//! and a mandate id belong to the first tenant that uses them ([`policy::check_ownership`]). Reads
//! across tenants ([`Ledger::reviews`], [`Ledger::due_reservations`], [`Ledger::known_parties`],
//! [`Ledger::log`]) visit every tenant in the ledger's set of tenants.
//!
//! [`policy::check_ownership`]: super::policy::check_ownership

mod index;
pub mod keys;
pub mod memory;
pub mod redis;
mod reply;
mod scripts;

use super::policy::{Limits, PaymentRules};
use super::types::{Decision, Rejection, ValidIntent, WorkflowBudget};
use super::vendor::Whitelist;
use crate::task::TaskId;
use crate::tenant::TenantId;
use serde::Serialize;
use std::collections::BTreeMap;

/// How long a daily usage (agent or tenant, one UTC day) is kept after its last reservation: long
/// enough to settle a reservation made just before midnight, and to show yesterday in `budget show`.
/// The Redis scripts use the same number (`3 * 86400000`).
pub const DAY_USAGE_TTL_MS: u64 = 3 * 86_400_000;

/// How long a workflow's usage is kept after the last reservation or settlement it saw: the
/// retention (`payments.retention`), not a day's TTL, since a workflow is not bounded by a UTC day and
/// forgetting its spend would let it spend its budget again. (The Redis scripts: `retention`.)
pub fn workflow_usage_ttl_ms(retention_ms: u64) -> u64 {
    retention_ms.max(1)
}

/// Everything one decision needs.
pub struct DecideInput<'a> {
    pub intent: &'a ValidIntent,
    pub rules: &'a PaymentRules,
    pub whitelist: &'a Whitelist,
    pub limits: Limits,
    pub now_ms: u64,
    pub reservation_ttl_ms: u64,
    pub retention_ms: u64,
    /// An approval for a task is indexed under the task; the reconciler first looks at the task's
    /// status this long after (the worker's own settlement normally comes first).
    pub check_task_after_ms: u64,
}

/// How long what a decision or review writes is kept, and when the reconciler first looks at the task
/// of a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    pub reservation_ttl_ms: u64,
    pub retention_ms: u64,
    pub check_task_after_ms: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decided {
    /// Decided now (and stored under the mandate id).
    New(Decision),
    /// The same mandate with the same details was decided before: that decision.
    Stored(Decision),
    /// Refused before anything was decided or stored: the business belongs to another tenant
    /// (`business_tenant_mismatch`), or the mandate id was used before with other details or by another
    /// tenant (`mandate_conflict`).
    Refused(Rejection),
}

/// A stored mandate: its decision, where its money is now, and the purpose given.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MandateRecord {
    #[serde(flatten)]
    pub decision: Decision,
    /// approved (reserved) | captured | released | expired | denied | needs_review
    pub status: String,
    pub purpose: String,
    /// The task the money is for (its reservation is settled with the task), if a task asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// The workflow whose budget the mandate counts toward (and the budget it was decided under; a
    /// review approval re-checks that one), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow: Option<WorkflowBudget>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    Captured,
    Released,
    Expired,
}

impl Settle {
    pub fn as_str(&self) -> &'static str {
        match self {
            Settle::Captured => "captured",
            Settle::Released => "released",
            Settle::Expired => "expired",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Settled {
    Done(MandateRecord),
    /// Already in that state (idempotent).
    Already(MandateRecord),
    /// Not a reservation that can move there (e.g. denied, or captured when releasing).
    Refused(MandateRecord),
    Missing,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub reserved: u64,
    pub captured: u64,
}

impl Usage {
    pub fn used(&self) -> u64 {
        self.reserved + self.captured
    }
}

/// Counters per business, kept by the ledger as decisions and settlements happen.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BusinessStats {
    pub approved: u64,
    pub denied: u64,
    pub needs_review: u64,
    pub reserved_cents: u64,
    pub captured_cents: u64,
    pub released_cents: u64,
    pub captured_by_vendor: BTreeMap<String, u64>,
    pub captured_by_agent: BTreeMap<String, u64>,
    pub denials_by_code: BTreeMap<String, u64>,
    pub projected_revenue_cents: Option<u64>,
}

/// One line of the decision log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogEntry {
    pub at_ms: u64,
    pub event: String,
    pub mandate_id: String,
    pub agent_id: String,
    pub vendor: String,
    pub amount_cents: u64,
    pub business_id: String,
    pub tenant_id: String,
    pub outcome: String,
    pub code: String,
    pub day: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    #[error("unexpected reply from the ledger: {0}")]
    Protocol(String),
}

#[derive(Clone)]
pub enum Ledger {
    Redis(redis::RedisLedger),
    Memory(memory::MemoryLedger),
}

macro_rules! dispatch {
    ($self:ident, $l:ident => $e:expr) => {
        match $self {
            Ledger::Redis($l) => $e,
            Ledger::Memory($l) => $e,
        }
    };
}

impl Ledger {
    pub async fn decide(&self, input: &DecideInput<'_>) -> Result<Decided, LedgerError> {
        dispatch!(self, l => l.decide(input).await)
    }
    pub async fn mandate(&self, id: &str) -> Result<Option<MandateRecord>, LedgerError> {
        dispatch!(self, l => l.mandate(id).await)
    }
    pub async fn settle(&self, id: &str, to: Settle, now_ms: u64, retention_ms: u64) -> Result<Settled, LedgerError> {
        dispatch!(self, l => l.settle(id, to, now_ms, retention_ms).await)
    }
    /// Decide a held review. An approval checks and reserves against the budgets of the UTC day of
    /// `now_ms` (the review's day, not the day the intent was held); the reservation then belongs to
    /// that day, and its mandate is kept for `keep.retention_ms` from now. An approved mandate of a task
    /// joins the task's open reservations.
    pub async fn review(
        &self,
        id: &str,
        approve: bool,
        limits: Limits,
        now_ms: u64,
        keep: &Lifetimes,
    ) -> Result<Settled, LedgerError> {
        dispatch!(self, l => l.review(id, approve, limits, now_ms, keep).await)
    }
    /// The open (approved, not yet settled) reservations of a task, by mandate id.
    pub async fn task_reservations(&self, tenant: &TenantId, task: &TaskId) -> Result<Vec<String>, LedgerError> {
        dispatch!(self, l => l.task_reservations(tenant, task).await)
    }
    /// Tasks holding open reservations whose status is due for a look (see [`Ledger::postpone_task`]),
    /// in every tenant, earliest first.
    pub async fn due_tasks(&self, now_ms: u64, limit: usize) -> Result<Vec<(TenantId, TaskId)>, LedgerError> {
        dispatch!(self, l => l.due_tasks(now_ms, limit).await)
    }
    /// Look at the task's status again at `at_ms` (nothing if it holds no open reservation any more).
    pub async fn postpone_task(&self, tenant: &TenantId, task: &TaskId, at_ms: u64) -> Result<(), LedgerError> {
        dispatch!(self, l => l.postpone_task(tenant, task, at_ms).await)
    }
    /// Drop a task whose index of open reservations is empty (expired) from the open tasks.
    pub async fn forget_task(&self, tenant: &TenantId, task: &TaskId) -> Result<(), LedgerError> {
        dispatch!(self, l => l.forget_task(tenant, task).await)
    }
    /// Intents held for review, in every tenant, oldest first.
    pub async fn reviews(&self) -> Result<Vec<MandateRecord>, LedgerError> {
        dispatch!(self, l => l.reviews().await)
    }
    /// Mandate ids whose reservation has passed its deadline, in every tenant, earliest deadline first.
    pub async fn due_reservations(&self, now_ms: u64, limit: usize) -> Result<Vec<String>, LedgerError> {
        dispatch!(self, l => l.due_reservations(now_ms, limit).await)
    }
    /// Usage of an agent's daily budget in one tenant (an agent has a budget per tenant it works for).
    pub async fn usage_agent(&self, tenant: &TenantId, agent: &str, day: &str) -> Result<Usage, LedgerError> {
        dispatch!(self, l => l.usage(&keys::Shard::of(tenant).used_agent(agent, day)).await)
    }
    /// Usage of a business's budget; `tenant` is the tenant the business belongs to.
    pub async fn usage_business(&self, tenant: &TenantId, business: &str) -> Result<Usage, LedgerError> {
        dispatch!(self, l => l.usage(&keys::Shard::of(tenant).used_business(business)).await)
    }
    /// Usage of a workflow's budget in `tenant` (the tenant of its tasks).
    pub async fn usage_workflow(&self, tenant: &TenantId, workflow: &str) -> Result<Usage, LedgerError> {
        dispatch!(self, l => l.usage(&keys::Shard::of(tenant).used_workflow(workflow)).await)
    }
    pub async fn usage_tenant(&self, tenant: &TenantId, day: &str) -> Result<Usage, LedgerError> {
        dispatch!(self, l => l.usage(&keys::Shard::of(tenant).used_tenant(day)).await)
    }
    /// Every tenant that has asked for money, with its businesses (both sorted), for `budget show`.
    pub async fn known_parties(&self) -> Result<BTreeMap<TenantId, Vec<String>>, LedgerError> {
        dispatch!(self, l => l.known_parties().await)
    }
    /// The tenant a business is bound to, if it has asked for money.
    pub async fn business_tenant(&self, business: &str) -> Result<Option<String>, LedgerError> {
        dispatch!(self, l => l.business_tenant(business).await)
    }
    pub async fn business_stats(&self, business: &str) -> Result<BusinessStats, LedgerError> {
        dispatch!(self, l => l.business_stats(business).await)
    }
    pub async fn set_projected_revenue(&self, business: &str, cents: u64) -> Result<(), LedgerError> {
        dispatch!(self, l => l.set_projected_revenue(business, cents).await)
    }
    /// Log entries of one UTC day (`YYYY-MM-DD`) in every tenant, oldest first.
    pub async fn log(&self, day: &str, limit: usize) -> Result<Vec<LogEntry>, LedgerError> {
        dispatch!(self, l => l.log(None, day, limit).await)
    }
    /// Log entries of one UTC day of one tenant, oldest first.
    pub async fn tenant_log(&self, tenant: &TenantId, day: &str, limit: usize) -> Result<Vec<LogEntry>, LedgerError> {
        dispatch!(self, l => l.log(Some(tenant), day, limit).await)
    }
}
