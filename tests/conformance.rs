//! The bus contract, run against every bus: the in-process bus, a real standalone Redis and a real
//! 3-master Redis Cluster, all started by the harness. Each scenario runs a real runtime (the whole
//! actor tree) and checks durable outcomes.
//! See docs/semantics.md for the guarantees these tests cite.
// Tests and benches report by panicking: unwrap/expect are allowed here (not in the crates).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use futures::future::BoxFuture;
use genesis_actors::agent::supervisor::Child;
use genesis_actors::bus::{
    Begun, Completed, Completion, DeadLetterRef, Delivery, DlqFilter, DlqOverride, DlqRetention, Published, TaskStatus,
};
use genesis_actors::events::RuntimeEvent;
use genesis_actors::executor::{ExecError, Executor, ExecutorRegistry, TaskContext};
use genesis_actors::policy::intensity::Intensity;
use genesis_actors::task::TaskEnvelope;
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::buses::Harness;
use support::*;

const WAIT: Duration = Duration::from_secs(30);

every_bus!(
    completes_and_records_results,
    panic_is_replayed_to_the_restarted_worker,
    retries_then_succeeds,
    exhausted_retries_dead_letter_with_history_and_replay,
    poison_entry_is_dead_lettered_after_the_delivery_limit,
    undecodable_entries_are_dead_lettered,
    timeout_counts_as_a_failed_attempt,
    succeeded_task_is_acked_without_running_again,
    reply_to_publishes_the_result_as_a_new_task,
    intensity_exceeded_escalates_to_the_root,
    root_gives_up_and_the_runtime_ends_with_an_error,
    trimming_removes_acknowledged_entries_only,
    begin_is_fenced_like_an_outcome,
    a_running_record_says_where_and_since_when,
    dead_letters_are_truncated_and_kept_within_their_retention,
);

/// An executor that counts its runs and fails (retryably) while `fail` is set.
#[derive(Default, Clone)]
struct Flaky {
    runs: Arc<AtomicU32>,
    fail: Arc<AtomicBool>,
}

impl Executor for Flaky {
    fn execute<'a>(
        &'a self,
        _: &'a TaskContext,
        _: &'a serde_json::Value,
    ) -> BoxFuture<'a, Result<serde_json::Value, ExecError>> {
        Box::pin(async move {
            self.runs.fetch_add(1, Ordering::SeqCst);
            if self.fail.load(Ordering::SeqCst) {
                Err(ExecError::Retryable("flaky dependency".into()))
            } else {
                Ok(json!({"ok": true}))
            }
        })
    }
}

fn with_flaky(flaky: &Flaky) -> ExecutorRegistry {
    let mut ex = ExecutorRegistry::builtin();
    ex.register("flaky", Arc::new(flaky.clone()));
    ex
}

fn drain(rx: &mut tokio::sync::broadcast::Receiver<RuntimeEvent>) -> Vec<RuntimeEvent> {
    let mut v = Vec::new();
    while let Ok(e) = rx.try_recv() {
        v.push(e);
    }
    v
}

async fn completes_and_records_results(h: Harness) {
    let rt = h.run(fast_settings("n1"), vec![agent("genesis.qa", 3, 3)]).await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        tasks.push(publish(&h.bus, "genesis.qa", json!({})).await);
    }
    for t in &tasks {
        let r = final_record(&h.bus, t, WAIT).await;
        assert_eq!(r.status, TaskStatus::Succeeded);
        assert_eq!(r.attempts, 1);
        assert_eq!(r.result.as_ref().map(|v| v["agent"].clone()), Some(json!("genesis.qa")));
    }
    let stats = h.bus.stats(&topic("genesis.qa")).await.expect("stats");
    assert_eq!((stats.pending, stats.lag, stats.dlq), (0, 0, 0));
    rt.shutdown().await.expect("clean shutdown");
}

async fn panic_is_replayed_to_the_restarted_worker(h: Harness) {
    let rt = h.run(fast_settings("n1"), vec![agent("genesis.build", 2, 3)]).await;
    let mut events = rt.subscribe();
    let t = publish(&h.bus, "genesis.build", json!({"simulate": {"panic_deliveries": 1}})).await;
    let r = final_record(&h.bus, &t, WAIT).await;
    assert_eq!(r.status, TaskStatus::Succeeded, "{r:?}");
    assert_eq!(r.attempts, 1, "a crash is not a failed attempt");
    let ev = drain(&mut events);
    assert!(
        ev.iter().any(|e| matches!(e, RuntimeEvent::ChildFailed { child, .. } if child.starts_with("worker-"))),
        "{ev:?}"
    );
    assert!(
        ev.iter().any(|e| matches!(e, RuntimeEvent::Replayed { deliveries: 2, .. })),
        "replayed on delivery 2: {ev:?}"
    );
    rt.shutdown().await.expect("clean shutdown");
}

async fn retries_then_succeeds(h: Harness) {
    let rt = h.run(fast_settings("n1"), vec![agent("genesis.seo", 1, 3)]).await;
    let t = publish(&h.bus, "genesis.seo", json!({"simulate": {"fail_attempts": 2}})).await;
    let r = final_record(&h.bus, &t, WAIT).await;
    assert_eq!(r.status, TaskStatus::Succeeded);
    assert_eq!(r.attempts, 3);
    assert_eq!(r.history.iter().map(|i| i.attempt).collect::<Vec<_>>(), vec![1, 2]);
    rt.shutdown().await.expect("clean shutdown");
}

async fn exhausted_retries_dead_letter_with_history_and_replay(h: Harness) {
    let flaky = Flaky::default();
    flaky.fail.store(true, Ordering::SeqCst);
    let mut spec = agent("genesis.deploy", 1, 2);
    spec.executor = "flaky".into();
    let rt = h.run_with(fast_settings("n1"), vec![spec], with_flaky(&flaky)).await;
    let t = publish(&h.bus, "genesis.deploy", json!({})).await;
    let r = final_record(&h.bus, &t, WAIT).await;
    assert_eq!(r.status, TaskStatus::Dead);
    assert_eq!(r.reason.as_deref(), Some("retries_exhausted"));
    assert_eq!(flaky.runs.load(Ordering::SeqCst), 3, "attempts = max_retries + 1");
    let dlq = h.bus.dlq_list(&t.topic, &DlqFilter::default(), 10).await.expect("dlq");
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0].task_id.as_deref(), Some(t.task_id.to_string().as_str()));
    assert_eq!(r.dlq_id.as_deref(), Some(dlq[0].id.as_str()), "the record names its dead letter");
    assert_eq!(dlq[0].attempts, 3);
    assert_eq!(dlq[0].history.len(), 3);
    assert!(dlq[0].error.contains("flaky dependency"));

    flaky.fail.store(false, Ordering::SeqCst);
    // Replayed by its task id (the DLQ entry id works too: see the differential test).
    let replayed = h.bus.dlq_replay(&t.topic, &DeadLetterRef::Task(t.task_id), TTL).await.expect("replay");
    assert_eq!(replayed.attempt, 1);
    let r = eventually(WAIT, "replayed task succeeds", || async {
        h.bus.task(&t.topic, &t.task_id.to_string()).await.ok().flatten().filter(|r| r.status == TaskStatus::Succeeded)
    })
    .await;
    assert_eq!(r.attempts, 1);
    assert!(h.bus.dlq_list(&t.topic, &DlqFilter::default(), 10).await.expect("dlq").is_empty());
    assert_eq!(flaky.runs.load(Ordering::SeqCst), 4);
    rt.shutdown().await.expect("clean shutdown");
}

async fn poison_entry_is_dead_lettered_after_the_delivery_limit(h: Harness) {
    let mut s = fast_settings("n1");
    s.bus.max_deliveries = 3;
    let rt = h.run(s, vec![agent("genesis.content", 1, 3)]).await;
    let mut events = rt.subscribe();
    let t = publish(&h.bus, "genesis.content", json!({"simulate": {"panic_deliveries": 1000}})).await;
    let r = final_record(&h.bus, &t, WAIT).await;
    assert_eq!(r.status, TaskStatus::Dead);
    assert_eq!(r.reason.as_deref(), Some("poison"));
    let crashes = drain(&mut events).iter().filter(|e| matches!(e, RuntimeEvent::ChildFailed { .. })).count();
    assert_eq!(crashes, 3, "ran (and crashed) exactly max_deliveries times");
    let dlq = h.bus.dlq_list(&t.topic, &DlqFilter::default(), 10).await.expect("dlq");
    assert_eq!((dlq.len(), dlq[0].deliveries), (1, 4));
    // The agent keeps working after the poison entry is gone.
    let ok = publish(&h.bus, "genesis.content", json!({})).await;
    assert_eq!(final_record(&h.bus, &ok, WAIT).await.status, TaskStatus::Succeeded);
    rt.shutdown().await.expect("clean shutdown");
}

async fn undecodable_entries_are_dead_lettered(h: Harness) {
    let mut s = fast_settings("n1");
    s.bus.max_payload_bytes = 2048;
    let rt = h.run(s, vec![agent("genesis.email", 2, 3)]).await;
    let tp = topic("genesis.email");
    let big = TaskEnvelope::new(tp.clone(), tenant("t"), json!("x".repeat(4096))).to_json();
    let wrong_topic = TaskEnvelope::new(topic("genesis.sales"), tenant("t"), json!({})).to_json();
    let missing_fields = r#"{"task_id": "01J00000000000000000000000", "topic": "genesis.email"}"#;
    // A tenant the payment ledger could not shard (braces are Redis hash-tag characters).
    let bad_tenant = TaskEnvelope::new(tp.clone(), tenant("t"), json!({}))
        .to_json()
        .replace(r#""tenant_id":"t""#, r#""tenant_id":"t{1}""#);
    assert!(bad_tenant.contains("t{1}"), "{bad_tenant}");
    for fields in [
        vec![("task", "not json")],
        vec![("other", "x")],
        vec![("task", big.as_str())],
        vec![("task", wrong_topic.as_str())],
        vec![("task", missing_fields)],
        vec![("task", bad_tenant.as_str())],
    ] {
        h.bus.append_raw(&tp, &fields).await.expect("append");
    }
    let ok = publish(&h.bus, "genesis.email", json!({})).await;
    assert_eq!(final_record(&h.bus, &ok, WAIT).await.status, TaskStatus::Succeeded);
    let dlq = eventually(WAIT, "six dead letters", || async {
        h.bus.dlq_list(&tp, &DlqFilter::default(), 100).await.ok().filter(|d| d.len() == 6)
    })
    .await;
    assert!(dlq.iter().all(|d| d.reason == "decode_error" && d.task_id.is_none()), "{dlq:?}");
    let errors: Vec<&str> = dlq.iter().map(|d| d.error.as_str()).collect();
    assert!(errors.iter().any(|e| e.contains("no `task` field")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("over the limit of 2048")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("belongs to topic `genesis.sales`")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("missing field")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("tenant id \"t{1}\" is not valid")), "{errors:?}");
    assert_eq!(h.bus.stats(&tp).await.expect("stats").pending, 0);
    rt.shutdown().await.expect("clean shutdown");
}

async fn timeout_counts_as_a_failed_attempt(h: Harness) {
    let mut spec = agent("genesis.research", 1, 1);
    spec.timeout = Duration::from_millis(100);
    let rt = h.run(fast_settings("n1"), vec![spec]).await;
    let t = publish(&h.bus, "genesis.research", json!({"simulate": {"sleep_ms": 60000}})).await;
    let r = final_record(&h.bus, &t, WAIT).await;
    assert_eq!(r.status, TaskStatus::Dead);
    assert_eq!(r.reason.as_deref(), Some("timeout"));
    assert_eq!(r.attempts, 2);
    assert!(r.error.as_deref().unwrap_or("").contains("timeout"), "{r:?}");
    rt.shutdown().await.expect("clean shutdown");
}

async fn succeeded_task_is_acked_without_running_again(h: Harness) {
    let flaky = Flaky::default();
    let mut spec = agent("genesis.finance", 1, 3);
    spec.executor = "flaky".into();
    let rt = h.run_with(fast_settings("n1"), vec![spec], with_flaky(&flaky)).await;
    let t = publish(&h.bus, "genesis.finance", json!({})).await;
    assert_eq!(final_record(&h.bus, &t, WAIT).await.status, TaskStatus::Succeeded);
    // The same task delivered again (as after an ack lost in a crash).
    h.bus.append_raw(&t.topic, &[("task", t.to_json().as_str())]).await.expect("append");
    let marker = publish(&h.bus, "genesis.finance", json!({})).await;
    assert_eq!(final_record(&h.bus, &marker, WAIT).await.status, TaskStatus::Succeeded);
    let stats = h.bus.stats(&t.topic).await.expect("stats");
    assert_eq!((stats.pending, stats.lag), (0, 0));
    assert_eq!(flaky.runs.load(Ordering::SeqCst), 2, "the duplicate did not run; the marker did");
    rt.shutdown().await.expect("clean shutdown");
}

async fn reply_to_publishes_the_result_as_a_new_task(h: Harness) {
    let rt = h.run(fast_settings("n1"), vec![agent("genesis.idea.generate", 1, 3), agent("genesis.build", 1, 3)]).await;
    let mut t = TaskEnvelope::new(
        topic("genesis.idea.generate"),
        tenant("tenant-a"),
        json!({"simulate": {"output": {"idea": "x"}}}),
    );
    t.reply_to = Some(topic("genesis.build"));
    h.bus.publish(&t, TTL).await.expect("publish");
    assert_eq!(final_record(&h.bus, &t, WAIT).await.status, TaskStatus::Succeeded);
    let reply = TaskEnvelope { task_id: t.task_id.reply_id(), topic: topic("genesis.build"), ..t.clone() };
    let r = final_record(&h.bus, &reply, WAIT).await;
    assert_eq!(r.status, TaskStatus::Succeeded);
    // The reply's record names its parent; tenant and correlation id travel along the chain.
    let parent = t.task_id.to_string();
    assert_eq!(r.parent.as_deref(), Some(parent.as_str()), "{r:?}");
    assert_eq!((r.tenant_id.as_deref(), r.correlation_id.as_deref()), (Some("tenant-a"), Some(parent.as_str())));
    let first = final_record(&h.bus, &t, WAIT).await;
    assert_eq!((first.parent, first.tenant_id.as_deref()), (None, Some("tenant-a")));
    rt.shutdown().await.expect("clean shutdown");
}

async fn intensity_exceeded_escalates_to_the_root(h: Harness) {
    // Crashes not tied to an entry (here: the fetcher's) count against the intensity; a crash while
    // running an entry is that entry's (bounded by the poison limit, tests/supervision.rs).
    let mut s = fast_settings("n1");
    s.supervision.agent = Intensity { max_restarts: 2, within: Duration::from_secs(60) };
    s.supervision.root = Intensity { max_restarts: 100, within: Duration::from_secs(60) };
    let rt = h.run(s, vec![agent("genesis.darwin", 1, 3)]).await;
    let mut events = rt.subscribe();
    let handle = rt.handle();
    let escalated =
        |e: &RuntimeEvent| matches!(e, RuntimeEvent::Escalated { supervisor, .. } if supervisor == "genesis.darwin");
    let restarted = |e: &RuntimeEvent| matches!(e, RuntimeEvent::ChildRestarted { supervisor, child, .. } if supervisor == "root" && child == "agent genesis.darwin");
    let mut all = Vec::new();
    eventually(WAIT, "the agent supervisor escalates and the root restarts it", || {
        handle.crash("genesis.darwin", Child::Fetcher);
        all.extend(drain(&mut events));
        let done = all.iter().any(escalated) && all.iter().any(restarted);
        async move { done.then_some(()) }
    })
    .await;
    rt.shutdown().await.expect("clean shutdown");
}

async fn root_gives_up_and_the_runtime_ends_with_an_error(h: Harness) {
    let mut s = fast_settings("n1");
    s.supervision.agent = Intensity { max_restarts: 0, within: Duration::from_secs(60) };
    s.supervision.root = Intensity { max_restarts: 0, within: Duration::from_secs(60) };
    let mut rt = h.run(s, vec![agent("genesis.pricing", 1, 3)]).await;
    assert!(rt.handle().crash("genesis.pricing", Child::Fetcher));
    let outcome = tokio::time::timeout(WAIT, rt.wait()).await.expect("the runtime ends");
    let reason = outcome.expect_err("the root gave up");
    assert!(reason.contains("root supervisor gave up"), "{reason}");
}

/// Driven through the bus directly, so the pending entry is certainly pending when the trim runs: a
/// trim that dropped it would make its redelivery come back empty, and this test fail.
async fn trimming_removes_acknowledged_entries_only(h: Harness) {
    let tp = topic("genesis.analytics");
    h.bus.ensure_topics(std::slice::from_ref(&tp)).await.expect("topic");
    let consumer = "n1/genesis.analytics";
    let mut tasks = Vec::new();
    for _ in 0..31 {
        tasks.push(publish(&h.bus, "genesis.analytics", json!({})).await);
    }
    let mut reader = h.bus.reader(consumer).await.expect("reader");
    let mut deliveries = Vec::new();
    while deliveries.len() < tasks.len() {
        let batch = reader.read_new(&tp, 64, Duration::from_millis(100)).await.expect("read");
        deliveries.extend(batch);
    }
    // Acknowledge every entry but the 11th: it stays pending, with acknowledged entries on both sides.
    let held = deliveries.remove(10);
    let ttl = Duration::from_secs(60);
    for d in &deliveries {
        let env = TaskEnvelope::decode(d.raw.as_deref().expect("raw"), 1 << 20).expect("decode");
        let done = Completion::Succeeded { task: env, result: json!(1) };
        assert_eq!(h.bus.complete(consumer, d, &done, ttl).await.expect("complete"), Completed::Done);
    }
    let removed = h.bus.trim(&tp).await.expect("trim");
    assert_eq!(removed, 10, "exactly the acknowledged entries below the pending one go");
    let stats = h.bus.stats(&tp).await.expect("stats");
    assert_eq!((stats.pending, stats.length), (1, 21), "{stats:?}");
    let again = h.bus.redeliver(consumer, &tp, &held.entry_id).await.expect("redeliver");
    let again = again.expect("the pending entry is still in the stream");
    assert_eq!(again.raw, held.raw, "with its whole envelope");

    let env = TaskEnvelope::decode(again.raw.as_deref().expect("raw"), 1 << 20).expect("decode");
    let done = Completion::Succeeded { task: env, result: json!(1) };
    h.bus.complete(consumer, &again, &done, ttl).await.expect("complete");
    h.bus.trim(&tp).await.expect("trim");
    let stats = h.bus.stats(&tp).await.expect("stats");
    assert!(stats.pending == 0 && stats.length <= 1, "only the last delivered entry may stay: {stats:?}");
}

/// docs/semantics.md, "Delivery" 3 and "Topologies": `begin` writes a task's record only for an entry
/// pending for the consumer on this server. A delivery of an entry this server does not have (as one read
/// from a restarted old master that still claimed to be master) must leave no record, or the publisher's
/// retry of that task would be answered "duplicate" here and the task never run.
async fn begin_is_fenced_like_an_outcome(h: Harness) {
    let tp = topic("genesis.seo");
    h.bus.ensure_topics(std::slice::from_ref(&tp)).await.expect("topic");
    let ttl = Duration::from_secs(60);

    // An entry id this server never had ("0-999999" is below every real id), for a task not published here.
    let env = TaskEnvelope::new(tp.clone(), tenant("tenant-a"), json!({}));
    let phantom = Delivery { topic: tp.clone(), entry_id: "0-999999".into(), raw: Some(env.to_json()), deliveries: 1 };
    let begun = h.bus.begin("n1/genesis.seo", &[(&phantom, &env)], ttl).await.expect("begin");
    assert_eq!(begun, vec![Begun::NotOwner]);
    assert_eq!(h.bus.task(&tp, &env.task_id.to_string()).await.expect("read"), None, "no record without its entry");
    let published = h.bus.publish(&env, ttl).await.expect("publish");
    assert!(matches!(published, Published::Appended(_)), "the task's publish still appends it: {published:?}");

    // Pending for another consumer: n2's begin writes nothing; n1, which holds it, runs it.
    let mut reader = h.bus.reader("n1/genesis.seo").await.expect("reader");
    let d = reader.read_new(&tp, 1, Duration::from_millis(100)).await.expect("read").pop().expect("a delivery");
    assert_eq!(h.bus.begin("n2/genesis.seo", &[(&d, &env)], ttl).await.expect("begin"), vec![Begun::NotOwner]);
    let r = h.bus.task(&tp, &env.task_id.to_string()).await.expect("read").expect("record");
    assert_eq!((r.status, r.node.as_deref()), (TaskStatus::Queued, None), "{r:?}");
    assert_eq!(h.bus.begin("n1/genesis.seo", &[(&d, &env)], ttl).await.expect("begin"), vec![Begun::Run]);
    let r = h.bus.task(&tp, &env.task_id.to_string()).await.expect("read").expect("record");
    assert_eq!((r.status, r.node.as_deref()), (TaskStatus::Running, Some("n1")), "{r:?}");
    let done = Completion::Succeeded { task: env.clone(), result: json!(1) };
    assert_eq!(h.bus.complete("n1/genesis.seo", &d, &done, ttl).await.expect("complete"), Completed::Done);
}

/// docs/semantics.md, "Results": while a task runs, its record names the node and consumer running it
/// and when it started.
async fn a_running_record_says_where_and_since_when(h: Harness) {
    let rt = h.run(fast_settings("n1"), vec![agent("genesis.support", 1, 3)]).await;
    let before = genesis_actors::task::now_ms();
    let t = publish(&h.bus, "genesis.support", json!({"simulate": {"sleep_ms": 1500}})).await;
    let id = t.task_id.to_string();
    let r = eventually(WAIT, "the task runs", || async {
        h.bus.task(&t.topic, &id).await.ok().flatten().filter(|r| r.status == TaskStatus::Running)
    })
    .await;
    assert_eq!((r.node.as_deref(), r.worker.as_deref()), (Some("n1"), Some("n1/genesis.support")), "{r:?}");
    assert!(r.started_at.is_some_and(|s| s >= before.saturating_sub(1000)), "{r:?}");
    assert_eq!(r.tenant_id.as_deref(), Some("tenant-test"));
    assert_eq!(r.correlation_id.as_deref(), Some(id.as_str()));
    assert_eq!(final_record(&h.bus, &t, WAIT).await.status, TaskStatus::Succeeded);
    rt.shutdown().await.expect("clean shutdown");
}

/// docs/semantics.md, "Dead-letter retention": a large original is kept truncated (and cannot be
/// replayed); the trimmer keeps each DLQ within its retention, an agent's override included.
async fn dead_letters_are_truncated_and_kept_within_their_retention(h: Harness) {
    let mut s = fast_settings("n1");
    s.bus.max_payload_bytes = 2048;
    s.bus.dlq.max_entry_bytes = 1024;
    let mut spec = agent("genesis.commerce", 1, 3);
    spec.dlq = DlqOverride { max_age: None, max_len: Some(2) };
    let rt = h.run(s, vec![spec]).await;
    let tp = topic("genesis.commerce");
    let big = TaskEnvelope::new(tp.clone(), tenant("t"), json!("é".repeat(2000))).to_json();
    for _ in 0..4 {
        h.bus.append_raw(&tp, &[("task", big.as_str())]).await.expect("append");
    }
    let all = DlqFilter::default();
    // Four decode errors die; the trimmer keeps the newest two (the agent's dlq_max_len).
    let dlq = eventually(WAIT, "four dead letters trimmed to two", || async {
        let stats = h.bus.stats(&tp).await.ok()?;
        let list = h.bus.dlq_list(&tp, &all, 10).await.ok()?;
        (stats.pending == 0 && stats.lag == 0 && list.len() == 2).then_some(list)
    })
    .await;
    let handle = rt.handle();
    let text = eventually(WAIT, "the trimmer counts what it dropped", || async {
        let text = handle.metrics().encode();
        text.contains("genesis_dlq_trimmed_total{topic=\"genesis.commerce\"} 2").then_some(text)
    })
    .await;
    assert!(text.contains("genesis_dlq_max_len{topic=\"genesis.commerce\"} 2"), "{text}");
    assert!(text.contains("genesis_dlq_max_age_seconds{topic=\"genesis.commerce\"} 1209600"), "{text}");
    for d in &dlq {
        assert!(d.truncated, "{d:?}");
        assert_eq!(d.envelope_bytes, big.len() as u64);
        let kept = d.envelope.as_deref().unwrap_or_default();
        assert!(kept.len() <= 1024 && kept.len() >= 1023 && big.starts_with(kept), "{} bytes kept", kept.len());
    }
    let e = h.bus.dlq_replay(&tp, &DeadLetterRef::Entry(dlq[0].id.clone()), TTL).await.expect_err("truncated");
    assert!(e.to_string().contains("cannot be replayed"), "{e}");
    // By age: a retention of 1 ms drops them all.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let gone =
        h.bus.dlq_trim(&tp, &DlqRetention { max_age: Duration::from_millis(1), max_len: 10 }).await.expect("trim");
    assert_eq!((gone.by_age, gone.by_len, gone.remaining, gone.oldest_at), (2, 0, 0, None));
    rt.shutdown().await.expect("clean shutdown");
}
