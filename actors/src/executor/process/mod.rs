//! The `process` executor: a pool of long-lived child processes per agent, one per concurrency slot
//! (`TaskContext::worker`), each started on its slot's first task and speaking newline-delimited JSON
//! on stdin/stdout (the protocol: `protocol.rs` and docs/agents.md, "process").
//!
//! How each ending maps to the runtime's rules (docs/semantics.md):
//! - `{"result": …}` → success; `{"error": …, "retryable": b}` → a retryable or fatal failure. The
//!   child stays for the slot's next task.
//! - the child exits, writes a line that is not protocol, or a line over 4 MiB → [`ExecError::Crashed`]:
//!   its worker fails like a panic, the supervisor replays the entry (a delivery, so
//!   `bus.max_deliveries` bounds a task that breaks its agent every time). The broken child is
//!   stopped; the slot starts a new one on its next task.
//! - the command cannot be started → [`ExecError::Unavailable`] (no attempt spent; the circuit counts it).
//! - `ctx.cancel` (timeout, explicit cancel) → the child's process group gets SIGTERM, then SIGKILL
//!   after [`TERM_GRACE`], well within the worker's `CANCEL_GRACE`.
//! - [`Executor::shutdown`] (the node stops) stops every child of the pool.

mod child;
pub mod protocol;

use super::{ExecError, Executor, TaskContext};
use crate::roster::{AgentSpec, ProcessSpec};
use child::{AgentChild, Idle, Read};
use futures::future::BoxFuture;
use protocol::AgentLine;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

pub use child::{INHERITED_ENV, MAX_STDERR_LINE};
pub use protocol::MAX_LINE_BYTES;

pub const NAME: &str = "process";

/// How long a child's process group gets between SIGTERM and SIGKILL.
pub const TERM_GRACE: Duration = Duration::from_secs(2);

/// Build the pool of `spec`'s agent: `concurrency` slots, no child started yet.
pub fn build(spec: &AgentSpec, config: &ProcessSpec) -> Result<Arc<dyn Executor>, String> {
    Ok(Arc::new(ProcessPool::new(&spec.name, spec.concurrency, config.clone())?))
}

/// The children of one agent, one per worker slot.
pub struct ProcessPool {
    agent: String,
    spec: ProcessSpec,
    /// A slot's child is taken out while a task runs and put back only after a clean answer, so a
    /// child whose conversation did not end cleanly (dropped future, cancel) is never reused.
    slots: Vec<Mutex<Option<AgentChild>>>,
    stopping: CancellationToken,
    grace: Duration,
}

impl ProcessPool {
    pub fn new(agent: &str, concurrency: usize, spec: ProcessSpec) -> Result<ProcessPool, String> {
        if spec.command.first().is_none_or(|c| c.trim().is_empty()) {
            return Err("`command` is empty: give the agent's argv, e.g. [\"python3\", \"agent.py\"]".into());
        }
        Ok(ProcessPool {
            agent: agent.to_string(),
            spec,
            slots: (0..concurrency.max(1)).map(|_| Mutex::new(None)).collect(),
            stopping: CancellationToken::new(),
            grace: TERM_GRACE,
        })
    }

    async fn spawn(&self, slot: usize) -> Result<AgentChild, ExecError> {
        AgentChild::spawn(&self.agent, slot, &self.spec).await.map_err(ExecError::Unavailable)
    }

    /// The slot's child, ready for a request: the idle one if it is still healthy, else a new one.
    async fn ready_child(&self, slot: usize, idle: Option<AgentChild>) -> Result<AgentChild, ExecError> {
        let Some(mut child) = idle else { return self.spawn(slot).await };
        match child.idle_state() {
            Idle::Ready => Ok(child),
            state => {
                let why = match state {
                    Idle::Exited => "it exited while idle",
                    _ => "it wrote to stdout while idle (out of step with the protocol)",
                };
                tracing::warn!(agent = %self.agent, slot, pid = child.pid(), "replacing the agent process: {why}");
                child.stop(self.grace, why).await;
                self.spawn(slot).await
            }
        }
    }

    async fn run(&self, ctx: &TaskContext, payload: &Value) -> Result<Value, ExecError> {
        let stopping = || ExecError::Unavailable("the node is stopping".into());
        if self.stopping.is_cancelled() {
            return Err(stopping());
        }
        let request = protocol::request_line(ctx, payload)
            .map_err(|e| ExecError::Fatal(format!("the task cannot be written as a request line: {e}")))?;
        // A context's worker is below the agent's concurrency; a modulo keeps a stray one safe (it
        // waits for the slot it shares).
        let slot = ctx.worker % self.slots.len();
        let mut guard = tokio::select! {
            g = self.slots[slot].lock() => g,
            _ = ctx.cancel.cancelled() => return Err(cancelled()),
            _ = self.stopping.cancelled() => return Err(stopping()),
        };
        let mut child = self.ready_child(slot, guard.take()).await?;
        let mut respawned = false;
        loop {
            child.set_task(ctx.task_id.to_string());
            let ended = tokio::select! {
                e = converse(&mut child, ctx, payload, &request) => e,
                _ = ctx.cancel.cancelled() => Ended::Cancelled,
                _ = self.stopping.cancelled() => Ended::Stopping,
            };
            match ended {
                Ended::Answered(r) => {
                    // The task id stays set: stderr is read on its own task and may log a line of
                    // this task after its answer; it belongs to this task more likely than to none.
                    *guard = Some(child);
                    return r;
                }
                // Died before it could read the request (an exit while idle that the idle check did
                // not see yet): not this task's doing, so once more with a new child.
                Ended::NotDelivered(e) if !respawned => {
                    child.stop(self.grace, &format!("could not write the request: {e}")).await;
                    child = self.spawn(slot).await?;
                    respawned = true;
                }
                Ended::NotDelivered(e) => {
                    let why = format!("the agent process did not take the request ({e})");
                    return Err(crashed(&why, child.stop(self.grace, &why).await));
                }
                Ended::Broken(why) => return Err(crashed(&why, child.stop(self.grace, &why).await)),
                Ended::Cancelled => {
                    child.stop(self.grace, "the attempt was cancelled").await;
                    return Err(cancelled());
                }
                Ended::Stopping => {
                    child.stop(self.grace, "the node is stopping").await;
                    return Err(stopping());
                }
            }
        }
    }
}

fn cancelled() -> ExecError {
    ExecError::Cancelled("the attempt was cancelled; the agent's process group was stopped".into())
}

fn crashed(why: &str, stopped: child::Stopped) -> ExecError {
    let how = stopped.describe();
    ExecError::Crashed(if how.is_empty() { why.to_string() } else { format!("{why} ({how})") })
}

/// How one conversation ended.
enum Ended {
    /// `result` or `error`: the child is fine for the next task.
    Answered(Result<Value, ExecError>),
    /// The request could not be written (the child is gone).
    NotDelivered(String),
    /// The child exited or broke the protocol mid-task.
    Broken(String),
    Cancelled,
    Stopping,
}

/// One task's exchange: the request, then the agent's lines until its answer.
async fn converse(child: &mut AgentChild, ctx: &TaskContext, payload: &Value, request: &[u8]) -> Ended {
    if let Err(e) = child.send(request).await {
        return Ended::NotDelivered(e.to_string());
    }
    let business = ctx.business(payload);
    let mut pays = 0u32;
    loop {
        match child.next_line().await {
            Ok(Read::Line) => {}
            Ok(Read::Eof) => return Ended::Broken("the agent process exited mid-task".into()),
            Ok(Read::Overflow) => {
                return Ended::Broken(format!("the agent wrote a line longer than {MAX_LINE_BYTES} bytes"))
            }
            Err(e) => return Ended::Broken(format!("reading the agent's stdout failed: {e}")),
        }
        let line = match protocol::parse_line(child.line()) {
            Ok(Some(line)) => line,
            Ok(None) => continue,
            Err(e) => return Ended::Broken(format!("the agent broke the protocol: {e}")),
        };
        match line {
            AgentLine::Progress(v) => ctx.progress.report(v),
            AgentLine::Pay(pay) => {
                let decision = if pays >= protocol::MAX_PAYS_PER_TASK {
                    Err(format!("more than {} pay lines in one task", protocol::MAX_PAYS_PER_TASK))
                } else {
                    match &business {
                        Ok(b) => ctx.payments.approve(protocol::intent(ctx, b, pays, pay)).await,
                        Err(why) => Ok(protocol::refused(ctx, pays, pay, why)),
                    }
                };
                pays += 1;
                if let Err(e) = child.send(&protocol::payment_answer(&decision)).await {
                    return Ended::Broken(format!("the agent process exited before its payment answer ({e})"));
                }
            }
            AgentLine::Result(v) => return Ended::Answered(Ok(v)),
            AgentLine::Error { message, retryable: true } => {
                return Ended::Answered(Err(ExecError::Retryable(message)))
            }
            AgentLine::Error { message, retryable: false } => return Ended::Answered(Err(ExecError::Fatal(message))),
        }
    }
}

impl Executor for ProcessPool {
    fn execute<'a>(&'a self, ctx: &'a TaskContext, payload: &'a Value) -> BoxFuture<'a, Result<Value, ExecError>> {
        Box::pin(self.run(ctx, payload))
    }

    /// Stop every child: running conversations see `stopping` and stop their own; idle ones are
    /// stopped here. Bounded: a slot that stays locked past the grace is left to its child's drop.
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.stopping.cancel();
            let bound = self.grace + Duration::from_secs(3);
            let stops = self.slots.iter().map(|slot| async move {
                if let Ok(mut guard) = tokio::time::timeout(bound, slot.lock()).await {
                    if let Some(child) = guard.take() {
                        child.stop(self.grace, "the node is stopping").await;
                    }
                }
            });
            futures::future::join_all(stops).await;
        })
    }
}
