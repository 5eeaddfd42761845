//! Takes over the pending entries of nodes whose liveness key has expired, and hands them to this
//! node's agent supervisors — no more than each agent can start now, so claimed entries never wait in
//! a local queue while another node could run them. Entries of live nodes are never taken, however
//! long their tasks run: the node's heartbeat is the lease.
//!
//! It also sweeps this node's own pending entries for orphans: entries pending for one of our
//! consumers, idle for `orphan_idle`, that no worker holds (an outcome a failover lost, a batch
//! dropped while a supervisor restarted). The supervisor replays the ones it does not hold.

use super::Periodic;
use crate::agent::supervisor::AgentMsg;
use crate::bus::{keys, Bus, BusError};
use crate::roster::Roster;
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
    /// Own pending entries idle this long, held by no worker, are orphans.
    pub orphan_idle: Duration,
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
                let Some(sup) = self.agents.get(&agent.name).map(|s| s.value().clone()) else { continue };
                let consumer = keys::consumer(&self.node_id, &agent.name);
                let orphans = self.bus.stale_own(&consumer, &agent.topic, self.orphan_idle, BATCH).await?;
                if !orphans.is_empty() {
                    let _ = sup.cast(AgentMsg::Orphans(orphans));
                }
                let capacity = ractor::call_t!(sup, AgentMsg::Capacity, 1000).unwrap_or(0);
                if capacity == 0 {
                    continue;
                }
                let claimed =
                    self.bus.reclaim_dead(&consumer, &agent.topic, self.min_idle, capacity.min(BATCH)).await?;
                if claimed.is_empty() {
                    continue;
                }
                tracing::warn!(agent = %agent.name, count = claimed.len(), "took over entries of a dead node");
                // If the supervisor is restarting, the entries stay pending for this consumer and the
                // orphan sweep hands them over later.
                let _ = sup.cast(AgentMsg::Inject(claimed));
            }
            Ok(())
        })
    }
}
