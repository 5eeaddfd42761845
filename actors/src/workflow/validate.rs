//! Plan validation (AOP): every rule a plan must satisfy before anything of it runs. Pure, so it is
//! property-tested on random plans; an invalid plan is refused with the step and the rule that broke.

use super::plan::{valid_id, Plan};
use super::route::{route, Fleet, RouteRule};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Size limits for a plan (`[workflows] max_steps`, `max_depth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub max_steps: usize,
    /// The longest chain of `needs`, counted in steps (a lone step is depth 1).
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_steps: 100, max_depth: 20 }
    }
}

/// The rule a plan broke (a stable code) and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{}{rule}: {message}", step.as_deref().map(|s| format!("step `{s}`: ")).unwrap_or_default())]
pub struct PlanError {
    pub step: Option<String>,
    pub rule: &'static str,
    pub message: String,
}

/// Stable rule codes.
pub mod rule {
    pub const EMPTY: &str = "empty";
    pub const TOO_MANY_STEPS: &str = "too_many_steps";
    pub const INVALID_ID: &str = "invalid_id";
    pub const DUPLICATE_ID: &str = "duplicate_id";
    pub const TARGET: &str = "agent_or_capability";
    pub const UNKNOWN_AGENT: &str = "unknown_agent";
    pub const UNROUTABLE: &str = "unroutable_capability";
    pub const UNKNOWN_NEED: &str = "unknown_need";
    pub const CYCLE: &str = "cycle";
    pub const TOO_DEEP: &str = "too_deep";
    pub const OVER_BUDGET: &str = "over_budget";
    pub const DEADLINE: &str = "deadline";
}

fn err(step: Option<&str>, rule: &'static str, message: impl Into<String>) -> PlanError {
    PlanError { step: step.map(str::to_string), rule, message: message.into() }
}

/// Check `plan` against every rule. `remaining_budget` is what the business may still spend (cents),
/// when known; the steps' budgets and the workflow's budget must fit in it.
pub fn validate(
    plan: &Plan,
    limits: &Limits,
    rules: &[RouteRule],
    fleet: &Fleet,
    remaining_budget: Option<u64>,
) -> Result<(), PlanError> {
    if plan.steps.is_empty() {
        return Err(err(None, rule::EMPTY, "a plan needs at least one step"));
    }
    if plan.steps.len() > limits.max_steps {
        return Err(err(
            None,
            rule::TOO_MANY_STEPS,
            format!("{} steps, more than workflows.max_steps = {}", plan.steps.len(), limits.max_steps),
        ));
    }
    if let Some(id) = &plan.workflow_id {
        if !valid_id(id) {
            return Err(err(None, rule::INVALID_ID, format!("workflow id `{id}` must be 1 to 64 of [A-Za-z0-9_-]")));
        }
    }
    plan.deadline().map_err(|e| err(None, rule::DEADLINE, e.0))?;
    let mut ids = BTreeSet::new();
    for s in &plan.steps {
        if !valid_id(&s.id) {
            return Err(err(Some(&s.id), rule::INVALID_ID, "a step id is 1 to 64 of [A-Za-z0-9_-]"));
        }
        if !ids.insert(s.id.as_str()) {
            return Err(err(Some(&s.id), rule::DUPLICATE_ID, "two steps have this id"));
        }
    }
    for s in &plan.steps {
        let at = Some(s.id.as_str());
        match (&s.agent, &s.capability) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(err(at, rule::TARGET, "a step names exactly one of `agent` and `capability`"))
            }
            (Some(a), None) if !fleet.has(a) => {
                return Err(err(at, rule::UNKNOWN_AGENT, format!("no agent `{a}` in the roster")))
            }
            (None, Some(_)) => {
                route(None, s.capability.as_deref(), rules, fleet)
                    .map_err(|e| err(at, rule::UNROUTABLE, e.to_string()))?;
            }
            _ => {}
        }
        if let Some(c) = &s.compensate {
            if !fleet.has(&c.agent) {
                return Err(err(
                    at,
                    rule::UNKNOWN_AGENT,
                    format!("compensation agent `{}` is not in the roster", c.agent),
                ));
            }
        }
        for n in &s.needs {
            if !ids.contains(n.as_str()) {
                return Err(err(at, rule::UNKNOWN_NEED, format!("needs `{n}`, which is not a step of this plan")));
            }
        }
    }
    let depth = depths(plan)?;
    if let Some((step, d)) = depth.iter().max_by_key(|(_, d)| **d) {
        if *d > limits.max_depth {
            return Err(err(
                Some(step),
                rule::TOO_DEEP,
                format!("a chain of {d} steps ends here, more than workflows.max_depth = {}", limits.max_depth),
            ));
        }
    }
    budget(plan, remaining_budget)
}

/// Depth of every step (longest chain of needs ending at it), or the cycle found (Kahn's algorithm:
/// the steps left over once no step without unmet needs remains are on or behind a cycle).
fn depths(plan: &Plan) -> Result<BTreeMap<&str, usize>, PlanError> {
    let mut unmet: BTreeMap<&str, usize> =
        plan.steps.iter().map(|s| (s.id.as_str(), s.needs.iter().collect::<BTreeSet<_>>().len())).collect();
    let mut depth: BTreeMap<&str, usize> = BTreeMap::new();
    let mut ready: Vec<&str> = unmet.iter().filter(|(_, n)| **n == 0).map(|(s, _)| *s).collect();
    while let Some(id) = ready.pop() {
        let d = plan
            .steps
            .iter()
            .find(|s| s.id == id)
            .map(|s| s.needs.iter().filter_map(|n| depth.get(n.as_str())).max().copied().unwrap_or(0) + 1)
            .unwrap_or(1);
        depth.insert(id, d);
        for s in plan.steps.iter().filter(|s| s.needs.iter().any(|n| n == id)) {
            if let Some(n) = unmet.get_mut(s.id.as_str()) {
                *n -= 1;
                if *n == 0 {
                    ready.push(s.id.as_str());
                }
            }
        }
    }
    match plan.steps.iter().find(|s| !depth.contains_key(s.id.as_str())) {
        Some(s) => Err(err(Some(&s.id), rule::CYCLE, "this step is on (or waits for) a cycle of needs")),
        None => Ok(depth),
    }
}

fn budget(plan: &Plan, remaining: Option<u64>) -> Result<(), PlanError> {
    let total: u64 = plan.steps.iter().filter_map(|s| s.budget_cents).fold(0u64, u64::saturating_add);
    if let Some(limit) = plan.budget_cents {
        if let Some(s) = plan.steps.iter().find(|s| s.budget_cents.is_some_and(|b| b > limit)) {
            return Err(err(
                Some(&s.id),
                rule::OVER_BUDGET,
                format!("its budget is above the workflow's {limit} cents"),
            ));
        }
        if total > limit {
            return Err(err(
                None,
                rule::OVER_BUDGET,
                format!("the steps' budgets add up to {total} cents, above the workflow's budget_cents = {limit}"),
            ));
        }
    }
    if let Some(left) = remaining {
        let wanted = plan.budget_cents.unwrap_or(total).max(total);
        if wanted > left {
            return Err(err(
                None,
                rule::OVER_BUDGET,
                format!("the plan may spend {wanted} cents; the business has {left} cents of budget left"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
