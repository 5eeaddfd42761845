//! Throughput and latency benchmark of the runtime: a real in-process [`Runtime`] on a real Redis.
//!
//! The bench starts its own `redis-server` on a free loopback port in a temporary directory, with
//! persistence off (`--save "" --appendonly no`): it measures the runtime and Redis's command work, not
//! fsync. It never touches a shared Redis.
//!
//! ```text
//! cargo bench --bench throughput                      # everything, defaults (~2-3 minutes)
//! cargo bench --bench throughput -- --quick           # smaller sizes, for a smoke run
//! cargo bench --bench throughput -- --only noop,crash # pick scenarios: noop, sim, publish, crash
//! cargo bench --bench throughput -- --tasks 20000 --concurrency 64,256 --sim-levels 1,10,100,1000
//! ```
//!
//! Scenarios (see docs/BENCHMARKS.md for results and what bounds them):
//! - `noop`: end-to-end no-op tasks/s, N tasks pre-published then consumed, and publish + consume
//!   concurrently (first publish to last completion);
//! - `sim`: 94 ms simulated tasks at concurrency 1/10/100/1000, achieved throughput as a fraction of ideal;
//! - `publish`: sequential `Bus::publish` latency vs raw `XADD` of the same JSON, interleaved;
//! - `crash`: worker crash (`ChildFailed.at`) to replayed-task start (`Replayed.at`).
//!
//! No tracing subscriber is installed, so the runtime's logging costs next to nothing. Results are
//! printed as a table next to the targets; nothing is asserted (a benchmark, not a test).
// Tests and benches report by panicking: unwrap/expect are allowed here (not in the crates).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{thousands, Report};
use genesis_actors::bus::redis::RedisBus;
use genesis_actors::bus::{keys, Bus, TaskStatus};
use genesis_actors::events::RuntimeEvent;
use genesis_actors::executor::ExecutorRegistry;
use genesis_actors::policy::intensity::Intensity;
use genesis_actors::roster::{AgentSpec, Roster};
use genesis_actors::runtime::Runtime;
use genesis_actors::settings::RuntimeSettings;
use genesis_actors::task::{TaskEnvelope, TopicName};
use redis::aio::MultiplexedConnection;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast::error::TryRecvError;

const TTL: Duration = Duration::from_secs(3600);
/// Longest wait for any one scenario to drain before it is reported as incomplete.
const DRAIN_DEADLINE: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------------

struct Opts {
    only: Vec<String>,
    tasks: usize,
    concurrency: Vec<usize>,
    publishers: usize,
    sim_levels: Vec<usize>,
    sim_sleep_ms: u64,
    latency_samples: usize,
    crash_samples: usize,
    /// Time cap of the back-to-back crash variant (its restart backoff grows, so it is slow).
    burst_cap: Duration,
    /// Print Redis's per-command statistics after each no-op pre-published run.
    redis_stats: bool,
    /// Export spans over OTLP/HTTP to a local sink at this sampling ratio, to measure tracing overhead.
    tracing: Option<f64>,
}

impl Opts {
    fn defaults() -> Opts {
        Opts {
            only: Vec::new(),
            tasks: 50_000,
            concurrency: vec![64, 256],
            publishers: 128,
            sim_levels: vec![1, 10, 100, 1000],
            sim_sleep_ms: 94,
            latency_samples: 5_000,
            crash_samples: 200,
            burst_cap: Duration::from_secs(10),
            redis_stats: false,
            tracing: None,
        }
    }

    fn quick(mut self) -> Opts {
        self.tasks = 10_000;
        self.latency_samples = 1_000;
        self.crash_samples = 50;
        self.burst_cap = Duration::from_secs(3);
        self
    }

    fn wants(&self, scenario: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == scenario)
    }
}

/// `cargo bench --bench throughput -- [options]`; every value left out keeps its default (or the
/// `--quick` default).
#[derive(clap::Parser, Debug)]
#[command(about = "Throughput and latency of the runtime on a real Redis")]
struct Args {
    /// Smaller runs (CI-sized).
    #[arg(long)]
    quick: bool,
    /// Scenarios to run, comma-separated (default: all).
    #[arg(long, value_delimiter = ',', value_parser = ["noop", "sim", "publish", "crash"])]
    only: Vec<String>,
    /// Tasks per throughput run.
    #[arg(long, value_parser = common::positive)]
    tasks: Option<usize>,
    /// Worker counts of the no-op runs, comma-separated.
    #[arg(long, value_delimiter = ',', value_parser = common::positive)]
    concurrency: Vec<usize>,
    /// Concurrent publishers.
    #[arg(long, value_parser = common::positive)]
    publishers: Option<usize>,
    /// Worker counts of the simulated-work runs, comma-separated.
    #[arg(long, value_delimiter = ',', value_parser = common::positive)]
    sim_levels: Vec<usize>,
    /// Work time of each simulated task.
    #[arg(long, value_parser = common::positive)]
    sim_sleep_ms: Option<usize>,
    /// Tasks timed one by one for end-to-end latency.
    #[arg(long, value_parser = common::positive)]
    latency_samples: Option<usize>,
    /// Crashes timed for replay latency.
    #[arg(long, value_parser = common::positive)]
    crash_samples: Option<usize>,
    /// Time cap of the back-to-back crash variant, in seconds.
    #[arg(long, value_parser = common::positive)]
    burst_secs: Option<usize>,
    /// Print Redis's per-command statistics after each no-op pre-published run.
    #[arg(long)]
    redis_stats: bool,
    /// Export every span over OTLP/HTTP to a local sink (tracing overhead).
    #[arg(long, conflicts_with = "tracing_ratio")]
    tracing: bool,
    /// Export spans at this sampling ratio (0..1).
    #[arg(long, value_parser = ratio)]
    tracing_ratio: Option<f64>,
    /// Passed by `cargo bench` to harness = false targets.
    #[arg(long, hide = true)]
    bench: bool,
}

fn ratio(v: &str) -> Result<f64, String> {
    v.parse::<f64>().ok().filter(|r| (0.0..=1.0).contains(r)).ok_or(format!("`{v}` is not in 0..1"))
}

impl Args {
    fn opts(self) -> Opts {
        let mut o = if self.quick { Opts::defaults().quick() } else { Opts::defaults() };
        o.only = self.only;
        if !self.concurrency.is_empty() {
            o.concurrency = self.concurrency;
        }
        if !self.sim_levels.is_empty() {
            o.sim_levels = self.sim_levels;
        }
        o.tasks = self.tasks.unwrap_or(o.tasks);
        o.publishers = self.publishers.unwrap_or(o.publishers);
        o.sim_sleep_ms = self.sim_sleep_ms.map_or(o.sim_sleep_ms, |v| v as u64);
        o.latency_samples = self.latency_samples.unwrap_or(o.latency_samples);
        o.crash_samples = self.crash_samples.unwrap_or(o.crash_samples);
        o.burst_cap = self.burst_secs.map_or(o.burst_cap, |s| Duration::from_secs(s as u64));
        o.redis_stats = self.redis_stats;
        o.tracing = if self.tracing { Some(1.0) } else { self.tracing_ratio };
        o
    }
}

// ---------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------

/// Connections shared by the scenarios. The runtime, the producers and the monitor each get their own
/// bus handle (their own multiplexed connection), as separate processes would.
struct Env {
    url: String,
    admin: MultiplexedConnection,
    producer: Bus,
    monitor: Bus,
}

async fn connect_bus(url: &str) -> Bus {
    let reconnect = RuntimeSettings::defaults("bench").bus.reconnect;
    Bus::Redis(RedisBus::connect(url, reconnect).await.expect("connect to the bench's redis-server"))
}

impl Env {
    async fn flush(&mut self) {
        let _: () = redis::cmd("FLUSHALL").query_async(&mut self.admin).await.expect("FLUSHALL");
    }
}

fn topic(s: &str) -> TopicName {
    s.parse().expect("valid topic name")
}

fn agent(t: &TopicName, concurrency: usize) -> AgentSpec {
    AgentSpec {
        name: t.to_string(),
        topic: t.clone(),
        concurrency,
        max_retries: 3,
        retry_delay: Duration::from_secs(1),
        timeout: Duration::from_secs(60),
        executor: genesis_actors::roster::ExecutorSpec::Named("simulated".into()),
        rate: None,
        breaker: Default::default(),
        dlq: Default::default(),
    }
}

async fn start_runtime(env: &Env, settings: RuntimeSettings, spec: AgentSpec) -> Runtime {
    let bus = connect_bus(&env.url).await;
    Runtime::start(bus, settings, Roster { agents: vec![spec] }, ExecutorRegistry::builtin())
        .await
        .expect("runtime starts")
}

async fn stop_runtime(rt: Runtime) {
    if let Err(e) = rt.shutdown().await {
        eprintln!("  runtime did not stop cleanly: {e}");
    }
}

fn bench_tenant() -> genesis_actors::tenant::TenantId {
    genesis_actors::tenant::TenantId::parse("bench").expect("a valid tenant id")
}

fn envelopes(t: &TopicName, n: usize, payload: &Value) -> Vec<TaskEnvelope> {
    (0..n).map(|_| TaskEnvelope::new(t.clone(), bench_tenant(), payload.clone())).collect()
}

/// How many of these tasks' records say `succeeded` (pipelined HGETs).
async fn count_succeeded(conn: &mut MultiplexedConnection, t: &TopicName, envs: &[TaskEnvelope]) -> usize {
    let mut n = 0;
    for chunk in envs.chunks(2_000) {
        let mut pipe = redis::pipe();
        for e in chunk {
            pipe.cmd("HGET").arg(keys::result(t, &e.task_id.to_string())).arg("status");
        }
        let st: Vec<Option<String>> = pipe.query_async(conn).await.expect("HGET status");
        n += st.iter().filter(|s| s.as_deref() == Some(TaskStatus::Succeeded.as_str())).count();
    }
    n
}

/// Poll the topic's stats until nothing is pending or undelivered (once `published` is set), then
/// confirm that every task's record says `succeeded`. Returns the instant the drained state was first
/// seen, and how many records were succeeded at the end.
async fn wait_all_succeeded(
    env: &mut Env,
    t: &TopicName,
    envs: &[TaskEnvelope],
    published: &AtomicBool,
    poll: Duration,
) -> (Instant, usize) {
    let end = Instant::now() + DRAIN_DEADLINE;
    loop {
        if published.load(Ordering::Acquire) {
            let s = env.monitor.stats(t).await.expect("stats");
            if s.pending == 0 && s.lag == 0 {
                let seen = Instant::now();
                // Acks and results are written by one script, so drained means every outcome is
                // written; confirm they are all successes (and that `lag` was not a missing value).
                let ok = count_succeeded(&mut env.admin, t, envs).await;
                if ok == envs.len() || Instant::now() > end {
                    return (seen, ok);
                }
            }
        }
        if Instant::now() > end {
            let ok = count_succeeded(&mut env.admin, t, envs).await;
            return (Instant::now(), ok);
        }
        tokio::time::sleep(poll).await;
    }
}

/// CPU time used so far by Redis's main thread and by this process (all threads), in seconds.
struct Cpu {
    redis: f64,
    bench: f64,
    at: Instant,
}

async fn cpu(conn: &mut MultiplexedConnection) -> Cpu {
    let info: String = redis::cmd("INFO").arg("cpu").query_async(conn).await.expect("INFO cpu");
    let field = |k: &str| {
        info.lines().find_map(|l| l.strip_prefix(k)).and_then(|v| v.trim().parse::<f64>().ok()).unwrap_or(0.0)
    };
    let redis = field("used_cpu_user_main_thread:") + field("used_cpu_sys_main_thread:");
    Cpu { redis, bench: own_cpu_secs(), at: Instant::now() }
}

/// Sum of the on-CPU time of this process's threads (Linux `/proc/self/task/*/schedstat`; 0 elsewhere).
fn own_cpu_secs() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0.0 };
    let ns: u64 = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()))
        .sum();
    ns as f64 / 1e9
}

/// "redis X%, bench Y%" of one core between two snapshots.
fn cpu_share(a: &Cpu, b: &Cpu) -> String {
    let wall = (b.at - a.at).as_secs_f64().max(1e-9);
    format!(
        "redis main thread {:.0}%, bench process {:.0}% of one core",
        100.0 * (b.redis - a.redis) / wall,
        100.0 * (b.bench - a.bench) / wall
    )
}

async fn print_commandstats(conn: &mut MultiplexedConnection) {
    let info: String = redis::cmd("INFO").arg("commandstats").query_async(conn).await.expect("INFO commandstats");
    let mut rows: Vec<(String, u64, f64, f64)> = info
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let kv = |k: &str| rest.split(',').find_map(|p| p.strip_prefix(k)).and_then(|v| v.parse::<f64>().ok());
            Some((name.to_string(), kv("calls=")? as u64, kv("usec=")?, kv("usec_per_call=")?))
        })
        .collect();
    rows.sort_by(|a, b| b.2.total_cmp(&a.2));
    eprintln!("  redis commandstats (calls from Lua scripts are counted too):");
    for (name, calls, usec, per) in rows.iter().take(14) {
        eprintln!("    {name:<12} calls {calls:>8}  total {:>8.1} ms  {per:>7.2} us/call", usec / 1e3);
    }
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

// ---------------------------------------------------------------------------------------------------
// Scenario 1: end-to-end no-op tasks/s
// ---------------------------------------------------------------------------------------------------

async fn noop(env: &mut Env, o: &Opts, rep: &mut Report) {
    const TARGET: f64 = 50_000.0;
    let n = o.tasks;
    for &c in &o.concurrency {
        // Pre-published, then consumed.
        env.flush().await;
        if o.redis_stats {
            let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query_async(&mut env.admin).await.expect("RESETSTAT");
        }
        let t = topic("bench.noop");
        let envs = Arc::new(envelopes(&t, n, &json!({})));
        let c0 = cpu(&mut env.admin).await;
        let took = common::publish_all(&env.producer, envs.clone(), o.publishers, TTL).await;
        eprintln!("noop C={c}: published {n} in {took:.2?} ({:.0}/s)", rate(n, took));
        if c == o.concurrency[0] {
            rep.add(
                format!("publish {n} tasks, {} concurrent publishers", o.publishers),
                format!("{} tasks/s", thousands(rate(n, took))),
                "",
                None,
            );
        }
        let settings = RuntimeSettings::defaults(format!("bench-noop-{c}"));
        let c1 = cpu(&mut env.admin).await;
        eprintln!("  while publishing: {}", cpu_share(&c0, &c1));
        let t0 = Instant::now();
        let rt = start_runtime(env, settings, agent(&t, c)).await;
        let started = t0.elapsed();
        let done = AtomicBool::new(true);
        let (t1, ok) = wait_all_succeeded(env, &t, &envs, &done, Duration::from_millis(5)).await;
        let wall = t1 - t0;
        let c2 = cpu(&mut env.admin).await;
        stop_runtime(rt).await;
        eprintln!("noop C={c}: runtime start {started:.2?}; {ok}/{n} succeeded in {wall:.2?}");
        if o.redis_stats {
            print_commandstats(&mut env.admin).await;
        }
        let r = rate(ok, wall);
        rep.add(
            format!("no-op e2e, C={c}, {n} pre-published"),
            format!("{} tasks/s", thousands(r)),
            ">= 50,000 tasks/s",
            Some(ok == n && r >= TARGET),
        );
        rep.add("  CPU while consuming", cpu_share(&c1, &c2), "", None);

        // Publish and consume concurrently: first publish to last completion.
        env.flush().await;
        let envs = Arc::new(envelopes(&t, n, &json!({})));
        let settings = RuntimeSettings::defaults(format!("bench-noop-cc-{c}"));
        let rt = start_runtime(env, settings, agent(&t, c)).await;
        let published = Arc::new(AtomicBool::new(false));
        let c0 = cpu(&mut env.admin).await;
        let t0 = Instant::now();
        let pubs = {
            let (bus, envs, published, p) = (env.producer.clone(), envs.clone(), published.clone(), o.publishers);
            tokio::spawn(async move {
                let d = common::publish_all(&bus, envs, p, TTL).await;
                published.store(true, Ordering::Release);
                d
            })
        };
        let (t1, ok) = wait_all_succeeded(env, &t, &envs, &published, Duration::from_millis(5)).await;
        let pub_took = pubs.await.expect("publishers");
        let wall = t1 - t0;
        let c1 = cpu(&mut env.admin).await;
        stop_runtime(rt).await;
        eprintln!("noop concurrent C={c}: publish {pub_took:.2?}; {ok}/{n} succeeded {wall:.2?} after first publish");
        let r = rate(ok, wall);
        rep.add(
            format!("no-op e2e, C={c}, publish+consume concurrently"),
            format!("{} tasks/s", thousands(r)),
            ">= 50,000 tasks/s",
            Some(ok == n && r >= TARGET),
        );
        rep.add("  CPU (publishers + runtime)", cpu_share(&c0, &c1), "", None);
    }
}

// ---------------------------------------------------------------------------------------------------
// Scenario 2: 94 ms simulated tasks, fraction of ideal
// ---------------------------------------------------------------------------------------------------

async fn sim(env: &mut Env, o: &Opts, rep: &mut Report) {
    let sleep = Duration::from_millis(o.sim_sleep_ms);
    for &c in &o.sim_levels {
        env.flush().await;
        let k = (c * 5).max(20);
        let t = topic("bench.sim");
        let envs = Arc::new(envelopes(&t, k, &json!({"simulate": {"sleep_ms": o.sim_sleep_ms}})));
        common::publish_all(&env.producer, envs.clone(), o.publishers, TTL).await;
        let settings = RuntimeSettings::defaults(format!("bench-sim-{c}"));
        let c0 = cpu(&mut env.admin).await;
        let t0 = Instant::now();
        let rt = start_runtime(env, settings, agent(&t, c)).await;
        let started = t0.elapsed();
        let done = AtomicBool::new(true);
        let (t1, ok) = wait_all_succeeded(env, &t, &envs, &done, Duration::from_millis(2)).await;
        let wall = t1 - t0;
        let c1 = cpu(&mut env.admin).await;
        stop_runtime(rt).await;
        let ideal = sleep.mul_f64(k as f64 / c as f64);
        let frac = ideal.as_secs_f64() / wall.as_secs_f64().max(1e-9);
        eprintln!(
            "sim C={c}: K={k}, runtime start {started:.2?}, {ok}/{k} succeeded in {wall:.3?} (ideal {ideal:.3?})"
        );
        let target = if c == 1000 { ">= 0.95 of ideal" } else { "" };
        let met = (c == 1000).then_some(ok == k && frac >= 0.95);
        rep.add(
            format!("{} ms tasks, C={c}, K={k} (wall {wall:.2?}, ideal {ideal:.2?})", o.sim_sleep_ms),
            format!("{frac:.3} of ideal"),
            target,
            met,
        );
        if c >= 100 {
            rep.add("  CPU during the run", cpu_share(&c0, &c1), "", None);
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Scenario 3: publish latency vs raw XADD
// ---------------------------------------------------------------------------------------------------

async fn publish_latency(env: &mut Env, o: &Opts, rep: &mut Report) {
    env.flush().await;
    let t = topic("bench.latency");
    let client = redis::Client::open(env.url.as_str()).expect("redis url");
    let mut raw = client.get_multiplexed_async_connection().await.expect("raw connection");
    let scratch = "bench:scratch";
    let n = o.latency_samples;
    let warmup = 200;
    let mut p_lat = Vec::with_capacity(n);
    let mut x_lat = Vec::with_capacity(n);
    for i in 0..(warmup + n) {
        let e = TaskEnvelope::new(t.clone(), bench_tenant(), json!({}));
        let body = e.to_json();
        // Alternate the order so neither side always runs right after the other.
        let (p, x) = if i % 2 == 0 {
            let p = timed_publish(&env.producer, &e).await;
            (p, xadd(&mut raw, scratch, &body).await)
        } else {
            let x = xadd(&mut raw, scratch, &body).await;
            (timed_publish(&env.producer, &e).await, x)
        };
        if i >= warmup {
            p_lat.push(p);
            x_lat.push(x);
        }
    }
    p_lat.sort();
    x_lat.sort();
    let (p50, p99, x50, x99) = (pct(&p_lat, 50.0), pct(&p_lat, 99.0), pct(&x_lat, 50.0), pct(&x_lat, 99.0));
    let ratio99 = p99.as_secs_f64() / x99.as_secs_f64().max(1e-12);
    let ratio50 = p50.as_secs_f64() / x50.as_secs_f64().max(1e-12);
    rep.add(format!("Bus::publish p50 / p99 ({n} sequential)"), format!("{} / {}", ms(p50), ms(p99)), "", None);
    rep.add(format!("raw XADD p50 / p99 ({n}, interleaved)"), format!("{} / {}", ms(x50), ms(x99)), "", None);
    rep.add("publish / XADD ratio, p50", format!("{ratio50:.2}x"), "", None);
    rep.add("publish / XADD ratio, p99", format!("{ratio99:.2}x"), "<= 1.3x", Some(ratio99 <= 1.3));
}

async fn timed_publish(bus: &Bus, e: &TaskEnvelope) -> Duration {
    let s = Instant::now();
    bus.publish(e, TTL).await.expect("publish");
    s.elapsed()
}

async fn xadd(conn: &mut MultiplexedConnection, stream: &str, body: &str) -> Duration {
    let s = Instant::now();
    let _: String =
        redis::cmd("XADD").arg(stream).arg("*").arg("task").arg(body).query_async(conn).await.expect("XADD");
    s.elapsed()
}

// ---------------------------------------------------------------------------------------------------
// Scenario 4: worker crash -> replayed-task start
// ---------------------------------------------------------------------------------------------------

struct CrashRun {
    /// Replayed.at - ChildFailed.at, per task.
    latency: Vec<Duration>,
    /// The restart delay the supervisor chose (ChildRestarted.after), per task.
    backoff: Vec<Duration>,
    /// Latency minus the chosen restart delay, per task.
    overhead: Vec<Duration>,
    not_succeeded: usize,
    wall: Duration,
}

/// One task at a time, each crashing its worker once. `within` is the restart-intensity window, which
/// also decides how many "recent restarts" the restart backoff counts; `gap` spaces the tasks out.
async fn crash_run(env: &mut Env, samples: usize, within: Duration, gap: Duration, cap: Duration) -> CrashRun {
    env.flush().await;
    let t = topic("bench.crash");
    let mut settings = RuntimeSettings::defaults("bench-crash");
    settings.bus.max_deliveries = 5;
    settings.supervision.agent = Intensity { max_restarts: 100_000, within };
    let rt = start_runtime(env, settings, agent(&t, 1)).await;
    let mut events = rt.subscribe();
    let payload = json!({"simulate": {"panic_deliveries": 1}});
    let mut run =
        CrashRun { latency: vec![], backoff: vec![], overhead: vec![], not_succeeded: 0, wall: Duration::ZERO };
    let t_start = Instant::now();
    for _ in 0..samples {
        if t_start.elapsed() > cap {
            break;
        }
        let e = TaskEnvelope::new(t.clone(), bench_tenant(), payload.clone());
        env.producer.publish(&e, TTL).await.expect("publish");
        let id = e.task_id.to_string();
        let end = Instant::now() + Duration::from_secs(30);
        let status = loop {
            match env.monitor.task(&t, &id).await.expect("task record") {
                Some(r) if r.status.is_final() => break Some(r.status),
                _ if Instant::now() > end => break None,
                _ => tokio::time::sleep(Duration::from_millis(1)).await,
            }
        };
        if status != Some(TaskStatus::Succeeded) {
            run.not_succeeded += 1;
        }
        let (mut failed_at, mut after) = (None, None);
        loop {
            match events.try_recv() {
                Ok(RuntimeEvent::ChildFailed { child, at, .. }) if child.starts_with("worker-") => failed_at = Some(at),
                Ok(RuntimeEvent::ChildRestarted { child, after: a, .. }) if child.starts_with("worker-") => {
                    after = Some(a)
                }
                Ok(RuntimeEvent::Replayed { at, .. }) => {
                    if let Some(f) = failed_at.take() {
                        let l = at.saturating_duration_since(f);
                        run.latency.push(l);
                        if let Some(a) = after.take() {
                            run.backoff.push(a);
                            run.overhead.push(l.saturating_sub(a));
                        }
                    }
                }
                Ok(RuntimeEvent::Escalated { reason, .. }) => eprintln!("  escalated: {reason}"),
                Ok(_) => {}
                Err(TryRecvError::Lagged(k)) => eprintln!("  event receiver lagged by {k}"),
                Err(TryRecvError::Empty) | Err(TryRecvError::Closed) => break,
            }
        }
        if !gap.is_zero() {
            tokio::time::sleep(gap).await;
        }
    }
    run.wall = t_start.elapsed();
    stop_runtime(rt).await;
    run.latency.sort();
    run.backoff.sort();
    run.overhead.sort();
    run
}

async fn crash(env: &mut Env, o: &Opts, rep: &mut Report) {
    let b = RuntimeSettings::defaults("x").supervision.restart_backoff;
    eprintln!(
        "crash: restart_backoff initial {:?}, max {:?}, x{} per recent restart, equal jitter (n-th restart in the \
         intensity window waits U[initial*2^(n-1)/2, initial*2^(n-1)])",
        b.initial, b.max, b.multiplier
    );
    rep.add(
        "restart_backoff in use (defaults)",
        format!("{:?} initial, x{}, max {:?}, equal jitter", b.initial, b.multiplier, b.max),
        "",
        None,
    );

    // Isolated crashes: a 20 ms intensity window and a 25 ms gap between tasks, so every crash is the
    // first restart in its window and waits the initial backoff (1-2 ms with equal jitter).
    let r = crash_run(env, o.crash_samples, Duration::from_millis(20), Duration::from_millis(25), Duration::MAX).await;
    let n = r.latency.len();
    let (p50, p99) = (pct(&r.latency, 50.0), pct(&r.latency, 99.0));
    rep.add(
        format!("crash->replay, isolated crashes (n={n}) p50 / p99"),
        format!("{} / {}", ms(p50), ms(p99)),
        "p99 < 20 ms",
        Some(n > 0 && r.not_succeeded == 0 && p99 < Duration::from_millis(20)),
    );
    rep.add(
        "  of which restart backoff p50 / p99",
        format!("{} / {}", ms(pct(&r.backoff, 50.0)), ms(pct(&r.backoff, 99.0))),
        "",
        None,
    );
    rep.add(
        "  of which the rest p50 / p99",
        format!("{} / {}", ms(pct(&r.overhead, 50.0)), ms(pct(&r.overhead, 99.0))),
        "",
        None,
    );
    if r.not_succeeded > 0 {
        eprintln!("  {} crash tasks did not succeed", r.not_succeeded);
    }

    // Back-to-back crashes with a 1 s window (max_restarts 100_000 within 1 s): each crash counts the
    // earlier ones of the last second, so the restart backoff grows. Time-capped.
    let r = crash_run(env, o.crash_samples, Duration::from_secs(1), Duration::ZERO, o.burst_cap).await;
    let n = r.latency.len();
    rep.add(
        format!("crash->replay, back-to-back, 1 s window (n={n}, {:.1?}) p50 / p99", r.wall),
        format!("{} / {}", ms(pct(&r.latency, 50.0)), ms(pct(&r.latency, 99.0))),
        "(not the target condition)",
        None,
    );
    rep.add(
        "  of which restart backoff p50 / p99",
        format!("{} / {}", ms(pct(&r.backoff, 50.0)), ms(pct(&r.backoff, 99.0))),
        "",
        None,
    );
    rep.add(
        "  of which the rest p50 / p99",
        format!("{} / {}", ms(pct(&r.overhead, 50.0)), ms(pct(&r.overhead, 99.0))),
        "",
        None,
    );
    if r.not_succeeded > 0 {
        eprintln!("  {} crash tasks did not succeed", r.not_succeeded);
    }
}

// ---------------------------------------------------------------------------------------------------

async fn run(url: String, o: Opts) -> Report {
    let client = redis::Client::open(url.as_str()).expect("redis url");
    let mut admin = client.get_multiplexed_async_connection().await.expect("admin connection");
    let info: String = redis::cmd("INFO").arg("server").query_async(&mut admin).await.expect("INFO");
    let version = info.lines().find_map(|l| l.strip_prefix("redis_version:")).unwrap_or("?").trim().to_string();
    eprintln!(
        "redis-server {version} (--save \"\" --appendonly no) at {url}; {} CPUs available; tokio multi-thread runtime",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    let mut env = Env { producer: connect_bus(&url).await, monitor: connect_bus(&url).await, admin, url };
    let mut rep = Report { rows: Vec::new() };
    let t0 = Instant::now();
    if o.wants("noop") {
        noop(&mut env, &o, &mut rep).await;
    }
    if o.wants("sim") {
        sim(&mut env, &o, &mut rep).await;
    }
    if o.wants("publish") {
        publish_latency(&mut env, &o, &mut rep).await;
    }
    if o.wants("crash") {
        crash(&mut env, &o, &mut rep).await;
    }
    eprintln!("bench finished in {:.1?}", t0.elapsed());
    rep
}

fn main() {
    let opts = <Args as clap::Parser>::parse().opts();
    // The crash scenario panics on purpose inside the simulated executor; keep those off stderr.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if !msg.starts_with("simulated panic") {
            default_hook(info);
        }
    }));
    let server = common::redis();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let url = server.url();
    let tracing_ratio = opts.tracing;
    let (report, exported) = rt.block_on(async move {
        let tracer = match tracing_ratio {
            Some(r) => Some(install_tracing(r).await),
            None => None,
        };
        let r = tokio::select! {
            r = run(url, opts) => Some(r),
            _ = tokio::signal::ctrl_c() => None,
        };
        let exported = tracer.map(|(provider, received)| {
            let _ = provider.shutdown();
            received.load(std::sync::atomic::Ordering::Relaxed)
        });
        (r, exported)
    });
    if let (Some(n), Some(r)) = (exported, tracing_ratio) {
        println!("tracing on: sampling ratio {r}, OTLP/HTTP batch export to a local sink; {n} bytes of spans received");
    }
    drop(rt);
    drop(server);
    match report {
        Some(r) => r.print(),
        None => eprintln!("interrupted"),
    }
}

/// Install the OpenTelemetry layer (as `genesis serve` does with an endpoint configured) exporting to a
/// local OTLP/HTTP sink that counts the bytes it receives. Returns the provider and the counter.
async fn install_tracing(
    ratio: f64,
) -> (opentelemetry_sdk::trace::SdkTracerProvider, Arc<std::sync::atomic::AtomicU64>) {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::{Protocol, WithExportConfig};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;

    let received = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                // Count bytes only: decoding here would charge the collector's work to the service.
                sink.fetch_add(body.len() as u64, std::sync::atomic::Ordering::Relaxed);
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind sink");
    let addr = listener.local_addr().expect("sink addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(format!("http://{addr}/v1/traces"))
        .build()
        .expect("exporter");
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(opentelemetry_sdk::trace::Sampler::ParentBased(Box::new(
            opentelemetry_sdk::trace::Sampler::TraceIdRatioBased(ratio),
        )))
        .build();
    let spans = tracing_subscriber::filter::Targets::new().with_target("genesis_actors", tracing::Level::INFO);
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("genesis")).with_filter(spans);
    let _ = tracing_subscriber::registry().with(layer).try_init();
    (provider, received)
}
