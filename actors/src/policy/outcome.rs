//! What happens to a task after one delivery: succeed, retry later, requeue, or dead-letter. Pure, so
//! every rule (retries, timeouts, poison entries, unreachable agents, cancellation) is unit-tested here.

use super::backoff::Backoff;
use std::time::Duration;

/// How one attempt ended, as seen by the worker.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptResult {
    Ok(serde_json::Value),
    /// The executor failed in a way worth retrying.
    Retryable(String),
    /// Worth retrying, but not before `after` (an HTTP `Retry-After`).
    RetryAfter {
        error: String,
        after: Duration,
    },
    /// The executor failed in a way that retrying cannot fix.
    Fatal(String),
    /// The handler ran over the agent's timeout and was cancelled.
    TimedOut(Duration),
    /// The agent could not be reached at all (connection refused, no agent card, open circuit): the
    /// attempt did not happen, so it is not counted; the task is requeued after `after`.
    Unavailable {
        error: String,
        after: Duration,
    },
    /// The task was cancelled on request (before or while running).
    Cancelled(String),
}

/// Stable reason codes written into the DLQ and the result record.
pub mod reason {
    pub const RETRIES_EXHAUSTED: &str = "retries_exhausted";
    pub const TIMEOUT: &str = "timeout";
    pub const FATAL: &str = "fatal_error";
    pub const DECODE: &str = "decode_error";
    pub const POISON: &str = "poison";
    pub const CANCELLED: &str = "cancelled";
}

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Succeed(serde_json::Value),
    /// Run again later as attempt `next_attempt` (equal to this attempt when the agent was unavailable:
    /// an attempt that never reached the agent is not spent).
    Retry {
        next_attempt: u32,
        delay: Duration,
        error: String,
    },
    Dead {
        reason: &'static str,
        error: String,
    },
}

/// The poison rule: an entry delivered more than `max_deliveries` times (each delivery ended in a crash
/// before an outcome was written) is dead-lettered instead of run again. `Some(error)` when it is poison.
pub fn poison(deliveries: u32, max_deliveries: u32, last_crash: Option<&str>) -> Option<String> {
    (deliveries > max_deliveries).then(|| {
        format!(
            "delivered {deliveries} times without an outcome (its worker crashed each time); limit bus.max_deliveries = {max_deliveries}{}",
            last_crash.map(|c| format!("; last crash: {c}")).unwrap_or_default()
        )
    })
}

/// Decide the fate of attempt `attempt` (1-based) of a task allowed `max_retries` retries.
/// Attempts never exceed `max_retries + 1`.
pub fn decide(attempt: u32, max_retries: u32, result: AttemptResult, retry: &Backoff, jitter: f64) -> Verdict {
    let (error, retryable, timed_out, at_least) = match result {
        AttemptResult::Ok(v) => return Verdict::Succeed(v),
        AttemptResult::Unavailable { error, after } => {
            return Verdict::Retry { next_attempt: attempt, delay: after, error };
        }
        AttemptResult::Cancelled(error) => return Verdict::Dead { reason: reason::CANCELLED, error },
        AttemptResult::Retryable(e) => (e, true, false, Duration::ZERO),
        AttemptResult::RetryAfter { error, after } => (error, true, false, after),
        AttemptResult::Fatal(e) => (e, false, false, Duration::ZERO),
        AttemptResult::TimedOut(t) => {
            (format!("handler exceeded its timeout of {t:?} and was cancelled"), true, true, Duration::ZERO)
        }
    };
    if !retryable {
        return Verdict::Dead { reason: reason::FATAL, error };
    }
    if attempt > max_retries {
        let reason = if timed_out { reason::TIMEOUT } else { reason::RETRIES_EXHAUSTED };
        return Verdict::Dead { reason, error };
    }
    Verdict::Retry { next_attempt: attempt + 1, delay: retry.delay(attempt, jitter).max(at_least), error }
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

    #[test]
    fn unavailable_agent_spends_no_attempt() {
        let u = AttemptResult::Unavailable { error: "refused".into(), after: Duration::from_secs(3) };
        // Even past the retry limit: the attempt never reached the agent.
        let v = decide(4, 3, u, &R, 0.0);
        assert_eq!(v, Verdict::Retry { next_attempt: 4, delay: Duration::from_secs(3), error: "refused".into() });
    }

    #[test]
    fn retry_after_is_a_floor_on_the_delay() {
        let r = |after| AttemptResult::RetryAfter { error: "429".into(), after };
        assert!(matches!(decide(1, 3, r(Duration::from_secs(30)), &R, 1.0),
            Verdict::Retry { next_attempt: 2, delay, .. } if delay == Duration::from_secs(30)));
        assert!(matches!(decide(1, 3, r(Duration::from_secs(1)), &R, 1.0),
            Verdict::Retry { delay, .. } if delay == Duration::from_secs(5)));
        assert!(matches!(
            decide(4, 3, r(Duration::from_secs(1)), &R, 1.0),
            Verdict::Dead { reason: reason::RETRIES_EXHAUSTED, .. }
        ));
    }

    #[test]
    fn cancelled_is_final_whatever_the_attempt() {
        assert!(matches!(
            decide(1, 3, AttemptResult::Cancelled("by user".into()), &R, 0.0),
            Verdict::Dead { reason: reason::CANCELLED, .. }
        ));
    }

    #[test]
    fn poison_after_the_delivery_limit_only() {
        assert_eq!(poison(5, 5, None), None);
        let p = poison(6, 5, Some("boom")).unwrap_or_default();
        assert!(p.contains("delivered 6 times") && p.contains("last crash: boom"), "{p}");
    }
}
