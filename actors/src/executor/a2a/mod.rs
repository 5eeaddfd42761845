//! The `a2a` executor: each attempt is one task at an Agent2Agent 1.0 agent, spoken to over
//! JSON-RPC as the official `a2a-sdk` serves it (docs/agents.md `## a2a` is the user's view).
//!
//! An attempt: read the agent card (once, then again after any failure that makes the agent
//! [`ExecError::Unavailable`], and every [`CARD_MAX_AGE`]) → `SendMessage` with the payload as one
//! data part and the task's identity in the message metadata ([`keys`]) → follow the task with
//! `GetTask` polling (50 ms doubling to 1 s), or the `SendStreamingMessage` event stream when the
//! card says `capabilities.streaming`, until it settles → map its state and artifacts to the result
//! (`outcome`). When [`TaskContext::cancel`] fires (the agent's timeout), the agent's task gets a
//! `CancelTask` and the attempt returns [`ExecError::Cancelled`] well within `CANCEL_GRACE`.
//!
//! Layout: `card` (the card and the interface choice), `wire` (serde types of the JSON-RPC
//! messages), `client` (HTTP: pooled client, headers, bounded answers, typed failures), `sse` (the
//! event-stream parser), `follow` (polling, streaming, cancelling), `outcome` (pure mapping of
//! states, artifacts and failures).

mod card;
mod client;
mod follow;
mod outcome;
mod sse;
mod wire;

use super::{ExecError, Executor, TaskContext};
use crate::roster::{AgentSpec, Endpoint};
use crate::secret::redact_url;
use card::Target;
use client::Transport;
use futures::future::BoxFuture;
use serde_json::{Map, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const NAME: &str = "a2a";

/// The keys Genesis sets in the metadata of the message it sends (`message.metadata`), so the
/// agent knows which task and attempt it runs and can continue the trace. Numbers arrive at a
/// protobuf-based agent as doubles (`1` → `1.0`); `genesis.deadline_ms` (< 2^53) stays exact.
pub mod keys {
    /// The Genesis task id (a ULID), the same on every attempt.
    pub const TASK_ID: &str = "genesis.task_id";
    /// The attempt number, 1 for the first.
    pub const ATTEMPT: &str = "genesis.attempt";
    pub const TENANT_ID: &str = "genesis.tenant_id";
    pub const CORRELATION_ID: &str = "genesis.correlation_id";
    /// W3C trace context of the attempt's span (also sent as the `traceparent` HTTP header).
    pub const TRACEPARENT: &str = "traceparent";
    /// When the attempt's timeout fires, Unix milliseconds: work past it is cancelled.
    pub const DEADLINE_MS: &str = "genesis.deadline_ms";
    /// The task's payment token (only when payments are on): lets the agent ask the MetaAgent for
    /// money as this task and no one else. A credential: the agent must not log it.
    pub const PAYMENT_TOKEN: &str = "genesis.payment_token";
}

/// The largest answer read from the agent (one JSON-RPC answer, one streamed event, or all of a
/// stream's artifacts together); beyond it the attempt fails as fatal.
pub const MAX_RESPONSE_BYTES: usize = 4 << 20;
/// The largest agent card read.
const MAX_CARD_BYTES: usize = 1 << 20;
/// Timeout of one card fetch, `GetTask` or `ListTasks`.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// A card older than this is fetched again before the next attempt (the agent may have moved).
pub const CARD_MAX_AGE: Duration = Duration::from_secs(300);

/// The deterministic `messageId` of an attempt: a redelivery of the same attempt sends the same id,
/// so an agent that deduplicates messages can recognise it.
pub fn message_id(ctx: &TaskContext) -> String {
    format!("genesis-{}-{}", ctx.task_id, ctx.attempt)
}

/// The `contextId` of every attempt of a task: the agent sees them as one conversation, and Genesis
/// can find a task whose id it never received (`ListTasks`) to cancel it.
pub fn context_id(ctx: &TaskContext) -> String {
    format!("genesis-{}", ctx.task_id)
}

/// The `SendMessage` params of an attempt (pure): payload as one data part, identity in metadata.
fn send_params(ctx: &TaskContext, payload: &Value, target: &Target, return_immediately: bool) -> wire::SendParams {
    let mut md = Map::new();
    md.insert(keys::TASK_ID.into(), ctx.task_id.to_string().into());
    md.insert(keys::ATTEMPT.into(), ctx.attempt.into());
    md.insert(keys::TENANT_ID.into(), ctx.tenant_id.as_str().into());
    md.insert(keys::CORRELATION_ID.into(), ctx.correlation_id.clone().into());
    md.insert(keys::DEADLINE_MS.into(), ctx.deadline_ms.into());
    if let Some(tp) = &ctx.traceparent {
        md.insert(keys::TRACEPARENT.into(), tp.clone().into());
    }
    if let Some(token) = &ctx.payment_token {
        md.insert(keys::PAYMENT_TOKEN.into(), token.clone().into());
    }
    wire::SendParams {
        message: wire::Message {
            message_id: message_id(ctx),
            role: wire::Role::User,
            parts: vec![wire::Part::data(payload.clone())],
            context_id: Some(context_id(ctx)),
            task_id: None,
            metadata: Some(Value::Object(md)),
        },
        configuration: wire::SendConfiguration { return_immediately, history_length: 0 },
        tenant: target.tenant.clone(),
    }
}

pub fn build(spec: &AgentSpec, endpoint: &Endpoint) -> Result<Arc<dyn Executor>, String> {
    Ok(Arc::new(A2a::new(&spec.name, endpoint)?))
}

/// One agent's executor: its HTTP client and what its card said. Building it does no I/O.
pub struct A2a {
    agent: String,
    card_url: String,
    transport: Transport,
    /// The card's target and when it was read; `None` until read, and again after a failure that
    /// calls it into question.
    card: tokio::sync::Mutex<Option<(Arc<Target>, Instant)>>,
    /// The agent refused the stream its card offers (-32004): poll until the card is read again.
    no_stream: AtomicBool,
}

impl A2a {
    pub fn new(agent: &str, endpoint: &Endpoint) -> Result<A2a, String> {
        Ok(A2a {
            agent: agent.to_string(),
            card_url: card::card_url(&endpoint.url),
            transport: Transport::new(endpoint)?,
            card: tokio::sync::Mutex::new(None),
            no_stream: AtomicBool::new(false),
        })
    }

    /// Where to call the agent: the cached card's target, or a fresh read of the card. One read at a
    /// time; workers arriving meanwhile wait for it.
    async fn target(&self) -> Result<Arc<Target>, ExecError> {
        let mut slot = self.card.lock().await;
        if let Some((t, at)) = slot.as_ref() {
            if at.elapsed() < CARD_MAX_AGE {
                return Ok(t.clone());
            }
        }
        let shown = redact_url(&self.card_url);
        let unavailable = |e: &dyn std::fmt::Display| ExecError::Unavailable(format!("agent card at {shown}: {e}"));
        let c: card::AgentCard =
            self.transport.get_json(&self.card_url, MAX_CARD_BYTES, CALL_TIMEOUT).await.map_err(|e| unavailable(&e))?;
        let t = Arc::new(card::target(&c, &self.card_url).map_err(|e| unavailable(&e))?);
        if slot.as_ref().is_none_or(|(old, _)| **old != *t) {
            tracing::info!(agent = %self.agent, card = %t.name, rpc = %redact_url(&t.rpc_url), streaming = t.streaming, "agent card read");
        }
        self.no_stream.store(false, Ordering::Relaxed);
        *slot = Some((t.clone(), Instant::now()));
        Ok(t)
    }

    async fn forget_card(&self) {
        *self.card.lock().await = None;
    }

    async fn run(&self, ctx: &TaskContext, payload: &Value) -> Result<Value, ExecError> {
        let target = tokio::select! {
            t = self.target() => t?,
            _ = ctx.cancel.cancelled() => return Err(ExecError::Cancelled("cancelled before the agent was called".into())),
        };
        let call = follow::Call { transport: &self.transport, ctx, target: &target, agent: &self.agent };
        if target.streaming && !self.no_stream.load(Ordering::Relaxed) {
            match call.stream(send_params(ctx, payload, &target, false)).await {
                follow::Streamed::Done(r) => return r,
                follow::Streamed::Refused => {
                    tracing::warn!(agent = %self.agent, "the agent's card offers streaming but it refused a stream (-32004); polling instead until its card is read again");
                    self.no_stream.store(true, Ordering::Relaxed);
                }
            }
        }
        call.unary(send_params(ctx, payload, &target, true)).await
    }
}

impl Executor for A2a {
    fn execute<'a>(&'a self, ctx: &'a TaskContext, payload: &'a Value) -> BoxFuture<'a, Result<Value, ExecError>> {
        Box::pin(async move {
            let r = self.run(ctx, payload).await;
            match &r {
                Err(e @ ExecError::Unavailable(_)) => {
                    tracing::debug!(agent = %self.agent, task_id = %ctx.task_id, error = %e, "agent unavailable; its card will be read again");
                    self.forget_card().await;
                }
                Err(e) => {
                    tracing::debug!(agent = %self.agent, task_id = %ctx.task_id, error = %e, "a2a attempt failed")
                }
                Ok(_) => {}
            }
            r
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::TaskId;
    use serde_json::json;

    #[test]
    fn the_message_carries_the_payload_and_the_tasks_identity() {
        let mut ctx = TaskContext::detached("genesis.qa", TaskId::generate());
        ctx.attempt = 2;
        ctx.traceparent = Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into());
        ctx.payment_token = Some("tok".into());
        let target =
            Target { name: "x".into(), rpc_url: "http://h/rpc".into(), streaming: false, tenant: Some("t".into()) };
        let p = serde_json::to_value(send_params(&ctx, &json!({"mode": "echo"}), &target, true)).expect("json");
        let id = ctx.task_id.to_string();
        assert_eq!(p["message"]["messageId"], format!("genesis-{id}-2"));
        assert_eq!(p["message"]["contextId"], format!("genesis-{id}"));
        assert_eq!(p["message"]["role"], "ROLE_USER");
        assert_eq!(p["message"]["parts"], json!([{"data": {"mode": "echo"}}]));
        let md = &p["message"]["metadata"];
        assert_eq!((md["genesis.task_id"].as_str(), md["genesis.attempt"].as_u64()), (Some(id.as_str()), Some(2)));
        assert_eq!(md["genesis.tenant_id"], ctx.tenant_id.as_str());
        assert_eq!(md["genesis.correlation_id"], ctx.correlation_id.as_str());
        assert_eq!(md["genesis.deadline_ms"].as_u64(), Some(ctx.deadline_ms));
        assert_eq!(
            (md["traceparent"].as_str(), md["genesis.payment_token"].as_str()),
            (ctx.traceparent.as_deref(), Some("tok"))
        );
        assert_eq!(p["configuration"], json!({"returnImmediately": true, "historyLength": 0}));
        assert_eq!(p["tenant"], "t");
        assert_eq!(message_id(&ctx), message_id(&ctx.clone()), "deterministic");
    }

    #[test]
    fn without_trace_or_payments_those_keys_are_absent() {
        let ctx = TaskContext::detached("a", TaskId::generate());
        let target = Target { name: "x".into(), rpc_url: "http://h/rpc".into(), streaming: true, tenant: None };
        let p = serde_json::to_value(send_params(&ctx, &json!(1), &target, false)).expect("json");
        let md = p["message"]["metadata"].as_object().expect("metadata");
        assert!(!md.contains_key("traceparent") && !md.contains_key("genesis.payment_token"));
        assert!(p.get("tenant").is_none());
    }

    #[test]
    fn build_needs_no_agent() {
        let ep = Endpoint { url: "http://127.0.0.1:1".into(), headers: vec![] };
        assert!(A2a::new("a", &ep).is_ok());
    }
}
