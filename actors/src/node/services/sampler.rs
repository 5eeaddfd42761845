//! Samples gauges that live in Redis (stream length, pending, lag, DLQ depth, scheduled retries; agents'
//! daily budget use, in the tenant where it is tightest) and this node's heartbeat age into the metrics
//! registry.

use super::Periodic;
use crate::bus::{Bus, BusError};
use crate::metrics::{Metrics, NodeLabel, TopicLabel};
use crate::payments::authority::{Authority, BudgetLine};
use crate::roster::Roster;
use futures::future::BoxFuture;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct Sampler {
    pub bus: Bus,
    pub node_id: String,
    pub roster: Roster,
    pub payments: Option<Authority>,
    pub metrics: Arc<Metrics>,
    pub last_beat: Arc<AtomicU64>,
    pub interval: Duration,
}

fn gauge(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Periodic for Sampler {
    fn name(&self) -> &'static str {
        "sampler"
    }
    fn interval(&self) -> Duration {
        self.interval
    }
    fn tick(&mut self) -> BoxFuture<'_, Result<(), BusError>> {
        Box::pin(async move {
            let m = &self.metrics;
            m.node_up.set(1);
            let last = self.last_beat.load(Ordering::Relaxed);
            if last > 0 {
                let age = crate::task::now_ms().saturating_sub(last) as f64 / 1000.0;
                m.heartbeat_age.get_or_create(&NodeLabel { node: self.node_id.clone() }).set(age);
            }
            for topic in self.roster.topics() {
                let s = self.bus.stats(topic).await?;
                let l = TopicLabel { topic: topic.to_string() };
                m.stream_length.get_or_create(&l).set(gauge(s.length));
                m.stream_pending.get_or_create(&l).set(gauge(s.pending));
                m.stream_lag.get_or_create(&l).set(gauge(s.lag));
                m.dlq_depth.get_or_create(&l).set(gauge(s.dlq));
                m.retry_scheduled.get_or_create(&l).set(gauge(s.retrying));
            }
            if let Some(a) = &self.payments {
                let agents: Vec<String> = self.roster.agents.iter().map(|a| a.name.clone()).collect();
                match a.budgets_report(&agents, &[]).await {
                    Ok(lines) => {
                        // An agent has a daily budget per tenant; the gauges (labelled by agent) show its
                        // tightest one, the tenant where it has the least left.
                        let mut tightest: BTreeMap<&str, &BudgetLine> = BTreeMap::new();
                        for line in lines.iter().filter(|l| l.kind == "agent_daily") {
                            let t = tightest.entry(line.name.as_str()).or_insert(line);
                            if line.remaining_cents < t.remaining_cents {
                                *t = line;
                            }
                        }
                        for line in tightest.into_values() {
                            let l = Metrics::agent(&line.name);
                            m.budget_used.get_or_create(&l).set(gauge(line.reserved_cents + line.captured_cents));
                            m.budget_remaining.get_or_create(&l).set(gauge(line.remaining_cents));
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "budget sample failed"),
                }
            }
            Ok(())
        })
    }
}
