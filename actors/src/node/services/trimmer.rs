//! Keeps Redis bounded.
//!
//! Streams: acknowledged entries only, by MINID below the oldest pending entry (and never past the
//! group's last delivered entry). Never MAXLEN, which could delete pending work.
//!
//! Dead-letter queues: each topic's retention (`bus.dlq_max_age` / `bus.dlq_max_len`, or its agent's
//! override), by MINID (dead letters are ids in time order) and then MAXLEN. Dropped dead letters are
//! counted (`genesis_dlq_trimmed_total`), and the oldest one's age and the limits are exported so an
//! alert fires before anything is dropped.

use super::Periodic;
use crate::bus::{Bus, BusError, DlqRetention};
use crate::metrics::{Metrics, TopicLabel};
use crate::roster::Roster;
use crate::settings::BusSettings;
use crate::task::TopicName;
use futures::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;

pub struct Trimmer {
    bus: Bus,
    /// Every roster topic with its DLQ retention.
    topics: Vec<(TopicName, DlqRetention)>,
    interval: Duration,
    metrics: Arc<Metrics>,
}

impl Trimmer {
    pub fn new(bus: Bus, roster: &Roster, settings: &BusSettings, metrics: Arc<Metrics>) -> Self {
        let topics = roster.agents.iter().map(|a| (a.topic.clone(), settings.dlq.retention.with(&a.dlq))).collect();
        Trimmer { bus, topics, interval: settings.trim_interval, metrics }
    }
}

impl Periodic for Trimmer {
    fn name(&self) -> &'static str {
        "trimmer"
    }
    fn interval(&self) -> Duration {
        self.interval
    }
    fn tick(&mut self) -> BoxFuture<'_, Result<(), BusError>> {
        Box::pin(async move {
            for (topic, retention) in &self.topics {
                let n = self.bus.trim(topic).await?;
                if n > 0 {
                    tracing::debug!(%topic, trimmed = n, "trimmed acknowledged entries");
                }
                let t = self.bus.dlq_trim(topic, retention).await?;
                let m = &self.metrics;
                let l = TopicLabel { topic: topic.to_string() };
                if t.dropped() > 0 {
                    m.dlq_trimmed.get_or_create(&l).inc_by(t.dropped());
                    tracing::warn!(
                        %topic, by_age = t.by_age, by_len = t.by_len, remaining = t.remaining,
                        max_age = ?retention.max_age, max_len = retention.max_len,
                        "dead letters dropped by the DLQ's retention (bus.dlq_max_age / bus.dlq_max_len)"
                    );
                }
                let age_ms = t.oldest_at.map_or(0, |at| crate::task::now_ms().saturating_sub(at));
                m.dlq_oldest_age.get_or_create(&l).set(age_ms as f64 / 1000.0);
                m.dlq_depth.get_or_create(&l).set(i64::try_from(t.remaining).unwrap_or(i64::MAX));
                m.dlq_max_len.get_or_create(&l).set(i64::try_from(retention.max_len).unwrap_or(i64::MAX));
                m.dlq_max_age.get_or_create(&l).set(retention.max_age.as_secs_f64());
            }
            Ok(())
        })
    }
}
