//! The reference payment policy: pure functions of an intent, the rules and a [`LedgerView`].
//!
//! Every intent passes every check, in this order, and the first failing check decides:
//!
//! 1. [`validate`] (edge): amount, vendor normalization, mandate, business, tenant, reason, known agent.
//! 2. [`check_ownership`] (the ledger, before it looks the mandate up): the business belongs to the
//!    intent's tenant, and so does the mandate id.
//! 3. [`evaluate`]: idempotency → fraud (suspicious pattern, velocity count, velocity sum, structuring,
//!    amount anomaly) → vendor whitelist → review threshold → budgets (the workflow's when the intent
//!    has one, agent/day, business, tenant/day) → approve.
//!
//! Being at or under the auto-approve threshold never skips a check. The production ledger runs the
//! stateful checks atomically in Redis Lua and must mirror the integer arithmetic here exactly: every
//! ratio/factor is first turned into integer hundredths with [`hundredths`], windows use
//! [`in_window`], and all sums are exact integers (u128 here; exact in Lua below 2^53).

use super::types::{
    code, parse_id, AmountCents, Decision, MandateId, Outcome, PaymentIntent, Rejection, ValidIntent, WorkflowBudget,
    MAX_REASON_LEN, MAX_WORKFLOW_BUDGET_CENTS,
};
use super::vendor::{normalize_for, Whitelist};
use std::collections::BTreeSet;

/// Fraud thresholds. Defaults are given per field.
#[derive(Debug, Clone, PartialEq)]
pub struct FraudRules {
    /// 60_000
    pub velocity_window_ms: u64,
    /// 30: at most this many intents per agent in the window, this one included.
    pub velocity_max_count: u32,
    /// 100_000: at most this many cents requested per agent in the window, this one included.
    pub velocity_max_sum_cents: u64,
    /// 3_600_000
    pub structuring_window_ms: u64,
    /// 0.8: an amount is near-threshold when `auto_approve × ratio ≤ amount < auto_approve`.
    pub structuring_near_ratio: f64,
    /// 3
    pub structuring_min_count: u32,
    /// 10.0
    pub anomaly_factor: f64,
    /// 5
    pub anomaly_min_samples: u32,
    /// 20
    pub anomaly_history: u32,
}

impl Default for FraudRules {
    fn default() -> Self {
        FraudRules {
            velocity_window_ms: 60_000,
            velocity_max_count: 30,
            velocity_max_sum_cents: 100_000,
            structuring_window_ms: 3_600_000,
            structuring_near_ratio: 0.8,
            structuring_min_count: 3,
            anomaly_factor: 10.0,
            anomaly_min_samples: 5,
            anomaly_history: 20,
        }
    }
}

/// Payment thresholds and fraud rules.
#[derive(Debug, Clone, PartialEq)]
pub struct PaymentRules {
    /// 20_000 ($200): larger amounts are refused at the edge (`over_hard_cap`). Not above any default
    /// budget, so every amount the cap lets through can be paid by an agent that has spent nothing yet.
    pub hard_cap_cents: u64,
    /// 1000 ($10): the structuring threshold; under it only means "no review needed".
    pub auto_approve_cents: u64,
    /// 10_000 ($100): larger amounts get `needs_review`. Below every default budget, so a reviewer's
    /// approval can fit (`genesis config check` refuses thresholds that would make it impossible).
    pub review_above_cents: u64,
    pub fraud: FraudRules,
    pub known_agents: BTreeSet<String>,
    /// Lowercase substrings; empty patterns are ignored.
    pub suspicious_patterns: Vec<String>,
}

impl Default for PaymentRules {
    fn default() -> Self {
        PaymentRules {
            hard_cap_cents: 20_000,
            auto_approve_cents: 1000,
            review_above_cents: 10_000,
            fraud: FraudRules::default(),
            known_agents: BTreeSet::new(),
            suspicious_patterns: Vec::new(),
        }
    }
}

/// Budgets in cents; "day" is the UTC day of the decision ([`utc_day`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub agent_daily_cents: u64,
    pub business_total_cents: u64,
    pub tenant_daily_cents: u64,
}

/// A decision stored for a mandate, with the fingerprint of the intent it decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMandate {
    pub fingerprint: String,
    pub decision: Decision,
}

/// What the ledger knows, as of `now_ms`, relevant to one intent. Lists may hold older entries; the
/// policy applies the windows itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerView {
    /// The decision previously stored for this mandate id, if any.
    pub existing: Option<StoredMandate>,
    /// `(at_ms, amount)` of this agent's earlier intents in this tenant that reached the fraud step (any
    /// outcome).
    pub agent_recent: Vec<(u64, u64)>,
    /// `(at_ms, amount)` of this business's earlier near-threshold intents to this vendor that reached
    /// the fraud step (any outcome).
    pub near_threshold_recent: Vec<(u64, u64)>,
    /// Approved amounts of this agent (in this tenant) to this vendor, newest first (only the first
    /// `anomaly_history` are used).
    pub approved_amounts_agent_vendor: Vec<u64>,
    /// Reserved + captured cents: this agent today in this tenant, this business ever, this tenant today.
    pub agent_day_used: u64,
    pub business_used: u64,
    pub tenant_day_used: u64,
    /// Reserved + captured cents of the intent's workflow (in this tenant); 0 for an intent without one.
    pub workflow_used: u64,
}

/// The result of [`evaluate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Same mandate, same fingerprint: reply with the stored decision, change nothing.
    Stored(Decision),
    /// Refused; nothing is reserved.
    Deny(Rejection),
    /// Needs a human (code `needs_review`); nothing is reserved yet.
    NeedsReview(Rejection),
    /// Approved: the caller reserves `amount` against all its budgets (the three, and the workflow's
    /// if it has one) atomically.
    Approve,
}

/// Turns a wire intent into a [`ValidIntent`], checking in this order: amount, vendor (may already be
/// `vendor_lookalike` for non-ASCII/punycode hosts), mandate, business, workflow id, reason, known
/// agent. (The tenant is already a [`crate::tenant::TenantId`].)
pub fn validate(raw: &PaymentIntent, rules: &PaymentRules, whitelist: &Whitelist) -> Result<ValidIntent, Rejection> {
    let amount = AmountCents::parse(raw.amount_cents, rules.hard_cap_cents)?;
    let vendor = normalize_for(&raw.vendor, whitelist)?;
    let mandate = MandateId::parse(&raw.mandate_id)?;
    let business_id = parse_id(&raw.business_id, code::INVALID_BUSINESS, "business_id")?;
    let workflow = match &raw.workflow {
        Some(w) => Some(WorkflowBudget {
            id: parse_id(&w.id, code::INVALID_WORKFLOW, "the workflow id")?,
            budget_cents: w.budget_cents.min(MAX_WORKFLOW_BUDGET_CENTS),
        }),
        None => None,
    };
    if raw.reason.chars().count() > MAX_REASON_LEN {
        return Err(Rejection::new(code::INVALID_REASON, format!("reason is longer than {MAX_REASON_LEN} characters")));
    }
    if !rules.known_agents.contains(&raw.agent_id) {
        let shown: String = raw.agent_id.chars().take(64).collect();
        return Err(Rejection::new(code::UNKNOWN_AGENT, format!("agent `{shown}` is not a known agent")));
    }
    Ok(ValidIntent {
        agent_id: raw.agent_id.clone(),
        vendor,
        amount,
        reason: raw.reason.clone(),
        mandate,
        business_id,
        tenant_id: raw.tenant_id.clone(),
        task_id: raw.task_id,
        workflow,
    })
}

/// Ownership, which the ledger checks before anything else: a business belongs to the first tenant that
/// asked to spend for it (any other gets `business_tenant_mismatch`), a mandate id to the first tenant
/// that used it (any other gets `mandate_conflict`). `None`: not bound yet (this intent binds it). The
/// reason does not name the owning tenant: one tenant learns nothing about another.
pub fn check_ownership(
    i: &ValidIntent,
    business_tenant: Option<&str>,
    mandate_tenant: Option<&str>,
) -> Result<(), Rejection> {
    let tenant = i.tenant_id.as_str();
    if business_tenant.is_some_and(|t| t != tenant) {
        return Err(Rejection::new(
            code::BUSINESS_TENANT_MISMATCH,
            format!(
                "business `{}` belongs to another tenant; a business belongs to the first tenant that spends \
                 for it: use a business id of tenant `{tenant}`",
                i.business_id
            ),
        ));
    }
    if mandate_tenant.is_some_and(|t| t != tenant) {
        return Err(mandate_conflict(i));
    }
    Ok(())
}

/// The refusal of a mandate id already used for another payment (or by another tenant).
pub fn mandate_conflict(i: &ValidIntent) -> Rejection {
    Rejection::new(
        code::MANDATE_CONFLICT,
        format!("mandate `{}` was already used for a different payment", i.mandate.as_str()),
    )
}

/// `agent|vendor|amount|business|tenant`, then `|task:<task id>` when a task asks, then
/// `|wf:<workflow id>:<budget>` when the intent counts toward a workflow's budget (amounts in decimal
/// cents; the reason is not part of it). Only the agent id may contain `|`, so the string is
/// unambiguous read from the right. The task is part of it so that one task cannot reuse another's
/// mandate id, even for the same payment, and the workflow so that a mandate decided under one budget
/// is not replayed under another; intents without them keep the fingerprint they always had.
pub fn fingerprint(i: &ValidIntent) -> String {
    let mut f = format!("{}|{}|{}|{}|{}", i.agent_id, i.vendor, i.amount.get(), i.business_id, i.tenant_id);
    if let Some(t) = i.task_id {
        f.push_str(&format!("|task:{t}"));
    }
    if let Some(w) = &i.workflow {
        f.push_str(&format!("|wf:{}:{}", w.id, w.budget_cents));
    }
    f
}

/// Runs every check in order; the first failure decides. Pure: the caller applies the result.
pub fn evaluate(
    i: &ValidIntent,
    rules: &PaymentRules,
    whitelist: &Whitelist,
    limits: &Limits,
    view: &LedgerView,
    now_ms: u64,
) -> Step {
    if let Some(stored) = &view.existing {
        return if stored.fingerprint == fingerprint(i) {
            Step::Stored(stored.decision.clone())
        } else {
            Step::Deny(mandate_conflict(i))
        };
    }
    let checks = check_suspicious(i, rules)
        .and_then(|()| check_velocity(i.amount.get(), &rules.fraud, &view.agent_recent, now_ms))
        .and_then(|()| check_structuring(i.amount.get(), rules, &view.near_threshold_recent, now_ms))
        .and_then(|()| check_anomaly(i.amount.get(), &rules.fraud, &view.approved_amounts_agent_vendor))
        .and_then(|()| whitelist.check(&i.vendor));
    if let Err(rejection) = checks {
        return Step::Deny(rejection);
    }
    let amount = i.amount.get();
    if amount > rules.review_above_cents {
        let above = rules.review_above_cents;
        return Step::NeedsReview(Rejection::new(
            code::NEEDS_REVIEW,
            format!("amount {amount} cents is above the review threshold of {above} cents"),
        ));
    }
    match check_workflow_budget(amount, i.workflow.as_ref(), view.workflow_used)
        .and_then(|()| check_budget(amount, limits, view))
    {
        Ok(()) => Step::Approve,
        Err(rejection) => Step::Deny(rejection),
    }
}

/// `suspicious_pattern` if a non-empty pattern is a substring of the Unicode-lowercased reason or of the
/// vendor host.
pub fn check_suspicious(i: &ValidIntent, rules: &PaymentRules) -> Result<(), Rejection> {
    let reason = i.reason.to_lowercase();
    let hit = rules
        .suspicious_patterns
        .iter()
        .filter(|p| !p.is_empty())
        .find(|p| reason.contains(p.as_str()) || i.vendor.as_str().contains(p.as_str()));
    match hit {
        Some(p) => Err(Rejection::new(code::SUSPICIOUS_PATTERN, format!("intent matches suspicious pattern `{p}`"))),
        None => Ok(()),
    }
}

/// An entry at `at_ms` is inside a window of `window_ms` ending at `now_ms` iff `at_ms + window_ms > now_ms`
/// (entries "from the future" count).
pub fn in_window(at_ms: u64, window_ms: u64, now_ms: u64) -> bool {
    u128::from(at_ms) + u128::from(window_ms) > u128::from(now_ms)
}

/// Count and sum (as u128) of the entries in the window.
fn window_totals(entries: &[(u64, u64)], window_ms: u64, now_ms: u64) -> (u64, u128) {
    entries
        .iter()
        .filter(|(at, _)| in_window(*at, window_ms, now_ms))
        .fold((0, 0), |(n, s), (_, a)| (n + 1, s + u128::from(*a)))
}

/// `velocity_count` if `in-window count + 1 > max_count`, else `velocity_sum` if
/// `in-window sum + amount > max_sum`.
pub fn check_velocity(amount: u64, fraud: &FraudRules, recent: &[(u64, u64)], now_ms: u64) -> Result<(), Rejection> {
    let window = fraud.velocity_window_ms;
    let (count, sum) = window_totals(recent, window, now_ms);
    let count = count + 1;
    if count > u64::from(fraud.velocity_max_count) {
        let max = fraud.velocity_max_count;
        return Err(Rejection::new(
            code::VELOCITY_COUNT,
            format!("{count} intents by this agent within {window} ms (max {max})"),
        ));
    }
    let sum = sum + u128::from(amount);
    if sum > u128::from(fraud.velocity_max_sum_cents) {
        let max = fraud.velocity_max_sum_cents;
        return Err(Rejection::new(
            code::VELOCITY_SUM,
            format!("{sum} cents requested by this agent within {window} ms (max {max})"),
        ));
    }
    Ok(())
}

/// `round(x × 100)` as an integer (negative or NaN → 0). Lua receives these integers, never the floats.
pub fn hundredths(x: f64) -> u64 {
    // `as` saturates and maps NaN to 0, which is the documented behaviour.
    (x * 100.0).round() as u64
}

/// Smallest near-threshold amount: `ceil(auto_approve × hundredths(ratio) / 100)`. An amount is
/// near-threshold iff `floor ≤ amount < auto_approve` (⇔ `amount × 100 ≥ auto_approve × pct`).
pub fn near_threshold_floor(rules: &PaymentRules) -> u64 {
    let product = u128::from(rules.auto_approve_cents) * u128::from(hundredths(rules.fraud.structuring_near_ratio));
    u64::try_from(product.div_ceil(100)).unwrap_or(u64::MAX)
}

pub fn is_near_threshold(amount: u64, rules: &PaymentRules) -> bool {
    amount >= near_threshold_floor(rules) && amount < rules.auto_approve_cents
}

/// For a near-threshold amount only: `structuring` iff `in-window count + 1 ≥ min_count` and
/// `in-window sum + amount > auto_approve`.
pub fn check_structuring(amount: u64, rules: &PaymentRules, near: &[(u64, u64)], now_ms: u64) -> Result<(), Rejection> {
    if !is_near_threshold(amount, rules) {
        return Ok(());
    }
    let window = rules.fraud.structuring_window_ms;
    let (count, sum) = window_totals(near, window, now_ms);
    let (count, sum) = (count + 1, sum + u128::from(amount));
    if count >= u64::from(rules.fraud.structuring_min_count) && sum > u128::from(rules.auto_approve_cents) {
        let auto = rules.auto_approve_cents;
        return Err(Rejection::new(
            code::STRUCTURING,
            format!("{count} near-threshold payments to this vendor within {window} ms sum to {sum} cents (> {auto})"),
        ));
    }
    Ok(())
}

/// Over the first `min(len, history)` samples, if there are ≥ `min_samples` (and ≥ 1):
/// `amount_anomaly` iff `amount × 200 > hundredths(factor) × med2`, where `med2` = 2 × median =
/// `2 × middle` (odd count) or the sum of the two middle values (even count), samples sorted ascending.
pub fn check_anomaly(amount: u64, fraud: &FraudRules, approved_newest_first: &[u64]) -> Result<(), Rejection> {
    let take = usize::try_from(fraud.anomaly_history).unwrap_or(usize::MAX);
    let mut samples: Vec<u64> = approved_newest_first.iter().take(take).copied().collect();
    let n = samples.len();
    if n == 0 || n < usize::try_from(fraud.anomaly_min_samples).unwrap_or(usize::MAX) {
        return Ok(());
    }
    samples.sort_unstable();
    let med2 = if n % 2 == 1 {
        2 * u128::from(samples[n / 2])
    } else {
        u128::from(samples[n / 2 - 1]) + u128::from(samples[n / 2])
    };
    if u128::from(amount) * 200 > u128::from(hundredths(fraud.anomaly_factor)) * med2 {
        // The factor applied (in hundredths), as the Redis ledger states it too.
        let factor = hundredths(fraud.anomaly_factor) as f64 / 100.0;
        return Err(Rejection::new(
            code::AMOUNT_ANOMALY,
            format!(
                "amount {amount} cents is more than {factor}× the median ({}) of recent payments to this vendor",
                med2 as f64 / 2.0
            ),
        ));
    }
    Ok(())
}

/// Budgets in order: agent/day (in the intent's tenant), business (total), tenant/day; `used + amount >
/// limit` refuses.
pub fn check_budget(amount: u64, limits: &Limits, view: &LedgerView) -> Result<(), Rejection> {
    let over = |used: u64, limit: u64| u128::from(used) + u128::from(amount) > u128::from(limit);
    let budgets = [
        (
            view.agent_day_used,
            limits.agent_daily_cents,
            code::OVER_AGENT_DAILY_BUDGET,
            "agent's daily (in this tenant)",
        ),
        (view.business_used, limits.business_total_cents, code::OVER_BUSINESS_BUDGET, "business's"),
        (view.tenant_day_used, limits.tenant_daily_cents, code::OVER_TENANT_DAILY_BUDGET, "tenant's daily"),
    ];
    match budgets.into_iter().find(|(used, limit, _, _)| over(*used, *limit)) {
        Some((used, limit, code, what)) => Err(Rejection::new(
            code,
            format!("{amount} cents would exceed the {what} budget ({used} of {limit} cents used)"),
        )),
        None => Ok(()),
    }
}

/// The workflow's budget, checked before the others (it is the narrowest, and its refusal is the one a
/// workflow stops on as `over_budget`): `used + amount > budget` refuses with `over_workflow_budget`.
/// No workflow: nothing to check. Worded as `decide.lua` words it.
pub fn check_workflow_budget(amount: u64, workflow: Option<&WorkflowBudget>, used: u64) -> Result<(), Rejection> {
    match workflow {
        Some(w) if u128::from(used) + u128::from(amount) > u128::from(w.budget_cents) => {
            Err(Rejection::new(code::OVER_WORKFLOW_BUDGET, workflow_reason(&w.id, used, w.budget_cents, amount)))
        }
        _ => Ok(()),
    }
}

/// The reason of an `over_workflow_budget` denial (the Redis ledger's script words it the same).
pub fn workflow_reason(id: &str, used: u64, limit: u64, amount: u64) -> String {
    format!("workflow {id} has {used} of {limit} cents reserved or spent; {amount} more is over its budget")
}

/// The decision to reply with (and to store for the mandate) for a step.
pub fn decision(i: &ValidIntent, step: &Step, now_ms: u64) -> Decision {
    match step {
        Step::Stored(d) => d.clone(),
        Step::Deny(r) => Decision::for_intent(i, Outcome::Denied, r.code, &r.reason, now_ms),
        Step::NeedsReview(r) => Decision::for_intent(i, Outcome::NeedsReview, r.code, &r.reason, now_ms),
        Step::Approve => Decision::for_intent(i, Outcome::Approved, code::APPROVED, "passed every check", now_ms),
    }
}

/// The UTC calendar day of a Unix timestamp in milliseconds, as `YYYY-MM-DD`.
pub fn utc_day(now_ms: u64) -> String {
    let (y, m, d) = civil_from_days(now_ms / 86_400_000);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Howard Hinnant's `civil_from_days` for days since 1970-01-01 (non-negative only).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
