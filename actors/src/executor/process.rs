//! The `process` executor (being built).

use super::Executor;
use crate::roster::AgentSpec;
use std::sync::Arc;

pub const NAME: &str = "process";

pub fn build(_spec: &AgentSpec, _config: &crate::roster::ProcessSpec) -> Result<Arc<dyn Executor>, String> {
    Err("not available in this build yet".into())
}
