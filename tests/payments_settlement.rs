//! Money follows the task (docs/semantics.md, Money 12 and 13), through the whole runtime, on the
//! in-process bus and ledger and on a real Redis: a task that pays and succeeds has its mandates
//! captured, one that pays and dies has them released, a retried attempt reuses its mandate, the
//! reconciler repairs a settlement that did not happen, every attempt carries a token bound to its
//! task, and the node's HTTP API decides an outside agent's intent as the token's agent only.
// Tests and benches report by panicking: unwrap/expect are allowed here (not in the crates).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use genesis_actors::bus::memory::MemoryBus;
use genesis_actors::bus::redis::RedisBus;
use genesis_actors::bus::{Bus, TaskStatus};
use genesis_actors::executor::{ExecError, Executor, ExecutorRegistry, TaskContext};
use genesis_actors::payments::authority::Authority;
use genesis_actors::payments::ledger::memory::MemoryLedger;
use genesis_actors::payments::ledger::redis::RedisLedger;
use genesis_actors::payments::ledger::{Ledger, MandateRecord, Settled};
use genesis_actors::payments::notify::NotifySettings;
use genesis_actors::payments::policy::PaymentRules;
use genesis_actors::payments::token::{self, Claims, TokenKey};
use genesis_actors::payments::types::{Outcome, PaymentIntent};
use genesis_actors::payments::vendor::Whitelist;
use genesis_actors::payments::{outside, Budgets, PaymentsSettings};
use genesis_actors::roster::ExecutorSpec;
use genesis_actors::runtime::Runtime;
use genesis_actors::task::{TaskEnvelope, TaskId};
use genesis_testkit::RedisServer;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{agent, eventually, fast_settings, final_record, free_port, publish, roster, tenant, wait_blocking};

const WAIT: Duration = Duration::from_secs(60);
const KEY: [u8; 32] = [42; 32];

fn settings() -> PaymentsSettings {
    PaymentsSettings {
        rules: PaymentRules { known_agents: ["a-pay", "a-probe"].map(String::from).into(), ..PaymentRules::default() },
        whitelist: Whitelist::new(&["openai.com".to_string()]).expect("whitelist"),
        budgets: Budgets::default(),
        reservation_ttl: Duration::from_secs(3600),
        retention: Duration::from_secs(86_400),
        expiry_interval: Duration::from_millis(50),
        reconcile_interval: Duration::from_millis(100),
        token_key: TokenKey::from_bytes(KEY.to_vec()).ok(),
        notify: NotifySettings::default(),
    }
}

/// A node with two agents: `a-pay` (simulated, 2 retries) and `a-probe` (runs `probe`).
async fn start(bus: &Bus, ledger: &Ledger, probe_executor: Arc<Probe>) -> Runtime {
    let mut registry = ExecutorRegistry::builtin();
    registry.register("probe", probe_executor);
    let mut probe = agent("a-probe", 2, 0);
    probe.executor = ExecutorSpec::Named("probe".into());
    let agents = vec![agent("a-pay", 2, 2), probe];
    let authority = Authority::new(settings(), ledger.clone(), None);
    Runtime::start_with_payments(bus.clone(), fast_settings("n1"), roster(agents), registry, Some(authority))
        .await
        .expect("runtime")
}

async fn mandate(ledger: &Ledger, id: &str) -> Option<MandateRecord> {
    ledger.mandate(id).await.expect("ledger")
}

/// Wait until mandate `id` is in `status`.
async fn settled(ledger: &Ledger, id: &str, status: &str) -> MandateRecord {
    eventually(WAIT, &format!("mandate {id} is {status}"), || async {
        mandate(ledger, id).await.filter(|m| m.status == status)
    })
    .await
}

fn pay(business: &str, cents: u64, extra: Value) -> Value {
    let mut sim = json!({"pay": [{"vendor": "openai.com", "amount_cents": cents, "reason": "tokens"}]});
    if let (Some(s), Some(e)) = (sim.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    json!({"business_id": business, "simulate": sim})
}

/// Captured on success, released on death, one reservation across retries; counted by path.
async fn money_follows_the_task(bus: Bus, ledger: Ledger) {
    let rt = start(&bus, &ledger, Arc::default()).await;
    // Pays, then succeeds.
    let ok = publish(&bus, "a-pay", pay("biz-ok", 400, json!({}))).await;
    assert_eq!(final_record(&bus, &ok, WAIT).await.status, TaskStatus::Succeeded);
    let m = settled(&ledger, &format!("{}-0", ok.task_id), "captured").await;
    assert_eq!(m.task_id, Some(ok.task_id.to_string()), "the mandate names its task");
    // Pays, fails its first attempt, pays again on the retry (the same mandate), then succeeds.
    let retried = publish(&bus, "a-pay", pay("biz-retry", 300, json!({"fail_attempts": 1}))).await;
    let r = final_record(&bus, &retried, WAIT).await;
    assert_eq!((r.status, r.attempts), (TaskStatus::Succeeded, 2), "{r:?}");
    settled(&ledger, &format!("{}-0", retried.task_id), "captured").await;
    let s = ledger.business_stats("biz-retry").await.expect("stats");
    assert_eq!((s.approved, s.captured_cents, s.reserved_cents), (1, 300, 0), "one reservation, not two: {s:?}");
    // Pays on each of its three attempts (one mandate), fails them all: dead, the money comes back.
    let dead = publish(&bus, "a-pay", pay("biz-dead", 200, json!({"fail_attempts": 10}))).await;
    assert_eq!(final_record(&bus, &dead, WAIT).await.status, TaskStatus::Dead);
    settled(&ledger, &format!("{}-0", dead.task_id), "released").await;
    let s = ledger.business_stats("biz-dead").await.expect("stats");
    assert_eq!((s.approved, s.released_cents, s.reserved_cents, s.captured_cents), (1, 200, 0, 0), "{s:?}");
    let today = genesis_actors::payments::policy::utc_day(genesis_actors::task::now_ms());
    let used = ledger.usage_agent(&tenant("tenant-test"), "a-pay", &today).await.expect("usage");
    assert_eq!((used.reserved, used.captured), (0, 700), "nothing stays reserved");
    let text = rt.handle().metrics().encode();
    assert!(text.contains(r#"genesis_payments_settled_total{to="captured",by="worker"} 2"#), "{text}");
    assert!(text.contains(r#"genesis_payments_settled_total{to="released",by="worker"} 1"#), "{text}");
    rt.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn money_follows_the_task_memory() {
    money_follows_the_task(Bus::Memory(MemoryBus::new()), Ledger::Memory(MemoryLedger::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn money_follows_the_task_redis() {
    let server = RedisServer::start();
    let (bus, ledger) = on_redis(&server).await;
    money_follows_the_task(bus, ledger).await;
}

/// The bus and the ledger on `server`.
async fn on_redis(server: &RedisServer) -> (Bus, Ledger) {
    let bus = RedisBus::connect(&server.url(), fast_settings("x").bus.reconnect).await.expect("bus");
    let ledger = RedisLedger::connect(&server.url()).await.expect("ledger");
    (Bus::Redis(bus), Ledger::Redis(ledger))
}

fn intent_for(task: &TaskEnvelope, mandate: &str, cents: i64) -> PaymentIntent {
    PaymentIntent {
        agent_id: "a-pay".into(),
        vendor: "openai.com".into(),
        amount_cents: cents,
        reason: "after the fact".into(),
        mandate_id: mandate.into(),
        business_id: "biz-late".into(),
        tenant_id: task.tenant_id.clone(),
        task_id: Some(task.task_id),
        workflow: None,
    }
}

/// A reservation of a task that has already ended, which its settlement never saw (as after a crash
/// between the outcome and the settlement): the reconciler settles it by the task's status.
async fn the_reconciler_repairs_missed_settlements(bus: Bus, ledger: Ledger) {
    let rt = start(&bus, &ledger, Arc::default()).await;
    let ok = publish(&bus, "a-pay", json!({})).await;
    let dead = publish(&bus, "a-pay", json!({"simulate": {"fatal": true}})).await;
    assert_eq!(final_record(&bus, &ok, WAIT).await.status, TaskStatus::Succeeded);
    assert_eq!(final_record(&bus, &dead, WAIT).await.status, TaskStatus::Dead);
    // Reserved directly in the ledger, after both outcomes (and their settlements) were written.
    let authority = Authority::new(settings(), ledger.clone(), None);
    for (task, id) in [(&ok, "late-ok"), (&dead, "late-dead")] {
        let d = authority.approve(&intent_for(task, id, 150)).await.expect("decision");
        assert_eq!(d.outcome, Outcome::Approved, "{d:?}");
    }
    // Held for review, then approved by a reviewer: the reservation joins its task's then.
    let held = authority.approve(&intent_for(&ok, "late-review", 15_000)).await.expect("decision");
    assert_eq!(held.outcome, Outcome::NeedsReview, "{held:?}");
    assert!(matches!(authority.review("late-review", true).await, Ok(Settled::Done(_))));
    settled(&ledger, "late-ok", "captured").await;
    settled(&ledger, "late-dead", "released").await;
    settled(&ledger, "late-review", "captured").await;
    let s = ledger.business_stats("biz-late").await.expect("stats");
    assert_eq!((s.captured_cents, s.released_cents, s.reserved_cents), (15_150, 150, 0), "{s:?}");
    let text = rt.handle().metrics().encode();
    assert!(text.contains(r#"genesis_payments_settled_total{to="captured",by="reconciler"} 2"#), "{text}");
    assert!(text.contains(r#"genesis_payments_settled_total{to="released",by="reconciler"} 1"#), "{text}");
    // Nothing left for it to do: the tasks left the ledger's open tasks.
    let due = ledger.due_tasks(u64::MAX, 10).await.expect("due");
    assert!(due.is_empty(), "{due:?}");
    rt.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reconciler_repairs_missed_settlements_memory() {
    the_reconciler_repairs_missed_settlements(Bus::Memory(MemoryBus::new()), Ledger::Memory(MemoryLedger::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reconciler_repairs_missed_settlements_redis() {
    let server = RedisServer::start();
    let (bus, ledger) = on_redis(&server).await;
    the_reconciler_repairs_missed_settlements(bus, ledger).await;
}

/// An outside agent in miniature: it keeps the token its attempt came with, and pays with it the way
/// the HTTP API does (token → claims → intent → MetaAgent).
#[derive(Default)]
struct Probe {
    seen: Mutex<Vec<(TaskId, u32, Option<String>)>>,
}

impl Executor for Probe {
    fn execute<'a>(
        &'a self,
        ctx: &'a TaskContext,
        _payload: &'a Value,
    ) -> futures::future::BoxFuture<'a, Result<Value, ExecError>> {
        Box::pin(async move {
            if let Ok(mut seen) = self.seen.lock() {
                seen.push((ctx.task_id, ctx.attempt, ctx.payment_token.clone()));
            }
            let Some(token) = &ctx.payment_token else { return Ok(json!("no token")) };
            let claims = ctx.payments.verify_token(token).ok_or("no key").and_then(|c| c.map_err(|_| "bad token"));
            let claims = claims.map_err(|e| ExecError::Fatal(e.into()))?;
            let body = outside::parse_body(br#"{"vendor": "openai.com", "amount_cents": 250}"#).expect("body");
            let d = ctx.payments.approve(outside::intent(&claims, body).expect("intent")).await;
            let d = d.map_err(ExecError::Retryable)?;
            Ok(json!({"mandate_id": d.mandate_id}))
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attempt_carries_a_token_bound_to_its_task() {
    let (bus, ledger) = (Bus::Memory(MemoryBus::new()), Ledger::Memory(MemoryLedger::new()));
    let probe = Arc::new(Probe::default());
    let rt = start(&bus, &ledger, probe.clone()).await;
    let t = publish(&bus, "a-probe", json!({"business_id": "biz-probe"})).await;
    let r = final_record(&bus, &t, WAIT).await;
    assert_eq!(r.status, TaskStatus::Succeeded, "{r:?}");
    let seen = probe.seen.lock().map(|s| s.clone()).unwrap_or_default();
    let (task, _, token) = seen.first().cloned().expect("the probe ran");
    let claims = token::verify(&TokenKey::from_bytes(KEY.to_vec()).expect("key"), &token.expect("a token"), 0);
    let claims = claims.expect("signed with the configured key");
    assert_eq!((claims.task_id, claims.agent.as_str(), claims.business.as_str()), (t.task_id, "a-probe", "biz-probe"));
    assert_eq!((task, claims.tenant.as_str()), (t.task_id, "tenant-test"));
    // What it paid through its token is its task's, and was captured with it.
    let mandate_id = r.result.as_ref().and_then(|v| v["mandate_id"].as_str()).expect("mandate").to_string();
    assert!(mandate_id.starts_with(&format!("{}:h:", t.task_id)), "{mandate_id}");
    let m = settled(&ledger, &mandate_id, "captured").await;
    assert_eq!((m.decision.agent_id.as_str(), m.decision.business_id.as_str()), ("a-probe", "biz-probe"));
    rt.shutdown().await.expect("clean shutdown");
}

// ---- the HTTP API of a real `genesis serve` on Redis ----------------------------------------------

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().expect("client")
}

fn claims(task: TaskId, agent: &str, expires_at_ms: u64) -> Claims {
    Claims {
        task_id: task,
        agent: agent.into(),
        business: "biz-http".into(),
        tenant: tenant("tenant-http"),
        expires_at_ms,
        workflow: None,
    }
}

fn sign(c: &Claims) -> String {
    token::sign(&TokenKey::from_bytes(KEY.to_vec()).expect("key"), c)
}

/// POST an intent with `token` (if any) and `body`: (status, JSON answer).
fn post(base: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
    let mut req = client().post(format!("{base}/v1/payments/intents")).json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().expect("post");
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

#[test]
fn outside_agents_pay_through_the_http_api_as_their_tokens_agent_only() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let config = support::write_test_config_with(dir.path(), &support::shipped_roster(), Some(port));
    std::fs::write(dir.path().join("pay.key"), KEY).expect("key file");
    let text = std::fs::read_to_string(&config).expect("config");
    let text = text.replacen("[bus]\n", &format!("[bus]\nredis_url = \"{}\"\n", server.url()), 1);
    std::fs::write(&config, format!("{text}[payments]\ntoken_key_file = \"pay.key\"\n")).expect("config");
    let node = support::Node::start(&config, None, "pay-node", dir.path());
    let base = format!("http://127.0.0.1:{port}");
    wait_blocking(WAIT, "the node is ready", || {
        client().get(format!("{base}/readyz")).send().ok().filter(|r| r.status().as_u16() == 200)
    });
    let now = genesis_actors::task::now_ms();
    let task = TaskId::generate();
    let token = sign(&claims(task, "genesis.commerce", now + 600_000));
    let ask = json!({"vendor": "openai.com", "amount_cents": 500, "reason": "tokens"});

    let (status, d) = post(&base, Some(&token), &ask);
    assert_eq!(status, 200, "{d}");
    assert_eq!((d["outcome"].as_str(), d["agent_id"].as_str()), (Some("approved"), Some("genesis.commerce")), "{d}");
    assert_eq!((d["business_id"].as_str(), d["tenant_id"].as_str()), (Some("biz-http"), Some("tenant-http")));
    let mandate = d["mandate_id"].as_str().expect("mandate").to_string();
    assert!(mandate.starts_with(&format!("{task}:h:")), "{mandate}");
    // Asked again (a retried attempt, a repeated request), through the other header: the same mandate.
    let again = client()
        .post(format!("{base}/v1/payments/intents"))
        .header("Genesis-Payment-Token", &token)
        .json(&ask)
        .send()
        .expect("post");
    assert_eq!(again.status().as_u16(), 200);
    assert_eq!(again.json::<Value>().expect("json")["mandate_id"].as_str(), Some(mandate.as_str()));
    let keyed = json!({"vendor": "openai.com", "amount_cents": 500, "mandate_id": "order-7"});
    let (status, d) = post(&base, Some(&token), &keyed);
    assert_eq!((status, d["mandate_id"].as_str()), (200, Some(format!("{task}:k:order-7").as_str())), "{d}");

    // Denied (402) and held for review (202) decisions come back as decisions.
    let (status, d) = post(&base, Some(&token), &json!({"vendor": "0penai.com", "amount_cents": 100}));
    assert_eq!((status, d["code"].as_str()), (402, Some("vendor_lookalike")), "{d}");
    let (status, d) = post(&base, Some(&token), &json!({"vendor": "openai.com", "amount_cents": 15_000}));
    assert_eq!((status, d["outcome"].as_str()), (202, Some("needs_review")), "{d}");

    // Spending as someone else: naming another agent (or tenant, business, task) in the body is refused,
    // and so is a token whose claims were altered, one made with another key, an expired one, none.
    for field in ["agent_id", "tenant_id", "business_id", "task_id"] {
        let mut forged = ask.clone();
        forged[field] = json!("genesis.finance");
        let (status, d) = post(&base, Some(&token), &forged);
        assert_eq!(status, 400, "{field}: {d}");
        assert!(d["error"].as_str().unwrap_or("").contains(field), "{d}");
    }
    let tag = token.rsplit_once('.').map(|(_, t)| t).expect("tag");
    let other = serde_json::to_vec(&claims(task, "genesis.finance", now + 600_000)).expect("json");
    let altered = format!("v1.{}.{tag}", URL_SAFE_NO_PAD.encode(other));
    let wrong_key =
        token::sign(&TokenKey::from_bytes(vec![1; 32]).expect("key"), &claims(task, "genesis.commerce", now + 600_000));
    let expired = sign(&claims(task, "genesis.commerce", now - 1));
    for (what, t) in [("altered", Some(altered.as_str())), ("other key", Some(&wrong_key)), ("none", None)] {
        let (status, d) = post(&base, t, &ask);
        assert_eq!(status, 401, "{what}: {d}");
        assert!(d["error"].is_string(), "{what}: {d}");
    }
    let (status, d) = post(&base, Some(&expired), &ask);
    assert_eq!(status, 401, "{d}");
    assert!(d["error"].as_str().unwrap_or("").contains("expired"), "{d}");

    // The task itself now runs and succeeds: what was paid with its token is captured with it, once.
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    rt.block_on(async {
        let (bus, ledger) = on_redis(&server).await;
        let mut env = TaskEnvelope::new(
            "genesis.commerce".parse().expect("topic"),
            tenant("tenant-http"),
            json!({"business_id": "biz-http"}),
        );
        env.task_id = task;
        env.correlation_id = task.to_string();
        bus.publish(&env, support::TTL).await.expect("publish");
        assert_eq!(final_record(&bus, &env, WAIT).await.status, TaskStatus::Succeeded);
        settled(&ledger, &mandate, "captured").await;
        settled(&ledger, &format!("{task}:k:order-7"), "captured").await;
        let s = ledger.business_stats("biz-http").await.expect("stats");
        assert_eq!((s.approved, s.captured_cents, s.reserved_cents), (2, 1000, 0), "{s:?}");
    });
    // A token of a task that has ended pays for nothing more.
    let (status, d) = post(&base, Some(&token), &json!({"vendor": "openai.com", "amount_cents": 99}));
    assert_eq!(status, 409, "{d}");
    drop(node);
}
