//! `[workflows]` in `genesis.toml`: plan limits, routing rules, and how the durable side of workflows
//! (the sweeper, retention of ended workflows, the events stream) behaves. Validated by the binary's
//! config module; tests build it directly.

use super::route::RouteRule;
use super::validate::Limits;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowSettings {
    /// `max_steps`, `max_depth`: the size limits a plan is validated against.
    pub limits: Limits,
    /// `[[workflows.routes]]`: which agents serve a capability, by priority.
    pub routes: Vec<RouteRule>,
    /// How often each node's sweeper looks at the workflows that have not ended (deadlines, outcomes
    /// whose hook did not run, effects a dead node left undone).
    pub sweep_interval: Duration,
    /// How long an ended workflow is kept (then it expires and leaves the indexes).
    pub retention: Duration,
    /// About how many entries the events stream keeps (`XADD … MAXLEN ~`).
    pub events_max_len: usize,
    /// The templates in `workflows.templates_dir` (default `<config dir>/workflows`).
    pub templates: std::sync::Arc<super::template::Templates>,
    /// `workflows.planner`: the agent asked to write a plan when a start request names neither a
    /// template nor a plan.
    pub planner: Option<String>,
}

impl Default for WorkflowSettings {
    fn default() -> Self {
        WorkflowSettings {
            limits: Limits::default(),
            routes: Vec::new(),
            sweep_interval: Duration::from_secs(2),
            retention: Duration::from_secs(7 * 24 * 3600),
            events_max_len: 100_000,
            templates: Default::default(),
            planner: None,
        }
    }
}
