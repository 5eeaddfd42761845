//! The simulated executor, steered by the payload so tests, benchmarks and chaos runs can drive it:
//! `"simulate": {"sleep_ms": N, "fail_attempts": N, "panic_deliveries": N, "fatal": bool, "output": {...},
//! "pay": [{"vendor": "...", "amount_cents": N, "reason": "..."}]}`.
//!
//! It first asks the MetaAgent for each payment in `pay` (mandate `<task_id>-<index>`, so a retried or
//! replayed task asks again idempotently): a denial fails the task (fatal), a payment held for review
//! fails the attempt (retryable: it is asked again after review). Then it works for `sleep_ms`, then panics (crashing its worker) while the delivery counter is
//! ≤ `panic_deliveries`, then fails retryably while the attempt is ≤ `fail_attempts`. Without `simulate`
//! it returns a small deterministic result naming the agent.

use super::{ExecError, Executor, TaskContext};
use crate::payments::types::{Outcome, PaymentIntent};
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

pub const NAME: &str = "simulated";

pub struct Simulated;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Simulate {
    #[serde(default)]
    sleep_ms: u64,
    #[serde(default)]
    fail_attempts: u32,
    #[serde(default)]
    panic_deliveries: u32,
    #[serde(default)]
    fatal: bool,
    #[serde(default)]
    output: Option<Value>,
    #[serde(default)]
    pay: Vec<Pay>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Pay {
    vendor: String,
    amount_cents: i64,
    #[serde(default)]
    reason: String,
}

impl Executor for Simulated {
    fn execute<'a>(&'a self, ctx: &'a TaskContext, payload: &'a Value) -> BoxFuture<'a, Result<Value, ExecError>> {
        Box::pin(async move {
            let sim = match payload.get("simulate") {
                None => Simulate::default(),
                Some(v) => {
                    Simulate::deserialize(v).map_err(|e| ExecError::Fatal(format!("invalid `simulate` field: {e}")))?
                }
            };
            let mut payments = Vec::new();
            for (i, p) in sim.pay.iter().enumerate() {
                let business = payload.get("business_id").and_then(Value::as_str).unwrap_or("default");
                let intent = PaymentIntent {
                    agent_id: ctx.agent.clone(),
                    vendor: p.vendor.clone(),
                    amount_cents: p.amount_cents,
                    reason: p.reason.clone(),
                    mandate_id: format!("{}-{i}", ctx.task_id),
                    business_id: business.to_string(),
                    tenant_id: ctx.tenant_id.clone(),
                };
                let d = ctx.payments.approve(intent).await.map_err(ExecError::Retryable)?;
                match d.outcome {
                    Outcome::Approved => payments
                        .push(json!({"mandate_id": d.mandate_id, "amount_cents": d.amount_cents, "vendor": d.vendor})),
                    Outcome::NeedsReview => {
                        return Err(ExecError::Retryable(format!("payment {i} is held for review: {}", d.reason)))
                    }
                    Outcome::Denied => {
                        return Err(ExecError::Fatal(format!("payment {i} denied ({}): {}", d.code, d.reason)))
                    }
                }
            }
            if sim.sleep_ms > 0 {
                tokio::time::sleep(Duration::from_millis(sim.sleep_ms)).await;
            }
            if ctx.deliveries <= sim.panic_deliveries {
                panic!("simulated panic on delivery {} of task {}", ctx.deliveries, ctx.task_id);
            }
            if sim.fatal {
                return Err(ExecError::Fatal("simulated fatal error".into()));
            }
            if ctx.attempt <= sim.fail_attempts {
                return Err(ExecError::Retryable(format!("simulated failure on attempt {}", ctx.attempt)));
            }
            Ok(sim.output.unwrap_or_else(
                || json!({ "agent": ctx.agent, "task_id": ctx.task_id, "attempt": ctx.attempt, "status": "done" }),
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::TaskId;

    fn ctx(attempt: u32, deliveries: u32) -> TaskContext {
        TaskContext {
            agent: "genesis.qa".into(),
            node_id: "n".into(),
            worker: 0,
            task_id: TaskId::generate(),
            attempt,
            deliveries,
            tenant_id: "t".into(),
            correlation_id: "c".into(),
            payments: Default::default(),
        }
    }

    #[tokio::test]
    async fn default_result_names_the_agent() {
        let c = ctx(1, 1);
        let v = Simulated.execute(&c, &json!({})).await.expect("ok");
        assert_eq!(v["agent"], "genesis.qa");
    }

    #[tokio::test]
    async fn fails_on_the_first_attempts_then_returns_output() {
        let p = json!({"simulate": {"fail_attempts": 2, "output": {"x": 1}}});
        assert!(matches!(Simulated.execute(&ctx(2, 1), &p).await, Err(ExecError::Retryable(_))));
        assert_eq!(Simulated.execute(&ctx(3, 1), &p).await, Ok(json!({"x": 1})));
    }

    #[tokio::test]
    async fn invalid_simulate_is_fatal() {
        let p = json!({"simulate": {"sleep_ms": "soon"}});
        assert!(matches!(Simulated.execute(&ctx(1, 1), &p).await, Err(ExecError::Fatal(_))));
    }

    #[tokio::test]
    async fn panics_on_early_deliveries_only() {
        let p = json!({"simulate": {"panic_deliveries": 1}});
        let c = ctx(1, 1);
        let r = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(Simulated.execute(&c, &p))).await;
        assert!(r.is_err(), "first delivery panics");
        assert!(Simulated.execute(&ctx(1, 2), &p).await.is_ok());
    }
}
