//! Money follows the task (docs/semantics.md, Money 12): the reservations a task made are captured
//! when it succeeds and released when it is dead-lettered (or ends in any other final status that is
//! not success, such as a cancellation). A retry settles nothing: the next attempt asks for the same
//! mandates, which are still reserved.
//!
//! Two paths do it, both idempotent (settling a settled mandate changes nothing):
//! - the worker, right after it wrote the outcome ([`after_outcome`]);
//! - the reconciler (`node::services::reconciler`), for tasks whose outcome was written but whose
//!   settlement was not (a crash in between, the MetaAgent restarting, Redis failing at that moment).

use super::ledger::Settle;
use super::meta_agent::PaymentsClient;
use crate::bus::{Completion, TaskStatus};
use crate::metrics::{Metrics, SettledLabel};
use crate::task::TaskId;
use crate::tenant::TenantId;

/// What a task's status does to its open reservations; `None` while it can still run.
pub fn for_status(status: TaskStatus) -> Option<Settle> {
    match status {
        TaskStatus::Succeeded => Some(Settle::Captured),
        s if s.is_final() => Some(Settle::Released),
        _ => None,
    }
}

/// The task and what its written outcome does to its reservations; `None` for a retry (the task can
/// still run) and for an entry that could not be decoded (no task to speak of).
pub fn for_completion(c: &Completion) -> Option<(&TenantId, TaskId, Settle)> {
    match c {
        Completion::Succeeded { task, .. } => Some((&task.tenant_id, task.task_id, Settle::Captured)),
        Completion::Dead { task: Some(task), .. } => Some((&task.tenant_id, task.task_id, Settle::Released)),
        Completion::Retry { .. } | Completion::Dead { task: None, .. } => None,
    }
}

/// How many of a task's open reservations one settlement moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskSettled {
    /// Mandates moved to the settlement's state now.
    pub moved: usize,
    /// Mandates that were already settled (by the other path, or by hand).
    pub already: usize,
}

/// Count a settlement in `genesis_payments_settled_total{to, by}`.
pub fn count(metrics: &Metrics, to: Settle, by: &'static str, n: usize) {
    if n > 0 {
        metrics.payments_settled.get_or_create(&SettledLabel { to: to.as_str(), by }).inc_by(n as u64);
    }
}

/// The worker's hook, called once the outcome is written: settle the task's reservations now. It
/// never fails the task: an error is logged and counted, and the reconciler settles them later.
/// Without payments (no MetaAgent) it does nothing.
pub async fn after_outcome(payments: &PaymentsClient, metrics: &Metrics, completion: &Completion) {
    let Some((tenant, task, to)) = for_completion(completion) else { return };
    if !payments.is_connected() {
        return;
    }
    match payments.settle_task(tenant.clone(), task, to).await {
        Ok(s) => {
            count(metrics, to, "worker", s.moved);
            if s.moved > 0 {
                tracing::info!(task_id = %task, to = to.as_str(), mandates = s.moved, "task's reservations settled");
            }
        }
        Err(e) => {
            metrics.payments_settle_errors.inc();
            tracing::warn!(task_id = %task, to = to.as_str(), error = %e, "could not settle the task's reservations now; the reconciler will");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::TaskEnvelope;
    use serde_json::json;

    #[test]
    fn success_captures_death_releases_retries_wait() {
        assert_eq!(for_status(TaskStatus::Succeeded), Some(Settle::Captured));
        assert_eq!(for_status(TaskStatus::Dead), Some(Settle::Released));
        for s in [TaskStatus::Queued, TaskStatus::Running, TaskStatus::Retrying] {
            assert_eq!(for_status(s), None, "{s:?}");
        }
        let env = TaskEnvelope::new("genesis.qa".parse().expect("topic"), TenantId::default(), json!({}));
        let ok = Completion::Succeeded { task: env.clone(), result: json!(1) };
        assert_eq!(for_completion(&ok).map(|(_, t, s)| (t, s)), Some((env.task_id, Settle::Captured)));
        let dead = Completion::Dead { task: Some(env.clone()), reason: "x".into(), error: "y".into() };
        assert_eq!(for_completion(&dead).map(|(_, _, s)| s), Some(Settle::Released));
        let undecodable = Completion::Dead { task: None, reason: "x".into(), error: "y".into() };
        assert_eq!(for_completion(&undecodable), None);
        let retry = Completion::Retry { next: env, delay: std::time::Duration::ZERO, error: "e".into() };
        assert_eq!(for_completion(&retry), None);
    }
}
