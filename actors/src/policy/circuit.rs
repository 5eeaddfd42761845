//! The circuit breaker's rule, as a pure state machine over (state, event, now).
//!
//! Closed counts consecutive endpoint failures; at `failures` it opens for `open_for`. Once that time has
//! passed, the next admission is a single probe (half-open); everyone else keeps waiting. The probe's
//! success closes the circuit, its failure opens it again for another `open_for`.

use crate::roster::BreakerSpec;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Circuit {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One probe is in flight; its outcome decides.
    HalfOpen,
}

/// What a worker about to call the endpoint may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Go,
    /// Go, as the one probe of a half-open circuit.
    Probe,
    /// Do not call; ask again at `until` (or when the probe's outcome is known, if `None`).
    Wait(Option<Instant>),
}

impl Circuit {
    pub const CLOSED: Circuit = Circuit::Closed { failures: 0 };

    /// A label for metrics and `genesis health`.
    pub fn label(&self) -> &'static str {
        match self {
            Circuit::Closed { .. } => "closed",
            Circuit::Open { .. } => "open",
            Circuit::HalfOpen => "half_open",
        }
    }

    /// 0 closed, 1 half-open, 2 open (the `genesis_circuit_state` gauge).
    pub fn gauge(&self) -> i64 {
        match self {
            Circuit::Closed { .. } => 0,
            Circuit::HalfOpen => 1,
            Circuit::Open { .. } => 2,
        }
    }

    /// May a caller go now? Returns the admission and the new state.
    pub fn admit(self, now: Instant) -> (Admission, Circuit) {
        match self {
            Circuit::Closed { .. } => (Admission::Go, self),
            Circuit::Open { until } if now >= until => (Admission::Probe, Circuit::HalfOpen),
            Circuit::Open { until } => (Admission::Wait(Some(until)), self),
            Circuit::HalfOpen => (Admission::Wait(None), self),
        }
    }

    /// Should the fetcher read more tasks? Not while the endpoint is known to be down.
    pub fn reading(&self, now: Instant) -> bool {
        match self {
            Circuit::Closed { .. } => true,
            Circuit::Open { until } => now >= *until,
            Circuit::HalfOpen => false,
        }
    }

    /// The endpoint answered (whatever the task's own outcome).
    pub fn succeeded(self) -> Circuit {
        Circuit::CLOSED
    }

    /// The endpoint failed (unreachable, server error). `probe` says the failing call was the probe.
    pub fn failed(self, spec: &BreakerSpec, now: Instant, probe: bool) -> Circuit {
        let open = Circuit::Open { until: now + spec.open_for };
        match self {
            _ if probe => open,
            Circuit::Closed { failures } if failures + 1 >= spec.failures.max(1) => open,
            Circuit::Closed { failures } => Circuit::Closed { failures: failures + 1 },
            // A call admitted before the circuit opened failing late changes nothing.
            Circuit::Open { .. } | Circuit::HalfOpen => self,
        }
    }

    /// How long until the circuit is worth asking again (zero if it is not open).
    pub fn open_for(&self, now: Instant) -> Duration {
        match self {
            Circuit::Open { until } => until.saturating_duration_since(now),
            _ => Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SPEC: BreakerSpec = BreakerSpec { failures: 3, open_for: Duration::from_secs(10) };

    #[test]
    fn opens_after_consecutive_failures_and_a_success_resets_the_count() {
        let t = Instant::now();
        let c = Circuit::CLOSED.failed(&SPEC, t, false).failed(&SPEC, t, false);
        assert_eq!(c, Circuit::Closed { failures: 2 });
        assert_eq!(c.succeeded(), Circuit::CLOSED);
        let open = c.failed(&SPEC, t, false);
        assert_eq!(open, Circuit::Open { until: t + SPEC.open_for });
        assert!(!open.reading(t));
        assert_eq!(open.admit(t).0, Admission::Wait(Some(t + SPEC.open_for)));
    }

    #[test]
    fn half_open_lets_exactly_one_probe_through() {
        let t = Instant::now();
        let open = Circuit::Open { until: t };
        let (a, half) = open.admit(t);
        assert_eq!((a, half), (Admission::Probe, Circuit::HalfOpen));
        assert_eq!(half.admit(t).0, Admission::Wait(None));
        assert_eq!(half.succeeded(), Circuit::CLOSED);
        assert_eq!(half.failed(&SPEC, t, true), Circuit::Open { until: t + SPEC.open_for });
    }

    #[test]
    fn a_late_failure_of_a_call_admitted_earlier_does_not_extend_the_open_time() {
        let t = Instant::now();
        let open = Circuit::Open { until: t + SPEC.open_for };
        assert_eq!(open.failed(&SPEC, t + Duration::from_secs(5), false), open);
    }

    proptest! {
        /// Whatever happens, at most one probe is admitted per half-open period, and the circuit never
        /// admits anyone while open and not yet due.
        #[test]
        fn never_more_than_one_probe(events in proptest::collection::vec((0u8..3, 0u64..20), 1..200)) {
            let t0 = Instant::now();
            let mut c = Circuit::CLOSED;
            let mut probes_in_flight = 0;
            let mut now = t0;
            for (kind, dt) in events {
                now += Duration::from_secs(dt);
                match kind {
                    0 => {
                        let (a, next) = c.admit(now);
                        if let Circuit::Open { until } = c {
                            prop_assert!(now >= until || matches!(a, Admission::Wait(_)));
                        }
                        if a == Admission::Probe { probes_in_flight += 1; }
                        prop_assert!(probes_in_flight <= 1);
                        c = next;
                    }
                    1 => { if probes_in_flight > 0 { probes_in_flight -= 1; c = c.succeeded(); } }
                    _ => {
                        let probe = probes_in_flight > 0;
                        if probe { probes_in_flight -= 1; }
                        c = c.failed(&SPEC, now, probe);
                    }
                }
            }
        }
    }
}
