//! The node: the [`root`] supervisor and the node-wide [`services`] (heartbeat, reclaimer, retry
//! scheduler, trimmer, sampler, canceller) it runs beside the agents, and the registry of the attempts
//! [`running`] here. [`crate::runtime`] starts and stops it.

pub mod root;
pub mod running;
pub mod services;

use std::sync::Arc;

/// What one agent keeps across its supervisor's restarts.
pub struct AgentParts {
    pub executor: Arc<dyn crate::executor::Executor>,
    pub breaker: Arc<crate::agent::breaker::Breaker>,
}
