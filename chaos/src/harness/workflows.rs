//! The workflow half of a run: starts each planned workflow when it is due — through the engine
//! (`Workflows::start`, as the API does) or with `genesis workflow start --plan @FILE` — then cancels
//! it or retries it after its failure as its shape says. Every call is tried again through node kills
//! and Redis outages (a start names its workflow id, so a start that got through before an error
//! returns the same workflow), and what the engine finally answered is recorded for the checks.

use super::schedule::say;
use crate::record::{AgentConf, Clock};
use crate::workload::workflows::{Control, PlannedWorkflow, Via, WorkflowRecord};
use genesis_actors::bus::Bus;
use genesis_actors::roster::{AgentSpec, ExecutorSpec, Roster};
use genesis_actors::settings::RuntimeSettings;
use genesis_actors::task::TenantId;
use genesis_actors::workflow::plan::Plan;
use genesis_actors::workflow::state::WorkflowStatus;
use genesis_actors::workflow::{StartRequest, WorkflowError, Workflows};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long one start, cancel or retry is tried through outages before the run gives up on it.
const CONTROL_DEADLINE: Duration = Duration::from_secs(60);
/// How long a workflow to be retried is waited for to fail.
const FAIL_WAIT: Duration = Duration::from_secs(120);
/// Longest one `genesis workflow start` may take (it is killed after, and tried again).
const CLI_TIMEOUT: Duration = Duration::from_secs(20);
const PAUSE: Duration = Duration::from_millis(100);

/// What starts and steers the run's workflows.
pub(super) struct Driver {
    pub engine: Workflows,
    pub genesis_bin: PathBuf,
    pub config: PathBuf,
    pub redis_url: String,
    /// Where the plans started with `--plan @FILE` are written.
    pub plans_dir: PathBuf,
    pub report_to: String,
    pub clock: Clock,
}

/// The engine's view of the generated roster (it only needs each agent's topic).
pub(super) fn roster(agents: &[AgentConf]) -> anyhow::Result<Roster> {
    let agents = agents
        .iter()
        .map(|a| {
            Ok(AgentSpec {
                name: a.name.clone(),
                topic: a.name.parse().map_err(|e: String| anyhow::anyhow!(e))?,
                concurrency: a.concurrency as usize,
                max_retries: a.max_retries,
                retry_delay: Duration::from_millis(50),
                timeout: Duration::from_millis(a.timeout_ms),
                executor: ExecutorSpec::Named("simulated".into()),
                rate: None,
                breaker: Default::default(),
                dlq: Default::default(),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Roster { agents })
}

/// The engine on `bus`, for `agents`.
pub(super) fn engine(bus: Bus, agents: &[AgentConf]) -> anyhow::Result<Workflows> {
    Ok(Workflows::new(bus, &roster(agents)?, &RuntimeSettings::defaults("genesis-chaos")))
}

/// Whether trying the same call again may succeed (the store or the bus was unreachable, or other
/// writers kept the workflow busy).
fn transient(e: &WorkflowError) -> bool {
    matches!(e, WorkflowError::Contended { .. } | WorkflowError::Store(_) | WorkflowError::Bus(_))
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Cancel,
    Retry,
}

/// Start every planned workflow at its time and steer it; returns once each is started and its
/// cancel or retry is done. Records go to `out` as each workflow is done with.
pub(super) async fn drive_all(
    d: Arc<Driver>,
    planned: Vec<PlannedWorkflow>,
    out: Arc<Mutex<Vec<WorkflowRecord>>>,
) -> anyhow::Result<()> {
    let start = tokio::time::Instant::now();
    let mut handles = Vec::new();
    for p in planned {
        tokio::time::sleep_until(start + p.at).await;
        let (d, out) = (d.clone(), out.clone());
        handles.push(tokio::spawn(async move {
            let rec = drive_one(&d, p).await;
            if let Ok(mut v) = out.lock() {
                v.push(rec);
            }
        }));
    }
    for h in handles {
        h.await?;
    }
    Ok(())
}

async fn drive_one(d: &Driver, p: PlannedWorkflow) -> WorkflowRecord {
    let mut rec = WorkflowRecord::new(&p);
    let started = match p.via {
        Via::Engine => d.start_engine(&p).await,
        Via::Cli => d.start_cli(&p).await,
    };
    if let Err(e) = started {
        say(&d.clock, &format!("workflow {}: could not be started: {e}", p.id));
        rec.start_error = Some(e);
        return rec;
    }
    rec.started_at_us = d.clock.us();
    if let Some(after) = p.cancel_after {
        tokio::time::sleep(after).await;
        rec.cancel = Some(d.control(&p.id, Op::Cancel, 0).await);
    }
    if p.retry {
        let c = match d.wait_failed(&p.id).await {
            Ok(run) => d.control(&p.id, Op::Retry, run).await,
            Err(detail) => Control { at_us: d.clock.us(), accepted: false, detail },
        };
        rec.retries.push(c);
    }
    rec
}

impl Driver {
    async fn start_engine(&self, p: &PlannedWorkflow) -> Result<(), String> {
        let plan = Plan::from_json(&p.plan(&self.report_to)).map_err(|e| e.to_string())?;
        let tenant = TenantId::parse(&p.tenant).map_err(|e| e.to_string())?;
        let req = StartRequest {
            tenant,
            business: Some(p.business.clone()),
            workflow_id: Some(p.id.clone()),
            ..Default::default()
        };
        let deadline = Instant::now() + CONTROL_DEADLINE;
        loop {
            match self.engine.start(plan.clone(), req.clone()).await {
                Ok(_) => return Ok(()),
                Err(e) if transient(&e) && Instant::now() < deadline => tokio::time::sleep(PAUSE).await,
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// `genesis --config … workflow start --plan @FILE --tenant T --business B`: prints the id.
    async fn start_cli(&self, p: &PlannedWorkflow) -> Result<(), String> {
        let file = self.plans_dir.join(format!("{}.json", p.id));
        let text = serde_json::to_vec_pretty(&p.plan(&self.report_to)).map_err(|e| e.to_string())?;
        std::fs::write(&file, text).map_err(|e| format!("write {}: {e}", file.display()))?;
        let deadline = Instant::now() + CONTROL_DEADLINE;
        loop {
            let mut cmd = tokio::process::Command::new(&self.genesis_bin);
            cmd.arg("--config")
                .arg(&self.config)
                .args(["workflow", "start", "--redis-url", &self.redis_url, "--tenant", &p.tenant])
                .args(["--business", &p.business, "--plan"])
                .arg(format!("@{}", file.display()))
                .env("RUST_LOG", "warn")
                .env_remove("GENESIS_REDIS_URL")
                .env_remove("GENESIS_CONFIG")
                .kill_on_drop(true);
            let why = match tokio::time::timeout(CLI_TIMEOUT, cmd.output()).await {
                Ok(Ok(out)) if out.status.success() => {
                    let printed = String::from_utf8_lossy(&out.stdout).trim().to_string();
                    return if printed == p.id {
                        Ok(())
                    } else {
                        Err(format!("genesis workflow start printed `{printed}`, not the plan's id"))
                    };
                }
                Ok(Ok(out)) => {
                    let err = String::from_utf8_lossy(&out.stderr);
                    format!("{}: {}", out.status, err.lines().last().unwrap_or(""))
                }
                Ok(Err(e)) => return Err(format!("run {}: {e}", self.genesis_bin.display())),
                Err(_) => format!("no answer within {CLI_TIMEOUT:?}"),
            };
            if Instant::now() >= deadline {
                return Err(format!("genesis workflow start failed for {CONTROL_DEADLINE:?}: {why}"));
            }
            tokio::time::sleep(PAUSE).await;
        }
    }

    /// Cancel, or retry (`run_before`: the run that failed), tried again through outages. A try that
    /// failed on its way back may have been applied: a refusal after an error is checked against the
    /// stored workflow.
    async fn control(&self, id: &str, op: Op, run_before: u32) -> Control {
        let deadline = Instant::now() + CONTROL_DEADLINE;
        let mut errored = None;
        loop {
            let at_us = self.clock.us();
            let r = match op {
                Op::Cancel => self.engine.cancel(id).await,
                Op::Retry => self.engine.retry(id).await,
            };
            let e = match r {
                Ok(wf) => {
                    return Control { at_us, accepted: true, detail: format!("{op:?}: now {}", wf.status.as_str()) }
                }
                Err(e) => e,
            };
            if transient(&e) && Instant::now() < deadline {
                errored = Some(at_us);
                tokio::time::sleep(PAUSE).await;
                continue;
            }
            if let Some(first) = errored {
                if self.applied(id, op, run_before).await {
                    let detail = format!("{op:?}: applied by a try that failed on its way back ({e})");
                    return Control { at_us: first, accepted: true, detail };
                }
            }
            return Control { at_us, accepted: false, detail: format!("{op:?}: {e}") };
        }
    }

    async fn applied(&self, id: &str, op: Op, run_before: u32) -> bool {
        let deadline = Instant::now() + CONTROL_DEADLINE;
        loop {
            match self.engine.get(id).await {
                Ok(Some(wf)) => {
                    return match op {
                        Op::Cancel => wf.reason.as_deref() == Some("cancelled"),
                        Op::Retry => wf.run > run_before,
                    }
                }
                Ok(None) => return false,
                Err(_) if Instant::now() < deadline => tokio::time::sleep(PAUSE).await,
                Err(_) => return false,
            }
        }
    }

    /// Wait until the workflow has failed; its run. An error when it ended otherwise or did not fail
    /// in time.
    async fn wait_failed(&self, id: &str) -> Result<u32, String> {
        let deadline = Instant::now() + FAIL_WAIT;
        let mut last = String::from("unknown");
        while Instant::now() < deadline {
            if let Ok(Some(wf)) = self.engine.get(id).await {
                match wf.status {
                    WorkflowStatus::Failed => return Ok(wf.run),
                    WorkflowStatus::Succeeded | WorkflowStatus::Cancelled => {
                        return Err(format!("not retried: it ended {} without failing", wf.status.as_str()))
                    }
                    s => last = s.as_str().to_string(),
                }
            }
            tokio::time::sleep(PAUSE).await;
        }
        Err(format!("not retried: still {last} after {FAIL_WAIT:?}"))
    }
}
