//! The `process` executor against real child processes (`tests/agents/process_agent.py`, run with
//! `python3` from PATH): the whole runtime on the in-process bus (and once on a real Redis from
//! genesis-testkit), plus the executor driven directly where the runtime has no window (progress,
//! stderr, environment). Protocol: docs/agents.md, "process"; rules: docs/semantics.md.
//! Every wait is a condition polled with a deadline.
// Tests and benches report by panicking: unwrap/expect are allowed here (not in the crates).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use genesis_actors::bus::memory::MemoryBus;
use genesis_actors::bus::redis::RedisBus;
use genesis_actors::bus::{Bus, TaskStatus};
use genesis_actors::events::RuntimeEvent;
use genesis_actors::executor::{process, ExecError, Executor, ExecutorRegistry, Progress, TaskContext};
use genesis_actors::payments::authority::Authority;
use genesis_actors::payments::ledger::memory::MemoryLedger;
use genesis_actors::payments::ledger::Ledger;
use genesis_actors::payments::policy::{utc_day, PaymentRules};
use genesis_actors::payments::vendor::Whitelist;
use genesis_actors::payments::{Budgets, PaymentsSettings};
use genesis_actors::roster::{AgentSpec, ExecutorSpec, ProcessSpec};
use genesis_actors::runtime::Runtime;
use genesis_actors::settings::RuntimeSettings;
use genesis_actors::task::TaskId;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{eventually, fast_settings, final_record, publish, roster, tenant, wait_blocking};

const WAIT: Duration = Duration::from_secs(60);

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/agents/process_agent.py")
}

fn process_spec() -> ProcessSpec {
    ProcessSpec { command: vec!["python3".into(), script().display().to_string()], cwd: None, env: BTreeMap::new() }
}

/// An agent run by the test agent, `concurrency` children, `max_retries`, `timeout`.
fn process_agent(name: &str, concurrency: usize, max_retries: u32, timeout: Duration) -> AgentSpec {
    AgentSpec {
        timeout,
        executor: ExecutorSpec::Process(process_spec()),
        ..support::agent(name, concurrency, max_retries)
    }
}

async fn start(bus: &Bus, settings: RuntimeSettings, agents: Vec<AgentSpec>) -> Runtime {
    Runtime::start(bus.clone(), settings, roster(agents), ExecutorRegistry::builtin()).await.expect("runtime starts")
}

fn memory() -> Bus {
    Bus::Memory(MemoryBus::new())
}

/// Is `pid` a live process? A zombie (dead, not yet reaped by its new parent) counts as gone.
fn alive(pid: i64) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    // SAFETY: signal 0 only asks whether the process exists.
    let exists = unsafe { libc::kill(pid, 0) } == 0;
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('Z')))
        .unwrap_or(false);
    exists && !zombie
}

async fn wait_gone(pids: &[i64], what: &str) {
    eventually(WAIT, what, || async { pids.iter().all(|p| !alive(*p)).then_some(()) }).await;
}

/// The `{"pid", "pgid", "grandchild_pid"}` a `sleep` task wrote, once it exists.
async fn pids_in(file: &Path) -> (i64, i64, i64) {
    let v: Value = eventually(WAIT, &format!("{} is written", file.display()), || async {
        std::fs::read_to_string(file).ok().and_then(|t| serde_json::from_str(&t).ok())
    })
    .await;
    let n = |k: &str| v[k].as_i64().unwrap_or_else(|| panic!("{k} in {v}"));
    (n("pid"), n("pgid"), n("grandchild_pid"))
}

fn sleep_payload(seconds: f64, pid_file: &Path) -> Value {
    json!({"mode": "sleep", "seconds": seconds, "pid_file": pid_file.display().to_string()})
}

fn replays(events: &mut tokio::sync::broadcast::Receiver<RuntimeEvent>) -> Vec<u32> {
    let mut v = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let RuntimeEvent::Replayed { deliveries, .. } = e {
            v.push(deliveries);
        }
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_result_carries_the_task() {
    let bus = memory();
    let rt = start(&bus, fast_settings("n1"), vec![process_agent("proc.echo", 2, 0, WAIT)]).await;
    let t = publish(&bus, "proc.echo", json!({"mode": "echo", "x": 3})).await;
    let r = final_record(&bus, &t, WAIT).await;
    assert_eq!(r.status, TaskStatus::Succeeded, "{r:?}");
    let result = r.result.expect("a result");
    assert_eq!(result["echo"], json!({"mode": "echo", "x": 3}));
    assert_eq!(result["task_id"], t.task_id.to_string());
    assert_eq!((result["attempt"].as_u64(), result["tenant_id"].as_str()), (Some(1), Some("tenant-test")));
    assert_eq!(result["correlation_id"], t.correlation_id);
    // The same child serves the next task of its slot.
    let t2 = publish(&bus, "proc.echo", json!({"n": 2})).await;
    assert_eq!(final_record(&bus, &t2, WAIT).await.status, TaskStatus::Succeeded);
    rt.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retryable_and_fatal_errors_are_mapped() {
    let bus = memory();
    let rt = start(&bus, fast_settings("n1"), vec![process_agent("proc.fail", 1, 1, WAIT)]).await;
    let retry = publish(&bus, "proc.fail", json!({"mode": "fail", "message": "busy", "retryable": true})).await;
    let fatal = publish(&bus, "proc.fail", json!({"mode": "fail", "message": "bad input"})).await;
    let r = final_record(&bus, &retry, WAIT).await;
    assert_eq!((r.status, r.reason.as_deref(), r.attempts), (TaskStatus::Dead, Some("retries_exhausted"), 2), "{r:?}");
    assert_eq!(r.error.as_deref(), Some("busy"));
    let r = final_record(&bus, &fatal, WAIT).await;
    assert_eq!((r.status, r.reason.as_deref(), r.attempts), (TaskStatus::Dead, Some("fatal_error"), 1), "{r:?}");
    assert_eq!(r.error.as_deref(), Some("bad input"));
    rt.shutdown().await.expect("clean shutdown");
}

/// A child that dies mid-task is a crash: the worker restarts, the entry is replayed (delivery 2) to a
/// new child, which completes it; no attempt is spent. Run on `bus`.
async fn crash_is_replayed_then_completes(bus: Bus) {
    let dir = tempfile::tempdir().expect("dir");
    let marker = dir.path().join("crashed-once");
    let rt = start(&bus, fast_settings("n1"), vec![process_agent("proc.crash", 1, 0, WAIT)]).await;
    let mut events = rt.subscribe();
    let payload = json!({"mode": "crash", "marker": marker.display().to_string()});
    let t = publish(&bus, "proc.crash", payload).await;
    let r = final_record(&bus, &t, WAIT).await;
    assert_eq!((r.status, r.attempts), (TaskStatus::Succeeded, 1), "{r:?}");
    assert_eq!(r.result.as_ref().map(|v| v["crashed_before"].clone()), Some(json!(true)), "{r:?}");
    assert_eq!(replays(&mut events), [2], "replayed once, as delivery 2");
    let first: i64 = std::fs::read_to_string(&marker).expect("marker").trim().parse().expect("pid");
    wait_gone(&[first], "the crashed child is reaped").await;
    rt.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_mid_task_is_replayed_and_completes() {
    crash_is_replayed_then_completes(memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_mid_task_is_replayed_and_completes_on_redis() {
    let server = tokio::task::spawn_blocking(genesis_testkit::RedisServer::start).await.expect("redis starts");
    let bus = RedisBus::connect(&server.url(), fast_settings("x").bus.reconnect).await.expect("connect");
    crash_is_replayed_then_completes(Bus::Redis(bus)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_output_is_replayed_then_dead_lettered_as_poison() {
    let bus = memory();
    let mut s = fast_settings("n1");
    s.bus.max_deliveries = 3;
    let rt = start(&bus, s, vec![process_agent("proc.garbage", 1, 3, WAIT)]).await;
    let mut events = rt.subscribe();
    let t = publish(&bus, "proc.garbage", json!({"mode": "garbage"})).await;
    let r = final_record(&bus, &t, WAIT).await;
    assert_eq!((r.status, r.reason.as_deref()), (TaskStatus::Dead, Some("poison")), "{r:?}");
    assert!(r.error.as_deref().unwrap_or("").contains("not JSON"), "the last crash is named: {r:?}");
    assert_eq!(r.attempts, 1, "crashes are deliveries, not attempts: {r:?}");
    assert_eq!(replays(&mut events), [2, 3, 4], "ran max_deliveries times, then the poison check");
    // The agent keeps working with a fresh child.
    let ok = publish(&bus, "proc.garbage", json!({"mode": "echo"})).await;
    assert_eq!(final_record(&bus, &ok, WAIT).await.status, TaskStatus::Succeeded);
    rt.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_kills_the_whole_process_group() {
    let bus = memory();
    let dir = tempfile::tempdir().expect("dir");
    let pid_file = dir.path().join("pids.json");
    let rt = start(&bus, fast_settings("n1"), vec![process_agent("proc.slow", 1, 0, Duration::from_secs(3))]).await;
    let t = publish(&bus, "proc.slow", sleep_payload(120.0, &pid_file)).await;
    let (pid, pgid, grandchild) = pids_in(&pid_file).await;
    assert_eq!(pid, pgid, "the child leads its own process group");
    assert!(alive(grandchild), "the grandchild runs while the task does");
    let r = final_record(&bus, &t, WAIT).await;
    assert_eq!((r.status, r.reason.as_deref()), (TaskStatus::Dead, Some("timeout")), "{r:?}");
    wait_gone(&[pid, grandchild], "the child and its grandchild are gone after the timeout").await;
    // The slot starts a new child for its next task.
    let ok = publish(&bus, "proc.slow", json!({"mode": "echo"})).await;
    assert_eq!(final_record(&bus, &ok, WAIT).await.status, TaskStatus::Succeeded);
    rt.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_shutdown_leaves_no_child() {
    let bus = memory();
    let dir = tempfile::tempdir().expect("dir");
    let mut s = fast_settings("n1");
    s.shutdown_grace = Duration::from_millis(200);
    let rt = start(&bus, s, vec![process_agent("proc.pool", 3, 0, WAIT)]).await;
    // Two children that finished their task (idle), one still working on a long one.
    let files: Vec<PathBuf> = (0..3).map(|i| dir.path().join(format!("pids-{i}.json"))).collect();
    let quick: Vec<_> = [&files[0], &files[1]].map(|f| publish(&bus, "proc.pool", sleep_payload(0.0, f))).into();
    let quick = futures::future::join_all(quick).await;
    let slow = publish(&bus, "proc.pool", sleep_payload(120.0, &files[2])).await;
    for t in &quick {
        assert_eq!(final_record(&bus, t, WAIT).await.status, TaskStatus::Succeeded);
    }
    let mut pids = Vec::new();
    for f in &files {
        let (pid, _, grandchild) = pids_in(f).await;
        pids.extend([pid, grandchild]);
    }
    let (slow_pid, _, _) = pids_in(&files[2]).await;
    assert!(alive(slow_pid), "the long task's child is running");
    assert_eq!(
        bus.task(&slow.topic, &slow.task_id.to_string()).await.expect("record").map(|r| r.status),
        Some(TaskStatus::Running)
    );
    rt.shutdown().await.expect("clean shutdown");
    wait_gone(&pids, "every child of the pool (idle or working) and every grandchild is gone").await;
}

fn payments_settings(agent: &str) -> PaymentsSettings {
    PaymentsSettings {
        rules: PaymentRules { known_agents: [agent.to_string()].into(), ..PaymentRules::default() },
        whitelist: Whitelist::new(&["openai.com".to_string()]).expect("whitelist"),
        budgets: Budgets::default(),
        reservation_ttl: Duration::from_secs(3600),
        retention: Duration::from_secs(86_400),
        expiry_interval: Duration::from_secs(60),
        notify: Default::default(),
        reconcile_interval: Duration::from_secs(60),
        token_key: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pay_lines_are_decided_by_the_meta_agent_as_the_task_itself() {
    let bus = memory();
    let ledger = Ledger::Memory(MemoryLedger::new());
    let authority = Authority::new(payments_settings("proc.buyer"), ledger.clone(), None);
    let agents = roster(vec![process_agent("proc.buyer", 1, 0, WAIT)]);
    let rt = Runtime::start_with_payments(
        bus.clone(),
        fast_settings("n1"),
        agents,
        ExecutorRegistry::builtin(),
        Some(authority),
    )
    .await
    .expect("runtime");
    let pay = |vendor: &str| json!({"mode": "pay", "vendor": vendor, "amount_cents": 400, "purpose": "tokens", "business_id": "biz-1"});
    let ok = publish(&bus, "proc.buyer", pay("openai.com")).await;
    let r = final_record(&bus, &ok, WAIT).await;
    assert_eq!(r.status, TaskStatus::Succeeded, "{r:?}");
    let p = r.result.expect("result")["payment"].clone();
    assert_eq!((p["status"].as_str(), p["code"].as_str()), (Some("approved"), Some("approved")), "{p}");
    assert_eq!(p["mandate_id"], format!("{}-p0", ok.task_id), "the mandate is bound to the task");
    assert_eq!((p["vendor"].as_str(), p["amount_cents"].as_u64()), (Some("openai.com"), Some(400)));
    let day = utc_day(genesis_actors::task::now_ms());
    let usage = ledger.usage_agent(&tenant("tenant-test"), "proc.buyer", &day).await.expect("usage");
    // Charged to this agent in the task's tenant, and captured once the task succeeded (settlement).
    assert_eq!((usage.reserved, usage.captured), (0, 400), "{usage:?}");
    // A denial reaches the agent with its code and reason; what to do is the agent's call.
    let bad = publish(&bus, "proc.buyer", pay("0penai.com")).await;
    let r = final_record(&bus, &bad, WAIT).await;
    let p = r.result.expect("result")["payment"].clone();
    assert_eq!((p["status"].as_str(), p["code"].as_str()), (Some("denied"), Some("vendor_lookalike")), "{p}");
    assert!(p["reason"].as_str().is_some_and(|s| !s.is_empty()), "{p}");
    rt.shutdown().await.expect("clean shutdown");

    // Without payments configured the answer says so; the child is not left waiting.
    let bus = memory();
    let rt = start(&bus, fast_settings("n2"), vec![process_agent("proc.buyer", 1, 0, WAIT)]).await;
    let t = publish(&bus, "proc.buyer", pay("openai.com")).await;
    let p = final_record(&bus, &t, WAIT).await.result.expect("result")["payment"].clone();
    assert_eq!(p["status"], "error", "{p}");
    assert!(p["error"].as_str().is_some_and(|e| e.contains("not configured")), "{p}");
    rt.shutdown().await.expect("clean shutdown");
}

// --- The executor driven directly ---

fn pool(spec: ProcessSpec) -> Arc<dyn Executor> {
    let agent = AgentSpec { executor: ExecutorSpec::Process(spec.clone()), ..support::agent("proc.direct", 1, 0) };
    process::build(&agent, &spec).expect("a pool")
}

fn ctx() -> TaskContext {
    TaskContext::detached("proc.direct", TaskId::generate())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_lines_reach_the_progress_sink() {
    let pool = pool(process_spec());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let c = TaskContext { progress: Progress::new(move |v| sink.lock().expect("sink").push(v)), ..ctx() };
    let r = pool.execute(&c, &json!({"mode": "progress", "steps": 3})).await.expect("result");
    assert_eq!(r["steps"], 3);
    let steps: Vec<Value> = (1..=3).map(|k| json!({"step": k, "of": 3})).collect();
    assert_eq!(*seen.lock().expect("sink"), steps, "every progress line, in order, before the result");
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_cannot_start_is_unavailable() {
    let missing = ProcessSpec { command: vec!["/nonexistent/genesis-agent".into()], cwd: None, env: BTreeMap::new() };
    match pool(missing).execute(&ctx(), &json!({})).await {
        Err(e @ ExecError::Unavailable(_)) => {
            assert!(e.to_string().contains("/nonexistent/genesis-agent") && e.to_string().contains("not found"), "{e}")
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    let no_dir = ProcessSpec { cwd: Some("/nonexistent/dir".into()), ..process_spec() };
    let r = pool(no_dir).execute(&ctx(), &json!({})).await;
    assert!(matches!(&r, Err(ExecError::Unavailable(e)) if e.contains("/nonexistent/dir")), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cwd_and_env_are_applied_and_the_node_environment_is_not_inherited() {
    let dir = tempfile::tempdir().expect("dir");
    let (secret_name, _) = std::env::vars()
        .find(|(k, _)| !process::INHERITED_ENV.contains(&k.as_str()))
        .expect("the test process has variables beyond the inherited ones (cargo sets several)");
    let spec = ProcessSpec {
        cwd: Some(dir.path().to_path_buf()),
        env: BTreeMap::from([("AGENT_SETTING".to_string(), "on".to_string())]),
        ..process_spec()
    };
    let names = json!(["AGENT_SETTING", "PATH", secret_name]);
    let r = pool(spec).execute(&ctx(), &json!({"mode": "env", "names": names})).await.expect("result");
    let cwd = std::fs::canonicalize(r["cwd"].as_str().expect("cwd")).expect("cwd exists");
    assert_eq!(cwd, std::fs::canonicalize(dir.path()).expect("dir"));
    assert_eq!(r["env"]["AGENT_SETTING"], "on");
    assert!(r["env"]["PATH"].is_string(), "PATH is inherited: {r}");
    assert_eq!(r["env"][&secret_name], Value::Null, "{secret_name} is not passed on: {r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_over_the_bound_is_a_crash_and_a_big_one_under_it_is_fine() {
    let pool = pool(process_spec());
    let r = pool.execute(&ctx(), &json!({"mode": "flood", "bytes": 1_000_000})).await.expect("a 1 MB result");
    assert_eq!(r.as_str().map(str::len), Some(1_000_000));
    let over = process::MAX_LINE_BYTES + 1;
    let r = pool.execute(&ctx(), &json!({"mode": "flood", "bytes": over})).await;
    assert!(matches!(&r, Err(ExecError::Crashed(e)) if e.contains("longer than")), "{r:?}");
    let r = pool.execute(&ctx(), &json!({"mode": "crash"})).await;
    assert!(matches!(&r, Err(ExecError::Crashed(e)) if e.contains("exit status: 3")), "{r:?}");
    assert!(pool.execute(&ctx(), &json!({"mode": "echo"})).await.is_ok(), "a new child after each crash");
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_that_died_while_idle_is_replaced_without_failing_the_next_task() {
    let dir = tempfile::tempdir().expect("dir");
    let pool = pool(process_spec());
    let first = dir.path().join("first.json");
    pool.execute(&ctx(), &sleep_payload(0.0, &first)).await.expect("first task");
    let (pid, _, _) = pids_in(&first).await;
    // SAFETY: SIGKILL to the idle child this test's pool started.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    wait_gone(&[pid], "the killed child is dead (a zombie until the pool notices)").await;
    let second = dir.path().join("second.json");
    pool.execute(&ctx(), &sleep_payload(0.0, &second)).await.expect("the next task runs on a new child");
    let (again, _, _) = pids_in(&second).await;
    assert_ne!(pid, again);
    let reaped = || std::fs::metadata(format!("/proc/{pid}")).is_err();
    eventually(WAIT, "the killed child is reaped", || async { reaped().then_some(()) }).await;
    pool.shutdown().await;
    wait_gone(&[again], "shutdown stops the new child").await;
    let r = pool.execute(&ctx(), &json!({})).await;
    assert!(matches!(&r, Err(ExecError::Unavailable(e)) if e.contains("stopping")), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_stops_the_process_group_and_returns_cancelled() {
    let dir = tempfile::tempdir().expect("dir");
    let pid_file = dir.path().join("pids.json");
    let pool = pool(process_spec());
    let c = ctx();
    let payload = sleep_payload(120.0, &pid_file);
    let cancel = c.cancel.clone();
    let file = pid_file.clone();
    let canceller = tokio::spawn(async move {
        let pids = pids_in(&file).await;
        cancel.cancel();
        pids
    });
    let r = pool.execute(&c, &payload).await;
    assert!(matches!(&r, Err(ExecError::Cancelled(_))), "{r:?}");
    let (pid, _, grandchild) = canceller.await.expect("canceller");
    wait_gone(&[pid, grandchild], "the cancelled child and its grandchild are gone").await;
    assert!(pool.execute(&ctx(), &json!({"mode": "echo"})).await.is_ok(), "a new child for the next task");
    pool.shutdown().await;
}

/// The documented example (examples/process_agent.py) speaks the protocol as docs/agents.md says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_agent_speaks_the_protocol() {
    let example = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/process_agent.py");
    let spec = ProcessSpec { command: vec!["python3".into(), example.display().to_string()], ..process_spec() };
    let pool = pool(spec);
    let seen = Arc::new(Mutex::new(0));
    let sink = seen.clone();
    let c = TaskContext { progress: Progress::new(move |_| *sink.lock().expect("sink") += 1), ..ctx() };
    let r = pool.execute(&c, &json!({"text": "hello brave new world"})).await.expect("result");
    assert_eq!((r["words"].as_u64(), *seen.lock().expect("sink")), (Some(4), 4));
    assert_eq!(r["task_id"], c.task_id.to_string());
    // No payments here: the answer is `error`, which the example turns into a retryable failure.
    let r = pool.execute(&ctx(), &json!({"mode": "pay", "vendor": "openai.com", "amount_cents": 250})).await;
    assert!(matches!(&r, Err(ExecError::Retryable(e)) if e.contains("not approved yet")), "{r:?}");
    pool.shutdown().await;
}

/// A log writer the test can read.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// On a current-thread runtime, so the stderr reader (spawned on it) logs to this test's subscriber.
#[tokio::test]
async fn stderr_lines_are_logged_with_agent_slot_and_task_and_bounded() {
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
    let _default = tracing::subscriber::set_default(subscriber);
    let pool = pool(process_spec());
    let c = ctx();
    let long = process::MAX_STDERR_LINE * 3;
    pool.execute(&c, &json!({"mode": "stderr", "bytes": long})).await.expect("result");
    let text = eventually(WAIT, "the agent's stderr lines are logged", || async {
        let text = String::from_utf8_lossy(&log.0.lock().expect("log")).into_owned();
        // Both lines: the agent's own mention and the long one (their order is the agent's).
        (text.contains("line cut at") && text.contains("mode stderr")).then_some(text)
    })
    .await;
    let mention = text
        .lines()
        .find(|l| l.contains("mode stderr"))
        .unwrap_or_else(|| panic!("the agent's own log line is in the log:\n{text}"));
    assert!(mention.contains("agent=proc.direct") && mention.contains("slot=0"), "{mention}");
    assert!(mention.contains(&format!("task_id={}", c.task_id)), "{mention}");
    let cut = text.lines().find(|l| l.contains("line cut at")).expect("the long line");
    assert!(cut.len() < process::MAX_STDERR_LINE + 500, "bounded: {} bytes", cut.len());
    pool.shutdown().await;
}

/// `genesis serve` with a process agent, SIGKILLed mid-task: its child dies with it (parent-death
/// signal), though nothing in the node ran to stop it.
#[test]
fn a_sigkilled_node_takes_its_children_with_it() {
    let redis = genesis_testkit::RedisServer::start();
    let dir = tempfile::tempdir().expect("dir");
    let roster_file = dir.path().join("agents.toml");
    let agents = format!(
        "[[agent]]\nname = \"proc.node\"\nconcurrency = 1\nmax_retries = 0\ntimeout = \"120s\"\nexecutor = \"process\"\ncommand = [\"python3\", {:?}]\n",
        script().display().to_string()
    );
    std::fs::write(&roster_file, agents).expect("roster");
    let config = support::write_test_config(dir.path(), &roster_file);
    let log = std::fs::File::create(dir.path().join("node.log")).expect("log");
    let mut node = std::process::Command::new(support::genesis_bin())
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--node-id", "proc-n1", "--redis-url", &redis.url()])
        .env_remove("GENESIS_HTTP_ADDR")
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("genesis serve");
    let pid_file = dir.path().join("pids.json");
    // Far longer than WAIT: the child must not end by finishing its task (then stdin EOF).
    let payload = sleep_payload(600.0, &pid_file).to_string();
    wait_blocking(WAIT, "the task is published (the node created its topics)", || {
        let out = std::process::Command::new(support::genesis_bin())
            .arg("--config")
            .arg(&config)
            .args(["publish", "--topic", "proc.node", "--payload", &payload])
            .env("GENESIS_REDIS_URL", redis.url())
            .output()
            .ok()?;
        out.status.success().then_some(())
    });
    let pids: Value = wait_blocking(WAIT, "the agent writes its pids", || {
        std::fs::read_to_string(&pid_file).ok().and_then(|t| serde_json::from_str(&t).ok())
    });
    let (child, grandchild) = (pids["pid"].as_i64().expect("pid"), pids["grandchild_pid"].as_i64().expect("gc"));
    assert!(alive(child));
    node.kill().expect("SIGKILL the node");
    node.wait().expect("reaped");
    wait_blocking(WAIT, "the agent child died with its node", || (!alive(child)).then_some(()));
    // Linux kills only the direct child on its parent's death; the grandchild is the agent's to
    // manage (docs/agents.md). Do not leave it behind.
    if std::fs::read_to_string(format!("/proc/{grandchild}/comm")).is_ok_and(|c| c.trim() == "sleep") {
        // SAFETY: SIGKILL to the `sleep` this test's agent started.
        unsafe { libc::kill(grandchild as libc::pid_t, libc::SIGKILL) };
    }
}
