//! Result records and dead letters as the scripts write them (hash fields, stream entry fields), read
//! back into the bus's types. Missing fields (a record written by an older version) read as `None`/0.

use super::reply::{self, field};
use crate::bus::types::{BusError, DeadLetter, TaskRecord, TaskStatus};
use crate::task::TopicName;

type Fields = Vec<(String, String)>;

fn nonempty(f: &Fields, k: &str) -> Option<String> {
    field(f, k).filter(|s| !s.is_empty()).map(str::to_string)
}

fn number<T: std::str::FromStr>(f: &Fields, k: &str) -> Option<T> {
    field(f, k).and_then(|s| s.parse().ok())
}

/// The result record `genesis:{topic}:task:<id>`; `None` if the hash does not exist.
pub fn task_record(topic: &TopicName, task_id: &str, p: Fields) -> Result<Option<TaskRecord>, BusError> {
    if p.is_empty() {
        return Ok(None);
    }
    let status = field(&p, "status")
        .and_then(TaskStatus::parse)
        .ok_or_else(|| BusError::Protocol(format!("task {task_id} has no valid status")))?;
    Ok(Some(TaskRecord {
        task_id: task_id.to_string(),
        topic: topic.to_string(),
        tenant_id: nonempty(&p, "tenant_id"),
        correlation_id: nonempty(&p, "correlation_id"),
        parent: nonempty(&p, "parent"),
        status,
        node: nonempty(&p, "node"),
        worker: nonempty(&p, "worker"),
        started_at: number(&p, "started_at"),
        attempts: number(&p, "attempts").unwrap_or(0),
        result: nonempty(&p, "result").map(|s| serde_json::from_str(&s).unwrap_or(serde_json::Value::String(s))),
        error: nonempty(&p, "error"),
        reason: nonempty(&p, "reason"),
        history: reply::history(field(&p, "history")),
        dlq_id: nonempty(&p, "dlq_id"),
        progress: nonempty(&p, "progress").map(|s| serde_json::from_str(&s).unwrap_or(serde_json::Value::String(s))),
        cancel_requested_at: number(&p, "cancel_requested_at"),
        workflow_id: nonempty(&p, "workflow").and_then(|w| Some(w.split_once('/')?.0.to_string())),
        workflow_step: nonempty(&p, "workflow").and_then(|w| Some(w.split_once('/')?.1.to_string())),
        updated_at: number(&p, "updated_at").unwrap_or(0),
    }))
}

/// One entry of a topic's DLQ stream.
pub fn dead_letter(topic: &TopicName, id: String, f: Fields) -> DeadLetter {
    DeadLetter {
        id,
        task_id: nonempty(&f, "task_id"),
        topic: field(&f, "topic").unwrap_or(topic.as_str()).to_string(),
        reason: field(&f, "reason").unwrap_or_default().to_string(),
        error: field(&f, "error").unwrap_or_default().to_string(),
        attempts: number(&f, "attempts").unwrap_or(0),
        deliveries: number(&f, "deliveries").unwrap_or(0),
        history: reply::history(field(&f, "history")),
        envelope: nonempty(&f, "envelope"),
        envelope_bytes: number(&f, "envelope_bytes")
            .unwrap_or_else(|| field(&f, "envelope").map_or(0, |e| e.len() as u64)),
        truncated: field(&f, "truncated") == Some("1"),
        source_id: field(&f, "source_id").unwrap_or_default().to_string(),
        dead_at: number(&f, "dead_at").unwrap_or(0),
    }
}
