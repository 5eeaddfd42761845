//! Waiting for the agent's rate limit (`rate`, `burst` in `agents.toml`) before an attempt: one slot
//! per attempt from the limit every node shares ([`crate::bus::Bus::rate_acquire`]). The wait is
//! observed in `genesis_rate_limit_wait_seconds` and noted on the attempt's span.
//!
//! A bus error while asking is retried with the bus's retry helper; one that is not worth retrying
//! (tied to the call, e.g. a key of the wrong type) lets the task go without the limit, logged: a
//! broken limiter must not stop an agent's work.

use super::AgentContext;
use crate::bus::retrying::until_ok;
use crate::policy::rate::RateDecision;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// Wait for a slot of the agent's rate limit (at once without one). `false`: cancelled while waiting.
pub async fn wait_for_slot(ctx: &AgentContext, cancel: &CancellationToken) -> bool {
    let Some(limit) = ctx.spec.rate else { return true };
    let started = Instant::now();
    let mut waits = 0u32;
    loop {
        let asked =
            until_ok(&ctx.settings.bus.reconnect, "rate limit", || ctx.bus.rate_acquire(&ctx.spec.name, &limit));
        let decision = tokio::select! {
            d = asked => d,
            _ = cancel.cancelled() => return false,
        };
        match decision {
            Ok(RateDecision::Allowed) => break,
            Ok(RateDecision::Wait(wait)) => {
                waits += 1;
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = cancel.cancelled() => return false,
                }
            }
            Err(e) => {
                tracing::error!(agent = %ctx.spec.name, error = %e, "the rate limit could not be asked; running this task without it");
                break;
            }
        }
    }
    let waited = started.elapsed();
    ctx.metrics.rate_wait.get_or_create(&crate::metrics::Metrics::agent(&ctx.spec.name)).observe(waited.as_secs_f64());
    if waits > 0 {
        tracing::info!(agent = %ctx.spec.name, waited_ms = waited.as_millis() as u64, waits, "waited for the agent's rate limit");
    }
    true
}
