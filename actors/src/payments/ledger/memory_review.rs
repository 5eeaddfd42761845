//! The in-memory ledger's review of a held intent: the same checks and effects as `review.lua` (the
//! budgets of the day of the approval, the workflow's as the intent carried it, checked first).

use super::{outcome_str, LedgerError, Lifetimes, MemoryLedger, Settled};
use crate::payments::ledger::keys::Shard;
use crate::payments::policy::{self, Limits};
use crate::payments::types::{code, Outcome};

impl MemoryLedger {
    pub async fn review(
        &self,
        id: &str,
        approve: bool,
        limits: Limits,
        now_ms: u64,
        keep: &Lifetimes,
    ) -> Result<Settled, LedgerError> {
        let (reservation_ttl_ms, retention_ms) = (keep.reservation_ttl_ms, keep.retention_ms);
        let mut s = self.lock();
        let Some(m) = s.mandates.get(id) else { return Ok(Settled::Missing) };
        let m_tenant = m.tenant.clone();
        let m_task = m.record.task_id.clone();
        if m.record.status != "needs_review" {
            return Ok(Settled::Refused(m.record.clone()));
        }
        // An approval reserves against the budgets of the day it is given (semantics.md, Money 5), not
        // of the day the intent was held: a review on a later day must not spend a closed day's budget.
        let today = policy::utc_day(now_ms);
        let d = &m.record.decision;
        let keys = Shard::of(&m.tenant).budgets(&d.agent_id, &d.business_id, &today);
        let workflow = m.record.workflow.clone();
        let workflow_key = s.workflow_key(m);
        let amount = d.amount_cents;
        let business = d.business_id.clone();
        // The same words as the Redis ledger's REVIEW script.
        let whose = [
            (format!("agent {}", d.agent_id), format!(" today in tenant {}", d.tenant_id)),
            (format!("business {}", d.business_id), String::new()),
            (format!("tenant {}", d.tenant_id), " today".to_string()),
        ];
        let (outcome, code, reason) = if !approve {
            (Outcome::Denied, code::REVIEW_DENIED, "denied by a reviewer".to_string())
        } else {
            let lims = [limits.agent_daily_cents, limits.business_total_cents, limits.tenant_daily_cents];
            // The workflow's budget first, as the intent carried it (as a decision checks it).
            let over_workflow = workflow.as_ref().zip(workflow_key.as_deref()).and_then(|(w, k)| {
                let used = s.used(k);
                (u128::from(used) + u128::from(amount) > u128::from(w.budget_cents)).then(|| {
                    format!(
                        "approved by a reviewer, but workflow {} has {used} of {} cents reserved or spent",
                        w.id, w.budget_cents
                    )
                })
            });
            match (over_workflow, keys.iter().zip(lims).zip(&whose).find(|((k, lim), _)| s.used(k) + amount > *lim)) {
                (Some(why), _) => (Outcome::Denied, code::REVIEW_OVER_BUDGET, why),
                (None, Some(((k, lim), (who, when)))) => (
                    Outcome::Denied,
                    code::REVIEW_OVER_BUDGET,
                    format!("approved by a reviewer, but {who} has used {} of {lim} cents{when}", s.used(k)),
                ),
                (None, None) => (Outcome::Approved, code::APPROVED, "approved by a reviewer; reserved".to_string()),
            }
        };
        if outcome == Outcome::Approved {
            s.reserve(&keys, workflow_key.as_deref(), amount, now_ms, retention_ms);
            let tenant = m_tenant.clone();
            let party = s.parties.entry(tenant).or_default();
            party.seen = party.seen.max(now_ms.saturating_add(reservation_ttl_ms));
            if let Some((_, until)) = s.mandate_tenants.get_mut(id) {
                *until = now_ms.saturating_add(retention_ms);
            }
            let x = (reservation_ttl_ms, keep.check_task_after_ms);
            s.index_task(&m_tenant, m_task.as_deref(), id, now_ms, x);
        }
        let st = s.stats.entry(business).or_default();
        st.needs_review = st.needs_review.saturating_sub(1);
        match outcome {
            Outcome::Approved => {
                st.approved += 1;
                st.reserved_cents += amount;
            }
            _ => {
                st.denied += 1;
                *st.denials_by_code.entry(code.to_string()).or_default() += 1;
            }
        }
        s.reviews.retain(|(_, m)| m != id);
        let (record, day) = match s.mandates.get_mut(id) {
            Some(m) => {
                m.record.decision.outcome = outcome;
                m.record.decision.code = code.to_string();
                m.record.decision.reason = reason;
                m.record.status = outcome_str(outcome).to_string();
                if outcome == Outcome::Approved {
                    m.deadline = now_ms + reservation_ttl_ms;
                    m.day = today;
                    m.expires_at = now_ms.saturating_add(retention_ms);
                }
                (m.record.clone(), m.day.clone())
            }
            None => return Ok(Settled::Missing),
        };
        s.log("reviewed", &record, &day, now_ms);
        Ok(Settled::Done(record))
    }
}
