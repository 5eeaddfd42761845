//! A workflow's budget (docs/semantics.md, Money 14), through the whole runtime on every bus with its
//! ledger (in memory, Redis, Redis Cluster): a workflow step whose payments would exceed the budget its
//! envelope carries is denied `over_workflow_budget` and dies fatal with that code in its error (which
//! is what the workflow engine stops on as `over_budget`); the budget is shared by every task of the
//! workflow, whichever way they pay (the simulated executor, or an outside agent with its token); a
//! dead task's reservations leave the workflow's usage, a succeeded one's stay in it as spent; another
//! workflow, and a task of none, are not affected.
// Tests and benches report by panicking: unwrap/expect are allowed here (not in the crates).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use genesis_actors::bus::{Bus, TaskStatus};
use genesis_actors::executor::{ExecError, Executor, ExecutorRegistry, TaskContext};
use genesis_actors::payments::authority::Authority;
use genesis_actors::payments::ledger::{Ledger, MandateRecord, Usage};
use genesis_actors::payments::notify::NotifySettings;
use genesis_actors::payments::policy::PaymentRules;
use genesis_actors::payments::token::TokenKey;
use genesis_actors::payments::types::code;
use genesis_actors::payments::vendor::Whitelist;
use genesis_actors::payments::{outside, Budgets, PaymentsSettings};
use genesis_actors::roster::ExecutorSpec;
use genesis_actors::task::{TaskEnvelope, TaskId};
use genesis_actors::workflow::state::{TaskKind, WorkflowRef};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use support::buses::Harness;
use support::{agent, eventually, fast_settings, final_record, tenant, topic};

const WAIT: Duration = Duration::from_secs(60);
const TENANT: &str = "tenant-test";

fn settings() -> PaymentsSettings {
    PaymentsSettings {
        rules: PaymentRules {
            known_agents: ["a-pay", "a-outside"].map(String::from).into(),
            ..PaymentRules::default()
        },
        whitelist: Whitelist::new(&["openai.com".to_string()]).expect("whitelist"),
        budgets: Budgets::default(),
        reservation_ttl: Duration::from_secs(3600),
        retention: Duration::from_secs(86_400),
        expiry_interval: Duration::from_millis(50),
        reconcile_interval: Duration::from_millis(100),
        token_key: TokenKey::from_bytes(vec![7; 32]).ok(),
        notify: NotifySettings::default(),
    }
}

/// An outside agent in miniature: it pays 500 cents with its attempt's token, as the HTTP API would
/// decide it (token → claims → intent → MetaAgent), and fails fatally with the code of a denial.
struct TokenPay;

impl Executor for TokenPay {
    fn execute<'a>(
        &'a self,
        ctx: &'a TaskContext,
        _payload: &'a Value,
    ) -> futures::future::BoxFuture<'a, Result<Value, ExecError>> {
        Box::pin(async move {
            let token = ctx.payment_token.as_deref().ok_or_else(|| ExecError::Fatal("no token".into()))?;
            let claims = ctx.payments.verify_token(token).expect("a key").expect("a valid token");
            let body = outside::parse_body(br#"{"vendor": "openai.com", "amount_cents": 500}"#).expect("body");
            let d = ctx.payments.approve(outside::intent(&claims, body).expect("intent")).await;
            let d = d.map_err(ExecError::Retryable)?;
            match d.code.as_str() {
                code::APPROVED => Ok(json!({"mandate_id": d.mandate_id})),
                c => Err(ExecError::Fatal(format!("payment denied ({c}): {}", d.reason))),
            }
        })
    }
}

/// A step of workflow `wf` (budget `budget`) for `agent`, paying `cents` one after the other.
fn step(agent: &str, wf: &str, name: &str, budget: Option<u64>, cents: &[u64], extra: Value) -> TaskEnvelope {
    let pay: Vec<Value> =
        cents.iter().map(|c| json!({"vendor": "openai.com", "amount_cents": c, "reason": name})).collect();
    let mut sim = json!({"pay": pay});
    if let (Some(s), Some(e)) = (sim.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    // The payload's business is not the one paid for: the envelope's is (one rule, `payments::for_task`).
    let mut env =
        TaskEnvelope::new(topic(agent), tenant(TENANT), json!({"business_id": "biz-payload", "simulate": sim}));
    env.business_id = Some("biz-wf".into());
    env.workflow =
        Some(WorkflowRef { id: wf.into(), step: name.into(), run: 1, kind: TaskKind::Step, budget_cents: budget });
    env
}

async fn publish(bus: &Bus, env: &TaskEnvelope) {
    bus.publish(env, support::TTL).await.expect("publish");
}

async fn mandate_in(ledger: &Ledger, id: &str, status: &str) -> MandateRecord {
    eventually(WAIT, &format!("mandate {id} is {status}"), || async {
        ledger.mandate(id).await.expect("ledger").filter(|m| m.status == status)
    })
    .await
}

async fn usage_is(ledger: &Ledger, wf: &str, reserved: u64, captured: u64) -> Usage {
    eventually(WAIT, &format!("workflow {wf} has {reserved} reserved and {captured} captured"), || async {
        let u = ledger.usage_workflow(&tenant(TENANT), wf).await.expect("usage");
        (u.reserved == reserved && u.captured == captured).then_some(u)
    })
    .await
}

/// The task dies fatal, refused for the workflow's budget; its error says so.
async fn dies_over_budget(bus: &Bus, env: &TaskEnvelope) -> String {
    let r = final_record(bus, env, WAIT).await;
    assert_eq!(r.status, TaskStatus::Dead, "{r:?}");
    let error = r.error.clone().unwrap_or_default();
    assert!(error.contains(code::OVER_WORKFLOW_BUDGET), "{r:?}");
    assert_eq!(r.attempts, 1, "fatal: no retry: {r:?}");
    error
}

async fn a_workflows_payments_share_its_budget(h: Harness) {
    let ledger = h.ledger().await;
    let mut registry = ExecutorRegistry::builtin();
    registry.register("token-pay", Arc::new(TokenPay));
    let mut outside_agent = agent("a-outside", 2, 0);
    outside_agent.executor = ExecutorSpec::Named("token-pay".into());
    let agents = vec![agent("a-pay", 4, 0), outside_agent];
    let authority = Authority::new(settings(), ledger.clone(), None);
    let rt = h.run_with_payments(fast_settings("n1"), agents, registry, authority).await;
    let bus = &h.bus;
    let wf = format!("wf-{}", TaskId::generate());

    // 600 then 500 of a budget of 1000: the second is refused, the task dies, and its 600 come back.
    let first = step("a-pay", &wf, "first", Some(1000), &[600, 500], json!({}));
    publish(bus, &first).await;
    let error = dies_over_budget(bus, &first).await;
    assert!(error.starts_with("payment 1 denied (over_workflow_budget)"), "{error}");
    let denied = mandate_in(&ledger, &format!("{}-1", first.task_id), "denied").await;
    let why = format!("workflow {wf} has 600 of 1000 cents reserved or spent; 500 more is over its budget");
    assert_eq!(
        (denied.decision.code.as_str(), denied.decision.reason.as_str()),
        (code::OVER_WORKFLOW_BUDGET, why.as_str())
    );
    let paid = mandate_in(&ledger, &format!("{}-0", first.task_id), "released").await;
    assert_eq!(paid.decision.business_id, "biz-wf", "the envelope's business, not the payload's");
    assert_eq!(paid.workflow.as_ref().map(|w| (w.id.as_str(), w.budget_cents)), Some((wf.as_str(), 1000)));
    usage_is(&ledger, &wf, 0, 0).await;

    // A second step holds 600 while it works; a third, and an outside agent paying with its token,
    // see that reservation: 500 more is over the budget for both.
    let holder = step("a-pay", &wf, "holder", Some(1000), &[600], json!({"sleep_ms": 600_000}));
    publish(bus, &holder).await;
    let held = format!("{}-0", holder.task_id);
    mandate_in(&ledger, &held, "approved").await;
    usage_is(&ledger, &wf, 600, 0).await;
    let third = step("a-pay", &wf, "third", Some(1000), &[500], json!({}));
    publish(bus, &third).await;
    let error = dies_over_budget(bus, &third).await;
    assert!(error.contains(&format!("workflow {wf} has 600 of 1000 cents")), "{error}");
    let by_token = step("a-outside", &wf, "outside", Some(1000), &[], json!({}));
    publish(bus, &by_token).await;
    let error = dies_over_budget(bus, &by_token).await;
    assert!(error.contains(&format!("workflow {wf} has 600 of 1000 cents")), "{error}");

    // Another workflow, and a step whose workflow has no budget, pay as usual; so does a plain task.
    let other_wf = format!("wf-{}", TaskId::generate());
    let other = step("a-pay", &other_wf, "other", Some(1000), &[500], json!({}));
    let unbudgeted = step("a-pay", &wf, "unbudgeted", None, &[500], json!({}));
    let mut plain = step("a-pay", &wf, "plain", None, &[500], json!({}));
    plain.workflow = None;
    for env in [&other, &unbudgeted, &plain] {
        publish(bus, env).await;
    }
    for env in [&other, &unbudgeted, &plain] {
        let r = final_record(bus, env, WAIT).await;
        assert_eq!(r.status, TaskStatus::Succeeded, "{r:?}");
        let m = mandate_in(&ledger, &format!("{}-0", env.task_id), "captured").await;
        let expected = (env.task_id == other.task_id).then(|| (other_wf.clone(), 1000));
        assert_eq!(m.workflow.map(|w| (w.id, w.budget_cents)), expected);
    }
    usage_is(&ledger, &other_wf, 0, 500).await;
    usage_is(&ledger, &wf, 600, 0).await;

    // The holder is cancelled: it dies, and its reservation leaves the workflow's usage too.
    bus.cancel(&holder.topic, &holder.task_id.to_string()).await.expect("cancel");
    let r = final_record(bus, &holder, WAIT).await;
    assert_eq!(r.status, TaskStatus::Dead, "{r:?}");
    mandate_in(&ledger, &held, "released").await;
    usage_is(&ledger, &wf, 0, 0).await;
    // Now 1000 fit again, and what a succeeded step paid stays spent.
    let last = step("a-pay", &wf, "last", Some(1000), &[400, 600], json!({}));
    publish(bus, &last).await;
    assert_eq!(final_record(bus, &last, WAIT).await.status, TaskStatus::Succeeded);
    usage_is(&ledger, &wf, 0, 1000).await;
    let after = step("a-pay", &wf, "after", Some(1000), &[1], json!({}));
    publish(bus, &after).await;
    dies_over_budget(bus, &after).await;
    rt.shutdown().await.expect("clean shutdown");
}

every_bus!(a_workflows_payments_share_its_budget);
