//! The in-process bus's dead-letter queues, with the Redis bus's rules: ids in order of death, lookup by
//! entry id or by task id (through the record's `dlq_id`, else the newest letter of the task),
//! retention by age and then count.

use super::{id_str, parse_id, MemoryBus};
use crate::bus::dlq::{not_found, replayable, DeadLetterRef, DlqFilter, DlqRetention, DlqTrimmed};
use crate::bus::types::{BusError, DeadLetter, TaskStatus};
use crate::task::{now_ms, TaskEnvelope, TopicName};
use std::time::Duration;

impl MemoryBus {
    /// The sequence number of the dead letter `r` names, if it is there.
    fn dlq_seq(&self, topic: &TopicName, r: &DeadLetterRef) -> Option<u64> {
        let mut s = self.state();
        let task_id = match r {
            DeadLetterRef::Entry(id) => return parse_id(id).filter(|q| s.topic(topic).dlq.contains_key(q)),
            DeadLetterRef::Task(t) => t.to_string(),
        };
        let recorded = s.live_result(topic, &task_id).and_then(|rec| rec.dlq_id.as_deref()).and_then(parse_id);
        let dlq = &s.topic(topic).dlq;
        let of_task = |q: &u64| dlq.get(q).is_some_and(|d| d.task_id.as_deref() == Some(task_id.as_str()));
        recorded.filter(of_task).or_else(|| dlq.keys().rev().copied().find(of_task))
    }

    fn dlq_take(&self, topic: &TopicName, r: &DeadLetterRef) -> Result<(u64, DeadLetter), BusError> {
        let seq = self.dlq_seq(topic, r).ok_or_else(|| not_found(topic, r))?;
        let dl = self.state().topic(topic).dlq.get(&seq).cloned().ok_or_else(|| {
            BusError::NotFound(format!("dead letter {} of {topic} was removed meanwhile", id_str(seq)))
        })?;
        Ok((seq, dl))
    }

    pub async fn dlq_list(
        &self,
        topic: &TopicName,
        filter: &DlqFilter,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, BusError> {
        Ok(self.state().topic(topic).dlq.values().filter(|d| filter.matches(d)).take(limit).cloned().collect())
    }

    pub async fn dlq_get(&self, topic: &TopicName, r: &DeadLetterRef) -> Result<Option<DeadLetter>, BusError> {
        Ok(self.dlq_seq(topic, r).and_then(|q| self.state().topic(topic).dlq.get(&q).cloned()))
    }

    pub async fn dlq_replay(
        &self,
        topic: &TopicName,
        r: &DeadLetterRef,
        ttl: Duration,
    ) -> Result<TaskEnvelope, BusError> {
        let (seq, dl) = self.dlq_take(topic, r)?;
        let env = replayable(&dl)?;
        {
            let mut s = self.state();
            s.topic(topic).dlq.remove(&seq);
            s.append(topic, Some(env.to_json()));
            let rec = s.record_of(topic, &env, ttl);
            rec.status = TaskStatus::Queued;
            rec.attempts = 0;
            rec.error = None;
            rec.reason = None;
            rec.dlq_id = None;
            rec.cancel_requested_at = None;
            rec.progress = None;
        }
        self.inner.appended.notify_waiters();
        Ok(env)
    }

    pub async fn dlq_delete(&self, topic: &TopicName, r: &DeadLetterRef) -> Result<DeadLetter, BusError> {
        let (seq, dl) = self.dlq_take(topic, r)?;
        self.state().topic(topic).dlq.remove(&seq);
        Ok(dl)
    }

    pub async fn dlq_purge(&self, topic: &TopicName, filter: &DlqFilter) -> Result<usize, BusError> {
        let mut s = self.state();
        let dlq = &mut s.topic(topic).dlq;
        let before = dlq.len();
        dlq.retain(|_, d| !filter.matches(d));
        Ok(before - dlq.len())
    }

    pub async fn dlq_trim(&self, topic: &TopicName, retention: &DlqRetention) -> Result<DlqTrimmed, BusError> {
        let min_dead_at = retention.min_dead_at(now_ms());
        let mut s = self.state();
        let dlq = &mut s.topic(topic).dlq;
        let before = dlq.len();
        dlq.retain(|_, d| d.dead_at >= min_dead_at);
        let by_age = before - dlq.len();
        let excess = dlq.len().saturating_sub(usize::try_from(retention.max_len).unwrap_or(usize::MAX));
        let doomed: Vec<u64> = dlq.keys().take(excess).copied().collect();
        for q in &doomed {
            dlq.remove(q);
        }
        Ok(DlqTrimmed {
            by_age: by_age as u64,
            by_len: doomed.len() as u64,
            remaining: dlq.len() as u64,
            oldest_at: dlq.values().next().map(|d| d.dead_at),
        })
    }
}
