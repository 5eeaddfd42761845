//! Redis key names of workflows. Every one carries the single hash tag `{wf}`, so each script over a
//! workflow's document and the indexes it moves in is in one hash slot (Redis Cluster); see the
//! module doc of [`super`] for the trade-off.

use crate::tenant::TenantId;
use crate::workflow::state::WorkflowStatus;

pub const TAG: &str = "{wf}";

/// A workflow's document: a hash of `doc` (the JSON state), `version`, `status`.
pub fn doc(id: &str) -> String {
    format!("genesis:{TAG}:wf:{id}")
}

/// Every workflow, scored by `created_at`.
pub fn all() -> String {
    format!("genesis:{TAG}:all")
}

/// Workflows that have not ended, scored by `created_at`: the sweeper's work list.
pub fn open() -> String {
    format!("genesis:{TAG}:open")
}

/// Ended workflows, scored by when their document expires; members `<id>:<tenant>` (a workflow id
/// has no `:`), so pruning knows which tenant index to leave.
pub fn expiring() -> String {
    format!("genesis:{TAG}:expiring")
}

pub fn status(s: WorkflowStatus) -> String {
    format!("genesis:{TAG}:status:{}", s.as_str())
}

pub fn tenant(t: &TenantId) -> String {
    format!("genesis:{TAG}:tenant:{t}")
}

/// The drive lease of a workflow: which driver carries out its outbox now (a token, expiring).
pub fn lease(id: &str) -> String {
    format!("genesis:{TAG}:lease:{id}")
}

/// The events stream.
pub fn events() -> String {
    format!("genesis:{TAG}:events")
}

/// Member of [`expiring`] for a workflow.
pub fn expiring_member(id: &str, tenant: &TenantId) -> String {
    format!("{id}:{tenant}")
}

/// The KEYS every script over one workflow takes, in this order: its document, the all, open and
/// expiring indexes, its tenant's index, then one index per status in [`WorkflowStatus::ALL`] order.
pub fn script_keys(id: &str, tenant: &TenantId) -> Vec<String> {
    let mut k = vec![doc(id), all(), open(), expiring(), tenant_key(tenant)];
    k.extend(WorkflowStatus::ALL.iter().map(|s| status(*s)));
    k
}

fn tenant_key(t: &TenantId) -> String {
    tenant(t)
}

/// 1-based position of a status in [`WorkflowStatus::ALL`], as the scripts index its key.
pub fn status_index(s: WorkflowStatus) -> usize {
    WorkflowStatus::ALL.iter().position(|x| *x == s).map(|i| i + 1).unwrap_or(1)
}
