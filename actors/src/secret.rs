//! Secrets: one type that will not print, and one redactor for text that may contain one.
//!
//! Passwords, tokens and webhook URLs are held as [`Secret`] (`secrecy::SecretString`): its `Debug`
//! prints `[REDACTED]` and it has no `Display`, so it cannot reach a log line by accident. Text that
//! came from outside and may embed a secret (a Redis URL in an error, a webhook URL) goes through
//! [`redact_url`] before it is shown anywhere.

pub use secrecy::{ExposeSecret, SecretString as Secret};

/// A secret URL or token that configuration types can hold and compare: `Debug` shows only the
/// redacted form, and the value is reached only through [`SecretText::expose`].
#[derive(Clone)]
pub struct SecretText(Secret);

impl SecretText {
    pub fn new(value: impl Into<String>) -> Self {
        SecretText(Secret::from(value.into()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The value fit for a log line.
    pub fn shown(&self) -> String {
        redact_url(self.expose())
    }
}

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.shown())
    }
}

impl PartialEq for SecretText {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

/// A secret with no shape to keep (a header value, a token): `Debug` prints `[REDACTED]` whatever it is.
#[derive(Clone)]
pub struct Hidden(Secret);

impl Hidden {
    pub fn new(value: impl Into<String>) -> Self {
        Hidden(Secret::from(value.into()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for Hidden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl PartialEq for Hidden {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

/// Query parameters whose values are secrets (`unix:///sock?pass=…`, `…?token=…`).
const SECRET_PARAMS: [&str; 5] = ["pass", "password", "token", "secret", "key"];

/// A URL fit for logs: user info becomes `***`, secret query values become `***`, and for http(s)
/// URLs the path is cut (a webhook URL's path is its credential, e.g. Discord's `/api/webhooks/<id>/<token>`).
/// Text that is not a URL comes back unchanged.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.find('/') {
        Some(i) => (&before_query[..i], &before_query[i..]),
        None => (before_query, ""),
    };
    let authority = match authority.rfind('@') {
        Some(at) => format!("***{}", &authority[at..]),
        None => authority.to_string(),
    };
    let is_http = scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https");
    let path = if is_http && path.len() > 1 { "/***" } else { path };
    let mut out = format!("{scheme}://{authority}{path}");
    if let Some(q) = query {
        if is_http {
            out.push_str("?***");
        } else {
            let q: Vec<String> = q
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if SECRET_PARAMS.iter().any(|s| k.eq_ignore_ascii_case(s)) => format!("{k}=***"),
                    _ => kv.to_string(),
                })
                .collect();
            out.push('?');
            out.push_str(&q.join("&"));
        }
    }
    out
}

/// Replace every occurrence of `secret` in `text` (e.g. an error message that quotes a URL) with `***`.
pub fn scrub(text: &str, secret: &str) -> String {
    if secret.len() < 3 {
        return text.to_string();
    }
    text.replace(secret, "***")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_info_is_hidden() {
        assert_eq!(redact_url("rediss://default:hunter2@db.example:6380/0"), "rediss://***@db.example:6380/0");
        assert_eq!(redact_url("redis://:pw@h"), "redis://***@h");
        assert_eq!(redact_url("redis+sentinel://u:p@a:1,b:2/mymaster"), "redis+sentinel://***@a:1,b:2/mymaster");
    }

    #[test]
    fn secret_query_values_are_hidden() {
        assert_eq!(redact_url("unix:///run/redis.sock?db=2&pass=hunter2"), "unix:///run/redis.sock?db=2&pass=***");
    }

    #[test]
    fn http_paths_and_queries_are_cut() {
        assert_eq!(redact_url("https://discord.com/api/webhooks/123/tok-en"), "https://discord.com/***");
        assert_eq!(redact_url("https://hooks.example/x?sig=abc"), "https://hooks.example/***?***");
        assert_eq!(redact_url("http://127.0.0.1:9000/"), "http://127.0.0.1:9000/");
    }

    #[test]
    fn plain_text_is_unchanged() {
        assert_eq!(redact_url("not a url"), "not a url");
        assert_eq!(redact_url("redis://h:6379/"), "redis://h:6379/");
    }

    #[test]
    fn scrub_removes_every_occurrence() {
        assert_eq!(scrub("bad pw hunter2 in hunter2", "hunter2"), "bad pw *** in ***");
    }
}
