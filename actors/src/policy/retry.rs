//! The one retry policy of every transient-error loop (bus calls, the fetcher's reads, node services,
//! reconnects at start-up, webhook posts): count consecutive failures against one [`Backoff`]
//! schedule, wait the jittered delay, and log the first failure and then only at exponentially spaced
//! counts (1, 2, 4, 8, …) so an outage does not flood the log. Whether to give up is the caller's rule
//! (e.g. `bus::retrying::should_retry` by error class); this type only paces.

use super::backoff::Backoff;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retry {
    schedule: Backoff,
    failures: u32,
}

/// What to do after one more failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// Consecutive failures so far, this one included (≥ 1).
    pub failures: u32,
    /// Wait this long before the next try.
    pub delay: Duration,
    /// Worth a log line (the first failure, then at powers of two).
    pub log: bool,
}

impl Retry {
    pub const fn new(schedule: Backoff) -> Self {
        Retry { schedule, failures: 0 }
    }

    /// One more failure, with a jitter sample in `[0, 1)` (pure: tests pin it).
    pub fn failed_with(&mut self, jitter: f64) -> Failure {
        self.failures = self.failures.saturating_add(1);
        Failure {
            failures: self.failures,
            delay: self.schedule.delay(self.failures, jitter),
            log: self.failures.is_power_of_two(),
        }
    }

    /// One more failure, with fresh random jitter.
    pub fn failed(&mut self) -> Failure {
        self.failed_with(rand::random::<f64>())
    }

    /// A success: the count starts over. Returns how many failures it ended (0: there were none).
    pub fn succeeded(&mut self) -> u32 {
        std::mem::take(&mut self.failures)
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1), 2.0);

    #[test]
    fn delays_grow_cap_and_restart_after_a_success() {
        let mut r = Retry::new(B);
        let delays: Vec<u128> = (0..6).map(|_| r.failed_with(1.0).delay.as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(r.succeeded(), 6);
        assert_eq!(r.succeeded(), 0);
        assert_eq!(r.failed_with(1.0), Failure { failures: 1, delay: Duration::from_millis(100), log: true });
    }

    #[test]
    fn logs_at_powers_of_two_only() {
        let mut r = Retry::new(B);
        let logged: Vec<u32> = (0..20).map(|_| r.failed_with(0.5)).filter(|f| f.log).map(|f| f.failures).collect();
        assert_eq!(logged, [1, 2, 4, 8, 16]);
    }
}
