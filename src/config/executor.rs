//! An `[[agent]]`'s executor keys (`executor`, `endpoint`, `headers`, `command`, `cwd`, `env`) and its
//! back-pressure keys (`rate`, `burst`, `circuit_failures`, `circuit_open`) → the roster's types. Keys
//! that do not belong to the chosen executor are errors, so a typo'd `executor` cannot leave an
//! `endpoint` silently unused.

use super::checks::{duration, http_url, int, quote};
use super::files::AgentFile;
use super::issues::Issues;
use genesis_actors::roster::{BreakerSpec, Endpoint, ExecutorSpec, ProcessSpec, RateLimit};
use genesis_actors::secret::Hidden;
use std::time::Duration;

const BURST_RANGE: std::ops::RangeInclusive<i64> = 1..=1_000_000;
const CIRCUIT_FAILURES_RANGE: std::ops::RangeInclusive<i64> = 1..=10_000;

/// The executor of one agent from its `executor` value (already checked against the known names) and
/// the keys that go with it.
pub(crate) fn executor(
    issues: &mut Issues,
    key: &dyn Fn(&str) -> String,
    executor: String,
    e: &AgentFile,
) -> ExecutorSpec {
    let stray = |issues: &mut Issues, name: &str, present: bool| {
        if present {
            let problem =
                format!("not used by executor {} (remove it, or choose an executor that uses it)", quote(&executor));
            issues.push(key(name), None, problem);
        }
    };
    let endpoint_keys = |issues: &mut Issues| -> Endpoint {
        let url = match e.endpoint.as_deref() {
            None => {
                let problem = format!(
                    "missing: executor {} needs the agent's base URL, e.g. endpoint = \"http://127.0.0.1:8101\"",
                    quote(&executor)
                );
                issues.push(key("endpoint"), None, problem);
                String::new()
            }
            Some(raw) => match http_url(raw) {
                Ok(u) => u.to_string(),
                Err(problem) => {
                    issues.push(key("endpoint"), Some(quote(raw)), problem);
                    String::new()
                }
            },
        };
        let mut headers = Vec::new();
        for (name, value) in e.headers.iter().flatten() {
            if let Err(problem) = header(name, value) {
                // The value may be a secret: never shown.
                issues.push(format!("{}.{name}", key("headers")), None, problem);
            } else {
                headers.push((name.clone(), Hidden::new(value.clone())));
            }
        }
        Endpoint { url, headers }
    };
    match executor.as_str() {
        "a2a" | "http" => {
            stray(issues, "command", e.command.is_some());
            stray(issues, "cwd", e.cwd.is_some());
            stray(issues, "env", e.env.is_some());
            let ep = endpoint_keys(issues);
            if executor == "a2a" {
                ExecutorSpec::A2a(ep)
            } else {
                ExecutorSpec::Http(ep)
            }
        }
        "process" => {
            stray(issues, "endpoint", e.endpoint.is_some());
            stray(issues, "headers", e.headers.is_some());
            let command = e.command.clone().unwrap_or_default();
            if command.first().is_none_or(|c| c.trim().is_empty()) {
                let problem =
                    "missing: executor \"process\" needs argv, e.g. command = [\"python3\", \"agents/research.py\"]";
                issues.push(key("command"), e.command.as_ref().map(|c| format!("{c:?}")), problem);
            }
            let cwd = e.cwd.as_ref().map(std::path::PathBuf::from);
            if let Some(dir) = &cwd {
                if !dir.is_dir() {
                    issues.push(key("cwd"), Some(quote(&dir.display().to_string())), "is not a directory");
                }
            }
            let env = e.env.clone().unwrap_or_default();
            for name in env.keys() {
                if name.is_empty() || name.contains('=') || name.contains('\0') {
                    issues.push(format!("{}.{name}", key("env")), None, "not a valid environment variable name");
                }
            }
            ExecutorSpec::Process(ProcessSpec { command, cwd, env })
        }
        _ => {
            for (name, present) in [
                ("endpoint", e.endpoint.is_some()),
                ("headers", e.headers.is_some()),
                ("command", e.command.is_some()),
                ("cwd", e.cwd.is_some()),
                ("env", e.env.is_some()),
            ] {
                stray(issues, name, present);
            }
            ExecutorSpec::Named(executor)
        }
    }
}

/// A header name and value that HTTP can carry.
fn header(name: &str, value: &str) -> Result<(), String> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        return Err("not a valid header name (letters, digits and !#$%&'*+-.^_`|~)".into());
    }
    if value.chars().any(|c| c == '\r' || c == '\n' || c == '\0') {
        return Err("the value contains a line break or NUL".into());
    }
    Ok(())
}

/// `rate = "60/min"` (`N/s`, `N/sec`, `N/min`, `N/h`, or `N/<duration>` like `"5/10s"`) and `burst`.
pub(crate) fn rate(issues: &mut Issues, key: &dyn Fn(&str) -> String, e: &AgentFile) -> Option<RateLimit> {
    let Some(raw) = e.rate.as_deref() else {
        if e.burst.is_some() {
            issues.push(
                key("burst"),
                e.burst.map(|b| b.to_string()),
                "only meaningful with `rate` (e.g. rate = \"60/min\")",
            );
        }
        return None;
    };
    let parsed = parse_rate(raw);
    let (count, per) = match parsed {
        Ok(v) => v,
        Err(problem) => {
            issues.push(key("rate"), Some(quote(raw)), problem);
            return None;
        }
    };
    let burst = int(issues, &key("burst"), e.burst, 1u32, BURST_RANGE);
    Some(RateLimit { count, per, burst })
}

pub(crate) fn parse_rate(raw: &str) -> Result<(u32, Duration), String> {
    let fix = "write tasks per period, e.g. \"60/min\", \"5/s\", \"1000/h\" or \"3/10s\"";
    let (n, per) = raw.trim().split_once('/').ok_or_else(|| format!("not a rate; {fix}"))?;
    let count: u32 = n
        .trim()
        .parse()
        .ok()
        .filter(|c| *c > 0)
        .ok_or_else(|| format!("the count must be a whole number above 0; {fix}"))?;
    let per = match per.trim() {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        "d" | "day" => Duration::from_secs(86_400),
        other => humantime_serde::re::humantime::parse_duration(other)
            .map_err(|_| format!("unknown period {other:?}; {fix}"))?,
    };
    if per.is_zero() {
        return Err(format!("the period must be longer than 0; {fix}"));
    }
    Ok((count, per))
}

/// `circuit_failures` and `circuit_open`.
pub(crate) fn breaker(issues: &mut Issues, key: &dyn Fn(&str) -> String, e: &AgentFile) -> BreakerSpec {
    let d = BreakerSpec::default();
    BreakerSpec {
        failures: int(issues, &key("circuit_failures"), e.circuit_failures, d.failures, CIRCUIT_FAILURES_RANGE),
        open_for: duration(issues, &key("circuit_open"), e.circuit_open.as_deref(), d.open_for, true),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_rate;
    use std::time::Duration;

    #[test]
    fn rates() {
        assert_eq!(parse_rate("60/min"), Ok((60, Duration::from_secs(60))));
        assert_eq!(parse_rate(" 5 / s "), Ok((5, Duration::from_secs(1))));
        assert_eq!(parse_rate("3/10s"), Ok((3, Duration::from_secs(10))));
        for bad in ["60", "0/min", "-1/min", "x/min", "5/fortnight", "5/0s"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }
}
