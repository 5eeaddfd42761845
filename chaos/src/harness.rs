//! `genesis-chaos run`: start Redis and the nodes, publish the workload, cause chaos on a seeded
//! schedule, wait for every task to be final, stop the nodes, check.

use crate::check::{self, CheckReport, Options};
use crate::cluster::{wait_for, Launcher, NodeProc, RedisProc};
use crate::config;
use crate::receiver::Receiver;
use crate::record::{ChaosEvent, Clock, EventKind, PublishedTask, RunRecord};
use crate::secs;
use crate::workload::{self, Mix, Planned};
use anyhow::{bail, Context};
use genesis_actors::bus::redis::RedisBus;
use genesis_actors::bus::Bus;
use genesis_actors::policy::backoff::Backoff;
use genesis_actors::task::TaskEnvelope;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Serialize)]
pub struct RunOptions {
    pub duration: Duration,
    pub tasks: usize,
    pub nodes: usize,
    pub seed: u64,
    /// `None`: no node kills.
    pub node_kill_every: Option<Duration>,
    /// `None`: no Redis restarts.
    pub redis_restart_every: Option<Duration>,
    pub panic_ratio: f64,
    pub fail_ratio: f64,
    pub pay_ratio: f64,
    pub genesis_bin: PathBuf,
    pub report_json: Option<PathBuf>,
    pub keep_dir: bool,
    pub settle_timeout: Duration,
    /// RUST_LOG of the nodes.
    pub node_log: String,
}

/// The outcome of a run: the checker's report plus what the run did.
#[derive(Debug, Serialize)]
pub struct RunReport {
    pub options: RunOptions,
    pub dir: PathBuf,
    pub ok: bool,
    pub published: usize,
    pub node_kills: usize,
    pub node_restarts: usize,
    pub node_unexpected_exits: usize,
    pub redis_restarts: usize,
    pub publish_s: f64,
    pub settle_s: f64,
    pub trim_wait_s: f64,
    pub total_s: f64,
    pub shutdown: Vec<String>,
    pub check: CheckReport,
    pub events: Vec<ChaosEvent>,
}

const RESULT_TTL: Duration = Duration::from_secs(7 * 86_400);

fn say(clock: &Clock, msg: &str) {
    println!("[{:>9}] {msg}", secs(clock.us()));
}

/// Owns Redis and the nodes while the run lasts; performs the chaos schedule and restarts nodes that
/// exit on their own.
struct Chaos {
    clock: Clock,
    rng: StdRng,
    launcher: Launcher,
    redis: RedisProc,
    nodes: Vec<NodeProc>,
    node_restart_at: Vec<Option<Instant>>,
    redis_restart_at: Option<Instant>,
    next_node_kill: Option<Instant>,
    next_redis_kill: Option<Instant>,
    node_every: Option<Duration>,
    redis_every: Option<Duration>,
    /// Whether the last two node restarts were delayed.
    last_restarts: [Option<bool>; 2],
    events: Vec<ChaosEvent>,
}

impl Chaos {
    fn event(&mut self, kind: EventKind, node: Option<&str>, detail: String) {
        let at_us = self.clock.us();
        println!("[{:>9}] chaos: {detail}", secs(at_us));
        self.events.push(ChaosEvent { at_us, kind, node: node.map(str::to_string), detail });
    }

    fn jittered(&mut self, every: Duration) -> Duration {
        every.mul_f64(self.rng.random_range(0.7..1.3))
    }

    /// Perform what is due now. `chaos`: whether new kills may start.
    async fn step(&mut self, chaos: bool) -> anyhow::Result<()> {
        let now = Instant::now();
        if self.redis_restart_at.is_some_and(|t| t <= now) {
            self.redis_restart_at = None;
            self.redis.restart().await.context("restart redis-server")?;
            self.event(EventKind::RedisUp, None, "redis-server is back (same port, same append-only file)".into());
        }
        for i in 0..self.nodes.len() {
            if self.node_restart_at[i].is_some_and(|t| t <= now) {
                self.node_restart_at[i] = None;
                self.nodes[i].start(&self.launcher)?;
                let id = self.nodes[i].id.clone();
                self.event(EventKind::NodeRestart, Some(&id), format!("restarted {id} with the same node id"));
            }
        }
        // Nodes that ended on their own: record, then restart at once (what systemd would do).
        for i in 0..self.nodes.len() {
            if let Some(status) = self.nodes[i].exited() {
                let id = self.nodes[i].id.clone();
                let log = self.nodes[i].logs.last().cloned().unwrap_or_default();
                let last = std::fs::read_to_string(&log).unwrap_or_default();
                let last: String =
                    last.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").chars().take(300).collect();
                let detail = format!("{id} EXITED ON ITS OWN ({status}); log {}; last line: {last}", log.display());
                self.event(EventKind::NodeExited, Some(&id), detail);
                self.nodes[i].start(&self.launcher)?;
                self.event(EventKind::NodeRestart, Some(&id), format!("restarted {id} with the same node id"));
            }
        }
        if !chaos {
            return Ok(());
        }
        if let (Some(t), Some(every)) = (self.next_node_kill, self.node_every) {
            if t <= now {
                let next = self.jittered(every);
                self.next_node_kill = Some(t + next);
                let up: Vec<usize> = (0..self.nodes.len()).filter(|i| self.nodes[*i].is_running()).collect();
                if !up.is_empty() {
                    let i = up[self.rng.random_range(0..up.len())];
                    let id = self.nodes[i].id.clone();
                    // Half the restarts are delayed past the heartbeat TTL (never three alike in a row).
                    let delayed = match self.last_restarts {
                        [Some(a), Some(b)] if a == b => !a,
                        _ => self.rng.random_bool(0.5),
                    };
                    self.last_restarts = [self.last_restarts[1], Some(delayed)];
                    let delay = Duration::from_millis(self.rng.random_range(1500..3000));
                    self.event(EventKind::NodeKill, Some(&id), format!("SIGKILL node {id}"));
                    self.nodes[i].kill();
                    if delayed {
                        say(
                            &self.clock,
                            &format!("chaos: {id} stays down for {delay:?} (its heartbeat expires; others take over)"),
                        );
                        self.node_restart_at[i] = Some(Instant::now() + delay);
                    } else {
                        self.nodes[i].start(&self.launcher)?;
                        self.event(EventKind::NodeRestart, Some(&id), format!("restarted {id} at once"));
                    }
                }
            }
        }
        if let (Some(t), Some(every)) = (self.next_redis_kill, self.redis_every) {
            if t <= now {
                let next = self.jittered(every);
                self.next_redis_kill = Some(t + next);
                if self.redis_restart_at.is_none() {
                    let down = Duration::from_millis(self.rng.random_range(300..1500));
                    self.event(EventKind::RedisKill, None, format!("SIGKILL redis-server (down for {down:?})"));
                    self.redis.kill();
                    self.redis_restart_at = Some(Instant::now() + down);
                }
            }
        }
        Ok(())
    }

    /// When the next thing is due (at most 100 ms away, to watch the nodes).
    fn next_due(&self, chaos: bool) -> Instant {
        let mut t = Instant::now() + Duration::from_millis(100);
        let mut due: Vec<Option<Instant>> = vec![self.redis_restart_at];
        due.extend(self.node_restart_at.iter().copied());
        if chaos {
            due.push(self.next_node_kill);
            due.push(self.next_redis_kill);
        }
        for d in due.into_iter().flatten() {
            t = t.min(d);
        }
        t
    }

    /// Bring everything back up now (end of the chaos phase).
    async fn heal(&mut self) -> anyhow::Result<()> {
        if self.redis_restart_at.is_some() {
            self.redis_restart_at = Some(Instant::now());
        }
        for t in self.node_restart_at.iter_mut().flatten() {
            *t = Instant::now();
        }
        self.step(false).await
    }
}

async fn heartbeat_exists(url: &str, id: &str) -> bool {
    let Ok(client) = redis::Client::open(url) else { return false };
    let Ok(mut c) = client.get_multiplexed_async_connection().await else { return false };
    redis::cmd("EXISTS").arg(format!("genesis:node:{id}")).query_async::<bool>(&mut c).await.unwrap_or(false)
}

async fn publish_all(
    bus: Bus,
    clock: Clock,
    plan: Vec<Planned>,
    report_to: String,
    out: Arc<Mutex<Vec<PublishedTask>>>,
) -> anyhow::Result<()> {
    let start = tokio::time::Instant::now();
    let mut last_error_print = Instant::now() - Duration::from_secs(10);
    for p in plan {
        tokio::time::sleep_until(start + p.at).await;
        let topic = p.topic.parse().map_err(|e: String| anyhow::anyhow!(e))?;
        let tenant = genesis_actors::tenant::TenantId::parse(&p.tenant)?;
        let env = TaskEnvelope::new(topic, tenant, workload::with_report_to(&p, &report_to));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match bus.publish(&env, RESULT_TTL).await {
                Ok(_) => break,
                Err(e) if Instant::now() < deadline => {
                    if last_error_print.elapsed() > Duration::from_secs(1) {
                        say(&clock, &format!("publisher: {e}; retrying"));
                        last_error_print = Instant::now();
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => bail!("could not publish task {} for 60 s: {e}", env.task_id),
            }
        }
        let t = PublishedTask {
            task_id: env.task_id.to_string(),
            topic: p.topic,
            kind: p.kind.to_string(),
            panic_deliveries: p.panic_deliveries,
            max_retries: p.max_retries,
            expect: p.expect,
            published_at_us: clock.us(),
        };
        if let Ok(mut v) = out.lock() {
            v.push(t);
        }
    }
    Ok(())
}

/// Run the whole scenario. `Err` is a harness error (exit 2); violations are in the report (exit 1).
pub async fn run(o: RunOptions) -> anyhow::Result<RunReport> {
    let clock = Clock::start();
    if !o.genesis_bin.is_file() {
        bail!(
            "genesis binary not found at {} (build it: cargo build --bin genesis; or pass --genesis-bin)",
            o.genesis_bin.display()
        );
    }
    let tmp = tempfile::Builder::new().prefix("genesis-chaos-").tempdir().context("temp dir")?;
    let dir = tmp.path().to_path_buf();
    let log_dir = dir.join("logs");
    std::fs::create_dir_all(&log_dir)?;
    say(&clock, &format!("run dir {} (seed {})", dir.display(), o.seed));

    let redis = RedisProc::start().await?;
    let url = redis.url();
    say(&clock, &format!("redis-server on {url} (appendonly yes, appendfsync always)"));
    let agents = config::agents();
    let config_path = config::write(&dir, &agents)?;
    let receiver = Receiver::start(clock).await?;
    let launcher = Launcher {
        genesis_bin: o.genesis_bin.clone(),
        config: config_path,
        redis_url: url.clone(),
        log_dir: log_dir.clone(),
        rust_log: o.node_log.clone(),
    };
    let mut nodes: Vec<NodeProc> = (1..=o.nodes).map(|i| NodeProc::new(&format!("chaos-{i}"))).collect();
    for n in &mut nodes {
        n.start(&launcher)?;
    }
    for n in &nodes {
        let (url, id) = (url.clone(), n.id.clone());
        wait_for(Duration::from_secs(30), &format!("node {id} to write its heartbeat"), || {
            let (url, id) = (url.clone(), id.clone());
            async move { heartbeat_exists(&url, &id).await.then_some(()) }
        })
        .await
        .with_context(|| format!("node {} did not start; see {}", n.id, log_dir.display()))?;
    }
    say(&clock, &format!("{} nodes up; reports to {}", o.nodes, receiver.url));

    let mix = Mix { panic_ratio: o.panic_ratio, fail_ratio: o.fail_ratio, pay_ratio: o.pay_ratio };
    let plan = workload::plan(o.seed, o.tasks, o.duration, mix, &agents);
    let bus = Bus::Redis(
        RedisBus::connect(&url, Backoff::new(Duration::from_millis(20), Duration::from_millis(500), 2.0))
            .await
            .context("connect the publisher")?,
    );
    let published = Arc::new(Mutex::new(Vec::new()));
    let publisher = tokio::spawn(publish_all(bus, clock, plan, receiver.url.clone(), published.clone()));

    let start = Instant::now();
    let until = start + o.duration;
    let mut chaos = Chaos {
        clock,
        rng: StdRng::seed_from_u64(o.seed ^ 0x9e37_79b9_7f4a_7c15),
        launcher,
        redis,
        node_restart_at: vec![None; nodes.len()],
        nodes,
        redis_restart_at: None,
        next_node_kill: o.node_kill_every.map(|d| start + d),
        next_redis_kill: o.redis_restart_every.map(|d| start + d),
        node_every: o.node_kill_every,
        redis_every: o.redis_restart_every,
        last_restarts: [None, None],
        events: Vec::new(),
    };
    while Instant::now() < until {
        chaos.step(true).await?;
        tokio::time::sleep_until(chaos.next_due(true).min(until).into()).await;
    }
    chaos.heal().await?;
    say(&clock, "chaos stopped; Redis and every node are up");
    let mut publisher = publisher;
    loop {
        tokio::select! {
            r = &mut publisher => { r.context("publisher task")??; break; }
            _ = tokio::time::sleep(Duration::from_millis(100)) => chaos.step(false).await?,
        }
    }
    let publish_s = start.elapsed().as_secs_f64();
    let tasks: Vec<PublishedTask> = published.lock().map(|v| v.clone()).unwrap_or_default();
    say(&clock, &format!("published {} tasks; waiting for every one to be final", tasks.len()));

    // Settle: every task final, within the deadline; keep restarting nodes that exit meanwhile.
    let settle_start = Instant::now();
    let mut last_print = Instant::now();
    loop {
        chaos.step(false).await?;
        let st = check::statuses(&url, &tasks).await?;
        let open = st.iter().filter(|s| !matches!(s.as_deref(), Some("succeeded") | Some("dead"))).count();
        if open == 0 {
            break;
        }
        if settle_start.elapsed() > o.settle_timeout {
            say(&clock, &format!("{open} tasks still not final after {:?}; checking anyway", o.settle_timeout));
            break;
        }
        if last_print.elapsed() > Duration::from_secs(5) {
            say(&clock, &format!("{open} of {} tasks not final yet", tasks.len()));
            last_print = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let settle_s = settle_start.elapsed().as_secs_f64();
    say(&clock, &format!("settled in {settle_s:.1} s; waiting for the trimmer"));

    // Streams trimmed: let one full trim interval pass after the last outcome, then give the trimmer
    // a few more intervals to get within the slack.
    let topics: Vec<String> = agents.iter().map(|a| a.name.clone()).collect();
    let opts = Options::default();
    let trim_start = Instant::now();
    let interval = Duration::from_millis(config::TRIM_INTERVAL_MS);
    while trim_start.elapsed() < interval + Duration::from_millis(200) {
        chaos.step(false).await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let trim_deadline = interval * 5 + Duration::from_secs(5);
    while trim_start.elapsed() < trim_deadline {
        let s = check::stream_state(&url, &topics).await?;
        if s.values().all(|(len, pending)| *len <= pending + opts.trim_slack) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let trim_wait_s = trim_start.elapsed().as_secs_f64();

    // Stop the nodes (SIGTERM: exit 0 expected).
    let mut shutdown = Vec::new();
    let mut shutdown_violations = Vec::new();
    for n in &mut chaos.nodes {
        let status = n.terminate(Duration::from_secs(30)).await;
        let line = match status {
            Some(s) if s.success() => format!("{}: exit 0", n.id),
            Some(s) => {
                shutdown_violations.push(format!("{} exited with {s} after SIGTERM", n.id));
                format!("{}: {s}", n.id)
            }
            None => {
                shutdown_violations.push(format!("{} did not exit within 30 s of SIGTERM (killed)", n.id));
                format!("{}: no exit within 30 s", n.id)
            }
        };
        shutdown.push(line);
    }
    say(&clock, &format!("nodes stopped: {}", shutdown.join(", ")));

    let reports = receiver.snapshot();
    let record = RunRecord {
        seed: o.seed,
        agents: agents.clone(),
        limits: Some(config::LIMITS),
        tasks,
        reports,
        events: chaos.events.clone(),
    };
    std::fs::write(dir.join("run.json"), serde_json::to_vec(&record)?).context("write run.json")?;
    let mut report = check::check(&url, &record, opts).await?;
    // A node must ride out every outage (docs/semantics.md, "Redis outages"); one that exits on its own
    // was restarted by the harness (as systemd would), but it is a defect.
    for e in record.events.iter().filter(|e| e.kind == EventKind::NodeExited) {
        report.violations.push(check::Violation {
            check: "8 node lifecycle".into(),
            detail: format!("at {}: {}", secs(e.at_us), e.detail),
        });
    }
    for v in shutdown_violations {
        report.violations.push(check::Violation { check: "8 node lifecycle".into(), detail: v });
    }
    let count = |k: EventKind| record.events.iter().filter(|e| e.kind == k).count();
    let out = RunReport {
        dir: dir.clone(),
        ok: report.ok(),
        published: record.tasks.len(),
        node_kills: count(EventKind::NodeKill),
        node_restarts: count(EventKind::NodeRestart),
        node_unexpected_exits: count(EventKind::NodeExited),
        redis_restarts: count(EventKind::RedisUp),
        publish_s,
        settle_s,
        trim_wait_s,
        total_s: start.elapsed().as_secs_f64(),
        shutdown,
        check: report,
        events: record.events,
        options: o,
    };
    drop(chaos);
    if out.options.keep_dir {
        let kept = tmp.keep();
        println!("kept {} (run.json, logs/, redis/)", kept.display());
    }
    Ok(out)
}

impl RunReport {
    pub fn print(&self) {
        println!("== genesis-chaos run (seed {})", self.options.seed);
        println!(
            "duration {:?}, {} tasks published over {:.1} s, {} nodes; settled in {:.1} s; trimmer waited {:.1} s; total {:.1} s",
            self.options.duration,
            self.published,
            self.publish_s,
            self.options.nodes,
            self.settle_s,
            self.trim_wait_s,
            self.total_s
        );
        println!(
            "chaos: {} node kills, {} node restarts, {} unexpected node exits, {} Redis kill/restarts",
            self.node_kills, self.node_restarts, self.node_unexpected_exits, self.redis_restarts
        );
        self.check.print_checks();
        let lifecycle = self.check.of("8").len();
        println!(
            "8. node lifecycle ....... {}: {} unexpected exits; SIGTERM at the end: {}",
            if lifecycle == 0 { "ok".to_string() } else { format!("VIOLATED ({lifecycle})") },
            self.node_unexpected_exits,
            self.shutdown.join(", ")
        );
        self.check.print_violations();
        println!("== {}", if self.ok { "PASS: every invariant holds" } else { "FAIL: invariants violated" });
    }
}
