//! The pure half of the `http` executor: what an agent's HTTP answer means for the task. No I/O here,
//! so every rule is unit-tested: the status mapping, `Retry-After`, and the message taken from an
//! error body.
//!
//! | answer | outcome |
//! |---|---|
//! | 204 | the result is `null` |
//! | other 2xx with a JSON body | the result is the body |
//! | other 2xx, body not JSON | fatal: retrying will not make it JSON |
//! | 408, 429 | retry, not before `Retry-After` when given (capped at [`MAX_RETRY_AFTER`]) |
//! | 5xx | retry (`retry_after` when given); counts against the agent's circuit |
//! | other 4xx | fatal, with the body's message |
//! | anything else (3xx: redirects are not followed) | fatal |

use crate::executor::ExecError;
use reqwest::StatusCode;
use serde_json::Value;
use std::time::{Duration, SystemTime};

/// The longest `Retry-After` honoured. An agent asking for more is retried after an hour anyway: a
/// task parked for a day by one bad header is worse than one early retry (which may get another 429).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// How many characters of an agent's error message go into the task's error (and its dead letter).
pub const MAX_MESSAGE_CHARS: usize = 500;

/// What the agent's answer means: the task's result, or how the attempt failed.
pub fn outcome(status: StatusCode, retry_after: Option<Duration>, body: &[u8]) -> Result<Value, ExecError> {
    if status == StatusCode::NO_CONTENT {
        return Ok(Value::Null);
    }
    if status.is_success() {
        return serde_json::from_slice(body).map_err(|e| {
            ExecError::Fatal(format!(
                "the agent answered {} with a body that is not JSON ({e}): {}; an http agent answers JSON, or 204 for no result",
                describe(status),
                message(body)
            ))
        });
    }
    let error = format!("the agent answered {}: {}", describe(status), message(body));
    Err(match status.as_u16() {
        408 | 429 => match retry_after {
            Some(after) => ExecError::RetryAfter { error, after },
            None => ExecError::Retryable(error),
        },
        500..=599 => ExecError::Server { error, retry_after },
        400..=499 => ExecError::Fatal(error),
        _ => ExecError::Fatal(format!(
            "the agent answered {}, which is not a result (redirects are not followed: set `endpoint` to the URL that answers)",
            describe(status)
        )),
    })
}

/// `429 Too Many Requests`, or just `599` for a code without a standard name.
fn describe(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("HTTP {} {reason}", status.as_u16()),
        None => format!("HTTP {}", status.as_u16()),
    }
}

/// A `Retry-After` value (RFC 9110 §10.2.3): delay-seconds or an HTTP date, as the wait from `now`,
/// capped at [`MAX_RETRY_AFTER`]. A date in the past means "now" (zero); a value that is neither is
/// ignored (`None`), and the agent's retry backoff applies alone.
pub fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    let wait = if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for a u64 is still "a very long time": cap it rather than ignore it.
        Duration::from_secs(v.parse::<u64>().unwrap_or(u64::MAX))
    } else {
        let at = httpdate::parse_http_date(v).ok()?;
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// The message of an error body, for the task's error: the `error`, `message` or `detail` field of a
/// JSON object (nested objects such as `{"error": {"message": …}}` are looked into), else the text
/// itself, whitespace collapsed, truncated to [`MAX_MESSAGE_CHARS`] characters.
pub fn message(body: &[u8]) -> String {
    let found = serde_json::from_slice::<Value>(body).ok().and_then(|v| json_message(&v));
    let text = match found {
        Some(m) => m,
        None => String::from_utf8_lossy(body).into_owned(),
    };
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        return "(empty body)".into();
    }
    truncate(&text, MAX_MESSAGE_CHARS)
}

fn json_message(v: &Value) -> Option<String> {
    for key in ["error", "message", "detail"] {
        match v.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s.trim().is_empty() => {}
            Some(Value::String(s)) => return Some(s.clone()),
            Some(inner @ Value::Object(_)) => return Some(json_message(inner).unwrap_or_else(|| inner.to_string())),
            // e.g. FastAPI's `{"detail": [{"loc": …, "msg": …}]}`: the compact JSON says it all.
            Some(other) => return Some(other.to_string()),
        }
    }
    None
}

/// The first `max` characters of `text`, with `…` when it was longer.
fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((cut, _)) => format!("{}…", &text[..cut]),
    }
}

/// The fatal error for a 2xx answer over the size limit.
pub fn too_large(limit: usize) -> ExecError {
    ExecError::Fatal(format!(
        "response exceeds {} (the http executor's limit): the agent's result is too large; return a reference (a URL, a key) to large data instead",
        bytes(limit)
    ))
}

/// `4194304` → `4 MiB`; `1500` → `1500 bytes`.
fn bytes(n: usize) -> String {
    const MIB: usize = 1024 * 1024;
    const KIB: usize = 1024;
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else if n >= KIB && n.is_multiple_of(KIB) {
        format!("{} KiB", n / KIB)
    } else {
        format!("{n} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn status(code: u16) -> StatusCode {
        StatusCode::from_u16(code).expect("a valid status code")
    }

    #[test]
    fn a_2xx_json_body_is_the_result() {
        assert_eq!(outcome(status(200), None, br#"{"x": [1, 2]}"#), Ok(json!({"x": [1, 2]})));
        assert_eq!(outcome(status(201), None, b"7"), Ok(json!(7)));
    }

    #[test]
    fn no_content_is_null() {
        assert_eq!(outcome(status(204), None, b""), Ok(Value::Null));
    }

    #[test]
    fn a_2xx_that_is_not_json_is_fatal_and_says_so() {
        for body in [&b"<html>ok</html>"[..], b""] {
            let Err(ExecError::Fatal(e)) = outcome(status(200), None, body) else { panic!("fatal for {body:?}") };
            assert!(e.contains("HTTP 200 OK") && e.contains("not JSON"), "{e}");
        }
    }

    #[test]
    fn throttling_waits_for_retry_after_when_given() {
        let after = Duration::from_secs(3);
        for code in [408, 429] {
            match outcome(status(code), Some(after), br#"{"error": "slow down"}"#) {
                Err(ExecError::RetryAfter { error, after: a }) => {
                    assert_eq!(a, after);
                    assert!(error.contains(&code.to_string()) && error.ends_with("slow down"), "{error}");
                }
                other => panic!("{code}: {other:?}"),
            }
            assert!(matches!(outcome(status(code), None, b""), Err(ExecError::Retryable(_))));
        }
    }

    #[test]
    fn server_errors_are_endpoint_faults_with_their_retry_after() {
        let r = outcome(status(503), Some(Duration::from_secs(2)), b"maintenance");
        let Err(e @ ExecError::Server { .. }) = r else { panic!("{r:?}") };
        assert!(e.is_endpoint_fault());
        assert_eq!(
            e,
            ExecError::Server {
                error: "the agent answered HTTP 503 Service Unavailable: maintenance".into(),
                retry_after: Some(Duration::from_secs(2))
            }
        );
        assert!(matches!(outcome(status(500), None, b""), Err(ExecError::Server { retry_after: None, .. })));
        assert!(matches!(outcome(status(599), None, b""), Err(ExecError::Server { .. })));
    }

    #[test]
    fn other_client_errors_are_fatal_with_the_body_message() {
        let r = outcome(status(400), None, br#"{"error": "payload needs `name`"}"#);
        assert_eq!(r, Err(ExecError::Fatal("the agent answered HTTP 400 Bad Request: payload needs `name`".into())));
        assert!(
            matches!(outcome(status(404), None, b"no such route"), Err(ExecError::Fatal(e)) if e.ends_with("no such route"))
        );
    }

    #[test]
    fn redirects_and_informational_answers_are_fatal() {
        for code in [301, 302, 307, 101] {
            let r = outcome(status(code), None, b"");
            assert!(
                matches!(&r, Err(ExecError::Fatal(e)) if e.contains("redirects are not followed")),
                "{code}: {r:?}"
            );
        }
    }

    #[test]
    fn retry_after_in_seconds() {
        let now = SystemTime::now();
        assert_eq!(retry_after("1", now), Some(Duration::from_secs(1)));
        assert_eq!(retry_after(" 120 ", now), Some(Duration::from_secs(120)));
        assert_eq!(retry_after("0", now), Some(Duration::ZERO));
    }

    #[test]
    fn retry_after_is_capped() {
        let now = SystemTime::now();
        assert_eq!(retry_after("86400", now), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after("99999999999999999999999", now), Some(MAX_RETRY_AFTER));
        let far = httpdate::fmt_http_date(now + Duration::from_secs(7 * 86_400));
        assert_eq!(retry_after(&far, now), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn retry_after_as_an_http_date() {
        // HTTP dates have whole seconds: measure from a whole second.
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let date = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(retry_after(&date, now), Some(Duration::from_secs(90)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(90));
        assert_eq!(retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now), Some(Duration::ZERO));
    }

    #[test]
    fn a_retry_after_that_is_neither_is_ignored() {
        let now = SystemTime::now();
        for bad in ["", "soon", "-5", "1.5", "10s", "Tomorrow, 12:00"] {
            assert_eq!(retry_after(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn the_message_of_an_error_body() {
        assert_eq!(message(br#"{"error": "quota exceeded"}"#), "quota exceeded");
        assert_eq!(message(br#"{"message": "bad input", "code": 7}"#), "bad input");
        assert_eq!(message(br#"{"error": {"message": "nested", "type": "x"}}"#), "nested");
        assert_eq!(message(br#"{"error": {"code": 7}}"#), r#"{"code":7}"#);
        assert_eq!(message(br#"{"detail": [{"msg": "field required"}]}"#), r#"[{"msg":"field required"}]"#);
        // `error` empty: the next field speaks.
        assert_eq!(message(br#"{"error": "", "message": "m"}"#), "m");
        // JSON without a known field, and plain text, come back as text.
        assert_eq!(message(br#"{"status": "down"}"#), r#"{"status": "down"}"#);
        assert_eq!(message(b"  upstream\n  timed out\n"), "upstream timed out");
        assert_eq!(message(b""), "(empty body)");
        assert_eq!(message(b"\xff\xfe oops"), "\u{fffd}\u{fffd} oops");
    }

    #[test]
    fn long_messages_are_truncated_at_a_character() {
        let long = "é".repeat(MAX_MESSAGE_CHARS + 10);
        let m = message(long.as_bytes());
        assert_eq!(m.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert!(m.ends_with('…'));
        let exact = "a".repeat(MAX_MESSAGE_CHARS);
        assert_eq!(message(exact.as_bytes()), exact);
    }

    #[test]
    fn too_large_names_the_limit() {
        assert!(matches!(too_large(4 * 1024 * 1024), ExecError::Fatal(e) if e.starts_with("response exceeds 4 MiB")));
        assert_eq!(bytes(64 * 1024), "64 KiB");
        assert_eq!(bytes(1500), "1500 bytes");
    }
}
