//! Takes over the pending entries of nodes whose liveness key has expired, and hands them to this
//! node's agent supervisors. Entries of live nodes are never taken, however long their tasks run: the
//! node's heartbeat is the lease.

use super::Periodic;
use crate::bus::{keys, Bus, BusError};
use crate::roster::Roster;
use crate::agent::supervisor::AgentMsg;
use dashmap::DashMap;
use futures::future::BoxFuture;
use ractor::ActorRef;
use std::sync::Arc;
use std::time::Duration;

const BATCH: usize = 256;

pub struct Reclaimer {
    pub bus: Bus,
    pub node_id: String,
    pub roster: Roster,
    pub interval: Duration,
    /// Claimed entries must have been idle this long (makes concurrent reclaimers exclusive).
    pub min_idle: Duration,
    pub agents: Arc<DashMap<String, ActorRef<AgentMsg>>>,
}

impl Periodic for Reclaimer {
    fn name(&self) -> &'static str {
        "reclaimer"
    }
    fn interval(&self) -> Duration {
        self.interval
    }
    fn tick(&mut self) -> BoxFuture<'_, Result<(), BusError>> {
        Box::pin(async move {
            for agent in &self.roster.agents {
                let consumer = keys::consumer(&self.node_id, &agent.name);
                let claimed = self.bus.reclaim_dead(&consumer, &agent.topic, self.min_idle, BATCH).await?;
                if claimed.is_empty() {
                    continue;
                }
                tracing::warn!(agent = %agent.name, count = claimed.len(), "took over entries of a dead node");
                // If the supervisor is restarting, the entries stay pending for this consumer and its
                // new fetcher replays them.
                if let Some(sup) = self.agents.get(&agent.name) {
                    let _ = sup.cast(AgentMsg::Inject(claimed));
                }
            }
            Ok(())
        })
    }
}
