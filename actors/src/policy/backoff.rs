//! The one backoff type: capped exponential growth with "equal jitter".
//!
//! Used for restart delays, retry delays and reconnects. Jitter is passed in as a sample in `[0, 1)` so
//! the function stays pure and tests can pin it.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub multiplier: f64,
}

impl Backoff {
    pub const fn new(initial: Duration, max: Duration, multiplier: f64) -> Self {
        Backoff { initial, max, multiplier }
    }

    /// The same schedule with another starting delay (e.g. an agent's own `retry_delay`).
    pub fn starting_at(self, initial: Duration) -> Self {
        Backoff { initial, ..self }
    }

    /// Un-jittered delay before the `n`-th consecutive try (`n` ≥ 1): `initial × multiplier^(n-1)`,
    /// never above `max`.
    pub fn ceiling(&self, n: u32) -> Duration {
        let exp = n.saturating_sub(1).min(64) as i32;
        let secs = self.initial.as_secs_f64() * self.multiplier.max(1.0).powi(exp);
        let capped = secs.min(self.max.as_secs_f64());
        if capped.is_finite() && capped >= 0.0 {
            Duration::from_secs_f64(capped)
        } else {
            self.max
        }
    }

    /// Jittered delay: half the ceiling plus `jitter` (in `[0, 1)`) of the other half, so concurrent
    /// clients spread out but never retry sooner than half the schedule.
    pub fn delay(&self, n: u32, jitter: f64) -> Duration {
        let ceiling = self.ceiling(n);
        let half = ceiling / 2;
        half + half.mul_f64(jitter.clamp(0.0, 1.0))
    }

    /// [`Self::delay`] with a fresh random jitter sample.
    pub fn delay_random(&self, n: u32) -> Duration {
        self.delay(n, rand::random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2), 2.0);

    #[test]
    fn grows_exponentially_then_caps() {
        let ms: Vec<u128> = (1..=8).map(|n| B.ceiling(n).as_millis()).collect();
        assert_eq!(ms, vec![100, 200, 400, 800, 1600, 2000, 2000, 2000]);
    }

    #[test]
    fn jitter_stays_within_half_and_full_ceiling() {
        for n in 1..10 {
            assert_eq!(B.delay(n, 0.0), B.ceiling(n) / 2);
            assert!(B.delay(n, 0.999) <= B.ceiling(n));
            assert!(B.delay(n, 5.0) <= B.ceiling(n), "jitter is clamped");
        }
    }

    #[test]
    fn huge_attempt_numbers_do_not_overflow() {
        assert_eq!(B.ceiling(u32::MAX), Duration::from_secs(2));
    }

    #[test]
    fn starting_at_keeps_cap_and_multiplier() {
        let b = B.starting_at(Duration::from_millis(10));
        assert_eq!(b.ceiling(2), Duration::from_millis(20));
        assert_eq!(b.max, B.max);
    }
}
