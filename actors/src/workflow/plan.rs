//! A workflow plan: the DAG of agent tasks that makes up one piece of business work, as the planner (a
//! template or a planner agent) writes it and the API accepts it. Parsed once here ("parse, don't
//! validate" for shapes); the graph rules (acyclic, resolvable, within budget) are [`super::validate`]'s.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Longest step id, in bytes. Step ids become part of task ids and event fields, so they are short and
/// plain: letters, digits, `_` and `-`.
pub const MAX_STEP_ID: usize = 64;

/// The plan of a workflow, in the documented format (`docs/workflows.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Chosen by the caller or generated; a ULID-like string of `[A-Za-z0-9_-]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_id: Option<String>,
    /// Only a hint: the tenant is the caller's (see `docs/workflows.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// The most the workflow's steps may spend together, in cents; `None` is no workflow limit (the
    /// payment authority's own budgets still apply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_cents: Option<u64>,
    /// How long the whole workflow may run: a duration (`"2h"`, `"90s"`) from its start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
    pub steps: Vec<StepSpec>,
}

/// One step: an agent task that runs once all of `needs` have succeeded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    pub id: String,
    /// The agent (topic) that runs the step; exactly one of `agent` and `capability`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// What the step needs done; routing ([`super::route`]) picks the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capability: Option<String>,
    #[serde(default = "empty_object")]
    pub input: Value,
    #[serde(default)]
    pub needs: Vec<String>,
    /// The most this step may spend, in cents (counted toward the workflow's budget when validating).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_cents: Option<u64>,
    /// A failed optional step does not fail the workflow: its dependants run with its output `null`.
    #[serde(default)]
    pub optional: bool,
    /// The task that undoes this step's effects, run (in reverse order of completion) when the
    /// workflow fails or is cancelled after this step succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compensate: Option<Compensation>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compensation {
    pub agent: String,
    #[serde(default = "empty_object")]
    pub input: Value,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// Why a document is not a plan (its shape; the graph rules come later).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid plan: {0}")]
pub struct PlanFormatError(pub String);

impl Plan {
    /// Parse a plan from JSON, naming the field that is wrong.
    pub fn from_json(v: &Value) -> Result<Plan, PlanFormatError> {
        Plan::deserialize(v).map_err(|e| PlanFormatError(e.to_string()))
    }

    /// The `deadline` as a duration; `None` when the plan sets none.
    pub fn deadline(&self) -> Result<Option<std::time::Duration>, PlanFormatError> {
        self.deadline
            .as_deref()
            .map(|d| {
                humantime_serde::re::humantime::parse_duration(d)
                    .map_err(|e| PlanFormatError(format!("deadline `{d}` is not a duration such as \"2h\": {e}")))
            })
            .transpose()
    }
}

/// Whether `id` is a valid step or workflow id: 1..=[`MAX_STEP_ID`] of `[A-Za-z0-9_-]`.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_STEP_ID && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_documented_format_parses() {
        let p = Plan::from_json(&json!({
            "workflow_id": "w1", "business_id": "b1", "budget_cents": 1000, "deadline": "2h",
            "steps": [
                {"id": "idea", "agent": "genesis.idea.generate"},
                {"id": "spec", "capability": "spec", "input": {"x": 1}, "needs": ["idea"], "budget_cents": 500,
                 "optional": false, "compensate": {"agent": "genesis.support", "input": {}}}
            ]
        }))
        .expect("parses");
        assert_eq!(p.steps.len(), 2);
        assert_eq!(p.steps[0].input, json!({}));
        assert_eq!(p.deadline().expect("duration"), Some(std::time::Duration::from_secs(7200)));
    }

    #[test]
    fn unknown_fields_and_bad_deadlines_are_named() {
        let e = Plan::from_json(&json!({"steps": [{"id": "a", "agnet": "x"}]})).expect_err("typo");
        assert!(e.0.contains("agnet"), "{e}");
        let p = Plan::from_json(&json!({"deadline": "soon", "steps": []})).expect("shape is fine");
        assert!(p.deadline().expect_err("bad").0.contains("soon"));
    }

    #[test]
    fn ids_are_plain() {
        assert!(valid_id("frontend_2"));
        for bad in ["", "a b", "a{b}", "ü", &"x".repeat(65)] {
            assert!(!valid_id(bad), "{bad}");
        }
    }
}
