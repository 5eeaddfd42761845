//! Checks 11–17 on workflows driven through the real state machine (`genesis_actors::workflow::
//! machine`): a clean diamond, a failure with compensations, a cancel and a retry pass; each planted
//! violation is reported by its check.

use super::*;
use crate::check::CheckReport;
use crate::record::ExecReport;
use crate::workload::workflows::{CompensationPlan, Control, Shape, StepPlan, Via, WorkflowRecord};
use genesis_actors::task::TenantId;
use genesis_actors::workflow::machine::{apply, create, Input, Start, TaskOutcome};
use genesis_actors::workflow::plan::Plan;
use genesis_actors::workflow::route::Route;
use genesis_actors::workflow::state::{Effect, WorkflowStatus};
use serde_json::json;

const T0: u64 = 1_800_000_000_000;

fn step(id: &str, needs: &[&str], compensate: bool) -> StepPlan {
    StepPlan {
        id: id.into(),
        agent: "genesis.qa".into(),
        needs: needs.iter().map(|n| n.to_string()).collect(),
        optional: false,
        kind: "noop".into(),
        simulate: json!({}),
        panic_deliveries: 0,
        fail_runs: 0,
        fails: None,
        max_retries: 3,
        compensate: compensate.then(|| CompensationPlan {
            agent: "genesis.build".into(),
            simulate: json!({}),
            fails: false,
            max_retries: 3,
        }),
    }
}

/// A workflow driven by hand through the machine, its events collected as the engine emits them.
struct Sim {
    wf: Workflow,
    events: Vec<WorkflowEvent>,
    rec: WorkflowRecord,
    now: u64,
}

impl Sim {
    fn new(shape: Shape, steps: Vec<StepPlan>) -> Sim {
        let plan = json!({"steps": steps.iter().map(|s| {
            let mut v = json!({"id": s.id, "agent": s.agent, "needs": s.needs, "optional": s.optional, "input": {}});
            if let Some(c) = &s.compensate { v["compensate"] = json!({"agent": c.agent}); }
            v
        }).collect::<Vec<_>>()});
        let plan = Plan::from_json(&plan).expect("plan");
        let routes = steps.iter().map(|s| Route { agent: s.agent.clone(), reason: "named".into() }).collect();
        let start = Start {
            id: "w".into(),
            tenant_id: TenantId::default(),
            business_id: "b".into(),
            correlation_id: "c".into(),
            template: None,
            projected_revenue_cents: None,
            now: T0,
        };
        let rec = WorkflowRecord {
            id: "w".into(),
            tenant: "default".into(),
            shape,
            via: Via::Engine,
            steps,
            deadline_ms: None,
            started_at_us: 1,
            start_error: None,
            cancel: None,
            retries: Vec::new(),
        };
        let mut s = Sim { wf: create(&plan, routes, start), events: Vec::new(), rec, now: T0 };
        s.drain();
        s
    }

    fn drain(&mut self) {
        for e in std::mem::take(&mut self.wf.outbox) {
            if let Effect::Emit { event } = e {
                self.events.push(*event);
            }
        }
    }

    fn input(&mut self, i: Input) {
        self.now += 10;
        apply(&mut self.wf, i, self.now).expect("applies");
        self.drain();
    }

    fn task(&self, step: &str, comp: bool) -> genesis_actors::task::TaskId {
        let k = if comp { kind::COMPENSATION_STARTED } else { kind::STEP_STARTED };
        let e = self.events.iter().rev().find(|e| e.kind == k && e.step.as_deref() == Some(step)).expect("started");
        e.task_id.as_deref().expect("task").parse().expect("task id")
    }

    fn ok(&mut self, step: &str) {
        let task_id = self.task(step, false);
        self.input(Input::TaskEnded { task_id, outcome: TaskOutcome::Succeeded { output: json!(1), attempts: 1 } });
    }

    fn dead(&mut self, step: &str, reason: &str) {
        let task_id = self.task(step, false);
        let outcome = TaskOutcome::Dead { reason: reason.into(), error: "boom".into(), attempts: 1 };
        self.input(Input::TaskEnded { task_id, outcome });
    }

    fn comp_ok(&mut self, step: &str) {
        let task_id = self.task(step, true);
        self.input(Input::TaskEnded { task_id, outcome: TaskOutcome::Succeeded { output: json!(1), attempts: 1 } });
    }

    /// An event appended again with another number (as a second, different transition would be).
    fn plant_copy(&mut self, k: &str, step: &str) {
        let mut e = self.events.iter().find(|e| e.kind == k && e.step.as_deref() == Some(step)).expect("event").clone();
        self.wf.events += 1;
        e.event_id = format!("w:{}", self.wf.events);
        self.events.push(e);
    }

    fn run_record(&self) -> RunRecord {
        RunRecord { clock_unix_ms: T0 - 1000, workflows: vec![self.rec.clone()], ..Default::default() }
    }

    /// Every started task executed 1 ms after its start event; statuses as its outcome event says.
    fn reports(&self) -> (Vec<ExecReport>, HashMap<String, String>) {
        let mut reports = Vec::new();
        let mut status = HashMap::new();
        for e in &self.events {
            let Some(task) = e.task_id.clone() else { continue };
            let at_us = run_us(T0 - 1000, e.at) + 1000;
            match e.kind.as_str() {
                kind::STEP_STARTED | kind::COMPENSATION_STARTED => reports.push(ExecReport {
                    task_id: task,
                    attempt: 1,
                    deliveries: 1,
                    node: "n".into(),
                    agent: e.agent.clone().unwrap_or_default(),
                    phase: "start".into(),
                    outcome: None,
                    at_us,
                }),
                kind::STEP_SUCCEEDED | kind::COMPENSATION_SUCCEEDED => {
                    status.insert(task, "succeeded".to_string());
                }
                kind::STEP_FAILED | kind::STEP_CANCELLED | kind::COMPENSATION_FAILED => {
                    status.insert(task, "dead".to_string());
                }
                _ => {}
            }
        }
        (reports, status)
    }

    fn check(&self) -> CheckReport {
        let (reports, status) = self.reports();
        self.check_with(&reports, &status)
    }

    fn check_with(&self, reports: &[ExecReport], status: &HashMap<String, String>) -> CheckReport {
        let mut starts: HashMap<&str, Vec<&ExecReport>> = HashMap::new();
        for r in reports {
            starts.entry(r.task_id.as_str()).or_default().push(r);
        }
        let data = Data { docs: [("w".to_string(), self.wf.clone())].into(), raw: self.events.clone() };
        let mut r = CheckReport::default();
        super::check(&self.run_record(), &data, &starts, status, &mut r);
        r
    }
}

fn assert_clean(s: &Sim) {
    let r = s.check();
    assert!(r.ok(), "{:#?}", r.violations);
}

fn assert_reported(r: &CheckReport, check: &str, text: &str) {
    assert!(r.of(check).iter().any(|v| v.detail.contains(text)), "check {check} `{text}` in {:#?}", r.violations);
}

/// a → (b ∥ c) → d, all succeed.
fn diamond() -> Sim {
    let mut s = Sim::new(
        Shape::Clean,
        vec![step("a", &[], true), step("b", &["a"], true), step("c", &["a"], false), step("d", &["b", "c"], false)],
    );
    for id in ["a", "b", "c", "d"] {
        s.ok(id);
    }
    assert_eq!(s.wf.status, WorkflowStatus::Succeeded);
    s
}

/// a → b → c; c fails for good; b then a are compensated.
fn failing() -> Sim {
    let mut c = step("c", &["b"], false);
    c.fails = Some("fatal_error".into());
    let mut s = Sim::new(Shape::Failing, vec![step("a", &[], true), step("b", &["a"], true), c]);
    s.ok("a");
    s.ok("b");
    s.dead("c", "fatal_error");
    s.comp_ok("b");
    s.comp_ok("a");
    assert_eq!((s.wf.status, s.wf.reason.as_deref()), (WorkflowStatus::Failed, Some("step_failed")));
    s
}

/// a → b → c; cancelled while b runs; b ends cancelled, a is compensated.
fn cancelled() -> Sim {
    let mut s =
        Sim::new(Shape::Cancelled, vec![step("a", &[], true), step("b", &["a"], false), step("c", &["b"], false)]);
    s.ok("a");
    s.input(Input::Cancel);
    s.rec.cancel = Some(Control { at_us: 1, accepted: true, detail: "planted".into() });
    s.dead("b", "cancelled");
    s.comp_ok("a");
    assert_eq!(s.wf.status, WorkflowStatus::Cancelled);
    s
}

/// a → b; b fails in run 1 only; retried, it succeeds in run 2 and a is kept.
fn retried() -> Sim {
    let mut b = step("b", &["a"], false);
    b.fail_runs = 1;
    let mut s = Sim::new(Shape::Retried, vec![step("a", &[], false), b]);
    s.ok("a");
    s.dead("b", "fatal_error");
    assert_eq!(s.wf.status, WorkflowStatus::Failed);
    s.input(Input::Retry);
    s.rec.retries.push(Control { at_us: 1, accepted: true, detail: "planted".into() });
    s.ok("b");
    assert_eq!((s.wf.status, s.wf.run), (WorkflowStatus::Succeeded, 2));
    s
}

/// o (optional) and c fail in run 1; b, needing o, runs on o's failure and is kept by the retry; in
/// run 2 o runs again (after b) and c succeeds. (Found by a chaos run: the stored b started before
/// its need o's later end, which is fine.)
fn retried_with_an_optional_need() -> Sim {
    let mut o = step("o", &[], false);
    (o.optional, o.fail_runs) = (true, 1);
    let mut c = step("c", &[], false);
    c.fail_runs = 1;
    let mut s = Sim::new(Shape::Retried, vec![o, step("b", &["o"], false), c]);
    s.dead("o", "fatal_error");
    s.ok("b");
    s.dead("c", "fatal_error");
    s.input(Input::Retry);
    s.rec.retries.push(Control { at_us: 1, accepted: true, detail: "planted".into() });
    s.ok("o");
    s.ok("c");
    assert_eq!((s.wf.status, s.wf.step("b").map(|b| b.run)), (WorkflowStatus::Succeeded, Some(1)));
    s
}

#[test]
fn real_machine_runs_pass_every_workflow_check() {
    assert_clean(&retried_with_an_optional_need());
    for s in [diamond(), failing(), cancelled(), retried()] {
        assert_clean(&s);
    }
    let r = failing().check();
    let st = r.workflows.expect("stats");
    assert_eq!((st.compensations_started, st.steps_started, st.by_status["failed"]), (2, 3, 1));
}

#[test]
fn check_11_a_second_outcome_or_a_changed_event_is_reported() {
    let mut s = diamond();
    s.plant_copy(kind::STEP_SUCCEEDED, "b");
    assert_reported(&s.check(), "11", "step b of run 1 has 2 outcomes");

    let mut s = diamond();
    let mut e = s.events[1].clone();
    e.kind = kind::STEP_FAILED.into();
    s.events.push(e);
    assert_reported(&s.check(), "11", "appended twice with different contents");

    let s = diamond();
    let (reports, mut status) = s.reports();
    status.insert(s.task("b", false).to_string(), "dead".into());
    assert_reported(&s.check_with(&reports, &status), "11", "its task");

    let mut s = diamond();
    s.events.retain(|e| !(e.kind == kind::STEP_SUCCEEDED && e.step.as_deref() == Some("d")));
    assert_reported(&s.check(), "11", "are not in the events stream");
}

#[test]
fn check_12_a_step_that_ran_before_its_need_ended_is_reported() {
    let s = diamond();
    let (mut reports, status) = s.reports();
    let c_done = s.events.iter().find(|e| e.kind == kind::STEP_SUCCEEDED && e.step.as_deref() == Some("c")).unwrap();
    let d_task = s.task("d", false).to_string();
    let early = run_us(T0 - 1000, c_done.at) - 50_000;
    reports.iter_mut().filter(|r| r.task_id == d_task).for_each(|r| r.at_us = early);
    assert_reported(&s.check_with(&reports, &status), "12", "before its need c's outcome");

    // The engine's order: d's start numbered before c's outcome.
    let mut s = diamond();
    let c = s.events.iter().position(|e| e.kind == kind::STEP_SUCCEEDED && e.step.as_deref() == Some("c")).unwrap();
    let d = s.events.iter().position(|e| e.kind == kind::STEP_STARTED && e.step.as_deref() == Some("d")).unwrap();
    let (ic, id) = (s.events[c].event_id.clone(), s.events[d].event_id.clone());
    s.events[c].event_id = id;
    s.events[d].event_id = ic;
    assert_reported(&s.check(), "12", "before any outcome of its need c");
}

#[test]
fn check_13_a_join_that_fires_twice_or_an_unstarted_task_is_reported() {
    let mut s = diamond();
    s.plant_copy(kind::STEP_STARTED, "d");
    assert_reported(&s.check(), "13", "step.started of d in run 1 2 times");

    let s = diamond();
    let (mut reports, status) = s.reports();
    let mut stray = reports[0].clone();
    stray.task_id = genesis_actors::task::TaskId::generate().to_string();
    reports.push(stray);
    assert_reported(&s.check_with(&reports, &status), "13", "no step or compensation started it");

    // A retry that runs a step that had succeeded.
    let mut s = retried();
    let mut again =
        s.events.iter().find(|e| e.kind == kind::STEP_STARTED && e.step.as_deref() == Some("a")).unwrap().clone();
    s.wf.events += 1;
    again.event_id = format!("w:{}", s.wf.events);
    again.run = 2;
    s.events.push(again);
    assert_reported(&s.check(), "13", "started again in run 2");
}

#[test]
fn check_14_a_step_started_after_a_cancel_is_reported() {
    let mut s = cancelled();
    let mut late =
        s.events.iter().find(|e| e.kind == kind::STEP_STARTED && e.step.as_deref() == Some("b")).unwrap().clone();
    s.wf.events += 1;
    late.event_id = format!("w:{}", s.wf.events);
    late.step = Some("c".into());
    late.task_id = Some(genesis_actors::task::TaskId::generate().to_string());
    s.events.push(late);
    assert_reported(&s.check(), "14", "step c started in run 1");
    assert_reported(&s.check(), "14", "after the cancel");
}

#[test]
fn check_15_compensations_out_of_order_are_reported() {
    let mut s = failing();
    let starts: Vec<usize> = (0..s.events.len()).filter(|&i| s.events[i].kind == kind::COMPENSATION_STARTED).collect();
    let (first, second) = (starts[0], starts[1]);
    let a = s.events[second].step.clone();
    s.events[second].step = s.events[first].step.clone();
    s.events[first].step = a;
    assert_reported(&s.check(), "15", r#"run 1 compensated ["a", "b"]; the reverse order of completion is ["b", "a"]"#);

    // A second compensation that began before the first one ended.
    let s = failing();
    let (mut reports, status) = s.reports();
    let a_task = s.task("a", true).to_string();
    reports.iter_mut().filter(|r| r.task_id == a_task).for_each(|r| r.at_us -= 30_000);
    assert_reported(&s.check_with(&reports, &status), "15", "before the one of b ended");
}

#[test]
fn check_17_a_workflow_that_did_not_end_as_steered_is_reported() {
    let mut s = diamond();
    s.wf.status = WorkflowStatus::Running;
    assert_reported(&s.check(), "17", "has not ended: running");

    let mut s = failing();
    s.rec.shape = Shape::Clean;
    assert_reported(&s.check(), "17", "steers it to succeeded");

    let mut s = retried();
    s.rec.retries[0].accepted = false;
    assert_reported(&s.check(), "17", "had 2 runs; 0 retries were accepted");

    let mut s = diamond();
    s.rec.start_error = Some("planted".into());
    assert_reported(&s.check(), "17", "could not be started");
}
