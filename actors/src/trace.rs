//! Trace context across processes. The W3C `traceparent` of the span that published a task travels in
//! the envelope; the consumer's `process` span takes it as its parent, so a chain of tasks (idea →
//! build → deploy through `reply_to`) is one trace in Jaeger even when every hop runs on another node.
//!
//! Spans are ordinary `tracing` spans; when the binary installs the OpenTelemetry layer they are
//! exported over OTLP, and without it these helpers do nothing (no context, no `traceparent`).

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use std::collections::HashMap;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The `traceparent` of `span`, if it is being traced.
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let mut carrier: HashMap<String, String> = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove("traceparent")
}

/// Make `span` a child of the remote context in `traceparent` (ignored when absent or malformed).
pub fn continue_from(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(tp) = traceparent else { return };
    let carrier: HashMap<String, String> = HashMap::from([("traceparent".to_string(), tp.to_string())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    let _ = span.set_parent(cx);
}

/// A PRODUCER span for publishing `env` (OpenTelemetry messaging conventions).
pub fn publish_span(env: &crate::task::TaskEnvelope) -> tracing::Span {
    tracing::info_span!(
        "publish",
        otel.name = format!("{} publish", env.topic),
        otel.kind = "producer",
        messaging.system = "redis",
        messaging.operation.type = "send",
        messaging.destination.name = %env.topic,
        genesis.task_id = %env.task_id,
        genesis.tenant = %env.tenant_id,
        genesis.correlation_id = %env.correlation_id,
    )
}
