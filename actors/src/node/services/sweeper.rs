//! Repairs workflows between the moments a node could die (see [`crate::workflow::sweep`]): every
//! `workflows.sweep_interval`, deadlines, outcomes whose hook did not run, effects left in an outbox
//! and lost publishes. Every node runs one; they may race, and every repair is idempotent. A store
//! error is logged and the next tick tries again (a bus error slows the ticker like any service's).

use super::Periodic;
use crate::bus::BusError;
use crate::workflow::{WorkflowError, Workflows};
use futures::future::BoxFuture;
use std::time::Duration;

pub struct Sweeper {
    pub workflows: Workflows,
    pub interval: Duration,
}

impl Periodic for Sweeper {
    fn name(&self) -> &'static str {
        "sweeper"
    }
    fn interval(&self) -> Duration {
        self.interval
    }
    fn tick(&mut self) -> BoxFuture<'_, Result<(), BusError>> {
        Box::pin(async move {
            match self.workflows.sweep().await {
                Ok(r) => {
                    if r.outcomes + r.redriven + r.deadlines + r.republished > 0 {
                        tracing::info!(
                            visited = r.visited,
                            outcomes = r.outcomes,
                            redriven = r.redriven,
                            deadlines = r.deadlines,
                            republished = r.republished,
                            "sweeper repaired workflows"
                        );
                    }
                    Ok(())
                }
                Err(WorkflowError::Bus(e)) => Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, "sweeper: cannot list the open workflows; will retry");
                    Ok(())
                }
            }
        })
    }
}
