//! An attempt's progress sink ([`crate::executor::Progress`]): the executor's reports go to the task's
//! record without ever blocking the executor. The latest report wins; a small forwarding task per
//! attempt writes it, at most once per [`MIN_INTERVAL`], and ends with the attempt (writing the last
//! report first, so a task that succeeds shows its final progress). A report that cannot be written is
//! logged and counted (`genesis_progress_dropped_total`); it never fails the task.

use super::AgentContext;
use crate::executor::Progress;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Reports closer together than this are coalesced (only the latest is written).
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// How long the end of an attempt waits for its last report to be written.
const FLUSH: Duration = Duration::from_secs(1);

/// The forwarding task of one attempt, started by its first report: most tasks report none, and
/// then an attempt costs no task spawn or join on the hot path.
pub struct Forwarder {
    done: CancellationToken,
    handle: Arc<Mutex<Option<JoinHandle<()>>>>,
}

#[derive(Default)]
struct Latest {
    value: Mutex<Option<Value>>,
    wake: Notify,
}

impl Latest {
    fn put(&self, v: Value) {
        *self.value.lock().unwrap_or_else(|p| p.into_inner()) = Some(v);
        self.wake.notify_one();
    }

    fn take(&self) -> Option<Value> {
        self.value.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// The sink for one attempt of `task_id`, and its forwarding task (not started until a report comes).
pub fn start(ctx: &AgentContext, task_id: String) -> (Progress, Forwarder) {
    let latest = Arc::new(Latest::default());
    let done = CancellationToken::new();
    let handle: Arc<Mutex<Option<JoinHandle<()>>>> = Arc::default();
    let to = Mutex::new(Some(Target {
        bus: ctx.bus.clone(),
        topic: ctx.spec.topic.clone(),
        agent: ctx.spec.name.clone(),
        metrics: ctx.metrics.clone(),
        task_id,
    }));
    let (slot, stop) = (handle.clone(), done.clone());
    let sink = move |v| {
        latest.put(v);
        // The first report starts the forwarder; `to` is taken once.
        if let Some(to) = to.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let task = tokio::spawn(forward(to, latest.clone(), stop.clone()));
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
        }
    };
    (Progress::new(sink), Forwarder { done, handle })
}

impl Forwarder {
    /// The attempt ended: write the last report (waiting at most [`FLUSH`]) and stop.
    pub async fn finish(self) {
        self.done.cancel();
        let Some(mut handle) = self.handle.lock().unwrap_or_else(|p| p.into_inner()).take() else { return };
        if tokio::time::timeout(FLUSH, &mut handle).await.is_err() {
            handle.abort();
        }
    }
}

/// Where one attempt's reports go.
struct Target {
    bus: crate::bus::Bus,
    topic: crate::task::TopicName,
    agent: String,
    metrics: Arc<crate::metrics::Metrics>,
    task_id: String,
}

async fn forward(to: Target, latest: Arc<Latest>, done: CancellationToken) {
    let mut failures: u32 = 0;
    loop {
        let ended = tokio::select! {
            biased;
            _ = done.cancelled() => true,
            _ = latest.wake.notified() => false,
        };
        if let Some(v) = latest.take() {
            if let Err(e) = to.bus.set_progress(&to.topic, &to.task_id, &v).await {
                crate::metrics::count_bus_error(&e);
                to.metrics.progress_dropped.get_or_create(&crate::metrics::Metrics::agent(&to.agent)).inc();
                failures = failures.saturating_add(1);
                if failures.is_power_of_two() {
                    tracing::warn!(agent = %to.agent, task_id = %to.task_id, failures, error = %e, "progress report not written (the task carries on)");
                }
            }
        }
        if ended {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(MIN_INTERVAL) => {}
            _ = done.cancelled() => {}
        }
    }
}
