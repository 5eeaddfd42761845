//! The ledger in one process's memory: the same contract as the Redis ledger, deciding with the
//! reference policy (`policy::check_ownership`, then `policy::evaluate`) under one mutex. It keeps the
//! Redis ledger's per-tenant state apart the same way (usage under the same key names). Not durable.
//!
//! Nothing here grows without bound: what Redis expires (mandates and the decision log after the
//! retention, fraud windows, daily usage [`DAY_USAGE_TTL_MS`] after its last reservation, a tenant's
//! place in the index `retention` after its last decision) is pruned here too, by [`State::prune`] at
//! most every [`PRUNE_EVERY_MS`] of decisions. What Redis keeps forever is kept here too: which tenant
//! a business belongs to, business totals and stats.

use super::keys::Shard;
use super::*;
use crate::payments::policy::{self, in_window, LedgerView, Step, StoredMandate};
use crate::payments::types::{code, Outcome};
use crate::tenant::TenantId;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Clone, Default)]
pub struct MemoryLedger {
    state: Arc<Mutex<State>>,
}

struct Stored {
    record: MandateRecord,
    tenant: TenantId,
    fingerprint: String,
    day: String,
    deadline: u64,
    /// When the mandate is forgotten: `retention` after its decision, or after its approval by a
    /// reviewer (as the Redis ledger's PEXPIRE). A mandate still holding a reservation is kept.
    expires_at: u64,
}

/// A tenant in the index, with its businesses; each with the time of its last decision.
#[derive(Default)]
struct Party {
    seen: u64,
    businesses: BTreeMap<String, u64>,
}

/// Pruning runs at most this often (in the ledger's time), and more often for a shorter retention.
pub const PRUNE_EVERY_MS: u64 = 1000;

#[derive(Default)]
struct State {
    mandates: HashMap<String, Stored>,
    /// By (tenant, agent).
    agent_windows: HashMap<(TenantId, String), Vec<(u64, u64)>>,
    /// By (business, vendor): a business is in one tenant.
    near_windows: HashMap<(String, String), Vec<(u64, u64)>>,
    /// By (tenant, agent, vendor).
    approved: HashMap<(TenantId, String, String), VecDeque<u64>>,
    /// By the Redis ledger's usage key names.
    usage: HashMap<String, Usage>,
    /// When a daily usage key expires (the business's, all-time, never does).
    usage_expiry: HashMap<String, u64>,
    reviews: BTreeSet<(u64, String)>,
    log: VecDeque<LogEntry>,
    stats: HashMap<String, BusinessStats>,
    /// Every tenant that asked for money in the last `retention`, with its businesses.
    parties: BTreeMap<TenantId, Party>,
    business_tenants: HashMap<String, TenantId>,
    /// The tenant a mandate id is bound to, until when (refreshed with the mandate).
    mandate_tenants: HashMap<String, (TenantId, u64)>,
    /// Tasks holding open reservations, by (tenant, task id): the Redis ledger's `task:<id>` sets and
    /// `tasks:open` sorted set.
    tasks: HashMap<(TenantId, String), tasks::OpenTask>,
    next_prune: u64,
}

impl State {
    fn usage_keys(&self, s: &Stored) -> [String; 3] {
        let d = &s.record.decision;
        Shard::of(&s.tenant).budgets(&d.agent_id, &d.business_id, &s.day)
    }

    /// The usage key of the stored mandate's workflow, if it counts toward one.
    fn workflow_key(&self, s: &Stored) -> Option<String> {
        s.record.workflow.as_ref().map(|w| Shard::of(&s.tenant).used_workflow(&w.id))
    }

    fn used(&self, key: &str) -> u64 {
        self.usage.get(key).map(Usage::used).unwrap_or(0)
    }

    /// Forget what the Redis ledger would have expired by `now`: mandates (except live reservations)
    /// and log entries older than the retention, fraud windows past their window, daily usage past its
    /// TTL, and tenants (with their windows and amounts) and businesses idle for the retention.
    fn prune(&mut self, now: u64, retention: u64, windows: (u64, u64)) {
        if now < self.next_prune {
            return;
        }
        self.next_prune = now.saturating_add((retention / 8).clamp(1, PRUNE_EVERY_MS));
        let alive = |at: u64| at.saturating_add(retention) > now;
        self.mandates.retain(|_, m| m.expires_at > now || m.record.status == "approved");
        let mandates = &self.mandates;
        self.reviews.retain(|(_, id)| mandates.contains_key(id));
        self.mandate_tenants.retain(|id, (_, until)| *until > now || mandates.contains_key(id));
        self.log.retain(|e| alive(e.at_ms));
        let (velocity, structuring) = windows;
        self.agent_windows.retain(|_, v| {
            v.retain(|(at, _)| in_window(*at, velocity, now));
            !v.is_empty()
        });
        self.near_windows.retain(|_, v| {
            v.retain(|(at, _)| in_window(*at, structuring, now));
            !v.is_empty()
        });
        let expired: Vec<String> =
            self.usage_expiry.iter().filter(|(_, until)| **until <= now).map(|(k, _)| k.clone()).collect();
        for k in expired {
            self.usage_expiry.remove(&k);
            self.usage.remove(&k);
        }
        self.parties.retain(|_, p| {
            p.businesses.retain(|_, seen| alive(*seen));
            alive(p.seen)
        });
        let parties = &self.parties;
        self.approved.retain(|(t, _, _), _| parties.contains_key(t));
        self.tasks.retain(|_, t| t.expires_at > now && !t.mandates.is_empty());
    }

    fn log(&mut self, event: &str, m: &MandateRecord, day: &str, now: u64) {
        let d = &m.decision;
        self.log.push_back(LogEntry {
            at_ms: now,
            event: event.to_string(),
            mandate_id: d.mandate_id.clone(),
            agent_id: d.agent_id.clone(),
            vendor: d.vendor.clone(),
            amount_cents: d.amount_cents,
            business_id: d.business_id.clone(),
            tenant_id: d.tenant_id.clone(),
            outcome: if event == "decided" || event == "reviewed" { outcome_str(d.outcome) } else { event }.to_string(),
            code: if event == "decided" || event == "reviewed" { d.code.clone() } else { event.to_string() },
            day: day.to_string(),
        });
    }
}

fn outcome_str(o: Outcome) -> &'static str {
    match o {
        Outcome::Approved => "approved",
        Outcome::Denied => "denied",
        Outcome::NeedsReview => "needs_review",
    }
}

impl State {
    /// Reserve `amount` against the three budgets, and the workflow's (its usage key) if any; the
    /// daily ones expire [`DAY_USAGE_TTL_MS`] after their last reservation, the workflow's the
    /// retention after its last movement ([`super::workflow_usage_ttl_ms`]), as in Redis.
    fn reserve(&mut self, budgets: &[String; 3], workflow: Option<&str>, amount: u64, now: u64, retention: u64) {
        for (n, k) in budgets.iter().enumerate() {
            self.usage.entry(k.clone()).or_default().reserved += amount;
            if n != 1 {
                self.usage_expiry.insert(k.clone(), now.saturating_add(DAY_USAGE_TTL_MS));
            }
        }
        if let Some(k) = workflow {
            self.usage.entry(k.to_string()).or_default().reserved += amount;
            self.usage_expiry.insert(k.to_string(), now.saturating_add(super::workflow_usage_ttl_ms(retention)));
        }
    }
}

impl MemoryLedger {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub async fn decide(&self, x: &DecideInput<'_>) -> Result<Decided, LedgerError> {
        let i = x.intent;
        let now = x.now_ms;
        let f = &x.rules.fraud;
        let day = policy::utc_day(now);
        let (agent, vendor, business, tenant) =
            (i.agent_id.clone(), i.vendor.as_str().to_string(), i.business_id.clone(), i.tenant_id.clone());
        let mut s = self.lock();
        s.prune(now, x.retention_ms, (f.velocity_window_ms, f.structuring_window_ms));
        let until = now.saturating_add(x.retention_ms);
        // Ownership first, bound as the Redis ledger binds it: by the first intent that reaches the
        // ledger, whatever its decision.
        let business_owner = s.business_tenants.entry(business.clone()).or_insert_with(|| tenant.clone()).clone();
        let (mandate_owner, _) =
            s.mandate_tenants.entry(i.mandate.as_str().to_string()).or_insert_with(|| (tenant.clone(), until)).clone();
        let party = s.parties.entry(tenant.clone()).or_default();
        party.seen = party.seen.max(now);
        if let Err(r) = policy::check_ownership(i, Some(business_owner.as_str()), Some(mandate_owner.as_str())) {
            return Ok(Decided::Refused(r));
        }
        let existing = s
            .mandates
            .get(i.mandate.as_str())
            .map(|m| StoredMandate { fingerprint: m.fingerprint.clone(), decision: m.record.decision.clone() });
        let agent_key = (tenant.clone(), agent.clone());
        if let Some(w) = s.agent_windows.get_mut(&agent_key) {
            w.retain(|(at, _)| in_window(*at, f.velocity_window_ms, now));
        }
        let near_key = (business.clone(), vendor.clone());
        if let Some(w) = s.near_windows.get_mut(&near_key) {
            w.retain(|(at, _)| in_window(*at, f.structuring_window_ms, now));
        }
        let av_key = (tenant.clone(), agent.clone(), vendor.clone());
        let shard = Shard::of(&tenant);
        let budgets = shard.budgets(&agent, &business, &day);
        let workflow_key = i.workflow.as_ref().map(|w| shard.used_workflow(&w.id));
        let view = LedgerView {
            existing,
            agent_recent: s.agent_windows.get(&agent_key).cloned().unwrap_or_default(),
            near_threshold_recent: s.near_windows.get(&near_key).cloned().unwrap_or_default(),
            approved_amounts_agent_vendor: s
                .approved
                .get(&av_key)
                .map(|d| d.iter().copied().collect())
                .unwrap_or_default(),
            agent_day_used: s.used(&budgets[0]),
            business_used: s.used(&budgets[1]),
            tenant_day_used: s.used(&budgets[2]),
            workflow_used: workflow_key.as_deref().map_or(0, |k| s.used(k)),
        };
        let step = policy::evaluate(i, x.rules, x.whitelist, &x.limits, &view, now);
        match &step {
            Step::Stored(d) => return Ok(Decided::Stored(d.clone())),
            Step::Deny(r) if r.code == code::MANDATE_CONFLICT => return Ok(Decided::Refused(r.clone())),
            _ => {}
        }
        let decision = policy::decision(i, &step, now);
        let amount = i.amount.get();
        // Every evaluated intent counts toward the windows.
        s.agent_windows.entry(agent_key).or_default().push((now, amount));
        if policy::is_near_threshold(amount, x.rules) {
            s.near_windows.entry(near_key).or_default().push((now, amount));
        }
        let seen = s.parties.entry(tenant.clone()).or_default().businesses.entry(business.clone()).or_default();
        *seen = (*seen).max(now);
        let mut deadline = 0;
        let stats = s.stats.entry(business.clone()).or_default();
        match decision.outcome {
            Outcome::Approved => {
                stats.approved += 1;
                stats.reserved_cents += amount;
                deadline = now + x.reservation_ttl_ms;
                s.reserve(&budgets, workflow_key.as_deref(), amount, now, x.retention_ms);
                let hist = s.approved.entry(av_key).or_default();
                hist.push_front(amount);
                hist.truncate(f.anomaly_history.max(1) as usize);
            }
            Outcome::NeedsReview => {
                stats.needs_review += 1;
                s.reviews.insert((now, i.mandate.as_str().to_string()));
            }
            Outcome::Denied => {
                stats.denied += 1;
                *stats.denials_by_code.entry(decision.code.clone()).or_default() += 1;
            }
        }
        let task_id = i.task_id.map(|t| t.to_string());
        if decision.outcome == Outcome::Approved {
            let x = (x.reservation_ttl_ms, x.check_task_after_ms);
            s.index_task(&tenant, task_id.as_deref(), i.mandate.as_str(), now, x);
            // In the index until a retention after the reservation's deadline, as in Redis (`hold`).
            let party = s.parties.entry(tenant.clone()).or_default();
            party.seen = party.seen.max(deadline);
        }
        let record = MandateRecord {
            decision: decision.clone(),
            status: outcome_str(decision.outcome).to_string(),
            purpose: i.reason.clone(),
            task_id,
            workflow: i.workflow.clone(),
        };
        s.log("decided", &record, &day, now);
        s.mandates.insert(
            i.mandate.as_str().to_string(),
            Stored {
                record,
                tenant: tenant.clone(),
                fingerprint: policy::fingerprint(i),
                day,
                deadline,
                expires_at: until,
            },
        );
        Ok(Decided::New(decision))
    }

    pub async fn mandate(&self, id: &str) -> Result<Option<MandateRecord>, LedgerError> {
        Ok(self.lock().mandates.get(id).map(|m| m.record.clone()))
    }

    pub async fn settle(&self, id: &str, to: Settle, now_ms: u64, retention_ms: u64) -> Result<Settled, LedgerError> {
        let mut s = self.lock();
        let Some(m) = s.mandates.get(id) else { return Ok(Settled::Missing) };
        let (tenant, task) = (m.tenant.clone(), m.record.task_id.clone());
        s.unindex_task(&tenant, task.as_deref(), id);
        let Some(m) = s.mandates.get(id) else { return Ok(Settled::Missing) };
        if m.record.status == to.as_str() {
            return Ok(Settled::Already(m.record.clone()));
        }
        if m.record.status != "approved" {
            return Ok(Settled::Refused(m.record.clone()));
        }
        let keys = s.usage_keys(m);
        let workflow_key = s.workflow_key(m);
        let (amount, business, vendor, agent, day) = {
            let d = &m.record.decision;
            (d.amount_cents, d.business_id.clone(), d.vendor.clone(), d.agent_id.clone(), m.day.clone())
        };
        for (n, k) in keys.into_iter().enumerate() {
            if n != 1 {
                // A daily usage settled after it expired comes back for another TTL, not forever.
                s.usage_expiry.entry(k.clone()).or_insert(now_ms.saturating_add(DAY_USAGE_TTL_MS));
            }
            let u = s.usage.entry(k).or_default();
            u.reserved = u.reserved.saturating_sub(amount);
            if to == Settle::Captured {
                u.captured += amount;
            }
        }
        if let Some(k) = workflow_key {
            s.usage_expiry.insert(k.clone(), now_ms.saturating_add(super::workflow_usage_ttl_ms(retention_ms)));
            let u = s.usage.entry(k).or_default();
            u.reserved = u.reserved.saturating_sub(amount);
            if to == Settle::Captured {
                u.captured += amount;
            }
        }
        let st = s.stats.entry(business).or_default();
        st.reserved_cents = st.reserved_cents.saturating_sub(amount);
        if to == Settle::Captured {
            st.captured_cents += amount;
            *st.captured_by_vendor.entry(vendor).or_default() += amount;
            *st.captured_by_agent.entry(agent).or_default() += amount;
        } else {
            st.released_cents += amount;
        }
        let record = match s.mandates.get_mut(id) {
            Some(m) => {
                m.record.status = to.as_str().to_string();
                m.record.clone()
            }
            None => return Ok(Settled::Missing),
        };
        s.log(to.as_str(), &record, &day, now_ms);
        Ok(Settled::Done(record))
    }

    pub async fn reviews(&self) -> Result<Vec<MandateRecord>, LedgerError> {
        let s = self.lock();
        Ok(s.reviews.iter().filter_map(|(_, id)| s.mandates.get(id).map(|m| m.record.clone())).collect())
    }

    pub async fn due_reservations(&self, now_ms: u64, limit: usize) -> Result<Vec<String>, LedgerError> {
        let s = self.lock();
        let mut due: Vec<(u64, String)> = s
            .mandates
            .iter()
            .filter(|(_, m)| m.record.status == "approved" && m.deadline <= now_ms)
            .map(|(id, m)| (m.deadline, id.clone()))
            .collect();
        due.sort();
        Ok(due.into_iter().take(limit).map(|(_, id)| id).collect())
    }

    pub async fn usage(&self, key: &str) -> Result<Usage, LedgerError> {
        Ok(self.lock().usage.get(key).copied().unwrap_or_default())
    }

    pub async fn known_parties(&self) -> Result<BTreeMap<TenantId, Vec<String>>, LedgerError> {
        Ok(self.lock().parties.iter().map(|(t, p)| (t.clone(), p.businesses.keys().cloned().collect())).collect())
    }

    pub async fn business_tenant(&self, business: &str) -> Result<Option<String>, LedgerError> {
        Ok(self.lock().business_tenants.get(business).map(TenantId::to_string))
    }

    pub async fn business_stats(&self, business: &str) -> Result<BusinessStats, LedgerError> {
        Ok(self.lock().stats.get(business).cloned().unwrap_or_default())
    }

    pub async fn set_projected_revenue(&self, business: &str, cents: u64) -> Result<(), LedgerError> {
        self.lock().stats.entry(business.to_string()).or_default().projected_revenue_cents = Some(cents);
        Ok(())
    }

    pub async fn log(&self, tenant: Option<&TenantId>, day: &str, limit: usize) -> Result<Vec<LogEntry>, LedgerError> {
        let s = self.lock();
        // By the time of the entry, as the Redis ledger reads its log stream by id (a settlement or a
        // review on a later day is in that later day's log).
        let wanted =
            |e: &&LogEntry| policy::utc_day(e.at_ms) == day && tenant.is_none_or(|t| e.tenant_id == t.as_str());
        Ok(s.log.iter().filter(wanted).take(limit).cloned().collect())
    }
}

#[path = "memory_review.rs"]
mod review;
#[path = "memory_tasks.rs"]
mod tasks;

#[cfg(test)]
#[path = "memory_tests.rs"]
mod tests;
