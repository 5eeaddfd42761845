//! The seeded workflow workload (`--workload workflows` or `mixed`): random DAG plans of 3–12
//! simulated steps, each needing a few earlier ones, some optional, some with a compensation; steps
//! that sleep a little, crash their first delivery, fail and recover, or fail for good; and a shape per
//! workflow that fixes how it should end — some are cancelled mid-run, some retried after they failed,
//! some run past their deadline. The same seed gives the same plans, shapes and start times.
//!
//! What the checks need to know about a plan (its steps' needs, which steps fail and how, which are
//! compensated) is kept beside it in a [`WorkflowRecord`], with what the harness did to the workflow
//! (started when, cancelled or retried when, and whether the engine accepted it).

use crate::record::{AgentConf, Expect};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::Duration;

/// How a workflow is steered, and so how it must end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// No required step fails: succeeded (optional steps may fail).
    Clean,
    /// One required step fails in every run: failed, `step_failed`, after its compensations.
    Failing,
    /// Required steps fail in run 1 only (`fail_runs: 1`); the harness retries once it failed:
    /// succeeded in run 2.
    Retried,
    /// As `Retried`, plus one required step that fails in every run: failed again in run 2.
    RetriedFails,
    /// No step fails; steps sleep longer and the harness cancels it 0.1–2 s after its start:
    /// cancelled (or succeeded, when it ended before the cancel, which is then refused).
    Cancelled,
    /// A 1 s deadline and a first step that works for 3 s: failed, `deadline`.
    Deadline,
}

impl Shape {
    pub fn as_str(self) -> &'static str {
        match self {
            Shape::Clean => "clean",
            Shape::Failing => "failing",
            Shape::Retried => "retried",
            Shape::RetriedFails => "retried_fails",
            Shape::Cancelled => "cancelled",
            Shape::Deadline => "deadline",
        }
    }

    /// The status and reason a workflow of this shape ends with when no cancel was accepted.
    pub fn steered(self) -> (&'static str, Option<&'static str>) {
        match self {
            Shape::Clean | Shape::Retried | Shape::Cancelled => ("succeeded", None),
            Shape::Failing | Shape::RetriedFails => ("failed", Some("step_failed")),
            Shape::Deadline => ("failed", Some("deadline")),
        }
    }
}

/// How the harness starts a workflow: through the engine in its own process, or with `genesis
/// workflow start --plan @FILE` (the command line a person uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    Engine,
    Cli,
}

/// One step of a generated plan, with what the checks need to know of its steering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepPlan {
    pub id: String,
    pub agent: String,
    pub needs: Vec<String>,
    pub optional: bool,
    /// noop | sleep | panic | fail_ok | fail_dead | fatal | poison | fail_run1 | slow
    pub kind: String,
    /// The step's `simulate` object, without `report_to` (added when the plan is written).
    pub simulate: Value,
    /// Deliveries planned to crash the worker (`panic_deliveries`).
    pub panic_deliveries: u32,
    /// Runs of the workflow in which the step fails fatally before it succeeds (`fail_runs`).
    pub fail_runs: u32,
    /// The dead-letter reason when the step fails in every run (`fail_dead`, `fatal`, `poison`).
    pub fails: Option<String>,
    pub max_retries: u32,
    pub compensate: Option<CompensationPlan>,
}

impl StepPlan {
    /// The outcome the step's task in `run` is steered to (a step cancelled at its agent excepted).
    pub fn expect(&self, run: u32) -> Expect {
        match &self.fails {
            Some(reason) => Expect::Dead(reason.clone()),
            None if run <= self.fail_runs => Expect::Dead("fatal_error".into()),
            None => Expect::Succeeded,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompensationPlan {
    pub agent: String,
    pub simulate: Value,
    /// A compensation that fails (fatal): recorded, and the others still run.
    pub fails: bool,
    pub max_retries: u32,
}

/// One workflow to start.
#[derive(Debug, Clone)]
pub struct PlannedWorkflow {
    /// When to start it, from the start of the workload.
    pub at: Duration,
    pub id: String,
    pub tenant: String,
    pub business: String,
    pub shape: Shape,
    pub via: Via,
    pub steps: Vec<StepPlan>,
    pub deadline_ms: Option<u64>,
    /// Cancel it this long after it started.
    pub cancel_after: Option<Duration>,
    /// Retry it once it has failed.
    pub retry: bool,
}

/// A cancel or retry the harness asked for: when (run clock), and whether the engine took it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Control {
    pub at_us: u64,
    pub accepted: bool,
    pub detail: String,
}

/// A workflow the run started, as the checks see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowRecord {
    pub id: String,
    pub tenant: String,
    pub shape: Shape,
    pub via: Via,
    pub steps: Vec<StepPlan>,
    pub deadline_ms: Option<u64>,
    /// When the start call returned (run clock; 0 when it never did).
    pub started_at_us: u64,
    /// Why it could not be started, if it could not.
    pub start_error: Option<String>,
    pub cancel: Option<Control>,
    pub retries: Vec<Control>,
}

impl WorkflowRecord {
    pub fn new(p: &PlannedWorkflow) -> WorkflowRecord {
        WorkflowRecord {
            id: p.id.clone(),
            tenant: p.tenant.clone(),
            shape: p.shape,
            via: p.via,
            steps: p.steps.clone(),
            deadline_ms: p.deadline_ms,
            started_at_us: 0,
            start_error: None,
            cancel: None,
            retries: Vec::new(),
        }
    }

    /// The status and reason it must end with: `cancelled` once a cancel was accepted, else its
    /// shape's.
    pub fn expect(&self) -> (&'static str, Option<&'static str>) {
        if self.cancel.as_ref().is_some_and(|c| c.accepted) {
            ("cancelled", Some("cancelled"))
        } else {
            self.shape.steered()
        }
    }

    /// The runs it must have had: one plus the retries the engine accepted.
    pub fn expected_runs(&self) -> u32 {
        1 + self.retries.iter().filter(|r| r.accepted).count() as u32
    }

    pub fn step(&self, id: &str) -> Option<&StepPlan> {
        self.steps.iter().find(|s| s.id == id)
    }
}

impl PlannedWorkflow {
    /// The plan in the documented format (`docs/workflows.md`), every `simulate` reporting to
    /// `report_to`.
    pub fn plan(&self, report_to: &str) -> Value {
        let with_report = |sim: &Value| {
            let mut s = sim.clone();
            s["report_to"] = json!(report_to);
            json!({ "simulate": s })
        };
        let steps: Vec<Value> = self
            .steps
            .iter()
            .map(|s| {
                let mut v = json!({"id": s.id, "agent": s.agent, "needs": s.needs, "optional": s.optional,
                                   "input": with_report(&s.simulate)});
                if let Some(c) = &s.compensate {
                    v["compensate"] = json!({"agent": c.agent, "input": with_report(&c.simulate)});
                }
                v
            })
            .collect();
        let mut plan = json!({"workflow_id": self.id, "business_id": self.business, "steps": steps});
        if let Some(d) = self.deadline_ms {
            plan["deadline"] = json!(format!("{d}ms"));
        }
        plan
    }
}

/// The deadline of `Deadline` workflows, and how long their first step works.
pub const DEADLINE_MS: u64 = 1000;
pub const SLOW_STEP_MS: u64 = 3000;

/// `count` workflows spread evenly over `duration`, drawn from `seed`, on the simulated `agents`.
pub fn plan(seed: u64, count: usize, duration: Duration, agents: &[AgentConf]) -> Vec<PlannedWorkflow> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x005e_ed0f_f10e);
    let every = if count == 0 { Duration::ZERO } else { duration.mul_f64(0.9) / count as u32 };
    (0..count)
        .map(|i| {
            let u: f64 = rng.random();
            let shape = match u {
                u if u < 0.35 => Shape::Clean,
                u if u < 0.55 => Shape::Failing,
                u if u < 0.70 => Shape::Retried,
                u if u < 0.75 => Shape::RetriedFails,
                u if u < 0.95 => Shape::Cancelled,
                _ => Shape::Deadline,
            };
            let b = rng.random_range(0..6);
            let mut wf = PlannedWorkflow {
                at: every * i as u32,
                id: format!("chaos-{seed}-{i:04}"),
                tenant: format!("tenant-{}", b % 4),
                business: format!("wf-biz-{b}"),
                shape,
                via: if rng.random_bool(0.25) { Via::Cli } else { Via::Engine },
                steps: Vec::new(),
                deadline_ms: (shape == Shape::Deadline).then_some(DEADLINE_MS),
                cancel_after: (shape == Shape::Cancelled).then(|| Duration::from_millis(rng.random_range(100..2000))),
                retry: matches!(shape, Shape::Retried | Shape::RetriedFails),
            };
            wf.steps = steps(&mut rng, shape, agents);
            wf
        })
        .collect()
}

/// The DAG: step i needs up to three of the steps before it.
fn steps(rng: &mut StdRng, shape: Shape, agents: &[AgentConf]) -> Vec<StepPlan> {
    let n = rng.random_range(3..=12);
    let mut steps: Vec<StepPlan> = (0..n)
        .map(|i| {
            let mut needs: Vec<String> = Vec::new();
            if i > 0 {
                for _ in 0..rng.random_range(1..=3.min(i)) {
                    let need = format!("s{}", rng.random_range(0..i));
                    if !needs.contains(&need) {
                        needs.push(need);
                    }
                }
            }
            let agent = &agents[rng.random_range(0..agents.len())];
            let optional = rng.random_bool(0.2);
            let kind = if optional && rng.random_bool(0.5) { failing(rng) } else { passing(rng, shape) };
            let mut s = step(rng, format!("s{i}"), agent, needs, optional, kind);
            if rng.random_bool(0.35) {
                let a = &agents[rng.random_range(0..agents.len())];
                let fails = rng.random_bool(0.1);
                let simulate =
                    if fails { json!({"fatal": true}) } else { json!({"sleep_ms": rng.random_range(0..40)}) };
                s.compensate =
                    Some(CompensationPlan { agent: a.name.clone(), simulate, fails, max_retries: a.max_retries });
            }
            s
        })
        .collect();
    let replace = |steps: &mut [StepPlan], i: usize, kind: &str, rng: &mut StdRng| {
        let agent = agents.iter().find(|a| a.name == steps[i].agent).unwrap_or(&agents[0]);
        let mut new = step(rng, steps[i].id.clone(), agent, steps[i].needs.clone(), steps[i].optional, kind);
        new.compensate = steps[i].compensate.take();
        steps[i] = new;
    };
    // A shape steers through required steps: keep at least two.
    if steps.iter().filter(|s| !s.optional).count() < 2 {
        for i in 0..2 {
            if steps[i].optional {
                steps[i].optional = false;
                let k = passing(rng, shape);
                replace(&mut steps, i, k, rng);
            }
        }
    }
    let mut required: Vec<usize> = (0..n).filter(|&i| !steps[i].optional).collect();
    required.shuffle(rng);
    match shape {
        Shape::Clean | Shape::Cancelled => {}
        Shape::Failing => {
            let k = failing(rng);
            replace(&mut steps, required[0], k, rng);
        }
        Shape::Retried | Shape::RetriedFails => {
            let failing_too = usize::from(shape == Shape::RetriedFails);
            let run1 = rng.random_range(1..=2).min(required.len() - failing_too);
            for &i in &required[..run1] {
                replace(&mut steps, i, "fail_run1", rng);
            }
            if failing_too == 1 {
                let k = failing(rng);
                replace(&mut steps, required[run1], k, rng);
            }
        }
        Shape::Deadline => {
            // The first step works past the deadline, so the workflow is running when it passes.
            steps[0].optional = false;
            replace(&mut steps, 0, "slow", rng);
        }
    }
    steps
}

/// A step kind that ends succeeded (cancelled workflows' steps work longer, so a cancel finds some
/// running).
fn passing(rng: &mut StdRng, shape: Shape) -> &'static str {
    if shape == Shape::Cancelled {
        return if rng.random_bool(0.8) { "sleep_long" } else { "panic" };
    }
    match rng.random_range(0..10) {
        0..=2 => "noop",
        3..=6 => "sleep",
        7 => "panic",
        _ => "fail_ok",
    }
}

/// A step kind that ends dead in every run.
fn failing(rng: &mut StdRng) -> &'static str {
    match rng.random_range(0..5) {
        0 | 1 => "fail_dead",
        2 | 3 => "fatal",
        _ => "poison",
    }
}

fn step(rng: &mut StdRng, id: String, agent: &AgentConf, needs: Vec<String>, optional: bool, kind: &str) -> StepPlan {
    let max_retries = agent.max_retries;
    let (simulate, panic_deliveries, fail_runs, fails) = match kind {
        "noop" => (json!({}), 0, 0, None),
        "sleep" => (json!({"sleep_ms": rng.random_range(10..=200)}), 0, 0, None),
        "sleep_long" => (json!({"sleep_ms": rng.random_range(200..=900)}), 0, 0, None),
        "panic" => (json!({"panic_deliveries": 1, "sleep_ms": rng.random_range(10..=60)}), 1, 0, None),
        "fail_ok" => {
            let n = rng.random_range(1..=max_retries.max(1));
            (json!({"fail_attempts": n, "sleep_ms": rng.random_range(0..=30)}), 0, 0, None)
        }
        "fail_dead" => {
            let n = rng.random_range(max_retries + 1..=max_retries + 2);
            (json!({"fail_attempts": n}), 0, 0, Some("retries_exhausted"))
        }
        "fatal" => (json!({"fatal": true, "sleep_ms": rng.random_range(0..=50)}), 0, 0, Some("fatal_error")),
        "poison" => {
            let n = rng.random_range(100..200);
            (json!({"panic_deliveries": n}), n, 0, Some("poison"))
        }
        "fail_run1" => (json!({"fail_runs": 1, "sleep_ms": rng.random_range(0..=50)}), 0, 1, None),
        _ => (json!({"sleep_ms": SLOW_STEP_MS}), 0, 0, None),
    };
    let kind = match kind {
        "sleep_long" => "sleep",
        "noop" | "sleep" | "panic" | "fail_ok" | "fail_dead" | "fatal" | "poison" | "fail_run1" => kind,
        _ => "slow",
    };
    StepPlan {
        id,
        agent: agent.name.clone(),
        needs,
        optional,
        kind: kind.to_string(),
        simulate,
        panic_deliveries,
        fail_runs,
        fails: fails.map(str::to_string),
        max_retries,
        compensate: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use genesis_actors::workflow::plan::Plan;
    use genesis_actors::workflow::route::Fleet;
    use genesis_actors::workflow::validate::{validate, Limits};
    use std::collections::{BTreeMap, BTreeSet};

    #[test]
    fn the_same_seed_gives_the_same_workflows_and_every_shape_appears() {
        let agents = crate::config::agents();
        let a = plan(42, 200, Duration::from_secs(60), &agents);
        let b = plan(42, 200, Duration::from_secs(60), &agents);
        let c = plan(43, 200, Duration::from_secs(60), &agents);
        let key = |v: &[PlannedWorkflow]| v.iter().map(|p| p.plan("http://r").to_string()).collect::<Vec<_>>();
        assert_eq!(key(&a), key(&b));
        assert_ne!(key(&a), key(&c));
        let shapes: BTreeSet<&str> = a.iter().map(|p| p.shape.as_str()).collect();
        assert_eq!(shapes.len(), 6, "{shapes:?}");
        let kinds: BTreeSet<&str> = a.iter().flat_map(|p| p.steps.iter().map(|s| s.kind.as_str())).collect();
        for k in ["noop", "sleep", "panic", "fail_ok", "fail_dead", "fatal", "poison", "fail_run1", "slow"] {
            assert!(kinds.contains(k), "{k} in {kinds:?}");
        }
        assert!(a.iter().any(|p| p.via == Via::Cli) && a.iter().any(|p| p.via == Via::Engine));
        assert!(a.iter().all(|p| p.at < Duration::from_secs(60)));
    }

    #[test]
    fn every_plan_is_valid_and_steered_as_its_shape_says() {
        let agents = crate::config::agents();
        let fleet = Fleet { agents: agents.iter().map(|a| a.name.clone()).collect(), depth: BTreeMap::new() };
        for p in plan(7, 300, Duration::from_secs(60), &agents) {
            let v = p.plan("http://127.0.0.1:1/exec");
            let parsed = Plan::from_json(&v).expect("the documented format");
            validate(&parsed, &Limits::default(), &[], &fleet, None).expect("a valid plan");
            assert!((3..=12).contains(&p.steps.len()));
            assert_eq!(v["steps"][0]["input"]["simulate"]["report_to"], "http://127.0.0.1:1/exec");
            let required_fails = p.steps.iter().filter(|s| !s.optional && s.fails.is_some()).count();
            let run1 = p.steps.iter().filter(|s| !s.optional && s.fail_runs > 0).count();
            match p.shape {
                Shape::Clean | Shape::Cancelled | Shape::Deadline => assert_eq!(required_fails + run1, 0),
                Shape::Failing => assert_eq!((required_fails, run1), (1, 0)),
                Shape::Retried => assert!(required_fails == 0 && run1 >= 1),
                Shape::RetriedFails => assert!(required_fails == 1 && run1 >= 1),
            }
            assert_eq!(p.retry, matches!(p.shape, Shape::Retried | Shape::RetriedFails));
            assert_eq!(p.cancel_after.is_some(), p.shape == Shape::Cancelled);
            if p.shape == Shape::Deadline {
                assert_eq!((p.steps[0].kind.as_str(), v["deadline"].as_str()), ("slow", Some("1000ms")));
            }
        }
    }
}
