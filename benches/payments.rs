//! Benchmark of the payment authority: decisions per second and decision latency through
//! [`Authority::approve`], on the Redis ledger (the production path: validation, one pipeline of
//! single-key ownership commands, then one `DECIDE` script) and, for context, on the in-memory ledger and with intents denied at validation.
//!
//! The bench starts its own `redis-server` on a free loopback port in a temporary directory, with
//! persistence off (`--save "" --appendonly no`), and flushes it before every run. It never touches a
//! shared Redis.
//!
//! ```text
//! cargo bench --bench payments                         # everything, defaults (~30 s after the build)
//! cargo bench --bench payments -- --quick              # smaller sizes, for a smoke run
//! cargo bench --bench payments -- --only redis --concurrency 64 --decisions 100000
//! cargo bench --bench payments -- --only windows --window-agents 10
//! ```
//!
//! Scenarios (see docs/BENCHMARKS.md, "Payments", for results and what bounds them):
//! - `redis`: intents that pass every check, C concurrent callers (tokio tasks) sharing one `Authority`
//!   (one Redis connection, as one node has), unique mandate ids; decisions/s and latency percentiles;
//! - `windows`: the same at C = 64 with few agents, so each agent's velocity window holds hundreds of
//!   entries (the `DECIDE` script reads the whole window per decision);
//! - `deny`: every intent fails validation (unknown agent, the last validation step): no ledger call;
//! - `memory`: the approving workload on the in-memory ledger;
//! - `workflow`: the approving workload at C = 1 and 64 with every intent counting toward a workflow's
//!   budget (one workflow per business, budgets far above a run): what the workflow scope costs.
//!
//! Approving workload: amounts 100..=799 cents (under the structuring band of 800..1000, at most 8× the
//! smallest, so never an amount anomaly), 3 whitelisted vendors, agents and businesses assigned
//! round-robin, each business in one tenant (business k in tenant k mod T, since a business belongs to
//! one tenant), budgets and velocity limits far above what a run uses. Every decision is checked: a run
//! that does not approve (or deny, for `deny`) every intent says so in its row.
//!
//! No tracing subscriber is installed, so the authority's `tracing::info!` per decision costs next to
//! nothing. Results are printed as a table next to the targets; nothing is asserted.
// Tests and benches report by panicking: unwrap/expect are allowed here (not in the crates).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{thousands, Report};
use genesis_actors::payments::authority::Authority;
use genesis_actors::payments::ledger::memory::MemoryLedger;
use genesis_actors::payments::ledger::redis::RedisLedger;
use genesis_actors::payments::ledger::Ledger;
use genesis_actors::payments::types::{Outcome, PaymentIntent, WorkflowBudget};
use genesis_actors::payments::PaymentsSettings;
use redis::aio::MultiplexedConnection;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TARGET_RATE: f64 = 20_000.0;
const TARGET_P99: Duration = Duration::from_millis(1);
const VENDORS: [&str; 3] = ["openai.com", "stripe.com", "vercel.com"];

// ---------------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------------

struct Opts {
    only: Vec<String>,
    /// Decisions per concurrent run (C > 1).
    decisions: usize,
    /// Decisions of the sequential run (C = 1).
    seq_decisions: usize,
    concurrency: Vec<usize>,
    /// Agents the approving intents are spread over (round-robin).
    agents: usize,
    businesses: usize,
    tenants: usize,
    /// Agents of the `windows` scenario, and its decisions.
    window_agents: usize,
    window_decisions: usize,
    deny_decisions: usize,
    memory_decisions: usize,
    /// Decisions before each measured run (not measured).
    warmup: usize,
    /// Print Redis's per-command statistics (calls from Lua included) after each Redis run.
    redis_stats: bool,
}

const SCENARIOS: [&str; 5] = ["redis", "windows", "deny", "memory", "workflow"];

impl Opts {
    fn defaults() -> Opts {
        Opts {
            only: Vec::new(),
            decisions: 40_000,
            seq_decisions: 10_000,
            concurrency: vec![1, 16, 64, 256],
            agents: 2_000,
            businesses: 20,
            tenants: 5,
            window_agents: 50,
            window_decisions: 20_000,
            deny_decisions: 200_000,
            memory_decisions: 100_000,
            warmup: 1_000,
            redis_stats: false,
        }
    }

    fn quick(mut self) -> Opts {
        self.decisions = 10_000;
        self.seq_decisions = 2_000;
        self.window_decisions = 5_000;
        self.deny_decisions = 50_000;
        self.memory_decisions = 20_000;
        self.warmup = 300;
        self
    }

    fn wants(&self, scenario: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == scenario)
    }
}

/// `cargo bench --bench payments -- [options]`; every value left out keeps its default (or the
/// `--quick` default).
#[derive(clap::Parser, Debug)]
#[command(about = "Payment decisions per second and their latency, Redis and in-memory ledgers")]
struct Args {
    /// Smaller runs (CI-sized).
    #[arg(long)]
    quick: bool,
    /// Scenarios to run, comma-separated (default: all).
    #[arg(long, value_delimiter = ',', value_parser = SCENARIOS)]
    only: Vec<String>,
    /// Decisions per concurrent run.
    #[arg(long, value_parser = common::positive)]
    decisions: Option<usize>,
    /// Decisions of the sequential run.
    #[arg(long, value_parser = common::positive)]
    seq_decisions: Option<usize>,
    /// Concurrent callers per run, comma-separated.
    #[arg(long, value_delimiter = ',', value_parser = common::positive)]
    concurrency: Vec<usize>,
    /// Agents the approving intents are spread over.
    #[arg(long, value_parser = common::positive)]
    agents: Option<usize>,
    #[arg(long, value_parser = common::positive)]
    businesses: Option<usize>,
    #[arg(long, value_parser = common::positive)]
    tenants: Option<usize>,
    /// Agents of the `windows` scenario.
    #[arg(long, value_parser = common::positive)]
    window_agents: Option<usize>,
    #[arg(long, value_parser = common::positive)]
    window_decisions: Option<usize>,
    #[arg(long, value_parser = common::positive)]
    deny_decisions: Option<usize>,
    #[arg(long, value_parser = common::positive)]
    memory_decisions: Option<usize>,
    /// Decisions before each measured run (not measured).
    #[arg(long, value_parser = common::positive)]
    warmup: Option<usize>,
    /// Print Redis's per-command statistics after each Redis run.
    #[arg(long)]
    redis_stats: bool,
    /// Passed by `cargo bench` to harness = false targets.
    #[arg(long, hide = true)]
    bench: bool,
}

impl Args {
    fn opts(self) -> Opts {
        let mut o = if self.quick { Opts::defaults().quick() } else { Opts::defaults() };
        o.only = self.only;
        if !self.concurrency.is_empty() {
            o.concurrency = self.concurrency;
        }
        o.decisions = self.decisions.unwrap_or(o.decisions);
        o.seq_decisions = self.seq_decisions.unwrap_or(o.seq_decisions);
        o.agents = self.agents.unwrap_or(o.agents);
        o.businesses = self.businesses.unwrap_or(o.businesses);
        o.tenants = self.tenants.unwrap_or(o.tenants);
        o.window_agents = self.window_agents.unwrap_or(o.window_agents);
        o.window_decisions = self.window_decisions.unwrap_or(o.window_decisions);
        o.deny_decisions = self.deny_decisions.unwrap_or(o.deny_decisions);
        o.memory_decisions = self.memory_decisions.unwrap_or(o.memory_decisions);
        o.warmup = self.warmup.unwrap_or(o.warmup);
        o.redis_stats = self.redis_stats;
        o
    }
}

// ---------------------------------------------------------------------------------------------------
// Workload
// ---------------------------------------------------------------------------------------------------

fn agent_name(i: usize) -> String {
    format!("bench-agent-{i}")
}

/// Settings under which every intent of [`approving`] is approved: the known agents, the three
/// vendors whitelisted, budgets and velocity limits far above a run's totals. The other fraud rules
/// keep their defaults (structuring band 800..1000 cents, anomaly factor 10 over ≥ 5 samples).
fn settings(agents: usize) -> PaymentsSettings {
    common::approving_settings((0..agents).map(agent_name).collect::<BTreeSet<_>>(), &VENDORS)
}

struct Spread {
    agents: usize,
    businesses: usize,
    tenants: usize,
    /// Every intent counts toward its business's workflow (`bench-wf-<business>`, budget 2^50).
    workflows: bool,
}

/// `n` intents that pass every check, mandate ids `{tag}-{i}`.
fn approving(tag: &str, n: usize, s: &Spread) -> Vec<PaymentIntent> {
    (0..n)
        .map(|i| {
            let business = i % s.businesses;
            PaymentIntent {
                agent_id: agent_name(i % s.agents),
                vendor: VENDORS[i % VENDORS.len()].to_string(),
                // 100..=799: never near-threshold (800..1000), at most 8× apart (anomaly factor 10).
                amount_cents: 100 + ((i * 37) % 700) as i64,
                reason: "api credits".to_string(),
                mandate_id: format!("{tag}-{i}"),
                business_id: format!("bench-biz-{business}"),
                // A business belongs to one tenant.
                tenant_id: genesis_actors::tenant::TenantId::parse(&format!("bench-tenant-{}", business % s.tenants))
                    .expect("a valid tenant id"),
                task_id: None,
                workflow: s
                    .workflows
                    .then(|| WorkflowBudget { id: format!("bench-wf-{business}"), budget_cents: 1 << 50 }),
            }
        })
        .collect()
}

/// `n` intents that are well-formed but from an unknown agent: denied by the last validation step,
/// after amount, vendor normalization, mandate, business and reason were checked.
fn unknown_agent(tag: &str, n: usize, s: &Spread) -> Vec<PaymentIntent> {
    let mut v = approving(tag, n, s);
    for x in &mut v {
        x.agent_id = format!("intruder-{}", x.agent_id);
    }
    v
}

// ---------------------------------------------------------------------------------------------------
// Measurement
// ---------------------------------------------------------------------------------------------------

struct RunResult {
    wall: Duration,
    /// One per decision, sorted.
    latencies: Vec<Duration>,
    /// Decisions per (outcome, code), to check the workload did what it claims.
    codes: BTreeMap<String, usize>,
    errors: usize,
}

impl RunResult {
    fn n(&self) -> usize {
        self.latencies.len()
    }

    fn rate(&self) -> f64 {
        self.n() as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    /// `None` if every decision had `expect`, else a short account of what happened instead.
    fn deviation(&self, expect: &str) -> Option<String> {
        let ok = self.codes.get(expect).copied().unwrap_or(0);
        if ok == self.n() && self.errors == 0 {
            return None;
        }
        let other: Vec<String> =
            self.codes.iter().filter(|(k, _)| k.as_str() != expect).map(|(k, v)| format!("{k} ×{v}")).collect();
        Some(format!("only {ok} of {} were {expect}; {} errors; {}", self.n(), self.errors, other.join(", ")))
    }
}

/// `concurrency` tokio tasks call `approve` on the intents, each taking the next one, until all are
/// decided. Wall time is from the start of the first call to the end of the last.
async fn drive(authority: &Authority, intents: Arc<Vec<PaymentIntent>>, concurrency: usize) -> RunResult {
    let concurrency = concurrency.max(1);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(tokio::sync::Barrier::new(concurrency + 1));
    let handles: Vec<_> = (0..concurrency)
        .map(|_| {
            let (a, intents, next, start) = (authority.clone(), intents.clone(), next.clone(), start.clone());
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(intents.len() / concurrency + 1);
                let mut codes: BTreeMap<String, usize> = BTreeMap::new();
                let mut errors = 0;
                start.wait().await;
                while let Some(x) = intents.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let t = Instant::now();
                    let r = a.approve(x).await;
                    lat.push(t.elapsed());
                    match r {
                        Ok(d) => *codes.entry(code_key(d.outcome, &d.code)).or_default() += 1,
                        Err(_) => errors += 1,
                    }
                }
                (lat, codes, errors)
            })
        })
        .collect();
    start.wait().await;
    let t0 = Instant::now();
    let mut out = RunResult { wall: Duration::ZERO, latencies: Vec::new(), codes: BTreeMap::new(), errors: 0 };
    for h in handles {
        let (lat, codes, errors) = h.await.expect("caller task");
        out.latencies.extend(lat);
        for (k, v) in codes {
            *out.codes.entry(k).or_default() += v;
        }
        out.errors += errors;
    }
    out.wall = t0.elapsed();
    out.latencies.sort_unstable();
    out
}

fn code_key(o: Outcome, code: &str) -> String {
    let o = match o {
        Outcome::Approved => "approved",
        Outcome::Denied => "denied",
        Outcome::NeedsReview => "needs_review",
    };
    format!("{o}/{code}")
}

/// CPU time used so far by Redis's main thread, by this process (all threads) and by the whole machine
/// (all cores, anything not idle), in seconds.
struct Cpu {
    redis: f64,
    bench: f64,
    machine: f64,
    at: Instant,
}

impl Cpu {
    /// "redis main thread X%, bench process Y%, machine Z% (of one core)" between two snapshots. The
    /// machine figure shows whether anything else was running (it should be close to redis + bench).
    fn share(&self, later: &Cpu) -> String {
        let wall = (later.at - self.at).as_secs_f64().max(1e-9);
        let p = |a: f64, b: f64| 100.0 * (b - a) / wall;
        format!(
            "redis main thread {:.0}%, bench process {:.0}%, whole machine {:.0}% of one core ({} cores)",
            p(self.redis, later.redis),
            p(self.bench, later.bench),
            p(self.machine, later.machine),
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
        )
    }
}

async fn cpu(admin: Option<&mut MultiplexedConnection>) -> Cpu {
    let redis = match admin {
        Some(conn) => {
            let info: String = redis::cmd("INFO").arg("cpu").query_async(conn).await.expect("INFO cpu");
            let field = |k: &str| {
                info.lines().find_map(|l| l.strip_prefix(k)).and_then(|v| v.trim().parse::<f64>().ok()).unwrap_or(0.0)
            };
            field("used_cpu_user_main_thread:") + field("used_cpu_sys_main_thread:")
        }
        None => 0.0,
    };
    Cpu { redis, bench: own_cpu_secs(), machine: machine_busy_secs(), at: Instant::now() }
}

/// Busy CPU time of all cores since boot (Linux `/proc/stat`, assuming USER_HZ = 100; 0 elsewhere):
/// everything but `idle` and `iowait`.
fn machine_busy_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else { return 0.0 };
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else { return 0.0 };
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user/nice).
    let busy: u64 = v.iter().take(8).enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, x)| x).sum();
    busy as f64 / 100.0
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

/// `EVALSHA` calls and microseconds per call since the last `CONFIG RESETSTAT`.
async fn evalsha_stats(conn: &mut MultiplexedConnection) -> Option<(u64, f64)> {
    let info: String = redis::cmd("INFO").arg("commandstats").query_async(conn).await.ok()?;
    let line = info.lines().find_map(|l| l.strip_prefix("cmdstat_evalsha:"))?;
    let kv = |k: &str| line.split(',').find_map(|p| p.strip_prefix(k)).and_then(|v| v.parse::<f64>().ok());
    Some((kv("calls=")? as u64, kv("usec_per_call=")?))
}

async fn print_commandstats(conn: &mut MultiplexedConnection, decisions: usize) {
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
    eprintln!("  redis commandstats (EVALSHA includes the commands it runs, which are also listed):");
    for (name, calls, usec, per) in rows.iter().take(24) {
        let per_decision = usec / decisions.max(1) as f64;
        eprintln!(
            "    {name:<18} calls {calls:>8}  total {:>8.1} ms  {per:>7.2} us/call  {per_decision:>6.2} us/decision",
            usec / 1e3
        );
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
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

// ---------------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------------

struct Env {
    url: String,
    admin: MultiplexedConnection,
}

impl Env {
    /// FLUSHALL (fresh windows, budgets and log for every run) and reset Redis's command statistics.
    async fn reset(&mut self) {
        let _: () = redis::cmd("FLUSHALL").query_async(&mut self.admin).await.expect("FLUSHALL");
        let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query_async(&mut self.admin).await.expect("RESETSTAT");
    }

    async fn authority(&self, agents: usize) -> Authority {
        let ledger = RedisLedger::connect(&self.url).await.expect("connect the ledger to the bench's redis-server");
        Authority::new(settings(agents), Ledger::Redis(ledger), None)
    }
}

/// One measured run on the Redis ledger: reset, warm up (same spread, other mandates), then measure.
/// Prints CPU shares and Redis's per-`DECIDE` cost to stderr.
async fn redis_run(env: &mut Env, o: &Opts, label: &str, spread: &Spread, n: usize, c: usize) -> RunResult {
    let warmup = o.warmup;
    env.reset().await;
    let authority = env.authority(spread.agents).await;
    let warm = Arc::new(approving(&format!("warm-{label}"), warmup, spread));
    drive(&authority, warm, c.min(warmup.max(1))).await;
    let intents = Arc::new(approving(label, n, spread));
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query_async(&mut env.admin).await.expect("RESETSTAT");
    let a = cpu(Some(&mut env.admin)).await;
    let r = drive(&authority, intents, c).await;
    let b = cpu(Some(&mut env.admin)).await;
    let eval = evalsha_stats(&mut env.admin).await;
    let window = (warmup + n).div_ceil(spread.agents);
    eprintln!(
        "  {label}: {n} decisions in {:.3} s; p50 {} / p99 {} / p999 {} / max {} ms; {}; \
         redis {:.1} us/decision (EVALSHA {}); per-agent window at the end ≈ {window}",
        r.wall.as_secs_f64(),
        ms(pct(&r.latencies, 50.0)),
        ms(pct(&r.latencies, 99.0)),
        ms(pct(&r.latencies, 99.9)),
        ms(r.latencies.last().copied().unwrap_or_default()),
        a.share(&b),
        1e6 * (b.redis - a.redis) / n.max(1) as f64,
        eval.map(|(calls, us)| format!("{calls} calls, {us:.1} us/call")).unwrap_or_else(|| "n/a".into()),
    );
    if o.redis_stats {
        print_commandstats(&mut env.admin, n).await;
    }
    r
}

fn rate_row(rep: &mut Report, name: String, r: &RunResult, expect: &str, target: bool) {
    let mut value = format!("{} decisions/s", thousands(r.rate()));
    if let Some(d) = r.deviation(expect) {
        value.push_str(&format!(" [{d}]"));
    }
    let (t, met) = if target { ("≥ 20,000/s", Some(r.rate() >= TARGET_RATE)) } else { ("", None) };
    rep.add(name, value, t, met);
}

fn latency_row(rep: &mut Report, name: String, r: &RunResult) {
    let (p50, p99, p999) = (pct(&r.latencies, 50.0), pct(&r.latencies, 99.0), pct(&r.latencies, 99.9));
    rep.add(name, format!("{} / {} / {} ms", ms(p50), ms(p99), ms(p999)), "p99 < 1 ms", Some(p99 < TARGET_P99));
}

async fn redis_scenario(env: &mut Env, o: &Opts, rep: &mut Report) {
    eprintln!(
        "== approving intents on the Redis ledger ({} agents, {} businesses, {} tenants)",
        o.agents, o.businesses, o.tenants
    );
    let spread = Spread { agents: o.agents, businesses: o.businesses, tenants: o.tenants, workflows: false };
    let mut latency = Vec::new();
    for &c in &o.concurrency {
        let n = if c == 1 { o.seq_decisions } else { o.decisions };
        let r = redis_run(env, o, &format!("c{c}"), &spread, n, c).await;
        let what = if c == 1 { "sequential".to_string() } else { "concurrent callers".to_string() };
        rate_row(rep, format!("Redis, approve, C = {c} ({what}), n = {n}"), &r, "approved/approved", c > 1);
        if c == 1 || c == 64 {
            latency.push((c, r));
        }
    }
    for (c, r) in latency {
        latency_row(rep, format!("Redis, approve, C = {c}: p50 / p99 / p999"), &r);
    }
}

async fn windows_scenario(env: &mut Env, o: &Opts, rep: &mut Report) {
    let (agents, n, c) = (o.window_agents, o.window_decisions, 64);
    eprintln!("== approving intents on the Redis ledger, {agents} agents (large velocity windows)");
    let spread = Spread { agents, businesses: o.businesses, tenants: o.tenants, workflows: false };
    let r = redis_run(env, o, "win", &spread, n, c).await;
    let window = (o.warmup + n).div_ceil(agents);
    rate_row(
        rep,
        format!("Redis, approve, C = {c}, {agents} agents (window → {window}), n = {n}"),
        &r,
        "approved/approved",
        true,
    );
    latency_row(rep, format!("  same: p50 / p99 / p999 (C = {c})"), &r);
}

async fn deny_scenario(env: &mut Env, o: &Opts, rep: &mut Report) {
    let c = 64;
    let n = o.deny_decisions;
    eprintln!("== every intent denied at validation (unknown agent), C = {c}");
    let spread = Spread { agents: o.agents, businesses: o.businesses, tenants: o.tenants, workflows: false };
    env.reset().await;
    let authority = env.authority(o.agents).await;
    drive(&authority, Arc::new(unknown_agent("warm-deny", o.warmup, &spread)), c).await;
    let a = cpu(Some(&mut env.admin)).await;
    let r = drive(&authority, Arc::new(unknown_agent("deny", n, &spread)), c).await;
    let b = cpu(Some(&mut env.admin)).await;
    eprintln!("  deny: {n} in {:.3} s; {} (no ledger call)", r.wall.as_secs_f64(), a.share(&b));
    rate_row(rep, format!("Denied at validation (unknown_agent), C = {c}, n = {n}"), &r, "denied/unknown_agent", false);
    latency_row(rep, "  same: p50 / p99 / p999".to_string(), &r);
}

async fn memory_scenario(o: &Opts, rep: &mut Report) {
    let n = o.memory_decisions;
    eprintln!("== approving intents on the in-memory ledger");
    let spread = Spread { agents: o.agents, businesses: o.businesses, tenants: o.tenants, workflows: false };
    for c in [1, 64] {
        let authority = Authority::new(settings(o.agents), Ledger::Memory(MemoryLedger::new()), None);
        drive(&authority, Arc::new(approving("warm-mem", o.warmup, &spread)), c).await;
        let a = cpu(None).await;
        let r = drive(&authority, Arc::new(approving(&format!("mem{c}"), n, &spread)), c).await;
        let b = cpu(None).await;
        eprintln!("  memory C = {c}: {n} in {:.3} s; {}", r.wall.as_secs_f64(), a.share(&b));
        rate_row(rep, format!("In-memory ledger, approve, C = {c}, n = {n}"), &r, "approved/approved", false);
        latency_row(rep, "  same: p50 / p99 / p999".to_string(), &r);
    }
}

async fn workflow_scenario(env: &mut Env, o: &Opts, rep: &mut Report) {
    eprintln!("== approving intents that count toward a workflow's budget (one workflow per business)");
    let spread = Spread { agents: o.agents, businesses: o.businesses, tenants: o.tenants, workflows: true };
    for c in [1, 64] {
        let n = if c == 1 { o.seq_decisions } else { o.decisions };
        let r = redis_run(env, o, &format!("wf{c}"), &spread, n, c).await;
        rate_row(rep, format!("Redis, approve in a workflow, C = {c}, n = {n}"), &r, "approved/approved", c > 1);
        latency_row(rep, "  same: p50 / p99 / p999".to_string(), &r);
    }
}

async fn run(url: String, o: Opts) -> Report {
    let client = redis::Client::open(url.as_str()).expect("redis url");
    let admin = client.get_multiplexed_async_connection().await.expect("connect to the bench's redis-server");
    let mut env = Env { url, admin };
    let mut rep = Report { rows: Vec::new() };
    let t0 = Instant::now();
    if o.wants("redis") {
        redis_scenario(&mut env, &o, &mut rep).await;
    }
    if o.wants("windows") {
        windows_scenario(&mut env, &o, &mut rep).await;
    }
    if o.wants("deny") {
        deny_scenario(&mut env, &o, &mut rep).await;
    }
    if o.wants("memory") {
        memory_scenario(&o, &mut rep).await;
    }
    if o.wants("workflow") {
        workflow_scenario(&mut env, &o, &mut rep).await;
    }
    eprintln!("bench finished in {:.1?}", t0.elapsed());
    rep
}

fn main() {
    let opts = <Args as clap::Parser>::parse().opts();
    let server = common::redis();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let url = server.url();
    let report = rt.block_on(async move {
        tokio::select! {
            r = run(url, opts) => Some(r),
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    drop(rt);
    drop(server);
    match report {
        Some(r) => r.print(),
        None => eprintln!("interrupted"),
    }
}
