//! Keeps streams bounded by trimming acknowledged entries only: MINID below the oldest pending entry
//! (and never past the group's last delivered entry). Never MAXLEN, which could delete pending work.

use super::Periodic;
use crate::bus::{Bus, BusError};
use crate::task::TopicName;
use futures::future::BoxFuture;
use std::time::Duration;

pub struct Trimmer {
    pub bus: Bus,
    pub topics: Vec<TopicName>,
    pub interval: Duration,
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
            for topic in &self.topics {
                let n = self.bus.trim(topic).await?;
                if n > 0 {
                    tracing::debug!(%topic, trimmed = n, "trimmed acknowledged entries");
                }
            }
            Ok(())
        })
    }
}
