//! Task kinds for the simulated executor (the payload's `simulate` object).

use super::{Ctx, Kind, Mix};
use crate::config::{OTHER_VENDOR, WHITELIST};
use crate::record::Expect;
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Value};

pub(super) fn kind(rng: &mut StdRng, ctx: &Ctx<'_>) -> Kind {
    let (mix, max_retries) = (ctx.mix, ctx.agent.max_retries);
    let u: f64 = rng.random();
    let mut bounds = [mix.poison_ratio(), mix.panic_ratio, mix.fail_ratio, mix.pay_ratio, Mix::FATAL_RATIO];
    let mut acc = 0.0;
    for b in &mut bounds {
        acc += *b;
        *b = acc;
    }
    let sim = |kind, sim: Value, expect| Kind::new(kind, json!({ "simulate": sim }), expect);
    if u < bounds[0] {
        let n = rng.random_range(100..200);
        sim(
            "poison",
            json!({"panic_deliveries": n, "sleep_ms": rng.random_range(0..30)}),
            Expect::Dead("poison".into()),
        )
        .crashing(n)
    } else if u < bounds[1] {
        sim("panic", json!({"panic_deliveries": 1, "sleep_ms": rng.random_range(10..100)}), Expect::Succeeded)
            .crashing(1)
    } else if u < bounds[2] {
        if rng.random_bool(0.5) {
            let n = rng.random_range(1..=max_retries);
            sim("fail_ok", json!({"fail_attempts": n, "sleep_ms": rng.random_range(0..50)}), Expect::Succeeded)
        } else {
            let n = rng.random_range(max_retries + 1..=max_retries + 2);
            let e = Expect::Dead("retries_exhausted".into());
            sim("fail_dead", json!({"fail_attempts": n, "sleep_ms": rng.random_range(0..50)}), e)
        }
    } else if u < bounds[3] {
        let pays: Vec<Value> = (0..rng.random_range(1..=2))
            .map(|_| {
                let vendor =
                    if rng.random_bool(0.8) { WHITELIST[rng.random_range(0..WHITELIST.len())] } else { OTHER_VENDOR };
                json!({"vendor": vendor, "amount_cents": rng.random_range(100..=3000), "reason": "chaos credits"})
            })
            .collect();
        sim("pay", json!({"pay": pays, "sleep_ms": rng.random_range(0..100)}), Expect::Either)
    } else if u < bounds[4] {
        sim("fatal", json!({"fatal": true}), Expect::Dead("fatal_error".into()))
    } else if rng.random_bool(0.5) {
        sim("noop", json!({}), Expect::Succeeded)
    } else {
        sim("sleep", json!({"sleep_ms": rng.random_range(10..=300)}), Expect::Succeeded)
    }
}
