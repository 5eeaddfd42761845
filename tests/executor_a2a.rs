//! The `a2a` executor against the real A2A 1.0 peer (`tests/agents/a2a_agent.py` on the official
//! a2a-sdk, started by `genesis_testkit::A2aAgent`), through the whole runtime on the in-process bus
//! and once on a real Redis. Outcomes are read from the task records, the dead letters and the
//! agent's own record of what it received (`/test/events`). See docs/agents.md `## a2a`.
// Tests and benches report by panicking: unwrap/expect are allowed here (not in the crates).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use genesis_actors::bus::memory::MemoryBus;
use genesis_actors::bus::redis::RedisBus;
use genesis_actors::bus::{Bus, DlqFilter, TaskStatus};
use genesis_actors::executor::{ExecError, Executor, ExecutorRegistry, Progress, TaskContext};
use genesis_actors::metrics::{AgentLabel, CircuitLabel};
use genesis_actors::roster::{AgentSpec, BreakerSpec, Endpoint, ExecutorSpec};
use genesis_actors::runtime::Runtime;
use genesis_actors::secret::Hidden;
use genesis_actors::task::{TaskEnvelope, TaskId};
use genesis_testkit::A2aAgent;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{eventually, fast_settings, final_record, publish, roster};

const WAIT: Duration = Duration::from_secs(60);
/// A header every request must carry (its value is a stand-in secret the agent echoes back).
const KEY_HEADER: (&str, &str) = ("X-Api-Key", "test-key-7f3a");

fn endpoint(url: String) -> Endpoint {
    Endpoint { url, headers: vec![(KEY_HEADER.0.into(), Hidden::new(KEY_HEADER.1))] }
}

fn a2a_agent(name: &str, url: String, max_retries: u32) -> AgentSpec {
    let mut spec = support::agent(name, 2, max_retries);
    spec.executor = ExecutorSpec::A2a(endpoint(url));
    spec
}

fn memory() -> Bus {
    Bus::Memory(MemoryBus::new())
}

async fn run(bus: &Bus, agents: Vec<AgentSpec>) -> Runtime {
    Runtime::start(bus.clone(), fast_settings("n1"), roster(agents), ExecutorRegistry::builtin())
        .await
        .expect("runtime starts")
}

/// Start the agent off the async workers (start-up blocks for about a second).
async fn agent(streaming: bool) -> A2aAgent {
    tokio::task::spawn_blocking(move || A2aAgent::builder().streaming(streaming).start()).await.expect("agent start")
}

/// The `send` events (new messages) the agent got for one Genesis task.
async fn sends_for(agent: &A2aAgent, task: &TaskEnvelope) -> Vec<Value> {
    let id = task.task_id.to_string();
    agent.events_of("send").await.into_iter().filter(|e| e["metadata"]["genesis.task_id"] == id.as_str()).collect()
}

/// The artifact data part the echo agent answers with (`{"echo", "metadata", …}`).
fn echoed(result: &Value) -> &Value {
    let a = &result["artifacts"][0];
    assert_eq!(a["name"], "result", "{result}");
    assert_eq!(a["parts"][1], json!({"text": "done"}), "{result}");
    &a["parts"][0]["data"]
}

async fn rpc(agent: &A2aAgent, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let resp = reqwest::Client::new().post(agent.rpc_url()).header("A2A-Version", "1.0").json(&body).send().await;
    resp.expect("rpc").json::<Value>().await.expect("json")["result"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_task_gives_its_artifacts_and_the_agent_sees_the_tasks_identity() {
    let peer = agent(false).await;
    let bus = memory();
    let rt = run(&bus, vec![a2a_agent("genesis.research", peer.url(), 1)]).await;
    // Published with a trace context (no OpenTelemetry layer here, so the attempt passes it on as is).
    let mut t = TaskEnvelope::new(
        support::topic("genesis.research"),
        support::tenant("tenant-test"),
        json!({"mode": "echo", "x": 3}),
    );
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    t.traceparent = Some(traceparent.into());
    bus.publish(&t, support::TTL).await.expect("publish");
    let r = final_record(&bus, &t, WAIT).await;
    assert_eq!((r.status, r.attempts), (TaskStatus::Succeeded, 1), "{r:?}");
    let result = r.result.expect("a result");
    let data = echoed(&result);
    assert_eq!(data["echo"], json!({"mode": "echo", "x": 3.0}), "the payload is the data part");
    let id = t.task_id.to_string();
    let md = &data["metadata"];
    assert_eq!(md["genesis.task_id"], id.as_str());
    assert_eq!(md["genesis.attempt"].as_f64(), Some(1.0));
    assert_eq!(md["genesis.tenant_id"], "tenant-test");
    assert_eq!(md["genesis.correlation_id"], t.correlation_id.as_str());
    assert!(md["genesis.deadline_ms"].as_f64().is_some_and(|d| d > 0.0), "{md}");
    assert_eq!(md["traceparent"], traceparent, "{md}");
    assert!(md.get("genesis.payment_token").is_none(), "no payments in this runtime: {md}");

    let sends = sends_for(&peer, &t).await;
    assert_eq!(sends.len(), 1);
    let h = &sends[0]["headers"];
    assert_eq!((h["a2a-version"].as_str(), h["x-api-key"].as_str()), (Some("1.0"), Some(KEY_HEADER.1)), "{h}");
    assert_eq!(h["traceparent"], md["traceparent"], "the trace continues over HTTP too");
    assert_eq!(sends[0]["method"], "SendMessage");
    let polls = peer.events_of("get").await;
    assert!(!polls.is_empty() && polls.iter().all(|g| g["headers"]["x-api-key"] == KEY_HEADER.1), "{polls:?}");
    // The message id is derived from the task and attempt; the context groups a task's attempts.
    let agent_task = rpc(&peer, "GetTask", json!({"id": sends[0]["task_id"]})).await;
    assert_eq!(agent_task["history"][0]["messageId"], format!("genesis-{id}-1"), "{agent_task}");
    assert_eq!(agent_task["contextId"], format!("genesis-{id}"));
    rt.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_task_is_retried_then_dead_lettered_with_the_agents_message() {
    let peer = agent(false).await;
    let bus = memory();
    let rt = run(&bus, vec![a2a_agent("genesis.build", peer.url(), 2)]).await;
    let t = publish(&bus, "genesis.build", json!({"mode": "fail", "message": "disk on fire"})).await;
    let r = final_record(&bus, &t, WAIT).await;
    assert_eq!((r.status, r.reason.as_deref(), r.attempts), (TaskStatus::Dead, Some("retries_exhausted"), 3));
    let dlq = bus.dlq_list(&t.topic, &DlqFilter::default(), 10).await.expect("dlq");
    assert_eq!(dlq.len(), 1);
    assert!(dlq[0].error.contains("disk on fire"), "{}", dlq[0].error);
    let attempts: Vec<Option<f64>> =
        sends_for(&peer, &t).await.iter().map(|s| s["metadata"]["genesis.attempt"].as_f64()).collect();
    assert_eq!(attempts, vec![Some(1.0), Some(2.0), Some(3.0)], "one agent task per attempt");
    rt.shutdown().await.expect("clean shutdown");
}

/// A task that outlives the agent's timeout is cancelled at the agent: it receives `CancelTask` and
/// stops its work.
async fn timeout_cancels_the_task_at_the_agent(streaming: bool) {
    let peer = agent(streaming).await;
    let bus = memory();
    let mut spec = a2a_agent("genesis.deploy", peer.url(), 0);
    spec.timeout = Duration::from_millis(800);
    let rt = run(&bus, vec![spec]).await;
    let t = publish(&bus, "genesis.deploy", json!({"mode": "slow", "seconds": 60})).await;
    let r = final_record(&bus, &t, WAIT).await;
    assert_eq!((r.status, r.reason.as_deref()), (TaskStatus::Dead, Some("timeout")), "{r:?}");
    let sends = sends_for(&peer, &t).await;
    assert_eq!(sends.len(), 1);
    let expected = if streaming { "SendStreamingMessage" } else { "SendMessage" };
    assert_eq!(sends[0]["method"], expected);
    let agent_task = sends[0]["task_id"].clone();
    let cancels = eventually(WAIT, "the agent records the CancelTask", || async {
        let c: Vec<Value> = peer.events_of("cancel").await.into_iter().filter(|c| c["task_id"] == agent_task).collect();
        (!c.is_empty()).then_some(c)
    })
    .await;
    assert_eq!(cancels[0]["outcome"], "TASK_STATE_CANCELED", "{cancels:?}");
    assert_eq!(cancels[0]["headers"]["x-api-key"], KEY_HEADER.1);
    let stopped = peer.events_of("canceled").await;
    assert!(stopped.iter().any(|c| c["task_id"] == agent_task), "the agent stopped the work: {stopped:?}");
    rt.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_sends_cancel_task_to_a_polled_agent() {
    timeout_cancels_the_task_at_the_agent(false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_sends_cancel_task_to_a_streaming_agent() {
    timeout_cancels_the_task_at_the_agent(true).await
}

/// Rejected, input-required and auth-required tasks cannot succeed by retrying: dead at once, and
/// the interrupted ones are cancelled so they do not wait at the agent for ever.
async fn rejected_and_interrupted_tasks_are_fatal(streaming: bool) {
    let peer = agent(streaming).await;
    let bus = memory();
    let rt = run(&bus, vec![a2a_agent("genesis.qa", peer.url(), 3)]).await;
    let cases = [
        (json!({"mode": "reject", "message": "not my job"}), "not my job"),
        (json!({"mode": "input"}), "more input required"),
        (json!({"mode": "auth"}), "authentication required"),
    ];
    for (payload, text) in cases {
        let t = publish(&bus, "genesis.qa", payload).await;
        let r = final_record(&bus, &t, WAIT).await;
        assert_eq!((r.status, r.reason.as_deref(), r.attempts), (TaskStatus::Dead, Some("fatal_error"), 1), "{r:?}");
        let error = r.error.unwrap_or_default();
        assert!(error.contains(text), "{error}");
        assert_eq!(sends_for(&peer, &t).await.len(), 1, "not retried");
    }
    let cancels = peer.events_of("cancel").await;
    let canceled = cancels.iter().filter(|c| c["outcome"] == "TASK_STATE_CANCELED").count();
    assert_eq!(canceled, 2, "the input and auth tasks were cancelled: {cancels:?}");
    rt.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_input_and_auth_required_are_fatal() {
    rejected_and_interrupted_tasks_are_fatal(false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_input_and_auth_required_are_fatal_when_streaming() {
    rejected_and_interrupted_tasks_are_fatal(true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_agent_completes_and_fails_like_a_polled_one() {
    let peer = agent(true).await;
    let bus = memory();
    let rt = run(&bus, vec![a2a_agent("genesis.content", peer.url(), 1)]).await;
    let ok = publish(&bus, "genesis.content", json!({"mode": "progress", "steps": 3})).await;
    let failing = publish(&bus, "genesis.content", json!({"mode": "fail", "message": "model overloaded"})).await;
    let r = final_record(&bus, &ok, WAIT).await;
    assert_eq!((r.status, r.attempts), (TaskStatus::Succeeded, 1), "{r:?}");
    let result = r.result.expect("a result");
    assert_eq!(echoed(&result)["echo"], json!({"mode": "progress", "steps": 3.0}));
    let sends = sends_for(&peer, &ok).await;
    assert_eq!(sends[0]["method"], "SendStreamingMessage");
    assert!(peer.events_of("get").await.is_empty(), "a stream that ends settled needs no polling");
    let r = final_record(&bus, &failing, WAIT).await;
    assert_eq!((r.status, r.attempts), (TaskStatus::Dead, 2));
    assert!(r.error.unwrap_or_default().contains("model overloaded"));
    rt.shutdown().await.expect("clean shutdown");
}

/// The executor on its own, with a progress sink (the worker does not keep progress yet).
async fn direct(peer: &A2aAgent, ctx: TaskContext, payload: Value) -> Result<Value, ExecError> {
    let spec = a2a_agent("genesis.direct", peer.url(), 0);
    let ex: Arc<dyn Executor> = ExecutorRegistry::builtin().for_agent(&spec).expect("an a2a executor");
    ex.execute(&ctx, &payload).await
}

fn collecting(ctx: &mut TaskContext) -> Arc<Mutex<Vec<Value>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    ctx.progress = Progress::new(move |p| sink.lock().expect("progress lock").push(p));
    seen
}

fn texts(reports: &Mutex<Vec<Value>>) -> Vec<String> {
    let reports = reports.lock().expect("progress lock");
    reports.iter().filter_map(|p| p["text"].as_str().map(str::to_string)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn working_updates_are_reported_as_progress() {
    let steps: Vec<String> = (1..=4).map(|k| format!("step {k} of 4")).collect();
    let payload = json!({"mode": "progress", "steps": 4, "interval": 0.15});

    // Streaming sees every update, in order.
    let peer = agent(true).await;
    let mut ctx = TaskContext::detached("genesis.direct", TaskId::generate());
    let seen = collecting(&mut ctx);
    let result = direct(&peer, ctx, payload.clone()).await.expect("completes");
    assert_eq!(echoed(&result)["echo"]["steps"].as_f64(), Some(4.0));
    assert_eq!(texts(&seen), steps);
    assert!(seen.lock().expect("lock").iter().all(|p| p["state"] == "working" || p["state"] == "submitted"));

    // Polling sees the updates current at each poll: some of them, in order, none twice.
    let peer = agent(false).await;
    let mut ctx = TaskContext::detached("genesis.direct", TaskId::generate());
    let seen = collecting(&mut ctx);
    direct(&peer, ctx, payload).await.expect("completes");
    let got = texts(&seen);
    assert!(!got.is_empty(), "at least one update was reported");
    let mut expected = steps.iter().filter(|s| got.contains(s)).cloned().collect::<Vec<_>>();
    expected.dedup();
    assert_eq!(got, expected, "reported in order, each once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_payment_token_travels_in_the_metadata_and_oversized_answers_are_fatal() {
    let peer = agent(false).await;
    let mut ctx = TaskContext::detached("genesis.direct", TaskId::generate());
    ctx.payment_token = Some("pay-token-for-this-task".into());
    let result = direct(&peer, ctx, json!({"mode": "echo"})).await.expect("completes");
    assert_eq!(echoed(&result)["metadata"]["genesis.payment_token"], "pay-token-for-this-task");

    // The agent echoes the payload back, so a 5 MiB payload makes a 5 MiB answer (limit: 4 MiB).
    let ctx = TaskContext::detached("genesis.direct", TaskId::generate());
    let blob = "x".repeat(5 << 20);
    match direct(&peer, ctx, json!({"mode": "echo", "blob": blob})).await {
        Err(ExecError::Fatal(e)) => assert!(e.contains("4194304-byte limit"), "{e}"),
        other => panic!("expected a fatal error, got {:?}", other.map(|_| "a result")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_is_unavailable() {
    let port = genesis_testkit::free_port();
    let spec = a2a_agent("genesis.direct", format!("http://127.0.0.1:{port}"), 0);
    let ex = ExecutorRegistry::builtin().for_agent(&spec).expect("built without the agent");
    let ctx = TaskContext::detached("genesis.direct", TaskId::generate());
    match ex.execute(&ctx, &json!({})).await {
        Err(ExecError::Unavailable(e)) => {
            assert!(e.contains("agent card") && !e.contains(KEY_HEADER.1), "{e}")
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

/// With the agent down, the tasks wait without spending attempts while the circuit opens; once the
/// agent starts (on the configured port), they all complete on their first attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_is_down_opens_the_circuit_and_its_tasks_wait_for_it() {
    let port = genesis_testkit::free_port();
    let bus = memory();
    let mut spec = a2a_agent("genesis.ops", format!("http://127.0.0.1:{port}"), 0);
    spec.breaker = BreakerSpec { failures: 2, open_for: Duration::from_millis(300) };
    let rt = run(&bus, vec![spec]).await;
    let handle = rt.handle();
    let tasks = [
        publish(&bus, "genesis.ops", json!({"mode": "echo", "n": 1})).await,
        publish(&bus, "genesis.ops", json!({"mode": "echo", "n": 2})).await,
        publish(&bus, "genesis.ops", json!({"mode": "echo", "n": 3})).await,
    ];
    let opened = CircuitLabel { agent: "genesis.ops".into(), state: "open".into() };
    eventually(WAIT, "the circuit opens", || async {
        (handle.metrics().circuit_transitions.get_or_create(&opened).get() >= 1).then_some(())
    })
    .await;
    let unavailable =
        handle.metrics().tasks_unavailable.get_or_create(&AgentLabel { agent: "genesis.ops".into() }).get();
    assert!(unavailable >= 2, "{unavailable} unavailable attempts");
    for t in &tasks {
        let r = bus.task(&t.topic, &t.task_id.to_string()).await.expect("read").expect("a record");
        assert!(!r.status.is_final(), "max_retries = 0, yet the task waits: no attempt was spent ({r:?})");
    }
    assert!(bus.dlq_list(&tasks[0].topic, &DlqFilter::default(), 10).await.expect("dlq").is_empty());

    let peer = tokio::task::spawn_blocking(move || A2aAgent::builder().port(port).start()).await.expect("agent start");
    for t in &tasks {
        let r = final_record(&bus, t, WAIT).await;
        assert_eq!((r.status, r.attempts), (TaskStatus::Succeeded, 1), "{r:?}");
        assert_eq!(echoed(r.result.as_ref().expect("result"))["metadata"]["genesis.attempt"].as_f64(), Some(1.0));
    }
    assert!(bus.dlq_list(&tasks[0].topic, &DlqFilter::default(), 10).await.expect("dlq").is_empty());
    let state = handle.metrics().circuit_state.get_or_create(&AgentLabel { agent: "genesis.ops".into() }).get();
    assert_eq!(state, 0, "closed again (genesis_circuit_state)");
    drop(peer);
    rt.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_tasks_complete_and_failures_dead_letter() {
    let redis = tokio::task::spawn_blocking(genesis_testkit::RedisServer::start).await.expect("redis start");
    let peer = agent(false).await;
    let bus = Bus::Redis(RedisBus::connect(&redis.url(), fast_settings("x").bus.reconnect).await.expect("connect"));
    let rt = run(&bus, vec![a2a_agent("genesis.marketing", peer.url(), 1)]).await;
    let ok = publish(&bus, "genesis.marketing", json!({"mode": "echo", "campaign": "spring"})).await;
    let failing = publish(&bus, "genesis.marketing", json!({"mode": "fail", "message": "quota exceeded"})).await;
    let r = final_record(&bus, &ok, WAIT).await;
    assert_eq!((r.status, r.attempts), (TaskStatus::Succeeded, 1), "{r:?}");
    assert_eq!(echoed(r.result.as_ref().expect("result"))["echo"]["campaign"], "spring");
    let r = final_record(&bus, &failing, WAIT).await;
    assert_eq!((r.status, r.reason.as_deref(), r.attempts), (TaskStatus::Dead, Some("retries_exhausted"), 2));
    let dlq = bus.dlq_list(&failing.topic, &DlqFilter::default(), 10).await.expect("dlq");
    assert!(dlq.len() == 1 && dlq[0].error.contains("quota exceeded"), "{dlq:?}");
    rt.shutdown().await.expect("clean shutdown");
}
