//! Values that cross the bus boundary.

use crate::connection::ErrorClass;
use crate::task::{TaskEnvelope, TopicName};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One delivery of a stream entry to a consumer.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub topic: TopicName,
    /// The stream entry id.
    pub entry_id: String,
    /// The envelope field's raw text; `None` if the entry has no such field (or its data is gone).
    pub raw: Option<String>,
    /// Redis's delivery counter for this entry, including this delivery.
    pub deliveries: u32,
}

/// The outcome of a delivery, written atomically with its acknowledgement.
#[derive(Debug, Clone, PartialEq)]
pub enum Completion {
    Succeeded {
        task: TaskEnvelope,
        result: serde_json::Value,
    },
    Retry {
        /// The next attempt's envelope (attempt + 1), scheduled after `delay`.
        next: TaskEnvelope,
        delay: Duration,
        error: String,
    },
    /// Dead-letter the entry. `task` is `None` for entries that could not be decoded.
    Dead {
        task: Option<TaskEnvelope>,
        reason: String,
        error: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completed {
    Done,
    /// The entry was no longer pending for this consumer (acked, or claimed by another node): nothing
    /// was written.
    NotOwner,
}

/// The outcome of writing a node's liveness key, which is also the lease on its node id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lease {
    /// This process holds the node id (the key was written).
    Held,
    /// Another live process holds it; `holder` is the info it wrote (pid, host, start time).
    Taken { holder: String },
}

/// What the `begin` step says about one decoded delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Begun {
    /// Marked running: run it.
    Run,
    /// Its task already succeeded: acknowledged without running again.
    AlreadySucceeded,
    /// Marked running, but a cancel was requested: dead-letter it as `cancelled` without running.
    CancelRequested,
    /// Not pending for this consumer where the record lives (taken over meanwhile, or read from a
    /// restarted old master that still claimed to be master): nothing written, not run. Writing the
    /// record anyway would leave one with no entry, which a publish retry takes for the task's entry.
    NotOwner,
}

/// The answer to a cancel request (see [`crate::bus::Bus::cancel`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CancelRequest {
    /// The task's status when the request was made. A final status means nothing was changed.
    pub status: TaskStatus,
    /// The node of the latest delivery; for a running task, the node that was asked to stop it.
    pub node: Option<String>,
    /// When the cancel was first requested (an earlier request stands); `None` when the task was final.
    pub requested_at: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// Appended with this entry id.
    Appended(String),
    /// A task with this id already exists; nothing was appended.
    Duplicate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    Queued,
    Running,
    Retrying,
    Succeeded,
    Dead,
}

impl TaskStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            TaskStatus::Queued => "queued",
            TaskStatus::Running => "running",
            TaskStatus::Retrying => "retrying",
            TaskStatus::Succeeded => "succeeded",
            TaskStatus::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<TaskStatus> {
        Some(match s {
            "queued" => TaskStatus::Queued,
            "running" => TaskStatus::Running,
            "retrying" => TaskStatus::Retrying,
            "succeeded" => TaskStatus::Succeeded,
            "dead" => TaskStatus::Dead,
            _ => return None,
        })
    }

    pub fn is_final(&self) -> bool {
        matches!(self, TaskStatus::Succeeded | TaskStatus::Dead)
    }
}

/// One failed attempt, as kept in the result record and copied into the dead letter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryItem {
    pub attempt: u32,
    pub error: String,
    /// Milliseconds since the Unix epoch.
    pub at: u64,
}

/// The result record of a task. The identity fields are written by every step (publish, begin, each
/// outcome, replay), so a record re-created by any of them is complete; they are `None` only in
/// records written by a version that did not have them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub task_id: String,
    pub topic: String,
    pub tenant_id: Option<String>,
    pub correlation_id: Option<String>,
    /// The task this one replies to (a `reply_to` hop).
    pub parent: Option<String>,
    pub status: TaskStatus,
    /// The node of the consumer that began the latest delivery (kept once it ends: where it last ran).
    pub node: Option<String>,
    /// The consumer (`<node>/<agent>`) that holds the latest delivery: whose pending entry it is.
    pub worker: Option<String>,
    /// When the latest delivery began running, ms since the Unix epoch.
    pub started_at: Option<u64>,
    pub attempts: u32,
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
    /// Dead-letter reason code when `status` is `dead`.
    pub reason: Option<String>,
    pub history: Vec<HistoryItem>,
    /// The DLQ entry the task became when it died (kept as history: the dead letter may since have
    /// been deleted, purged or dropped by retention); cleared when it is replayed.
    pub dlq_id: Option<String>,
    /// The agent's latest progress report (JSON, at most [`crate::bus::progress::MAX_BYTES`]), kept
    /// while the task is not final and left as it was once it is.
    #[serde(default)]
    pub progress: Option<serde_json::Value>,
    /// When a cancel was requested (`genesis task cancel`, `POST /v1/tasks/{id}/cancel`), ms since the
    /// Unix epoch; the task then ends dead with reason `cancelled` (unless it had already finished).
    #[serde(default)]
    pub cancel_requested_at: Option<u64>,
    /// The workflow and step this task is (a workflow's step or compensation), written when it is
    /// published.
    #[serde(default)]
    pub workflow_id: Option<String>,
    #[serde(default)]
    pub workflow_step: Option<String>,
    pub updated_at: u64,
}

impl TaskRecord {
    /// A `queued` record with only its identity: what a record is before any step writes to it (the
    /// memory bus starts every record from it; tests fill in what they need).
    pub fn new(topic: &str, task_id: &str) -> TaskRecord {
        TaskRecord {
            task_id: task_id.to_string(),
            topic: topic.to_string(),
            tenant_id: None,
            correlation_id: None,
            parent: None,
            status: TaskStatus::Queued,
            node: None,
            worker: None,
            started_at: None,
            attempts: 0,
            result: None,
            error: None,
            reason: None,
            history: Vec::new(),
            dlq_id: None,
            progress: None,
            cancel_requested_at: None,
            workflow_id: None,
            workflow_step: None,
            updated_at: 0,
        }
    }
}

/// An entry of a topic's dead-letter queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The DLQ entry id (what `dlq replay --id` takes).
    pub id: String,
    pub task_id: Option<String>,
    pub topic: String,
    pub reason: String,
    pub error: String,
    pub attempts: u32,
    pub deliveries: u32,
    pub history: Vec<HistoryItem>,
    /// The original entry's envelope text as it was on the stream, or its first
    /// `bus.dlq_max_entry_bytes` bytes if `truncated`.
    pub envelope: Option<String>,
    /// The original entry's envelope size in bytes.
    #[serde(default)]
    pub envelope_bytes: u64,
    /// Only the start of the original was kept: this dead letter cannot be replayed.
    #[serde(default)]
    pub truncated: bool,
    /// The stream entry id it came from.
    pub source_id: String,
    pub dead_at: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicStats {
    pub topic: String,
    /// Entries in the stream (acknowledged entries stay until trimmed).
    pub length: u64,
    /// Entries delivered and not yet acknowledged.
    pub pending: u64,
    /// Entries not yet delivered to any consumer.
    pub lag: u64,
    pub consumers: u64,
    /// Retries waiting for their due time.
    pub retrying: u64,
    pub dlq: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("redis: {}", crate::secret::redact_url(&.0.to_string()))]
    Redis(#[from] ::redis::RedisError),
    /// `bus.publish_replicas` replicas did not confirm the write in time.
    #[error("written, but only {got} of {wanted} replicas confirmed it in time (bus.publish_replicas)")]
    NotReplicated { wanted: u32, got: u32 },
    #[error("unexpected reply from the bus: {0}")]
    Protocol(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
}

impl BusError {
    /// What this error means for the node (see [`crate::connection::errors`]).
    pub fn class(&self) -> ErrorClass {
        match self {
            BusError::Redis(e) => crate::connection::classify(e),
            BusError::NotReplicated { .. } => ErrorClass::Transient,
            _ => ErrorClass::Other,
        }
    }

    /// Worth retrying after a backoff: connection trouble, Redis loading, failing over or out of
    /// memory, or state that was just recreated.
    pub fn is_transient(&self) -> bool {
        matches!(self.class(), ErrorClass::Transient | ErrorClass::StateLost)
    }

    /// The consumer group (or stream) is missing, e.g. after Redis lost its data.
    pub fn is_nogroup(&self) -> bool {
        self.class() == ErrorClass::StateLost
    }
}
