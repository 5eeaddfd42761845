//! The node: the [`root`] supervisor and the node-wide [`services`] (heartbeat, reclaimer, retry
//! scheduler, trimmer, sampler) it runs beside the agents. [`crate::runtime`] starts and stops it.

pub mod root;
pub mod services;
