//! The roster: which agents run, on which topic, with what limits. Adding an agent is a config change.

use crate::bus::dlq::DlqOverride;
use crate::task::TopicName;
use std::time::Duration;

/// One agent of the roster, already validated (see the binary's `config` module for parsing).
#[derive(Debug, Clone, PartialEq)]
pub struct AgentSpec {
    /// Unique agent name, e.g. `genesis.build`; also the actor name prefix.
    pub name: String,
    /// The topic this agent consumes.
    pub topic: TopicName,
    /// Number of worker actors, i.e. tasks run at once by this agent on one node.
    pub concurrency: usize,
    /// Retries after the first attempt; attempts ≤ max_retries + 1.
    pub max_retries: u32,
    /// Delay before the first retry; later retries grow by the retry backoff multiplier.
    pub retry_delay: Duration,
    /// A handler running longer than this is cancelled and the attempt counts as failed.
    pub timeout: Duration,
    /// Name of the executor that runs this agent's tasks.
    pub executor: String,
    /// This agent's topic's DLQ retention, where it differs from `bus.dlq_*`.
    pub dlq: DlqOverride,
}

/// The whole roster, in configuration order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Roster {
    pub agents: Vec<AgentSpec>,
}

impl Roster {
    pub fn topics(&self) -> impl Iterator<Item = &TopicName> {
        self.agents.iter().map(|a| &a.topic)
    }

    pub fn by_topic(&self, topic: &TopicName) -> Option<&AgentSpec> {
        self.agents.iter().find(|a| &a.topic == topic)
    }

    pub fn by_name(&self, name: &str) -> Option<&AgentSpec> {
        self.agents.iter().find(|a| a.name == name)
    }
}
