//! Supervision and replay events, broadcast to whoever listens (logs, tests, benchmarks, later
//! metrics). Emitting never blocks and never fails: with no listener the event is dropped.

use std::time::{Duration, Instant};
use tokio::sync::broadcast;

#[derive(Debug, Clone)]
pub enum RuntimeEvent {
    /// A supervised child failed or stopped unexpectedly.
    ChildFailed { supervisor: String, child: String, reason: String, at: Instant },
    /// The supervisor restarted it (after `after`); `restarts_in_window` counts toward its intensity.
    ChildRestarted { supervisor: String, child: String, restarts_in_window: u32, after: Duration },
    /// The supervisor exceeded its restart intensity and gave up, escalating to its parent.
    Escalated { supervisor: String, reason: String },
    /// The root gave up: the process is about to exit non-zero.
    RootGaveUp { reason: String },
    /// An entry held by a crashed worker was handed to its restarted worker.
    Replayed { agent: String, entry_id: String, deliveries: u32, at: Instant },
}

#[derive(Clone)]
pub struct Events {
    tx: broadcast::Sender<RuntimeEvent>,
}

impl Default for Events {
    fn default() -> Self {
        Events { tx: broadcast::channel(4096).0 }
    }
}

impl Events {
    pub fn emit(&self, e: RuntimeEvent) {
        let _ = self.tx.send(e);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<RuntimeEvent> {
        self.tx.subscribe()
    }
}
