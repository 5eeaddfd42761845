//! The rate limit's rule: GCRA (the generic cell rate algorithm), as a pure function of one number of
//! state, the theoretical arrival time (TAT), and the time now. Both buses apply exactly this
//! arithmetic: the in-process bus calls [`decide`]; the Redis bus runs the same steps in
//! `bus/redis/lua/rate.lua`, on one key per agent and on Redis's own clock (`TIME`), so every node
//! sharing the Redis shares one limit and one clock.
//!
//! With an emission interval `T = per / count` and a burst `B`, a request at `now` is allowed when
//! `max(TAT, now) + T - now ≤ B × T`; then `TAT := max(TAT, now) + T`. Otherwise nothing changes and
//! the caller is told how long to wait. It follows that in any window of length `W`, at most
//! `B + W / T` requests are allowed (the property test below checks it), and that after an idle
//! period `B` requests go through at once.
//!
//! Times are whole microseconds (Lua's numbers are doubles: exact up to 2^53 µs, about 285 years past
//! the epoch), and `T` is rounded up, so the limit is never looser than configured.

use crate::roster::RateLimit;
use std::time::Duration;

/// A rate limit in the units the rule works in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    interval_us: u64,
    burst: u64,
}

/// What a request is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    /// Go now (the slot is taken).
    Allowed,
    /// Nothing was taken; ask again after this long.
    Wait(Duration),
}

impl Gcra {
    /// `count` per `per` with a burst of `burst` (0 is read as 1: one at a time).
    pub fn new(limit: &RateLimit) -> Gcra {
        let per_us = u64::try_from(limit.per.as_micros()).unwrap_or(u64::MAX);
        let count = u64::from(limit.count.max(1));
        Gcra { interval_us: per_us.div_ceil(count).max(1), burst: u64::from(limit.burst.max(1)) }
    }

    /// The emission interval `T`, in µs.
    pub fn interval_us(&self) -> u64 {
        self.interval_us
    }

    pub fn burst(&self) -> u64 {
        self.burst
    }

    /// Decide a request at `now_us` given the stored TAT (`None`: no state, e.g. an expired key).
    /// Returns the decision and, when allowed, the TAT to store.
    pub fn decide(&self, now_us: u64, tat_us: Option<u64>) -> (RateDecision, Option<u64>) {
        let tat = tat_us.unwrap_or(now_us).max(now_us);
        let new_tat = tat.saturating_add(self.interval_us);
        // Allowed at `new_tat - B×T`; the same test as `new_tat - now ≤ B×T`.
        let allow_at = new_tat.saturating_sub(self.burst.saturating_mul(self.interval_us));
        if now_us < allow_at {
            return (RateDecision::Wait(Duration::from_micros(allow_at - now_us)), None);
        }
        (RateDecision::Allowed, Some(new_tat))
    }
}

/// Render a rate limit as configured (`rate = "60/min"`, `burst = 10`), for `genesis health`.
pub fn describe(limit: &RateLimit) -> String {
    let per = humanize(limit.per);
    format!("{}/{per} (burst {})", limit.count, limit.burst.max(1))
}

fn humanize(d: Duration) -> String {
    match d.as_secs() {
        1 if d.subsec_nanos() == 0 => "s".into(),
        60 if d.subsec_nanos() == 0 => "min".into(),
        3600 if d.subsec_nanos() == 0 => "h".into(),
        _ => format!("{d:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn gcra(count: u32, per_ms: u64, burst: u32) -> Gcra {
        Gcra::new(&RateLimit { count, per: Duration::from_millis(per_ms), burst })
    }

    #[test]
    fn a_burst_goes_at_once_then_one_per_interval() {
        let g = gcra(10, 1000, 3); // T = 100 ms
        let mut tat = None;
        for _ in 0..3 {
            let (d, t) = g.decide(1_000_000, tat);
            assert_eq!(d, RateDecision::Allowed);
            tat = t;
        }
        assert_eq!(tat, Some(1_300_000));
        let (d, t) = g.decide(1_000_000, tat);
        assert_eq!((d, t), (RateDecision::Wait(Duration::from_millis(100)), None), "the 4th waits one interval");
        assert_eq!(g.decide(1_099_999, tat).0, RateDecision::Wait(Duration::from_micros(1)));
        assert_eq!(g.decide(1_100_000, tat), (RateDecision::Allowed, Some(1_400_000)));
    }

    #[test]
    fn idle_time_refills_the_burst_but_never_beyond_it() {
        let g = gcra(1, 1000, 2);
        let (_, tat) = g.decide(0, None);
        let (_, tat) = g.decide(0, tat);
        // Long idle: TAT is in the past and counts as now.
        let (d1, tat) = g.decide(60_000_000, tat);
        let (d2, tat) = g.decide(60_000_000, tat);
        let (d3, _) = g.decide(60_000_000, tat);
        assert_eq!((d1, d2), (RateDecision::Allowed, RateDecision::Allowed));
        assert!(matches!(d3, RateDecision::Wait(_)));
    }

    #[test]
    fn the_interval_rounds_up_and_zero_reads_as_one() {
        assert_eq!(gcra(3, 1000, 1).interval_us(), 333_334);
        assert_eq!(gcra(0, 1000, 0), gcra(1, 1000, 1));
    }

    #[test]
    fn described_as_configured() {
        let l = RateLimit { count: 60, per: Duration::from_secs(60), burst: 10 };
        assert_eq!(describe(&l), "60/min (burst 10)");
        let l = RateLimit { count: 5, per: Duration::from_secs(10), burst: 1 };
        assert_eq!(describe(&l), "5/10s (burst 1)");
    }

    proptest! {
        /// docs/semantics.md, "Rate limits": in every window of length W, at most B + W/T requests are
        /// allowed, whatever the arrival pattern.
        #[test]
        fn no_window_holds_more_than_burst_plus_rate_times_window(
            count in 1u32..50,
            per_ms in 1u64..5_000,
            burst in 1u32..8,
            gaps in prop::collection::vec(0u64..200_000, 1..300),
        ) {
            let g = gcra(count, per_ms, burst);
            let mut now = 1_700_000_000_000_000u64;
            let mut tat = None;
            let mut allowed = Vec::new();
            for gap in gaps {
                now += gap;
                let (d, t) = g.decide(now, tat);
                if d == RateDecision::Allowed {
                    allowed.push(now);
                    tat = t;
                } else {
                    prop_assert_eq!(t, None);
                }
            }
            let t = g.interval_us() as f64;
            for i in 0..allowed.len() {
                for j in i..allowed.len() {
                    let window = (allowed[j] - allowed[i]) as f64;
                    let n = (j - i + 1) as f64;
                    prop_assert!(n <= burst as f64 + window / t + 1e-9, "{} in {} µs", n, window);
                }
            }
        }

        /// A wait is exact: asking again after it is allowed, a moment before it is not.
        #[test]
        fn the_wait_is_exactly_until_the_next_slot(count in 1u32..50, per_ms in 1u64..5_000, burst in 1u32..8) {
            let g = gcra(count, per_ms, burst);
            let now = 1_000_000_000u64;
            let mut tat = None;
            for _ in 0..burst {
                tat = g.decide(now, tat).1;
            }
            let RateDecision::Wait(w) = g.decide(now, tat).0 else { return Err(TestCaseError::fail("allowed past the burst")) };
            let w = w.as_micros() as u64;
            prop_assert!(matches!(g.decide(now + w - 1, tat).0, RateDecision::Wait(_)));
            prop_assert_eq!(g.decide(now + w, tat).0, RateDecision::Allowed);
        }
    }
}
