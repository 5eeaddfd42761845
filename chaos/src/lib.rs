//! The chaos harness of Genesis Orchestrator.
//!
//! `genesis-chaos run` starts its own `redis-server` (append-only file, `appendfsync always`) and N
//! `genesis serve` nodes, publishes a seeded mixed workload, kills nodes and Redis on a seeded schedule,
//! records every chaos event and every execution the executors report (`report_to`), waits for every
//! task to reach a final status and then checks the invariants of `docs/semantics.md`
//! ([`check::check`]). With `--agents outside` the roster's agents are real outside agents (A2A
//! servers on a2a-sdk and process agents, from `tests/agents/`), and the harness also kills the A2A
//! servers. See `docs/CHAOS.md`.
//!
//! Layout: `cluster` (Redis and the nodes) and `agents` (the A2A servers) are the processes;
//! `config` and `workload` what they are given; `harness` the run and its chaos schedule;
//! `receiver` and `metrics` what is observed meanwhile; `record` what is kept; `check` the verdict.

pub mod agents;
pub mod check;
pub mod cluster;
pub mod config;
pub mod harness;
pub mod metrics;
pub mod receiver;
pub mod record;
pub mod workload;

use std::time::Duration;

/// Parse a duration such as `250ms`, `60s`, `30m`, `2h` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("`{s}` is not a duration (e.g. 250ms, 60s, 30m, 2h)"))?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        other => return Err(format!("`{s}`: unknown unit `{other}` (ms, s, m, h)")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("`{s}` is not a valid duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Microseconds as seconds with millisecond precision, for printing.
pub fn secs(us: u64) -> String {
    format!("{:.3}s", us as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("8"), Ok(Duration::from_secs(8)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5d").is_err());
    }
}
