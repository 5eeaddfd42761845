//! Supervision regressions (docs/semantics.md, "Supervision"): a crash tied to an entry is contained to
//! that entry — a poison storm on one agent ends as dead letters, the other agents never notice and the
//! node stays up — while crashes not tied to an entry still escalate; a draining node starts nothing
//! new; waiting for the runtime is cancel-safe.
// Tests and benches report by panicking: unwrap/expect are allowed here (not in the crates).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use genesis_actors::agent::supervisor::Child;
use genesis_actors::bus::redis::RedisBus;
use genesis_actors::bus::{Bus, TaskStatus};
use genesis_actors::events::RuntimeEvent;
use genesis_actors::executor::ExecutorRegistry;
use genesis_actors::policy::intensity::Intensity;
use genesis_actors::runtime::Runtime;
use genesis_actors::settings::RuntimeSettings;
use genesis_testkit::RedisServer;
use serde_json::json;
use std::time::Duration;
use support::{agent, eventually, fast_settings, final_record, publish, roster};

const WAIT: Duration = Duration::from_secs(120);

async fn redis_bus(server: &RedisServer) -> Bus {
    Bus::Redis(RedisBus::connect(&server.url(), fast_settings("x").bus.reconnect).await.expect("connect"))
}

/// The shipped supervision limits (10 restarts in 10 s per agent, 5 in 60 s for the root) on fast timings.
fn shipped_limits(node: &str) -> RuntimeSettings {
    let mut s = fast_settings(node);
    let d = RuntimeSettings::defaults(node);
    s.supervision.agent = d.supervision.agent;
    s.supervision.root = d.supervision.root;
    s
}

fn drain(rx: &mut tokio::sync::broadcast::Receiver<RuntimeEvent>, into: &mut Vec<RuntimeEvent>) {
    while let Ok(e) = rx.try_recv() {
        into.push(e);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_storm_stays_with_its_entries() {
    // Panics print a line each; 5,000 of them would drown the test output.
    std::panic::set_hook(Box::new(|_| {}));
    let server = RedisServer::start();
    let bus = redis_bus(&server).await;
    let agents = vec![agent("genesis.build", 4, 3), agent("genesis.deploy", 2, 3)];
    let rt = Runtime::start(bus.clone(), shipped_limits("storm"), roster(agents), ExecutorRegistry::builtin())
        .await
        .expect("runtime starts");
    let mut events = rt.subscribe();
    let mut poison = Vec::new();
    for i in 0..1000 {
        poison.push(publish(&bus, "genesis.build", json!({"i": i, "simulate": {"panic_deliveries": 1000}})).await);
    }
    let mut fine = Vec::new();
    for i in 0..50 {
        fine.push(publish(&bus, "genesis.deploy", json!({"i": i})).await);
    }
    for env in &fine {
        assert_eq!(final_record(&bus, env, WAIT).await.status, TaskStatus::Succeeded, "the other agent never notices");
    }
    let mut seen = Vec::new();
    for env in &poison {
        let r = final_record(&bus, env, WAIT).await;
        assert_eq!(r.status, TaskStatus::Dead);
        assert_eq!(r.reason.as_deref(), Some("poison"), "{r:?}");
        assert!(
            r.error.as_deref().is_some_and(|e| e.contains("last crash") && e.contains("simulated panic")),
            "the dead letter keeps the panic message: {r:?}"
        );
        drain(&mut events, &mut seen);
    }
    drain(&mut events, &mut seen);
    let escalations = seen.iter().filter(|e| matches!(e, RuntimeEvent::Escalated { .. })).count();
    let gave_up = seen.iter().any(|e| matches!(e, RuntimeEvent::RootGaveUp { .. }));
    assert_eq!((escalations, gave_up), (0, false), "entry crashes are not counted against intensity");
    let _ = std::panic::take_hook();
    rt.shutdown().await.expect("the node is still up and stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashes_not_tied_to_an_entry_still_escalate() {
    let server = RedisServer::start();
    let bus = redis_bus(&server).await;
    let mut s = fast_settings("esc");
    s.supervision.agent = Intensity { max_restarts: 2, within: Duration::from_secs(60) };
    s.supervision.root = Intensity { max_restarts: 100, within: Duration::from_secs(60) };
    let rt = Runtime::start(bus, s, roster(vec![agent("genesis.darwin", 1, 3)]), ExecutorRegistry::builtin())
        .await
        .expect("runtime starts");
    let mut events = rt.subscribe();
    let h = rt.handle();
    let mut seen = Vec::new();
    eventually(Duration::from_secs(30), "the agent escalates and the root restarts it", || {
        // Crash the fetcher (it holds no entry) until the agent supervisor runs out of restarts.
        h.crash("genesis.darwin", Child::Fetcher);
        drain(&mut events, &mut seen);
        let escalated =
            seen.iter().any(|e| matches!(e, RuntimeEvent::Escalated { supervisor, .. } if supervisor == "genesis.darwin"));
        let restarted = seen.iter().any(|e| {
            matches!(e, RuntimeEvent::ChildRestarted { supervisor, child, .. } if supervisor == "root" && child == "agent genesis.darwin")
        });
        async move { (escalated && restarted).then_some(()) }
    })
    .await;
    rt.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_root_gives_up_on_crashes_not_tied_to_an_entry() {
    let server = RedisServer::start();
    let bus = redis_bus(&server).await;
    let mut s = fast_settings("gives-up");
    s.supervision.agent = Intensity { max_restarts: 0, within: Duration::from_secs(60) };
    s.supervision.root = Intensity { max_restarts: 0, within: Duration::from_secs(60) };
    let mut rt = Runtime::start(bus, s, roster(vec![agent("genesis.pricing", 1, 3)]), ExecutorRegistry::builtin())
        .await
        .expect("runtime starts");
    assert!(rt.handle().crash("genesis.pricing", Child::Worker(0)));
    let outcome = tokio::time::timeout(Duration::from_secs(30), rt.wait()).await.expect("the runtime ends");
    let reason = outcome.expect_err("the root gave up");
    assert!(reason.contains("root supervisor gave up"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_the_runtime_is_cancel_safe() {
    let server = RedisServer::start();
    let bus = redis_bus(&server).await;
    let mut rt = Runtime::start(
        bus,
        fast_settings("cancel"),
        roster(vec![agent("genesis.seo", 1, 3)]),
        ExecutorRegistry::builtin(),
    )
    .await
    .expect("runtime starts");
    // As `serve` does: poll `wait` inside a select that another branch wins.
    tokio::select! {
        _ = rt.wait() => panic!("the runtime ended by itself"),
        _ = tokio::time::sleep(Duration::from_millis(20)) => {}
    }
    // A later wait must still wait for the tree, not return at once.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), rt.wait()).await.is_err(),
        "wait returned while the actor tree still runs"
    );
    rt.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_node_starts_nothing_new() {
    let server = RedisServer::start();
    let bus = redis_bus(&server).await;
    let mut s = fast_settings("drain");
    s.shutdown_grace = Duration::from_secs(10);
    let rt = Runtime::start(bus.clone(), s, roster(vec![agent("genesis.qa", 1, 3)]), ExecutorRegistry::builtin())
        .await
        .expect("runtime starts");
    let running = publish(&bus, "genesis.qa", json!({"simulate": {"sleep_ms": 700}})).await;
    let id = running.task_id.to_string();
    eventually(Duration::from_secs(10), "the first task runs", || async {
        bus.task(&running.topic, &id).await.ok().flatten().filter(|r| r.status == TaskStatus::Running)
    })
    .await;
    let mut later = Vec::new();
    for _ in 0..5 {
        later.push(publish(&bus, "genesis.qa", json!({})).await);
    }
    rt.shutdown().await.expect("clean shutdown");
    assert_eq!(final_record(&bus, &running, Duration::from_secs(1)).await.status, TaskStatus::Succeeded);
    for env in &later {
        let r = bus.task(&env.topic, &env.task_id.to_string()).await.expect("read").expect("record");
        assert_eq!(r.status, TaskStatus::Queued, "nothing new starts while draining: {r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_node_service_never_ends_the_node() {
    use genesis_actors::node::root::RootChild;
    let server = RedisServer::start();
    let bus = redis_bus(&server).await;
    let mut s = fast_settings("svc");
    // No restart budget at all for the root: before services had their own, the first service crash
    // ended the node.
    s.supervision.root = Intensity { max_restarts: 0, within: Duration::from_secs(60) };
    let rt = Runtime::start(bus.clone(), s, roster(vec![agent("genesis.email", 1, 3)]), ExecutorRegistry::builtin())
        .await
        .expect("runtime starts");
    let mut events = rt.subscribe();
    let h = rt.handle();
    let mut seen = Vec::new();
    for child in [RootChild::Trimmer, RootChild::Sampler, RootChild::Reclaimer, RootChild::RetryScheduler] {
        let before = seen.len();
        assert!(h.crash_root_child(child));
        eventually(Duration::from_secs(10), "the service is restarted", || {
            drain(&mut events, &mut seen);
            let restarted = seen[before..]
                .iter()
                .any(|e| matches!(e, RuntimeEvent::ChildRestarted { supervisor, .. } if supervisor == "root"));
            async move { restarted.then_some(()) }
        })
        .await;
    }
    assert!(!seen.iter().any(|e| matches!(e, RuntimeEvent::RootGaveUp { .. })), "{seen:?}");
    // Still working: a retried task goes through the (restarted) retry scheduler.
    let env = publish(&bus, "genesis.email", json!({"simulate": {"fail_attempts": 1}})).await;
    assert_eq!(final_record(&bus, &env, Duration::from_secs(30)).await.status, TaskStatus::Succeeded);
    rt.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_fetcher_does_not_count_deliveries_of_running_entries() {
    let server = RedisServer::start();
    let bus = redis_bus(&server).await;
    // Two slots: one runs the long task, the other leaves the restarted fetcher credit to read with.
    let rt = Runtime::start(
        bus.clone(),
        fast_settings("fetch"),
        roster(vec![agent("genesis.qa", 2, 3)]),
        ExecutorRegistry::builtin(),
    )
    .await
    .expect("runtime starts");
    let mut events = rt.subscribe();
    let env = publish(&bus, "genesis.qa", json!({"simulate": {"sleep_ms": 3000}})).await;
    let id = env.task_id.to_string();
    eventually(Duration::from_secs(10), "the task runs", || async {
        bus.task(&env.topic, &id).await.ok().flatten().filter(|r| r.status == TaskStatus::Running)
    })
    .await;
    let h = rt.handle();
    let deliveries = || {
        // XPENDING per entry: id, consumer, idle, deliveries (one per line)
        let out = server.cli(&["XPENDING", "genesis:{genesis.qa}:stream", "genesis", "-", "+", "10"]);
        out.lines().last().and_then(|l| l.trim().parse::<u32>().ok())
    };
    assert_eq!(deliveries(), Some(1));
    let mut seen = Vec::new();
    for n in 1..=3 {
        assert!(h.crash("genesis.qa", Child::Fetcher));
        eventually(Duration::from_secs(10), "the fetcher is restarted", || {
            drain(&mut events, &mut seen);
            let restarts = seen
                .iter()
                .filter(|e| matches!(e, RuntimeEvent::ChildRestarted { child, .. } if child == "fetcher"))
                .count();
            async move { (restarts >= n).then_some(()) }
        })
        .await;
        // A quick task through the restarted fetcher: it has read (its pending list first, before the
        // fix) by the time this one succeeds.
        let quick = publish(&bus, "genesis.qa", json!({})).await;
        assert_eq!(final_record(&bus, &quick, Duration::from_secs(10)).await.status, TaskStatus::Succeeded);
    }
    assert_eq!(deliveries(), Some(1), "a fetcher restart must not count as a delivery of a running entry");
    assert_eq!(final_record(&bus, &env, Duration::from_secs(30)).await.status, TaskStatus::Succeeded);
    rt.shutdown().await.expect("clean shutdown");
}
