//! Restart intensity, OTP style: at most `max_restarts` restarts within `within`; one more failure in
//! that window means the supervisor gives up and escalates to its parent.
//!
//! The decision is a pure function of the restart history and the current instant.

use super::backoff::Backoff;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intensity {
    pub max_restarts: u32,
    pub within: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartDecision {
    /// Restart the child after `after`; this is restart number `restarts_in_window` in the window.
    Restart { after: Duration, restarts_in_window: u32 },
    /// Too many restarts in the window: stop and let the parent decide.
    Escalate { restarts_in_window: u32 },
}

/// Instants of recent restarts of one child (or one supervisor's children, for a shared budget).
#[derive(Debug, Clone, Default)]
pub struct RestartHistory {
    restarts: VecDeque<Instant>,
}

impl RestartHistory {
    /// Decide what to do about a failure at `now`, and record the restart if there is one.
    pub fn on_failure(
        &mut self,
        now: Instant,
        intensity: Intensity,
        backoff: &Backoff,
        jitter: f64,
    ) -> RestartDecision {
        while let Some(&first) = self.restarts.front() {
            if now.saturating_duration_since(first) >= intensity.within {
                self.restarts.pop_front();
            } else {
                break;
            }
        }
        let would_be = self.restarts.len() as u32 + 1;
        if would_be > intensity.max_restarts {
            return RestartDecision::Escalate { restarts_in_window: would_be - 1 };
        }
        self.restarts.push_back(now);
        RestartDecision::Restart { after: backoff.delay(would_be, jitter), restarts_in_window: would_be }
    }

    pub fn recent(&self) -> usize {
        self.restarts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const I: Intensity = Intensity { max_restarts: 3, within: Duration::from_secs(10) };
    const B: Backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(100), 2.0);

    #[test]
    fn restarts_up_to_max_then_escalates() {
        let t0 = Instant::now();
        let mut h = RestartHistory::default();
        let decisions: Vec<_> = (0..4).map(|i| h.on_failure(t0 + Duration::from_secs(i), I, &B, 0.0)).collect();
        assert_eq!(
            decisions,
            vec![
                RestartDecision::Restart { after: Duration::from_millis(5), restarts_in_window: 1 },
                RestartDecision::Restart { after: Duration::from_millis(10), restarts_in_window: 2 },
                RestartDecision::Restart { after: Duration::from_millis(20), restarts_in_window: 3 },
                RestartDecision::Escalate { restarts_in_window: 3 },
            ]
        );
    }

    #[test]
    fn old_restarts_leave_the_window() {
        let t0 = Instant::now();
        let mut h = RestartHistory::default();
        for i in 0..3 {
            h.on_failure(t0 + Duration::from_secs(i), I, &B, 0.0);
        }
        // 10 s after the first restart, it no longer counts.
        let d = h.on_failure(t0 + Duration::from_secs(10), I, &B, 0.0);
        assert!(matches!(d, RestartDecision::Restart { restarts_in_window: 3, .. }), "{d:?}");
    }

    #[test]
    fn zero_intensity_escalates_at_once() {
        let mut h = RestartHistory::default();
        let zero = Intensity { max_restarts: 0, within: Duration::from_secs(1) };
        assert_eq!(h.on_failure(Instant::now(), zero, &B, 0.5), RestartDecision::Escalate { restarts_in_window: 0 });
    }

    #[test]
    fn backoff_is_capped() {
        let t0 = Instant::now();
        let many = Intensity { max_restarts: 100, within: Duration::from_secs(100) };
        let mut h = RestartHistory::default();
        let mut last = Duration::ZERO;
        for i in 0..50 {
            if let RestartDecision::Restart { after, .. } = h.on_failure(t0 + Duration::from_millis(i), many, &B, 0.999)
            {
                last = after;
            }
        }
        assert!(last <= Duration::from_millis(100));
    }
}
