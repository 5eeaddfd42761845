//! The `http` executor against a real HTTP agent: an axum server on 127.0.0.1 started by each test,
//! answering by path, recording every request it gets. The scenarios drive the whole runtime (actor
//! tree, fetcher, workers, breaker) on the in-process bus and on a real Redis, and check durable
//! outcomes: records, dead letters, and what the agent saw. See docs/agents.md (`## http`) for the
//! contract these tests cite, docs/semantics.md for retries and dead letters.
// Tests and benches report by panicking: unwrap/expect are allowed here (not in the crates).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use axum::body::{Body, Bytes};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use genesis_actors::bus::memory::MemoryBus;
use genesis_actors::bus::redis::RedisBus;
use genesis_actors::bus::{Bus, DlqFilter, TaskStatus};
use genesis_actors::executor::{ExecError, Executor, ExecutorRegistry, TaskContext, CANCEL_GRACE};
use genesis_actors::metrics::CircuitLabel;
use genesis_actors::roster::{AgentSpec, BreakerSpec, Endpoint, ExecutorSpec};
use genesis_actors::runtime::Runtime;
use genesis_actors::secret::Hidden;
use genesis_actors::task::{now_ms, TaskEnvelope, TaskId};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;

const WAIT: Duration = Duration::from_secs(30);
const API_KEY: &str = "k-3f9a-secret";

// ---------------------------------------------------------------------------------------------------
// The agent: a real HTTP server
// ---------------------------------------------------------------------------------------------------

/// One request as the agent saw it.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
    headers: HeaderMap,
    body: Value,
    /// When it arrived, Unix ms (the same clock as the records' `at`).
    at_ms: u64,
}

#[derive(Clone, Default)]
struct Log {
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Requests to `/hang` whose handler was dropped: the client went away.
    dropped: Arc<AtomicUsize>,
}

struct Agent {
    base: String,
    log: Log,
    server: tokio::task::JoinHandle<()>,
}

impl Agent {
    async fn start() -> Agent {
        Agent::serve(tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the agent")).await
    }

    async fn serve(listener: tokio::net::TcpListener) -> Agent {
        let base = format!("http://{}", listener.local_addr().expect("agent addr"));
        let log = Log::default();
        let app = axum::Router::new().fallback(answer).with_state(log.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Agent { base, log, server }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn seen(&self, path: &str) -> Vec<Seen> {
        self.log.seen.lock().map(|s| s.iter().filter(|r| r.path == path).cloned().collect()).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Counts a dropped `/hang` handler.
struct DropGuard(Arc<AtomicUsize>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

const FIVE_MIB: usize = 5 * 1024 * 1024;

async fn answer(
    axum::extract::State(log): axum::extract::State<Log>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let seen = Seen { path: uri.path().to_string(), headers, body: body.clone(), at_ms: now_ms() };
    if let Ok(mut s) = log.seen.lock() {
        s.push(seen);
    }
    match uri.path() {
        "/echo" => Json(json!({"echo": body["payload"], "attempt": body["attempt"]})).into_response(),
        "/fail" => (StatusCode::INTERNAL_SERVER_ERROR, "database down").into_response(),
        "/busy" if body["attempt"] == json!(1) => {
            (StatusCode::TOO_MANY_REQUESTS, [(RETRY_AFTER, "1")], Json(json!({"error": "slow down"}))).into_response()
        }
        "/busy" => Json(json!({"ok": "after waiting"})).into_response(),
        "/bad" => (StatusCode::BAD_REQUEST, Json(json!({"error": "payload needs `name`"}))).into_response(),
        "/text" => "<html>done</html>".into_response(),
        "/empty" => StatusCode::NO_CONTENT.into_response(),
        // A valid JSON string of 5 MiB, with its Content-Length.
        "/big" => Json(json!("x".repeat(FIVE_MIB))).into_response(),
        // The same size, chunked: no Content-Length, the limit is found while reading.
        "/big-stream" => {
            let chunks = (0..FIVE_MIB / 65_536).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b' '; 65_536])));
            Body::from_stream(futures::stream::iter(chunks)).into_response()
        }
        "/hang" => {
            let _guard = DropGuard(log.dropped.clone());
            std::future::pending::<()>().await;
            StatusCode::OK.into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

// ---------------------------------------------------------------------------------------------------
// The runtime around it
// ---------------------------------------------------------------------------------------------------

struct Harness {
    bus: Bus,
    _redis: Option<RedisServer>,
}

impl Harness {
    fn memory() -> Harness {
        Harness { bus: Bus::Memory(MemoryBus::new()), _redis: None }
    }

    async fn redis() -> Harness {
        let server = RedisServer::start();
        let bus = RedisBus::connect(&server.url(), fast_settings("x").bus.reconnect).await.expect("connect");
        Harness { bus: Bus::Redis(bus), _redis: Some(server) }
    }

    async fn run(&self, spec: AgentSpec) -> Runtime {
        let settings = fast_settings("http-node");
        Runtime::start(self.bus.clone(), settings, roster(vec![spec]), ExecutorRegistry::builtin())
            .await
            .expect("runtime starts")
    }
}

macro_rules! both_buses {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                super::$name(super::Harness::memory()).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                super::$name(super::Harness::redis().await).await
            }
        }
    )*};
}

both_buses!(
    ok_answers_are_results_and_the_request_is_as_documented,
    server_errors_are_retried_then_dead_lettered,
    retry_after_is_honoured,
    client_errors_and_non_json_answers_are_fatal,
    oversized_answers_are_fatal,
    an_unreachable_agent_opens_the_circuit_and_spends_no_attempt,
    a_timeout_aborts_the_request_at_the_agent,
);

/// An agent on `url` with the `X-Api-Key` header configured.
fn http_agent(name: &str, url: &str, max_retries: u32) -> AgentSpec {
    let mut spec = agent(name, 2, max_retries);
    spec.executor = ExecutorSpec::Http(Endpoint {
        url: url.to_string(),
        headers: vec![("X-Api-Key".to_string(), Hidden::new(API_KEY))],
    });
    spec
}

async fn dead_letters(bus: &Bus, t: &TaskEnvelope) -> Vec<genesis_actors::bus::DeadLetter> {
    bus.dlq_list(&t.topic, &DlqFilter::default(), 100).await.expect("dlq list")
}

// ---------------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------------

async fn ok_answers_are_results_and_the_request_is_as_documented(h: Harness) {
    let agent = Agent::start().await;
    let rt = h.run(http_agent("http.echo", &agent.url("/echo"), 3)).await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut env = TaskEnvelope::new(topic("http.echo"), tenant("tenant-test"), json!({"name": "x", "n": 3}));
    env.correlation_id = "order-77".into();
    env.traceparent = Some(format!("00-{trace_id}-00f067aa0ba902b7-01"));
    h.bus.publish(&env, TTL).await.expect("publish");

    let r = final_record(&h.bus, &env, WAIT).await;
    assert_eq!(r.status, TaskStatus::Succeeded, "{r:?}");
    assert_eq!(r.attempts, 1);
    assert_eq!(r.result, Some(json!({"echo": {"name": "x", "n": 3}, "attempt": 1})));

    let seen = agent.seen("/echo");
    assert_eq!(seen.len(), 1, "one POST per attempt");
    let req = &seen[0];
    let b = &req.body;
    assert_eq!(b["task_id"], json!(env.task_id.to_string()));
    assert_eq!(b["attempt"], json!(1));
    assert_eq!(b["tenant_id"], json!("tenant-test"));
    assert_eq!(b["correlation_id"], json!("order-77"));
    assert_eq!(b["payload"], json!({"name": "x", "n": 3}));
    let deadline = b["deadline"].as_u64().expect("deadline in Unix ms");
    // The agent's timeout is 10 s: the deadline lies after the request and within that timeout of it.
    assert!(deadline > req.at_ms && deadline <= req.at_ms + 10_000, "deadline {deadline}, arrival {}", req.at_ms);
    let keys: Vec<&str> = b.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
    assert_eq!(keys.len(), 6, "exactly the documented fields: {keys:?}");

    let header = |n: &str| req.headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
    assert_eq!(header("content-type").as_deref(), Some("application/json"));
    assert_eq!(header("x-api-key").as_deref(), Some(API_KEY), "the configured header is sent");
    let tp = header("traceparent").expect("a traceparent header");
    let parts: Vec<&str> = tp.split('-').collect();
    assert_eq!((parts.len(), parts[0], parts.get(1).copied()), (4, "00", Some(trace_id)), "{tp}");
    assert!(header("genesis-payment-token").is_none(), "no token without payments");
    rt.shutdown().await.expect("clean shutdown");
}

async fn server_errors_are_retried_then_dead_lettered(h: Harness) {
    let agent = Agent::start().await;
    let rt = h.run(http_agent("http.fail", &agent.url("/fail"), 2)).await;
    let t = publish(&h.bus, "http.fail", json!({})).await;
    let r = final_record(&h.bus, &t, WAIT).await;
    assert_eq!(r.status, TaskStatus::Dead, "{r:?}");
    assert_eq!(r.reason.as_deref(), Some("retries_exhausted"));
    assert_eq!(r.attempts, 3, "max_retries + 1 attempts");
    let error = r.error.unwrap_or_default();
    assert!(error.contains("HTTP 500 Internal Server Error: database down"), "{error}");
    assert!(!error.contains(API_KEY));
    let attempts: Vec<Value> = agent.seen("/fail").iter().map(|s| s.body["attempt"].clone()).collect();
    assert_eq!(attempts, vec![json!(1), json!(2), json!(3)]);
    let dlq = dead_letters(&h.bus, &t).await;
    assert_eq!(dlq.len(), 1);
    assert_eq!((dlq[0].reason.as_str(), dlq[0].attempts), ("retries_exhausted", 3));
    rt.shutdown().await.expect("clean shutdown");
}

async fn retry_after_is_honoured(h: Harness) {
    let agent = Agent::start().await;
    // retry_delay is 30 ms: only Retry-After can hold the retry back a whole second.
    let rt = h.run(http_agent("http.busy", &agent.url("/busy"), 2)).await;
    let t = publish(&h.bus, "http.busy", json!({})).await;
    let r = final_record(&h.bus, &t, WAIT).await;
    assert_eq!(r.status, TaskStatus::Succeeded, "{r:?}");
    assert_eq!((r.attempts, r.result), (2, Some(json!({"ok": "after waiting"}))));
    assert_eq!(r.history.len(), 1, "{:?}", r.history);
    let failed = &r.history[0];
    assert!(failed.error.contains("HTTP 429 Too Many Requests: slow down"), "{}", failed.error);
    // The retry was due at `failed.at + 1 s` (the failure's time plus its delay, written together);
    // the second request cannot have arrived before it.
    let seen = agent.seen("/busy");
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].body["attempt"], json!(2));
    assert!(
        seen[1].at_ms >= failed.at + 1_000,
        "retry arrived {} ms after the 429 was recorded; Retry-After said 1 s",
        seen[1].at_ms as i64 - failed.at as i64
    );
    rt.shutdown().await.expect("clean shutdown");
}

async fn client_errors_and_non_json_answers_are_fatal(h: Harness) {
    let agent = Agent::start().await;
    let rt = h.run(http_agent("http.bad", &agent.url("/bad"), 3)).await;
    let t = publish(&h.bus, "http.bad", json!({})).await;
    let r = final_record(&h.bus, &t, WAIT).await;
    assert_eq!(r.status, TaskStatus::Dead, "{r:?}");
    assert_eq!((r.reason.as_deref(), r.attempts), (Some("fatal_error"), 1));
    assert_eq!(r.error.as_deref(), Some("the agent answered HTTP 400 Bad Request: payload needs `name`"));
    assert_eq!(agent.seen("/bad").len(), 1, "a fatal error is not retried");
    assert_eq!(dead_letters(&h.bus, &t).await.len(), 1);
    rt.shutdown().await.expect("clean shutdown");

    let rt = h.run(http_agent("http.text", &agent.url("/text"), 3)).await;
    let t = publish(&h.bus, "http.text", json!({})).await;
    let r = final_record(&h.bus, &t, WAIT).await;
    assert_eq!((r.status, r.reason.as_deref()), (TaskStatus::Dead, Some("fatal_error")), "{r:?}");
    let error = r.error.unwrap_or_default();
    assert!(
        error.contains("HTTP 200 OK with a body that is not JSON") && error.contains("<html>done</html>"),
        "{error}"
    );
    rt.shutdown().await.expect("clean shutdown");

    let rt = h.run(http_agent("http.empty", &agent.url("/empty"), 3)).await;
    let t = publish(&h.bus, "http.empty", json!({})).await;
    let r = final_record(&h.bus, &t, WAIT).await;
    assert_eq!(r.status, TaskStatus::Succeeded, "204 is success with no result: {r:?}");
    assert_eq!(r.result.unwrap_or(Value::Null), Value::Null);
    rt.shutdown().await.expect("clean shutdown");
}

async fn oversized_answers_are_fatal(h: Harness) {
    let agent = Agent::start().await;
    for path in ["/big", "/big-stream"] {
        let name = format!("http.{}", path.trim_start_matches('/'));
        let rt = h.run(http_agent(&name, &agent.url(path), 3)).await;
        let t = publish(&h.bus, &name, json!({})).await;
        let r = final_record(&h.bus, &t, WAIT).await;
        assert_eq!(
            (r.status, r.reason.as_deref(), r.attempts),
            (TaskStatus::Dead, Some("fatal_error"), 1),
            "{path}: {r:?}"
        );
        let error = r.error.unwrap_or_default();
        assert!(error.starts_with("response exceeds 4 MiB"), "{path}: {error}");
        rt.shutdown().await.expect("clean shutdown");
    }
}

async fn an_unreachable_agent_opens_the_circuit_and_spends_no_attempt(h: Harness) {
    // A port that was free a moment ago: nothing listens there until the agent starts below.
    let port = free_port();
    let name = "http.down";
    // No retries: a task that spent an attempt on the unreachable agent would be dead at once.
    let mut spec = http_agent(name, &format!("http://127.0.0.1:{port}/echo"), 0);
    spec.breaker = BreakerSpec { failures: 2, open_for: Duration::from_millis(300) };
    let rt = h.run(spec).await;
    let tasks = [
        publish(&h.bus, name, json!({"i": 0})).await,
        publish(&h.bus, name, json!({"i": 1})).await,
        publish(&h.bus, name, json!({"i": 2})).await,
    ];

    let handle = rt.handle();
    let opened = CircuitLabel { agent: name.into(), state: "open".into() };
    eventually(WAIT, "the circuit opens", || async {
        (handle.metrics().circuit_transitions.get_or_create(&opened).get() >= 1).then_some(())
    })
    .await;
    for t in &tasks {
        let r = h.bus.task(&t.topic, &t.task_id.to_string()).await.expect("record");
        assert!(r.as_ref().is_none_or(|r| !r.status.is_final()), "nothing ends while the agent is down: {r:?}");
    }
    assert!(dead_letters(&h.bus, &tasks[0]).await.is_empty());

    // The agent comes up on that port; every task then runs once, as its first attempt.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind the agent's port");
    let agent = Agent::serve(listener).await;
    for t in &tasks {
        let r = final_record(&h.bus, t, WAIT).await;
        assert_eq!((r.status, r.attempts), (TaskStatus::Succeeded, 1), "{r:?}");
    }
    assert!(dead_letters(&h.bus, &tasks[0]).await.is_empty());
    let mut attempts: Vec<Value> = agent.seen("/echo").iter().map(|s| s.body["attempt"].clone()).collect();
    attempts.sort_by_key(|a| a.to_string());
    assert_eq!(attempts, vec![json!(1); 3], "each task reached the agent once, as attempt 1");
    let unavailable = handle.metrics().tasks_unavailable.get_or_create(&genesis_actors::metrics::Metrics::agent(name));
    assert!(unavailable.get() >= 2, "the refused calls were counted as unavailable");
    rt.shutdown().await.expect("clean shutdown");
}

async fn a_timeout_aborts_the_request_at_the_agent(h: Harness) {
    let agent = Agent::start().await;
    let mut spec = http_agent("http.hang", &agent.url("/hang"), 0);
    spec.timeout = Duration::from_millis(300);
    let rt = h.run(spec).await;
    let t = publish(&h.bus, "http.hang", json!({})).await;
    let r = final_record(&h.bus, &t, WAIT).await;
    assert_eq!((r.status, r.reason.as_deref()), (TaskStatus::Dead, Some("timeout")), "{r:?}");
    // The request was aborted (its connection closed), so the agent's handler was dropped.
    let dropped = agent.log.dropped.clone();
    eventually(WAIT, "the agent sees the request go away", || async {
        (dropped.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    rt.shutdown().await.expect("clean shutdown");
}

// ---------------------------------------------------------------------------------------------------
// The executor alone (what the worker does not reach yet, and the cancel path's promptness)
// ---------------------------------------------------------------------------------------------------

fn executor(url: &str) -> Arc<dyn Executor> {
    ExecutorRegistry::builtin().for_agent(&http_agent("http.direct", url, 0)).expect("the http executor builds")
}

#[tokio::test]
async fn the_payment_token_is_sent_as_a_header() {
    let agent = Agent::start().await;
    let ex = executor(&agent.url("/echo"));
    let ctx = TaskContext {
        payment_token: Some("pt-123".into()),
        ..TaskContext::detached("http.direct", TaskId::generate())
    };
    let v = ex.execute(&ctx, &json!({"a": 1})).await.expect("ok");
    assert_eq!(v, json!({"echo": {"a": 1}, "attempt": 1}));
    let seen = agent.seen("/echo");
    let token = seen[0].headers.get("genesis-payment-token").and_then(|v| v.to_str().ok());
    assert_eq!(token, Some("pt-123"));
}

#[tokio::test]
async fn nothing_listening_is_unavailable_and_the_error_hides_credentials() {
    let port = free_port();
    let ex = executor(&format!("http://user:pw-secret@127.0.0.1:{port}/run?token=t0ken"));
    let ctx = TaskContext::detached("http.direct", TaskId::generate());
    match ex.execute(&ctx, &json!({})).await {
        Err(e @ ExecError::Unavailable(_)) => {
            assert!(e.is_endpoint_fault());
            let text = e.to_string();
            assert!(text.contains("cannot connect to http://") && text.contains(&port.to_string()), "{text}");
            assert!(!text.contains("pw-secret") && !text.contains("t0ken"), "{text}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn cancel_aborts_the_request_within_the_grace() {
    let agent = Agent::start().await;
    let ex = executor(&agent.url("/hang"));
    let ctx = TaskContext::detached("http.direct", TaskId::generate());
    let cancel = ctx.cancel.clone();
    let work = tokio::spawn(async move { ex.execute(&ctx, &json!({})).await });
    let log = agent.log.clone();
    eventually(WAIT, "the agent has the request", || async {
        (log.seen.lock().map(|s| s.len()).unwrap_or(0) == 1).then_some(())
    })
    .await;
    cancel.cancel();
    // The worker gives a cancelled executor CANCEL_GRACE before dropping it: it must return by then.
    let r = tokio::time::timeout(CANCEL_GRACE, work).await.expect("returned within the grace").expect("no panic");
    assert!(matches!(r, Err(ExecError::Cancelled(_))), "{r:?}");
    let dropped = agent.log.dropped.clone();
    eventually(WAIT, "the agent sees the request go away", || async {
        (dropped.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
}
