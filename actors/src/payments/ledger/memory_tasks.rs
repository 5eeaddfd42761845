//! The in-memory ledger's index of tasks with open reservations: what the Redis scripts keep in
//! `task:<id>` (a set of mandate ids, expiring with the last reservation added) and `tasks:open` (when
//! the reconciler should next look at each task).

use super::{LedgerError, MemoryLedger, State};
use crate::task::TaskId;
use crate::tenant::TenantId;
use std::collections::BTreeSet;

/// A task's open reservations.
pub(super) struct OpenTask {
    pub(super) mandates: BTreeSet<String>,
    /// When the reconciler should next look at the task's status.
    pub(super) check_at: u64,
    /// When the index expires, as in Redis: the deadline of the last reservation added.
    pub(super) expires_at: u64,
}

impl State {
    /// An approved reservation for a task joins the task's index (`check_after`: when the reconciler
    /// first looks, unless the task is already indexed), as the Redis scripts do.
    pub(super) fn index_task(&mut self, tenant: &TenantId, task: Option<&str>, mandate: &str, now: u64, x: (u64, u64)) {
        let Some(task) = task.filter(|t| !t.is_empty()) else { return };
        let (ttl, check_after) = x;
        let t = self.tasks.entry((tenant.clone(), task.to_string())).or_insert_with(|| OpenTask {
            mandates: BTreeSet::new(),
            check_at: now.saturating_add(check_after),
            expires_at: 0,
        });
        t.mandates.insert(mandate.to_string());
        t.expires_at = now.saturating_add(ttl);
    }

    /// The mandate is no longer an open reservation of its task (settled now, or before).
    pub(super) fn unindex_task(&mut self, tenant: &TenantId, task: Option<&str>, mandate: &str) {
        let Some(task) = task.filter(|t| !t.is_empty()) else { return };
        let key = (tenant.clone(), task.to_string());
        if let Some(t) = self.tasks.get_mut(&key) {
            t.mandates.remove(mandate);
            if t.mandates.is_empty() {
                self.tasks.remove(&key);
            }
        }
    }
}

impl MemoryLedger {
    pub async fn task_reservations(&self, tenant: &TenantId, task: &TaskId) -> Result<Vec<String>, LedgerError> {
        let key = (tenant.clone(), task.to_string());
        Ok(self.lock().tasks.get(&key).map(|t| t.mandates.iter().cloned().collect()).unwrap_or_default())
    }

    pub async fn due_tasks(&self, now_ms: u64, limit: usize) -> Result<Vec<(TenantId, TaskId)>, LedgerError> {
        let s = self.lock();
        let mut due: Vec<(u64, &TenantId, &String)> =
            s.tasks.iter().filter(|(_, t)| t.check_at <= now_ms).map(|((tn, id), t)| (t.check_at, tn, id)).collect();
        due.sort();
        Ok(due.into_iter().filter_map(|(_, t, id)| Some((t.clone(), id.parse().ok()?))).take(limit).collect())
    }

    pub async fn postpone_task(&self, tenant: &TenantId, task: &TaskId, at_ms: u64) -> Result<(), LedgerError> {
        if let Some(t) = self.lock().tasks.get_mut(&(tenant.clone(), task.to_string())) {
            t.check_at = at_ms;
        }
        Ok(())
    }

    pub async fn forget_task(&self, tenant: &TenantId, task: &TaskId) -> Result<(), LedgerError> {
        let mut s = self.lock();
        let key = (tenant.clone(), task.to_string());
        if s.tasks.get(&key).is_some_and(|t| t.mandates.is_empty()) {
            s.tasks.remove(&key);
        }
        Ok(())
    }
}
