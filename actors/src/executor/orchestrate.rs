//! The `orchestrate` executor of `genesis.meta.orchestrate`: a task's payload is a workflow start
//! request ([`Launch`]); the plan comes from a template, from the payload, or from a planner agent
//! (HTDAG by any executor — e.g. an LLM behind A2A — whose answer is a plan); the workflow engine
//! validates, routes and starts it. The task's result names the workflow; the workflow then runs on
//! its own (the task does not wait for it).
//!
//! The workflow id is derived from the task id (`wf-<task id>`), so a re-run of the task (a crash
//! after the start, before the ack) finds the workflow it started instead of starting a second one.

use super::{ExecError, Executor, TaskContext};
use crate::workflow::engine::{StartRequest, Workflows};
use crate::workflow::launch::Launch;
use crate::workflow::plan::Plan;
use crate::workflow::template::Templates;
use futures::future::BoxFuture;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

pub const NAME: &str = "orchestrate";

pub struct Orchestrate {
    workflows: Workflows,
    templates: Arc<Templates>,
    /// Agents that may write plans, with their executors (the ones the node built for them).
    planners: BTreeMap<String, Arc<dyn Executor>>,
    /// `workflows.planner`: asked when a request names neither a template nor a plan.
    default_planner: Option<String>,
}

impl Orchestrate {
    pub fn new(
        workflows: Workflows,
        templates: Arc<Templates>,
        planners: BTreeMap<String, Arc<dyn Executor>>,
        default_planner: Option<String>,
    ) -> Orchestrate {
        Orchestrate { workflows, templates, planners, default_planner }
    }

    /// Ask the planner agent for a plan: it gets the request (as `input`), the roster's agents and the template
    /// names, and answers a plan (or `{"plan": …}`).
    async fn ask_planner(&self, ctx: &TaskContext, launch: &Launch) -> Result<Plan, ExecError> {
        let name = launch.planner.clone().or_else(|| self.default_planner.clone()).ok_or_else(|| {
            ExecError::Fatal(
                "the request names neither `template` nor `plan`, and no planner agent is configured (workflows.planner)"
                    .into(),
            )
        })?;
        let planner = self
            .planners
            .get(&name)
            .ok_or_else(|| ExecError::Fatal(format!("planner `{name}` is not an agent of this node's roster")))?;
        let request = json!({
            "input": launch.input.clone().unwrap_or_else(|| json!({})),
            "agents": self.workflows.agent_names(),
            "templates": self.templates.names(),
            "format": "a plan as in docs/workflows.md: {\"steps\": [{\"id\", \"agent\" | \"capability\", \"input\", \"needs\"}]}",
        });
        let mut pctx = ctx.clone();
        pctx.agent = name.clone();
        // Its own failures are this task's: a retryable planner failure retries the orchestrate task.
        let answer = planner.execute(&pctx, &request).await?;
        let doc = answer.get("plan").cloned().unwrap_or(answer);
        let mut plan = Plan::from_json(&doc).map_err(|e| {
            ExecError::Fatal(format!("planner `{name}` answered something that is not a plan: {}", e.0))
        })?;
        launch.apply_overrides(&mut plan);
        Ok(plan)
    }
}

/// The id of the workflow an orchestrate task starts.
pub fn workflow_id_of(task_id: &crate::task::TaskId) -> String {
    format!("wf-{task_id}")
}

impl Executor for Orchestrate {
    fn execute<'a>(&'a self, ctx: &'a TaskContext, payload: &'a Value) -> BoxFuture<'a, Result<Value, ExecError>> {
        Box::pin(async move {
            let launch = Launch::from_json(payload).map_err(|e| ExecError::Fatal(e.to_string()))?;
            let plan = if launch.needs_planner() {
                self.ask_planner(ctx, &launch).await?
            } else {
                launch.plan(&self.templates).map_err(|e| ExecError::Fatal(e.to_string()))?
            };
            let req = StartRequest {
                tenant: ctx.tenant_id.clone(),
                business: launch.business_id.clone(),
                correlation: launch.correlation_id.clone().or_else(|| Some(ctx.correlation_id.clone())),
                template: launch.template.clone(),
                projected_revenue: launch.projected_revenue_cents,
                workflow_id: Some(launch.workflow_id.clone().unwrap_or_else(|| workflow_id_of(&ctx.task_id))),
                remaining_budget_cents: None,
            };
            match self.workflows.start(plan, req).await {
                Ok(s) => Ok(json!({
                    "workflow_id": s.workflow.id,
                    "status": s.workflow.status.as_str(),
                    "steps": s.workflow.steps.len(),
                    "business_id": s.workflow.business_id,
                    "existed": s.existed,
                })),
                // A plan that breaks a rule will break it again: dead at once, with the step and rule.
                Err(e) if e.http_status() < 500 => Err(ExecError::Fatal(e.to_string())),
                Err(e) => Err(ExecError::Retryable(e.to_string())),
            }
        })
    }
}
