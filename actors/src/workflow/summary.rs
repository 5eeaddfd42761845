//! The spend summary of an ended workflow (issue 11, "Spend summary"): total, by agent and by vendor,
//! approvals and denials, ROI when the projected revenue is known, and the dashboard link — the
//! payment authority's summary of the workflow's business ([`crate::payments::authority::Summary`]),
//! posted to `payments.dashboard_webhook` through the authority's notifier (the same queue and
//! retries as every other dashboard post). Without payments there is no ledger to summarise: nothing
//! is posted. A failure is logged, never retried by the workflow (the effect is done either way: a
//! summary is a report, not a step).

use super::engine::Workflows;
use super::state::Workflow;

/// Post the summary of `wf`'s business, recording the projected revenue first so the ROI can be
/// computed.
pub async fn post(workflows: &Workflows, wf: &Workflow) {
    let Some(authority) = &workflows.payments else {
        tracing::debug!(workflow = %wf.id, "workflow ended; no payments configured, so no spend summary");
        return;
    };
    if let Some(cents) = wf.projected_revenue_cents {
        if let Err(e) = authority.ledger().set_projected_revenue(&wf.business_id, cents).await {
            tracing::warn!(workflow = %wf.id, business = %wf.business_id, error = %e, "cannot record the projected revenue for the spend summary");
        }
    }
    match authority.post_summary(&wf.business_id).await {
        Ok(s) => tracing::info!(
            workflow = %wf.id,
            business = %wf.business_id,
            status = wf.status.as_str(),
            spent_cents = s.spent_cents,
            approvals = s.approvals,
            denials = s.denials,
            "workflow ended; spend summary posted"
        ),
        Err(e) => {
            tracing::warn!(workflow = %wf.id, business = %wf.business_id, error = %e, "cannot build the spend summary")
        }
    }
}
