//! The workflow events stream's schema (`docs/workflows.md`, "Events"): every workflow and step
//! transition, and `business.created` when a business workflow succeeds, as one flat JSON object per
//! stream entry, for consumers with their own consumer group (the Business Monitor, learning stores,
//! analytics). Delivery is at least once: `event_id` is unique per event, so a consumer deduplicates.

use serde::{Deserialize, Serialize};

/// Event type names (the `type` field).
pub mod kind {
    pub const WORKFLOW_STARTED: &str = "workflow.started";
    pub const WORKFLOW_COMPENSATING: &str = "workflow.compensating";
    pub const WORKFLOW_SUCCEEDED: &str = "workflow.succeeded";
    pub const WORKFLOW_FAILED: &str = "workflow.failed";
    pub const WORKFLOW_CANCELLED: &str = "workflow.cancelled";
    pub const WORKFLOW_RETRIED: &str = "workflow.retried";
    pub const STEP_STARTED: &str = "step.started";
    pub const STEP_SUCCEEDED: &str = "step.succeeded";
    pub const STEP_FAILED: &str = "step.failed";
    pub const STEP_CANCELLED: &str = "step.cancelled";
    pub const STEP_SKIPPED: &str = "step.skipped";
    pub const COMPENSATION_STARTED: &str = "compensation.started";
    pub const COMPENSATION_SUCCEEDED: &str = "compensation.succeeded";
    pub const COMPENSATION_FAILED: &str = "compensation.failed";
    pub const BUSINESS_CREATED: &str = "business.created";
}

/// One event. Fields that do not apply to a type are absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowEvent {
    /// `<workflow_id>:<n>`, n counting the workflow's events from 1.
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub workflow_id: String,
    pub tenant_id: String,
    pub business_id: String,
    pub correlation_id: String,
    /// The workflow's run (1, then +1 per retry).
    pub run: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// The workflow's status after the transition.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub at: u64,
}
