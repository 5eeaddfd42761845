//! Operating on tasks while they run: progress reports, cancel requests (and their delivery to the
//! node that runs the task), and the agents' shared rate limits. See [`crate::bus::Bus`] for the
//! contract of each.

use super::args::{CancelArgs, ProgressArgs, RateArgs};
use super::reply::{int, items, text};
use super::RedisBus;
use crate::bus::keys;
use crate::bus::types::{BusError, CancelRequest, TaskStatus};
use crate::policy::rate::{Gcra, RateDecision};
use crate::roster::RateLimit;
use crate::task::TopicName;
use redis::Value;
use std::time::Duration;

/// How long a node's list of cancel requests outlives its last request: a node that has not polled it
/// for this long is dead, and its tasks' next `begin` (on whichever node reclaims them) reads the flag
/// on the record instead.
pub(crate) const CANCELS_TTL: Duration = Duration::from_secs(600);

impl RedisBus {
    pub async fn set_progress(
        &self,
        topic: &TopicName,
        task_id: &str,
        progress: &serde_json::Value,
    ) -> Result<bool, BusError> {
        let text = crate::bus::progress::stored(progress);
        let args = ProgressArgs { topic, task_id, progress: &text };
        let n: i64 = self.inner.scripts.progress.call(&args).invoke_async(&mut self.conn()).await?;
        Ok(n == 1)
    }

    pub async fn cancel(&self, topic: &TopicName, task_id: &str) -> Result<Option<CancelRequest>, BusError> {
        let mut conn = self.conn();
        let v: Value = self.inner.scripts.cancel.call(&CancelArgs { topic, task_id }).invoke_async(&mut conn).await?;
        if matches!(v, Value::Nil) {
            return Ok(None);
        }
        let parts = items(v);
        let get = |i: usize| parts.get(i).and_then(text).filter(|s| !s.is_empty());
        let status = get(0)
            .as_deref()
            .and_then(TaskStatus::parse)
            .ok_or_else(|| BusError::Protocol(format!("cancel of task {task_id}: no valid status")))?;
        let req = CancelRequest { status, node: get(1), requested_at: get(2).and_then(|s| s.parse().ok()) };
        if let (TaskStatus::Running, Some(node)) = (status, &req.node) {
            // A second step (another slot on a cluster): if this process dies in between, the flag stands
            // and the task's next delivery is cancelled at `begin`.
            self.push_cancel(node, task_id).await?;
        }
        Ok(Some(req))
    }

    async fn push_cancel(&self, node: &str, task_id: &str) -> Result<(), BusError> {
        let key = keys::cancels(node);
        let mut pipe = redis::pipe();
        pipe.cmd("RPUSH").arg(&key).arg(task_id).ignore();
        pipe.cmd("PEXPIRE").arg(&key).arg(CANCELS_TTL.as_millis() as u64).ignore();
        let _: () = pipe.query_async(&mut self.conn()).await?;
        Ok(())
    }

    pub async fn take_cancels(&self, node_id: &str, limit: usize) -> Result<Vec<String>, BusError> {
        let v: Value =
            redis::cmd("LPOP").arg(keys::cancels(node_id)).arg(limit.max(1)).query_async(&mut self.conn()).await?;
        Ok(items(v).iter().filter_map(text).collect())
    }

    pub async fn rate_acquire(&self, agent: &str, limit: &RateLimit) -> Result<RateDecision, BusError> {
        let gcra = Gcra::new(limit);
        let v: Value =
            self.inner.scripts.rate.call(&RateArgs { agent, gcra: &gcra }).invoke_async(&mut self.conn()).await?;
        let wait_us = int(&v).ok_or_else(|| BusError::Protocol(format!("rate limit of {agent}: reply {v:?}")))?;
        Ok(if wait_us <= 0 { RateDecision::Allowed } else { RateDecision::Wait(Duration::from_micros(wait_us as u64)) })
    }
}
