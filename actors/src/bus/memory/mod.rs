//! The in-process bus: the same contract as the Redis bus (consumer groups with pending entries and
//! delivery counters, fenced atomic outcomes, delayed retries, dead letters, results), held in one
//! process's memory. Nothing survives the process: it exists so the service runs on a fresh machine
//! with no Redis, and so the conformance suite can check both buses against one contract.

mod control;
mod dlq;
mod reader;

pub use reader::MemoryReader;

use super::dlq::{keep_original, DEFAULT_MAX_ENTRY_BYTES};
use super::types::*;
use crate::task::{now_ms, TaskEnvelope, TopicName, ENVELOPE_FIELD};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

#[derive(Clone)]
pub struct MemoryBus {
    inner: Arc<Inner>,
    /// `bus.dlq_max_entry_bytes`, as on the Redis bus.
    dlq_entry_limit: usize,
}

impl MemoryBus {
    /// The workflow store that goes with this bus: every handle of one bus shares it.
    pub fn workflows(&self) -> crate::workflow::store::memory::MemoryStore {
        self.inner.workflows.clone()
    }

    /// The API keys that go with this bus (`apikey`): every handle of one bus shares them.
    pub fn api_keys(&self) -> crate::apikey::memory::MemoryKeys {
        self.inner.api_keys.clone()
    }
}

impl Default for MemoryBus {
    fn default() -> Self {
        MemoryBus { inner: Arc::default(), dlq_entry_limit: DEFAULT_MAX_ENTRY_BYTES }
    }
}

#[derive(Default)]
struct Inner {
    state: Mutex<State>,
    appended: Notify,
    /// The workflows of this process (`workflow::store`), kept with the bus as Redis keeps both.
    workflows: crate::workflow::store::memory::MemoryStore,
    /// The API keys of this process (`apikey`), likewise.
    api_keys: crate::apikey::memory::MemoryKeys,
}

#[derive(Default)]
struct State {
    topics: HashMap<TopicName, Topic>,
    results: HashMap<(TopicName, String), (TaskRecord, Instant)>,
    /// Node id → (info, lease expiry, instance holding it).
    nodes: HashMap<String, (String, Instant, String)>,
    /// Node id → (cancel requests for tasks it runs, expiry), as the Redis bus's `genesis:cancel:<node>`.
    cancels: HashMap<String, (std::collections::VecDeque<String>, Instant)>,
    /// Agent → its rate limit's theoretical arrival time (µs since the epoch).
    rates: HashMap<String, u64>,
    seq: u64,
    writes: u64,
}

#[derive(Default)]
struct Topic {
    entries: BTreeMap<u64, Option<String>>,
    last_delivered: u64,
    pending: BTreeMap<u64, Pending>,
    consumers: BTreeSet<String>,
    dlq: BTreeMap<u64, DeadLetter>,
    retries: BTreeMap<(u64, u64), String>,
}

struct Pending {
    consumer: String,
    deliveries: u32,
    delivered_at: Instant,
}

fn id_str(seq: u64) -> String {
    format!("0-{seq}")
}

fn parse_id(id: &str) -> Option<u64> {
    id.strip_prefix("0-")?.parse().ok()
}

impl State {
    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn topic(&mut self, t: &TopicName) -> &mut Topic {
        self.topics.entry(t.clone()).or_default()
    }

    fn append(&mut self, t: &TopicName, raw: Option<String>) -> String {
        let seq = self.next_seq();
        self.topic(t).entries.insert(seq, raw);
        id_str(seq)
    }

    fn result_mut(&mut self, t: &TopicName, task_id: &str, ttl: Duration) -> &mut TaskRecord {
        self.writes += 1;
        if self.writes.is_multiple_of(4096) {
            let now = Instant::now();
            self.results.retain(|_, (_, exp)| *exp > now);
        }
        let entry = self
            .results
            .entry((t.clone(), task_id.to_string()))
            .or_insert_with(|| (TaskRecord::new(t.as_str(), task_id), Instant::now()));
        entry.1 = Instant::now() + ttl;
        entry.0.updated_at = now_ms();
        &mut entry.0
    }

    /// The record of `env`'s task, with the identity every write states (as the scripts do).
    fn record_of(&mut self, t: &TopicName, env: &TaskEnvelope, ttl: Duration) -> &mut TaskRecord {
        let r = self.result_mut(t, &env.task_id.to_string(), ttl);
        r.tenant_id = Some(env.tenant_id.to_string());
        r.correlation_id = Some(env.correlation_id.clone());
        r.parent = env.parent_id().map(|p| p.to_string());
        if let Some(w) = &env.workflow {
            r.workflow_id = Some(w.id.clone());
            r.workflow_step = Some(w.step.clone());
        }
        r
    }

    fn live_result(&self, t: &TopicName, task_id: &str) -> Option<&TaskRecord> {
        self.results.get(&(t.clone(), task_id.to_string())).filter(|(_, exp)| *exp > Instant::now()).map(|(r, _)| r)
    }

    /// Pending entry `seq` if it is held by `consumer`.
    fn owned(&mut self, t: &TopicName, seq: u64, consumer: &str) -> Option<&mut Pending> {
        self.topic(t).pending.get_mut(&seq).filter(|p| p.consumer == consumer)
    }
}

impl MemoryBus {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the maps half-updated in a way that matters more
        // than losing the process; recover the guard rather than poisoning every later call.
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// See [`crate::bus::Bus::with_dlq_entry_limit`].
    pub fn with_dlq_entry_limit(mut self, bytes: usize) -> Self {
        self.dlq_entry_limit = bytes;
        self
    }

    pub fn describe(&self) -> String {
        "memory (in-process, NOT durable: pending work is lost when the process exits)".into()
    }

    pub fn reader(&self, consumer: &str) -> MemoryReader {
        MemoryReader { bus: self.clone(), consumer: consumer.to_string() }
    }

    pub async fn ensure_topics(&self, topics: &[TopicName]) -> Result<(), BusError> {
        let mut s = self.state();
        for t in topics {
            s.topic(t);
        }
        Ok(())
    }

    pub async fn publish(&self, env: &TaskEnvelope, ttl: Duration) -> Result<Published, BusError> {
        let id = env.task_id.to_string();
        let appended = {
            let mut s = self.state();
            if s.live_result(&env.topic, &id).is_some() {
                return Ok(Published::Duplicate);
            }
            let entry = s.append(&env.topic, Some(env.to_json()));
            let r = s.record_of(&env.topic, env, ttl);
            r.status = TaskStatus::Queued;
            entry
        };
        self.inner.appended.notify_waiters();
        Ok(Published::Appended(appended))
    }

    pub async fn append_raw(&self, topic: &TopicName, fields: &[(&str, &str)]) -> Result<String, BusError> {
        let raw = fields.iter().find(|(k, _)| *k == ENVELOPE_FIELD).map(|(_, v)| v.to_string());
        let id = self.state().append(topic, raw);
        self.inner.appended.notify_waiters();
        Ok(id)
    }

    fn take_new(&self, consumer: &str, topic: &TopicName, count: usize) -> Vec<Delivery> {
        let mut s = self.state();
        let t = s.topic(topic);
        let ids: Vec<(u64, Option<String>)> =
            t.entries.range(t.last_delivered + 1..).take(count.max(1)).map(|(k, v)| (*k, v.clone())).collect();
        // Like XREADGROUP `>`: a consumer becomes known to the group with the first entry it is handed.
        if !ids.is_empty() {
            t.consumers.insert(consumer.to_string());
        }
        let now = Instant::now();
        ids.into_iter()
            .map(|(seq, raw)| {
                t.last_delivered = seq;
                t.pending.insert(seq, Pending { consumer: consumer.to_string(), deliveries: 1, delivered_at: now });
                Delivery { topic: topic.clone(), entry_id: id_str(seq), raw, deliveries: 1 }
            })
            .collect()
    }

    pub async fn begin(
        &self,
        consumer: &str,
        items: &[(&Delivery, &TaskEnvelope)],
        ttl: Duration,
    ) -> Result<Vec<Begun>, BusError> {
        let node = super::keys::node_of_consumer(consumer).to_string();
        let mut s = self.state();
        Ok(items
            .iter()
            .map(|(d, env)| {
                let id = env.task_id.to_string();
                // The same fence as `begin.lua`: no record where the entry is not pending for `consumer`.
                let owned = parse_id(&d.entry_id).is_some_and(|seq| s.owned(&d.topic, seq, consumer).is_some());
                if !owned {
                    Begun::NotOwner
                } else if s.live_result(&d.topic, &id).map(|r| r.status) == Some(TaskStatus::Succeeded) {
                    if let Some(seq) = parse_id(&d.entry_id) {
                        s.topic(&d.topic).pending.remove(&seq);
                    }
                    Begun::AlreadySucceeded
                } else {
                    let r = s.record_of(&d.topic, env, ttl);
                    r.status = TaskStatus::Running;
                    r.attempts = env.attempt;
                    r.node = Some(node.clone());
                    r.worker = Some(consumer.to_string());
                    r.started_at = Some(r.updated_at);
                    if r.cancel_requested_at.is_some() {
                        Begun::CancelRequested
                    } else {
                        Begun::Run
                    }
                }
            })
            .collect())
    }

    pub async fn complete(
        &self,
        consumer: &str,
        d: &Delivery,
        c: &Completion,
        ttl: Duration,
    ) -> Result<Completed, BusError> {
        let seq = parse_id(&d.entry_id).ok_or_else(|| BusError::Invalid(format!("bad entry id {}", d.entry_id)))?;
        let mut s = self.state();
        if s.owned(&d.topic, seq, consumer).is_none() {
            return Ok(Completed::NotOwner);
        }
        s.topic(&d.topic).pending.remove(&seq);
        let now = now_ms();
        match c {
            Completion::Succeeded { task, result } => {
                let r = s.record_of(&d.topic, task, ttl);
                r.status = TaskStatus::Succeeded;
                r.attempts = task.attempt;
                r.result = Some(result.clone());
                r.error = None;
                r.reason = None;
            }
            Completion::Retry { next, delay, error } => {
                let attempt = next.attempt.saturating_sub(1);
                let r = s.record_of(&d.topic, next, ttl);
                r.status = TaskStatus::Retrying;
                r.attempts = attempt;
                r.error = Some(error.clone());
                r.history.push(HistoryItem { attempt, error: error.clone(), at: now });
                let due = now + delay.as_millis() as u64;
                let seq = s.next_seq();
                s.topic(&d.topic).retries.insert((due, seq), next.to_json());
            }
            Completion::Dead { task, reason, error } => {
                let (task_id, attempts, history) = match task {
                    Some(task) => {
                        let r = s.record_of(&d.topic, task, ttl);
                        r.status = TaskStatus::Dead;
                        r.attempts = task.attempt;
                        r.error = Some(error.clone());
                        r.reason = Some(reason.clone());
                        r.history.push(HistoryItem { attempt: task.attempt, error: error.clone(), at: now });
                        (Some(task.task_id.to_string()), task.attempt, r.history.clone())
                    }
                    None => (None, 0, vec![HistoryItem { attempt: 0, error: error.clone(), at: now }]),
                };
                let id = s.next_seq();
                if let Some(task) = task {
                    s.record_of(&d.topic, task, ttl).dlq_id = Some(id_str(id));
                }
                let original = keep_original(d.raw.as_deref().unwrap_or_default(), self.dlq_entry_limit);
                let dl = DeadLetter {
                    id: id_str(id),
                    task_id,
                    topic: d.topic.to_string(),
                    reason: reason.clone(),
                    error: error.clone(),
                    attempts,
                    deliveries: d.deliveries,
                    history,
                    envelope: (!original.text.is_empty()).then_some(original.text),
                    envelope_bytes: original.bytes,
                    truncated: original.truncated,
                    source_id: d.entry_id.clone(),
                    dead_at: now,
                };
                s.topic(&d.topic).dlq.insert(id, dl);
            }
        }
        Ok(Completed::Done)
    }

    pub async fn redeliver(
        &self,
        consumer: &str,
        topic: &TopicName,
        entry_id: &str,
    ) -> Result<Option<Delivery>, BusError> {
        let Some(seq) = parse_id(entry_id) else { return Ok(None) };
        let mut s = self.state();
        let Some(p) = s.owned(topic, seq, consumer) else { return Ok(None) };
        p.deliveries += 1;
        p.delivered_at = Instant::now();
        let n = p.deliveries;
        let raw = s.topic(topic).entries.get(&seq).cloned().flatten();
        Ok(Some(Delivery { topic: topic.clone(), entry_id: entry_id.to_string(), raw, deliveries: n }))
    }

    pub async fn move_due_retries(&self, topic: &TopicName, limit: usize) -> Result<usize, BusError> {
        let moved = {
            let mut s = self.state();
            let now = now_ms();
            let due: Vec<(u64, u64)> =
                s.topic(topic).retries.range(..(now + 1, 0)).take(limit).map(|(k, _)| *k).collect();
            for k in &due {
                if let Some(env) = s.topic(topic).retries.remove(k) {
                    s.append(topic, Some(env));
                }
            }
            due.len()
        };
        if moved > 0 {
            self.inner.appended.notify_waiters();
        }
        Ok(moved)
    }

    pub async fn trim(&self, topic: &TopicName) -> Result<usize, BusError> {
        let mut s = self.state();
        let t = s.topic(topic);
        let threshold = t.pending.keys().next().copied().unwrap_or(u64::MAX).min(t.last_delivered);
        let keep = t.entries.split_off(&threshold);
        let removed = t.entries.len();
        t.entries = keep;
        Ok(removed)
    }

    pub async fn heartbeat(
        &self,
        node_id: &str,
        instance: &str,
        ttl: Duration,
        info: &str,
        dead: &str,
    ) -> Result<Lease, BusError> {
        let now = Instant::now();
        let mut s = self.state();
        if let Some((held_info, exp, holder)) = s.nodes.get(node_id) {
            if *exp > now && holder != instance && holder != dead {
                return Ok(Lease::Taken { holder: held_info.clone() });
            }
        }
        s.nodes.insert(node_id.to_string(), (info.to_string(), now + ttl, instance.to_string()));
        Ok(Lease::Held)
    }

    pub async fn clear_heartbeat(&self, node_id: &str, instance: &str) -> Result<(), BusError> {
        let mut s = self.state();
        if s.nodes.get(node_id).is_some_and(|(_, _, holder)| holder == instance) {
            s.nodes.remove(node_id);
        }
        Ok(())
    }

    pub async fn live_nodes(&self) -> Result<Vec<(String, String)>, BusError> {
        let now = Instant::now();
        let mut v: Vec<_> = self
            .state()
            .nodes
            .iter()
            .filter(|(_, (_, exp, _))| *exp > now)
            .map(|(k, (i, _, _))| (k.clone(), i.clone()))
            .collect();
        v.sort();
        Ok(v)
    }

    pub async fn reclaim_dead(
        &self,
        consumer: &str,
        topic: &TopicName,
        min_idle: Duration,
        limit: usize,
    ) -> Result<Vec<Delivery>, BusError> {
        let mut s = self.state();
        let now = Instant::now();
        let alive: BTreeSet<String> =
            s.nodes.iter().filter(|(_, (_, exp, _))| *exp > now).map(|(k, _)| k.clone()).collect();
        let me = super::keys::node_of_consumer(consumer).to_string();
        let t = s.topic(topic);
        let mut out = Vec::new();
        for (seq, p) in t.pending.iter_mut() {
            let node = super::keys::node_of_consumer(&p.consumer);
            if out.len() >= limit || node == me || alive.contains(node) || now.duration_since(p.delivered_at) < min_idle
            {
                continue;
            }
            p.consumer = consumer.to_string();
            p.deliveries += 1;
            p.delivered_at = now;
            let raw = t.entries.get(seq).cloned().flatten();
            out.push(Delivery { topic: topic.clone(), entry_id: id_str(*seq), raw, deliveries: p.deliveries });
        }
        Ok(out)
    }

    pub async fn task(&self, topic: &TopicName, task_id: &str) -> Result<Option<TaskRecord>, BusError> {
        Ok(self.state().live_result(topic, task_id).cloned())
    }

    pub async fn stats(&self, topic: &TopicName) -> Result<TopicStats, BusError> {
        let mut s = self.state();
        let t = s.topic(topic);
        Ok(TopicStats {
            topic: topic.to_string(),
            length: t.entries.len() as u64,
            pending: t.pending.len() as u64,
            lag: t.entries.range(t.last_delivered + 1..).count() as u64,
            consumers: t.consumers.len() as u64,
            retrying: t.retries.len() as u64,
            dlq: t.dlq.len() as u64,
        })
    }

    pub async fn stale_own(
        &self,
        consumer: &str,
        topic: &TopicName,
        min_idle: Duration,
        limit: usize,
    ) -> Result<Vec<String>, BusError> {
        let mut s = self.state();
        let t = s.topic(topic);
        Ok(t.pending
            .iter()
            .filter(|(_, p)| p.consumer == consumer && p.delivered_at.elapsed() >= min_idle)
            .take(limit)
            .map(|(seq, _)| id_str(*seq))
            .collect())
    }

    pub async fn ping(&self) -> Result<(), BusError> {
        Ok(())
    }
}
