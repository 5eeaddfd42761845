//! Logs and traces. Logs go to stderr (text, or JSON with `GENESIS_LOG_FORMAT=json`; level from
//! `RUST_LOG`). Traces go over OTLP (gRPC or HTTP/protobuf) when an endpoint is configured
//! (`[telemetry]` or `OTEL_EXPORTER_OTLP_ENDPOINT`), sampled parent-based by ratio. The tracer provider
//! is kept and shut down on exit so the last spans are flushed (OpenTelemetry 0.33 has no global
//! shutdown). An unreachable collector never stops the service: one warning at start, and the SDK's
//! own repeated export errors are silenced.

use crate::config::{OtlpProtocol, TelemetrySettings};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use std::io::IsTerminal;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Flush and stop the exporter.
    pub fn shutdown(self) {
        if let Some(p) = self.provider {
            if let Err(e) = p.shutdown() {
                errln!("warning: could not flush traces: {e}");
            }
        }
    }
}

/// The effective settings: the config, overridden by the standard `OTEL_*` variables.
fn effective(cfg: &TelemetrySettings) -> TelemetrySettings {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let mut t = cfg.clone();
    if let Some(e) = env("OTEL_EXPORTER_OTLP_ENDPOINT") {
        t.otlp_endpoint = Some(e);
    }
    match env("OTEL_EXPORTER_OTLP_PROTOCOL").as_deref() {
        Some("grpc") => t.otlp_protocol = OtlpProtocol::Grpc,
        Some("http/protobuf") => t.otlp_protocol = OtlpProtocol::HttpProtobuf,
        _ => {}
    }
    if let Some(r) =
        env("OTEL_TRACES_SAMPLER_ARG").and_then(|r| r.parse::<f64>().ok()).filter(|r| (0.0..=1.0).contains(r))
    {
        t.sampling_ratio = r;
    }
    if let Some(n) = env("OTEL_SERVICE_NAME") {
        t.service_name = n;
    }
    t
}

fn provider(t: &TelemetrySettings, endpoint: &str, node: &str) -> Result<SdkTracerProvider, String> {
    let exporter = match t.otlp_protocol {
        OtlpProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder().with_tonic().with_endpoint(endpoint).build(),
        OtlpProtocol::HttpProtobuf => {
            let url = if endpoint.ends_with("/v1/traces") {
                endpoint.to_string()
            } else {
                format!("{}/v1/traces", endpoint.trim_end_matches('/'))
            };
            opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(url)
                .build()
        }
    }
    .map_err(|e| e.to_string())?;
    let resource = Resource::builder()
        .with_service_name(t.service_name.clone())
        .with_attribute(KeyValue::new("service.instance.id", node.to_string()))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(t.sampling_ratio))))
        .with_resource(resource)
        .build())
}

/// Warn once if nothing listens at the endpoint's host and port.
fn probe(endpoint: &str) {
    let hostport = endpoint.split("://").nth(1).unwrap_or(endpoint).split('/').next().unwrap_or_default().to_string();
    let reachable = std::net::ToSocketAddrs::to_socket_addrs(&hostport)
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| std::net::TcpStream::connect_timeout(&a, std::time::Duration::from_millis(500)).is_ok());
    if !reachable {
        tracing::warn!(%endpoint, "no OTLP collector reachable; the service runs normally and spans are dropped until one is");
    }
}

/// Colour codes in text logs only on a terminal, and never with `NO_COLOR` set to anything but ""
/// (<https://no-color.org>): in the journal, a file or a pipe they are noise.
fn colour(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Install logging, and tracing export when configured. `default_level` applies when `RUST_LOG` is unset.
pub fn init(default_level: &str, cfg: &TelemetrySettings, node: &str) -> Telemetry {
    // The SDK's own export errors would repeat every few seconds without a collector.
    let directives = format!("{default_level},opentelemetry_sdk=off,opentelemetry_otlp=off,opentelemetry=off");
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(directives));
    let json = std::env::var("GENESIS_LOG_FORMAT").is_ok_and(|v| v == "json");
    // A log line that cannot be written (stderr is a closed pipe) is dropped: the subscriber's own
    // report of that failure would go to the same stderr, with a panic when that fails too.
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).log_internal_errors(false);
    let fmt = if json {
        fmt.json().with_filter(filter).boxed()
    } else {
        let ansi = colour(std::io::stderr().is_terminal(), std::env::var_os("NO_COLOR").as_deref());
        fmt.with_ansi(ansi).with_filter(filter).boxed()
    };
    let t = effective(cfg);
    let (otel, provider, error) = match t.otlp_endpoint.as_deref() {
        None => (None, None, None),
        Some(endpoint) => match provider(&t, endpoint, node) {
            Ok(p) => {
                // Spans of our own crates at INFO and above, whatever the log level.
                let spans =
                    Targets::new().with_target("genesis", Level::INFO).with_target("genesis_actors", Level::INFO);
                let layer = tracing_opentelemetry::layer().with_tracer(p.tracer("genesis")).with_filter(spans).boxed();
                (Some(layer), Some(p), None)
            }
            Err(e) => (None, None, Some(e)),
        },
    };
    let _ = tracing_subscriber::registry().with(fmt).with(otel).try_init();
    if let Some(e) = error {
        tracing::warn!(error = %e, "cannot set up the OTLP exporter; traces are off");
    } else if let Some(endpoint) = t.otlp_endpoint.as_deref().filter(|_| provider.is_some()) {
        probe(endpoint);
        tracing::info!(%endpoint, protocol = ?t.otlp_protocol, ratio = t.sampling_ratio, "exporting traces over OTLP");
    }
    Telemetry { provider }
}

#[cfg(test)]
mod tests {
    use super::colour;
    use std::ffi::OsStr;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some(OsStr::new(""))), "an empty NO_COLOR does not count");
        assert!(!colour(true, Some(OsStr::new("1"))));
        assert!(!colour(false, None), "not a terminal: the journal, a file, a pipe");
    }
}
