//! Operating on tasks, on every bus (the in-process bus, a real Redis, a real 3-master Redis Cluster):
//! progress reports on the record, cancellation (queued, running, final) and the agents' rate limits,
//! shared by every node. See docs/semantics.md, "Progress", "Cancellation" and "Rate limits".
// Tests and benches report by panicking: unwrap/expect are allowed here (not in the crates).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use futures::future::BoxFuture;
use genesis_actors::bus::{Begun, Completion, TaskStatus};
use genesis_actors::executor::simulated::Simulated;
use genesis_actors::executor::{ExecError, Executor, ExecutorRegistry, TaskContext};
use genesis_actors::policy::rate::RateDecision;
use genesis_actors::roster::RateLimit;
use genesis_actors::task::TaskEnvelope;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::buses::Harness;
use support::*;

const WAIT: Duration = Duration::from_secs(30);

every_bus!(
    progress_is_kept_only_while_the_record_is_open,
    a_cancel_request_is_read_by_begin_and_delivered_to_the_running_node,
    the_rate_limit_is_one_gcra_per_agent,
    progress_reported_by_the_agent_shows_on_the_record,
    a_queued_task_cancelled_never_runs,
    a_running_task_is_cancelled_at_its_agent,
    the_rate_limit_holds_across_two_nodes,
);

/// Records when each task started (and where), then runs the simulated executor: start times on one
/// clock for every node of the test.
#[derive(Default, Clone)]
struct Recorder {
    starts: Arc<Mutex<Vec<(String, String, Instant)>>>,
}

impl Executor for Recorder {
    fn execute<'a>(&'a self, ctx: &'a TaskContext, payload: &'a Value) -> BoxFuture<'a, Result<Value, ExecError>> {
        if let Ok(mut s) = self.starts.lock() {
            s.push((ctx.task_id.to_string(), ctx.node_id.clone(), Instant::now()));
        }
        Simulated::STEERED.execute(ctx, payload)
    }
}

impl Recorder {
    fn registry(&self) -> ExecutorRegistry {
        let mut ex = ExecutorRegistry::builtin();
        ex.register("recorder", Arc::new(self.clone()));
        ex
    }

    fn starts(&self) -> Vec<(String, String, Instant)> {
        self.starts.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn ran(&self, env: &TaskEnvelope) -> bool {
        let id = env.task_id.to_string();
        self.starts().iter().any(|(t, _, _)| *t == id)
    }
}

fn recorded_agent(name: &str, concurrency: usize) -> genesis_actors::roster::AgentSpec {
    let mut spec = agent(name, concurrency, 3);
    spec.executor = "recorder".into();
    spec.timeout = Duration::from_secs(60);
    spec
}

/// Deliver one published task to `consumer` and mark it running there (the fetcher's steps).
async fn take(h: &Harness, consumer: &str, env: &TaskEnvelope) -> (genesis_actors::bus::Delivery, Begun) {
    let mut reader = h.bus.reader(consumer).await.expect("reader");
    let batch = reader.read_new(&env.topic, 1, Duration::from_millis(100)).await.expect("read");
    let d = batch.into_iter().next().expect("one delivery");
    let begun = h.bus.begin(consumer, &[(&d, env)], TTL).await.expect("begin");
    (d, begun[0])
}

async fn progress_is_kept_only_while_the_record_is_open(h: Harness) {
    let tp = topic("genesis.qa");
    h.bus.ensure_topics(std::slice::from_ref(&tp)).await.expect("topic");
    let env = publish(&h.bus, "genesis.qa", json!({})).await;
    let id = env.task_id.to_string();
    assert!(h.bus.set_progress(&tp, &id, &json!({"pct": 10})).await.expect("progress"), "a queued task");
    let (d, _) = take(&h, "n1/genesis.qa", &env).await;
    assert!(h.bus.set_progress(&tp, &id, &json!({"pct": 50})).await.expect("progress"), "a running task");
    let r = h.bus.task(&tp, &id).await.expect("read").expect("record");
    assert_eq!((r.status, r.progress), (TaskStatus::Running, Some(json!({"pct": 50}))));
    // Too big: a note instead.
    let big = json!({"log": "x".repeat(genesis_actors::bus::progress::MAX_BYTES)});
    assert!(h.bus.set_progress(&tp, &id, &big).await.expect("progress"));
    let r = h.bus.task(&tp, &id).await.expect("read").expect("record");
    assert_eq!(r.progress.as_ref().map(|p| p["truncated"].clone()), Some(json!(true)), "{:?}", r.progress);
    assert!(h.bus.set_progress(&tp, &id, &json!({"pct": 90})).await.expect("progress"));

    let done = Completion::Succeeded { task: env.clone(), result: json!("ok") };
    h.bus.complete("n1/genesis.qa", &d, &done, TTL).await.expect("complete");
    assert!(!h.bus.set_progress(&tp, &id, &json!({"pct": 99})).await.expect("progress"), "final: refused");
    let r = h.bus.task(&tp, &id).await.expect("read").expect("record");
    assert_eq!((r.status, r.progress), (TaskStatus::Succeeded, Some(json!({"pct": 90}))), "the last report stays");
    // An unknown (or expired) task's record is never created by a report.
    let ghost = genesis_actors::task::TaskId::generate().to_string();
    assert!(!h.bus.set_progress(&tp, &ghost, &json!(1)).await.expect("progress"));
    assert_eq!(h.bus.task(&tp, &ghost).await.expect("read"), None);
}

async fn a_cancel_request_is_read_by_begin_and_delivered_to_the_running_node(h: Harness) {
    let tp = topic("genesis.qa");
    h.bus.ensure_topics(std::slice::from_ref(&tp)).await.expect("topic");
    let ghost = genesis_actors::task::TaskId::generate().to_string();
    assert_eq!(h.bus.cancel(&tp, &ghost).await.expect("cancel"), None, "unknown: nothing created");
    assert_eq!(h.bus.task(&tp, &ghost).await.expect("read"), None);

    // Queued: flagged; begin reports the flag.
    let queued = publish(&h.bus, "genesis.qa", json!({})).await;
    let qid = queued.task_id.to_string();
    let req = h.bus.cancel(&tp, &qid).await.expect("cancel").expect("a record");
    assert_eq!((req.status, req.node.as_deref()), (TaskStatus::Queued, None));
    let at = req.requested_at.expect("requested");
    let again = h.bus.cancel(&tp, &qid).await.expect("cancel").expect("a record");
    assert_eq!(again.requested_at, Some(at), "the first request stands");
    assert_eq!(h.bus.task(&tp, &qid).await.expect("read").and_then(|r| r.cancel_requested_at), Some(at));
    let (d, begun) = take(&h, "n1/genesis.qa", &queued).await;
    assert_eq!(begun, Begun::CancelRequested);
    assert!(h.bus.take_cancels("n1", 10).await.expect("take").is_empty(), "queued: no node was asked");
    let dead = Completion::Dead { task: Some(queued.clone()), reason: "cancelled".into(), error: "x".into() };
    h.bus.complete("n1/genesis.qa", &d, &dead, TTL).await.expect("complete");

    // Running on n2: flagged and put on n2's list, once per request; n1's list stays empty.
    let running = publish(&h.bus, "genesis.qa", json!({})).await;
    let rid = running.task_id.to_string();
    let (d, begun) = take(&h, "n2/genesis.qa", &running).await;
    assert_eq!(begun, Begun::Run);
    let req = h.bus.cancel(&tp, &rid).await.expect("cancel").expect("a record");
    assert_eq!((req.status, req.node.as_deref()), (TaskStatus::Running, Some("n2")));
    assert_eq!(h.bus.take_cancels("n2", 10).await.expect("take"), vec![rid.clone()]);
    assert!(h.bus.take_cancels("n2", 10).await.expect("take").is_empty(), "taken once");
    assert!(h.bus.take_cancels("n1", 10).await.expect("take").is_empty());

    // Final: nothing changes, and the answer says so.
    let ok = Completion::Succeeded { task: running.clone(), result: json!(1) };
    h.bus.complete("n2/genesis.qa", &d, &ok, TTL).await.expect("complete");
    let before = h.bus.task(&tp, &qid).await.expect("read").expect("record");
    let fin = h.bus.cancel(&tp, &qid).await.expect("cancel").expect("a record");
    assert_eq!((fin.status, fin.requested_at), (TaskStatus::Dead, None));
    assert_eq!(h.bus.task(&tp, &qid).await.expect("read"), Some(before), "a final record is left as it is");
    let fin = h.bus.cancel(&tp, &rid).await.expect("cancel").expect("a record");
    assert_eq!(fin.status, TaskStatus::Succeeded);
}

async fn the_rate_limit_is_one_gcra_per_agent(h: Harness) {
    let hourly = RateLimit { count: 1, per: Duration::from_secs(3600), burst: 3 };
    for _ in 0..3 {
        assert_eq!(h.bus.rate_acquire("genesis.a", &hourly).await.expect("rate"), RateDecision::Allowed);
    }
    match h.bus.rate_acquire("genesis.a", &hourly).await.expect("rate") {
        // Three burst slots used within moments: the next frees one interval after the first.
        RateDecision::Wait(w) => assert!(w > Duration::from_secs(3500) && w <= Duration::from_secs(3600), "{w:?}"),
        RateDecision::Allowed => panic!("allowed past the burst"),
    }
    assert!(matches!(h.bus.rate_acquire("genesis.a", &hourly).await.expect("rate"), RateDecision::Wait(_)));
    // Another agent's limit is its own.
    assert_eq!(h.bus.rate_acquire("genesis.b", &hourly).await.expect("rate"), RateDecision::Allowed);
}

async fn progress_reported_by_the_agent_shows_on_the_record(h: Harness) {
    let rt = h.run(fast_settings("n1"), vec![agent("genesis.support", 1, 3)]).await;
    let sim = |sleep: u64| json!({"simulate": {"progress": [{"pct": 10}, {"pct": 50}], "sleep_ms": sleep}});
    let t = publish(&h.bus, "genesis.support", sim(1500)).await;
    let id = t.task_id.to_string();
    eventually(WAIT, "the running task's record shows its latest progress", || async {
        let r = h.bus.task(&t.topic, &id).await.ok().flatten()?;
        (r.status == TaskStatus::Running && r.progress == Some(json!({"pct": 50}))).then_some(())
    })
    .await;
    assert_eq!(final_record(&h.bus, &t, WAIT).await.progress, Some(json!({"pct": 50})));
    // Without a sleep the last report is still written before the outcome.
    let quick = publish(&h.bus, "genesis.support", sim(0)).await;
    let r = final_record(&h.bus, &quick, WAIT).await;
    assert_eq!((r.status, r.progress), (TaskStatus::Succeeded, Some(json!({"pct": 50}))));
    rt.shutdown().await.expect("clean shutdown");
}

async fn a_queued_task_cancelled_never_runs(h: Harness) {
    let rec = Recorder::default();
    let tp = topic("genesis.email");
    h.bus.ensure_topics(std::slice::from_ref(&tp)).await.expect("topic");
    let t = publish(&h.bus, "genesis.email", json!({})).await;
    let req = h.bus.cancel(&tp, &t.task_id.to_string()).await.expect("cancel").expect("record");
    assert_eq!(req.status, TaskStatus::Queued);
    let rt = h.run_with(fast_settings("n1"), vec![recorded_agent("genesis.email", 1)], rec.registry()).await;
    let marker = publish(&h.bus, "genesis.email", json!({})).await;
    assert_eq!(final_record(&h.bus, &marker, WAIT).await.status, TaskStatus::Succeeded);
    let r = final_record(&h.bus, &t, WAIT).await;
    assert_eq!((r.status, r.reason.as_deref()), (TaskStatus::Dead, Some("cancelled")), "{r:?}");
    assert!(r.error.as_deref().unwrap_or("").contains("before it ran"), "{r:?}");
    assert!(r.history.last().is_some_and(|h| h.error.contains("cancelled")), "the history shows the cancel: {r:?}");
    assert!(!rec.ran(&t), "a task cancelled while queued never reaches its agent");
    assert!(rec.ran(&marker));
    let dlq = h.bus.dlq_list(&tp, &Default::default(), 10).await.expect("dlq");
    assert_eq!((dlq.len(), dlq[0].reason.as_str()), (1, "cancelled"));
    rt.shutdown().await.expect("clean shutdown");
}

async fn a_running_task_is_cancelled_at_its_agent(h: Harness) {
    let mut spec = agent("genesis.research", 1, 3);
    spec.timeout = Duration::from_secs(600);
    let rt = h.run(fast_settings("n1"), vec![spec]).await;
    let t = publish(&h.bus, "genesis.research", json!({"simulate": {"sleep_ms": 600_000}})).await;
    let id = t.task_id.to_string();
    eventually(WAIT, "the task runs", || async {
        h.bus.task(&t.topic, &id).await.ok().flatten().filter(|r| r.status == TaskStatus::Running)
    })
    .await;
    let req = h.bus.cancel(&t.topic, &id).await.expect("cancel").expect("record");
    assert_eq!((req.status, req.node.as_deref()), (TaskStatus::Running, Some("n1")));
    // Far sooner than its sleep or its timeout: the node stopped it.
    let r = final_record(&h.bus, &t, WAIT).await;
    assert_eq!((r.status, r.reason.as_deref(), r.attempts), (TaskStatus::Dead, Some("cancelled"), 1), "{r:?}");
    assert!(r.error.as_deref().unwrap_or("").contains("while running"), "{r:?}");
    assert!(r.cancel_requested_at.is_some());
    // Cancelling it again changes nothing.
    let again = h.bus.cancel(&t.topic, &id).await.expect("cancel").expect("record");
    assert_eq!((again.status, again.requested_at), (TaskStatus::Dead, None));
    // The agent goes on with the next task.
    let next = publish(&h.bus, "genesis.research", json!({})).await;
    assert_eq!(final_record(&h.bus, &next, WAIT).await.status, TaskStatus::Succeeded);
    rt.shutdown().await.expect("clean shutdown");
}

/// docs/semantics.md, "Rate limits": two nodes share one limit. Checked on the recorded start times:
/// in every window, the tasks started on both nodes together are at most burst + rate × window (plus
/// a tolerance for the moment between the limiter's answer and the executor's start).
async fn the_rate_limit_holds_across_two_nodes(h: Harness) {
    const TASKS: usize = 15;
    let (count, per, burst) = (5, Duration::from_secs(1), 3);
    let tolerance = Duration::from_millis(150);
    let rec = Recorder::default();
    let mut spec = recorded_agent("genesis.seo", 2);
    spec.rate = Some(RateLimit { count, per, burst });
    let n1 = h.run_with(fast_settings("n1"), vec![spec.clone()], rec.registry()).await;
    let n2 = h.run_with(fast_settings("n2"), vec![spec], rec.registry()).await;
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        tasks.push(publish(&h.bus, "genesis.seo", json!({})).await);
    }
    for t in &tasks {
        assert_eq!(final_record(&h.bus, t, WAIT).await.status, TaskStatus::Succeeded);
    }
    let mut starts = rec.starts();
    assert_eq!(starts.len(), TASKS, "each task ran once");
    assert!(starts.iter().any(|s| s.1 == "n1") && starts.iter().any(|s| s.1 == "n2"), "both nodes ran tasks");
    starts.sort_by_key(|s| s.2);
    let interval = per.as_secs_f64() / f64::from(count);
    for i in 0..starts.len() {
        for j in i..starts.len() {
            let window = (starts[j].2 - starts[i].2 + tolerance).as_secs_f64();
            let allowed = f64::from(burst) + window / interval;
            let n = (j - i + 1) as f64;
            assert!(
                n <= allowed,
                "{n} tasks started within {window:.3}s (limit {allowed:.2}): the limit is not shared"
            );
        }
    }
    let text = n1.handle().metrics().encode();
    assert!(text.contains("genesis_rate_limit_wait_seconds_count{agent=\"genesis.seo\"}"), "{text}");
    n1.shutdown().await.expect("clean shutdown");
    n2.shutdown().await.expect("clean shutdown");
}
