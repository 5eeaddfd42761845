//! What the workflow engine repairs after a crash or an outage, found by the chaos harness's workflow
//! workload (docs/CHAOS.md, "Findings"):
//!
//! - a drive lease that could not be given back because Redis was down is given back once Redis
//!   answers again, not left to expire (`WorkflowStore::release_or_keep_trying`): before, the
//!   workflow's next steps were published only when the 10 s lease expired;
//! - a final transition saved without its effects carried out (its last events, the spend summary)
//!   stays on the sweeper's work list until they are: before, the workflow left the open index at
//!   once and its outbox was never carried out.
// Tests report by panicking: unwrap/expect are allowed here (not in the crates).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use genesis_actors::bus::redis::RedisBus;
use genesis_actors::bus::Bus;
use genesis_actors::policy::backoff::Backoff;
use genesis_actors::roster::{AgentSpec, ExecutorSpec, Roster};
use genesis_actors::settings::RuntimeSettings;
use genesis_actors::task::TenantId;
use genesis_actors::workflow::events::kind;
use genesis_actors::workflow::machine::{self, Input, TaskOutcome};
use genesis_actors::workflow::plan::Plan;
use genesis_actors::workflow::state::WorkflowStatus;
use genesis_actors::workflow::store::{keys, WorkflowStore};
use genesis_actors::workflow::{StartRequest, WorkflowSettings, Workflows};
use genesis_testkit::RedisServer;
use std::time::{Duration, Instant};

const LEASE: Duration = Duration::from_secs(10);

async fn held(c: &mut redis::aio::MultiplexedConnection, id: &str) -> Option<String> {
    redis::cmd("GET").arg(keys::lease(id)).query_async(c).await.expect("GET")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_not_given_back_during_an_outage_is_given_back_when_redis_answers() {
    let mut server = tokio::task::spawn_blocking(RedisServer::start).await.expect("redis-server");
    let url = server.url();
    let reconnect = Backoff::new(Duration::from_millis(20), Duration::from_millis(200), 2.0);
    let bus = Bus::Redis(RedisBus::connect(&url, reconnect).await.expect("bus"));
    let store = WorkflowStore::for_bus(&bus, &WorkflowSettings::default());
    assert!(store.lease("w1", "driver-1", LEASE).await.expect("lease"));
    assert!(store.lease("w2", "driver-2", LEASE).await.expect("lease"));

    server.kill();
    assert!(store.release_or_keep_trying("w1", "driver-1", LEASE).await.is_err(), "Redis is down");
    // The control: a plain release during the outage is simply lost.
    assert!(store.release("w2", "driver-2").await.is_err());
    tokio::task::block_in_place(|| server.restart());

    let client = redis::Client::open(url.as_str()).expect("client");
    let mut c = client.get_multiplexed_async_connection().await.expect("connection");
    let end = Instant::now() + Duration::from_secs(3);
    while held(&mut c, "w1").await.is_some() {
        assert!(Instant::now() < end, "the lease of w1 is still held 3 s after Redis is back (it lasts {LEASE:?})");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The lease survived the restart (append-only file): only the background tries gave w1's back.
    assert_eq!(held(&mut c, "w2").await.as_deref(), Some("driver-2"));
    assert!(store.lease("w1", "driver-3", LEASE).await.expect("lease"), "another driver may take w1 now");
    assert!(!store.lease("w2", "driver-3", LEASE).await.expect("lease"));
}

fn engine(bus: Bus) -> Workflows {
    let agent = AgentSpec {
        name: "wf.a".into(),
        topic: "wf.a".parse().expect("topic"),
        concurrency: 1,
        max_retries: 0,
        retry_delay: Duration::from_millis(10),
        timeout: Duration::from_secs(5),
        executor: ExecutorSpec::Named("simulated".into()),
        rate: None,
        breaker: Default::default(),
        dlq: Default::default(),
    };
    let mut settings = RuntimeSettings::defaults("n1");
    settings.workflows.sweep_interval = Duration::from_millis(50);
    Workflows::new(bus, &Roster { agents: vec![agent] }, &settings)
}

/// A node applies the last step's outcome, saves the final transition (with its effects in the
/// outbox) and dies before carrying them out: a sweeper must carry them out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_effects_of_a_final_transition_a_node_left_undone_are_carried_out_by_the_sweeper() {
    let server = tokio::task::spawn_blocking(RedisServer::start).await.expect("redis-server");
    let reconnect = Backoff::new(Duration::from_millis(20), Duration::from_millis(200), 2.0);
    let w = engine(Bus::Redis(RedisBus::connect(&server.url(), reconnect).await.expect("bus")));
    let plan = Plan::from_json(&serde_json::json!({"steps": [{"id": "a", "agent": "wf.a"}]})).expect("plan");
    let req = StartRequest { tenant: TenantId::default(), workflow_id: Some("w1".into()), ..Default::default() };
    let started = w.start(plan, req).await.expect("starts").workflow;
    let task_id = started.step("a").and_then(|s| s.task_id).expect("a is published");

    // The node: the outcome applied and saved, then nothing (it died before driving).
    let (mut wf, version) = w.store().load("w1").await.expect("load").expect("stored");
    let outcome = TaskOutcome::Succeeded { output: serde_json::json!(1), attempts: 1 };
    assert!(machine::apply(&mut wf, Input::TaskEnded { task_id, outcome }, genesis_actors::task::now_ms()).unwrap());
    assert_eq!(wf.status, WorkflowStatus::Succeeded);
    assert!(!wf.outbox.is_empty(), "the final events and the summary wait in the outbox");
    assert!(w.store().save(&wf, version).await.expect("save"));

    let end = Instant::now() + Duration::from_secs(5);
    loop {
        tokio::time::sleep(Duration::from_millis(60)).await;
        w.sweep().await.expect("sweep");
        let (now, _) = w.store().load("w1").await.expect("load").expect("stored");
        if now.outbox.is_empty() {
            break;
        }
        assert!(Instant::now() < end, "the sweeper left the final effects undone for 5 s: {:?}", now.outbox);
    }
    let events = w.events(None, 100).await.expect("events");
    assert!(events.iter().any(|e| e.event.workflow_id == "w1" && e.event.kind == kind::WORKFLOW_SUCCEEDED));
    assert!(w.store().not_final(10).await.expect("open").is_empty(), "settled: off the sweeper's list");
}
