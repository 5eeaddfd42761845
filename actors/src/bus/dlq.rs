//! Dead letters, the parts both buses share: which one (by its entry id or its task id), which ones (a
//! reason filter), how long a DLQ keeps them (retention by age and count), and how much of an
//! original entry it keeps (truncation). Pure; no I/O.

use super::types::{BusError, DeadLetter};
use crate::task::{TaskEnvelope, TaskId};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// How much of an original entry a dead letter keeps by default (`bus.dlq_max_entry_bytes`).
pub const DEFAULT_MAX_ENTRY_BYTES: usize = 64 * 1024;

/// One dead letter, as an operator names it: the DLQ entry id (`1718000000000-0`) or the id of the
/// task that died (a ULID), parsed once at the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadLetterRef {
    Entry(String),
    Task(TaskId),
}

impl FromStr for DeadLetterRef {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let is_entry_id = s.split_once('-').is_some_and(|(ms, seq)| {
            !ms.is_empty()
                && !seq.is_empty()
                && ms.bytes().all(|b| b.is_ascii_digit())
                && seq.bytes().all(|b| b.is_ascii_digit())
        });
        if is_entry_id {
            return Ok(DeadLetterRef::Entry(s.to_string()));
        }
        s.parse::<TaskId>().map(DeadLetterRef::Task).map_err(|_| {
            format!("`{s}` is neither a DLQ entry id (like 1718000000000-0) nor a task id (a 26-character ULID)")
        })
    }
}

impl fmt::Display for DeadLetterRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeadLetterRef::Entry(id) => write!(f, "dead letter {id}"),
            DeadLetterRef::Task(id) => write!(f, "dead letter of task {id}"),
        }
    }
}

/// Which dead letters a list, replay or purge applies to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DlqFilter {
    /// Only dead letters with this reason code (`poison`, `retries_exhausted`, …).
    pub reason: Option<String>,
}

impl DlqFilter {
    pub fn reason(reason: impl Into<String>) -> Self {
        DlqFilter { reason: Some(reason.into()) }
    }

    pub fn is_everything(&self) -> bool {
        self.reason.is_none()
    }

    pub fn matches(&self, d: &DeadLetter) -> bool {
        self.reason.as_ref().is_none_or(|r| *r == d.reason)
    }
}

/// How long a topic's DLQ keeps dead letters: those older than `max_age` are dropped, then the oldest
/// beyond `max_len`. Without it a DLQ fills Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DlqRetention {
    pub max_age: Duration,
    pub max_len: u64,
}

impl Default for DlqRetention {
    fn default() -> Self {
        DlqRetention { max_age: Duration::from_secs(14 * 86_400), max_len: 100_000 }
    }
}

impl DlqRetention {
    /// This retention with an agent's overrides (`dlq_max_age`, `dlq_max_len` in agents.toml).
    pub fn with(self, o: &DlqOverride) -> DlqRetention {
        DlqRetention { max_age: o.max_age.unwrap_or(self.max_age), max_len: o.max_len.unwrap_or(self.max_len) }
    }

    /// The oldest dead-letter time (ms since the epoch) that is kept at `now_ms`.
    pub fn min_dead_at(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.max_age.as_millis().min(u128::from(u64::MAX)) as u64)
    }
}

/// An agent's own DLQ retention; `None` keeps the `[bus]` value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DlqOverride {
    pub max_age: Option<Duration>,
    pub max_len: Option<u64>,
}

/// What one retention pass did to a DLQ, and what is left.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DlqTrimmed {
    /// Dropped for being older than `max_age`.
    pub by_age: u64,
    /// Dropped, oldest first, for being beyond `max_len`.
    pub by_len: u64,
    /// Dead letters left.
    pub remaining: u64,
    /// When the oldest remaining one died (ms since the epoch); `None` if none is left.
    pub oldest_at: Option<u64>,
}

impl DlqTrimmed {
    pub fn dropped(&self) -> u64 {
        self.by_age + self.by_len
    }
}

/// The part of an original entry a dead letter keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Original {
    pub text: String,
    /// The original's size in bytes.
    pub bytes: u64,
    pub truncated: bool,
}

/// Keep at most `max_bytes` of `raw` (cut at a character boundary), noting the original size. A DLQ
/// of whole 1 MB entries would fill Redis long before its retention ends.
pub fn keep_original(raw: &str, max_bytes: usize) -> Original {
    let bytes = raw.len() as u64;
    if raw.len() <= max_bytes {
        return Original { text: raw.to_string(), bytes, truncated: false };
    }
    let mut cut = max_bytes;
    while !raw.is_char_boundary(cut) {
        cut -= 1;
    }
    Original { text: raw[..cut].to_string(), bytes, truncated: true }
}

/// The error for a dead letter that is not (or no longer) there.
pub fn not_found(topic: &crate::task::TopicName, r: &DeadLetterRef) -> BusError {
    BusError::NotFound(format!(
        "no {r} in the DLQ of {topic} (replayed, deleted, purged or dropped by retention?); see `genesis dlq list --topic {topic}`"
    ))
}

/// A dead letter's envelope, reset to attempt 1, ready to publish again. A truncated one cannot be:
/// its task is no longer all there.
pub fn replayable(dl: &DeadLetter) -> Result<TaskEnvelope, BusError> {
    if dl.truncated {
        return Err(BusError::Invalid(format!(
            "dead letter {} cannot be replayed: its entry was {} bytes and only the first {} were kept \
             (bus.dlq_max_entry_bytes); publish the task again from its source",
            dl.id,
            dl.envelope_bytes,
            dl.envelope.as_deref().map_or(0, str::len)
        )));
    }
    let raw = dl.envelope.as_deref().unwrap_or("");
    let mut env = TaskEnvelope::decode(raw, usize::MAX).map_err(|e| {
        BusError::Invalid(format!(
            "dead letter {} cannot be replayed: its entry is not a valid task ({e}); inspect it with `genesis dlq list` and publish a corrected task instead",
            dl.id
        ))
    })?;
    env.attempt = 1;
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reference_is_an_entry_id_or_a_task_id() {
        assert_eq!("1718000000000-3".parse(), Ok(DeadLetterRef::Entry("1718000000000-3".into())));
        assert_eq!(" 0-7 ".parse(), Ok(DeadLetterRef::Entry("0-7".into())));
        let id = TaskId::generate();
        assert_eq!(id.to_string().parse(), Ok(DeadLetterRef::Task(id)));
        for bad in ["", "-", "12-", "x-1", "not-a-ulid", "1718000000000"] {
            assert!(bad.parse::<DeadLetterRef>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn truncation_keeps_whole_characters_and_the_size() {
        assert_eq!(keep_original("abc", 3), Original { text: "abc".into(), bytes: 3, truncated: false });
        assert_eq!(keep_original("abcdef", 4), Original { text: "abcd".into(), bytes: 6, truncated: true });
        // "é" is two bytes: a cut inside it moves back to before it.
        assert_eq!(keep_original("aé", 2), Original { text: "a".into(), bytes: 3, truncated: true });
    }

    #[test]
    fn overrides_replace_only_what_they_name() {
        let base = DlqRetention::default();
        let o = DlqOverride { max_age: None, max_len: Some(5) };
        assert_eq!(base.with(&o), DlqRetention { max_age: base.max_age, max_len: 5 });
        assert_eq!(DlqRetention { max_age: Duration::from_secs(10), max_len: 1 }.min_dead_at(25_000), 15_000);
        assert_eq!(base.min_dead_at(5), 0);
    }

    #[test]
    fn a_truncated_dead_letter_says_why_it_cannot_be_replayed() {
        let env = TaskEnvelope::new(
            "genesis.qa".parse().expect("topic"),
            crate::tenant::TenantId::parse("t").expect("tenant"),
            serde_json::json!({}),
        );
        let mut dl = DeadLetter {
            id: "1-0".into(),
            task_id: Some(env.task_id.to_string()),
            topic: "genesis.qa".into(),
            reason: "poison".into(),
            error: "e".into(),
            attempts: 1,
            deliveries: 6,
            history: Vec::new(),
            envelope: Some(env.to_json()),
            envelope_bytes: env.to_json().len() as u64,
            truncated: false,
            source_id: "1-0".into(),
            dead_at: 0,
        };
        assert_eq!(replayable(&dl).expect("replayable").task_id, env.task_id);
        dl.truncated = true;
        let e = replayable(&dl).expect_err("truncated").to_string();
        assert!(e.contains("cannot be replayed") && e.contains("bus.dlq_max_entry_bytes"), "{e}");
        let f = DlqFilter::reason("poison");
        assert!(f.matches(&dl) && !DlqFilter::reason("timeout").matches(&dl) && DlqFilter::default().matches(&dl));
    }
}
