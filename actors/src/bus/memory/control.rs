//! Progress reports, cancel requests and rate limits on the in-process bus: the rules of the Redis
//! bus's `progress.lua`, `cancel.lua` and `rate.lua`, in memory.

use super::{MemoryBus, State};
use crate::bus::types::{BusError, CancelRequest, TaskRecord, TaskStatus};
use crate::policy::rate::{Gcra, RateDecision};
use crate::roster::RateLimit;
use crate::task::{now_ms, TopicName};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// As on Redis: a node's cancel requests are kept this long after the last one.
const CANCELS_TTL: Duration = Duration::from_secs(600);

impl State {
    /// A live record, to change in place: neither re-created nor given a new expiry (as `HSET` on an
    /// existing hash keeps its TTL).
    fn live_record_mut(&mut self, t: &TopicName, task_id: &str) -> Option<&mut TaskRecord> {
        let now = Instant::now();
        self.results.get_mut(&(t.clone(), task_id.to_string())).filter(|(_, exp)| *exp > now).map(|(r, _)| r)
    }
}

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

impl MemoryBus {
    pub async fn set_progress(
        &self,
        topic: &TopicName,
        task_id: &str,
        progress: &serde_json::Value,
    ) -> Result<bool, BusError> {
        let stored = crate::bus::progress::stored(progress);
        let mut s = self.state();
        let Some(r) = s.live_record_mut(topic, task_id).filter(|r| !r.status.is_final()) else { return Ok(false) };
        r.progress = Some(serde_json::from_str(&stored).unwrap_or(serde_json::Value::String(stored)));
        r.updated_at = now_ms();
        Ok(true)
    }

    pub async fn cancel(&self, topic: &TopicName, task_id: &str) -> Result<Option<CancelRequest>, BusError> {
        let mut s = self.state();
        let Some(r) = s.live_record_mut(topic, task_id) else { return Ok(None) };
        if r.status.is_final() {
            return Ok(Some(CancelRequest { status: r.status, node: r.node.clone(), requested_at: None }));
        }
        let at = match r.cancel_requested_at {
            Some(at) => at,
            None => {
                let now = now_ms();
                r.cancel_requested_at = Some(now);
                r.updated_at = now;
                now
            }
        };
        let req = CancelRequest { status: r.status, node: r.node.clone(), requested_at: Some(at) };
        if let (TaskStatus::Running, Some(node)) = (req.status, &req.node) {
            let (list, exp) = s.cancels.entry(node.clone()).or_insert_with(|| (Default::default(), Instant::now()));
            if *exp <= Instant::now() {
                list.clear();
            }
            list.push_back(task_id.to_string());
            *exp = Instant::now() + CANCELS_TTL;
        }
        Ok(Some(req))
    }

    pub async fn take_cancels(&self, node_id: &str, limit: usize) -> Result<Vec<String>, BusError> {
        let mut s = self.state();
        let Some((list, exp)) = s.cancels.get_mut(node_id) else { return Ok(Vec::new()) };
        if *exp <= Instant::now() {
            s.cancels.remove(node_id);
            return Ok(Vec::new());
        }
        let n = limit.max(1).min(list.len());
        let taken: Vec<String> = list.drain(..n).collect();
        if list.is_empty() {
            s.cancels.remove(node_id);
        }
        Ok(taken)
    }

    pub async fn rate_acquire(&self, agent: &str, limit: &RateLimit) -> Result<RateDecision, BusError> {
        let gcra = Gcra::new(limit);
        let mut s = self.state();
        let now = now_us();
        let (decision, tat) = gcra.decide(now, s.rates.get(agent).copied());
        if let Some(tat) = tat {
            s.rates.insert(agent.to_string(), tat);
        }
        Ok(decision)
    }
}
