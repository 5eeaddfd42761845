//! Writes this node's liveness key (`genesis:node:<id>`) with a time to live. Other nodes take over
//! this node's pending entries only once the key has expired.

use super::Periodic;
use crate::bus::{Bus, BusError, Lease};
use futures::future::BoxFuture;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct Heartbeat {
    pub bus: Bus,
    pub node_id: String,
    /// This process's lease on `node_id` (see [`crate::bus::Lease`]).
    pub instance: String,
    pub interval: Duration,
    pub ttl: Duration,
    /// Static facts about the node; each beat adds `beat_at` (ms since the epoch).
    pub info: serde_json::Value,
    /// When the key was last written (ms since the epoch), for readiness.
    pub last_beat: Arc<AtomicU64>,
    /// Each agent's circuit breaker on this node: every beat writes their states (`circuits` in the
    /// info), which is how `genesis health` shows them without asking the nodes.
    pub circuits: Vec<(String, Arc<crate::agent::breaker::Breaker>)>,
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
            let circuits: serde_json::Map<String, serde_json::Value> =
                self.circuits.iter().map(|(agent, b)| (agent.clone(), b.state().label().into())).collect();
            info["circuits"] = circuits.into();
            match self.bus.heartbeat(&self.node_id, &self.instance, self.ttl, &info.to_string()).await? {
                Lease::Held => self.last_beat.store(crate::task::now_ms(), Ordering::Relaxed),
                // Our lease lapsed (e.g. this process was paused past the TTL) and another process
                // started with the same id. Never overwrite it; readiness goes false (the beat ages).
                Lease::Taken { holder } => tracing::error!(
                    node = %self.node_id,
                    %holder,
                    "another live process now holds this node id; not renewing. Stop one of them or give each a distinct --node-id"
                ),
            }
            Ok(())
        })
    }
}
