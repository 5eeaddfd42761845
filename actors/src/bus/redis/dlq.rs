//! The dead-letter queue of a topic on Redis: a stream, `genesis:{<topic>}:dlq`, whose entry ids are the
//! times the letters died (so retention by age is `XTRIM MINID`).
//!
//! Lists and filtered purges page through the stream (`XRANGE` with an exclusive start), never one
//! reply of the whole DLQ. A dead letter named by its task id is found through the task's record
//! (`dlq_id`); once the record has expired, by paging backwards from the newest entry.

use super::args::{DlqReplayArgs, DlqTrimArgs};
use super::reply::{int, items, pairs, stream_entries};
use super::{record, ttl_ms, RedisBus};
use crate::bus::dlq::{not_found, replayable, DeadLetterRef, DlqFilter, DlqRetention, DlqTrimmed};
use crate::bus::keys;
use crate::bus::types::{BusError, DeadLetter};
use crate::task::{TaskEnvelope, TopicName};
use redis::Value;
use std::time::Duration;

/// Entries per page when paging through a DLQ.
const PAGE: usize = 200;

impl RedisBus {
    /// One page of dead letters: from `start` (inclusive, or exclusive with a `(` prefix) towards `end`,
    /// newest first if `rev`.
    async fn dlq_page(
        &self,
        topic: &TopicName,
        start: &str,
        end: &str,
        rev: bool,
    ) -> Result<Vec<DeadLetter>, BusError> {
        let v: Value = redis::cmd(if rev { "XREVRANGE" } else { "XRANGE" })
            .arg(keys::dlq(topic))
            .arg(start)
            .arg(end)
            .arg("COUNT")
            .arg(PAGE)
            .query_async(&mut self.conn())
            .await?;
        Ok(stream_entries(v).into_iter().map(|(id, f)| record::dead_letter(topic, id, pairs(f))).collect())
    }

    /// Dead letters matching `filter`, oldest first, until `limit` or the end.
    async fn dlq_scan(&self, topic: &TopicName, filter: &DlqFilter, limit: usize) -> Result<Vec<DeadLetter>, BusError> {
        let mut out = Vec::new();
        let mut start = "-".to_string();
        while out.len() < limit {
            let page = self.dlq_page(topic, &start, "+", false).await?;
            let Some(last) = page.last() else { break };
            start = format!("({}", last.id);
            let full = page.len() == PAGE;
            out.extend(page.into_iter().filter(|d| filter.matches(d)));
            if !full {
                break;
            }
        }
        out.truncate(limit);
        Ok(out)
    }

    async fn dlq_entry(&self, topic: &TopicName, id: &str) -> Result<Option<DeadLetter>, BusError> {
        Ok(self.dlq_page(topic, id, id, false).await?.into_iter().next())
    }

    pub async fn dlq_list(
        &self,
        topic: &TopicName,
        filter: &DlqFilter,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, BusError> {
        self.dlq_scan(topic, filter, limit).await
    }

    pub async fn dlq_get(&self, topic: &TopicName, r: &DeadLetterRef) -> Result<Option<DeadLetter>, BusError> {
        let task_id = match r {
            DeadLetterRef::Entry(id) => return self.dlq_entry(topic, id).await,
            DeadLetterRef::Task(t) => t.to_string(),
        };
        let recorded: Option<String> =
            redis::cmd("HGET").arg(keys::result(topic, &task_id)).arg("dlq_id").query_async(&mut self.conn()).await?;
        if let Some(id) = recorded.filter(|id| !id.is_empty()) {
            if let Some(d) = self.dlq_entry(topic, &id).await?.filter(|d| d.task_id.as_deref() == Some(&task_id)) {
                return Ok(Some(d));
            }
        }
        // The record expired (or points to a letter since removed): the task's newest dead letter.
        let mut end = "+".to_string();
        loop {
            let page = self.dlq_page(topic, &end, "-", true).await?;
            let Some(last) = page.last() else { return Ok(None) };
            end = format!("({}", last.id);
            let full = page.len() == PAGE;
            if let Some(d) = page.into_iter().find(|d| d.task_id.as_deref() == Some(&task_id)) {
                return Ok(Some(d));
            }
            if !full {
                return Ok(None);
            }
        }
    }

    async fn dlq_require(&self, topic: &TopicName, r: &DeadLetterRef) -> Result<DeadLetter, BusError> {
        self.dlq_get(topic, r).await?.ok_or_else(|| not_found(topic, r))
    }

    pub async fn dlq_replay(
        &self,
        topic: &TopicName,
        r: &DeadLetterRef,
        ttl: Duration,
    ) -> Result<TaskEnvelope, BusError> {
        let dl = self.dlq_require(topic, r).await?;
        let env = replayable(&dl)?;
        let args = DlqReplayArgs { topic, dlq_id: &dl.id, task: &env, ttl_ms: ttl_ms(ttl) };
        let id: Option<String> = self.inner.scripts.dlq_replay.call(&args).invoke_async(&mut self.conn()).await?;
        match id {
            Some(_) => Ok(env),
            None => Err(removed_meanwhile(topic, &dl)),
        }
    }

    pub async fn dlq_delete(&self, topic: &TopicName, r: &DeadLetterRef) -> Result<DeadLetter, BusError> {
        let dl = self.dlq_require(topic, r).await?;
        let n: i64 = redis::cmd("XDEL").arg(keys::dlq(topic)).arg(&dl.id).query_async(&mut self.conn()).await?;
        if n == 0 {
            return Err(removed_meanwhile(topic, &dl));
        }
        Ok(dl)
    }

    pub async fn dlq_purge(&self, topic: &TopicName, filter: &DlqFilter) -> Result<usize, BusError> {
        let mut conn = self.conn();
        if filter.is_everything() {
            let n: u64 = redis::cmd("XLEN").arg(keys::dlq(topic)).query_async(&mut conn).await?;
            let _: i64 = redis::cmd("DEL").arg(keys::dlq(topic)).query_async(&mut conn).await?;
            return Ok(n as usize);
        }
        let doomed = self.dlq_scan(topic, filter, usize::MAX).await?;
        let mut removed = 0;
        for chunk in doomed.chunks(PAGE) {
            let mut cmd = redis::cmd("XDEL");
            cmd.arg(keys::dlq(topic));
            for d in chunk {
                cmd.arg(&d.id);
            }
            let n: i64 = cmd.query_async(&mut conn).await?;
            removed += n.max(0) as usize;
        }
        Ok(removed)
    }

    pub async fn dlq_trim(&self, topic: &TopicName, retention: &DlqRetention) -> Result<DlqTrimmed, BusError> {
        let v: Value =
            self.inner.scripts.dlq_trim.call(&DlqTrimArgs { topic, retention }).invoke_async(&mut self.conn()).await?;
        let n: Vec<i64> = items(v).iter().map(|x| int(x).unwrap_or(-1)).collect();
        let [by_age, by_len, remaining, oldest] = n[..] else {
            return Err(BusError::Protocol(format!("dlq_trim returned {n:?}")));
        };
        let count = |x: i64| u64::try_from(x).unwrap_or(0);
        Ok(DlqTrimmed {
            by_age: count(by_age),
            by_len: count(by_len),
            remaining: count(remaining),
            oldest_at: u64::try_from(oldest).ok(),
        })
    }
}

fn removed_meanwhile(topic: &TopicName, dl: &DeadLetter) -> BusError {
    BusError::NotFound(format!("dead letter {} of {topic} was removed meanwhile", dl.id))
}
