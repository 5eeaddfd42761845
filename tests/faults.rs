//! Faults around a running node: Redis killed and restarted mid-run, and two nodes sharing a bus while
//! one runs a task longer than the heartbeat lifetime.
// Tests and benches report by panicking: unwrap/expect are allowed here (not in the crates).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use futures::future::BoxFuture;
use genesis_actors::bus::memory::MemoryBus;
use genesis_actors::bus::redis::RedisBus;
use genesis_actors::bus::{Bus, TaskStatus};
use genesis_actors::executor::{ExecError, Executor, ExecutorRegistry, TaskContext};
use genesis_actors::runtime::Runtime;
use serde_json::json;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::*;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_mid_run_loses_nothing() {
    let mut redis = RedisServer::start();
    let s = fast_settings("n1");
    let bus = Bus::Redis(RedisBus::connect(&redis.url(), s.bus.reconnect).await.expect("connect"));
    let rt = Runtime::start(bus.clone(), s, roster(vec![agent("genesis.support", 4, 3)]), ExecutorRegistry::builtin())
        .await
        .expect("start");
    let mut tasks = Vec::new();
    for _ in 0..120 {
        tasks.push(publish(&bus, "genesis.support", json!({"simulate": {"sleep_ms": 15}})).await);
    }
    // Kill Redis once some, but not all, tasks are done.
    eventually(WAIT, "some tasks succeeded", || async {
        let mut done = 0;
        for t in tasks.iter().take(40) {
            if bus.task(&t.topic, &t.task_id.to_string()).await.ok().flatten().is_some_and(|r| r.status.is_final()) {
                done += 1;
            }
        }
        (done >= 10).then_some(())
    })
    .await;
    redis.restart();
    for t in &tasks {
        let r = final_record(&bus, t, WAIT).await;
        assert_eq!(r.status, TaskStatus::Succeeded, "{r:?}");
    }
    let stats = bus.stats(&topic("genesis.support")).await.expect("stats");
    assert_eq!((stats.pending, stats.lag, stats.dlq), (0, 0, 0), "{stats:?}");
    rt.shutdown().await.expect("clean shutdown");
}

/// Counts runs; sleeps longer than the heartbeat lifetime.
#[derive(Clone, Default)]
struct Slow {
    runs: Arc<AtomicU32>,
}

impl Executor for Slow {
    fn execute<'a>(
        &'a self,
        _: &'a TaskContext,
        _: &'a serde_json::Value,
    ) -> BoxFuture<'a, Result<serde_json::Value, ExecError>> {
        Box::pin(async move {
            self.runs.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(2500)).await;
            Ok(json!("slow"))
        })
    }
}

async fn a_live_nodes_long_task_is_never_stolen(bus: Bus) {
    let slow = Slow::default();
    let mut ex = ExecutorRegistry::builtin();
    ex.register("slow", Arc::new(slow.clone()));
    let mut spec = agent("genesis.marketing", 1, 3);
    spec.executor = "slow".into();
    let a =
        Runtime::start(bus.clone(), fast_settings("node-a"), roster(vec![spec.clone()]), ex.clone()).await.expect("a");
    let b = Runtime::start(bus.clone(), fast_settings("node-b"), roster(vec![spec]), ex).await.expect("b");
    // 2.5 s of work against a 1 s heartbeat lifetime and a 200 ms reclaim interval: only a lease
    // (the owner's live heartbeat) keeps the other node from taking it.
    let t = publish(&bus, "genesis.marketing", json!({})).await;
    let r = final_record(&bus, &t, WAIT).await;
    assert_eq!(r.status, TaskStatus::Succeeded);
    assert_eq!(slow.runs.load(Ordering::SeqCst), 1, "the task ran once: never stolen from a live node");
    a.shutdown().await.expect("a stops");
    b.shutdown().await.expect("b stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_node_not_stolen_redis() {
    let redis = RedisServer::start();
    let bus = Bus::Redis(RedisBus::connect(&redis.url(), fast_settings("x").bus.reconnect).await.expect("connect"));
    a_live_nodes_long_task_is_never_stolen(bus).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_node_not_stolen_memory() {
    a_live_nodes_long_task_is_never_stolen(Bus::Memory(MemoryBus::new())).await;
}
