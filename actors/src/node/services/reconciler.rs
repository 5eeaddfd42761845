//! Settles the open reservations of tasks that reached their final status without their settlement:
//! the worker writes the outcome, then settles (see [`crate::payments::settlement`]); a crash, a
//! MetaAgent restart or a Redis error between the two leaves money reserved for a finished task. This
//! repairs it: succeeded → captured, dead → released.
//!
//! The ledger keeps, per tenant, the tasks that hold open reservations, each with the time of its next
//! look (first one `payments.reconcile_interval` after its reservation, so the worker normally settles
//! first). Each tick takes at most [`BATCH`] due tasks (earliest first) over every tenant, reads each
//! one's status from its result record (the topic is its agent's, from the roster), and settles it or
//! puts it back for another interval. Every node runs one; they may race, and settling is idempotent.
//! A ledger error is logged and counted (`genesis_payments_settle_errors_total`) and never ends the
//! service; a bus error slows the ticker down like any service's.

use super::Periodic;
use crate::bus::{Bus, BusError};
use crate::metrics::Metrics;
use crate::payments::authority::Authority;
use crate::payments::ledger::LedgerError;
use crate::payments::settlement;
use crate::roster::Roster;
use crate::task::TaskId;
use crate::tenant::TenantId;
use futures::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;

/// Most tasks looked at per tick.
pub const BATCH: usize = 100;

pub struct Reconciler {
    pub bus: Bus,
    pub roster: Roster,
    pub authority: Authority,
    pub metrics: Arc<Metrics>,
    pub interval: Duration,
}

enum Failed {
    Bus(BusError),
    Ledger(LedgerError),
}

impl From<LedgerError> for Failed {
    fn from(e: LedgerError) -> Self {
        Failed::Ledger(e)
    }
}

impl Reconciler {
    /// Look at one task: settle it if its status is final, else look again in an interval.
    async fn reconcile(&self, tenant: &TenantId, task: &TaskId, now: u64) -> Result<(), Failed> {
        let ledger = self.authority.ledger();
        let open = ledger.task_reservations(tenant, task).await?;
        let Some(first) = open.first() else {
            // Its index expired with its reservations (which the expiry job released).
            return Ok(ledger.forget_task(tenant, task).await?);
        };
        let agent = ledger.mandate(first).await?.map(|m| m.decision.agent_id);
        let topic = agent.and_then(|a| self.roster.agents.iter().find(|s| s.name == a).map(|s| s.topic.clone()));
        let status = match &topic {
            Some(t) => self.bus.task(t, &task.to_string()).await.map_err(Failed::Bus)?.map(|r| r.status),
            // An agent no longer in the roster: its reservations expire at their deadline.
            None => None,
        };
        match status.and_then(settlement::for_status) {
            Some(to) => {
                let s = self.authority.settle_task(tenant, task, to).await?;
                settlement::count(&self.metrics, to, "reconciler", s.moved);
                if s.moved > 0 {
                    tracing::warn!(task_id = %task, %tenant, to = to.as_str(), mandates = s.moved, "settled the reservations of a finished task (its own settlement did not happen: a crash or an error in between)");
                }
            }
            None => ledger.postpone_task(tenant, task, now.saturating_add(self.interval.as_millis() as u64)).await?,
        }
        Ok(())
    }
}

impl Periodic for Reconciler {
    fn name(&self) -> &'static str {
        "reconciler"
    }
    fn interval(&self) -> Duration {
        self.interval
    }
    fn tick(&mut self) -> BoxFuture<'_, Result<(), BusError>> {
        Box::pin(async move {
            let now = crate::task::now_ms();
            let due = match self.authority.ledger().due_tasks(now, BATCH).await {
                Ok(due) => due,
                Err(e) => {
                    self.metrics.payments_settle_errors.inc();
                    tracing::warn!(error = %e, "reconciler: cannot list the tasks holding reservations; will retry");
                    return Ok(());
                }
            };
            for (tenant, task) in due {
                match self.reconcile(&tenant, &task, now).await {
                    Ok(()) => {}
                    Err(Failed::Bus(e)) => return Err(e),
                    Err(Failed::Ledger(e)) => {
                        self.metrics.payments_settle_errors.inc();
                        tracing::warn!(task_id = %task, %tenant, error = %e, "reconciler: cannot settle the task's reservations; will retry");
                        // Redis failing fails every task alike: wait for the next tick. Anything else is
                        // this task's (an unreadable record): go on with the others.
                        if matches!(e, LedgerError::Redis(_)) {
                            return Ok(());
                        }
                    }
                }
            }
            Ok(())
        })
    }
}
