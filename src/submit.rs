//! Submitting, finding and cancelling tasks: the one place that turns user input (CLI flags or an HTTP
//! body) into a published task or a cancel request, so both front ends reject the same things with the
//! same messages and answer with the same words.

use genesis_actors::bus::{Bus, BusError, CancelRequest, Published, TaskRecord, TaskStatus};
use genesis_actors::roster::Roster;
use genesis_actors::task::{TaskEnvelope, TaskId, TenantId, TopicName};
use tracing::Instrument;

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    pub topic: String,
    pub payload: serde_json::Value,
    /// Parsed with the body: a tenant the task API accepts is one the payment ledger accepts. Over HTTP
    /// the API key decides it (only an admin key may name one); `None`: the default tenant.
    #[serde(default)]
    pub tenant: Option<TenantId>,
    #[serde(default)]
    pub reply_to: Option<String>,
    #[serde(default)]
    pub correlation_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The request is wrong; the message names the field.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// Parse `value` (named `field` in messages) as a topic some agent consumes.
pub fn roster_topic(roster: &Roster, field: &str, value: &str) -> Result<TopicName, SubmitError> {
    let topic: TopicName = value.parse().map_err(|e| SubmitError::Invalid(format!("{field} {value}: {e}")))?;
    if roster.by_topic(&topic).is_none() {
        let known: Vec<String> = roster.topics().map(|t| t.to_string()).collect();
        return Err(SubmitError::Invalid(format!(
            "{field} {value}: no agent consumes this topic in the roster; known topics: {}",
            known.join(", ")
        )));
    }
    Ok(topic)
}

pub async fn submit(
    bus: &Bus,
    roster: &Roster,
    max_bytes: usize,
    ttl: std::time::Duration,
    req: SubmitRequest,
) -> Result<(TaskEnvelope, String), SubmitError> {
    let topic = roster_topic(roster, "topic", &req.topic)?;
    let mut env = TaskEnvelope::new(topic, req.tenant.unwrap_or_default(), req.payload);
    if let Some(chain) = req.reply_to {
        // `a,b,c`: the result goes to `a` as a new task, whose result goes to `b`, and so on.
        let mut hops = Vec::new();
        for hop in chain.split(',').map(str::trim).filter(|h| !h.is_empty()) {
            hops.push(roster_topic(roster, "reply_to", hop)?);
        }
        let mut hops = hops.into_iter();
        env.reply_to = hops.next();
        env.then = hops.collect();
    }
    if let Some(c) = req.correlation_id {
        env.correlation_id = c;
    }
    let size = env.to_json().len();
    if size > max_bytes {
        return Err(SubmitError::Invalid(format!(
            "the task is {size} bytes, over bus.max_payload_bytes = {max_bytes}"
        )));
    }
    let span = genesis_actors::trace::publish_span(&env);
    env.traceparent = genesis_actors::trace::traceparent_of(&span);
    match bus.publish(&env, ttl).instrument(span).await? {
        Published::Appended(id) => Ok((env, id)),
        Published::Duplicate => Err(SubmitError::Invalid(format!("task {} already exists", env.task_id))),
    }
}

/// The topics a task is looked for in: the one given, or every roster topic (a task's record lives
/// under its topic's hash tag, so the id alone does not say where).
fn searched(roster: &Roster, topic: Option<&str>) -> Result<Vec<TopicName>, SubmitError> {
    Ok(match topic {
        Some(t) => vec![roster_topic(roster, "topic", t)?],
        None => roster.topics().cloned().collect(),
    })
}

/// Find a task's record in `topic`, or in every roster topic.
pub async fn find(
    bus: &Bus,
    roster: &Roster,
    id: &str,
    topic: Option<&str>,
) -> Result<Option<TaskRecord>, SubmitError> {
    let task_id: TaskId = id.parse().map_err(SubmitError::Invalid)?;
    let topics = searched(roster, topic)?;
    for t in &topics {
        if let Some(r) = bus.task(t, &task_id.to_string()).await? {
            return Ok(Some(r));
        }
    }
    Ok(None)
}

/// What a cancel request did (docs/semantics.md, "Cancellation").
#[derive(Debug)]
pub enum Cancelled {
    /// Requested: the record (now with `cancel_requested_at`) and what the bus said.
    Requested { request: CancelRequest, record: TaskRecord },
    /// The task had already ended: nothing was changed.
    Final(TaskRecord),
}

impl Cancelled {
    /// What happens next, in words (the CLI's line, the HTTP answer's `message`, the 409's `error`).
    pub fn message(&self) -> String {
        match self {
            Cancelled::Requested { request, record } => match (request.status, &request.node) {
                (TaskStatus::Running, Some(node)) => format!(
                    "cancel requested: task {} is running on node {node}; that node stops it and it ends dead (reason cancelled)",
                    record.task_id
                ),
                (status, _) => format!(
                    "cancel requested: task {} is {}; it is dead-lettered (reason cancelled) when a worker takes it, without running",
                    record.task_id,
                    status.as_str()
                ),
            },
            Cancelled::Final(r) => {
                format!("task {} already {}; nothing to cancel", r.task_id, r.status.as_str())
            }
        }
    }

    /// The JSON answer: the record after the request, and what was done.
    pub fn view(&self) -> serde_json::Value {
        match self {
            Cancelled::Requested { record, .. } => {
                serde_json::json!({ "cancel": "requested", "message": self.message(), "task": record })
            }
            Cancelled::Final(record) => serde_json::json!({ "error": self.message(), "task": record }),
        }
    }
}

/// Request the cancel of a task, found in `topic` or in every roster topic (as [`find`] finds it).
/// `None`: no such task (unknown id, or its record expired).
pub async fn cancel(
    bus: &Bus,
    roster: &Roster,
    id: &str,
    topic: Option<&str>,
) -> Result<Option<Cancelled>, SubmitError> {
    let task_id: TaskId = id.parse().map_err(SubmitError::Invalid)?;
    let task_id = task_id.to_string();
    let topics = searched(roster, topic)?;
    for t in &topics {
        let Some(request) = bus.cancel(t, &task_id).await? else { continue };
        let Some(record) = bus.task(t, &task_id).await? else { return Ok(None) };
        return Ok(Some(if request.status.is_final() {
            Cancelled::Final(record)
        } else {
            Cancelled::Requested { request, record }
        }));
    }
    Ok(None)
}
