//! Delivers cancel requests to the attempts running on this node: every `interval` it takes the
//! requests for this node from the bus (`genesis:cancel:<node>` on Redis, written by
//! [`crate::bus::Bus::cancel`] for a task whose record says it runs here) and fires each attempt's
//! cancellation token through [`RunningAttempts`]. The worker then gives the executor
//! [`crate::executor::CANCEL_GRACE`] to stop the work at its agent, and dead-letters the task as
//! `cancelled`.

use super::Periodic;
use crate::bus::{Bus, BusError};
use crate::node::running::{Delivered, RunningAttempts};
use futures::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;

const BATCH: usize = 100;

/// How long a request for a task that has not (yet) registered here is kept: far longer than the
/// moment between `begin` and a worker taking the task, or a crashed worker's restart.
const UNCLAIMED: Duration = Duration::from_secs(600);

pub struct Canceller {
    pub bus: Bus,
    pub node_id: String,
    pub running: Arc<RunningAttempts>,
    pub interval: Duration,
}

impl Periodic for Canceller {
    fn name(&self) -> &'static str {
        "canceller"
    }
    fn interval(&self) -> Duration {
        self.interval
    }
    fn tick(&mut self) -> BoxFuture<'_, Result<(), BusError>> {
        Box::pin(async move {
            loop {
                let batch = self.bus.take_cancels(&self.node_id, BATCH).await?;
                for task_id in &batch {
                    match self.running.request(task_id) {
                        Delivered::Fired => {
                            tracing::info!(%task_id, "cancel requested: stopping the running attempt")
                        }
                        Delivered::Kept => tracing::info!(
                            %task_id,
                            "cancel requested for a task not running here yet; it is cancelled when it starts"
                        ),
                    }
                }
                if batch.len() < BATCH {
                    break;
                }
            }
            self.running.prune(UNCLAIMED);
            Ok(())
        })
    }
}
