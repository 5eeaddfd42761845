//! The HTTP side of the A2A executor: one pooled `reqwest` client per agent, the headers sent on
//! every request, bounded answers, and transport failures as a typed [`CallError`] (what it means for
//! the task is decided in `outcome`, which knows whether the agent had accepted the task yet).
//!
//! Secrets: header values are marked sensitive (hyper never prints them) and no error here quotes a
//! header or a full URL — URLs go through [`redact_url`], reqwest errors lose theirs
//! (`without_url`).

use super::sse::SseParser;
use super::wire::{Request, Response, StreamEvent};
use crate::roster::Endpoint;
use crate::secret::redact_url;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE, RETRY_AFTER};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The protocol version header; without it a 1.0 server treats the request as 0.3 (-32009).
pub const VERSION_HEADER: &str = "A2A-Version";
pub const VERSION: &str = "1.0";

/// A connection that cannot be made in this time counts as the agent being unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A stream (or any answer) with no byte for this long is broken. sse-starlette pings every 15 s.
const READ_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest `Retry-After` honoured (a larger one is clamped, not trusted blindly).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Why one HTTP exchange with the agent did not give the answer asked for.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// No connection (refused, DNS, connect timeout): the request never reached the agent.
    #[error("cannot connect to {url}: {detail}")]
    Connect { url: String, detail: String },
    #[error("no answer from {url} within {after:?}")]
    Timeout { url: String, after: Duration },
    #[error("{url} answered HTTP {status}")]
    Http { url: String, status: u16, retry_after: Option<Duration> },
    #[error("the answer from {url} is larger than the {limit}-byte limit")]
    TooLarge { url: String, limit: usize },
    /// The answer arrived but is not the JSON (or JSON-RPC shape) A2A 1.0 sends.
    #[error("the answer from {url} is not an A2A 1.0 JSON-RPC answer: {detail}")]
    Decode { url: String, detail: String },
    /// The connection broke while sending or receiving.
    #[error("the exchange with {url} broke off: {detail}")]
    Transfer { url: String, detail: String },
    #[error("JSON-RPC error {code}: {message}")]
    Rpc { code: i64, message: String },
}

/// One agent's HTTP client (pooled connections) and request headers.
pub struct Transport {
    http: reqwest::Client,
    headers: HeaderMap,
    next_id: AtomicU64,
}

impl Transport {
    /// The client for `endpoint`; fails (naming the header, never its value) on a header that HTTP
    /// cannot carry.
    pub fn new(endpoint: &Endpoint) -> Result<Transport, String> {
        let mut headers = HeaderMap::new();
        for (name, value) in &endpoint.headers {
            let n = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("header {name:?} is not a valid HTTP header name"))?;
            let mut v = HeaderValue::from_str(value.expose()).map_err(|_| {
                format!("the value of header {name:?} is not a valid HTTP header value (not shown: it may be a secret)")
            })?;
            v.set_sensitive(true);
            headers.append(n, v);
        }
        headers.insert(VERSION_HEADER, HeaderValue::from_static(VERSION));
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_IDLE_TIMEOUT)
            .user_agent(concat!("genesis/", env!("CARGO_PKG_VERSION"), " (a2a executor)"))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {}", chain(&e.without_url())))?;
        Ok(Transport { http, headers, next_id: AtomicU64::new(1) })
    }

    /// GET a JSON document (the agent card) of at most `limit` bytes.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        url: &str,
        limit: usize,
        timeout: Duration,
    ) -> Result<T, CallError> {
        let shown = redact_url(url);
        let req = self.http.get(url).headers(self.headers.clone()).header(ACCEPT, "application/json").timeout(timeout);
        let resp = checked(req.send().await.map_err(|e| from_reqwest(&shown, timeout, e))?, &shown)?;
        let body = read_bounded(resp, limit, &shown, timeout).await?;
        serde_json::from_slice(&body).map_err(|e| CallError::Decode { url: shown, detail: e.to_string() })
    }

    /// One JSON-RPC call: `method(params)` → its `result`, or the JSON-RPC error as [`CallError::Rpc`].
    pub async fn rpc<P: Serialize, T: DeserializeOwned>(
        &self,
        url: &str,
        method: &str,
        params: P,
        traceparent: Option<&str>,
        limit: usize,
        timeout: Duration,
    ) -> Result<T, CallError> {
        let shown = redact_url(url);
        let req = self.request(url, method, params, traceparent).timeout(timeout);
        let resp = checked(req.send().await.map_err(|e| from_reqwest(&shown, timeout, e))?, &shown)?;
        let body = read_bounded(resp, limit, &shown, timeout).await?;
        unwrap_answer(&body, &shown)
    }

    /// Start a `SendStreamingMessage`. A server that refuses before streaming answers plain JSON
    /// (a JSON-RPC error), which comes back as that error.
    pub async fn open_stream<P: Serialize>(
        &self,
        url: &str,
        params: P,
        traceparent: Option<&str>,
        limit: usize,
    ) -> Result<EventStream, CallError> {
        let shown = redact_url(url);
        let req = self.request(url, "SendStreamingMessage", params, traceparent).header(ACCEPT, "text/event-stream");
        let resp = checked(req.send().await.map_err(|e| from_reqwest(&shown, READ_IDLE_TIMEOUT, e))?, &shown)?;
        let is_sse = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("text/event-stream"));
        if !is_sse {
            let body = read_bounded(resp, limit, &shown, READ_IDLE_TIMEOUT).await?;
            let err = unwrap_answer::<serde_json::Value>(&body, &shown).err();
            return Err(err.unwrap_or_else(|| CallError::Decode {
                url: shown,
                detail: "a JSON answer where an event stream was expected".into(),
            }));
        }
        Ok(EventStream { resp, parser: SseParser::new(limit), queued: Default::default(), url: shown })
    }

    fn request<P: Serialize>(
        &self,
        url: &str,
        method: &str,
        params: P,
        traceparent: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut req = self.http.post(url).headers(self.headers.clone()).json(&Request::new(id, method, params));
        if let Some(tp) = traceparent {
            req = req.header("traceparent", tp);
        }
        req
    }
}

/// The events of one `SendStreamingMessage` answer.
pub struct EventStream {
    resp: reqwest::Response,
    parser: SseParser,
    queued: std::collections::VecDeque<String>,
    url: String,
}

impl EventStream {
    /// The next event and its size in bytes; `Ok(None)` when the server closed the stream.
    /// Cancel-safe: a chunk read is the only await, and parsed events wait in `queued`.
    pub async fn next(&mut self) -> Result<Option<(StreamEvent, usize)>, CallError> {
        loop {
            if let Some(data) = self.queued.pop_front() {
                return unwrap_answer(data.as_bytes(), &self.url).map(|e| Some((e, data.len())));
            }
            let chunk = match self.resp.chunk().await {
                Ok(Some(c)) => c,
                Ok(None) => return Ok(None),
                Err(e) => return Err(from_reqwest(&self.url, READ_IDLE_TIMEOUT, e)),
            };
            let events =
                self.parser.feed(&chunk).map_err(|e| CallError::TooLarge { url: self.url.clone(), limit: e.limit })?;
            self.queued.extend(events);
        }
    }
}

/// A JSON-RPC answer body → its result, or its error.
fn unwrap_answer<T: DeserializeOwned>(body: &[u8], url: &str) -> Result<T, CallError> {
    let decode = |detail: String| CallError::Decode { url: url.to_string(), detail };
    let answer: Response<T> = serde_json::from_slice(body).map_err(|e| decode(e.to_string()))?;
    match (answer.result, answer.error) {
        (_, Some(e)) => Err(CallError::Rpc { code: e.code, message: shorten(&e.message, 500) }),
        (Some(r), None) => Ok(r),
        (None, None) => Err(decode("neither `result` nor `error`".into())),
    }
}

/// A non-2xx status → [`CallError::Http`] (with `Retry-After` in seconds, when sent).
fn checked(resp: reqwest::Response, url: &str) -> Result<reqwest::Response, CallError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let retry_after = resp
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
    Err(CallError::Http { url: url.to_string(), status: status.as_u16(), retry_after })
}

/// The body, refused once it passes `limit` bytes (checked on `Content-Length` first, then as it
/// arrives, so an oversized answer is never held whole).
async fn read_bounded(
    mut resp: reqwest::Response,
    limit: usize,
    url: &str,
    timeout: Duration,
) -> Result<Vec<u8>, CallError> {
    let too_large = || CallError::TooLarge { url: url.to_string(), limit };
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| from_reqwest(url, timeout, e))? {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn from_reqwest(url: &str, timeout: Duration, e: reqwest::Error) -> CallError {
    let url = url.to_string();
    let (connect, timed_out) = (e.is_connect(), e.is_timeout());
    let detail = chain(&e.without_url());
    if connect {
        CallError::Connect { url, detail }
    } else if timed_out {
        CallError::Timeout { url, after: timeout }
    } else {
        CallError::Transfer { url, detail }
    }
}

/// An error and its sources, one line ("error sending request: client error (Connect): tcp connect
/// error: Connection refused (os error 111)"), repeated links dropped.
fn chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = s.source();
    }
    parts.join(": ")
}

/// At most `max` bytes of `s`, cut on a character boundary, with `…` when cut.
pub fn shorten(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Hidden;

    #[test]
    fn a_bad_header_value_is_named_but_not_shown() {
        let ep = Endpoint { url: "http://a".into(), headers: vec![("X-Key".into(), Hidden::new("hunter\n2"))] };
        let err = Transport::new(&ep).err().expect("refused");
        assert!(err.contains("X-Key") && !err.contains("hunter"), "{err}");
    }

    #[test]
    fn answers_unwrap_to_result_or_error() {
        let ok: Result<u32, _> = unwrap_answer(br#"{"result": 3, "id": 1, "jsonrpc": "2.0"}"#, "u");
        assert_eq!(ok, Ok(3));
        let err: Result<u32, _> = unwrap_answer(br#"{"error": {"code": -32601, "message": "Method not found"}}"#, "u");
        assert_eq!(err, Err(CallError::Rpc { code: -32601, message: "Method not found".into() }));
        let bad: Result<u32, _> = unwrap_answer(b"<html>", "u");
        assert!(matches!(bad, Err(CallError::Decode { .. })));
    }

    #[test]
    fn shorten_cuts_on_a_character_boundary() {
        assert_eq!(shorten("héllo", 2), "h…");
        assert_eq!(shorten("abc", 3), "abc");
    }
}
