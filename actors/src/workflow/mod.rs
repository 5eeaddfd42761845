//! Workflows: the meta orchestrator's business plans (`docs/workflows.md`).
//!
//! A [`plan::Plan`] is a DAG of agent tasks. [`validate`] (AOP) and [`route`] (HALO) are pure checks and
//! choices made before anything runs; [`machine`] is the pure state machine of a running
//! [`state::Workflow`], whose every transition records the effects it wants (publish a step, cancel a
//! task, emit an event) in the workflow's outbox. The store and the engine that carry those effects
//! out, on Redis or in memory, live beside them, so any node can advance any workflow.

pub mod events;
pub mod launch;
pub mod machine;
pub mod plan;
pub mod route;
pub mod state;
pub mod template;
pub mod validate;
