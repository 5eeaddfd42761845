//! The sections of `genesis.toml` → [`RuntimeSettings`] and friends (`[payments]` is in `payments`).
//!
//! Checks never stop at the first problem: each one records an [`Issues`] entry and yields a
//! fallback value, so one pass reports everything wrong with a file.

use super::checks::{duration, int, not_shorter, quote, show_duration};
use super::files::GenesisFile;
use super::issues::Issues;
use genesis_actors::bus::redis::Replication;
use genesis_actors::bus::DlqRetention;
use genesis_actors::policy::backoff::Backoff;
use genesis_actors::policy::intensity::Intensity;
use genesis_actors::settings::{BusSettings, DlqSettings, LivenessSettings, RuntimeSettings, SupervisionSettings};
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::time::Duration;

pub(crate) const DEFAULT_NODE_ID: &str = "node-1";
pub(crate) const DEFAULT_ROSTER: &str = "agents.toml";
pub(crate) const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:9464";
/// Multiplier of the reconnect and restart backoffs (not configurable).
const BACKOFF_MULTIPLIER: f64 = 2.0;
/// Redis refuses strings above 512 MiB.
const MAX_PAYLOAD_LIMIT: i64 = 512 << 20;
/// `bus.dlq_max_len` and an agent's `dlq_max_len`.
pub(crate) const DLQ_MAX_LEN_RANGE: RangeInclusive<i64> = 1..=i64::MAX;

/// What `genesis.toml` yields.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GenesisParts {
    pub settings: RuntimeSettings,
    /// The roster file, as written (relative to `genesis.toml`'s directory).
    pub roster: String,
    pub redis_url: Option<String>,
    /// `bus.tls_*_file` and `bus.password_file` as written (relative to `genesis.toml`'s directory).
    pub redis_files: RedisFiles,
    pub replication: Replication,
    pub http_addr: Option<SocketAddr>,
    pub http_limits: crate::http::server::Limits,
    /// `http.auth`, `allowed_hosts`, `metrics_addr`, `[[http.api_keys]]`; `admin_key_file` as written.
    pub http: crate::http::HttpSettings,
    pub payments: genesis_actors::payments::PaymentsSettings,
    /// `payments.token_key_file` as written (relative to `genesis.toml`'s directory).
    pub token_key_file: Option<String>,
    pub telemetry: TelemetrySettings,
    /// `workflows.templates_dir` as written (relative to `genesis.toml`'s directory).
    pub templates_dir: String,
    /// `[executors.simulated] steering` (default off).
    pub simulated_steering: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RedisFiles {
    pub tls_ca_file: Option<String>,
    pub tls_cert_file: Option<String>,
    pub tls_key_file: Option<String>,
    pub password_file: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    Grpc,
    HttpProtobuf,
}

/// `[telemetry]`: where traces go. The standard `OTEL_*` variables override these at start-up.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetrySettings {
    /// Empty: no export.
    pub otlp_endpoint: Option<String>,
    pub otlp_protocol: OtlpProtocol,
    pub sampling_ratio: f64,
    pub service_name: String,
}

pub(crate) fn genesis(file: GenesisFile, issues: &mut Issues) -> GenesisParts {
    let d = RuntimeSettings::defaults(DEFAULT_NODE_ID);
    let roster = file.roster.unwrap_or_else(|| DEFAULT_ROSTER.to_string());
    if roster.trim().is_empty() {
        issues.push("roster", Some(quote(&roster)), "must name the roster file");
    }
    let shutdown_grace =
        duration(issues, "node.shutdown_grace", file.node.shutdown_grace.as_deref(), d.shutdown_grace, false);
    let node_id = node_id(issues, file.node.id);

    let b = &file.bus;
    let redis_url = b.redis_url.clone().filter(|url| !url.is_empty());
    if let Some(url) = &redis_url {
        if let Err(problem) = genesis_actors::connection::target::parse_url(url) {
            issues.push("bus.redis_url", Some(quote(&genesis_actors::secret::redact_url(url))), problem);
        }
    }
    let reconnect_initial =
        duration(issues, "bus.reconnect_initial", b.reconnect_initial.as_deref(), d.bus.reconnect.initial, true);
    let reconnect_max = duration(issues, "bus.reconnect_max", b.reconnect_max.as_deref(), d.bus.reconnect.max, true);
    not_shorter(
        issues,
        ("bus.reconnect_max", b.reconnect_max.as_deref(), reconnect_max),
        ("bus.reconnect_initial", b.reconnect_initial.as_deref(), reconnect_initial),
    );
    let nonempty = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
    let redis_files = RedisFiles {
        tls_ca_file: nonempty(&b.tls_ca_file),
        tls_cert_file: nonempty(&b.tls_cert_file),
        tls_key_file: nonempty(&b.tls_key_file),
        password_file: nonempty(&b.password_file),
    };
    let replication = Replication {
        replicas: int(issues, "bus.publish_replicas", b.publish_replicas, 0, 0..=64),
        timeout: duration(issues, "bus.publish_timeout", b.publish_timeout.as_deref(), Duration::from_secs(1), true),
    };
    if replication.replicas > 0 && redis_url.is_none() {
        issues.push(
            "bus.publish_replicas",
            Some(replication.replicas.to_string()),
            "needs Redis replicas: set bus.redis_url (the in-process bus has none), or set it to 0",
        );
    }
    let bus = BusSettings {
        block: duration(issues, "bus.block", b.block.as_deref(), d.bus.block, true),
        max_payload_bytes: int(
            issues,
            "bus.max_payload_bytes",
            b.max_payload_bytes,
            d.bus.max_payload_bytes,
            1..=MAX_PAYLOAD_LIMIT,
        ),
        max_deliveries: int(
            issues,
            "bus.max_deliveries",
            b.max_deliveries,
            d.bus.max_deliveries,
            1..=i64::from(u32::MAX),
        ),
        result_ttl: duration(issues, "bus.result_ttl", b.result_ttl.as_deref(), d.bus.result_ttl, true),
        retry_poll: duration(issues, "bus.retry_poll", b.retry_poll.as_deref(), d.bus.retry_poll, true),
        trim_interval: duration(issues, "bus.trim_interval", b.trim_interval.as_deref(), d.bus.trim_interval, true),
        dlq: DlqSettings {
            retention: DlqRetention {
                max_age: duration(
                    issues,
                    "bus.dlq_max_age",
                    b.dlq_max_age.as_deref(),
                    d.bus.dlq.retention.max_age,
                    true,
                ),
                max_len: int(issues, "bus.dlq_max_len", b.dlq_max_len, d.bus.dlq.retention.max_len, DLQ_MAX_LEN_RANGE),
            },
            max_entry_bytes: int(
                issues,
                "bus.dlq_max_entry_bytes",
                b.dlq_max_entry_bytes,
                d.bus.dlq.max_entry_bytes,
                1024..=MAX_PAYLOAD_LIMIT,
            ),
        },
        reconnect: Backoff::new(reconnect_initial, reconnect_max, BACKOFF_MULTIPLIER),
    };

    let s = &file.supervision;
    let (ds, max_u32) = (&d.supervision, 0..=i64::from(u32::MAX));
    let restart_initial = duration(
        issues,
        "supervision.restart_backoff_initial",
        s.restart_backoff_initial.as_deref(),
        ds.restart_backoff.initial,
        false,
    );
    let restart_max = duration(
        issues,
        "supervision.restart_backoff_max",
        s.restart_backoff_max.as_deref(),
        ds.restart_backoff.max,
        false,
    );
    not_shorter(
        issues,
        ("supervision.restart_backoff_max", s.restart_backoff_max.as_deref(), restart_max),
        ("supervision.restart_backoff_initial", s.restart_backoff_initial.as_deref(), restart_initial),
    );
    let supervision = SupervisionSettings {
        agent: Intensity {
            max_restarts: int(
                issues,
                "supervision.agent_max_restarts",
                s.agent_max_restarts,
                ds.agent.max_restarts,
                max_u32.clone(),
            ),
            within: duration(issues, "supervision.agent_within", s.agent_within.as_deref(), ds.agent.within, true),
        },
        root: Intensity {
            max_restarts: int(
                issues,
                "supervision.root_max_restarts",
                s.root_max_restarts,
                ds.root.max_restarts,
                max_u32,
            ),
            within: duration(issues, "supervision.root_within", s.root_within.as_deref(), ds.root.within, true),
        },
        restart_backoff: Backoff::new(restart_initial, restart_max, BACKOFF_MULTIPLIER),
    };

    let l = &file.liveness;
    let liveness = LivenessSettings {
        heartbeat_interval: duration(
            issues,
            "liveness.heartbeat_interval",
            l.heartbeat_interval.as_deref(),
            d.liveness.heartbeat_interval,
            true,
        ),
        heartbeat_ttl: duration(
            issues,
            "liveness.heartbeat_ttl",
            l.heartbeat_ttl.as_deref(),
            d.liveness.heartbeat_ttl,
            true,
        ),
        reclaim_interval: duration(
            issues,
            "liveness.reclaim_interval",
            l.reclaim_interval.as_deref(),
            d.liveness.reclaim_interval,
            true,
        ),
    };
    if liveness.heartbeat_ttl <= liveness.heartbeat_interval {
        let interval = show_duration(l.heartbeat_interval.as_deref(), liveness.heartbeat_interval);
        let problem = format!("must be longer than liveness.heartbeat_interval ({interval})");
        issues.push(
            "liveness.heartbeat_ttl",
            Some(show_duration(l.heartbeat_ttl.as_deref(), liveness.heartbeat_ttl)),
            problem,
        );
    }

    let r = &file.retry;
    let multiplier = r.multiplier.unwrap_or(d.retry_backoff.multiplier);
    if !(multiplier.is_finite() && multiplier >= 1.0) {
        issues.push("retry.multiplier", Some(format!("{multiplier:?}")), "must be a number of at least 1.0");
    }
    let max_delay = duration(issues, "retry.max_delay", r.max_delay.as_deref(), d.retry_backoff.max, true);
    let retry_backoff = Backoff::new(d.retry_backoff.initial, max_delay, multiplier);

    let raw_addr = file.http.addr.clone().unwrap_or_else(|| DEFAULT_HTTP_ADDR.to_string());
    let http_addr = super::checks::parse_http_addr(&raw_addr).unwrap_or_else(|problem| {
        issues.push("http.addr", Some(quote(&raw_addr)), problem);
        None
    });
    let hd = crate::http::server::Limits::default();
    let h = &file.http;
    let http_limits = crate::http::server::Limits {
        header_read_timeout: duration(
            issues,
            "http.header_read_timeout",
            h.header_read_timeout.as_deref(),
            hd.header_read_timeout,
            true,
        ),
        request_timeout: duration(
            issues,
            "http.request_timeout",
            h.request_timeout.as_deref(),
            hd.request_timeout,
            true,
        ),
        max_connections: int(issues, "http.max_connections", h.max_connections, hd.max_connections, 1..=100_000),
        // A task of the largest accepted payload, plus room for the rest of the request.
        max_body_bytes: bus.max_payload_bytes.saturating_add(64 << 10),
        ..hd
    };
    let http = super::http::http(&file.http, http_addr, issues);
    let token_key_file = file.payments.token_key_file.clone();
    let payments = super::payments::payments(file.payments, issues);
    let t = file.telemetry;
    let otlp_protocol = match t.otlp_protocol.as_deref().map(str::trim) {
        None | Some("grpc") => OtlpProtocol::Grpc,
        Some("http") | Some("http/protobuf") => OtlpProtocol::HttpProtobuf,
        Some(other) => {
            issues.push("telemetry.otlp_protocol", Some(quote(other)), "must be \"grpc\" or \"http/protobuf\"");
            OtlpProtocol::Grpc
        }
    };
    let sampling_ratio = t.sampling_ratio.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&sampling_ratio) {
        issues.push("telemetry.sampling_ratio", Some(format!("{sampling_ratio:?}")), "must be between 0.0 and 1.0");
    }
    let otlp_endpoint = t.otlp_endpoint.filter(|e| !e.trim().is_empty());
    if let Some(e) = &otlp_endpoint {
        if let Err(problem) = super::checks::http_url(e) {
            issues.push("telemetry.otlp_endpoint", Some(quote(e)), format!("{problem} (or be empty)"));
        }
    }
    let telemetry = TelemetrySettings {
        otlp_endpoint,
        otlp_protocol,
        sampling_ratio,
        service_name: t.service_name.filter(|s| !s.trim().is_empty()).unwrap_or_else(|| "genesis".into()),
    };
    let templates_dir = super::workflows::templates_dir(&file.workflows);
    let simulated_steering = file.executors.simulated.steering.unwrap_or(false);
    let workflows = super::workflows::workflows(file.workflows, issues);
    let settings = RuntimeSettings { node_id, bus, supervision, liveness, retry_backoff, shutdown_grace, workflows };
    GenesisParts {
        settings,
        roster,
        redis_url,
        redis_files,
        replication,
        http_addr,
        http_limits,
        http,
        payments,
        token_key_file,
        telemetry,
        templates_dir,
        simulated_steering,
    }
}

fn node_id(issues: &mut Issues, raw: Option<String>) -> String {
    let id = raw.unwrap_or_else(|| DEFAULT_NODE_ID.to_string());
    if let Err(problem) = super::checks::check_node_id(&id) {
        issues.push("node.id", Some(quote(&id)), problem);
    }
    id
}
