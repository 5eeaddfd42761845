//! Executors: the trait every agent's work runs through, and the registry that maps the roster's
//! `executor` names to implementations.

pub mod simulated;

use crate::task::TaskId;
use futures::future::BoxFuture;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What an executor knows about the task it runs.
#[derive(Debug, Clone)]
pub struct TaskContext {
    pub agent: String,
    pub node_id: String,
    pub worker: usize,
    pub task_id: TaskId,
    pub attempt: u32,
    /// Redis's delivery counter for this entry (1 on first delivery; grows on replays after crashes).
    pub deliveries: u32,
    pub tenant_id: crate::tenant::TenantId,
    pub correlation_id: String,
    /// The way to ask the MetaAgent for money; `approve` fails if payments are not configured.
    pub payments: crate::payments::meta_agent::PaymentsClient,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExecError {
    /// Worth another attempt after the retry delay.
    #[error("{0}")]
    Retryable(String),
    /// Retrying cannot help (e.g. the payload is invalid): dead-letter at once.
    #[error("{0}")]
    Fatal(String),
}

/// Runs one task. A panic inside `execute` crashes the worker actor, which its supervisor restarts and
/// hands the same entry again; the runtime cancels (drops) the future when the agent's timeout expires.
pub trait Executor: Send + Sync + 'static {
    fn execute<'a>(
        &'a self,
        ctx: &'a TaskContext,
        payload: &'a serde_json::Value,
    ) -> BoxFuture<'a, Result<serde_json::Value, ExecError>>;
}

/// Executors by name.
#[derive(Clone)]
pub struct ExecutorRegistry {
    by_name: BTreeMap<String, Arc<dyn Executor>>,
}

impl ExecutorRegistry {
    /// The built-in executors (`simulated`).
    pub fn builtin() -> Self {
        let mut by_name: BTreeMap<String, Arc<dyn Executor>> = BTreeMap::new();
        by_name.insert(simulated::NAME.to_string(), Arc::new(simulated::Simulated));
        ExecutorRegistry { by_name }
    }

    pub fn register(&mut self, name: impl Into<String>, executor: Arc<dyn Executor>) {
        self.by_name.insert(name.into(), executor);
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn Executor>> {
        self.by_name.get(name).cloned()
    }

    pub fn names(&self) -> Vec<&str> {
        self.by_name.keys().map(String::as_str).collect()
    }
}
