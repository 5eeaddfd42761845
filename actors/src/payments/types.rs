//! Payment domain types, parsed once at the edge ("parse, don't validate").
//!
//! A raw [`PaymentIntent`] (as an agent sends it) becomes a [`ValidIntent`] through
//! [`super::policy::validate`]; everything after that trusts the types. Every refusal carries a
//! [`Rejection`]: a stable machine-readable code from [`code`] and a human-readable reason.

use crate::task::TaskId;
use crate::tenant::TenantId;
use serde::{Deserialize, Serialize};

/// The business an intent is for when its task names none (`business_id` in the task's payload).
pub const DEFAULT_BUSINESS: &str = "default";

/// Stable, machine-readable decision codes. Clients and dashboards match on these strings.
pub mod code {
    pub const INVALID_AMOUNT: &str = "invalid_amount";
    pub const OVER_HARD_CAP: &str = "over_hard_cap";
    pub const INVALID_VENDOR: &str = "invalid_vendor";
    pub const INVALID_MANDATE: &str = "invalid_mandate";
    pub const INVALID_BUSINESS: &str = "invalid_business";
    /// Not decided any more: a tenant is a [`crate::tenant::TenantId`], parsed before an intent exists.
    /// Kept so clients that match on it still compile.
    pub const INVALID_TENANT: &str = "invalid_tenant";
    pub const INVALID_REASON: &str = "invalid_reason";
    /// The intent's workflow id is not an id (`[A-Za-z0-9:._-]`, 1..=128).
    pub const INVALID_WORKFLOW: &str = "invalid_workflow";
    pub const UNKNOWN_AGENT: &str = "unknown_agent";
    pub const MANDATE_CONFLICT: &str = "mandate_conflict";
    /// The business is bound to another tenant (a business belongs to the first tenant that spends for it).
    pub const BUSINESS_TENANT_MISMATCH: &str = "business_tenant_mismatch";
    pub const VELOCITY_COUNT: &str = "velocity_count";
    pub const VELOCITY_SUM: &str = "velocity_sum";
    pub const STRUCTURING: &str = "structuring";
    pub const AMOUNT_ANOMALY: &str = "amount_anomaly";
    pub const SUSPICIOUS_PATTERN: &str = "suspicious_pattern";
    pub const VENDOR_NOT_WHITELISTED: &str = "vendor_not_whitelisted";
    pub const VENDOR_LOOKALIKE: &str = "vendor_lookalike";
    pub const OVER_AGENT_DAILY_BUDGET: &str = "over_agent_daily_budget";
    pub const OVER_BUSINESS_BUDGET: &str = "over_business_budget";
    /// The intent's task is a workflow step and the workflow's `budget_cents` would be exceeded.
    pub const OVER_WORKFLOW_BUDGET: &str = "over_workflow_budget";
    pub const OVER_TENANT_DAILY_BUDGET: &str = "over_tenant_daily_budget";
    pub const APPROVED: &str = "approved";
    pub const NEEDS_REVIEW: &str = "needs_review";
    pub const REVIEW_DENIED: &str = "review_denied";
    pub const REVIEW_OVER_BUDGET: &str = "review_over_budget";
}

/// Codes that signal possible fraud or abuse (alerting, not just a limit being reached).
pub fn is_fraud_code(c: &str) -> bool {
    matches!(
        c,
        code::VELOCITY_COUNT
            | code::VELOCITY_SUM
            | code::STRUCTURING
            | code::AMOUNT_ANOMALY
            | code::SUSPICIOUS_PATTERN
            | code::VENDOR_LOOKALIKE
            | code::UNKNOWN_AGENT
            | code::MANDATE_CONFLICT
    )
}

/// Why an intent was refused (or sent to review): a stable code and a human-readable reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {reason}")]
pub struct Rejection {
    pub code: &'static str,
    pub reason: String,
}

impl Rejection {
    pub fn new(code: &'static str, reason: impl Into<String>) -> Self {
        Rejection { code, reason: reason.into() }
    }
}

/// A positive amount in cents, at most the configured hard cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct AmountCents(u64);

impl AmountCents {
    /// `> 0` else `invalid_amount`; `≤ hard_cap` else `over_hard_cap`.
    pub fn parse(raw: i64, hard_cap: u64) -> Result<Self, Rejection> {
        if raw <= 0 {
            return Err(Rejection::new(code::INVALID_AMOUNT, format!("amount must be positive, got {raw} cents")));
        }
        let cents = raw.unsigned_abs();
        if cents > hard_cap {
            return Err(Rejection::new(
                code::OVER_HARD_CAP,
                format!("amount {cents} cents is above the hard cap of {hard_cap} cents"),
            ));
        }
        Ok(AmountCents(cents))
    }

    pub fn get(self) -> u64 {
        self.0
    }
}

/// A normalized vendor host name (lowercase ASCII, ≥ 2 labels, no port/path). Built only by
/// [`super::vendor::normalize`] and friends.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct VendorHost(String);

impl VendorHost {
    /// Wraps a string the caller has already normalized (vendor.rs only).
    pub(super) fn from_normalized(host: String) -> Self {
        VendorHost(host)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for VendorHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Longest mandate id and business id, in characters (tenant ids: [`crate::tenant::MAX_TENANT_LEN`]).
pub const MAX_ID_LEN: usize = 128;
/// Longest free-text reason, in characters.
pub const MAX_REASON_LEN: usize = 1000;

/// True for 1..=128 characters of `[A-Za-z0-9:._-]` (safe inside Redis keys: no `{`, `}` or spaces).
pub fn is_valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_LEN
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'.' | b'_' | b'-'))
}

/// Parses an id field (`[A-Za-z0-9:._-]`, 1..=128), refusing with `code` and naming `what`.
pub fn parse_id(raw: &str, code: &'static str, what: &str) -> Result<String, Rejection> {
    if is_valid_id(raw) {
        Ok(raw.to_owned())
    } else {
        Err(Rejection::new(code, format!("{what} must be 1..={MAX_ID_LEN} characters of [A-Za-z0-9:._-]")))
    }
}

/// The idempotency key of a payment: 1..=128 characters of `[A-Za-z0-9:._-]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct MandateId(String);

impl MandateId {
    pub fn parse(raw: &str) -> Result<Self, Rejection> {
        parse_id(raw, code::INVALID_MANDATE, "mandate_id").map(MandateId)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The workflow an intent's money counts toward, and that workflow's budget (docs/semantics.md, Money
/// 14): set when the asking task is a workflow step whose envelope carries a budget. Every intent with
/// the same workflow id (in one tenant) shares one usage; each decision checks it against the limit
/// its own intent carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WorkflowBudget {
    /// The workflow id; in a [`ValidIntent`] a valid id ([`is_valid_id`]).
    pub id: String,
    pub budget_cents: u64,
}

/// The largest workflow budget that means what it says: the Redis scripts compute in Lua numbers
/// (doubles, exact to 2^53), so validation takes any larger budget as this one (more than anyone spends).
pub const MAX_WORKFLOW_BUDGET_CENTS: u64 = 1 << 53;

/// A payment intent exactly as an agent submits it. Nothing here is trusted yet, except the tenant:
/// it is the tenant of the task asking (or of the CLI's `--tenant`), parsed where it entered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentIntent {
    pub agent_id: String,
    pub vendor: String,
    pub amount_cents: i64,
    #[serde(default)]
    pub reason: String,
    pub mandate_id: String,
    pub business_id: String,
    pub tenant_id: TenantId,
    /// The task the money is for, when a task asks (the simulated executor, or an outside agent with
    /// its task's payment token). Its reservations are then settled with the task: captured when it
    /// succeeds, released when it dies (docs/semantics.md, Money 12). `None` for `genesis payments
    /// intent`: such a reservation is captured or released by hand, or expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<TaskId>,
    /// The workflow whose budget the money counts toward, when the task is a workflow step with a
    /// budget (from its envelope, or an outside agent's token); `None`: no workflow budget applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<WorkflowBudget>,
}

/// A payment intent that passed input validation: every field is well-formed and the agent is known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidIntent {
    pub agent_id: String,
    pub vendor: VendorHost,
    pub amount: AmountCents,
    pub reason: String,
    pub mandate: MandateId,
    pub business_id: String,
    pub tenant_id: TenantId,
    pub task_id: Option<TaskId>,
    pub workflow: Option<WorkflowBudget>,
}

/// The three possible outcomes of a payment decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Approved,
    Denied,
    NeedsReview,
}

impl Outcome {
    /// The wire name (`approved`, `denied`, `needs_review`), as serde writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Approved => "approved",
            Outcome::Denied => "denied",
            Outcome::NeedsReview => "needs_review",
        }
    }
}

/// The decision returned to the agent and stored per mandate (for idempotent replies).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub outcome: Outcome,
    pub code: String,
    pub reason: String,
    pub mandate_id: String,
    pub agent_id: String,
    pub vendor: String,
    pub amount_cents: u64,
    pub business_id: String,
    pub tenant_id: String,
    pub decided_at_ms: u64,
}

impl Decision {
    /// A decision about a validated intent.
    pub fn for_intent(i: &ValidIntent, outcome: Outcome, code: &str, reason: &str, now_ms: u64) -> Self {
        Decision {
            outcome,
            code: code.to_owned(),
            reason: reason.to_owned(),
            mandate_id: i.mandate.as_str().to_owned(),
            agent_id: i.agent_id.clone(),
            vendor: i.vendor.as_str().to_owned(),
            amount_cents: i.amount.get(),
            business_id: i.business_id.clone(),
            tenant_id: i.tenant_id.to_string(),
            decided_at_ms: now_ms,
        }
    }

    /// The denial of an intent that failed input validation: its fields are echoed as received
    /// (a negative amount is echoed as 0). Such decisions are never stored for idempotency.
    pub fn rejected_input(raw: &PaymentIntent, rejection: &Rejection, now_ms: u64) -> Self {
        Decision {
            outcome: Outcome::Denied,
            code: rejection.code.to_owned(),
            reason: rejection.reason.clone(),
            mandate_id: raw.mandate_id.clone(),
            agent_id: raw.agent_id.clone(),
            vendor: raw.vendor.clone(),
            amount_cents: u64::try_from(raw.amount_cents).unwrap_or(0),
            business_id: raw.business_id.clone(),
            tenant_id: raw.tenant_id.to_string(),
            decided_at_ms: now_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amount_parsing() {
        assert_eq!(AmountCents::parse(0, 100).map_err(|r| r.code), Err(code::INVALID_AMOUNT));
        assert_eq!(AmountCents::parse(-5, 100).map_err(|r| r.code), Err(code::INVALID_AMOUNT));
        assert_eq!(AmountCents::parse(i64::MIN, 100).map_err(|r| r.code), Err(code::INVALID_AMOUNT));
        assert_eq!(AmountCents::parse(101, 100).map_err(|r| r.code), Err(code::OVER_HARD_CAP));
        assert_eq!(AmountCents::parse(100, 100).map(AmountCents::get), Ok(100));
        assert_eq!(AmountCents::parse(1, 100).map(AmountCents::get), Ok(1));
    }

    #[test]
    fn mandate_ids() {
        assert!(MandateId::parse("m-1:a.b_c").is_ok());
        assert!(MandateId::parse(&"a".repeat(128)).is_ok());
        for bad in ["", "a b", "a{b}", "é", &"a".repeat(129)] {
            assert_eq!(MandateId::parse(bad).map_err(|r| r.code), Err(code::INVALID_MANDATE), "{bad}");
        }
    }

    #[test]
    fn outcome_and_decision_serde() {
        let json = serde_json::to_string(&[Outcome::Approved, Outcome::Denied, Outcome::NeedsReview]).ok();
        assert_eq!(json.as_deref(), Some(r#"["approved","denied","needs_review"]"#));
        let raw = PaymentIntent {
            agent_id: "a".into(),
            vendor: "x".into(),
            amount_cents: -3,
            reason: String::new(),
            mandate_id: "m".into(),
            business_id: "b".into(),
            tenant_id: TenantId::default(),
            task_id: None,
            workflow: None,
        };
        let d = Decision::rejected_input(&raw, &Rejection::new(code::INVALID_AMOUNT, "neg"), 7);
        let back: Option<Decision> = serde_json::to_string(&d).ok().and_then(|s| serde_json::from_str(&s).ok());
        assert_eq!(back, Some(d.clone()));
        assert_eq!(d.amount_cents, 0);
    }

    #[test]
    fn fraud_codes() {
        assert!(is_fraud_code(code::STRUCTURING) && is_fraud_code(code::VENDOR_LOOKALIKE));
        assert!(!is_fraud_code(code::VENDOR_NOT_WHITELISTED) && !is_fraud_code(code::OVER_BUSINESS_BUDGET));
    }
}
