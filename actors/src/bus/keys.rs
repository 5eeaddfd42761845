//! Redis key names. Every key of a topic carries the `{topic}` hash tag, so the multi-key atomic steps
//! (ack + result + retry/DLQ) stay in one hash slot and work on Redis Cluster.

use crate::task::TopicName;

pub fn stream(topic: &TopicName) -> String {
    format!("genesis:{{{topic}}}:stream")
}

pub fn dlq(topic: &TopicName) -> String {
    format!("genesis:{{{topic}}}:dlq")
}

pub fn retries(topic: &TopicName) -> String {
    format!("genesis:{{{topic}}}:retry")
}

/// The result record of a task lives under its topic's tag, so it is written atomically with the ack.
pub fn result(topic: &TopicName, task_id: &str) -> String {
    format!("genesis:{{{topic}}}:task:{task_id}")
}

pub fn node(node_id: &str) -> String {
    format!("genesis:node:{node_id}")
}

/// Cancel requests for the tasks a node runs (a list of task ids), polled by that node's canceller.
/// Its own key, outside `genesis:node:` (whose keys are liveness leases).
pub fn cancels(node_id: &str) -> String {
    format!("genesis:cancel:{node_id}")
}

/// An agent's rate limit state (its GCRA theoretical arrival time), one key per agent shared by every
/// node; tagged so the key is in a slot of its own.
pub fn rate(agent: &str) -> String {
    format!("genesis:{{rate:{agent}}}")
}

pub const NODE_PREFIX: &str = "genesis:node:";

/// Sorted set of node ids scored by lease expiry (ms): how `live_nodes` finds nodes without SCAN.
pub const NODES: &str = "genesis:nodes";

/// Consumer name of an agent on a node. The node id comes first so the reclaimer can tell whose
/// entries are pending.
pub fn consumer(node_id: &str, agent: &str) -> String {
    format!("{node_id}/{agent}")
}

/// The node id part of a consumer name.
pub fn node_of_consumer(consumer: &str) -> &str {
    consumer.split('/').next().unwrap_or(consumer)
}
