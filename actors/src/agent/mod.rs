//! The actors of one agent: the [`fetcher`] reads its topic, [`worker`]s run tasks. Their supervisor
//! is [`crate::supervisor::agent`].

pub mod fetcher;
pub mod worker;

use crate::bus::{Bus, Delivery};
use crate::events::Events;
use crate::executor::Executor;
use crate::roster::AgentSpec;
use crate::settings::RuntimeSettings;
use crate::task::TaskEnvelope;
use std::sync::Arc;

/// What every actor of one agent shares; rebuilt never, cloned by `Arc`.
pub struct AgentContext {
    pub spec: AgentSpec,
    pub node_id: String,
    /// `<node_id>/<agent>`: this agent's consumer in the topic's group.
    pub consumer: String,
    pub bus: Bus,
    pub settings: Arc<RuntimeSettings>,
    pub executor: Arc<dyn Executor>,
    pub events: Events,
}

/// A decoded delivery on its way to (or held by) a worker.
#[derive(Debug, Clone)]
pub struct Job {
    pub delivery: Delivery,
    pub envelope: TaskEnvelope,
    /// Set when the job is handed again after its worker crashed: the worker first re-claims the entry
    /// (which bumps Redis's delivery counter) before running it.
    pub replay: bool,
}
