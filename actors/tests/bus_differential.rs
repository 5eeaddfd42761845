//! The two buses are one contract: the in-process bus and the Redis bus, driven with the same random
//! sequences of operations (publish, read, begin, complete ok/retry/dead, redeliver, due retries, trim,
//! DLQ replay/delete/purge/retention, progress reports, cancel requests and their delivery, rate
//! limits), must give the same observable results after every step —
//! return values, task records, stats and DLQ contents — once ids and timestamps are normalised
//! (entry and dead-letter ids are named by order of first appearance; times are zeroed).
//!
//! 64 cases from a fixed seed, against one real `redis-server` flushed between cases.
// Tests and benches report by panicking: unwrap/expect are allowed here (not in the crates).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use genesis_actors::bus::memory::MemoryBus;
use genesis_actors::bus::redis::RedisBus;
use genesis_actors::bus::{
    Bus, BusError, Completed, Completion, DeadLetter, DeadLetterRef, Delivery, DlqFilter, DlqRetention, Published,
    Reader,
};
use genesis_actors::policy::backoff::Backoff;
use genesis_actors::policy::rate::RateDecision;
use genesis_actors::roster::RateLimit;
use genesis_actors::task::{TaskEnvelope, TopicName};
use genesis_testkit::{Persistence, RedisServer};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

const TTL: Duration = Duration::from_secs(3600);
/// Small, so that "large" payloads are truncated in the DLQ.
const DLQ_ENTRY_LIMIT: usize = 300;
const CONSUMERS: [&str; 2] = ["n1/genesis.qa", "n2/genesis.qa"];
const REASONS: [&str; 2] = ["retries_exhausted", "poison"];

#[derive(Debug, Clone)]
enum How {
    Ok,
    Retry,
    Dead(usize),
}

#[derive(Debug, Clone)]
enum Op {
    Publish { tenant: u8, big: bool, reply: bool },
    Republish { k: usize },
    AppendJunk { big: bool },
    ReadNew { c: usize, count: usize },
    ReadPending { c: usize, count: usize },
    Begin { c: usize, d: usize },
    Complete { c: usize, d: usize, how: How },
    Redeliver { c: usize, d: usize },
    MoveDue,
    Trim,
    DlqReplay { k: usize, by_task: bool },
    DlqDelete { k: usize, by_task: bool },
    DlqPurge { reason: Option<usize> },
    DlqTrim { max_len: u64 },
    Progress { k: usize, big: bool },
    Cancel { k: usize },
    TakeCancels { c: usize },
    Rate { agent: usize },
}

fn op() -> impl Strategy<Value = Op> {
    let c = 0..CONSUMERS.len();
    let how = prop_oneof![Just(How::Ok), Just(How::Retry), (0..REASONS.len()).prop_map(How::Dead)];
    prop_oneof![
        4 => (0u8..3, any::<bool>(), any::<bool>()).prop_map(|(tenant, big, reply)| Op::Publish { tenant, big, reply }),
        1 => any::<usize>().prop_map(|k| Op::Republish { k }),
        1 => any::<bool>().prop_map(|big| Op::AppendJunk { big }),
        4 => (c.clone(), 1usize..4).prop_map(|(c, count)| Op::ReadNew { c, count }),
        1 => (c.clone(), 1usize..4).prop_map(|(c, count)| Op::ReadPending { c, count }),
        2 => (c.clone(), any::<usize>()).prop_map(|(c, d)| Op::Begin { c, d }),
        5 => (c.clone(), any::<usize>(), how).prop_map(|(c, d, how)| Op::Complete { c, d, how }),
        1 => (c, any::<usize>()).prop_map(|(c, d)| Op::Redeliver { c, d }),
        2 => Just(Op::MoveDue),
        1 => Just(Op::Trim),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(k, by_task)| Op::DlqReplay { k, by_task }),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(k, by_task)| Op::DlqDelete { k, by_task }),
        1 => prop::option::of(0..REASONS.len()).prop_map(|reason| Op::DlqPurge { reason }),
        1 => (1u64..4).prop_map(|max_len| Op::DlqTrim { max_len }),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(k, big)| Op::Progress { k, big }),
        2 => any::<usize>().prop_map(|k| Op::Cancel { k }),
        1 => (0..CONSUMERS.len()).prop_map(|c| Op::TakeCancels { c }),
        1 => (0usize..2).prop_map(|agent| Op::Rate { agent }),
    ]
}

/// Ids named by order of first appearance, per kind (a stream entry and a dead letter may share an id
/// on Redis: they live in different streams).
#[derive(Default)]
struct Ids {
    entries: HashMap<String, usize>,
    dead: HashMap<String, usize>,
}

fn name(map: &mut HashMap<String, usize>, prefix: &str, id: &str) -> String {
    let n = map.len();
    format!("{prefix}{}", *map.entry(id.to_string()).or_insert(n))
}

impl Ids {
    fn entry(&mut self, id: &str) -> String {
        name(&mut self.entries, "e", id)
    }
    fn dead(&mut self, id: &str) -> String {
        name(&mut self.dead, "d", id)
    }

    fn delivery(&mut self, d: &Delivery) -> Value {
        json!({"entry": self.entry(&d.entry_id), "raw": d.raw, "deliveries": d.deliveries})
    }

    fn dead_letter(&mut self, d: &DeadLetter) -> Value {
        let mut v = serde_json::to_value(d).unwrap_or_default();
        v["id"] = json!(self.dead(&d.id));
        v["source_id"] = json!(self.entry(&d.source_id));
        v["dead_at"] = json!(0);
        zero_history(&mut v);
        v
    }
}

fn zero_history(v: &mut Value) {
    if let Some(items) = v.get_mut("history").and_then(Value::as_array_mut) {
        for h in items {
            h["at"] = json!(0);
        }
    }
}

fn error(e: &BusError) -> Value {
    let kind = match e {
        BusError::NotFound(_) => "not_found",
        BusError::Invalid(_) => "invalid",
        // Anything else is a failure of the bus itself, not a difference of contract: show it all.
        other => return json!({"unexpected": other.to_string()}),
    };
    json!({"error": kind})
}

/// One bus with what the driver learnt from it.
struct Side {
    bus: Bus,
    readers: Vec<Reader>,
    deliveries: Vec<Delivery>,
    ids: Ids,
}

impl Side {
    async fn new(bus: Bus, topic: &TopicName) -> Side {
        let bus = bus.with_dlq_entry_limit(DLQ_ENTRY_LIMIT);
        bus.ensure_topics(std::slice::from_ref(topic)).await.expect("topic");
        let mut readers = Vec::new();
        for c in CONSUMERS {
            readers.push(bus.reader(c).await.expect("reader"));
        }
        Side { bus, readers, deliveries: Vec::new(), ids: Ids::default() }
    }

    fn pick(&self, d: usize) -> Option<Delivery> {
        (!self.deliveries.is_empty()).then(|| self.deliveries[d % self.deliveries.len()].clone())
    }

    async fn read(&mut self, got: Result<Vec<Delivery>, BusError>) -> Value {
        match got {
            Ok(batch) => {
                let v: Vec<Value> = batch.iter().map(|d| self.ids.delivery(d)).collect();
                self.deliveries.extend(batch);
                json!(v)
            }
            Err(e) => error(&e),
        }
    }

    async fn dead_letter(&self, topic: &TopicName, k: usize, by_task: bool) -> Option<DeadLetterRef> {
        let list = self.bus.dlq_list(topic, &DlqFilter::default(), usize::MAX).await.ok()?;
        let d = list.get(k % list.len().max(1))?;
        Some(match (&d.task_id, by_task) {
            (Some(t), true) => DeadLetterRef::Task(t.parse().ok()?),
            _ => DeadLetterRef::Entry(d.id.clone()),
        })
    }

    /// Apply one operation; `fresh` is the envelope a `Publish` publishes (the same on both sides).
    async fn apply(
        &mut self,
        topic: &TopicName,
        op: &Op,
        fresh: Option<&TaskEnvelope>,
        tasks: &[TaskEnvelope],
    ) -> Value {
        let bus = self.bus.clone();
        match op {
            Op::Publish { .. } | Op::Republish { .. } => {
                let env = match (op, fresh) {
                    (Op::Republish { k }, _) if !tasks.is_empty() => &tasks[k % tasks.len()],
                    (_, Some(env)) => env,
                    _ => return json!("skip"),
                };
                match bus.publish(env, TTL).await {
                    Ok(Published::Appended(id)) => json!({"appended": self.ids.entry(&id)}),
                    Ok(Published::Duplicate) => json!("duplicate"),
                    Err(e) => error(&e),
                }
            }
            Op::AppendJunk { big } => {
                let junk = if *big { "x".repeat(2 * DLQ_ENTRY_LIMIT) } else { "not json".to_string() };
                match bus.append_raw(topic, &[("task", junk.as_str())]).await {
                    Ok(id) => json!(self.ids.entry(&id)),
                    Err(e) => error(&e),
                }
            }
            Op::ReadNew { c, count } => {
                let got = self.readers[*c].read_new(topic, *count, Duration::ZERO).await;
                self.read(got).await
            }
            Op::ReadPending { c, count } => {
                let got = self.readers[*c].read_pending(topic, "0", *count).await;
                self.read(got).await
            }
            Op::Begin { c, d } => {
                let Some(d) = self.pick(*d) else { return json!("skip") };
                let Some(env) = decode(&d) else { return json!("undecodable") };
                match bus.begin(CONSUMERS[*c], &[(&d, &env)], TTL).await {
                    Ok(run) => json!(run),
                    Err(e) => error(&e),
                }
            }
            Op::Complete { c, d, how } => {
                let Some(d) = self.pick(*d) else { return json!("skip") };
                let completion = match (decode(&d), how) {
                    (None, _) => Completion::Dead { task: None, reason: "decode_error".into(), error: "junk".into() },
                    (Some(task), How::Ok) => Completion::Succeeded { result: json!({"of": task.task_id}), task },
                    (Some(task), How::Retry) => {
                        let mut next = task;
                        next.attempt += 1;
                        Completion::Retry { next, delay: Duration::ZERO, error: "try again".into() }
                    }
                    (Some(task), How::Dead(r)) => {
                        Completion::Dead { task: Some(task), reason: REASONS[*r].into(), error: "gave up".into() }
                    }
                };
                match bus.complete(CONSUMERS[*c], &d, &completion, TTL).await {
                    Ok(Completed::Done) => json!("done"),
                    Ok(Completed::NotOwner) => json!("not_owner"),
                    Err(e) => error(&e),
                }
            }
            Op::Redeliver { c, d } => {
                let Some(d) = self.pick(*d) else { return json!("skip") };
                match bus.redeliver(CONSUMERS[*c], topic, &d.entry_id).await {
                    Ok(Some(fresh)) => {
                        let v = self.ids.delivery(&fresh);
                        self.deliveries.push(fresh);
                        v
                    }
                    Ok(None) => json!(null),
                    Err(e) => error(&e),
                }
            }
            Op::MoveDue => bus.move_due_retries(topic, 100).await.map_or_else(|e| error(&e), |n| json!(n)),
            Op::Trim => bus.trim(topic).await.map_or_else(|e| error(&e), |n| json!(n)),
            Op::DlqReplay { k, by_task } => {
                let Some(r) = self.dead_letter(topic, *k, *by_task).await else { return json!("skip") };
                bus.dlq_replay(topic, &r, TTL).await.map_or_else(|e| error(&e), |env| json!(env.task_id))
            }
            Op::DlqDelete { k, by_task } => {
                let Some(r) = self.dead_letter(topic, *k, *by_task).await else { return json!("skip") };
                match bus.dlq_delete(topic, &r).await {
                    Ok(d) => self.ids.dead_letter(&d),
                    Err(e) => error(&e),
                }
            }
            Op::DlqPurge { reason } => {
                let filter = DlqFilter { reason: reason.map(|r| REASONS[r].to_string()) };
                bus.dlq_purge(topic, &filter).await.map_or_else(|e| error(&e), |n| json!(n))
            }
            Op::Progress { k, big } => {
                let Some(t) = (!tasks.is_empty()).then(|| &tasks[k % tasks.len()]) else { return json!("skip") };
                let p = if *big {
                    json!("p".repeat(genesis_actors::bus::progress::MAX_BYTES))
                } else {
                    json!({"k": k % 7})
                };
                bus.set_progress(topic, &t.task_id.to_string(), &p).await.map_or_else(|e| error(&e), |w| json!(w))
            }
            Op::Cancel { k } => {
                let Some(t) = (!tasks.is_empty()).then(|| &tasks[k % tasks.len()]) else { return json!("skip") };
                match bus.cancel(topic, &t.task_id.to_string()).await {
                    Ok(Some(r)) => json!([r.status, r.node, r.requested_at.is_some()]),
                    Ok(None) => json!(null),
                    Err(e) => error(&e),
                }
            }
            Op::TakeCancels { c } => {
                let node = genesis_actors::bus::keys::node_of_consumer(CONSUMERS[*c]);
                bus.take_cancels(node, 10).await.map_or_else(|e| error(&e), |ids| json!(ids))
            }
            Op::Rate { agent } => {
                // Slow enough that no slot frees within a case: the answers are exact.
                let limit = RateLimit { count: 1, per: Duration::from_secs(3600), burst: 2 };
                match bus.rate_acquire(["genesis.a", "genesis.b"][*agent], &limit).await {
                    Ok(RateDecision::Allowed) => json!("allowed"),
                    Ok(RateDecision::Wait(_)) => json!("wait"),
                    Err(e) => error(&e),
                }
            }
            Op::DlqTrim { max_len } => {
                let retention = DlqRetention { max_age: Duration::from_secs(86_400), max_len: *max_len };
                match bus.dlq_trim(topic, &retention).await {
                    Ok(t) => json!([t.by_age, t.by_len, t.remaining, t.oldest_at.is_some()]),
                    Err(e) => error(&e),
                }
            }
        }
    }

    /// Everything observable after a step: stats, every task's record, the DLQ.
    async fn observe(&mut self, topic: &TopicName, tasks: &[TaskEnvelope]) -> Value {
        let stats = self.bus.stats(topic).await.map_or_else(|e| error(&e), |s| json!(s));
        let mut records = Vec::new();
        for t in tasks {
            let r = self.bus.task(topic, &t.task_id.to_string()).await;
            records.push(match r {
                Ok(Some(r)) => {
                    let mut v = json!(r);
                    v["updated_at"] = json!(0);
                    if r.started_at.is_some() {
                        v["started_at"] = json!(0);
                    }
                    if r.cancel_requested_at.is_some() {
                        v["cancel_requested_at"] = json!(0);
                    }
                    if let Some(id) = &r.dlq_id {
                        v["dlq_id"] = json!(self.ids.dead(id));
                    }
                    zero_history(&mut v);
                    v
                }
                Ok(None) => json!(null),
                Err(e) => error(&e),
            });
        }
        let dlq = match self.bus.dlq_list(topic, &DlqFilter::default(), usize::MAX).await {
            Ok(list) => json!(list.iter().map(|d| self.ids.dead_letter(d)).collect::<Vec<_>>()),
            Err(e) => error(&e),
        };
        json!({"stats": stats, "records": records, "dlq": dlq})
    }
}

fn decode(d: &Delivery) -> Option<TaskEnvelope> {
    TaskEnvelope::decode(d.raw.as_deref()?, usize::MAX).ok().filter(|e| e.topic == d.topic)
}

fn envelope(topic: &TopicName, tenant: u8, big: bool, reply: bool, tasks: &[TaskEnvelope]) -> TaskEnvelope {
    let payload = if big { json!({"blob": "y".repeat(2 * DLQ_ENTRY_LIMIT)}) } else { json!({"n": tasks.len()}) };
    let mut env = TaskEnvelope::new(
        topic.clone(),
        genesis_actors::tenant::TenantId::parse(&format!("tenant-{tenant}")).expect("tenant"),
        payload,
    );
    if let (true, Some(parent)) = (reply, tasks.last()) {
        env.parent = Some(parent.task_id);
        env.correlation_id = parent.correlation_id.clone();
    }
    env
}

async fn run_case(redis: &RedisBus, url: &str, ops: &[Op]) -> Result<(), String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut conn = client.get_multiplexed_async_connection().await.map_err(|e| e.to_string())?;
    let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await.map_err(|e| e.to_string())?;
    let topic: TopicName = "genesis.qa".parse().map_err(|e: String| e)?;
    let mut memory = Side::new(Bus::Memory(MemoryBus::new()), &topic).await;
    let mut real = Side::new(Bus::Redis(redis.clone()), &topic).await;
    let mut tasks: Vec<TaskEnvelope> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let fresh = match op {
            Op::Publish { tenant, big, reply } => Some(envelope(&topic, *tenant, *big, *reply, &tasks)),
            _ => None,
        };
        let a = memory.apply(&topic, op, fresh.as_ref(), &tasks).await;
        let b = real.apply(&topic, op, fresh.as_ref(), &tasks).await;
        tasks.extend(fresh);
        if a != b {
            return Err(format!("step {i} {op:?}: results differ\n memory: {a}\n  redis: {b}"));
        }
        let a = memory.observe(&topic, &tasks).await;
        let b = real.observe(&topic, &tasks).await;
        if a != b {
            return Err(format!("after step {i} {op:?}: state differs\n memory: {a}\n  redis: {b}"));
        }
    }
    Ok(())
}

#[test]
fn the_memory_bus_and_the_redis_bus_agree() {
    let server = RedisServer::builder().persistence(Persistence::None).start();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let backoff = Backoff::new(Duration::from_millis(20), Duration::from_millis(200), 2.0);
    let redis = rt.block_on(RedisBus::connect(&server.url(), backoff)).expect("connect");
    let config = Config {
        cases: 64,
        rng_seed: RngSeed::Fixed(0x6e6e_5e55),
        failure_persistence: None,
        max_shrink_iters: 256,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let url = server.url();
    let outcome = runner.run(&prop::collection::vec(op(), 1..48), |ops| {
        rt.block_on(run_case(&redis, &url, &ops)).map_err(TestCaseError::fail)
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
}
