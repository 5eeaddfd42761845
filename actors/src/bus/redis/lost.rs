//! Saying once that Redis lost its data. A flush or an empty restart shows up as NOGROUP on every
//! agent's next call; one WARN line a minute (with a counter in the metrics) tells the operator what
//! happened without flooding the log.

use crate::task::TopicName;
use std::sync::atomic::{AtomicU64, Ordering};

const QUIET_MS: u64 = 60_000;

#[derive(Default)]
pub(super) struct LostLog {
    last_warned_ms: AtomicU64,
}

impl LostLog {
    pub fn note(&self, topic: &TopicName) {
        crate::metrics::redis_state_lost().inc();
        let now = crate::task::now_ms();
        let last = self.last_warned_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= QUIET_MS
            && self.last_warned_ms.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            tracing::warn!(
                %topic,
                "Redis lost its state (consumer group missing: flushed, restarted without persistence, or failed over to a replica without the data); recreating consumer groups and carrying on. Tasks that were only in Redis are gone"
            );
        }
    }
}
