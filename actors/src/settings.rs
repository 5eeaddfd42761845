//! Runtime settings of a node, already validated. The binary's `config` module builds them from
//! `config/genesis.toml`; tests build them directly.

use crate::bus::dlq::{DlqRetention, DEFAULT_MAX_ENTRY_BYTES};
use crate::policy::backoff::Backoff;
use crate::policy::intensity::Intensity;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeSettings {
    /// This node's id; consumers are named `<node_id>/<agent>` so a restarted node finds its own pending
    /// entries again.
    pub node_id: String,
    pub bus: BusSettings,
    pub supervision: SupervisionSettings,
    pub liveness: LivenessSettings,
    /// Growth of the delay between retries of one task (`retry_delay × multiplier^(attempt-1)`, capped).
    pub retry_backoff: Backoff,
    /// On shutdown, how long running tasks may take to finish; unfinished ones stay pending for replay.
    pub shutdown_grace: Duration,
    /// `[workflows]`: plan limits, routing rules, the sweeper, retention, the events stream.
    pub workflows: crate::workflow::WorkflowSettings,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BusSettings {
    /// How long one blocking read waits for new entries.
    pub block: Duration,
    /// Largest accepted envelope, in bytes; larger entries are dead-lettered.
    pub max_payload_bytes: usize,
    /// An entry delivered more than this many times (crashing its worker each time) is dead-lettered
    /// as poison instead of run again. Counted by Redis (the PEL delivery counter).
    pub max_deliveries: u32,
    /// How long a task's result record is kept.
    pub result_ttl: Duration,
    /// How often due retries are moved back into their streams.
    pub retry_poll: Duration,
    /// How often streams are trimmed of acknowledged entries (and DLQs of expired dead letters).
    pub trim_interval: Duration,
    /// Dead-letter retention and size.
    pub dlq: DlqSettings,
    /// Reconnect / retry schedule when the bus is unreachable.
    pub reconnect: Backoff,
}

/// `bus.dlq_*`: how long dead letters are kept and how much of each.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DlqSettings {
    /// Every topic's retention, unless its agent overrides it (`AgentSpec::dlq`).
    pub retention: DlqRetention,
    /// How much of an original entry a dead letter keeps; a longer one is truncated (and cannot be
    /// replayed).
    pub max_entry_bytes: usize,
}

impl Default for DlqSettings {
    fn default() -> Self {
        DlqSettings { retention: DlqRetention::default(), max_entry_bytes: DEFAULT_MAX_ENTRY_BYTES }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SupervisionSettings {
    /// Restart intensity of an agent supervisor over its fetcher and workers.
    pub agent: Intensity,
    /// Restart intensity of the root over agent supervisors and service actors.
    pub root: Intensity,
    /// Delay before a restart, growing with the number of recent restarts.
    pub restart_backoff: Backoff,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LivenessSettings {
    /// How often this node writes its heartbeat key.
    pub heartbeat_interval: Duration,
    /// Lifetime of the heartbeat key; once it has expired, other nodes take over this node's entries.
    pub heartbeat_ttl: Duration,
    /// How often the reclaimer looks for entries held by dead nodes.
    pub reclaim_interval: Duration,
}

impl RuntimeSettings {
    /// Defaults suitable for production; every value is overridable from `config/genesis.toml`.
    pub fn defaults(node_id: impl Into<String>) -> Self {
        RuntimeSettings {
            node_id: node_id.into(),
            bus: BusSettings {
                block: Duration::from_millis(1000),
                max_payload_bytes: 1 << 20,
                max_deliveries: 5,
                result_ttl: Duration::from_secs(7 * 24 * 3600),
                retry_poll: Duration::from_millis(100),
                trim_interval: Duration::from_secs(30),
                dlq: DlqSettings::default(),
                reconnect: Backoff::new(Duration::from_millis(100), Duration::from_secs(10), 2.0),
            },
            supervision: SupervisionSettings {
                agent: Intensity { max_restarts: 10, within: Duration::from_secs(10) },
                root: Intensity { max_restarts: 5, within: Duration::from_secs(60) },
                restart_backoff: Backoff::new(Duration::from_millis(2), Duration::from_secs(5), 2.0),
            },
            liveness: LivenessSettings {
                heartbeat_interval: Duration::from_secs(2),
                heartbeat_ttl: Duration::from_secs(10),
                reclaim_interval: Duration::from_secs(2),
            },
            retry_backoff: Backoff::new(Duration::from_secs(5), Duration::from_secs(300), 2.0),
            shutdown_grace: Duration::from_secs(30),
            workflows: crate::workflow::WorkflowSettings::default(),
        }
    }
}
