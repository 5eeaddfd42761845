//! The shape of `genesis.toml` and `agents.toml` as written, before validation.
//!
//! Every key is optional (defaults are applied in `validate`/`roster`). Integers are read as `i64`
//! and durations as strings so that range and format errors can name the key and the value as
//! written. Unknown keys are rejected.

use serde::Deserialize;

/// `genesis.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GenesisFile {
    /// Path of the roster file, relative to the directory of `genesis.toml`.
    pub roster: Option<String>,
    #[serde(default)]
    pub node: NodeFile,
    #[serde(default)]
    pub bus: BusFile,
    #[serde(default)]
    pub supervision: SupervisionFile,
    #[serde(default)]
    pub liveness: LivenessFile,
    #[serde(default)]
    pub retry: RetryFile,
    #[serde(default)]
    pub http: HttpFile,
    #[serde(default)]
    pub payments: super::payments::PaymentsFile,
    #[serde(default)]
    pub telemetry: TelemetryFile,
    #[serde(default)]
    pub workflows: super::workflows::WorkflowsFile,
    #[serde(default)]
    pub executors: ExecutorsFile,
}

/// `[executors]`: settings of the built-in executors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExecutorsFile {
    #[serde(default)]
    pub simulated: SimulatedFile,
}

/// `[executors.simulated]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SimulatedFile {
    /// Honour `pay` and `report_to` in payloads (they reach outside the node); default off.
    pub steering: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TelemetryFile {
    pub otlp_endpoint: Option<String>,
    pub otlp_protocol: Option<String>,
    pub sampling_ratio: Option<f64>,
    pub service_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NodeFile {
    pub id: Option<String>,
    pub shutdown_grace: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BusFile {
    pub redis_url: Option<String>,
    pub block: Option<String>,
    pub max_payload_bytes: Option<i64>,
    pub max_deliveries: Option<i64>,
    pub result_ttl: Option<String>,
    pub retry_poll: Option<String>,
    pub trim_interval: Option<String>,
    pub reconnect_initial: Option<String>,
    pub reconnect_max: Option<String>,
    pub tls_ca_file: Option<String>,
    pub tls_cert_file: Option<String>,
    pub tls_key_file: Option<String>,
    pub password_file: Option<String>,
    pub publish_replicas: Option<i64>,
    pub publish_timeout: Option<String>,
    pub dlq_max_age: Option<String>,
    pub dlq_max_len: Option<i64>,
    pub dlq_max_entry_bytes: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SupervisionFile {
    pub agent_max_restarts: Option<i64>,
    pub agent_within: Option<String>,
    pub root_max_restarts: Option<i64>,
    pub root_within: Option<String>,
    pub restart_backoff_initial: Option<String>,
    pub restart_backoff_max: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LivenessFile {
    pub heartbeat_interval: Option<String>,
    pub heartbeat_ttl: Option<String>,
    pub reclaim_interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RetryFile {
    /// An integer is accepted too (`2` means 2.0).
    pub multiplier: Option<f64>,
    pub max_delay: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HttpFile {
    pub addr: Option<String>,
    pub header_read_timeout: Option<String>,
    pub request_timeout: Option<String>,
    pub max_connections: Option<i64>,
    /// `"required"` (default) or `"off"` (loopback only).
    pub auth: Option<String>,
    pub allowed_hosts: Option<Vec<String>>,
    pub metrics_addr: Option<String>,
    /// The embedded bus's first-run admin key, relative to `genesis.toml`'s directory.
    pub admin_key_file: Option<String>,
    pub api_keys: Option<Vec<super::http::ApiKeyFile>>,
}

/// `agents.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AgentsFile {
    #[serde(default)]
    pub defaults: AgentDefaultsFile,
    /// The `[[agent]]` entries, in file order.
    #[serde(default)]
    pub agent: Vec<AgentFile>,
}

/// `[defaults]` of `agents.toml`: values for keys an `[[agent]]` leaves out.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AgentDefaultsFile {
    pub concurrency: Option<i64>,
    pub max_retries: Option<i64>,
    pub retry_delay: Option<String>,
    pub timeout: Option<String>,
    pub executor: Option<String>,
}

/// One `[[agent]]` of `agents.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AgentFile {
    pub name: Option<String>,
    /// Defaults to `name`.
    pub topic: Option<String>,
    pub concurrency: Option<i64>,
    pub max_retries: Option<i64>,
    pub retry_delay: Option<String>,
    pub timeout: Option<String>,
    pub executor: Option<String>,
    /// a2a / http: the agent's base URL.
    pub endpoint: Option<String>,
    /// a2a / http: headers sent on every request (values may be secrets via `${VAR}`).
    pub headers: Option<std::collections::BTreeMap<String, String>>,
    /// process: argv of the child.
    pub command: Option<Vec<String>>,
    /// process: the child's working directory.
    pub cwd: Option<String>,
    /// process: extra environment of the child.
    pub env: Option<std::collections::BTreeMap<String, String>>,
    /// A rate limit shared by all nodes: `"60/min"`.
    pub rate: Option<String>,
    /// Tasks that may start at once under `rate`.
    pub burst: Option<i64>,
    /// Consecutive endpoint failures that open the circuit.
    pub circuit_failures: Option<i64>,
    /// How long an open circuit stays open before one probe.
    pub circuit_open: Option<String>,
    /// Overrides `bus.dlq_max_age` for this agent's topic.
    pub dlq_max_age: Option<String>,
    /// Overrides `bus.dlq_max_len` for this agent's topic.
    pub dlq_max_len: Option<i64>,
}
