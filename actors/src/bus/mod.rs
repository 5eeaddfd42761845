//! The bus: the durable log of tasks, their pending entries, delayed retries, dead letters and results.
//!
//! Two implementations with one contract (`docs/semantics.md`): [`redis::RedisBus`] (Redis Streams and
//! consumer groups — the distributed engine shared by every node) and [`memory::MemoryBus`] (in-process,
//! same semantics, not durable). [`Bus`] dispatches between them statically; the conformance suite in
//! `tests/` runs against both.
//!
//! Every outcome of a delivery (success, retry, dead letter) is written in one atomic step together with
//! the acknowledgement, and only if the entry is still pending for the consumer that ran it (a fence
//! against a node that was presumed dead and came back).

pub mod dlq;
pub mod keys;
pub mod memory;
pub mod progress;
pub mod redis;
pub mod retrying;
mod types;

pub use dlq::{DeadLetterRef, DlqFilter, DlqOverride, DlqRetention, DlqTrimmed};
pub use types::*;

use crate::policy::rate::RateDecision;
use crate::roster::RateLimit;
use crate::task::{TaskEnvelope, TopicName};
use std::time::Duration;

/// The group every node's consumers belong to.
pub const GROUP: &str = "genesis";

/// A handle to the bus; cheap to clone.
#[derive(Clone)]
pub enum Bus {
    Redis(redis::RedisBus),
    Memory(memory::MemoryBus),
}

macro_rules! dispatch {
    ($self:ident, $b:ident => $e:expr) => {
        match $self {
            Bus::Redis($b) => $e,
            Bus::Memory($b) => $e,
        }
    };
}

impl Bus {
    pub fn is_durable(&self) -> bool {
        matches!(self, Bus::Redis(_))
    }

    pub fn describe(&self) -> String {
        dispatch!(self, b => b.describe())
    }

    /// Create the consumer group of each topic if missing (idempotent).
    pub async fn ensure_topics(&self, topics: &[TopicName]) -> Result<(), BusError> {
        dispatch!(self, b => b.ensure_topics(topics).await)
    }

    /// Append a new task and record it as `queued`. Idempotent per task id: a task id that already has a
    /// result record is not appended again (a re-published deterministic reply costs nothing).
    pub async fn publish(&self, env: &TaskEnvelope, result_ttl: Duration) -> Result<Published, BusError> {
        dispatch!(self, b => b.publish(env, result_ttl).await)
    }

    /// Append raw fields as an entry, bypassing the envelope. For tools and tests that must put
    /// malformed entries on a topic; the runtime dead-letters what it cannot decode.
    pub async fn append_raw(&self, topic: &TopicName, fields: &[(&str, &str)]) -> Result<String, BusError> {
        dispatch!(self, b => b.append_raw(topic, fields).await)
    }

    /// A reader for one consumer. On Redis it owns a dedicated connection, because a blocking read holds
    /// its connection for the whole wait.
    pub async fn reader(&self, consumer: &str) -> Result<Reader, BusError> {
        Ok(match self {
            Bus::Redis(b) => Reader::Redis(b.reader(consumer).await?),
            Bus::Memory(b) => Reader::Memory(b.reader(consumer)),
        })
    }

    /// Mark decoded deliveries as running. Returns, per item, what to do with it ([`Begun`]): run it;
    /// nothing, because its result already says `succeeded` (the entry has been acknowledged without
    /// running again); dead-letter it as `cancelled`, because a cancel was requested — read in this
    /// same atomic step, so a request made before it is never missed; or nothing, because the entry is
    /// not pending for `consumer` (fenced like an outcome: no record is written where its entry is not).
    pub async fn begin(
        &self,
        consumer: &str,
        items: &[(&Delivery, &TaskEnvelope)],
        ttl: Duration,
    ) -> Result<Vec<Begun>, BusError> {
        dispatch!(self, b => b.begin(consumer, items, ttl).await)
    }

    /// Write the outcome of a delivery atomically with its acknowledgement. Returns
    /// [`Completed::NotOwner`] (and writes nothing) if the entry is no longer pending for `consumer`.
    pub async fn complete(
        &self,
        consumer: &str,
        delivery: &Delivery,
        completion: &Completion,
        ttl: Duration,
    ) -> Result<Completed, BusError> {
        dispatch!(self, b => b.complete(consumer, delivery, completion, ttl).await)
    }

    /// Take an entry this consumer holds again (after its worker crashed): increments Redis's delivery
    /// counter and returns the fresh delivery, or `None` if the entry is no longer ours to run.
    pub async fn redeliver(
        &self,
        consumer: &str,
        topic: &TopicName,
        entry_id: &str,
    ) -> Result<Option<Delivery>, BusError> {
        dispatch!(self, b => b.redeliver(consumer, topic, entry_id).await)
    }

    /// Move retries that are due back into their stream; returns how many moved.
    pub async fn move_due_retries(&self, topic: &TopicName, limit: usize) -> Result<usize, BusError> {
        dispatch!(self, b => b.move_due_retries(topic, limit).await)
    }

    /// Trim acknowledged entries (MINID below the oldest pending entry); returns how many were removed.
    pub async fn trim(&self, topic: &TopicName) -> Result<usize, BusError> {
        dispatch!(self, b => b.trim(topic).await)
    }

    /// Write this node's liveness key with a time to live, if this process (`instance`) holds the node
    /// id or nobody live does. Two processes can never share a node id: the second is told who holds it.
    pub async fn heartbeat(&self, node_id: &str, instance: &str, ttl: Duration, info: &str) -> Result<Lease, BusError> {
        dispatch!(self, b => b.heartbeat(node_id, instance, ttl, info, "").await)
    }

    /// [`Bus::heartbeat`], replacing the lease of `dead_instance` (a holder known to have died, e.g. its
    /// process is gone from this host) without waiting for it to expire.
    pub async fn take_over(
        &self,
        node_id: &str,
        dead_instance: &str,
        instance: &str,
        ttl: Duration,
        info: &str,
    ) -> Result<Lease, BusError> {
        dispatch!(self, b => b.heartbeat(node_id, instance, ttl, info, dead_instance).await)
    }

    /// Remove this node's liveness key (clean shutdown), so others need not wait for it to expire.
    pub async fn clear_heartbeat(&self, node_id: &str, instance: &str) -> Result<(), BusError> {
        dispatch!(self, b => b.clear_heartbeat(node_id, instance).await)
    }

    /// Nodes whose liveness key exists, with the info they wrote.
    pub async fn live_nodes(&self) -> Result<Vec<(String, String)>, BusError> {
        dispatch!(self, b => b.live_nodes().await)
    }

    /// Claim the pending entries of consumers whose node is not alive, idle for at least `min_idle`,
    /// for `consumer`. Returns the claimed deliveries (delivery counters incremented).
    pub async fn reclaim_dead(
        &self,
        consumer: &str,
        topic: &TopicName,
        min_idle: Duration,
        limit: usize,
    ) -> Result<Vec<Delivery>, BusError> {
        dispatch!(self, b => b.reclaim_dead(consumer, topic, min_idle, limit).await)
    }

    /// Entry ids pending for `consumer` itself and idle for at least `min_idle` (the orphan sweep:
    /// entries this node owns in Redis but none of its workers holds). Does not claim them.
    pub async fn stale_own(
        &self,
        consumer: &str,
        topic: &TopicName,
        min_idle: Duration,
        limit: usize,
    ) -> Result<Vec<String>, BusError> {
        dispatch!(self, b => b.stale_own(consumer, topic, min_idle, limit).await)
    }

    pub async fn task(&self, topic: &TopicName, task_id: &str) -> Result<Option<TaskRecord>, BusError> {
        dispatch!(self, b => b.task(topic, task_id).await)
    }

    /// Keep `progress` (bounded: [`progress::stored`]) and `updated_at` on the task's record, only while
    /// the record exists and is not final. Returns whether it was written.
    pub async fn set_progress(
        &self,
        topic: &TopicName,
        task_id: &str,
        progress: &serde_json::Value,
    ) -> Result<bool, BusError> {
        dispatch!(self, b => b.set_progress(topic, task_id, progress).await)
    }

    /// Request the cancel of a task: `cancel_requested_at` is set on its record (unless it is missing:
    /// `None`, or final: nothing changes, and the answer says which status it had). A queued or
    /// retrying task is dead-lettered as `cancelled` at its next `begin`; a running one is also put on
    /// its node's list of cancel requests ([`Bus::take_cancels`]), whose canceller stops the attempt.
    pub async fn cancel(&self, topic: &TopicName, task_id: &str) -> Result<Option<CancelRequest>, BusError> {
        dispatch!(self, b => b.cancel(topic, task_id).await)
    }

    /// Take (remove and return) up to `limit` cancel requests for tasks running on `node_id`, oldest
    /// first.
    pub async fn take_cancels(&self, node_id: &str, limit: usize) -> Result<Vec<String>, BusError> {
        dispatch!(self, b => b.take_cancels(node_id, limit).await)
    }

    /// Ask `agent`'s rate limit, shared by every node on this bus, for one slot now (GCRA,
    /// [`crate::policy::rate`]; on Redis one key per agent and Redis's clock). A refusal takes nothing
    /// and says how long to wait.
    pub async fn rate_acquire(&self, agent: &str, limit: &RateLimit) -> Result<RateDecision, BusError> {
        dispatch!(self, b => b.rate_acquire(agent, limit).await)
    }

    pub async fn stats(&self, topic: &TopicName) -> Result<TopicStats, BusError> {
        dispatch!(self, b => b.stats(topic).await)
    }

    /// Dead letters of a topic matching `filter`, oldest first, at most `limit`.
    pub async fn dlq_list(
        &self,
        topic: &TopicName,
        filter: &DlqFilter,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, BusError> {
        dispatch!(self, b => b.dlq_list(topic, filter, limit).await)
    }

    /// One dead letter, by its entry id or by its task id (the task's newest dead letter).
    pub async fn dlq_get(&self, topic: &TopicName, id: &DeadLetterRef) -> Result<Option<DeadLetter>, BusError> {
        dispatch!(self, b => b.dlq_get(topic, id).await)
    }

    /// Put a dead letter back on its topic as attempt 1 (status `queued`) and remove it from the DLQ.
    /// A truncated dead letter cannot be replayed ([`dlq::replayable`]).
    pub async fn dlq_replay(
        &self,
        topic: &TopicName,
        id: &DeadLetterRef,
        ttl: Duration,
    ) -> Result<TaskEnvelope, BusError> {
        dispatch!(self, b => b.dlq_replay(topic, id, ttl).await)
    }

    /// Remove one dead letter for good; returns it.
    pub async fn dlq_delete(&self, topic: &TopicName, id: &DeadLetterRef) -> Result<DeadLetter, BusError> {
        dispatch!(self, b => b.dlq_delete(topic, id).await)
    }

    /// Delete the dead letters of a topic matching `filter`; returns how many were removed.
    pub async fn dlq_purge(&self, topic: &TopicName, filter: &DlqFilter) -> Result<usize, BusError> {
        dispatch!(self, b => b.dlq_purge(topic, filter).await)
    }

    /// Apply a retention to a topic's DLQ (by age, then by count: XTRIM MINID, then MAXLEN).
    pub async fn dlq_trim(&self, topic: &TopicName, retention: &DlqRetention) -> Result<DlqTrimmed, BusError> {
        dispatch!(self, b => b.dlq_trim(topic, retention).await)
    }

    /// This handle, keeping at most `bytes` of an original entry in a dead letter
    /// (`bus.dlq_max_entry_bytes`; [`dlq::DEFAULT_MAX_ENTRY_BYTES`] unless set).
    pub fn with_dlq_entry_limit(self, bytes: usize) -> Bus {
        match self {
            Bus::Redis(b) => Bus::Redis(b.with_dlq_entry_limit(bytes)),
            Bus::Memory(b) => Bus::Memory(b.with_dlq_entry_limit(bytes)),
        }
    }

    /// Round-trip check, for readiness.
    pub async fn ping(&self) -> Result<(), BusError> {
        dispatch!(self, b => b.ping().await)
    }
}

/// A consumer's reader of one or more topics.
pub enum Reader {
    Redis(redis::RedisReader),
    Memory(memory::MemoryReader),
}

impl Reader {
    /// Read up to `count` new entries, waiting up to `block` for the first one.
    pub async fn read_new(
        &mut self,
        topic: &TopicName,
        count: usize,
        block: Duration,
    ) -> Result<Vec<Delivery>, BusError> {
        match self {
            Reader::Redis(r) => r.read_new(topic, count, block).await,
            Reader::Memory(r) => r.read_new(topic, count, block).await,
        }
    }

    /// Read up to `count` of this consumer's own pending entries with ids after `after` ("0" for all),
    /// incrementing their delivery counters. Used when a node (or a fetcher) starts.
    pub async fn read_pending(
        &mut self,
        topic: &TopicName,
        after: &str,
        count: usize,
    ) -> Result<Vec<Delivery>, BusError> {
        match self {
            Reader::Redis(r) => r.read_pending(topic, after, count).await,
            Reader::Memory(r) => r.read_pending(topic, after, count).await,
        }
    }
}
