//! The task a `Publish` effect puts on the bus, built from the workflow's state alone (so any node
//! builds the same one, and a re-driven publish is the same task): the step's agent topic, the derived
//! task id, the workflow's tenant, correlation and business ids in the envelope itself, and a payload
//! with the step's input and the outputs of the steps it needs (`docs/workflows.md`, "Steps").
//!
//! Before it is published, [`check`] decodes it as its agent will (`bus.max_payload_bytes`, the JSON
//! parser's depth): an agent dead-letters an entry it cannot decode *without* its envelope, so the
//! workflow would never hear of it and the step would wait for ever. A task that would not decode is
//! not published; the step gets the [`Refusal`]'s dead outcome instead, like any other failure.

use super::machine::TaskOutcome;
use super::state::{TaskKind, Workflow, WorkflowRef};
use crate::task::{DecodeError, TaskEnvelope, TaskId, TopicName};
use serde_json::{json, Map, Value};

/// Why an effect's envelope cannot be built (a state no transition makes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("workflow {workflow}: {problem}")]
pub struct Unbuildable {
    pub workflow: String,
    pub problem: String,
}

/// The reason codes of a step whose task was not published (its dead outcome's `reason`).
pub mod refusal {
    /// Over `bus.max_payload_bytes`: every agent would dead-letter it undecoded.
    pub const PAYLOAD_TOO_LARGE: &str = "payload_too_large";
    /// It would not decode at its agent for another reason (nested deeper than the parser allows):
    /// the reason its agent would have dead-lettered it with.
    pub const DECODE_ERROR: &str = crate::policy::outcome::reason::DECODE;
    /// Its agent has no topic, or the state names a step it does not have.
    pub const UNPUBLISHABLE: &str = "unpublishable";
}

/// Why a step's task is not published. The step ends dead with [`Refusal::outcome`] instead, so the
/// workflow fails (or goes on, if the step is optional) and compensates as after any failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "its task is {size} bytes (the step's input and the outputs of the steps it needs), over the limit of \
         {limit} bytes (bus.max_payload_bytes), so it was not published: make the steps it needs return less \
         (pass large results by reference), or raise bus.max_payload_bytes on every node"
    )]
    TooLarge { size: usize, limit: usize },
    #[error("its task would not decode at its agent ({0}), so it was not published")]
    Undecodable(String),
    #[error("its task cannot be published: {0}")]
    Unpublishable(String),
}

impl Refusal {
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::TooLarge { .. } => refusal::PAYLOAD_TOO_LARGE,
            Refusal::Undecodable(_) => refusal::DECODE_ERROR,
            Refusal::Unpublishable(_) => refusal::UNPUBLISHABLE,
        }
    }

    /// The dead outcome the step gets instead of a task (no attempt was made).
    pub fn outcome(&self) -> TaskOutcome {
        TaskOutcome::Dead { reason: self.reason().to_string(), error: self.to_string(), attempts: 0 }
    }
}

impl From<Unbuildable> for Refusal {
    fn from(e: Unbuildable) -> Refusal {
        Refusal::Unpublishable(e.to_string())
    }
}

/// Decode `env` as its agent will (`crate::agent` decodes every entry with `bus.max_payload_bytes`):
/// `Ok` when the agent will run it, else why it would dead-letter it undecoded.
pub fn check(env: &TaskEnvelope, max_payload_bytes: usize) -> Result<(), Refusal> {
    match TaskEnvelope::decode(&env.to_json(), max_payload_bytes) {
        Ok(_) => Ok(()),
        Err(DecodeError::TooLarge { size, limit }) => Err(Refusal::TooLarge { size, limit }),
        Err(e) => Err(Refusal::Undecodable(e.to_string())),
    }
}

/// The `workflow` object of a payload.
fn context(wf: &Workflow, step: &str, run: u32) -> Value {
    json!({
        "id": wf.id,
        "business_id": wf.business_id,
        "tenant_id": wf.tenant_id.as_str(),
        "step": step,
        "run": run,
    })
}

/// The envelope of the task of `step` (or of its compensation), to be published to `topic` (the
/// agent's topic). `now` is its `created_at`.
pub fn build(
    wf: &Workflow,
    kind: TaskKind,
    step: &str,
    task_id: TaskId,
    topic: TopicName,
    now: u64,
) -> Result<TaskEnvelope, Unbuildable> {
    let missing =
        |what: &str| Unbuildable { workflow: wf.id.clone(), problem: format!("{what} `{step}` is not in it") };
    let s = wf.step(step).ok_or_else(|| missing("step"))?;
    let (payload, run, budget) = match kind {
        TaskKind::Step => {
            let needs: Map<String, Value> = s
                .needs
                .iter()
                .map(|n| (n.clone(), wf.step(n).and_then(|d| d.output.clone()).unwrap_or(Value::Null)))
                .collect();
            let payload = json!({
                "input": s.input,
                "needs": needs,
                "workflow": context(wf, step, s.run),
                "business_id": wf.business_id,
            });
            // The ledger keeps one usage per workflow, checked against this limit: the workflow's budget
            // (a step's own budget is checked when the plan is validated, not per payment).
            (payload, s.run, wf.budget_cents)
        }
        TaskKind::Compensate => {
            let c = wf
                .compensations
                .as_deref()
                .unwrap_or_default()
                .iter()
                .find(|c| c.step == step)
                .ok_or_else(|| missing("compensation of step"))?;
            let payload = json!({
                "input": c.input,
                "compensating": {"step": step, "output": s.output.clone().unwrap_or(Value::Null)},
                "workflow": context(wf, step, wf.run),
                "business_id": wf.business_id,
            });
            (payload, wf.run, wf.budget_cents)
        }
    };
    let mut env = TaskEnvelope::new(topic, wf.tenant_id.clone(), payload);
    env.task_id = task_id;
    env.correlation_id = wf.correlation_id.clone();
    env.created_at = now;
    env.business_id = Some(wf.business_id.clone());
    env.workflow = Some(WorkflowRef { id: wf.id.clone(), step: step.to_string(), run, kind, budget_cents: budget });
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::machine::{apply, create, Input, Start, TaskOutcome};
    use crate::workflow::plan::Plan;
    use crate::workflow::route::Route;
    use crate::workflow::state::Effect;

    fn started() -> Workflow {
        let plan = Plan::from_json(&json!({
            "budget_cents": 900,
            "steps": [
                {"id": "idea", "agent": "a", "input": {"topic": "tea"}, "compensate": {"agent": "undo", "input": {"why": 1}}},
                {"id": "spec", "agent": "b", "needs": ["idea"], "budget_cents": 300}
            ]
        }))
        .expect("plan");
        let routes =
            plan.steps.iter().map(|s| Route { agent: s.agent.clone().unwrap_or_default(), reason: "r".into() });
        let start = Start {
            id: "w1".into(),
            tenant_id: crate::tenant::TenantId::parse("acme").expect("tenant"),
            business_id: "biz".into(),
            correlation_id: "corr".into(),
            template: None,
            projected_revenue_cents: None,
            now: 10,
        };
        create(&plan, routes.collect(), start)
    }

    fn publish_of(wf: &Workflow, step: &str) -> (TaskKind, TaskId) {
        wf.outbox
            .iter()
            .find_map(|e| match e {
                Effect::Publish { kind, step: s, task_id } if s == step => Some((*kind, *task_id)),
                _ => None,
            })
            .expect("published")
    }

    #[test]
    fn a_step_carries_its_needs_outputs_and_the_workflow_context() {
        let mut wf = started();
        let (_, idea) = publish_of(&wf, "idea");
        let out = Input::TaskEnded {
            task_id: idea,
            outcome: TaskOutcome::Succeeded { output: json!({"name": "Teapot"}), attempts: 1 },
        };
        apply(&mut wf, out, 20).expect("applies");
        let (kind, id) = publish_of(&wf, "spec");
        let env = build(&wf, kind, "spec", id, "b".parse().expect("topic"), 30).expect("builds");
        assert_eq!((env.task_id, env.correlation_id.as_str(), env.tenant_id.as_str()), (id, "corr", "acme"));
        assert_eq!(env.business_id.as_deref(), Some("biz"));
        assert_eq!(env.payload["needs"], json!({"idea": {"name": "Teapot"}}));
        assert_eq!(
            env.payload["workflow"],
            json!({"id": "w1", "business_id": "biz", "tenant_id": "acme", "step": "spec", "run": 1})
        );
        let r = env.workflow.expect("workflow ref");
        assert_eq!(
            (r.step.as_str(), r.run, r.kind, r.budget_cents),
            ("spec", 1, TaskKind::Step, Some(900)),
            "the workflow's budget, shared by its steps"
        );
        let first = build(&wf, TaskKind::Step, "idea", idea, "a".parse().expect("topic"), 30).expect("builds");
        assert_eq!(first.workflow.and_then(|r| r.budget_cents), Some(900), "the workflow's");
        assert_eq!(first.payload["input"], json!({"topic": "tea"}));
    }

    #[test]
    fn a_compensation_names_what_it_undoes() {
        let mut wf = started();
        let (_, idea) = publish_of(&wf, "idea");
        let out = Input::TaskEnded { task_id: idea, outcome: TaskOutcome::Succeeded { output: json!(7), attempts: 1 } };
        apply(&mut wf, out, 20).expect("applies");
        let (_, spec) = publish_of(&wf, "spec");
        let dead = TaskOutcome::Dead { reason: "fatal_error".into(), error: "no".into(), attempts: 1 };
        apply(&mut wf, Input::TaskEnded { task_id: spec, outcome: dead }, 30).expect("applies");
        let (kind, id) = publish_of(&wf, "idea");
        let comp = wf.outbox.iter().rev().find_map(|e| match e {
            Effect::Publish { kind: TaskKind::Compensate, task_id, .. } => Some(*task_id),
            _ => None,
        });
        assert_eq!(kind, TaskKind::Step);
        let comp = comp.expect("a compensation is published");
        assert_ne!(comp, id);
        let env = build(&wf, TaskKind::Compensate, "idea", comp, "undo".parse().expect("topic"), 40).expect("builds");
        assert_eq!(env.payload["compensating"], json!({"step": "idea", "output": 7}));
        assert_eq!(env.payload["input"], json!({"why": 1}));
        assert_eq!(env.workflow.map(|r| r.kind), Some(TaskKind::Compensate));
    }

    #[test]
    fn a_task_its_agent_could_not_decode_is_refused_with_the_limit_named() {
        let wf = started();
        let (_, idea) = publish_of(&wf, "idea");
        let env = build(&wf, TaskKind::Step, "idea", idea, "a".parse().expect("topic"), 30).expect("builds");
        let size = env.to_json().len();
        assert_eq!(check(&env, size), Ok(()), "exactly at the limit is fine");
        let refused = check(&env, size - 1).expect_err("one byte over");
        assert_eq!(refused, Refusal::TooLarge { size, limit: size - 1 });
        let TaskOutcome::Dead { reason, error, attempts } = refused.outcome() else { panic!("dead") };
        assert_eq!((reason.as_str(), attempts), ("payload_too_large", 0));
        for want in [size.to_string(), (size - 1).to_string(), "bus.max_payload_bytes".into()] {
            assert!(error.contains(&want), "{want} in {error}");
        }
        // Deeper than the JSON parser goes (128 levels): small, yet its agent could not decode it.
        let mut deep = json!(1);
        for _ in 0..130 {
            deep = json!([deep]);
        }
        let mut env = env;
        env.payload["input"] = deep;
        let refused = check(&env, 1 << 20).expect_err("too deep");
        assert_eq!(refused.reason(), "decode_error");
        assert!(refused.to_string().contains("recursion limit"), "{refused}");
    }
}
