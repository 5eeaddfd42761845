//! Value checks shared by every section: durations, bounded integers, node ids, socket addresses and
//! http(s) URLs. Each check that can fail records an [`Issues`] entry naming the key, the value as
//! written and the fix, and yields a fallback so the caller goes on and reports everything at once.

use super::issues::Issues;
use humantime_serde::re::humantime;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::time::Duration;

/// A string value as shown in messages.
pub(crate) fn quote(s: &str) -> String {
    format!("{s:?}")
}

/// A duration as shown in messages: as written if it was, else formatted.
pub(crate) fn show_duration(raw: Option<&str>, value: Duration) -> String {
    match raw {
        Some(raw) => quote(raw),
        None => quote(&humantime::format_duration(value).to_string()),
    }
}

/// A humantime duration (`"100ms"`, `"5s"`, `"7d"`), `default` if absent; `positive` rejects zero.
pub(crate) fn duration(
    issues: &mut Issues,
    key: &str,
    raw: Option<&str>,
    default: Duration,
    positive: bool,
) -> Duration {
    let Some(raw) = raw else { return default };
    match humantime::parse_duration(raw.trim()) {
        Ok(d) if positive && d.is_zero() => {
            issues.push(key, Some(quote(raw)), "must be longer than 0");
            default
        }
        Ok(d) => d,
        Err(e) => {
            let problem = format!("not a duration ({e}); write e.g. \"100ms\", \"5s\", \"10m\" or \"7d\"");
            issues.push(key, Some(quote(raw)), problem);
            default
        }
    }
}

/// An integer in `range`, `default` if absent.
pub(crate) fn int<T: TryFrom<i64> + Copy>(
    issues: &mut Issues,
    key: &str,
    raw: Option<i64>,
    default: T,
    range: RangeInclusive<i64>,
) -> T {
    let Some(raw) = raw else { return default };
    match T::try_from(raw) {
        Ok(v) if range.contains(&raw) => v,
        _ => {
            let problem = if *range.end() >= i64::from(u32::MAX) {
                format!("must be at least {}", range.start())
            } else {
                format!("must be between {} and {}", range.start(), range.end())
            };
            issues.push(key, Some(raw.to_string()), problem);
            default
        }
    }
}

/// `max` must not be below `min` (both already parsed).
pub(crate) fn not_shorter(
    issues: &mut Issues,
    (max_key, max_raw, max): (&str, Option<&str>, Duration),
    (min_key, min_raw, min): (&str, Option<&str>, Duration),
) {
    if max < min {
        let problem = format!("must not be shorter than {min_key} ({})", show_duration(min_raw, min));
        issues.push(max_key, Some(show_duration(max_raw, max)), problem);
    }
}

/// A node id has 1 to 64 characters among letters, digits, '.', '_' and '-' (so no '/', which
/// separates node and agent in consumer names).
pub(crate) fn check_node_id(id: &str) -> Result<(), &'static str> {
    let valid_char = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
    if id.is_empty() {
        Err("must not be empty")
    } else if id.len() > 64 {
        Err("must have at most 64 characters")
    } else if !id.chars().all(valid_char) {
        Err("may only contain letters, digits, '.', '_' and '-'")
    } else {
        Ok(())
    }
}

/// `http.addr` (or `--http-addr`): an IP address and port; empty disables HTTP.
pub(crate) fn parse_http_addr(raw: &str) -> Result<Option<SocketAddr>, &'static str> {
    if raw.is_empty() {
        return Ok(None);
    }
    raw.trim()
        .parse::<SocketAddr>()
        .map(Some)
        .map_err(|_| "must be an IP address and port, e.g. \"127.0.0.1:9464\" or \"[::]:9464\" (empty disables HTTP)")
}

/// An http(s) URL (a webhook, the OTLP endpoint), parsed with the `url` crate: scheme, host, port and
/// characters are checked the way the HTTP clients will read them. The text must spell out
/// `http://` or `https://`, because the URL parser silently repairs `http:/host` and `http:\\host`
/// while not every client that receives the text does.
pub(crate) fn http_url(raw: &str) -> Result<url::Url, String> {
    let raw = raw.trim();
    let wrong_scheme = || "must start with http:// or https://".to_string();
    let url = url::Url::parse(raw).map_err(|e| match e {
        url::ParseError::RelativeUrlWithoutBase => wrong_scheme(),
        e => format!("is not a valid URL ({e})"),
    })?;
    let spelled =
        raw.get(..url.scheme().len() + 3).is_some_and(|p| p.eq_ignore_ascii_case(&format!("{}://", url.scheme())));
    if !matches!(url.scheme(), "http" | "https") || !spelled {
        return Err(wrong_scheme());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("names no host".to_string());
    }
    Ok(url)
}
