//! What happens to a task after one attempt: succeed, retry later, or dead-letter.

use super::backoff::Backoff;
use std::time::Duration;

/// How one attempt ended, as seen by the worker.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptResult {
    Ok(serde_json::Value),
    /// The executor failed in a way worth retrying.
    Retryable(String),
    /// The executor failed in a way that retrying cannot fix.
    Fatal(String),
    /// The handler ran over the agent's timeout and was cancelled.
    TimedOut(Duration),
}

/// Stable reason codes written into the DLQ and the result record.
pub mod reason {
    pub const RETRIES_EXHAUSTED: &str = "retries_exhausted";
    pub const TIMEOUT: &str = "timeout";
    pub const FATAL: &str = "fatal_error";
    pub const DECODE: &str = "decode_error";
    pub const POISON: &str = "poison";
}

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Succeed(serde_json::Value),
    Retry { next_attempt: u32, delay: Duration, error: String },
    Dead { reason: &'static str, error: String },
}

/// Decide the fate of attempt `attempt` (1-based) of a task allowed `max_retries` retries.
/// Attempts never exceed `max_retries + 1`.
pub fn decide(attempt: u32, max_retries: u32, result: AttemptResult, retry: &Backoff, jitter: f64) -> Verdict {
    let (error, retryable, timed_out) = match result {
        AttemptResult::Ok(v) => return Verdict::Succeed(v),
        AttemptResult::Retryable(e) => (e, true, false),
        AttemptResult::Fatal(e) => (e, false, false),
        AttemptResult::TimedOut(t) => (format!("handler exceeded its timeout of {t:?} and was cancelled"), true, true),
    };
    if !retryable {
        return Verdict::Dead { reason: reason::FATAL, error };
    }
    if attempt > max_retries {
        let reason = if timed_out { reason::TIMEOUT } else { reason::RETRIES_EXHAUSTED };
        return Verdict::Dead { reason, error };
    }
    Verdict::Retry { next_attempt: attempt + 1, delay: retry.delay(attempt, jitter), error }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: Backoff = Backoff::new(Duration::from_secs(5), Duration::from_secs(60), 2.0);

    #[test]
    fn success_is_final() {
        assert_eq!(decide(4, 3, AttemptResult::Ok(1.into()), &R, 0.0), Verdict::Succeed(1.into()));
    }

    #[test]
    fn retries_until_max_then_dead() {
        let v: Vec<_> = (1..=4).map(|a| decide(a, 3, AttemptResult::Retryable("boom".into()), &R, 1.0)).collect();
        assert!(matches!(v[0], Verdict::Retry { next_attempt: 2, delay, .. } if delay == Duration::from_secs(5)));
        assert!(matches!(v[1], Verdict::Retry { next_attempt: 3, delay, .. } if delay == Duration::from_secs(10)));
        assert!(matches!(v[2], Verdict::Retry { next_attempt: 4, delay, .. } if delay == Duration::from_secs(20)));
        assert!(matches!(v[3], Verdict::Dead { reason: reason::RETRIES_EXHAUSTED, .. }));
    }

    #[test]
    fn fatal_errors_skip_retries() {
        assert!(matches!(
            decide(1, 3, AttemptResult::Fatal("x".into()), &R, 0.0),
            Verdict::Dead { reason: reason::FATAL, .. }
        ));
    }

    #[test]
    fn last_timeout_is_reported_as_timeout() {
        let t = AttemptResult::TimedOut(Duration::from_secs(1));
        assert!(matches!(decide(1, 1, t.clone(), &R, 0.0), Verdict::Retry { .. }));
        assert!(matches!(decide(2, 1, t, &R, 0.0), Verdict::Dead { reason: reason::TIMEOUT, .. }));
    }

    #[test]
    fn zero_retries_means_one_attempt() {
        assert!(matches!(decide(1, 0, AttemptResult::Retryable("x".into()), &R, 0.0), Verdict::Dead { .. }));
    }
}
