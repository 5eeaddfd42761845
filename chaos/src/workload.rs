//! The seeded workload: the same seed gives the same sequence of task kinds, topics, payloads and
//! publish times (task ids are fresh ULIDs).

use crate::config::{OTHER_VENDOR, WHITELIST};
use crate::record::{AgentConf, Expect};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct Mix {
    /// Tasks that panic on their first delivery (replayed at once, then succeed).
    pub panic_ratio: f64,
    /// Tasks that fail their first attempts (half recover within max_retries, half are dead).
    pub fail_ratio: f64,
    /// Tasks that ask the MetaAgent for money first.
    pub pay_ratio: f64,
}

impl Mix {
    /// Poison tasks (panic on every delivery, dead-lettered as `poison`): a tenth of the panic ratio.
    pub fn poison_ratio(&self) -> f64 {
        self.panic_ratio / 10.0
    }
    /// Tasks with `fatal: true` (dead-lettered as `fatal_error` at once).
    pub const FATAL_RATIO: f64 = 0.01;
}

/// One task to publish.
#[derive(Debug, Clone)]
pub struct Planned {
    /// When to publish it, from the start of the workload.
    pub at: Duration,
    pub topic: String,
    pub tenant: String,
    pub kind: &'static str,
    /// The `simulate` object without `report_to` (added at publish time), plus top-level fields.
    pub payload: Value,
    pub panic_deliveries: u32,
    pub max_retries: u32,
    pub expect: Expect,
}

/// `tasks` tasks spread evenly over `duration`, drawn from `seed`.
pub fn plan(seed: u64, tasks: usize, duration: Duration, mix: Mix, agents: &[AgentConf]) -> Vec<Planned> {
    let mut rng = StdRng::seed_from_u64(seed);
    let step = if tasks == 0 { Duration::ZERO } else { duration / tasks as u32 };
    (0..tasks)
        .map(|i| {
            let mut p = one(&mut rng, mix, agents);
            p.at = step * i as u32;
            p
        })
        .collect()
}

fn one(rng: &mut StdRng, mix: Mix, agents: &[AgentConf]) -> Planned {
    let agent = &agents[rng.random_range(0..agents.len())];
    let max_retries = agent.max_retries;
    // A business belongs to one tenant (the ledger refuses another tenant's intents for it).
    let b = rng.random_range(0..6);
    let (tenant, business) = (format!("tenant-{}", b % 4), format!("biz-{b}"));
    let u: f64 = rng.random();
    let mut bounds = [mix.poison_ratio(), mix.panic_ratio, mix.fail_ratio, mix.pay_ratio, Mix::FATAL_RATIO];
    let mut acc = 0.0;
    for b in &mut bounds {
        acc += *b;
        *b = acc;
    }
    let (kind, sim, panic_deliveries, expect) = if u < bounds[0] {
        let n = rng.random_range(100..200);
        (
            "poison",
            json!({"panic_deliveries": n, "sleep_ms": rng.random_range(0..30)}),
            n,
            Expect::Dead("poison".into()),
        )
    } else if u < bounds[1] {
        ("panic", json!({"panic_deliveries": 1, "sleep_ms": rng.random_range(10..100)}), 1, Expect::Succeeded)
    } else if u < bounds[2] {
        if rng.random_bool(0.5) {
            let n = rng.random_range(1..=max_retries);
            ("fail_ok", json!({"fail_attempts": n, "sleep_ms": rng.random_range(0..50)}), 0, Expect::Succeeded)
        } else {
            let n = rng.random_range(max_retries + 1..=max_retries + 2);
            let e = Expect::Dead("retries_exhausted".into());
            ("fail_dead", json!({"fail_attempts": n, "sleep_ms": rng.random_range(0..50)}), 0, e)
        }
    } else if u < bounds[3] {
        let pays: Vec<Value> = (0..rng.random_range(1..=2))
            .map(|_| {
                let vendor =
                    if rng.random_bool(0.8) { WHITELIST[rng.random_range(0..WHITELIST.len())] } else { OTHER_VENDOR };
                json!({"vendor": vendor, "amount_cents": rng.random_range(100..=3000), "reason": "chaos credits"})
            })
            .collect();
        ("pay", json!({"pay": pays, "sleep_ms": rng.random_range(0..100)}), 0, Expect::Either)
    } else if u < bounds[4] {
        ("fatal", json!({"fatal": true}), 0, Expect::Dead("fatal_error".into()))
    } else if rng.random_bool(0.5) {
        ("noop", json!({}), 0, Expect::Succeeded)
    } else {
        ("sleep", json!({"sleep_ms": rng.random_range(10..=300)}), 0, Expect::Succeeded)
    };
    Planned {
        at: Duration::ZERO,
        topic: agent.name.clone(),
        tenant,
        kind,
        payload: json!({"simulate": sim, "business_id": business}),
        panic_deliveries,
        max_retries,
        expect,
    }
}

/// The payload to publish: the planned one with `report_to`.
pub fn with_report_to(p: &Planned, report_to: &str) -> Value {
    let mut v = p.payload.clone();
    v["simulate"]["report_to"] = json!(report_to);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_workload() {
        let mix = Mix { panic_ratio: 0.05, fail_ratio: 0.1, pay_ratio: 0.1 };
        let agents = crate::config::agents();
        let a = plan(42, 500, Duration::from_secs(10), mix, &agents);
        let b = plan(42, 500, Duration::from_secs(10), mix, &agents);
        let c = plan(43, 500, Duration::from_secs(10), mix, &agents);
        let key = |v: &[Planned]| v.iter().map(|p| (p.topic.clone(), p.payload.to_string())).collect::<Vec<_>>();
        assert_eq!(key(&a), key(&b));
        assert_ne!(key(&a), key(&c));
        for kind in ["noop", "sleep", "panic", "fail_ok", "fail_dead", "pay"] {
            assert!(a.iter().any(|p| p.kind == kind), "{kind} appears in 500 tasks");
        }
        assert_eq!(a[499].at, Duration::from_millis(20) * 499);
    }
}
