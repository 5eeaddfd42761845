//! One agent endpoint's circuit breaker, shared by the agent's fetcher and workers on this node: the
//! rule is [`crate::policy::circuit`]; this adds the lock, the wake-ups and what operators see (metrics,
//! log lines, span events, `genesis health`).
//!
//! The state is per node on purpose: each node finds out for itself that an endpoint is down, after
//! `failures` calls, which costs nothing (those calls spend no attempts).

use crate::metrics::{AgentLabel, CircuitLabel, Metrics};
use crate::policy::circuit::{Admission, Circuit};
use crate::roster::BreakerSpec;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

pub struct Breaker {
    agent: String,
    spec: BreakerSpec,
    state: Mutex<Circuit>,
    changed: Notify,
    metrics: OnceLock<Arc<Metrics>>,
}

/// A permission to call the endpoint; report how the call went with [`Breaker::record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permit {
    probe: bool,
}

impl Breaker {
    pub fn new(agent: &str, spec: BreakerSpec) -> Self {
        Breaker {
            agent: agent.to_string(),
            spec,
            state: Mutex::new(Circuit::CLOSED),
            changed: Notify::new(),
            metrics: OnceLock::new(),
        }
    }

    pub fn with_metrics(&self, metrics: Arc<Metrics>) {
        let label = AgentLabel { agent: self.agent.clone() };
        metrics.circuit_state.get_or_create(&label).set(0);
        let _ = self.metrics.set(metrics);
    }

    pub fn state(&self) -> Circuit {
        self.state.lock().map(|s| *s).unwrap_or(Circuit::CLOSED)
    }

    /// Should the fetcher read more tasks now? If not, how long until it may look again.
    pub fn reading(&self) -> Result<(), Duration> {
        let now = Instant::now();
        let c = self.state();
        if c.reading(now) {
            Ok(())
        } else {
            Err(c.open_for(now).max(Duration::from_millis(100)))
        }
    }

    /// Wait until the endpoint may be called (at once while closed). Cancel-safe.
    pub async fn admit(&self) -> Permit {
        let started = Instant::now();
        let mut waited = false;
        loop {
            // Register for the wake-up before looking, so a change in between is not missed.
            let notified = self.changed.notified();
            let now = Instant::now();
            let (admission, before, after) = {
                let mut g = match self.state.lock() {
                    Ok(g) => g,
                    Err(p) => p.into_inner(),
                };
                let before = *g;
                let (a, next) = before.admit(now);
                *g = next;
                (a, before, next)
            };
            if before != after {
                self.transitioned(after, "open time over: one probe goes through");
            }
            let permit = match admission {
                Admission::Go => Permit { probe: false },
                Admission::Probe => Permit { probe: true },
                Admission::Wait(until) => {
                    waited = true;
                    let max = until.map_or(self.spec.open_for, |u| u.saturating_duration_since(now));
                    let _ = tokio::time::timeout(max.max(Duration::from_millis(10)), notified).await;
                    continue;
                }
            };
            if waited {
                if let Some(m) = self.metrics.get() {
                    let label = AgentLabel { agent: self.agent.clone() };
                    m.circuit_wait.get_or_create(&label).observe(started.elapsed().as_secs_f64());
                }
            }
            return permit;
        }
    }

    /// How the call under `permit` went for the endpoint: `fault` when it was unreachable or failed on
    /// its side.
    pub fn record(&self, permit: Permit, fault: bool) {
        let now = Instant::now();
        let (before, after) = {
            let mut g = match self.state.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            let before = *g;
            *g = if fault { before.failed(&self.spec, now, permit.probe) } else { before.succeeded() };
            (before, *g)
        };
        if before.label() != after.label() {
            let why = match after {
                Circuit::Open { .. } if permit.probe => "the probe failed",
                Circuit::Open { .. } => "repeated endpoint failures",
                _ => "the endpoint answered",
            };
            self.transitioned(after, why);
        }
    }

    fn transitioned(&self, to: Circuit, why: &str) {
        self.changed.notify_waiters();
        if let Some(m) = self.metrics.get() {
            let label = AgentLabel { agent: self.agent.clone() };
            m.circuit_state.get_or_create(&label).set(to.gauge());
            let l = CircuitLabel { agent: self.agent.clone(), state: to.label().into() };
            m.circuit_transitions.get_or_create(&l).inc();
        }
        match to {
            Circuit::Open { .. } => tracing::warn!(
                agent = %self.agent, state = to.label(), open_for = ?self.spec.open_for, %why,
                "circuit opened: this agent's fetcher stops reading; queued tasks wait in the stream"
            ),
            _ => tracing::info!(agent = %self.agent, state = to.label(), %why, "circuit state changed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiter_is_released_by_the_probe_success() {
        let b = Arc::new(Breaker::new("a", BreakerSpec { failures: 1, open_for: Duration::from_millis(20) }));
        let p = b.admit().await;
        b.record(p, true);
        assert!(b.reading().is_err());
        let probe = b.admit().await; // after open_for: the probe
        assert_eq!(probe, Permit { probe: true });
        let waiter = tokio::spawn({
            let b = b.clone();
            async move { b.admit().await }
        });
        b.record(probe, false);
        let permit = tokio::time::timeout(Duration::from_secs(5), waiter).await;
        assert!(matches!(permit, Ok(Ok(Permit { probe: false }))));
        assert!(b.reading().is_ok());
    }
}
