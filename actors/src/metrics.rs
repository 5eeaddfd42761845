//! Prometheus metrics of a node (names prefixed `genesis_`). Counters are incremented where things
//! happen (workers, supervisors, the MetaAgent); gauges of streams and budgets are sampled
//! periodically by [`crate::node::services::sampler`]. Served as text by the binary's `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AgentLabel {
    pub agent: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeadLabel {
    pub agent: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabel {
    pub topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RestartLabel {
    pub supervisor: String,
    pub child: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabel {
    pub outcome: String,
    pub code: String,
}

/// A settlement: where the money went (`captured`, `released`) and which path moved it (`worker`
/// right after the outcome, `reconciler` after a crash in between).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SettledLabel {
    pub to: &'static str,
    pub by: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CircuitLabel {
    pub agent: String,
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeLabel {
    pub node: String,
}

/// A workflow status (`genesis_workflow_transitions_total{status}`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: &'static str,
}

type Seconds = Family<AgentLabel, Histogram, fn() -> Histogram>;
type FloatGauge = Gauge<f64, AtomicU64>;

pub struct Metrics {
    registry: Registry,
    pub tasks_received: Family<AgentLabel, Counter>,
    pub tasks_succeeded: Family<AgentLabel, Counter>,
    pub tasks_failed: Family<AgentLabel, Counter>,
    pub tasks_retried: Family<AgentLabel, Counter>,
    pub tasks_dead: Family<DeadLabel, Counter>,
    pub task_duration: Seconds,
    pub stream_length: Family<TopicLabel, Gauge>,
    pub stream_pending: Family<TopicLabel, Gauge>,
    pub stream_lag: Family<TopicLabel, Gauge>,
    pub dlq_depth: Family<TopicLabel, Gauge>,
    pub dlq_trimmed: Family<TopicLabel, Counter>,
    pub dlq_oldest_age: Family<TopicLabel, FloatGauge>,
    pub dlq_max_len: Family<TopicLabel, Gauge>,
    pub dlq_max_age: Family<TopicLabel, FloatGauge>,
    pub retry_scheduled: Family<TopicLabel, Gauge>,
    pub actor_restarts: Family<RestartLabel, Counter>,
    pub payment_decisions: Family<DecisionLabel, Counter>,
    pub payments_settled: Family<SettledLabel, Counter>,
    pub payments_settle_errors: Counter,
    pub budget_used: Family<AgentLabel, Gauge>,
    pub budget_remaining: Family<AgentLabel, Gauge>,
    pub heartbeat_age: Family<NodeLabel, FloatGauge>,
    pub node_up: Gauge,
    pub circuit_state: Family<AgentLabel, Gauge>,
    pub circuit_transitions: Family<CircuitLabel, Counter>,
    pub circuit_wait: Seconds,
    pub rate_wait: Seconds,
    pub tasks_unavailable: Family<AgentLabel, Counter>,
    pub progress_dropped: Family<AgentLabel, Counter>,
    /// Workflows entering each status (a start counts as entering `running`).
    pub workflow_transitions: Family<StatusLabel, Counter>,
    /// From a step's publish to its outcome.
    pub workflow_step_latency: Histogram,
    /// From a workflow's start to its first step's outcome.
    pub workflow_first_step: Histogram,
}

fn duration_histogram() -> Histogram {
    // 1 ms … ~9 h
    Histogram::new(exponential_buckets(0.001, 2.5, 18))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("genesis");
        let m = Metrics {
            tasks_received: Family::default(),
            tasks_succeeded: Family::default(),
            tasks_failed: Family::default(),
            tasks_retried: Family::default(),
            tasks_dead: Family::default(),
            task_duration: Family::new_with_constructor(duration_histogram as fn() -> Histogram),
            stream_length: Family::default(),
            stream_pending: Family::default(),
            stream_lag: Family::default(),
            dlq_depth: Family::default(),
            dlq_trimmed: Family::default(),
            dlq_oldest_age: Family::default(),
            dlq_max_len: Family::default(),
            dlq_max_age: Family::default(),
            retry_scheduled: Family::default(),
            actor_restarts: Family::default(),
            payment_decisions: Family::default(),
            payments_settled: Family::default(),
            payments_settle_errors: Counter::default(),
            budget_used: Family::default(),
            budget_remaining: Family::default(),
            heartbeat_age: Family::default(),
            node_up: Gauge::default(),
            circuit_state: Family::default(),
            circuit_transitions: Family::default(),
            circuit_wait: Family::new_with_constructor(duration_histogram as fn() -> Histogram),
            rate_wait: Family::new_with_constructor(duration_histogram as fn() -> Histogram),
            tasks_unavailable: Family::default(),
            progress_dropped: Family::default(),
            workflow_transitions: Family::default(),
            workflow_step_latency: duration_histogram(),
            workflow_first_step: duration_histogram(),
            registry: Registry::default(),
        };
        r.register("tasks_received", "Deliveries handed to a worker", m.tasks_received.clone());
        r.register("tasks_succeeded", "Tasks that succeeded", m.tasks_succeeded.clone());
        r.register("tasks_failed", "Failed attempts (errors and timeouts)", m.tasks_failed.clone());
        r.register("tasks_retried", "Retries scheduled", m.tasks_retried.clone());
        r.register("tasks_dead", "Tasks dead-lettered, by reason", m.tasks_dead.clone());
        r.register("task_duration_seconds", "Duration of one attempt", m.task_duration.clone());
        r.register("stream_length", "Entries in the topic's stream", m.stream_length.clone());
        r.register("stream_pending", "Delivered, unacknowledged entries", m.stream_pending.clone());
        r.register("stream_lag", "Entries not yet delivered", m.stream_lag.clone());
        r.register("dlq_depth", "Dead letters of the topic", m.dlq_depth.clone());
        r.register("dlq_trimmed", "Dead letters dropped by the DLQ's retention (age or count)", m.dlq_trimmed.clone());
        r.register(
            "dlq_oldest_age_seconds",
            "Age of the topic's oldest dead letter (0: none)",
            m.dlq_oldest_age.clone(),
        );
        r.register("dlq_max_len", "The topic's DLQ retention by count (bus.dlq_max_len)", m.dlq_max_len.clone());
        r.register("dlq_max_age_seconds", "The topic's DLQ retention by age (bus.dlq_max_age)", m.dlq_max_age.clone());
        r.register("retry_scheduled", "Retries waiting for their due time", m.retry_scheduled.clone());
        r.register("actor_restarts", "Restarts by supervisor and child", m.actor_restarts.clone());
        r.register("payment_decisions", "Payment decisions by outcome and code", m.payment_decisions.clone());
        r.register(
            "payments_settled",
            "Reservations settled with their task's outcome, by state and path",
            m.payments_settled.clone(),
        );
        r.register(
            "payments_settle_errors",
            "Settlements that failed (retried by the reconciler)",
            m.payments_settle_errors.clone(),
        );
        r.register("budget_used_cents", "Reserved + captured today, per agent", m.budget_used.clone());
        r.register("budget_remaining_cents", "Daily budget left, per agent", m.budget_remaining.clone());
        r.register("node_heartbeat_age_seconds", "Age of this node's last heartbeat write", m.heartbeat_age.clone());
        r.register("node_up", "1 while the node runs", m.node_up.clone());
        r.register(
            "circuit_state",
            "The agent endpoint's circuit: 0 closed, 1 half-open, 2 open",
            m.circuit_state.clone(),
        );
        r.register("circuit_transitions", "Circuit state changes, by new state", m.circuit_transitions.clone());
        r.register("circuit_wait_seconds", "Time a task waited for an open circuit", m.circuit_wait.clone());
        r.register("rate_limit_wait_seconds", "Time a task waited for the agent's rate limit", m.rate_wait.clone());
        r.register(
            "tasks_unavailable",
            "Attempts that could not reach the agent (not counted as attempts)",
            m.tasks_unavailable.clone(),
        );
        r.register(
            "progress_dropped",
            "Progress reports that could not be written to the task record (the task carries on)",
            m.progress_dropped.clone(),
        );
        r.register(
            "workflow_transitions",
            "Workflows entering a status (a start enters running)",
            m.workflow_transitions.clone(),
        );
        r.register(
            "workflow_step_latency_seconds",
            "From a workflow step's publish to its outcome",
            m.workflow_step_latency.clone(),
        );
        r.register(
            "workflow_first_step_seconds",
            "From a workflow's start to its first step's outcome",
            m.workflow_first_step.clone(),
        );
        r.register(
            "redis_errors",
            "Redis errors seen by the bus, by class (retried, never fatal)",
            redis_errors().clone(),
        );
        r.register(
            "redis_state_lost",
            "Times Redis was found to have lost its state (groups recreated)",
            redis_state_lost().clone(),
        );
        Metrics { registry: r, ..m }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    pub fn agent(agent: &str) -> AgentLabel {
        AgentLabel { agent: agent.to_string() }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClassLabel {
    pub class: &'static str,
}

/// Process-wide: the bus is created before any runtime (and its registry) exists, and a process is one
/// node.
pub fn redis_errors() -> &'static Family<ClassLabel, Counter> {
    static F: std::sync::OnceLock<Family<ClassLabel, Counter>> = std::sync::OnceLock::new();
    F.get_or_init(Family::default)
}

/// Count a failed bus call by its class (only Redis errors: others are not Redis's doing).
pub fn count_bus_error(e: &crate::bus::BusError) {
    if matches!(e, crate::bus::BusError::Redis(_) | crate::bus::BusError::NotReplicated { .. }) {
        redis_errors().get_or_create(&ClassLabel { class: e.class().as_str() }).inc();
    }
}

pub fn redis_state_lost() -> &'static Counter {
    static C: std::sync::OnceLock<Counter> = std::sync::OnceLock::new();
    C.get_or_init(Counter::default)
}
