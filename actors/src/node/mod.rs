//! The node: the [`root`] supervisor and the node-wide [`services`] (heartbeat, reclaimer, retry
//! scheduler, trimmer, sampler) it runs beside the agents. [`crate::runtime`] starts and stops it.

pub mod root;
pub mod services;

use std::sync::Arc;

/// What one agent keeps across its supervisor's restarts.
pub struct AgentParts {
    pub executor: Arc<dyn crate::executor::Executor>,
    pub breaker: Arc<crate::agent::breaker::Breaker>,
}
