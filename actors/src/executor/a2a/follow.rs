//! Following one attempt's task at the agent until it settles: by `GetTask` polling or by the
//! `SendStreamingMessage` stream, reporting progress on the way, and cancelling the agent's task
//! when the attempt is cancelled.
//!
//! The agent's task id is the server's to choose, so it is known only once `SendMessage` answers
//! (sent with `returnImmediately`, that is at once) or the stream's first event arrives. A cancel
//! before that waits [`SEND_ANSWER_WAIT`] for the answer, then looks the task up by its context
//! (`ListTasks`), so even an agent that ignores `returnImmediately` gets its `CancelTask`.

use super::client::{CallError, EventStream, Transport};
use super::outcome::{classify, merge_artifact, result_of, settled, transient, Phase, ProgressSeen};
use super::wire::{
    CancelTaskParams, GetTaskParams, ListTasksParams, ListTasksResult, SendParams, SendResult, StreamEvent, Task,
    TaskState, TaskStatus,
};
use super::{context_id, Target, CALL_TIMEOUT, MAX_RESPONSE_BYTES};
use crate::executor::{ExecError, TaskContext};
use crate::policy::backoff::Backoff;
use serde_json::{json, Value};
use std::time::Duration;

/// Gaps between two `GetTask` polls: 50 ms, doubling, at most 1 s.
const POLL: Backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(1), 2.0);
/// Consecutive passing failures (connection, 5xx, timeout) tolerated while following a task.
const MAX_FOLLOW_FAILURES: u32 = 3;
/// Timeout of a `CancelTask` (well inside the worker's `CANCEL_GRACE` of 5 s).
const CANCEL_TIMEOUT: Duration = Duration::from_secs(2);
/// After a cancel, how long an in-flight `SendMessage` may still take to name the task.
const SEND_ANSWER_WAIT: Duration = Duration::from_secs(1);

/// One attempt's calls to the agent.
pub struct Call<'a> {
    pub transport: &'a Transport,
    pub ctx: &'a TaskContext,
    pub target: &'a Target,
    pub agent: &'a str,
}

/// How a streamed attempt went.
pub enum Streamed {
    Done(Result<Value, ExecError>),
    /// The agent refused to stream (-32004) before anything started: send it unary instead.
    Refused,
}

impl Call<'_> {
    fn url(&self) -> &str {
        &self.target.rpc_url
    }

    fn tenant(&self) -> Option<&str> {
        self.target.tenant.as_deref()
    }

    fn traceparent(&self) -> Option<&str> {
        self.ctx.traceparent.as_deref()
    }

    async fn rpc<P: serde::Serialize, T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        params: P,
        timeout: Duration,
    ) -> Result<T, CallError> {
        self.transport.rpc(self.url(), method, params, self.traceparent(), MAX_RESPONSE_BYTES, timeout).await
    }

    /// `SendMessage` (with `returnImmediately`), then poll the task it started.
    pub async fn unary(&self, params: SendParams) -> Result<Value, ExecError> {
        // An agent that ignores `returnImmediately` answers when done: let it take the whole attempt.
        let left = Duration::from_millis(self.ctx.deadline_ms.saturating_sub(crate::task::now_ms()));
        let send = self.rpc::<_, SendResult>("SendMessage", params, left.max(Duration::from_secs(1)) + CALL_TIMEOUT);
        tokio::pin!(send);
        let answer = tokio::select! {
            r = &mut send => r,
            _ = self.ctx.cancel.cancelled() => {
                return Err(match tokio::time::timeout(SEND_ANSWER_WAIT, &mut send).await {
                    Ok(Ok(SendResult::Task(t))) if !t.status.state.is_settled() => self.cancel(&t.id).await,
                    Ok(Ok(_)) => cancelled("the agent had already finished the task".into()),
                    _ => self.cancel_context().await,
                });
            }
        };
        match answer.map_err(|e| classify(Phase::Start, "SendMessage", &e))? {
            SendResult::Message(m) => Ok(result_of(&[], Some(&m))),
            SendResult::Task(t) => {
                tracing::debug!(agent = self.agent, task_id = %self.ctx.task_id, agent_task = %t.id, "the agent accepted the task");
                self.poll(t).await
            }
        }
    }

    /// Poll `GetTask` until the task settles or the attempt is cancelled.
    async fn poll(&self, mut task: Task) -> Result<Value, ExecError> {
        let mut seen = ProgressSeen::default();
        let (mut polls, mut failures) = (0u32, 0u32);
        loop {
            if let Some(r) = settled(&task) {
                return self.finish(&task, r).await;
            }
            self.progress(&mut seen, &task.status);
            polls = polls.saturating_add(1);
            let params = GetTaskParams { id: &task.id, history_length: 0, tenant: self.tenant() };
            let got = tokio::select! {
                r = async {
                    tokio::time::sleep(POLL.ceiling(polls)).await;
                    self.rpc::<_, Task>("GetTask", params, CALL_TIMEOUT).await
                } => r,
                _ = self.ctx.cancel.cancelled() => return Err(self.cancel(&task.id).await),
            };
            match got {
                Ok(t) => (task, failures) = (t, 0),
                Err(e) if transient(&e) && failures < MAX_FOLLOW_FAILURES => {
                    failures += 1;
                    tracing::debug!(agent = self.agent, task_id = %self.ctx.task_id, agent_task = %task.id, failures, error = %e, "GetTask failed; asking again");
                }
                Err(e) => return Err(classify(Phase::Following, "GetTask", &e)),
            }
        }
    }

    /// `SendStreamingMessage`, following its events; polls if the stream ends before the task settles.
    pub async fn stream(&self, params: SendParams) -> Streamed {
        let open = self.transport.open_stream(self.url(), params, self.traceparent(), MAX_RESPONSE_BYTES);
        let mut events = tokio::select! {
            r = open => match r {
                Ok(s) => s,
                Err(CallError::Rpc { code: -32004, .. }) => return Streamed::Refused,
                Err(e) => return Streamed::Done(Err(classify(Phase::Start, "SendStreamingMessage", &e))),
            },
            _ = self.ctx.cancel.cancelled() => return Streamed::Done(Err(self.cancel_context().await)),
        };
        Streamed::Done(self.follow_stream(&mut events).await)
    }

    async fn follow_stream(&self, events: &mut EventStream) -> Result<Value, ExecError> {
        let mut task: Option<Task> = None;
        let mut seen = ProgressSeen::default();
        let mut artifact_bytes = 0usize;
        loop {
            let next = tokio::select! {
                r = events.next() => r,
                _ = self.ctx.cancel.cancelled() => return Err(match &task {
                    Some(t) => self.cancel(&t.id).await,
                    None => self.cancel_context().await,
                }),
            };
            let (event, bytes) = match next {
                Ok(Some(e)) => e,
                Ok(None) => break,
                Err(e @ CallError::TooLarge { .. }) => {
                    return Err(classify(Phase::Following, "SendStreamingMessage", &e))
                }
                Err(e) if task.is_some() => {
                    tracing::info!(agent = self.agent, task_id = %self.ctx.task_id, error = %e, "the event stream broke; polling the task instead");
                    break;
                }
                Err(e) => return Err(classify(Phase::Start, "SendStreamingMessage", &e)),
            };
            let working = |id: String| Task {
                id,
                context_id: String::new(),
                status: TaskStatus { state: TaskState::Working, message: None },
                artifacts: vec![],
            };
            match event {
                StreamEvent::Task(t) => task = Some(t),
                StreamEvent::StatusUpdate(u) => task.get_or_insert_with(|| working(u.task_id)).status = u.status,
                StreamEvent::ArtifactUpdate(u) => {
                    artifact_bytes += bytes;
                    if artifact_bytes > MAX_RESPONSE_BYTES {
                        let e = CallError::TooLarge {
                            url: crate::secret::redact_url(self.url()),
                            limit: MAX_RESPONSE_BYTES,
                        };
                        return Err(classify(Phase::Following, "SendStreamingMessage", &e));
                    }
                    let t = task.get_or_insert_with(|| working(u.task_id.clone()));
                    merge_artifact(&mut t.artifacts, u);
                }
                // An agent that answers without a task; within a task, a message is commentary.
                StreamEvent::Message(m) if task.is_none() => return Ok(result_of(&[], Some(&m))),
                StreamEvent::Message(_) => {}
            }
            if let Some(t) = &task {
                if let Some(r) = settled(t) {
                    return self.finish(t, r).await;
                }
                self.progress(&mut seen, &t.status);
            }
        }
        // The stream ended (or broke) before the task settled; the task goes on at the agent.
        match task {
            Some(t) if !t.id.is_empty() => self.poll(t).await,
            _ => Err(ExecError::Server {
                error: "SendStreamingMessage: the stream ended before it named a task".into(),
                retry_after: None,
            }),
        }
    }

    fn progress(&self, seen: &mut ProgressSeen, status: &TaskStatus) {
        if let Some(p) = seen.fresh(status) {
            self.ctx.progress.report(p);
        }
    }

    /// A settled task's result; an interrupted one (input or auth required) is cancelled at the agent
    /// so it does not wait there for an answer that will never come.
    async fn finish(&self, task: &Task, r: Result<Value, ExecError>) -> Result<Value, ExecError> {
        if matches!(task.status.state, TaskState::InputRequired | TaskState::AuthRequired) {
            let _ = self.cancel(&task.id).await;
        }
        r
    }

    /// `CancelTask` for the agent's task `id`; the error to return for the cancelled attempt.
    async fn cancel(&self, id: &str) -> ExecError {
        cancelled(self.cancel_at_agent(id).await)
    }

    /// Send `CancelTask` for `id`; says how it went.
    async fn cancel_at_agent(&self, id: &str) -> String {
        let reason = "cancelled by Genesis (the attempt's timeout, or a cancel request)";
        let params = CancelTaskParams { id, metadata: json!({"genesis.reason": reason}), tenant: self.tenant() };
        let how = match self.rpc::<_, Task>("CancelTask", params, CANCEL_TIMEOUT).await {
            Ok(t) => format!("the agent's task {id} is {}", t.status.state.label()),
            Err(e) => format!("CancelTask for the agent's task {id} failed: {e}"),
        };
        tracing::info!(agent = self.agent, task_id = %self.ctx.task_id, agent_task = %id, outcome = %how, "cancel sent to the agent");
        how
    }

    /// Cancel the task(s) of this attempt's context when the agent's task id never arrived.
    async fn cancel_context(&self) -> ExecError {
        let ctx_id = context_id(self.ctx);
        let params = ListTasksParams { context_id: &ctx_id, history_length: 0, tenant: self.tenant() };
        let how = match self.rpc::<_, ListTasksResult>("ListTasks", params, CANCEL_TIMEOUT).await {
            Err(e) => format!("the agent's task id never arrived and ListTasks failed: {e}"),
            Ok(list) => {
                let mut done = Vec::new();
                for t in list.tasks.iter().filter(|t| !t.status.state.is_settled()) {
                    done.push(self.cancel_at_agent(&t.id).await);
                }
                if done.is_empty() {
                    format!("no running task of context {ctx_id} at the agent")
                } else {
                    done.join("; ")
                }
            }
        };
        cancelled(how)
    }
}

fn cancelled(how: String) -> ExecError {
    ExecError::Cancelled(format!("the attempt was cancelled; {how}"))
}
