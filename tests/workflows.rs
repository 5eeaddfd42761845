//! Workflows carried durably by the bus (issue 11; `docs/workflows.md`), on every bus: a diamond plan
//! end to end on the simulated executor, an outcome delivered twice, a node that died between a step's
//! outcome and the next publish, compensation in reverse order of completion, cancel during a running
//! step, retry after a failure, the events stream, and the tasks that cannot reach their agent: a step
//! payload over `bus.max_payload_bytes` (refused at publish), an entry its agent cannot decode (a node
//! with a smaller limit), and a task lost before it ran.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use futures::future::BoxFuture;
use genesis_actors::bus::DlqFilter;
use genesis_actors::executor::{ExecError, Executor, ExecutorRegistry, TaskContext};
use genesis_actors::roster::{AgentSpec, ExecutorSpec};
use genesis_actors::settings::RuntimeSettings;
use genesis_actors::task::{TaskEnvelope, TaskId};
use genesis_actors::workflow::events::{kind, WorkflowEvent};
use genesis_actors::workflow::machine::{self, Input, TaskOutcome};
use genesis_actors::workflow::plan::Plan;
use genesis_actors::workflow::state::{
    CompensationStatus, StepStatus, TaskKind, Workflow, WorkflowRef, WorkflowStatus,
};
use genesis_actors::workflow::{StartRequest, Workflows};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::buses::Harness;
use support::{agent, eventually, roster, tenant, topic};

const WAIT: Duration = Duration::from_secs(30);

fn settings(node: &str) -> RuntimeSettings {
    let mut s = support::fast_settings(node);
    s.workflows.sweep_interval = Duration::from_millis(200);
    s
}

fn plan(v: Value) -> Plan {
    Plan::from_json(&v).expect("a plan")
}

fn request(workflow_id: &str) -> StartRequest {
    StartRequest {
        tenant: tenant("acme"),
        business: Some("biz-42".into()),
        correlation: Some(format!("corr-{workflow_id}")),
        workflow_id: Some(workflow_id.into()),
        ..Default::default()
    }
}

/// Simulated agents `wf.a` … plus the compensation agent `wf.undo`.
fn agents(names: &[&str]) -> Vec<AgentSpec> {
    names.iter().map(|n| agent(n, 2, 0)).collect()
}

async fn wait_status(w: &Workflows, id: &str, status: WorkflowStatus) -> Workflow {
    eventually(WAIT, &format!("workflow {id} is {}", status.as_str()), || async {
        w.get(id).await.ok().flatten().filter(|wf| wf.status == status && wf.outbox.is_empty())
    })
    .await
}

async fn events_of(w: &Workflows, id: &str) -> Vec<WorkflowEvent> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = w.events(after.as_deref(), 500).await.expect("events");
        let Some(last) = page.last() else { return out };
        after = Some(last.id.clone());
        out.extend(page.into_iter().map(|e| e.event).filter(|e| e.workflow_id == id));
    }
}

fn count(events: &[WorkflowEvent], k: &str, step: &str) -> usize {
    events.iter().filter(|e| e.kind == k && e.step.as_deref() == Some(step)).count()
}

/// An executor that records what each task got (context and payload) and answers a fixed output.
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<(String, String, Value)>>,
}

impl Executor for Recorder {
    fn execute<'a>(&'a self, ctx: &'a TaskContext, payload: &'a Value) -> BoxFuture<'a, Result<Value, ExecError>> {
        Box::pin(async move {
            self.seen.lock().unwrap().push((ctx.tenant_id.to_string(), ctx.correlation_id.clone(), payload.clone()));
            Ok(json!({"joined": true}))
        })
    }
}

/// Fails fatally while `broken`.
#[derive(Default)]
struct Flaky {
    broken: AtomicBool,
}

impl Executor for Flaky {
    fn execute<'a>(&'a self, _: &'a TaskContext, _: &'a Value) -> BoxFuture<'a, Result<Value, ExecError>> {
        Box::pin(async move {
            if self.broken.load(Ordering::SeqCst) {
                Err(ExecError::Fatal("the flaky agent is broken".into()))
            } else {
                Ok(json!({"flaky": "fixed"}))
            }
        })
    }
}

/// Answers a blob of `.0` bytes, whatever it is asked.
struct Big(usize);

impl Executor for Big {
    fn execute<'a>(&'a self, _: &'a TaskContext, _: &'a Value) -> BoxFuture<'a, Result<Value, ExecError>> {
        Box::pin(async move { Ok(json!({"blob": "x".repeat(self.0)})) })
    }
}

fn named(name: &str, executor: &str) -> AgentSpec {
    let mut a = agent(name, 2, 0);
    a.executor = ExecutorSpec::Named(executor.into());
    a
}

/// a → (b ∥ c) → d → audit. d (a recording agent) gets both outputs once the join fires; `audit` is
/// optional and fails fatally, so its dead letter shows the last step's envelope exactly as published.
async fn diamond_runs_end_to_end(h: Harness) {
    let recorder = Arc::new(Recorder::default());
    let mut ex = ExecutorRegistry::builtin();
    ex.register("recorder", recorder.clone());
    let mut specs = agents(&["wf.a", "wf.b", "wf.c", "wf.audit"]);
    specs.push(named("wf.join", "recorder"));
    let rt = h.run_with(settings("n1"), specs, ex).await;
    let w = rt.workflows().clone();
    let p = plan(json!({"steps": [
        {"id": "a", "agent": "wf.a", "input": {"simulate": {"output": {"idea": "teapots"}}}},
        {"id": "b", "agent": "wf.b", "needs": ["a"], "input": {"simulate": {"output": {"front": 1}, "sleep_ms": 50}}},
        {"id": "c", "agent": "wf.c", "needs": ["a"], "input": {"simulate": {"output": {"back": 2}}}},
        {"id": "d", "agent": "wf.join", "needs": ["b", "c"], "input": {"x": 1}},
        {"id": "audit", "agent": "wf.audit", "needs": ["d"], "optional": true, "input": {"simulate": {"fatal": true}}}
    ]}));
    let started = w.start(p.clone(), request("diamond")).await.expect("starts");
    assert!(!started.existed);
    let wf = wait_status(&w, "diamond", WorkflowStatus::Succeeded).await;
    assert_eq!(wf.step("d").unwrap().output, Some(json!({"joined": true})));
    assert_eq!(wf.step("audit").unwrap().status, StepStatus::Failed, "an optional step's failure");

    let seen = recorder.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "the join fired once: {seen:?}");
    let (tenant_seen, corr, payload) = &seen[0];
    assert_eq!((tenant_seen.as_str(), corr.as_str()), ("acme", "corr-diamond"));
    assert_eq!(payload["needs"], json!({"b": {"front": 1}, "c": {"back": 2}}));
    assert_eq!(payload["input"], json!({"x": 1}));
    assert_eq!(payload["business_id"], "biz-42");
    assert_eq!(payload["workflow"]["id"], "diamond");

    let letters = rt.bus().dlq_list(&topic("wf.audit"), &DlqFilter::default(), 10).await.expect("dlq");
    assert_eq!(letters.len(), 1);
    let env: TaskEnvelope = serde_json::from_str(letters[0].envelope.as_deref().unwrap()).expect("an envelope");
    assert_eq!(env.business_id.as_deref(), Some("biz-42"));
    assert_eq!((env.tenant_id.as_str(), env.correlation_id.as_str()), ("acme", "corr-diamond"));
    assert_eq!(Some(env.task_id), wf.step("audit").unwrap().task_id);
    let r = env.workflow.expect("the step's workflow");
    assert_eq!((r.id.as_str(), r.step.as_str(), r.run, r.kind), ("diamond", "audit", 1, TaskKind::Step));
    assert_eq!(env.payload["needs"], json!({"d": {"joined": true}}));

    // Starting the same id again returns the workflow, starting nothing.
    let again = w.start(p, request("diamond")).await.expect("idempotent");
    assert!(again.existed);
    assert_eq!(again.workflow.status, WorkflowStatus::Succeeded);

    // The events stream holds the transitions in order.
    let events = events_of(&w, "diamond").await;
    let ids: Vec<String> = (1..=events.len()).map(|n| format!("diamond:{n}")).collect();
    assert_eq!(events.iter().map(|e| e.event_id.clone()).collect::<Vec<_>>(), ids, "each event once, in order");
    assert_eq!(events.first().map(|e| e.kind.as_str()), Some(kind::WORKFLOW_STARTED));
    assert_eq!(events.last().map(|e| e.kind.as_str()), Some(kind::WORKFLOW_SUCCEEDED));
    let at = |k: &str, s: &str| events.iter().position(|e| e.kind == k && e.step.as_deref() == Some(s)).unwrap();
    assert!(at(kind::STEP_SUCCEEDED, "b") < at(kind::STEP_STARTED, "d"));
    assert!(at(kind::STEP_SUCCEEDED, "c") < at(kind::STEP_STARTED, "d"));
    assert_eq!(count(&events, kind::STEP_STARTED, "d"), 1);
    assert!(events.iter().all(|e| e.tenant_id == "acme" && e.business_id == "biz-42"));

    let metrics = rt.handle().metrics().encode();
    for want in [
        "genesis_workflow_transitions_total{status=\"running\"} 1",
        "genesis_workflow_transitions_total{status=\"succeeded\"} 1",
        "genesis_workflow_step_latency_seconds_count 5",
        "genesis_workflow_first_step_seconds_count 1",
    ] {
        assert!(metrics.contains(want), "{want} in:\n{metrics}");
    }
    rt.shutdown().await.unwrap();
}

/// The envelope a step's task carries (what the worker hands to the hook).
fn step_envelope(wf: &Workflow, step: &str) -> TaskEnvelope {
    let s = wf.step(step).unwrap();
    let mut env = TaskEnvelope::new(topic(&s.agent), wf.tenant_id.clone(), json!({}));
    env.task_id = s.task_id.unwrap();
    env.workflow = Some(WorkflowRef {
        id: wf.id.clone(),
        step: step.into(),
        run: s.run,
        kind: TaskKind::Step,
        budget_cents: None,
    });
    env
}

/// No node runs: the outcome of `a` is delivered three times (two at once, one late). It advances the
/// workflow once: `b` starts once.
async fn a_duplicate_outcome_advances_once(h: Harness) {
    let s = settings("n1");
    let w = Workflows::new(h.bus.clone(), &roster(agents(&["wf.a", "wf.b"])), &s);
    let p = plan(json!({"steps": [{"id": "a", "agent": "wf.a"}, {"id": "b", "agent": "wf.b", "needs": ["a"]}]}));
    let wf = w.start(p, request("dup")).await.expect("starts").workflow;
    let env = step_envelope(&wf, "a");
    let outcome = TaskOutcome::Succeeded { output: json!({"n": 1}), attempts: 1 };
    let (x, y) = tokio::join!(w.task_ended(&env, outcome.clone()), w.task_ended(&env, outcome.clone()));
    let changed = [x.expect("applied"), y.expect("applied")];
    assert_eq!(changed.iter().filter(|c| **c).count(), 1, "exactly one delivery advanced it: {changed:?}");
    let late = TaskOutcome::Succeeded { output: json!({"n": 2}), attempts: 1 };
    assert!(!w.task_ended(&env, late).await.expect("applied"), "a replay changes nothing");
    let wf = w.get("dup").await.unwrap().unwrap();
    assert_eq!(wf.step("a").unwrap().output, Some(json!({"n": 1})), "the first outcome stands");
    assert_eq!(wf.step("b").unwrap().status, StepStatus::Running);
    assert!(wf.outbox.is_empty(), "everything was carried out");
    let b = wf.step("b").unwrap().task_id.unwrap().to_string();
    assert!(h.bus.task(&topic("wf.b"), &b).await.unwrap().is_some(), "b was published");
    let events = events_of(&w, "dup").await;
    assert_eq!((count(&events, kind::STEP_SUCCEEDED, "a"), count(&events, kind::STEP_STARTED, "b")), (1, 1));
}

/// A node applied `a`'s outcome (saved, the publish of `b` in the outbox) and died before carrying it
/// out. A fresh node's sweeper publishes `b`; the workflow ends, nothing lost, nothing twice.
async fn a_node_killed_between_outcome_and_publish_loses_nothing(h: Harness) {
    let s = settings("n1");
    let specs = agents(&["wf.a", "wf.b"]);
    h.bus.ensure_topics(&[topic("wf.a"), topic("wf.b")]).await.unwrap();
    let w = Workflows::new(h.bus.clone(), &roster(specs.clone()), &s);
    let p = plan(json!({"steps": [{"id": "a", "agent": "wf.a"}, {"id": "b", "agent": "wf.b", "needs": ["a"]}]}));
    let wf = w.start(p, request("killed")).await.expect("starts").workflow;
    // The dying node: outcome applied and saved, no drive.
    let (mut stored, version) = w.store().load("killed").await.unwrap().unwrap();
    let a = wf.step("a").unwrap().task_id.unwrap();
    let input =
        Input::TaskEnded { task_id: a, outcome: TaskOutcome::Succeeded { output: json!("first"), attempts: 1 } };
    assert!(machine::apply(&mut stored, input, genesis_actors::task::now_ms()).unwrap());
    assert!(w.store().save(&stored, version).await.unwrap());
    let b = stored.step("b").unwrap().task_id.unwrap();
    assert!(h.bus.task(&topic("wf.b"), &b.to_string()).await.unwrap().is_none(), "b not published yet");
    assert!(!stored.outbox.is_empty());

    // The fresh node runs only b's agent: a's task (already applied) never runs, so no hook of a
    // drives the workflow; only the sweeper can carry out what the dead node left in the outbox.
    let rt = h.run(s, specs[1..].to_vec()).await;
    let done = wait_status(rt.workflows(), "killed", WorkflowStatus::Succeeded).await;
    assert_eq!(done.step("a").unwrap().output, Some(json!("first")), "the saved outcome stands");
    let a_rec = h.bus.task(&topic("wf.a"), &a.to_string()).await.unwrap().unwrap();
    assert_eq!(a_rec.status.as_str(), "queued", "a's task never ran here: the sweeper did the repair");
    let rec = h.bus.task(&topic("wf.b"), &b.to_string()).await.unwrap().expect("b ran");
    assert_eq!((rec.status.as_str(), rec.attempts), ("succeeded", 1));
    let events = events_of(rt.workflows(), "killed").await;
    assert_eq!(count(&events, kind::STEP_STARTED, "b"), 1, "b started once");
    assert_eq!(events.iter().filter(|e| e.kind == kind::WORKFLOW_SUCCEEDED).count(), 1);
    rt.shutdown().await.unwrap();
}

/// A worker wrote `a`'s outcome and its node died before the hook ran (here: the outcome is written
/// through the bus by hand, no hook at all). The sweeper reads the final record and applies it; b runs.
async fn the_sweeper_applies_an_outcome_the_hook_missed(h: Harness) {
    use genesis_actors::bus::{Completed, Completion};
    let s = settings("n1");
    let specs = agents(&["wf.a", "wf.b"]);
    h.bus.ensure_topics(&[topic("wf.a"), topic("wf.b")]).await.unwrap();
    let w = Workflows::new(h.bus.clone(), &roster(specs.clone()), &s);
    let p = plan(json!({"steps": [{"id": "a", "agent": "wf.a"}, {"id": "b", "agent": "wf.b", "needs": ["a"]}]}));
    w.start(p, request("missed")).await.expect("starts");
    let consumer = "dead-node/wf.a";
    let mut reader = h.bus.reader(consumer).await.unwrap();
    let got = reader.read_new(&topic("wf.a"), 1, Duration::from_secs(1)).await.unwrap();
    let d = got.into_iter().next().expect("a's entry");
    let env = TaskEnvelope::decode(d.raw.as_deref().unwrap(), 1 << 20).unwrap();
    h.bus.begin(consumer, &[(&d, &env)], support::TTL).await.unwrap();
    let done = Completion::Succeeded { task: env, result: json!({"by": "hand"}) };
    assert_eq!(h.bus.complete(consumer, &d, &done, support::TTL).await.unwrap(), Completed::Done);
    assert_eq!(w.get("missed").await.unwrap().unwrap().step("a").unwrap().status, StepStatus::Running);

    let rt = h.run(s, specs[1..].to_vec()).await;
    let wf = wait_status(rt.workflows(), "missed", WorkflowStatus::Succeeded).await;
    assert_eq!(wf.step("a").unwrap().output, Some(json!({"by": "hand"})), "the record's result");
    rt.shutdown().await.unwrap();
}

/// A running workflow past its deadline fails (`deadline`), and its running step is cancelled.
async fn a_deadline_fails_the_workflow(h: Harness) {
    let mut long = agent("wf.a", 1, 0);
    long.timeout = Duration::from_secs(300);
    let rt = h.run(settings("n1"), vec![long]).await;
    let w = rt.workflows().clone();
    let p = plan(
        json!({"deadline": "300ms", "steps": [{"id": "a", "agent": "wf.a", "input": {"simulate": {"sleep_ms": 120000}}}]}),
    );
    w.start(p, request("late")).await.expect("starts");
    let wf = wait_status(&w, "late", WorkflowStatus::Failed).await;
    assert_eq!(wf.reason.as_deref(), Some("deadline"));
    assert_eq!(wf.step("a").unwrap().status, StepStatus::Cancelled, "stopped at its agent");
    rt.shutdown().await.unwrap();
}

/// a → b → c, each with a compensation, then d dies: the workflow fails and compensates c, b, a.
async fn a_dead_step_fails_and_compensates_in_reverse(h: Harness) {
    let rt = h.run(settings("n1"), agents(&["wf.a", "wf.b", "wf.c", "wf.d", "wf.undo"])).await;
    let w = rt.workflows().clone();
    let undo = |n: &str| json!({"agent": "wf.undo", "input": {"undo": n}});
    let p = plan(json!({"steps": [
        {"id": "a", "agent": "wf.a", "compensate": undo("a")},
        {"id": "b", "agent": "wf.b", "needs": ["a"], "compensate": undo("b")},
        {"id": "c", "agent": "wf.c", "needs": ["b"], "compensate": undo("c")},
        {"id": "d", "agent": "wf.d", "needs": ["c"], "input": {"simulate": {"fatal": true}}, "compensate": undo("d")}
    ]}));
    w.start(p, request("comp")).await.expect("starts");
    let wf = wait_status(&w, "comp", WorkflowStatus::Failed).await;
    assert_eq!(wf.reason.as_deref(), Some("step_failed"));
    assert_eq!(wf.step("d").unwrap().status, StepStatus::Failed);
    let comps = wf.compensations.clone().unwrap();
    let order: Vec<&str> = comps.iter().map(|c| c.step.as_str()).collect();
    assert_eq!(order, ["c", "b", "a"], "reverse order of completion; the failed step is not compensated");
    assert!(comps.iter().all(|c| c.status == CompensationStatus::Succeeded));
    let mut started = Vec::new();
    for c in &comps {
        let r = h.bus.task(&topic("wf.undo"), &c.task_id.unwrap().to_string()).await.unwrap().expect("ran");
        started.push(r.started_at.unwrap());
    }
    assert!(started.windows(2).all(|p| p[0] <= p[1]), "ran one after the other: {started:?}");
    let events = events_of(&w, "comp").await;
    let seq: Vec<&str> =
        events.iter().filter(|e| e.kind == kind::COMPENSATION_STARTED).map(|e| e.step.as_deref().unwrap()).collect();
    assert_eq!(seq, ["c", "b", "a"]);
    rt.shutdown().await.unwrap();
}

/// a (compensated) → b (long) → c. Cancel while b runs: b is stopped at its agent, c never starts,
/// a's compensation runs, the workflow ends cancelled.
async fn cancel_during_a_running_step(h: Harness) {
    let mut specs = agents(&["wf.a", "wf.c", "wf.undo"]);
    let mut long = agent("wf.b", 1, 0);
    long.timeout = Duration::from_secs(300);
    specs.push(long);
    let rt = h.run(settings("n1"), specs).await;
    let w = rt.workflows().clone();
    let p = plan(json!({"steps": [
        {"id": "a", "agent": "wf.a", "compensate": {"agent": "wf.undo"}},
        {"id": "b", "agent": "wf.b", "needs": ["a"], "input": {"simulate": {"sleep_ms": 120000}}},
        {"id": "c", "agent": "wf.c", "needs": ["b"]}
    ]}));
    w.start(p, request("cancel")).await.expect("starts");
    let b: TaskId = eventually(WAIT, "b runs at its agent", || async {
        let wf = w.get("cancel").await.ok().flatten()?;
        let id = wf.step("b")?.task_id?;
        let r = h.bus.task(&topic("wf.b"), &id.to_string()).await.ok().flatten()?;
        (r.status == genesis_actors::bus::TaskStatus::Running).then_some(id)
    })
    .await;
    let wf = w.cancel("cancel").await.expect("cancels");
    assert_eq!(wf.status, WorkflowStatus::Compensating);
    assert!(w.cancel("cancel").await.is_err_and(|e| e.http_status() == 409), "a second cancel is refused");
    let wf = wait_status(&w, "cancel", WorkflowStatus::Cancelled).await;
    let rec = h.bus.task(&topic("wf.b"), &b.to_string()).await.unwrap().unwrap();
    assert_eq!((rec.status.as_str(), rec.reason.as_deref()), ("dead", Some("cancelled")));
    assert_eq!(wf.step("b").unwrap().status, StepStatus::Cancelled);
    let c = wf.step("c").unwrap();
    assert_eq!((c.status, c.task_id), (StepStatus::Skipped, None), "no later step started");
    let comps = wf.compensations.clone().unwrap();
    assert_eq!(comps.len(), 1);
    assert_eq!((comps[0].step.as_str(), comps[0].status), ("a", CompensationStatus::Succeeded));
    let events = events_of(&w, "cancel").await;
    assert_eq!(count(&events, kind::STEP_STARTED, "c"), 0);
    assert_eq!(events.last().map(|e| e.kind.as_str()), Some(kind::WORKFLOW_CANCELLED));
    rt.shutdown().await.unwrap();
}

/// a → b (broken) → c fails at b; once b's agent is fixed, retry reruns b and c only, keeping a.
async fn retry_keeps_earlier_outputs(h: Harness) {
    let flaky = Arc::new(Flaky { broken: AtomicBool::new(true) });
    let mut ex = ExecutorRegistry::builtin();
    ex.register("flaky", flaky.clone());
    let mut specs = agents(&["wf.a", "wf.c"]);
    specs.push(named("wf.flaky", "flaky"));
    let rt = h.run_with(settings("n1"), specs, ex).await;
    let w = rt.workflows().clone();
    let p = plan(json!({"steps": [
        {"id": "a", "agent": "wf.a", "input": {"simulate": {"output": {"kept": true}}}},
        {"id": "b", "agent": "wf.flaky", "needs": ["a"]},
        {"id": "c", "agent": "wf.c", "needs": ["b"]}
    ]}));
    w.start(p, request("retry")).await.expect("starts");
    let failed = wait_status(&w, "retry", WorkflowStatus::Failed).await;
    let a = failed.step("a").unwrap().clone();
    assert!(w.retry("nope").await.is_err_and(|e| e.http_status() == 404));
    flaky.broken.store(false, Ordering::SeqCst);
    w.retry("retry").await.expect("retries");
    assert!(w.retry("retry").await.is_err_and(|e| e.http_status() == 409), "only a failed workflow retries");
    let done = wait_status(&w, "retry", WorkflowStatus::Succeeded).await;
    let a2 = done.step("a").unwrap();
    assert_eq!((a2.run, a2.task_id, &a2.output), (1, a.task_id, &Some(json!({"kept": true}))), "a kept");
    assert_eq!(done.step("b").unwrap().run, 2);
    assert_eq!(done.step("b").unwrap().output, Some(json!({"flaky": "fixed"})));
    assert_ne!(done.step("b").unwrap().task_id, failed.step("b").unwrap().task_id, "a new task for the new run");
    let rec = h.bus.task(&topic("wf.a"), &a.task_id.unwrap().to_string()).await.unwrap().unwrap();
    assert_eq!(rec.attempts, 1, "a did not run again");
    let events = events_of(&w, "retry").await;
    assert_eq!(count(&events, kind::STEP_STARTED, "a"), 1);
    assert_eq!(count(&events, kind::STEP_STARTED, "b"), 2);
    assert_eq!(events.iter().filter(|e| e.kind == kind::WORKFLOW_RETRIED).count(), 1);
    rt.shutdown().await.unwrap();
}

/// Listing: by status and tenant, newest first, paged with a cursor.
async fn listing_by_status_and_tenant(h: Harness) {
    let s = settings("n1");
    let w = Workflows::new(h.bus.clone(), &roster(agents(&["wf.a"])), &s);
    let p = plan(json!({"steps": [{"id": "a", "agent": "wf.a"}]}));
    for (id, t) in [("l1", "acme"), ("l2", "other"), ("l3", "acme"), ("l4", "acme")] {
        let req = StartRequest { tenant: tenant(t), workflow_id: Some(id.into()), ..Default::default() };
        w.start(p.clone(), req).await.expect("starts");
    }
    w.cancel("l3").await.expect("cancels");
    // Newest first; workflows created in the same millisecond by id, descending: the same order.
    use genesis_actors::workflow::store::ListFilter;
    let acme = ListFilter { tenant: Some(tenant("acme")), limit: 2, ..Default::default() };
    let first = w.list(&acme).await.unwrap();
    let ids: Vec<&str> = first.workflows.iter().map(|w| w.id.as_str()).collect();
    assert_eq!(ids, ["l4", "l3"]);
    let next = ListFilter { cursor: first.cursor.clone(), ..acme.clone() };
    let second = w.list(&next).await.unwrap();
    assert_eq!(second.workflows.iter().map(|w| w.id.as_str()).collect::<Vec<_>>(), ["l1"]);
    assert_eq!(second.cursor, None);
    let running = ListFilter { status: Some(WorkflowStatus::Running), ..Default::default() };
    let ids: Vec<String> = w.list(&running).await.unwrap().workflows.into_iter().map(|w| w.id).collect();
    assert_eq!(ids, ["l4", "l2", "l1"], "l3 left the running index when it was cancelled");
    let open = w.store().not_final(100).await.unwrap();
    assert_eq!(open, ["l1", "l2", "l3", "l4"], "l3 compensates (its step still runs): not final yet");
}

/// `big` answers 5000 bytes; `bus.max_payload_bytes` is 4096, so the task of `c` (which needs it) would
/// be dead-lettered undecoded by its agent, and the workflow would never hear of it. The engine does not
/// publish it: `c` ends dead (`payload_too_large`, naming the size, the limit and the key), the workflow
/// fails and compensates — `big`'s compensation, which carries `big`'s output, is refused the same way
/// and recorded failed; `a`'s still runs. A re-drive and a sweep publish nothing later. With `c`
/// optional the workflow goes on, and `d` gets `null` for it.
async fn an_oversized_step_payload_fails_the_step_at_once(h: Harness) {
    let mut s = settings("n1");
    s.bus.max_payload_bytes = 4096;
    let recorder = Arc::new(Recorder::default());
    let mut ex = ExecutorRegistry::builtin();
    ex.register("big", Arc::new(Big(5000)));
    ex.register("recorder", recorder.clone());
    let mut specs = agents(&["wf.a", "wf.c", "wf.undo"]);
    specs.push(named("wf.big", "big"));
    specs.push(named("wf.d", "recorder"));
    let rt = h.run_with(s, specs, ex).await;
    let w = rt.workflows().clone();
    let undo = |n: &str| json!({"agent": "wf.undo", "input": {"undo": n}});
    let steps = |optional: bool| {
        plan(json!({"steps": [
            {"id": "a", "agent": "wf.a", "compensate": undo("a")},
            {"id": "big", "agent": "wf.big", "needs": ["a"], "compensate": undo("big")},
            {"id": "c", "agent": "wf.c", "needs": ["big"], "optional": optional},
            {"id": "d", "agent": "wf.d", "needs": ["c"]}
        ]}))
    };
    w.start(steps(false), request("oversized")).await.expect("starts");
    let wf = wait_status(&w, "oversized", WorkflowStatus::Failed).await;
    assert_eq!(wf.reason.as_deref(), Some("step_failed"));
    let c = wf.step("c").unwrap();
    assert_eq!((c.status, c.attempts), (StepStatus::Failed, 0), "{c:?}");
    let error = c.error.clone().unwrap();
    assert!(error.starts_with("payload_too_large: its task is "), "{error}");
    assert!(error.contains("over the limit of 4096 bytes (bus.max_payload_bytes)"), "{error}");
    let size: usize = error["payload_too_large: its task is ".len()..].split(' ').next().unwrap().parse().unwrap();
    assert!(size > 5000, "the size named is the envelope's: {error}");
    assert!(wf.error.as_deref().unwrap().contains("step c failed"), "{:?}", wf.error);
    let c_task = c.task_id.unwrap().to_string();
    assert!(h.bus.task(&topic("wf.c"), &c_task).await.unwrap().is_none(), "c's task was never published");
    assert!(h.bus.dlq_list(&topic("wf.c"), &DlqFilter::default(), 10).await.unwrap().is_empty());
    let d = wf.step("d").unwrap();
    assert_eq!((d.status, d.task_id), (StepStatus::Skipped, None));
    let comps = wf.compensations.clone().unwrap();
    let done: Vec<(&str, CompensationStatus)> = comps.iter().map(|c| (c.step.as_str(), c.status)).collect();
    assert_eq!(done, [("big", CompensationStatus::Failed), ("a", CompensationStatus::Succeeded)]);
    assert!(comps[0].error.as_deref().unwrap().starts_with("payload_too_large:"), "{:?}", comps[0].error);
    let big_undo = comps[0].task_id.unwrap().to_string();
    assert!(h.bus.task(&topic("wf.undo"), &big_undo).await.unwrap().is_none(), "not published either");

    // Idempotent: driving and sweeping again publishes nothing and changes nothing.
    w.drive("oversized").await.expect("drives");
    w.sweep().await.expect("sweeps");
    assert!(h.bus.task(&topic("wf.c"), &c_task).await.unwrap().is_none(), "still never published");
    assert_eq!(w.get("oversized").await.unwrap().unwrap(), wf, "nothing changed");
    let events = events_of(&w, "oversized").await;
    assert_eq!((count(&events, kind::STEP_STARTED, "c"), count(&events, kind::STEP_FAILED, "c")), (1, 1));
    let failed = events.iter().find(|e| e.kind == kind::STEP_FAILED).unwrap();
    assert!(failed.error.as_deref().unwrap().contains("bus.max_payload_bytes"), "{failed:?}");
    assert_eq!(events.iter().filter(|e| e.kind == kind::WORKFLOW_FAILED).count(), 1);

    // An optional step refused the same way lets the workflow go on.
    w.start(steps(true), request("oversized-optional")).await.expect("starts");
    let wf = wait_status(&w, "oversized-optional", WorkflowStatus::Succeeded).await;
    let c = wf.step("c").unwrap();
    assert_eq!(c.status, StepStatus::Failed);
    assert!(c.error.as_deref().unwrap().starts_with("payload_too_large:"), "{c:?}");
    let seen = recorder.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].2["needs"], json!({"c": null}), "a failed optional need arrives as null");
    assert_eq!(wf.compensations, None, "a workflow that succeeds compensates nothing");
    rt.shutdown().await.unwrap();
}

/// A node with a larger `bus.max_payload_bytes` than the agent's node publishes a step whose entry that
/// agent cannot decode: the agent dead-letters it undecoded (`decode_error`, no envelope, as for any
/// such entry) and tells the workflow from what is left of it, so the step ends dead instead of
/// waiting for ever; the workflow fails at once.
async fn an_entry_its_agent_cannot_decode_still_ends_its_step(h: Harness) {
    let mut small = settings("n1");
    small.bus.max_payload_bytes = 2048;
    let specs = agents(&["wf.a"]);
    let rt = h.run(small, specs.clone()).await;
    let publisher = Workflows::new(h.bus.clone(), &roster(specs), &settings("n2"));
    let p = plan(json!({"steps": [{"id": "a", "agent": "wf.a", "input": {"pad": "x".repeat(3000)}}]}));
    publisher.start(p, request("drift")).await.expect("starts");
    let wf = wait_status(rt.workflows(), "drift", WorkflowStatus::Failed).await;
    let a = wf.step("a").unwrap();
    assert_eq!(a.status, StepStatus::Failed);
    let error = a.error.clone().unwrap();
    assert!(error.starts_with("decode_error: its task was dead-lettered undecoded by agent wf.a"), "{error}");
    assert!(error.contains("over the limit of 2048 bytes (bus.max_payload_bytes)"), "{error}");
    let dlq = h.bus.dlq_list(&topic("wf.a"), &DlqFilter::default(), 10).await.unwrap();
    assert_eq!(dlq.len(), 1);
    assert_eq!((dlq[0].reason.as_str(), dlq[0].task_id.as_deref()), ("decode_error", None), "{dlq:?}");
    rt.shutdown().await.unwrap();
}

/// A workflow whose step's task was lost before it ran (saved as running, publish carried out, yet no
/// task: a failover lost it). While the workflow runs, the sweeper publishes it again and it succeeds;
/// once the workflow is cancelled, the sweeper no longer starts it: the step ends cancelled (its task
/// never exists) and the workflow ends too instead of waiting for ever.
async fn a_lost_task_is_published_again_only_while_running(h: Harness) {
    use genesis_actors::workflow::route::Route;
    let s = settings("n1");
    let specs = agents(&["wf.a"]);
    h.bus.ensure_topics(&[topic("wf.a")]).await.unwrap();
    let w = Workflows::new(h.bus.clone(), &roster(specs.clone()), &s);
    let p = plan(json!({"steps": [{"id": "a", "agent": "wf.a"}]}));
    for id in ["lost-running", "lost-cancelled"] {
        let start = machine::Start {
            id: id.into(),
            tenant_id: tenant("acme"),
            business_id: "biz-42".into(),
            correlation_id: id.into(),
            template: None,
            projected_revenue_cents: None,
            now: genesis_actors::task::now_ms(),
        };
        let mut wf = machine::create(&p, vec![Route { agent: "wf.a".into(), reason: "test".into() }], start);
        wf.outbox.clear();
        w.store().create(&wf).await.unwrap();
    }
    let cancelled = w.cancel("lost-cancelled").await.expect("cancels");
    assert_eq!(cancelled.status, WorkflowStatus::Compensating, "waits for its running step");
    let task = |wf: &Workflow| wf.step("a").unwrap().task_id.unwrap().to_string();

    let rt = h.run(s, specs).await;
    let done = wait_status(rt.workflows(), "lost-running", WorkflowStatus::Succeeded).await;
    let rec = h.bus.task(&topic("wf.a"), &task(&done)).await.unwrap().expect("published again");
    assert_eq!((rec.status.as_str(), rec.attempts), ("succeeded", 1));
    let ended = wait_status(rt.workflows(), "lost-cancelled", WorkflowStatus::Cancelled).await;
    let a = ended.step("a").unwrap();
    assert_eq!(a.status, StepStatus::Cancelled);
    assert!(a.error.as_deref().unwrap().contains("lost before it ran"), "{a:?}");
    assert!(h.bus.task(&topic("wf.a"), &task(&ended)).await.unwrap().is_none(), "not started after the cancel");
    rt.shutdown().await.unwrap();
}

every_bus!(
    an_oversized_step_payload_fails_the_step_at_once,
    an_entry_its_agent_cannot_decode_still_ends_its_step,
    a_lost_task_is_published_again_only_while_running,
    diamond_runs_end_to_end,
    a_duplicate_outcome_advances_once,
    a_node_killed_between_outcome_and_publish_loses_nothing,
    the_sweeper_applies_an_outcome_the_hook_missed,
    a_deadline_fails_the_workflow,
    a_dead_step_fails_and_compensates_in_reverse,
    cancel_during_a_running_step,
    retry_keeps_earlier_outputs,
    listing_by_status_and_tenant,
    a_payment_over_the_workflow_budget_aborts_it,
);

/// A workflow with `budget_cents = 1000`: step a pays 600, step b asks 500 more. The payment authority
/// denies b's (`over_workflow_budget`), b dies, the workflow fails `over_budget` and a is compensated;
/// a's 600 are captured (its task succeeded), b's nothing.
async fn a_payment_over_the_workflow_budget_aborts_it(h: Harness) {
    use genesis_actors::payments::authority::Authority;
    use genesis_actors::payments::notify::NotifySettings;
    use genesis_actors::payments::policy::PaymentRules;
    use genesis_actors::payments::vendor::Whitelist;
    use genesis_actors::payments::{Budgets, PaymentsSettings};
    let pay = PaymentsSettings {
        rules: PaymentRules { known_agents: ["wf.a", "wf.b"].map(String::from).into(), ..PaymentRules::default() },
        whitelist: Whitelist::new(&["openai.com".to_string()]).expect("whitelist"),
        budgets: Budgets::default(),
        reservation_ttl: Duration::from_secs(3600),
        retention: Duration::from_secs(86_400),
        expiry_interval: Duration::from_millis(50),
        reconcile_interval: Duration::from_millis(100),
        token_key: None,
        notify: NotifySettings::default(),
    };
    let ledger = h.ledger().await;
    let authority = Authority::new(pay, ledger.clone(), None);
    let specs = agents(&["wf.a", "wf.b", "wf.undo"]);
    let rt = h.run_with_payments(settings("n1"), specs, ExecutorRegistry::builtin(), authority).await;
    let w = rt.workflows().clone();
    let spend =
        |n: i64| json!({"simulate": {"pay": [{"vendor": "openai.com", "amount_cents": n, "reason": "tokens"}]}});
    let p = plan(json!({"budget_cents": 1000, "steps": [
        {"id": "a", "agent": "wf.a", "input": spend(600), "compensate": {"agent": "wf.undo", "input": {}}},
        {"id": "b", "agent": "wf.b", "needs": ["a"], "input": spend(500)}
    ]}));
    w.start(p, request("budget")).await.expect("starts");
    let wf = wait_status(&w, "budget", WorkflowStatus::Failed).await;
    assert_eq!(wf.reason.as_deref(), Some("over_budget"), "{:?}", wf.error);
    let b = wf.step("b").unwrap();
    assert_eq!(b.status, StepStatus::Failed);
    assert!(b.error.as_deref().unwrap_or("").contains("over_workflow_budget"), "{:?}", b.error);
    let comps: Vec<&str> = wf.compensations.as_deref().unwrap().iter().map(|c| c.step.as_str()).collect();
    assert_eq!(comps, ["a"]);
    let usage = eventually(Duration::from_secs(30), "a's 600 captured, b's nothing held", || {
        let ledger = ledger.clone();
        async move {
            let u = ledger.usage_workflow(&tenant("acme"), "budget").await.ok()?;
            (u.captured == 600 && u.reserved == 0).then_some(u)
        }
    })
    .await;
    assert!(usage.captured + usage.reserved <= 1000, "the workflow's spend never exceeds its budget");
    rt.shutdown().await.unwrap();
}

/// A workflow that ends posts its business's spend summary (total, by vendor, ROI from the projected
/// revenue) to `payments.dashboard_webhook`, through the payment authority.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_workflow_posts_its_spend_summary() {
    use genesis_actors::payments::authority::Authority;
    use genesis_actors::payments::ledger::{memory::MemoryLedger, Ledger};
    use genesis_actors::payments::notify::Notifier;
    use genesis_actors::payments::policy::PaymentRules;
    use genesis_actors::payments::vendor::Whitelist;
    let posted = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = posted.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(v): axum::Json<Value>| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(v["content"].as_str().unwrap_or_default().to_string());
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut p = genesis_actors::payments::PaymentsSettings {
        rules: PaymentRules { known_agents: ["wf.pay".to_string()].into(), ..PaymentRules::default() },
        whitelist: Whitelist::new(&["openai.com".to_string()]).unwrap(),
        budgets: genesis_actors::payments::Budgets::default(),
        reservation_ttl: Duration::from_secs(3600),
        retention: Duration::from_secs(86_400),
        expiry_interval: Duration::from_secs(1),
        reconcile_interval: Duration::from_secs(1),
        token_key: None,
        notify: Default::default(),
    };
    p.notify.dashboard_webhook = Some(genesis_actors::secret::SecretText::new(hook));
    let notifier = Notifier::start(p.notify.clone());
    let authority = Authority::new(p, Ledger::Memory(MemoryLedger::new()), Some(notifier));
    let bus = genesis_actors::bus::Bus::Memory(genesis_actors::bus::memory::MemoryBus::new());
    let rt = genesis_actors::runtime::Runtime::start_with_payments(
        bus,
        settings("n1"),
        roster(agents(&["wf.pay"])),
        ExecutorRegistry::builtin(),
        Some(authority),
    )
    .await
    .unwrap();
    let w = rt.workflows().clone();
    let pay = json!({"simulate": {"pay": [{"vendor": "openai.com", "amount_cents": 400, "reason": "tokens"}]}});
    let p = plan(json!({"steps": [{"id": "buy", "agent": "wf.pay", "input": pay}]}));
    let req = StartRequest { projected_revenue: Some(10_000), ..request("spend") };
    w.start(p, req).await.expect("starts");
    wait_status(&w, "spend", WorkflowStatus::Succeeded).await;
    let text = eventually(WAIT, "the spend summary reaches the dashboard webhook", || async {
        posted.lock().unwrap().first().cloned()
    })
    .await;
    for want in ["Spend summary: biz-42", "spent $4.00", "approvals 1", "ROI 25.00", "openai.com: $4.00"] {
        assert!(text.contains(want), "{want} in:\n{text}");
    }
    rt.shutdown().await.unwrap();
}
