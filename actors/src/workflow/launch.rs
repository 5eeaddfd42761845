//! What a caller asks for when starting a workflow — a template and its input, or a whole plan — in one
//! shape shared by the CLI, `POST /v1/workflows` and a task published to `genesis.meta.orchestrate`.

use super::plan::Plan;
use super::template::{TemplateError, Templates};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A start request (`docs/workflows.md`, "Starting"). Exactly one of `template` and `plan`, unless a
/// planner agent writes the plan (`planner`, or `workflows.planner` when neither is given).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Launch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<Value>,
    /// The business request (a JSON object): a template's steps get it as `request`; a planner gets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_id: Option<String>,
    /// Overrides the template's budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_cents: Option<u64>,
    /// Overrides the template's deadline (a duration such as "2h").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
    /// Revenue the business is projected to make, for the spend summary's ROI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projected_revenue_cents: Option<u64>,
    /// The agent asked to write the plan (any executor; its answer is a plan, or `{"plan": …}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planner: Option<String>,
}

/// Why a start request is not usable (before any plan rule is checked).
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("invalid start request: {0}")]
    Shape(String),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("the start request names both `template` and `plan`; give one")]
    Both,
    #[error(
        "the start request names neither `template` nor `plan` (and no planner agent is configured: workflows.planner)"
    )]
    Neither,
}

impl Launch {
    pub fn from_json(v: &Value) -> Result<Launch, LaunchError> {
        Launch::deserialize(v).map_err(|e| LaunchError::Shape(e.to_string()))
    }

    /// Whether a planner agent must write the plan: no template and no plan given.
    pub fn needs_planner(&self) -> bool {
        self.template.is_none() && self.plan.is_none()
    }

    /// The plan this request starts, from its template or its own plan, with the request's overrides
    /// applied. A request that needs a planner is [`LaunchError::Neither`] here.
    pub fn plan(&self, templates: &Templates) -> Result<Plan, LaunchError> {
        let input = self.input.clone().unwrap_or_else(|| Value::Object(Default::default()));
        let mut plan = match (&self.template, &self.plan) {
            (Some(_), Some(_)) => return Err(LaunchError::Both),
            (None, None) => return Err(LaunchError::Neither),
            (Some(t), None) => templates.instantiate(t, &input)?,
            (None, Some(p)) => Plan::from_json(p).map_err(|e| LaunchError::Shape(e.0))?,
        };
        self.apply_overrides(&mut plan);
        Ok(plan)
    }

    /// The request's `budget_cents`, `deadline` and `business_id` take precedence over the plan's.
    pub fn apply_overrides(&self, plan: &mut Plan) {
        if self.budget_cents.is_some() {
            plan.budget_cents = self.budget_cents;
        }
        if self.deadline.is_some() {
            plan.deadline = self.deadline.clone();
        }
        if self.business_id.is_some() {
            plan.business_id = self.business_id.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::template::Template;
    use serde_json::json;
    use std::path::Path;

    fn templates() -> Templates {
        let t = Template::parse(
            "one",
            "budget_cents = 100\n[[steps]]\nid = \"a\"\nagent = \"genesis.a\"\n",
            Path::new("one.toml"),
        )
        .expect("template");
        Templates::from_list([t])
    }

    #[test]
    fn a_template_with_overrides_or_a_plan() {
        let l =
            Launch::from_json(&json!({"template": "one", "input": {"x": 1}, "budget_cents": 50, "business_id": "b"}))
                .expect("shape");
        let p = l.plan(&templates()).expect("plan");
        assert_eq!((p.budget_cents, p.business_id.as_deref()), (Some(50), Some("b")));
        assert_eq!(p.steps[0].input, json!({"request": {"x": 1}}));
        let l = Launch::from_json(&json!({"plan": {"steps": [{"id": "z", "agent": "genesis.a"}]}})).expect("shape");
        assert_eq!(l.plan(&templates()).expect("plan").steps[0].id, "z");
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        assert!(
            matches!(Launch::from_json(&json!({"templat": "one"})), Err(LaunchError::Shape(m)) if m.contains("templat"))
        );
        let both = Launch::from_json(&json!({"template": "one", "plan": {"steps": []}})).expect("shape");
        assert!(matches!(both.plan(&templates()), Err(LaunchError::Both)));
        let none = Launch::default();
        assert!(none.needs_planner());
        assert!(matches!(none.plan(&templates()), Err(LaunchError::Neither)));
        let unknown = Launch { template: Some("two".into()), ..Default::default() };
        assert!(unknown.plan(&templates()).expect_err("unknown").to_string().contains("known: one"));
    }
}
