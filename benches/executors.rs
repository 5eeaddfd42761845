//! What an outside-agent executor costs per task: tasks/s and added latency through the `http`
//! executor against a local no-op agent (axum, on its own one-thread tokio runtime, as a separate
//! process would be), next to the `simulated` executor (no I/O) in the same run, on the in-process
//! bus and on a real Redis (the test kit's `redis-server`, persistence off, free port).
//!
//! ```text
//! cargo bench --bench executors                                  # everything (~15 s after the build)
//! cargo bench --bench executors -- --quick                       # smaller sizes
//! cargo bench --bench executors -- --executor http --bus memory  # pick executors and buses
//! cargo bench --bench executors -- --tasks 20000 --concurrency 64 --latency-samples 1000
//! ```
//!
//! Per bus and executor:
//! - **tasks/s**: N no-op tasks pre-published, then a runtime (one agent, concurrency C) started; time
//!   from `Runtime::start` until nothing is pending, undelivered or waiting for a retry; then every
//!   record is checked to say `succeeded`.
//! - **end-to-end latency**: one task at a time (concurrency 1): publish, then poll the record until it
//!   says `succeeded`; p50 / p99 over the samples. The `http` row minus the `simulated` row is what the
//!   executor adds to a task.
//!
//! And once, without a runtime: **the executor call alone** (`Executor::execute`, one at a time): the
//! cost of one POST on a kept-alive connection, the agent's JSON work included.
//!
//! The `process` executor (a no-op shell agent, [`process_agent`]) runs where it is available; in a
//! build without it the bench says so. Nothing is asserted (a benchmark, not a test).
// Tests and benches report by panicking: unwrap/expect are allowed here (not in the crates).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{thousands, Report};
use genesis_actors::bus::memory::MemoryBus;
use genesis_actors::bus::redis::RedisBus;
use genesis_actors::bus::{Bus, TaskStatus};
use genesis_actors::executor::{Executor, ExecutorRegistry, TaskContext};
use genesis_actors::roster::{AgentSpec, Endpoint, ExecutorSpec, ProcessSpec, Roster};
use genesis_actors::runtime::Runtime;
use genesis_actors::settings::RuntimeSettings;
use genesis_actors::task::{TaskEnvelope, TaskId, TopicName};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TTL: Duration = Duration::from_secs(3600);
/// Longest wait for one run to drain before it is reported as incomplete.
const DRAIN_DEADLINE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, clap::ValueEnum)]
enum Kind {
    Simulated,
    Http,
    Process,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Simulated => "simulated",
            Kind::Http => "http",
            Kind::Process => "process",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, clap::ValueEnum)]
enum BusKind {
    Memory,
    Redis,
}

struct Opts {
    tasks: usize,
    concurrency: usize,
    latency_samples: usize,
    direct_samples: usize,
    executors: Vec<Kind>,
    buses: Vec<BusKind>,
}

/// `cargo bench --bench executors -- [options]`.
#[derive(clap::Parser, Debug)]
#[command(about = "Tasks/s and added latency per task through each executor against a local no-op agent")]
struct Args {
    /// Smaller runs.
    #[arg(long)]
    quick: bool,
    /// Executors to run, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "simulated,http,process")]
    executor: Vec<Kind>,
    /// Buses to run on, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "memory,redis")]
    bus: Vec<BusKind>,
    /// Tasks per throughput run.
    #[arg(long, value_parser = common::positive)]
    tasks: Option<usize>,
    /// Workers of the agent.
    #[arg(long, value_parser = common::positive, default_value_t = 32)]
    concurrency: usize,
    /// Tasks timed one by one for latency.
    #[arg(long, value_parser = common::positive)]
    latency_samples: Option<usize>,
    /// `Executor::execute` calls timed alone.
    #[arg(long, value_parser = common::positive)]
    direct_samples: Option<usize>,
    /// Passed by `cargo bench` to harness = false targets.
    #[arg(long, hide = true)]
    bench: bool,
}

impl Args {
    fn opts(self) -> Opts {
        let (tasks, latency, direct) = if self.quick { (5_000, 500, 1_000) } else { (20_000, 2_000, 5_000) };
        Opts {
            tasks: self.tasks.unwrap_or(tasks),
            concurrency: self.concurrency,
            latency_samples: self.latency_samples.unwrap_or(latency),
            direct_samples: self.direct_samples.unwrap_or(direct),
            executors: self.executor,
            buses: self.bus,
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// The agents
// ---------------------------------------------------------------------------------------------------

/// A no-op HTTP agent: parses the request and answers `{"ok": true, "task_id": …}`. It runs on its own
/// one-thread tokio runtime (kept alive by the returned value), so its work is not scheduled among
/// the node's tasks, as an agent in another process would not be.
fn http_agent() -> (String, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("noop-agent")
        .enable_all()
        .build()
        .expect("agent runtime");
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind the agent");
    let url = format!("http://{}/run", listener.local_addr().expect("agent addr"));
    let app = axum::Router::new().route(
        "/run",
        axum::routing::post(|axum::Json(req): axum::Json<Value>| async move {
            axum::Json(json!({"ok": true, "task_id": req["task_id"]}))
        }),
    );
    rt.spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, rt)
}

// ===================================================================================================
// THE PROCESS EXECUTOR GOES HERE.
// A no-op process agent for the `process` executor (a pool of long-lived children speaking JSON lines
// on stdio): it answers every request line with one result line. Written against the protocol of the
// process executor's branch (`{"result": …}` per request line); check it after the merge. In a build
// where `process::build` is still a stub, `available` below fails and the bench says so.
// ===================================================================================================
fn process_agent() -> ExecutorSpec {
    const NOOP: &str = r#"while IFS= read -r line; do printf '{"result":{"ok":true}}\n'; done"#;
    ExecutorSpec::Process(ProcessSpec {
        command: vec!["sh".into(), "-c".into(), NOOP.into()],
        cwd: None,
        env: Default::default(),
    })
}

fn executor_spec(kind: Kind, http_url: &str) -> ExecutorSpec {
    match kind {
        Kind::Simulated => ExecutorSpec::Named("simulated".into()),
        Kind::Http => ExecutorSpec::Http(Endpoint { url: http_url.into(), headers: vec![] }),
        Kind::Process => process_agent(),
    }
}

fn agent(t: &TopicName, kind: Kind, http_url: &str, concurrency: usize) -> AgentSpec {
    AgentSpec {
        name: t.to_string(),
        topic: t.clone(),
        concurrency,
        max_retries: 0,
        retry_delay: Duration::from_secs(1),
        timeout: Duration::from_secs(30),
        executor: executor_spec(kind, http_url),
        rate: None,
        breaker: Default::default(),
        dlq: Default::default(),
    }
}

/// The executor of `kind`, or why this build cannot run it.
fn available(kind: Kind, http_url: &str) -> Result<Arc<dyn Executor>, String> {
    let spec = agent(&topic("bench.probe"), kind, http_url, 1);
    ExecutorRegistry::builtin().for_agent(&spec).map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------------------------------
// Runs
// ---------------------------------------------------------------------------------------------------

fn topic(s: &str) -> TopicName {
    s.parse().expect("valid topic name")
}

fn tenant() -> genesis_actors::tenant::TenantId {
    genesis_actors::tenant::TenantId::parse("bench").expect("a valid tenant id")
}

/// A fresh bus: a new in-process bus, or the bench's Redis emptied.
async fn fresh_bus(kind: BusKind, redis_url: Option<&str>) -> Bus {
    match (kind, redis_url) {
        (BusKind::Redis, Some(url)) => {
            let client = redis::Client::open(url).expect("redis url");
            let mut c = client.get_multiplexed_async_connection().await.expect("admin connection");
            let _: () = redis::cmd("FLUSHALL").query_async(&mut c).await.expect("FLUSHALL");
            let reconnect = RuntimeSettings::defaults("bench").bus.reconnect;
            Bus::Redis(RedisBus::connect(url, reconnect).await.expect("connect to the bench's redis-server"))
        }
        _ => Bus::Memory(MemoryBus::new()),
    }
}

async fn start(bus: &Bus, spec: AgentSpec, node: &str) -> Runtime {
    Runtime::start(
        bus.clone(),
        RuntimeSettings::defaults(node),
        Roster { agents: vec![spec] },
        ExecutorRegistry::builtin(),
    )
    .await
    .expect("runtime starts")
}

async fn stop(rt: Runtime) {
    if let Err(e) = rt.shutdown().await {
        eprintln!("  runtime did not stop cleanly: {e}");
    }
}

struct Throughput {
    per_sec: f64,
    succeeded: usize,
    wall: Duration,
}

async fn throughput(bus: &Bus, kind: Kind, http_url: &str, o: &Opts) -> Throughput {
    let t = topic(&format!("bench.tput.{}", kind.name()));
    let envs: Arc<Vec<TaskEnvelope>> =
        Arc::new((0..o.tasks).map(|_| TaskEnvelope::new(t.clone(), tenant(), json!({}))).collect());
    common::publish_all(bus, envs.clone(), 32, TTL).await;
    let t0 = Instant::now();
    let rt = start(bus, agent(&t, kind, http_url, o.concurrency), &format!("bench-tput-{}", kind.name())).await;
    let end = t0 + DRAIN_DEADLINE;
    let wall = loop {
        let s = bus.stats(&t).await.expect("stats");
        if s.pending == 0 && s.lag == 0 && s.retrying == 0 {
            break t0.elapsed();
        }
        if Instant::now() > end {
            eprintln!("  {}: not drained after {DRAIN_DEADLINE:?}: {s:?}", kind.name());
            break t0.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    stop(rt).await;
    let mut succeeded = 0;
    for e in envs.iter() {
        let r = bus.task(&t, &e.task_id.to_string()).await.expect("record");
        succeeded += usize::from(r.is_some_and(|r| r.status == TaskStatus::Succeeded));
    }
    Throughput { per_sec: succeeded as f64 / wall.as_secs_f64().max(1e-9), succeeded, wall }
}

/// Publish-to-succeeded of one task at a time (concurrency 1); sorted.
async fn e2e_latency(bus: &Bus, kind: Kind, http_url: &str, samples: usize) -> Vec<Duration> {
    let t = topic(&format!("bench.lat.{}", kind.name()));
    let rt = start(bus, agent(&t, kind, http_url, 1), &format!("bench-lat-{}", kind.name())).await;
    let warmup = 20;
    let mut out = Vec::with_capacity(samples);
    let mut failed = 0;
    for i in 0..(warmup + samples) {
        let e = TaskEnvelope::new(t.clone(), tenant(), json!({}));
        let id = e.task_id.to_string();
        let t0 = Instant::now();
        bus.publish(&e, TTL).await.expect("publish");
        let end = t0 + Duration::from_secs(30);
        // Poll without sleeping (a tokio sleep is at least a millisecond, the size of what is measured).
        loop {
            let r = bus.task(&t, &id).await.expect("record");
            if let Some(r) = r.filter(|r| r.status.is_final()) {
                if r.status != TaskStatus::Succeeded {
                    failed += 1;
                    if failed == 1 {
                        eprintln!("  {}: a latency task ended {:?}: {:?}", kind.name(), r.status, r.error);
                    }
                }
                break;
            }
            if Instant::now() > end {
                failed += 1;
                break;
            }
            tokio::task::yield_now().await;
        }
        if i >= warmup {
            out.push(t0.elapsed());
        }
    }
    stop(rt).await;
    if failed > 0 {
        eprintln!("  {}: {failed} latency tasks did not succeed", kind.name());
    }
    out.sort();
    out
}

/// `Executor::execute` alone, one call at a time, after a warm-up; sorted.
async fn direct_latency(ex: &dyn Executor, samples: usize) -> Vec<Duration> {
    let payload = json!({});
    let mut out = Vec::with_capacity(samples);
    for i in 0..(50 + samples) {
        let ctx = TaskContext::detached("bench.direct", TaskId::generate());
        let t0 = Instant::now();
        if let Err(e) = ex.execute(&ctx, &payload).await {
            eprintln!("  direct call failed: {e}");
        }
        if i >= 50 {
            out.push(t0.elapsed());
        }
    }
    out.sort();
    out
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// `0.0265 s` → `26.5 ms`; under a millisecond in µs (a loopback round trip is tens of µs).
fn ms(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1e-3 {
        format!("{:.1} µs", s * 1e6)
    } else {
        format!("{:.3} ms", s * 1e3)
    }
}

fn signed_ms(a: Duration, b: Duration) -> String {
    let d = a.as_secs_f64() - b.as_secs_f64();
    if d.abs() < 1e-3 {
        format!("{:+.1} µs", d * 1e6)
    } else {
        format!("{:+.3} ms", d * 1e3)
    }
}

// ---------------------------------------------------------------------------------------------------

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name").map(|m| m.trim_start_matches([' ', '\t', ':']).to_string()))
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!("{cpus} CPUs ({model}); load average {} at start", load.join(" "))
}

async fn run(o: Opts, http_url: String, redis_url: Option<String>) -> Report {
    let mut rep = Report { rows: Vec::new() };
    let t0 = Instant::now();
    let mut kinds = Vec::new();
    for &k in &o.executors {
        match available(k, &http_url) {
            Ok(_) => kinds.push(k),
            Err(e) => {
                eprintln!("{}: not available in this build, skipped ({e})", k.name());
                rep.add(format!("{} executor", k.name()), "not available in this build", "", None);
            }
        }
    }

    for &b in &o.buses {
        let bus_name = match b {
            BusKind::Memory => "memory bus",
            BusKind::Redis => "Redis",
        };
        let mut latency: Vec<(Kind, Vec<Duration>)> = Vec::new();
        for &k in &kinds {
            let bus = fresh_bus(b, redis_url.as_deref()).await;
            let r = throughput(&bus, k, &http_url, &o).await;
            eprintln!("{bus_name} / {}: {}/{} succeeded in {:.2?}", k.name(), r.succeeded, o.tasks, r.wall);
            let incomplete =
                if r.succeeded == o.tasks { String::new() } else { format!(" ({} failed)", o.tasks - r.succeeded) };
            rep.add(
                format!("{bus_name} / {}: tasks/s, {} pre-published, C={}", k.name(), o.tasks, o.concurrency),
                format!("{} tasks/s{incomplete}", thousands(r.per_sec)),
                "",
                None,
            );
            let bus = fresh_bus(b, redis_url.as_deref()).await;
            let l = e2e_latency(&bus, k, &http_url, o.latency_samples).await;
            rep.add(
                format!("{bus_name} / {}: e2e latency p50 / p99, sequential (n={})", k.name(), l.len()),
                format!("{} / {}", ms(pct(&l, 50.0)), ms(pct(&l, 99.0))),
                "",
                None,
            );
            latency.push((k, l));
        }
        let base = latency.iter().find(|(k, _)| *k == Kind::Simulated).map(|(_, l)| l.clone());
        for (k, l) in latency.iter().filter(|(k, _)| *k != Kind::Simulated) {
            if let Some(base) = &base {
                rep.add(
                    format!("{bus_name} / {}: added latency vs simulated, p50 / p99", k.name()),
                    format!(
                        "{} / {}",
                        signed_ms(pct(l, 50.0), pct(base, 50.0)),
                        signed_ms(pct(l, 99.0), pct(base, 99.0))
                    ),
                    "",
                    None,
                );
            }
        }
    }

    for &k in &kinds {
        let Ok(ex) = available(k, &http_url) else { continue };
        let l = direct_latency(ex.as_ref(), o.direct_samples).await;
        ex.shutdown().await;
        rep.add(
            format!("{}: Executor::execute alone p50 / p99 (n={})", k.name(), l.len()),
            format!("{} / {}", ms(pct(&l, 50.0)), ms(pct(&l, 99.0))),
            "",
            None,
        );
    }
    eprintln!("bench finished in {:.1?}", t0.elapsed());
    rep
}

fn main() {
    let opts = <Args as clap::Parser>::parse().opts();
    eprintln!("{}", machine());
    let (http_url, agent_rt) = http_agent();
    let server = opts.buses.contains(&BusKind::Redis).then(common::redis);
    let redis_url = server.as_ref().map(|s| s.url());
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let report = rt.block_on(async move {
        tokio::select! {
            r = run(opts, http_url, redis_url) => Some(r),
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    drop(rt);
    drop(agent_rt);
    drop(server);
    match report {
        Some(r) => r.print(),
        None => eprintln!("interrupted"),
    }
}
