//! The `http` executor: any JSON service is an agent. Each attempt is one `POST` to the agent's
//! `endpoint` with this JSON body:
//!
//! ```json
//! {"task_id": "01J…", "attempt": 1, "tenant_id": "acme", "correlation_id": "…",
//!  "payload": {…}, "deadline": 1764592800000}
//! ```
//!
//! `deadline` is when the agent's timeout fires, in Unix milliseconds: work still running then is
//! abandoned (the request is aborted, the attempt counts as timed out), so an agent should stop by then.
//! Headers: `Content-Type: application/json`, `traceparent` (W3C, the attempt's span), the agent's
//! configured `headers` (secrets: marked sensitive, never logged), and `Genesis-Payment-Token` when the
//! task carries one. What the answer means is [`mapping`]; an agent that cannot be reached (refused,
//! DNS, connect timeout) is [`ExecError::Unavailable`]: no attempt spent, the circuit counts it.
//!
//! One [`reqwest::Client`] per agent, built with the executor: connections are pooled and kept alive
//! between attempts. HTTPS trusts the system's roots and Mozilla's bundled roots (rustls). Redirects
//! are not followed (a `POST` redirected is a misconfigured `endpoint`, and following it would send the
//! headers elsewhere). The response is read in chunks up to [`MAX_RESPONSE_BYTES`]; past that the
//! attempt fails without reading the rest.

mod mapping;

pub use mapping::{MAX_MESSAGE_CHARS, MAX_RETRY_AFTER};

use super::{ExecError, Executor, TaskContext};
use crate::roster::{AgentSpec, Endpoint};
use crate::secret::redact_url;
use futures::future::BoxFuture;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, RETRY_AFTER};
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub const NAME: &str = "http";

/// The largest successful answer read; a larger one fails the task (fatal: it would be as large again).
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// How much of an error answer is read for its message (the message itself is cut much shorter).
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// How long a TCP (and TLS) connect may take before the agent counts as unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The header that carries the task's payment token (see `docs/agents.md`).
pub const PAYMENT_TOKEN_HEADER: &str = "genesis-payment-token";

/// Headers the executor sets itself; configuring one is refused rather than silently overridden.
const RESERVED: [&str; 7] =
    ["content-type", "content-length", "transfer-encoding", "host", "connection", "traceparent", PAYMENT_TOKEN_HEADER];

pub struct HttpExecutor {
    agent: String,
    url: reqwest::Url,
    /// The endpoint fit for logs and errors (user info, secret query values and the path cut).
    shown: String,
    client: reqwest::Client,
}

/// The request body (see the module doc).
#[derive(Serialize)]
struct Request<'a> {
    task_id: crate::task::TaskId,
    attempt: u32,
    tenant_id: &'a crate::tenant::TenantId,
    correlation_id: &'a str,
    payload: &'a Value,
    /// Unix milliseconds.
    deadline: u64,
}

pub fn build(spec: &AgentSpec, endpoint: &Endpoint) -> Result<Arc<dyn Executor>, String> {
    Ok(Arc::new(HttpExecutor::new(&spec.name, endpoint)?))
}

impl HttpExecutor {
    pub fn new(agent: &str, endpoint: &Endpoint) -> Result<Self, String> {
        let shown = redact_url(&endpoint.url);
        let url = reqwest::Url::parse(&endpoint.url).map_err(|e| format!("endpoint {shown}: not a valid URL ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("endpoint {shown}: must start with http:// or https://"));
        }
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        for (name, value) in &endpoint.headers {
            let n = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("headers.{name}: not a valid header name"))?;
            if RESERVED.contains(&n.as_str()) {
                return Err(format!("headers.{name}: set by the executor itself; remove it from `headers`"));
            }
            // The value may be a secret: the error does not show it.
            let mut v = HeaderValue::from_str(value.expose())
                .map_err(|_| format!("headers.{name}: the value is not a valid header value (not shown)"))?;
            v.set_sensitive(true);
            headers.append(n, v);
        }
        let client = reqwest::Client::builder()
            .user_agent(concat!("genesis/", env!("CARGO_PKG_VERSION")))
            // After the user agent: a configured `user-agent` wins.
            .default_headers(headers)
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(HttpExecutor { agent: agent.to_string(), url, shown, client })
    }

    /// One attempt: the request, then the answer read within its limit and mapped.
    async fn call(&self, ctx: &TaskContext, payload: &Value) -> Result<Value, ExecError> {
        let body = Request {
            task_id: ctx.task_id,
            attempt: ctx.attempt,
            tenant_id: &ctx.tenant_id,
            correlation_id: &ctx.correlation_id,
            payload,
            deadline: ctx.deadline_ms,
        };
        let mut req = self.client.post(self.url.clone()).json(&body);
        if let Some(tp) = ctx.traceparent.as_deref() {
            match HeaderValue::from_str(tp) {
                Ok(v) => req = req.header("traceparent", v),
                Err(_) => {
                    tracing::debug!(agent = %self.agent, task_id = %ctx.task_id, "traceparent is not a valid header value; not sent")
                }
            }
        }
        if let Some(token) = ctx.payment_token.as_deref() {
            let mut v = HeaderValue::from_str(token)
                .map_err(|_| ExecError::Fatal("the task's payment token is not a valid header value".into()))?;
            v.set_sensitive(true);
            req = req.header(PAYMENT_TOKEN_HEADER, v);
        }
        let mut resp = req.send().await.map_err(|e| self.send_error(e))?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| mapping::retry_after(v, SystemTime::now()));
        let limit = if status.is_success() { MAX_RESPONSE_BYTES } else { MAX_ERROR_BODY_BYTES };
        if status.is_success() && resp.content_length().is_some_and(|n| n > limit as u64) {
            return Err(mapping::too_large(limit));
        }
        let (body, complete) = read_limited(&mut resp, limit).await.map_err(|e| ExecError::Server {
            error: format!("the connection to {} broke while reading the agent's answer: {}", self.shown, chain(e)),
            retry_after: None,
        })?;
        if status.is_success() && !complete {
            return Err(mapping::too_large(limit));
        }
        tracing::debug!(agent = %self.agent, task_id = %ctx.task_id, status = status.as_u16(), bytes = body.len(), "agent answered");
        mapping::outcome(status, retry_after, &body)
    }

    /// A request that got no answer: unreachable (no attempt spent) or broken after it was sent.
    fn send_error(&self, e: reqwest::Error) -> ExecError {
        let (connect, builder) = (e.is_connect(), e.is_builder());
        let why = chain(e);
        if connect {
            ExecError::Unavailable(format!("cannot connect to {}: {why}", self.shown))
        } else if builder {
            ExecError::Fatal(format!("cannot build the request to {}: {why}", self.shown))
        } else {
            // Sent (or partly sent): the agent may have started, so the attempt counts.
            ExecError::Server {
                error: format!("the request to {} got no answer: {why}", self.shown),
                retry_after: None,
            }
        }
    }
}

impl Executor for HttpExecutor {
    fn execute<'a>(&'a self, ctx: &'a TaskContext, payload: &'a Value) -> BoxFuture<'a, Result<Value, ExecError>> {
        Box::pin(async move {
            // Dropping the request future closes its connection: the agent sees the client go away.
            tokio::select! {
                biased;
                _ = ctx.cancel.cancelled() => {
                    Err(ExecError::Cancelled(format!("the attempt was cancelled; the request to {} was aborted", self.shown)))
                }
                r = self.call(ctx, payload) => r,
            }
        })
    }
}

/// Read the body up to `limit` bytes; `false` when there was more (the rest is not read).
async fn read_limited(resp: &mut reqwest::Response, limit: usize) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut buf = Vec::with_capacity(resp.content_length().map_or(0, |n| n.min(limit as u64) as usize));
    while let Some(chunk) = resp.chunk().await? {
        let room = limit - buf.len();
        if chunk.len() > room {
            buf.extend_from_slice(&chunk[..room]);
            return Ok((buf, false));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok((buf, true))
}

/// An error and its causes, `a: b: c`, without the URL (which may hold a secret; callers name the
/// endpoint in its redacted form).
fn chain(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut parts = vec![e.to_string()];
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(&e);
    while let Some(s) = source {
        let text = s.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Hidden;

    fn endpoint(url: &str, headers: &[(&str, &str)]) -> Endpoint {
        Endpoint { url: url.into(), headers: headers.iter().map(|(n, v)| (n.to_string(), Hidden::new(*v))).collect() }
    }

    #[test]
    fn builds_with_configured_headers() {
        let e = HttpExecutor::new("a", &endpoint("https://agent.example/run", &[("Authorization", "Bearer s3cret")]));
        assert!(e.is_ok());
    }

    #[test]
    fn refuses_headers_it_sets_itself() {
        for name in ["traceparent", "Content-Type", "Genesis-Payment-Token", "host"] {
            let e = HttpExecutor::new("a", &endpoint("http://127.0.0.1:1/", &[(name, "x")])).err();
            assert!(e.as_deref().is_some_and(|e| e.contains("set by the executor itself")), "{name}: {e:?}");
        }
    }

    #[test]
    fn a_bad_header_value_is_refused_without_showing_it() {
        let e = HttpExecutor::new("a", &endpoint("http://127.0.0.1:1/", &[("X-Key", "s3cret\u{7f}")])).err();
        let e = e.unwrap_or_default();
        assert!(e.contains("headers.X-Key") && !e.contains("s3cret"), "{e}");
    }

    #[test]
    fn errors_name_the_endpoint_redacted() {
        let e = HttpExecutor::new("a", &endpoint("ftp://user:pw@host/x", &[])).err().unwrap_or_default();
        assert!(e.contains("http://") && !e.contains("pw"), "{e}");
    }
}
