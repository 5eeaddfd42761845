//! The authority: validation, then the ledger's atomic decision. Both the MetaAgent actor and
//! `genesis payments …` go through here, so there is one code path for every decision.

use super::ledger::{DecideInput, Decided, Ledger, LedgerError, Lifetimes, MandateRecord, Settle, Settled, Usage};
use super::notify::{Channel, Notifier};
use super::policy;
use super::settlement::TaskSettled;
use super::types::{is_fraud_code, Decision, Outcome, PaymentIntent};
use super::{Budgets, PaymentsSettings};
use crate::task::{now_ms, TaskId};
use crate::tenant::TenantId;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Where the authority reads the time (ms since the Unix epoch). Days, windows and deadlines all come
/// from it, so tests can decide on one UTC day and review on the next.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

#[derive(Clone)]
pub struct Authority {
    settings: Arc<PaymentsSettings>,
    ledger: Ledger,
    notifier: Option<Notifier>,
    clock: Clock,
}

/// Spend summary of one business.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub business_id: String,
    pub spent_cents: u64,
    pub reserved_cents: u64,
    pub released_cents: u64,
    pub projected_revenue_cents: Option<u64>,
    /// revenue / cost
    pub roi: Option<f64>,
    /// cost / revenue
    pub spend_revenue_ratio: Option<f64>,
    pub approvals: u64,
    pub denials: u64,
    pub pending_reviews: u64,
    pub by_vendor: BTreeMap<String, u64>,
    pub by_agent: BTreeMap<String, u64>,
    pub denials_by_code: BTreeMap<String, u64>,
    pub dashboard_url: Option<String>,
}

impl Summary {
    pub fn text(&self) -> String {
        let usd = |c: u64| format!("${}.{:02}", c / 100, c % 100);
        let mut s = format!(
            "**Spend summary: {}**\nspent {} (reserved {}), approvals {}, denials {}, pending reviews {}",
            self.business_id,
            usd(self.spent_cents),
            usd(self.reserved_cents),
            self.approvals,
            self.denials,
            self.pending_reviews
        );
        if let (Some(rev), Some(roi)) = (self.projected_revenue_cents, self.roi) {
            s.push_str(&format!("\nprojected revenue {}, ROI {roi:.2}", usd(rev)));
        }
        for (v, c) in &self.by_vendor {
            s.push_str(&format!("\n- {v}: {}", usd(*c)));
        }
        if let Some(url) = &self.dashboard_url {
            s.push_str(&format!("\n{url}"));
        }
        s
    }
}

/// Limits, reserved and captured for one budget.
#[derive(Debug, Clone, Serialize)]
pub struct BudgetLine {
    /// The tenant the budget belongs to (an agent has a daily budget in each tenant it works for).
    pub tenant: String,
    pub kind: &'static str,
    pub name: String,
    pub limit_cents: u64,
    pub reserved_cents: u64,
    pub captured_cents: u64,
    pub remaining_cents: u64,
}

impl BudgetLine {
    fn new(tenant: &TenantId, kind: &'static str, name: &str, limit: u64, u: Usage) -> Self {
        BudgetLine {
            tenant: tenant.to_string(),
            kind,
            name: name.to_string(),
            limit_cents: limit,
            reserved_cents: u.reserved,
            captured_cents: u.captured,
            remaining_cents: limit.saturating_sub(u.used()),
        }
    }
}

impl Authority {
    pub fn new(settings: PaymentsSettings, ledger: Ledger, notifier: Option<Notifier>) -> Self {
        Authority { settings: Arc::new(settings), ledger, notifier, clock: Arc::new(now_ms) }
    }

    /// The same authority reading the time from `clock` instead of the system clock.
    pub fn with_clock(self, clock: Clock) -> Self {
        Authority { clock, ..self }
    }

    fn now(&self) -> u64 {
        (self.clock)()
    }

    pub fn settings(&self) -> &PaymentsSettings {
        &self.settings
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    fn budgets(&self) -> &Budgets {
        &self.settings.budgets
    }

    /// Decide one intent. Every check runs for every amount; see `policy::evaluate` for the order.
    pub async fn approve(&self, raw: &PaymentIntent) -> Result<Decision, LedgerError> {
        let now = self.now();
        let s = &self.settings;
        let valid = match policy::validate(raw, &s.rules, &s.whitelist) {
            Ok(v) => v,
            Err(rej) => {
                let d = Decision {
                    outcome: Outcome::Denied,
                    code: rej.code.to_string(),
                    reason: rej.reason,
                    mandate_id: raw.mandate_id.clone(),
                    agent_id: raw.agent_id.clone(),
                    vendor: raw.vendor.clone(),
                    amount_cents: raw.amount_cents.max(0) as u64,
                    business_id: raw.business_id.clone(),
                    tenant_id: raw.tenant_id.to_string(),
                    decided_at_ms: now,
                };
                self.after(&d, true);
                return Ok(d);
            }
        };
        let input = DecideInput {
            intent: &valid,
            rules: &s.rules,
            whitelist: &s.whitelist,
            limits: self.budgets().limits(&valid.agent_id, &valid.business_id, valid.tenant_id.as_str()),
            now_ms: now,
            reservation_ttl_ms: s.reservation_ttl.as_millis() as u64,
            retention_ms: s.retention.as_millis() as u64,
            check_task_after_ms: s.reconcile_interval.as_millis() as u64,
        };
        let (d, fresh) = match self.ledger.decide(&input).await? {
            Decided::New(d) => (d, true),
            Decided::Stored(d) => (d, false),
            Decided::Refused(rej) => (
                Decision {
                    outcome: Outcome::Denied,
                    code: rej.code.to_string(),
                    reason: rej.reason,
                    mandate_id: valid.mandate.as_str().to_string(),
                    agent_id: valid.agent_id.clone(),
                    vendor: valid.vendor.as_str().to_string(),
                    amount_cents: valid.amount.get(),
                    business_id: valid.business_id.clone(),
                    tenant_id: valid.tenant_id.to_string(),
                    decided_at_ms: now,
                },
                true,
            ),
        };
        self.after(&d, fresh);
        Ok(d)
    }

    fn after(&self, d: &Decision, fresh: bool) {
        if !fresh {
            return;
        }
        match d.outcome {
            Outcome::Denied => {
                tracing::warn!(agent = %d.agent_id, vendor = %d.vendor, amount_cents = d.amount_cents, code = %d.code, reason = %d.reason, mandate = %d.mandate_id, "payment denied");
                if is_fraud_code(&d.code) {
                    if let Some(n) = &self.notifier {
                        n.send(
                            Channel::Alerts,
                            format!(
                                ":rotating_light: payment denied as `{}`: agent {} → {} for {} cents (business {}, mandate {}): {}",
                                d.code, d.agent_id, d.vendor, d.amount_cents, d.business_id, d.mandate_id, d.reason
                            ),
                        );
                    }
                }
            }
            Outcome::NeedsReview => {
                tracing::info!(agent = %d.agent_id, vendor = %d.vendor, amount_cents = d.amount_cents, mandate = %d.mandate_id, "payment held for review")
            }
            Outcome::Approved => {
                tracing::info!(agent = %d.agent_id, vendor = %d.vendor, amount_cents = d.amount_cents, mandate = %d.mandate_id, "payment approved")
            }
        }
    }

    pub async fn settle(&self, mandate: &str, to: Settle) -> Result<Settled, LedgerError> {
        self.ledger.settle(mandate, to, self.now(), self.settings.retention.as_millis() as u64).await
    }

    /// Settle every open reservation of a task (its outcome decides `to`: see [`super::settlement`]).
    /// Idempotent: what is already settled is counted as such and left alone.
    pub async fn settle_task(&self, tenant: &TenantId, task: &TaskId, to: Settle) -> Result<TaskSettled, LedgerError> {
        let mut out = TaskSettled::default();
        for id in self.ledger.task_reservations(tenant, task).await? {
            match self.settle(&id, to).await? {
                Settled::Done(_) => out.moved += 1,
                Settled::Already(_) => out.already += 1,
                // Captured when releasing (or released when capturing): by hand, or the expiry job got
                // there first. Either way it is no longer this task's to settle.
                Settled::Refused(m) => {
                    tracing::info!(task_id = %task, mandate = %id, status = %m.status, to = to.as_str(), "reservation already settled otherwise; left as it is");
                    out.already += 1;
                }
                Settled::Missing => {}
            }
        }
        Ok(out)
    }

    /// Release every reservation past its deadline; returns how many were released.
    pub async fn expire_due(&self) -> Result<usize, LedgerError> {
        let now = self.now();
        let mut n = 0;
        for id in self.ledger.due_reservations(now, 500).await? {
            if matches!(
                self.ledger.settle(&id, Settle::Expired, now, self.settings.retention.as_millis() as u64).await?,
                Settled::Done(_)
            ) {
                tracing::info!(mandate = %id, "reservation not captured in time: released");
                n += 1;
            }
        }
        Ok(n)
    }

    /// Decide a held intent. An approval re-checks the budgets of today (the day of the approval) and
    /// reserves against them; see [`Ledger::review`].
    pub async fn review(&self, mandate: &str, approve: bool) -> Result<Settled, LedgerError> {
        let Some(m) = self.ledger.mandate(mandate).await? else { return Ok(Settled::Missing) };
        let d = &m.decision;
        let limits = self.budgets().limits(&d.agent_id, &d.business_id, &d.tenant_id);
        let s = &self.settings;
        let keep = Lifetimes {
            reservation_ttl_ms: s.reservation_ttl.as_millis() as u64,
            retention_ms: s.retention.as_millis() as u64,
            check_task_after_ms: s.reconcile_interval.as_millis() as u64,
        };
        self.ledger.review(mandate, approve, limits, self.now(), &keep).await
    }

    pub async fn reviews(&self) -> Result<Vec<MandateRecord>, LedgerError> {
        self.ledger.reviews().await
    }

    pub async fn summary(&self, business: &str) -> Result<Summary, LedgerError> {
        let st = self.ledger.business_stats(business).await?;
        let cost = st.captured_cents;
        let revenue = st.projected_revenue_cents;
        Ok(Summary {
            business_id: business.to_string(),
            spent_cents: cost,
            reserved_cents: st.reserved_cents,
            released_cents: st.released_cents,
            projected_revenue_cents: revenue,
            roi: revenue.filter(|_| cost > 0).map(|r| r as f64 / cost as f64),
            spend_revenue_ratio: revenue.filter(|r| *r > 0).map(|r| cost as f64 / r as f64),
            approvals: st.approved,
            denials: st.denied,
            pending_reviews: st.needs_review,
            by_vendor: st.captured_by_vendor,
            by_agent: st.captured_by_agent,
            denials_by_code: st.denials_by_code,
            dashboard_url: self.settings.notify.dashboard_url.clone(),
        })
    }

    /// Post a business's summary to the dashboard webhook (queued; never blocks).
    pub async fn post_summary(&self, business: &str) -> Result<Summary, LedgerError> {
        let s = self.summary(business).await?;
        if let Some(n) = &self.notifier {
            n.send(Channel::Dashboard, s.text());
        }
        Ok(s)
    }

    /// Every budget with its limit and use, tenant by tenant: each agent's (today, in that tenant), the
    /// tenant's businesses', the tenant's (today). `tenants` empty: every tenant the ledger knows, or
    /// [`crate::tenant::DEFAULT_TENANT`] when it knows none (so a fresh ledger still shows the agents' limits).
    pub async fn budgets_report(
        &self,
        agents: &[String],
        tenants: &[TenantId],
    ) -> Result<Vec<BudgetLine>, LedgerError> {
        let day = policy::utc_day(self.now());
        let b = self.budgets();
        let mut known = self.ledger.known_parties().await?;
        let tenants: Vec<TenantId> = match (tenants.is_empty(), known.is_empty()) {
            (false, _) => tenants.to_vec(),
            (true, false) => known.keys().cloned().collect(),
            (true, true) => vec![TenantId::default()],
        };
        let mut out = Vec::new();
        for t in &tenants {
            for a in agents {
                let limit = *b.per_agent_daily.get(a).unwrap_or(&b.agent_daily_cents);
                out.push(BudgetLine::new(t, "agent_daily", a, limit, self.ledger.usage_agent(t, a, &day).await?));
            }
            for x in known.remove(t).unwrap_or_default() {
                let limit = *b.per_business_total.get(&x).unwrap_or(&b.business_total_cents);
                out.push(BudgetLine::new(t, "business_total", &x, limit, self.ledger.usage_business(t, &x).await?));
            }
            let limit = *b.per_tenant_daily.get(t.as_str()).unwrap_or(&b.tenant_daily_cents);
            out.push(BudgetLine::new(t, "tenant_daily", t.as_str(), limit, self.ledger.usage_tenant(t, &day).await?));
        }
        Ok(out)
    }
}
