//! The chaos harness end to end: a short real chaos run must pass every check (with simulated and
//! with outside agents), and a planted broken state must be reported. Each starts its own
//! `redis-server` and `genesis serve` processes (and, for outside agents, the real A2A test agent on
//! a2a-sdk and the process test agent from `tests/agents/`).
// Tests and benches report by panicking: unwrap/expect are allowed here (not in the crates).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use genesis_actors::bus::redis::RedisBus;
use genesis_actors::bus::Bus;
use genesis_actors::payments::authority::Authority;
use genesis_actors::payments::ledger::keys::{self, Shard};
use genesis_actors::payments::ledger::redis::RedisLedger;
use genesis_actors::payments::ledger::Ledger;
use genesis_actors::payments::notify::NotifySettings;
use genesis_actors::payments::policy::PaymentRules;
use genesis_actors::payments::types::PaymentIntent;
use genesis_actors::payments::vendor::Whitelist;
use genesis_actors::payments::{Budgets, PaymentsSettings};
use genesis_actors::policy::backoff::Backoff;
use genesis_actors::task::TaskEnvelope;
use genesis_chaos::agents::AgentServer;
use genesis_chaos::check::{self, Options};
use genesis_chaos::cluster::{wait_for, Launcher, NodeProc, RedisProc};
use genesis_chaos::config;
use genesis_chaos::metrics::Scraper;
use genesis_chaos::receiver::Receiver;
use genesis_chaos::record::{AgentsMode, ChaosEvent, Clock, EventKind, ExecReport, Expect, PublishedTask, RunRecord};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

fn chaos_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_genesis-chaos"))
}

/// The `genesis` binary next to `genesis-chaos`. `cargo test --workspace` builds it (the root package's
/// tests need it); when only this package is tested, build it here.
fn genesis_bin() -> PathBuf {
    static BUILT: Mutex<()> = Mutex::new(());
    let dir = chaos_bin().parent().expect("bin dir").to_path_buf();
    let bin = dir.join("genesis");
    let _guard = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !bin.is_file() {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args(["build", "--bin", "genesis", "--manifest-path"]).arg(manifest);
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build");
        assert!(status.success() && bin.is_file(), "could not build {}", bin.display());
    }
    bin
}

/// Seed 11 schedules, over 20 s: node kills at about 6 s (restarted at once), 13 s (restarted after
/// about 1.8 s, so the other node takes over) and 19 s, and one Redis kill at 11 s (down about 0.4 s).
/// No node (re)start falls within 3 s of the Redis outage: a `genesis serve` that starts while Redis is
/// down or replaying its append-only file currently exits 1 instead of waiting (see docs/CHAOS.md,
/// "Findings"); once that is fixed, any seed should pass.
#[test]
fn a_short_chaos_run_holds_every_invariant() {
    let dir = tempfile::tempdir().expect("dir");
    let report = dir.path().join("report.json");
    let out = Command::new(chaos_bin())
        .args(["run", "--duration", "20s", "--tasks", "400", "--nodes", "2", "--seed", "11"])
        .args(["--node-kill-every", "6s", "--redis-restart-every", "11s", "--panic-ratio", "0.1"])
        .args(["--settle-timeout", "40s", "--genesis-bin"])
        .arg(genesis_bin())
        .arg("--report-json")
        .arg(&report)
        .output()
        .expect("run genesis-chaos");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "genesis-chaos run failed\n{stdout}\n{stderr}");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).expect("report")).expect("json");
    assert_eq!(r["published"], 400, "{stdout}");
    assert!(r["node_kills"].as_u64() >= Some(2), "{stdout}");
    assert!(r["redis_restarts"].as_u64() >= Some(1), "{stdout}");
    assert_eq!(r["check"]["duplicates_unexplained"], 0, "{stdout}");
    assert!(stdout.contains("duplicate executions explained by crashes"), "{stdout}");
    assert!(stdout.contains("PASS"), "{stdout}");
}

/// The workflow workload, 15 s of it: 30 random DAG workflows (clean, failing with compensations,
/// retried after a failure, cancelled mid-run, past their deadline; a quarter started with `genesis
/// workflow start --plan @FILE`) while nodes are killed and Redis restarts; checks 1–17 must hold.
#[test]
fn a_short_workflow_run_holds_every_invariant() {
    let dir = tempfile::tempdir().expect("dir");
    let report = dir.path().join("report.json");
    let out = Command::new(chaos_bin())
        .args(["run", "--workload", "workflows", "--workflows", "30", "--duration", "15s", "--nodes", "2"])
        .args(["--seed", "42", "--node-kill-every", "6s", "--redis-restart-every", "11s"])
        .args(["--settle-timeout", "45s", "--genesis-bin"])
        .arg(genesis_bin())
        .arg("--report-json")
        .arg(&report)
        .output()
        .expect("run genesis-chaos");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "genesis-chaos run failed\n{stdout}\n{stderr}");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).expect("report")).expect("json");
    assert_eq!(r["workflows"], 30, "{stdout}");
    assert!(r["node_kills"].as_u64() >= Some(2) && r["redis_restarts"].as_u64() >= Some(1), "{stdout}");
    let w = &r["check"]["workflows"];
    // Every way of ending happened, and so did what the checks are about.
    for status in ["succeeded", "failed", "cancelled"] {
        assert!(w["by_status"][status].as_u64() >= Some(1), "no {status} workflow: {stdout}");
    }
    assert!(w["by_reason"]["deadline"].as_u64() >= Some(1), "{stdout}");
    assert!(w["retries_accepted"].as_u64() >= Some(1) && w["cancels_accepted"].as_u64() >= Some(1), "{stdout}");
    assert!(w["compensations_started"].as_u64() >= Some(1) && w["via_cli"].as_u64() >= Some(1), "{stdout}");
    assert!(r["check"]["published"].as_u64() >= w["steps_started"].as_u64(), "step tasks checked too: {stdout}");
    assert!(stdout.contains("17. every workflow ends") && stdout.contains("PASS"), "{stdout}");
}

/// Seed 5 schedules, over 15 s from the start of the workload: A2A agent kills at about 3 s
/// (genesis.research, down 2 s), 8 s (genesis.seo, 1.1 s) and 11 s (genesis.research, 2.6 s), a node
/// kill at about 6 s (down 2.6 s, so the other node takes over) and a Redis kill at about 10 s (down
/// 1.1 s). The workload mixes every outside
/// kind: echo and progress, slow tasks within and past the 2 s timeout (cancelled at the agent),
/// retryable and fatal failures, process agents that crash once or every time, and payments.
#[test]
fn a_short_outside_run_holds_every_invariant() {
    let dir = tempfile::tempdir().expect("dir");
    let report = dir.path().join("report.json");
    let out = Command::new(chaos_bin())
        .args(["run", "--agents", "outside", "--duration", "15s", "--tasks", "250", "--nodes", "2", "--seed", "5"])
        .args(["--node-kill-every", "7s", "--redis-restart-every", "11s", "--agent-kill-every", "4s"])
        .args(["--settle-timeout", "40s", "--genesis-bin"])
        .arg(genesis_bin())
        .arg("--report-json")
        .arg(&report)
        .output()
        .expect("run genesis-chaos");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "genesis-chaos run failed\n{stdout}\n{stderr}");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).expect("report")).expect("json");
    assert_eq!(r["published"], 250, "{stdout}");
    assert!(r["agent_kills"].as_u64() >= Some(2), "{stdout}");
    assert_eq!(r["agent_restarts"], r["agent_kills"], "every killed agent came back: {stdout}");
    assert!(r["node_kills"].as_u64() >= Some(1) && r["redis_restarts"].as_u64() >= Some(1), "{stdout}");
    let c = &r["check"];
    // The invariant had something to hold for: tasks met a down agent, and circuits opened.
    let only_down = c["circuit"]["tasks_met_only_down_agent"].as_u64().unwrap_or(0);
    assert!(only_down >= 1, "no task met a down agent: {stdout}");
    assert_eq!(c["circuit"]["tasks_met_only_down_agent_succeeded_first"].as_u64(), Some(only_down), "{stdout}");
    let opened: u64 = c["node_metrics"]["circuit_opened"]
        .as_object()
        .map(|m| m.values().filter_map(|v| v.as_u64()).sum())
        .unwrap_or(0);
    assert!(opened >= 1, "no circuit opened: {stdout}");
    // Every execution was reported by the agents themselves, planned crashes replayed.
    assert!(c["starts"].as_u64() >= Some(250), "{stdout}");
    assert!(c["duplicates_explained_by_panic"].as_u64() >= Some(1), "{stdout}");
    assert_eq!(c["duplicates_unexplained"], 0, "{stdout}");
    for (kind, outcome) in
        [("proc.crash_once", "succeeded"), ("a2a.slow_timeout", "dead"), ("proc.sleep_timeout", "dead")]
    {
        let k = &c["by_kind"][kind];
        assert!(k["published"].as_u64() >= Some(1) && k[outcome] == k["published"], "{kind}: {k}\n{stdout}");
    }
    assert!(stdout.contains("PASS"), "{stdout}");
}

/// Check 9 on real records: tasks queued while their A2A agent is down wait without spending an
/// attempt (the circuit opens, the node's /metrics count it) and succeed on attempt 1 once the agent
/// starts; the same records rewritten so that the outage spent an attempt are reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_down_while_tasks_queue_spends_no_attempt_and_a_planted_one_is_reported() {
    let dir = tempfile::tempdir().expect("dir");
    let redis = RedisProc::start().await.expect("redis");
    let url = redis.url();
    let port = genesis_testkit::free_port();
    let agents = config::outside_agents([port, genesis_testkit::free_port()]);
    let config_path = config::write(dir.path(), &agents).expect("config");
    let clock = Clock::start();
    let receiver = Receiver::start(clock).await.expect("receiver");
    let launcher = Launcher {
        genesis_bin: genesis_bin(),
        config: config_path,
        redis_url: url.clone(),
        log_dir: dir.path().to_path_buf(),
        rust_log: "info".into(),
    };
    let http = genesis_testkit::free_port();
    let mut node = NodeProc::with_http("down-1", http);
    node.start(&launcher).expect("node");
    let bus = Bus::Redis(
        RedisBus::connect(&url, Backoff::new(Duration::from_millis(20), Duration::from_millis(500), 2.0))
            .await
            .expect("bus"),
    );
    // genesis.research's agent is not running: nothing listens on its port.
    let mut tasks = Vec::new();
    for i in 0..6 {
        let payload = json!({"mode": "echo", "n": i, "report_to": receiver.url});
        let env = TaskEnvelope::new("genesis.research".parse().expect("topic"), tenant0(), payload);
        bus.publish(&env, Duration::from_secs(3600)).await.expect("publish");
        let mut t = task(&env, "a2a.echo");
        t.max_retries = 2;
        tasks.push(t);
    }
    let mut scraper = Scraper::new().expect("scraper");
    let opened = |s: &Scraper| s.current("down-1").and_then(|m| m.circuit_opened.get("genesis.research").copied());
    let end = std::time::Instant::now() + Duration::from_secs(30);
    while opened(&scraper).unwrap_or(0) < 1 {
        assert!(std::time::Instant::now() < end, "the circuit did not open within 30 s");
        scraper.scrape("down-1", http).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut agent = AgentServer::new("genesis.research", port, dir.path());
    agent.begin_start();
    agent.finish_start().await.expect("the A2A agent starts");
    let t = tasks.clone();
    let u = url.clone();
    wait_for(Duration::from_secs(30), "every task final", || {
        let (t, u) = (t.clone(), u.clone());
        async move {
            let st = check::statuses(&u, &t).await.ok()?;
            st.iter().all(|s| matches!(s.as_deref(), Some("succeeded") | Some("dead"))).then_some(())
        }
    })
    .await
    .expect("settle");
    scraper.scrape("down-1", http).await;
    scraper.end_lifetime("down-1");
    assert!(node.terminate(Duration::from_secs(30)).await.expect("node exits").success(), "SIGTERM exits 0");
    let run = RunRecord {
        mode: AgentsMode::Outside,
        clock_unix_ms: clock.unix_ms(),
        agents,
        tasks,
        reports: receiver.snapshot(),
        node_metrics: scraper.totals.clone(),
        ..Default::default()
    };
    let opts = Options { trim_slack: u64::MAX, ..Options::default() };
    let clean = check::check(&url, &run, opts).await.expect("check");
    clean.print();
    assert!(clean.ok(), "{:?}", clean.violations);
    assert_eq!(clean.succeeded, 6);
    let met = clean.circuit.tasks_met_only_down_agent;
    assert!(met >= 2, "circuit_failures = 2: at least two requeues before the circuit opened ({met})");
    assert_eq!(clean.circuit.tasks_met_only_down_agent_succeeded_first, met);
    assert!(clean.node_metrics.unavailable() >= 2, "{:?}", clean.node_metrics);

    // Plant: one task that met the down agent, booked as if the outage had spent its attempt.
    let client = redis::Client::open(url.as_str()).expect("client");
    let mut c = client.get_multiplexed_async_connection().await.expect("conn");
    let mut planted = None;
    for t in &run.tasks {
        let key = format!("genesis:{{genesis.research}}:task:{}", t.task_id);
        let h: Option<String> = redis::cmd("HGET").arg(&key).arg("history").query_async(&mut c).await.expect("hget");
        let Some(h) = h.filter(|h| h.contains(check::UNAVAILABLE_PREFIX)) else { continue };
        let mut items: Vec<serde_json::Value> = serde_json::from_str(&h).expect("history json");
        for it in &mut items {
            it["attempt"] = json!(1);
        }
        let _: () = redis::cmd("HSET")
            .arg(&key)
            .arg("history")
            .arg(serde_json::to_string(&items).expect("json"))
            .arg("attempts")
            .arg(2)
            .query_async(&mut c)
            .await
            .expect("plant");
        planted = Some(t.task_id.clone());
        break;
    }
    let planted = planted.expect("a task with an `agent unavailable` history item");
    let r = check::check(&url, &run, opts).await.expect("check");
    r.print();
    let v = r.of("9");
    assert!(!v.is_empty() && v.iter().all(|v| v.detail.contains(&planted)), "{v:?}");
    assert!(v.iter().any(|v| v.detail.contains("an unreachable agent spends none")), "{v:?}");
    assert_eq!(r.circuit.tasks_met_only_down_agent_succeeded_first, met - 1);
    drop(agent);
    drop(redis);
}

fn task(env: &TaskEnvelope, kind: &str) -> PublishedTask {
    PublishedTask {
        task_id: env.task_id.to_string(),
        topic: env.topic.to_string(),
        kind: kind.into(),
        panic_deliveries: 0,
        max_retries: 3,
        expect: Expect::Succeeded,
        published_at_us: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_planted_violation_is_reported() {
    let dir = tempfile::tempdir().expect("dir");
    let redis = RedisProc::start().await.expect("redis");
    let url = redis.url();
    let agents = config::agents();
    let config_path = config::write(dir.path(), &agents).expect("config");
    let clock = Clock::start();
    let receiver = Receiver::start(clock).await.expect("receiver");
    let launcher = Launcher {
        genesis_bin: genesis_bin(),
        config: config_path,
        redis_url: url.clone(),
        log_dir: dir.path().to_path_buf(),
        rust_log: "info".into(),
    };
    let mut node = NodeProc::new("plant-1");
    node.start(&launcher).expect("node");
    let bus = Bus::Redis(
        RedisBus::connect(&url, Backoff::new(Duration::from_millis(20), Duration::from_millis(500), 2.0))
            .await
            .expect("bus"),
    );
    let mut tasks = Vec::new();
    for i in 0..6 {
        let payload = json!({"simulate": {"sleep_ms": 10 * i, "fail_attempts": i % 2, "report_to": receiver.url}});
        let env = TaskEnvelope::new("genesis.qa".parse().expect("topic"), tenant0(), payload);
        bus.publish(&env, Duration::from_secs(3600)).await.expect("publish");
        tasks.push(task(&env, "sleep"));
    }
    let t = tasks.clone();
    let u = url.clone();
    wait_for(Duration::from_secs(30), "every task final", || {
        let (t, u) = (t.clone(), u.clone());
        async move {
            let st = check::statuses(&u, &t).await.ok()?;
            st.iter().all(|s| matches!(s.as_deref(), Some("succeeded") | Some("dead"))).then_some(())
        }
    })
    .await
    .expect("settle");
    let topics: Vec<String> = agents.iter().map(|a| a.name.clone()).collect();
    wait_for(Duration::from_secs(15), "streams trimmed", || {
        let (u, t) = (url.clone(), topics.clone());
        async move { check::stream_state(&u, &t).await.ok()?.values().all(|(l, p)| *l <= p + 5).then_some(()) }
    })
    .await
    .expect("trimmed");
    let status = node.terminate(Duration::from_secs(30)).await.expect("node exits");
    assert!(status.success(), "SIGTERM exits 0");
    let mut run =
        RunRecord { agents, limits: Some(config::LIMITS), tasks, reports: receiver.snapshot(), ..Default::default() };

    // The untouched state passes.
    let clean = check::check(&url, &run, Options::default()).await.expect("check");
    assert!(clean.ok(), "{:?}", clean.violations);
    assert_eq!(clean.succeeded, 6);
    assert!(clean.starts >= 6, "{} starts reported", clean.starts);

    // Plant: one task stuck `running`, one record deleted, money over a budget, a retry left behind,
    // undelivered entries in a stream, and a second execution of one attempt with no crash.
    let client = redis::Client::open(url.as_str()).expect("client");
    let mut c = client.get_multiplexed_async_connection().await.expect("conn");
    let stuck = run.tasks[0].task_id.clone();
    let lost = run.tasks[1].task_id.clone();
    let _: () = redis::cmd("HSET")
        .arg(format!("genesis:{{genesis.qa}}:task:{stuck}"))
        .arg("status")
        .arg("running")
        .query_async(&mut c)
        .await
        .expect("plant running");
    let _: () =
        redis::cmd("DEL").arg(format!("genesis:{{genesis.qa}}:task:{lost}")).query_async(&mut c).await.expect("del");
    let _: () = redis::cmd("HSET")
        .arg(Shard::of(&tenant0()).used_agent("genesis.qa", "2026-01-01"))
        .arg("reserved")
        .arg(20_001)
        .query_async(&mut c)
        .await
        .expect("plant usage");
    let _: () = redis::cmd("ZADD")
        .arg(keys::TENANTS)
        .arg(genesis_actors::task::now_ms())
        .arg("tenant-0")
        .query_async(&mut c)
        .await
        .expect("plant tenant");
    let _: () = redis::cmd("ZADD")
        .arg("genesis:{genesis.build}:retry")
        .arg(1)
        .arg("{}")
        .query_async(&mut c)
        .await
        .expect("plant retry");
    for _ in 0..10 {
        let _: String = redis::cmd("XADD")
            .arg("genesis:{genesis.deploy}:stream")
            .arg("*")
            .arg("task")
            .arg("{}")
            .query_async(&mut c)
            .await
            .expect("plant entry");
    }
    // A reservation of a succeeded task left open (as if its node died before settling and no
    // reconciler ran): check 10 must name it. The node is stopped, so nothing settles it.
    let paid = run.tasks[3].task_id.clone();
    let planted = Authority::new(
        PaymentsSettings {
            rules: PaymentRules { known_agents: ["genesis.qa".to_string()].into(), ..PaymentRules::default() },
            whitelist: Whitelist::new(&["openai.com".to_string()]).expect("whitelist"),
            budgets: Budgets::default(),
            reservation_ttl: Duration::from_secs(3600),
            retention: Duration::from_secs(86_400),
            expiry_interval: Duration::from_secs(60),
            reconcile_interval: Duration::from_secs(60),
            token_key: None,
            notify: NotifySettings::default(),
        },
        Ledger::Redis(RedisLedger::connect(&url).await.expect("ledger")),
        None,
    );
    let d = planted
        .approve(&PaymentIntent {
            agent_id: "genesis.qa".into(),
            vendor: "openai.com".into(),
            amount_cents: 250,
            reason: "planted".into(),
            mandate_id: format!("{paid}-planted"),
            business_id: "biz-planted".into(),
            tenant_id: tenant0(),
            task_id: Some(paid.parse().expect("task id")),
            workflow: None,
        })
        .await
        .expect("approve");
    assert_eq!(d.code, "approved", "{d:?}");

    // Nothing will settle the planted reservation: no need to wait for a reconciler.
    let planted_opts = Options { settle_deadline: Duration::from_millis(500), ..Options::default() };
    let dup_task = run.tasks[2].task_id.clone();
    let first = run.reports.iter().find(|r| r.task_id == dup_task && r.phase == "start").expect("a start").clone();
    let again = ExecReport { deliveries: first.deliveries + 1, at_us: first.at_us + 1_000_000, ..first.clone() };
    run.reports.push(again);

    let r = check::check(&url, &run, planted_opts).await.expect("check");
    r.print();
    assert!(!r.ok());
    assert_eq!((r.missing, r.stuck), (1, 1));
    let lost_v = r.of("1");
    assert!(lost_v.iter().any(|v| v.detail.contains(&lost) && v.detail.contains("no result record")), "{lost_v:?}");
    assert!(lost_v.iter().any(|v| v.detail.contains(&stuck) && v.detail.contains("running")), "{lost_v:?}");
    assert!(r.of("2").iter().any(|v| v.detail.contains("retry set")), "{:?}", r.of("2"));
    assert_eq!(r.duplicates_unexplained, 1);
    assert!(r.of("4").iter().any(|v| v.detail.contains(&dup_task)), "{:?}", r.of("4"));
    assert!(r.of("5").iter().any(|v| v.detail.contains("20001")), "{:?}", r.of("5"));
    assert!(r.of("6").iter().any(|v| v.detail.contains("genesis.deploy")), "{:?}", r.of("6"));
    let money = r.of("10");
    assert!(money.iter().any(|v| v.detail.contains(&paid) && v.detail.contains("uncaptured")), "{money:?}");

    // The same duplicate with a node kill in between is explained.
    run.events.push(ChaosEvent {
        at_us: first.at_us + 500_000,
        kind: EventKind::NodeKill,
        node: Some(first.node.clone()),
        agent: None,
        detail: "planted kill".into(),
    });
    let r = check::check(&url, &run, planted_opts).await.expect("check");
    assert_eq!((r.duplicates_unexplained, r.duplicates_explained_by_node_crash), (0, 1));

    // And the command line says so too: `genesis-chaos check` exits 1.
    let file = dir.path().join("run.json");
    std::fs::write(&file, serde_json::to_vec(&run).expect("json")).expect("write");
    let out = Command::new(chaos_bin())
        .args(["check", "--redis-url", &url, "--run-file"])
        .arg(&file)
        .output()
        .expect("run genesis-chaos check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("VIOLATION [1 none lost]"), "{stdout}");
    drop(redis);
}

fn tenant0() -> genesis_actors::tenant::TenantId {
    genesis_actors::tenant::TenantId::parse("tenant-0").expect("a valid tenant id")
}
