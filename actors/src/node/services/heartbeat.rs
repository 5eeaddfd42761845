//! Writes this node's liveness key (`genesis:node:<id>`) with a time to live. Other nodes take over
//! this node's pending entries only once the key has expired.

use super::Periodic;
use crate::bus::{Bus, BusError};
use futures::future::BoxFuture;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct Heartbeat {
    pub bus: Bus,
    pub node_id: String,
    pub interval: Duration,
    pub ttl: Duration,
    /// Static facts about the node; each beat adds `beat_at` (ms since the epoch).
    pub info: serde_json::Value,
    /// When the key was last written (ms since the epoch), for readiness.
    pub last_beat: Arc<AtomicU64>,
}

impl Periodic for Heartbeat {
    fn name(&self) -> &'static str {
        "heartbeat"
    }
    fn interval(&self) -> Duration {
        self.interval
    }
    fn tick(&mut self) -> BoxFuture<'_, Result<(), BusError>> {
        Box::pin(async move {
            let mut info = self.info.clone();
            info["beat_at"] = serde_json::json!(crate::task::now_ms());
            self.bus.heartbeat(&self.node_id, self.ttl, &info.to_string()).await?;
            self.last_beat.store(crate::task::now_ms(), Ordering::Relaxed);
            Ok(())
        })
    }
}
