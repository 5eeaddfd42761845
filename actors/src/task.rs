//! The task envelope: what travels inside a stream entry.
//!
//! Data entering from outside (a stream entry, the CLI, later HTTP) is parsed once into these types;
//! everything inside the runtime trusts them. A stream entry that does not parse is not an error of the
//! runtime: it is dead-lettered with the [`DecodeError`] as its reason.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use ulid::Ulid;

/// Field of a stream entry that carries the JSON envelope.
pub const ENVELOPE_FIELD: &str = "task";

/// A task identifier: a ULID, so ids sort by creation time and need no coordination between nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(Ulid);

impl TaskId {
    pub fn generate() -> Self {
        TaskId(Ulid::generate())
    }

    /// A task id derived from a name rather than drawn at random: the same `seed` always gives the same
    /// id (a workflow step's task, so a step published twice is one task). `timestamp_ms` keeps ids
    /// sorting by time.
    pub fn derived(timestamp_ms: u64, seed: &[u8]) -> Self {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(seed);
        let mut random = [0u8; 16];
        random[6..].copy_from_slice(&digest[..10]);
        TaskId(Ulid::from_parts(timestamp_ms, u128::from_be_bytes(random)))
    }

    /// The id of the reply a task publishes to its `reply_to` topic. Deterministic, so a task that is
    /// re-run after a crash republishes the *same* reply task, which the result store then deduplicates.
    pub fn reply_id(&self) -> TaskId {
        let parent = self.0;
        // Keep the parent's timestamp (ordering) and derive the random part from all 128 bits of the
        // parent id, so two parents differing anywhere get different replies.
        let (lo, hi) = (parent.0 as u64, (parent.0 >> 64) as u64);
        let a = splitmix(lo ^ splitmix(hi));
        let b = splitmix(hi ^ 0x9e37 ^ splitmix(lo.rotate_left(17)));
        let mixed = a as u128 | ((b as u128) << 64);
        TaskId(Ulid::from_parts(parent.timestamp_ms(), mixed & ((1u128 << 80) - 1)))
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for TaskId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ulid::from_string(s).map(TaskId).map_err(|e| format!("`{s}` is not a task id (a 26-character ULID): {e}"))
    }
}

/// A topic name: lowercase letters, digits, `.`, `_` and `-`, at most 128 characters.
///
/// The restriction keeps names safe inside Redis keys (no `{`/`}` that would break hash-slot tags).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TopicName(String);

impl TopicName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TopicName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        let valid_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c);
        if s.is_empty() || s.len() > 128 {
            return Err(format!("topic `{s}` must have 1 to 128 characters"));
        }
        if !s.chars().all(valid_char) {
            return Err(format!("topic `{s}` may only contain lowercase letters, digits, '.', '_' and '-'"));
        }
        Ok(TopicName(s))
    }
}

impl FromStr for TopicName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TopicName::try_from(s.to_string())
    }
}

impl From<TopicName> for String {
    fn from(t: TopicName) -> String {
        t.0
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub use crate::tenant::{TenantId, DEFAULT_TENANT};

/// The envelope of one task. `attempt` starts at 1 and grows with each retry (a retry is a new stream
/// entry carrying the same `task_id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskEnvelope {
    pub task_id: TaskId,
    pub topic: TopicName,
    /// Parsed when the envelope is decoded: a stored entry with an invalid tenant is a decode error
    /// (dead-lettered), never a task.
    pub tenant_id: TenantId,
    pub correlation_id: String,
    pub attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<TopicName>,
    /// Further hops after `reply_to`: the reply task replies to `then[0]`, and so on (a chain such as
    /// idea → build → deploy).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub then: Vec<TopicName>,
    /// The task whose result this task carries (set on a `reply_to` hop). Absent in envelopes written
    /// before the field existed; see [`TaskEnvelope::parent_id`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<TaskId>,
    pub payload: serde_json::Value,
    /// Milliseconds since the Unix epoch.
    pub created_at: u64,
    /// W3C trace context (`traceparent`), so a chain of tasks is one trace across processes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The business the task works for (a workflow's business, carried by every step and hop), so it
    /// does not depend on an agent copying `business_id` through its payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_id: Option<String>,
    /// The workflow step (or compensation) this task is; its final outcome advances that workflow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<crate::workflow::state::WorkflowRef>,
}

impl TaskEnvelope {
    /// A new first-attempt task; the correlation id defaults to the task id.
    pub fn new(topic: TopicName, tenant_id: TenantId, payload: serde_json::Value) -> Self {
        let task_id = TaskId::generate();
        TaskEnvelope {
            task_id,
            topic,
            tenant_id,
            correlation_id: task_id.to_string(),
            attempt: 1,
            reply_to: None,
            then: Vec::new(),
            parent: None,
            payload,
            created_at: now_ms(),
            traceparent: None,
            business_id: None,
            workflow: None,
        }
    }

    /// The envelope of the task that carries this task's result to its `reply_to` topic.
    pub fn reply(&self, reply_to: TopicName, result: serde_json::Value) -> TaskEnvelope {
        TaskEnvelope {
            task_id: self.task_id.reply_id(),
            topic: reply_to,
            tenant_id: self.tenant_id.clone(),
            correlation_id: self.correlation_id.clone(),
            attempt: 1,
            reply_to: self.then.first().cloned(),
            then: self.then.iter().skip(1).cloned().collect(),
            parent: Some(self.task_id),
            payload: serde_json::json!({ "in_reply_to": self.task_id, "from": self.topic, "result": result }),
            created_at: now_ms(),
            traceparent: self.traceparent.clone(),
            business_id: self.business_id.clone(),
            // A hop after a step is not itself a step of the workflow.
            workflow: None,
        }
    }

    /// The task this one replies to: the `parent` field, or for a reply published before that field
    /// existed, the `in_reply_to` its payload carries.
    pub fn parent_id(&self) -> Option<TaskId> {
        self.parent.or_else(|| self.payload.get("in_reply_to")?.as_str()?.parse().ok())
    }

    pub fn to_json(&self) -> String {
        // Serializing a struct of strings, numbers and a `Value` cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parse a stream entry's envelope field, enforcing the payload size limit before parsing.
    pub fn decode(raw: &str, max_bytes: usize) -> Result<TaskEnvelope, DecodeError> {
        if raw.len() > max_bytes {
            return Err(DecodeError::TooLarge { size: raw.len(), limit: max_bytes });
        }
        let env: TaskEnvelope = serde_json::from_str(raw).map_err(|e| DecodeError::Invalid(e.to_string()))?;
        if env.attempt == 0 {
            return Err(DecodeError::Invalid("attempt must be at least 1".into()));
        }
        Ok(env)
    }
}

/// Why a stream entry could not become a task.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("entry has no `{ENVELOPE_FIELD}` field")]
    MissingField,
    #[error("entry is {size} bytes, over the limit of {limit} bytes (bus.max_payload_bytes)")]
    TooLarge { size: usize, limit: usize },
    #[error("invalid task envelope: {0}")]
    Invalid(String),
    #[error("entry belongs to topic `{found}` but was read from `{expected}`")]
    WrongTopic { expected: String, found: String },
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(s: &str) -> TopicName {
        s.parse().expect("valid topic")
    }

    fn tenant(s: &str) -> TenantId {
        TenantId::parse(s).expect("valid tenant")
    }

    #[test]
    fn a_stored_envelope_with_an_invalid_tenant_is_a_decode_error() {
        let env = TaskEnvelope::new(topic("genesis.build"), tenant("t1"), serde_json::json!({}));
        let raw = env.to_json().replace("\"tenant_id\":\"t1\"", "\"tenant_id\":\"t{1}\"");
        assert!(raw.contains("t{1}"), "{raw}");
        match TaskEnvelope::decode(&raw, 1 << 20) {
            Err(DecodeError::Invalid(why)) => assert!(why.contains("tenant id \"t{1}\""), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn envelope_round_trips() {
        let env = TaskEnvelope::new(topic("genesis.build"), tenant("t1"), serde_json::json!({"a": 1}));
        let back = TaskEnvelope::decode(&env.to_json(), 1 << 20).expect("decodes");
        assert_eq!(env, back);
    }

    #[test]
    fn decode_rejects_missing_fields_and_oversize() {
        assert!(matches!(TaskEnvelope::decode("{\"task_id\": 1}", 1024), Err(DecodeError::Invalid(_))));
        assert!(matches!(TaskEnvelope::decode("not json", 1024), Err(DecodeError::Invalid(_))));
        let env = TaskEnvelope::new(topic("x"), tenant("t"), serde_json::json!("y".repeat(100)));
        assert!(matches!(TaskEnvelope::decode(&env.to_json(), 50), Err(DecodeError::TooLarge { .. })));
    }

    #[test]
    fn topic_names_are_restricted() {
        assert!("genesis.idea.generate".parse::<TopicName>().is_ok());
        for bad in ["", "Upper", "a{b}", "with space", &"x".repeat(129)] {
            assert!(bad.parse::<TopicName>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn a_reply_names_its_parent_and_old_replies_still_decode() {
        let parent = TaskEnvelope::new(
            topic("genesis.idea.generate"),
            TenantId::parse("t").expect("tenant"),
            serde_json::json!({}),
        );
        let reply = parent.reply(topic("genesis.build"), serde_json::json!({"idea": 1}));
        assert_eq!(reply.parent, Some(parent.task_id));
        // An envelope written before `parent` existed: no such field, the parent in the payload.
        let mut old: serde_json::Value = serde_json::from_str(&reply.to_json()).expect("json");
        old.as_object_mut().expect("object").remove("parent");
        let old = TaskEnvelope::decode(&old.to_string(), 1 << 20).expect("old envelopes decode");
        assert_eq!((old.parent, old.parent_id()), (None, Some(parent.task_id)));
        assert_eq!(parent.parent_id(), None);
    }

    #[test]
    fn reply_id_is_deterministic_and_distinct() {
        let id = TaskId::generate();
        assert_eq!(id.reply_id(), id.reply_id());
        assert_ne!(id.reply_id(), id);
        assert_ne!(id.reply_id(), id.reply_id().reply_id());
    }
}
