use super::*;
use crate::workflow::plan::{Compensation, Plan, StepSpec};
use proptest::prelude::*;
use serde_json::json;

fn spec(id: &str, needs: &[String], optional: bool, compensate: bool) -> StepSpec {
    StepSpec {
        id: id.into(),
        agent: Some("genesis.a".into()),
        capability: None,
        input: json!({"n": id}),
        needs: needs.to_vec(),
        budget_cents: None,
        optional,
        compensate: compensate.then(|| Compensation { agent: "genesis.undo".into(), input: json!({}) }),
    }
}

fn plan(steps: Vec<StepSpec>) -> Plan {
    Plan { workflow_id: None, business_id: None, tenant_id: None, budget_cents: None, deadline: None, steps }
}

fn start(p: &Plan) -> Workflow {
    let routes =
        p.steps.iter().map(|s| Route { agent: s.agent.clone().unwrap_or_default(), reason: "named".into() }).collect();
    create(
        p,
        routes,
        Start {
            id: "w1".into(),
            tenant_id: TenantId::default(),
            business_id: "b".into(),
            correlation_id: "c".into(),
            template: Some("business".into()),
            projected_revenue_cents: None,
            now: 1000,
        },
    )
}

fn published(wf: &Workflow) -> Vec<String> {
    wf.outbox
        .iter()
        .filter_map(|e| match e {
            Effect::Publish { step, kind: TaskKind::Step, .. } => Some(step.clone()),
            _ => None,
        })
        .collect()
}

fn ok(wf: &mut Workflow, step: &str, now: u64) -> bool {
    let task_id = wf.step(step).and_then(|s| s.task_id).expect("published");
    apply(wf, Input::TaskEnded { task_id, outcome: TaskOutcome::Succeeded { output: json!(step), attempts: 1 } }, now)
        .expect("accepted")
}

fn dead(wf: &mut Workflow, task_id: TaskId, reason: &str, now: u64) -> bool {
    let outcome = TaskOutcome::Dead { reason: reason.into(), error: "boom".into(), attempts: 3 };
    apply(wf, Input::TaskEnded { task_id, outcome }, now).expect("accepted")
}

#[test]
fn a_diamond_runs_its_join_once_and_succeeds() {
    let s = |id: &str, n: &[&str]| spec(id, &n.iter().map(|x| x.to_string()).collect::<Vec<_>>(), false, false);
    let mut wf = start(&plan(vec![s("a", &[]), s("b", &["a"]), s("c", &["a"]), s("d", &["b", "c"])]));
    assert_eq!(published(&wf), ["a"]);
    wf.outbox.clear();
    assert!(ok(&mut wf, "a", 1001));
    assert_eq!(published(&wf), ["b", "c"]);
    wf.outbox.clear();
    assert!(ok(&mut wf, "b", 1002));
    assert!(published(&wf).is_empty(), "d waits for c");
    assert!(!ok(&mut wf, "b", 1003), "a duplicate outcome changes nothing");
    assert!(ok(&mut wf, "c", 1004));
    assert_eq!(published(&wf), ["d"], "the join fires once");
    assert!(!ok(&mut wf, "c", 1005));
    assert_eq!(published(&wf), ["d"]);
    assert!(ok(&mut wf, "d", 1006));
    assert_eq!(wf.status, WorkflowStatus::Succeeded);
    let kinds: Vec<String> = wf
        .outbox
        .iter()
        .filter_map(|e| if let Effect::Emit { event } = e { Some(event.kind.clone()) } else { None })
        .collect();
    assert!(kinds.ends_with(&["workflow.succeeded".into(), "business.created".into()]), "{kinds:?}");
    assert_eq!(wf.outbox.last(), Some(&Effect::Summary));
    assert_eq!(wf.updated_at, 1006);
}

#[test]
fn a_failure_cancels_running_steps_then_compensates_in_reverse_order() {
    let s = |id: &str, n: &[&str], c| spec(id, &n.iter().map(|x| x.to_string()).collect::<Vec<_>>(), false, c);
    let mut wf =
        start(&plan(vec![s("a", &[], true), s("b", &["a"], true), s("c", &["a"], false), s("d", &["b", "c"], true)]));
    ok(&mut wf, "a", 1);
    ok(&mut wf, "b", 2);
    wf.outbox.clear();
    let c = wf.step("c").and_then(|s| s.task_id).expect("c runs");
    dead(&mut wf, c, "retries_exhausted", 3);
    assert_eq!((wf.status, wf.reason.as_deref()), (WorkflowStatus::Compensating, Some("step_failed")));
    assert_eq!(wf.step("d").map(|s| s.status), Some(StepStatus::Skipped));
    let comps: Vec<String> = wf.compensations.as_ref().expect("planned").iter().map(|c| c.step.clone()).collect();
    assert_eq!(comps, ["b", "a"], "latest completed first");
    let running: Vec<TaskId> = wf.compensations.as_ref().expect("planned").iter().filter_map(|c| c.task_id).collect();
    assert_eq!(running.len(), 1, "one at a time");
    let ended = TaskOutcome::Succeeded { output: json!({}), attempts: 1 };
    apply(&mut wf, Input::TaskEnded { task_id: running[0], outcome: ended.clone() }, 4).expect("ok");
    let second = wf.compensations.as_ref().expect("planned")[1].task_id.expect("second started");
    dead(&mut wf, second, "fatal", 5);
    assert_eq!(wf.status, WorkflowStatus::Failed, "a failed compensation is recorded and the workflow ends");
    assert_eq!(wf.compensations.as_ref().expect("c")[1].status, CompensationStatus::Failed);
    assert_eq!(apply(&mut wf, Input::Cancel, 6).map_err(|e| e.status), Err("failed"));
}

#[test]
fn cancel_waits_for_running_steps_and_compensates_a_late_success() {
    let s = |id: &str, n: &[&str]| spec(id, &n.iter().map(|x| x.to_string()).collect::<Vec<_>>(), false, true);
    let mut wf = start(&plan(vec![s("a", &[]), s("b", &[]), s("c", &["a", "b"])]));
    ok(&mut wf, "a", 1);
    wf.outbox.clear();
    apply(&mut wf, Input::Cancel, 2).expect("running");
    let cancels: Vec<&Effect> = wf.outbox.iter().filter(|e| matches!(e, Effect::Cancel { .. })).collect();
    assert_eq!(cancels.len(), 1, "b is asked to stop");
    assert!(wf.compensations.is_none(), "not while b still runs");
    // b finished its work anyway: it is compensated too, first (it completed last).
    ok(&mut wf, "b", 3);
    assert!(published(&wf).is_empty(), "no step starts after a cancel");
    let order: Vec<String> = wf.compensations.as_ref().expect("planned").iter().map(|c| c.step.clone()).collect();
    assert_eq!(order, ["b", "a"]);
    for i in 0..2 {
        let t = wf.compensations.as_ref().expect("c")[i].task_id.expect("started");
        apply(
            &mut wf,
            Input::TaskEnded { task_id: t, outcome: TaskOutcome::Succeeded { output: json!(1), attempts: 1 } },
            4,
        )
        .expect("ok");
    }
    assert_eq!((wf.status, wf.reason.as_deref()), (WorkflowStatus::Cancelled, Some("cancelled")));
}

#[test]
fn retry_reruns_the_failed_steps_with_new_tasks_and_keeps_outputs() {
    let s = |id: &str, n: &[&str]| spec(id, &n.iter().map(|x| x.to_string()).collect::<Vec<_>>(), false, false);
    let mut wf = start(&plan(vec![s("a", &[]), s("b", &["a"])]));
    ok(&mut wf, "a", 1);
    let b1 = wf.step("b").and_then(|s| s.task_id).expect("b");
    dead(&mut wf, b1, "retries_exhausted", 2);
    assert_eq!(wf.status, WorkflowStatus::Failed);
    wf.outbox.clear();
    apply(&mut wf, Input::Retry, 3).expect("failed workflows retry");
    assert_eq!((wf.status, wf.run), (WorkflowStatus::Running, 2));
    assert_eq!(published(&wf), ["b"], "only the failed step runs again");
    let b2 = wf.step("b").and_then(|s| s.task_id).expect("b again");
    assert_ne!(b1, b2, "a new run is a new task");
    assert_eq!(wf.step("a").and_then(|s| s.output.clone()), Some(json!("a")));
    assert!(!dead(&mut wf, b1, "retries_exhausted", 4), "the old run's outcome changes nothing");
    ok(&mut wf, "b", 5);
    assert_eq!(wf.status, WorkflowStatus::Succeeded);
    assert!(apply(&mut wf, Input::Retry, 6).is_err());
}

#[test]
fn optional_failures_continue_and_budget_denials_are_over_budget() {
    let n = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let mut wf = start(&plan(vec![spec("a", &[], true, false), spec("b", &n(&["a"]), false, false)]));
    let a = wf.step("a").and_then(|s| s.task_id).expect("a");
    dead(&mut wf, a, "fatal", 1);
    assert_eq!(wf.status, WorkflowStatus::Running);
    assert_eq!(published(&wf), ["a", "b"], "b runs with a's output missing");
    let b = wf.step("b").and_then(|s| s.task_id).expect("b");
    let error = "payment denied: over_workflow_budget: 900 + 200 > 1000".to_string();
    apply(
        &mut wf,
        Input::TaskEnded { task_id: b, outcome: TaskOutcome::Dead { reason: "fatal".into(), error, attempts: 1 } },
        2,
    )
    .expect("ok");
    assert_eq!((wf.status, wf.reason.as_deref()), (WorkflowStatus::Failed, Some("over_budget")));
}

#[test]
fn the_deadline_fails_a_running_workflow() {
    let mut p = plan(vec![spec("a", &[], false, false)]);
    p.deadline = Some("10s".into());
    let mut wf = start(&p);
    assert!(!apply(&mut wf, Input::Tick, 1000 + 9_999).expect("tick"));
    assert!(apply(&mut wf, Input::Tick, 1000 + 10_000).expect("tick"));
    assert_eq!(wf.reason.as_deref(), Some("deadline"));
    let a = wf.step("a").and_then(|s| s.task_id).expect("a");
    dead(&mut wf, a, "cancelled", 11_001);
    assert_eq!((wf.status, wf.step("a").map(|s| s.status)), (WorkflowStatus::Failed, Some(StepStatus::Cancelled)));
}

/// Random DAG plans driven by a random world: every step's outcome is delivered (sometimes twice, some
/// late after a cancel), some fail, and the workflow is sometimes cancelled.
fn world() -> impl Strategy<Value = (Vec<Vec<usize>>, Vec<bool>, Vec<u8>, Option<usize>)> {
    (1..14usize).prop_flat_map(|n| {
        (
            (0..n).map(|i| proptest::collection::vec(0..i.max(1), 0..3.min(i + 1))).collect::<Vec<_>>(),
            proptest::collection::vec(any::<bool>(), n),
            proptest::collection::vec(any::<u8>(), 4 * n + 8),
            proptest::option::of(0..2 * n),
        )
    })
}

proptest! {
    #[test]
    fn invariants_hold_on_random_dags((needs, optional, dice, cancel_at) in world()) {
        let steps: Vec<StepSpec> = needs.iter().enumerate().map(|(i, ns)| {
            let ns: Vec<String> = ns.iter().filter(|n| **n < i).map(|n| format!("s{n}")).collect();
            spec(&format!("s{i}"), &ns, optional[i] && i % 3 == 0, i % 2 == 0)
        }).collect();
        let mut wf = start(&plan(steps));
        let mut publishes: Vec<TaskId> = Vec::new();
        let mut outstanding: Vec<TaskId> = Vec::new();
        let mut succeeded_order: Vec<String> = Vec::new();
        let mut roll = dice.into_iter().cycle();
        let mut cancelled = false;
        for round in 0..500 {
            for e in std::mem::take(&mut wf.outbox) {
                if let Effect::Publish { kind, step, task_id } = e {
                    prop_assert!(!publishes.contains(&task_id), "{task_id} published twice");
                    if kind == TaskKind::Step {
                        prop_assert!(!cancelled, "a step started after the cancel");
                        // Its needs are satisfied at the moment it is published.
                        let s = wf.step(&step).expect("step");
                        for n in &s.needs { prop_assert!(wf.step(n).is_some_and(Step::satisfies_needs)); }
                    }
                    publishes.push(task_id);
                    outstanding.push(task_id);
                }
            }
            if wf.status.is_final() { break; }
            if cancel_at == Some(round) && wf.status == WorkflowStatus::Running {
                apply(&mut wf, Input::Cancel, round as u64).expect("running");
                cancelled = true;
                continue;
            }
            prop_assert!(!outstanding.is_empty(), "a workflow that is not final has work out: {:?}", wf.status);
            let pick = roll.next().unwrap_or(0) as usize % outstanding.len();
            let task_id = outstanding.remove(pick);
            let fail = roll.next().unwrap_or(0) % 5 == 0;
            let outcome = if fail {
                TaskOutcome::Dead { reason: if cancelled { "cancelled".into() } else { "fatal".into() }, error: "x".into(), attempts: 1 }
            } else {
                TaskOutcome::Succeeded { output: json!(1), attempts: 1 }
            };
            let step_of = wf.steps.iter().find(|s| s.task_id == Some(task_id)).map(|s| s.id.clone());
            apply(&mut wf, Input::TaskEnded { task_id, outcome: outcome.clone() }, round as u64).expect("accepted");
            if let (Some(step), TaskOutcome::Succeeded { .. }) = (&step_of, &outcome) { succeeded_order.push(step.clone()); }
            // The same outcome again changes nothing.
            let again = wf.clone();
            let changed = apply(&mut wf, Input::TaskEnded { task_id, outcome }, round as u64).expect("accepted");
            prop_assert!(!changed, "a duplicate outcome changed the workflow");
            prop_assert_eq!(&again, &wf);
        }
        prop_assert!(wf.status.is_final(), "every workflow ends: {:?}", wf.status);
        if let Some(comps) = &wf.compensations {
            // Compensations ran in reverse order of the steps' completion.
            let expected: Vec<String> = succeeded_order.iter().rev()
                .filter(|s| wf.step(s).is_some_and(|st| st.compensate.is_some())).cloned().collect();
            let got: Vec<String> = comps.iter().map(|c| c.step.clone()).collect();
            prop_assert_eq!(got, expected);
        }
        if wf.status == WorkflowStatus::Succeeded {
            prop_assert!(wf.steps.iter().all(Step::satisfies_needs));
            prop_assert!(!cancelled);
        }
    }
}
