//! Workflows: the meta orchestrator's business plans (`docs/workflows.md`).
//!
//! A [`plan::Plan`] is a DAG of agent tasks. [`validate`] (AOP) and [`route`] (HALO) are pure checks and
//! choices made before anything runs; [`machine`] is the pure state machine of a running
//! [`state::Workflow`], whose every transition records the effects it wants (publish a step, cancel a
//! task, emit an event) in the workflow's outbox. The [`store`] keeps workflows (on Redis or in
//! memory, with compare-and-set) and the [`engine`] carries the outbox out ([`envelope`] builds a
//! step's task and checks its agent can decode it, `publish` puts it on the bus or refuses it,
//! [`summary`] posts the spend summary), so any node can advance any workflow; the
//! [`sweep`] repairs what a node that died in between left undone. [`template`] and [`launch`] turn a
//! template or a start request into a plan.

pub mod engine;
pub mod envelope;
pub mod events;
pub mod launch;
pub mod machine;
pub mod plan;
mod publish;
pub mod route;
pub mod settings;
pub mod state;
pub mod store;
pub mod summary;
pub mod sweep;
pub mod template;
pub mod validate;

pub use engine::{StartRequest, Started, SweepReport, WorkflowError, Workflows};
pub use settings::WorkflowSettings;
