//! Moves delayed retries whose due time has come back into their streams (atomically, so several nodes
//! may run this at once without duplicating a retry).

use super::Periodic;
use crate::bus::{Bus, BusError};
use crate::task::TopicName;
use futures::future::BoxFuture;
use std::time::Duration;

const BATCH: usize = 500;

pub struct RetryScheduler {
    pub bus: Bus,
    pub topics: Vec<TopicName>,
    pub interval: Duration,
}

impl Periodic for RetryScheduler {
    fn name(&self) -> &'static str {
        "retry-scheduler"
    }
    fn interval(&self) -> Duration {
        self.interval
    }
    fn tick(&mut self) -> BoxFuture<'_, Result<(), BusError>> {
        Box::pin(async move {
            for topic in &self.topics {
                while self.bus.move_due_retries(topic, BATCH).await? == BATCH {}
            }
            Ok(())
        })
    }
}
