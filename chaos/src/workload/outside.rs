//! Task kinds for the outside test agents (`tests/agents/README.md`), steered by the payload's
//! `mode`. Kinds are named `a2a.*` (the A2A agents: `a2a_agent.py` on a2a-sdk) and `proc.*` (the
//! process agents: `process_agent.py`).

use super::{marker, Ctx, Kind};
use crate::config::{OTHER_VENDOR, WHITELIST};
use crate::record::Expect;
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::json;

/// Every kind this module plans (the workload test checks each appears).
#[cfg(test)]
pub(super) const KINDS: &[&str] = &[
    "a2a.echo",
    "a2a.progress",
    "a2a.slow_ok",
    "a2a.slow_timeout",
    "a2a.fail_ok",
    "a2a.fail_dead",
    "a2a.reject",
    "proc.echo",
    "proc.progress",
    "proc.sleep_ok",
    "proc.sleep_timeout",
    "proc.fail_ok",
    "proc.fail_dead",
    "proc.fatal",
    "proc.crash_once",
    "proc.poison",
    "proc.pay",
];

/// Seconds past the agent's timeout for payloads meant to be cancelled.
const BEYOND_TIMEOUT_S: f64 = 1.0;

fn timeout_s(ctx: &Ctx<'_>) -> f64 {
    ctx.agent.timeout_ms as f64 / 1000.0
}

fn dead(reason: &str) -> Expect {
    Expect::Dead(reason.into())
}

/// The kind of a task for an A2A agent.
pub(super) fn a2a(rng: &mut StdRng, ctx: &Ctx<'_>) -> Kind {
    let (mix, max_retries) = (ctx.mix, ctx.agent.max_retries);
    let u: f64 = rng.random();
    let message = "failing on purpose (chaos)";
    if u < mix.fail_ratio {
        match rng.random_range(0..3) {
            0 => {
                let n = rng.random_range(1..=max_retries.max(1));
                let p = json!({"mode": "fail", "message": message, "fail_attempts": n});
                Kind::new("a2a.fail_ok", p, Expect::Succeeded)
            }
            // FAILED is retryable: every attempt fails.
            1 => Kind::new("a2a.fail_dead", json!({"mode": "fail", "message": message}), dead("retries_exhausted")),
            // REJECTED is fatal.
            _ => Kind::new("a2a.reject", json!({"mode": "reject", "message": message}), dead("fatal_error")),
        }
    } else if u < mix.fail_ratio + mix.slow_ratio {
        if rng.random_bool(0.5) {
            let s = rng.random_range(0.1..0.4);
            Kind::new("a2a.slow_ok", json!({"mode": "slow", "seconds": s}), Expect::Succeeded)
        } else {
            let s = timeout_s(ctx) + BEYOND_TIMEOUT_S;
            Kind::new("a2a.slow_timeout", json!({"mode": "slow", "seconds": s}), dead("timeout"))
        }
    } else if rng.random_bool(0.7) {
        Kind::new("a2a.echo", json!({"mode": "echo"}), Expect::Succeeded)
    } else {
        let steps = rng.random_range(2..=4);
        Kind::new("a2a.progress", json!({"mode": "progress", "steps": steps, "interval": 0.02}), Expect::Succeeded)
    }
}

/// The kind of a task for a process agent.
pub(super) fn process(rng: &mut StdRng, ctx: &Ctx<'_>) -> Kind {
    let (mix, max_retries) = (ctx.mix, ctx.agent.max_retries);
    let u: f64 = rng.random();
    let message = "failing on purpose (chaos)";
    let mut bounds = [mix.panic_ratio, mix.fail_ratio, mix.slow_ratio, mix.pay_ratio];
    let mut acc = 0.0;
    for b in &mut bounds {
        acc += *b;
        *b = acc;
    }
    if u < bounds[0] {
        if rng.random_bool(0.9) {
            // Crashes (exit 3) on its first delivery only: a delivery, not an attempt.
            let m = marker(ctx.markers, ctx.index);
            let p = json!({"mode": "crash", "marker": m.to_string_lossy()});
            Kind::new("proc.crash_once", p, Expect::Succeeded).crashing(1)
        } else {
            // Crashes on every delivery: dead-lettered as poison after bus.max_deliveries.
            Kind::new("proc.poison", json!({"mode": "crash"}), dead("poison")).crashing(u32::MAX)
        }
    } else if u < bounds[1] {
        match rng.random_range(0..3) {
            0 => {
                let n = rng.random_range(1..=max_retries.max(1));
                let p = json!({"mode": "fail", "message": message, "retryable": true, "fail_attempts": n});
                Kind::new("proc.fail_ok", p, Expect::Succeeded)
            }
            1 => {
                let p = json!({"mode": "fail", "message": message, "retryable": true});
                Kind::new("proc.fail_dead", p, dead("retries_exhausted"))
            }
            _ => {
                let p = json!({"mode": "fail", "message": message, "retryable": false});
                Kind::new("proc.fatal", p, dead("fatal_error"))
            }
        }
    } else if u < bounds[2] {
        if rng.random_bool(0.5) {
            let s = rng.random_range(0.1..0.4);
            Kind::new("proc.sleep_ok", json!({"mode": "sleep", "seconds": s}), Expect::Succeeded)
        } else {
            let s = timeout_s(ctx) + BEYOND_TIMEOUT_S;
            Kind::new("proc.sleep_timeout", json!({"mode": "sleep", "seconds": s}), dead("timeout"))
        }
    } else if u < bounds[3] {
        let vendor = if rng.random_bool(0.8) { WHITELIST[rng.random_range(0..WHITELIST.len())] } else { OTHER_VENDOR };
        let amount = rng.random_range(100..=3000);
        // The agent returns the MetaAgent's answer, approved or not: the task succeeds either way.
        let p = json!({"mode": "pay", "vendor": vendor, "amount_cents": amount, "purpose": "chaos credits"});
        Kind::new("proc.pay", p, Expect::Succeeded)
    } else if rng.random_bool(0.7) {
        Kind::new("proc.echo", json!({"mode": "echo"}), Expect::Succeeded)
    } else {
        let steps = rng.random_range(2..=4);
        Kind::new("proc.progress", json!({"mode": "progress", "steps": steps, "interval": 0.02}), Expect::Succeeded)
    }
}
