//! `genesis-chaos run`: start Redis, the outside agents (with `--agents outside`) and the nodes,
//! publish the workload, cause chaos on a seeded schedule (`schedule`), wait for every task to be
//! final, stop the nodes, check.

mod schedule;
mod workflows;

use self::schedule::{say, Chaos};
use crate::agents::{self, AgentServer};
use crate::check::{self, CheckReport, Options};
use crate::cluster::{wait_for, Launcher, NodeProc, RedisProc};
use crate::config;
use crate::metrics::Scraper;
use crate::receiver::Receiver;
use crate::record::{AgentsMode, ChaosEvent, Clock, EventKind, ExecutorConf, PublishedTask, RunRecord, Workload};
use crate::secs;
use crate::workload::{self, Mix, Planned};
use anyhow::{bail, Context};
use genesis_actors::bus::redis::RedisBus;
use genesis_actors::bus::Bus;
use genesis_actors::policy::backoff::Backoff;
use genesis_actors::task::TaskEnvelope;
use rand::rngs::StdRng;
use rand::SeedableRng;
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
    /// Outside agents only: tasks that run long (half of them past the agent's timeout).
    pub slow_ratio: f64,
    /// Which agents the roster has.
    pub agents: AgentsMode,
    /// Plain tasks, workflows, or both.
    pub workload: Workload,
    /// Workflows to start over the duration (workflow and mixed workloads).
    pub workflows: usize,
    /// Outside agents only: mean interval between SIGKILLs of an A2A agent's server; `None`: none.
    pub agent_kill_every: Option<Duration>,
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
    /// Workflows started (workflow and mixed workloads).
    pub workflows: usize,
    pub node_kills: usize,
    pub node_restarts: usize,
    pub node_unexpected_exits: usize,
    pub redis_restarts: usize,
    pub agent_kills: usize,
    pub agent_restarts: usize,
    pub publish_s: f64,
    pub settle_s: f64,
    pub trim_wait_s: f64,
    pub total_s: f64,
    pub shutdown: Vec<String>,
    pub check: CheckReport,
    pub events: Vec<ChaosEvent>,
}

const RESULT_TTL: Duration = Duration::from_secs(7 * 86_400);

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

/// The outside roster and its A2A servers, up: ports picked here, servers started in parallel.
async fn start_outside(
    clock: &Clock,
    log_dir: &std::path::Path,
) -> anyhow::Result<(Vec<crate::record::AgentConf>, Vec<AgentServer>)> {
    let python = agents::venv_python().await?;
    let agents = config::outside_agents([genesis_testkit::free_port(), genesis_testkit::free_port()]);
    let mut servers: Vec<AgentServer> = agents
        .iter()
        .filter_map(|a| match a.executor {
            ExecutorConf::A2a { port } => Some(AgentServer::new(&a.name, port, log_dir)),
            _ => None,
        })
        .collect();
    servers.iter_mut().for_each(AgentServer::begin_start);
    for s in &mut servers {
        s.finish_start().await?;
    }
    let names: Vec<String> = servers.iter().map(|s| format!("{} on :{}", s.name, s.port)).collect();
    say(
        clock,
        &format!(
            "A2A agents up ({}; {}); process agents: python3 tests/agents/process_agent.py",
            names.join(", "),
            python.display()
        ),
    );
    Ok((agents, servers))
}

/// Wait for a job of the run (the publisher, the workflow driver) while the chaos schedule goes on
/// restarting what is due.
async fn finish<T>(
    chaos: &mut Chaos,
    mut job: tokio::task::JoinHandle<anyhow::Result<T>>,
    what: &str,
) -> anyhow::Result<T> {
    loop {
        tokio::select! {
            r = &mut job => return r.context(what.to_string())?,
            _ = tokio::time::sleep(Duration::from_millis(100)) => chaos.step(false).await?,
        }
    }
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
    let (agents, servers) = match o.agents {
        AgentsMode::Simulated => (config::agents(), Vec::new()),
        AgentsMode::Outside => start_outside(&clock, &log_dir).await?,
    };
    let config_path = config::write(&dir, &agents)?;
    let config_file = config_path.clone();
    let receiver = Receiver::start(clock).await?;
    let launcher = Launcher {
        genesis_bin: o.genesis_bin.clone(),
        config: config_path,
        redis_url: url.clone(),
        log_dir: log_dir.clone(),
        rust_log: o.node_log.clone(),
    };
    // Outside runs scrape the nodes' /metrics for check 9: each node serves HTTP on a port of its own.
    let mut nodes: Vec<NodeProc> = (1..=o.nodes)
        .map(|i| {
            let id = format!("chaos-{i}");
            match o.agents {
                AgentsMode::Simulated => NodeProc::new(&id),
                AgentsMode::Outside => NodeProc::with_http(&id, genesis_testkit::free_port()),
            }
        })
        .collect();
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

    let mix =
        Mix { panic_ratio: o.panic_ratio, fail_ratio: o.fail_ratio, pay_ratio: o.pay_ratio, slow_ratio: o.slow_ratio };
    let markers = dir.join("markers");
    std::fs::create_dir_all(&markers)?;
    let tasks = if o.workload.tasks() { o.tasks } else { 0 };
    let plan = workload::plan(o.seed, tasks, o.duration, mix, &agents, &markers);
    let bus = Bus::Redis(
        RedisBus::connect(&url, Backoff::new(Duration::from_millis(20), Duration::from_millis(500), 2.0))
            .await
            .context("connect the publisher")?,
    );
    let published = Arc::new(Mutex::new(Vec::new()));
    let publisher = tokio::spawn(publish_all(bus, clock, plan, receiver.url.clone(), published.clone()));
    let started_workflows = Arc::new(Mutex::new(Vec::new()));
    let driver = match o.workload.workflows() {
        false => None,
        true => {
            let plans_dir = dir.join("plans");
            std::fs::create_dir_all(&plans_dir)?;
            let bus = Bus::Redis(
                RedisBus::connect(&url, Backoff::new(Duration::from_millis(20), Duration::from_millis(500), 2.0))
                    .await
                    .context("connect the workflow engine")?,
            );
            let d = workflows::Driver {
                engine: workflows::engine(bus, &agents)?,
                genesis_bin: o.genesis_bin.clone(),
                config: config_file,
                redis_url: url.clone(),
                plans_dir,
                report_to: receiver.url.clone(),
                clock,
            };
            let planned = workload::workflows::plan(o.seed, o.workflows, o.duration, &agents);
            Some(tokio::spawn(workflows::drive_all(Arc::new(d), planned, started_workflows.clone())))
        }
    };

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
        next_agent_kill: o.agent_kill_every.filter(|_| !servers.is_empty()).map(|d| start + d),
        agent_every: o.agent_kill_every,
        agents: servers,
        scraper: match o.agents {
            AgentsMode::Simulated => None,
            AgentsMode::Outside => Some(Scraper::new()?),
        },
        next_scrape: start,
        events: Vec::new(),
    };
    while Instant::now() < until {
        chaos.step(true).await?;
        tokio::time::sleep_until(chaos.next_due(true).min(until).into()).await;
    }
    chaos.heal().await?;
    say(&clock, "chaos stopped; Redis, every node and every agent are up");
    finish(&mut chaos, publisher, "publisher task").await?;
    if let Some(d) = driver {
        finish(&mut chaos, d, "workflow driver").await?;
    }
    let publish_s = start.elapsed().as_secs_f64();
    let tasks: Vec<PublishedTask> = published.lock().map(|v| v.clone()).unwrap_or_default();
    let mut started: Vec<crate::workload::workflows::WorkflowRecord> =
        started_workflows.lock().map(|v| v.clone()).unwrap_or_default();
    started.sort_by(|a, b| a.id.cmp(&b.id));
    let wf_ids: Vec<String> = started.iter().map(|w| w.id.clone()).collect();
    say(
        &clock,
        &format!("published {} tasks, started {} workflows; waiting for every one to end", tasks.len(), started.len()),
    );

    // Settle: every task final, within the deadline; keep restarting nodes that exit meanwhile.
    let settle_start = Instant::now();
    let workflows_deadline_us = clock.us() + o.settle_timeout.as_micros() as u64;
    let mut last_print = Instant::now();
    loop {
        chaos.step(false).await?;
        let st = check::statuses(&url, &tasks).await?;
        let open = st.iter().filter(|s| !matches!(s.as_deref(), Some("succeeded") | Some("dead"))).count();
        let open_wf = check::workflow::not_ended(&url, &wf_ids).await?;
        if open == 0 && open_wf == 0 {
            break;
        }
        if settle_start.elapsed() > o.settle_timeout {
            say(
                &clock,
                &format!(
                    "{open} tasks not final and {open_wf} workflows not ended after {:?}; checking anyway",
                    o.settle_timeout
                ),
            );
            break;
        }
        if last_print.elapsed() > Duration::from_secs(5) {
            say(
                &clock,
                &format!(
                    "{open} of {} tasks not final, {open_wf} of {} workflows not ended yet",
                    tasks.len(),
                    wf_ids.len()
                ),
            );
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

    // The nodes' last counters, then stop them (SIGTERM: exit 0 expected).
    chaos.scrape(true).await;
    let ids: Vec<String> = chaos.nodes.iter().map(|n| n.id.clone()).collect();
    let node_metrics = match chaos.scraper.as_mut() {
        Some(s) => {
            ids.iter().for_each(|id| s.end_lifetime(id));
            s.totals.clone()
        }
        None => Default::default(),
    };
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
        mode: o.agents,
        clock_unix_ms: clock.unix_ms(),
        agents: agents.clone(),
        limits: Some(config::LIMITS),
        tasks,
        reports,
        events: chaos.events.clone(),
        node_metrics,
        workload: o.workload,
        workflows: started,
        workflows_deadline_us,
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
        workflows: record.workflows.len(),
        node_kills: count(EventKind::NodeKill),
        node_restarts: count(EventKind::NodeRestart),
        node_unexpected_exits: count(EventKind::NodeExited),
        redis_restarts: count(EventKind::RedisUp),
        agent_kills: count(EventKind::AgentKill),
        agent_restarts: count(EventKind::AgentUp),
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
            "duration {:?}, {} tasks published and {} workflows started over {:.1} s, {} nodes; settled in {:.1} s; trimmer waited {:.1} s; total {:.1} s",
            self.options.duration,
            self.published,
            self.workflows,
            self.publish_s,
            self.options.nodes,
            self.settle_s,
            self.trim_wait_s,
            self.total_s
        );
        println!(
            "chaos: {} node kills, {} node restarts, {} unexpected node exits, {} Redis kill/restarts, {} A2A agent kills ({} back up)",
            self.node_kills,
            self.node_restarts,
            self.node_unexpected_exits,
            self.redis_restarts,
            self.agent_kills,
            self.agent_restarts
        );
        self.check.print_checks_to_7();
        println!(
            "8. node lifecycle ....... {}: {} unexpected exits; SIGTERM at the end: {}",
            self.check.verdict("8"),
            self.node_unexpected_exits,
            self.shutdown.join(", ")
        );
        self.check.print_checks_from_9();
        self.check.print_violations();
        println!("== {}", if self.ok { "PASS: every invariant holds" } else { "FAIL: invariants violated" });
    }
}
