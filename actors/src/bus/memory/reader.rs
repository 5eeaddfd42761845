//! A consumer's reader of the in-process bus: a blocking read waits on the bus's append notifier.

use super::{id_str, parse_id, MemoryBus};
use crate::bus::types::{BusError, Delivery};
use crate::task::TopicName;
use std::time::{Duration, Instant};

pub struct MemoryReader {
    pub(super) bus: MemoryBus,
    pub(super) consumer: String,
}

impl MemoryReader {
    pub async fn read_new(
        &mut self,
        topic: &TopicName,
        count: usize,
        block: Duration,
    ) -> Result<Vec<Delivery>, BusError> {
        let deadline = tokio::time::Instant::now() + block;
        loop {
            // Register interest before looking, so an append between the look and the wait is not missed.
            let notified = self.bus.inner.appended.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let got = self.bus.take_new(&self.consumer, topic, count);
            if !got.is_empty() {
                return Ok(got);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    pub async fn read_pending(
        &mut self,
        topic: &TopicName,
        after: &str,
        count: usize,
    ) -> Result<Vec<Delivery>, BusError> {
        let after = if after == "0" { 0 } else { parse_id(after).unwrap_or(0) };
        let mut s = self.bus.state();
        let consumer = self.consumer.clone();
        let t = s.topic(topic);
        // Reading, even one's own pending entries, makes a consumer known to the group (as XREADGROUP).
        t.consumers.insert(consumer.clone());
        let now = Instant::now();
        let mut out = Vec::new();
        for (seq, p) in t.pending.range_mut(after + 1..) {
            if out.len() >= count.max(1) {
                break;
            }
            if p.consumer != consumer {
                continue;
            }
            p.deliveries += 1;
            p.delivered_at = now;
            let raw = t.entries.get(seq).cloned().flatten();
            out.push(Delivery { topic: topic.clone(), entry_id: id_str(*seq), raw, deliveries: p.deliveries });
        }
        Ok(out)
    }
}
