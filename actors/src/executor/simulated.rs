//! The simulated executor, steered by the payload so tests, benchmarks and chaos runs can drive it:
//! `"simulate": {"sleep_ms": N, "fail_attempts": N, "panic_deliveries": N, "fatal": bool, "output": {...},
//! "pay": [{"vendor": "...", "amount_cents": N, "reason": "..."}], "progress": [..values..],
//! "report_to": "http://host:port/path"}`.
//!
//! It first asks the MetaAgent for each payment in `pay` (mandate `<task_id>-<index>`, so a retried or
//! replayed task asks again idempotently; bound to the task, so its outcome settles them; for the
//! task's business and workflow budget, [`TaskContext::business`]): a denial fails the task (fatal,
//! the error naming the code, e.g. `over_workflow_budget`), a payment held for review fails the
//! attempt (retryable: it is asked again after review). Then it reports each value of `progress` in order (the task record keeps the
//! latest), works for `sleep_ms` — stopping early with [`ExecError::Cancelled`] when the attempt is
//! cancelled (timeout, `genesis task cancel`) — then panics (crashing its worker) while the delivery
//! counter is ≤ `panic_deliveries`, then fails retryably while the attempt is ≤ `fail_attempts`.
//! A workflow step's `simulate` is read from its `input` (the payload is `{"input", "needs", "workflow"}`);
//! `fail_runs: N` fails it fatally while its workflow's run (`workflow.run`, 1 for a task of no
//! workflow) is ≤ N, so a `retry` of the workflow gets past it (the chaos harness's retried workflows).
//! Without `simulate` it returns a small deterministic result naming the agent.
//!
//! With `report_to`, it POSTs `{"task_id", "attempt", "deliveries", "node", "agent", "phase": "start"}` to
//! that URL before anything else, and the same with `"phase": "end"` (and `"outcome": "ok" | "retryable" |
//! "fatal"`) just before returning (not when it panics or is cancelled). The chaos harness uses these to
//! count executions; a report that cannot be delivered is ignored (logged at debug).

use super::{ExecError, Executor, TaskContext};
use crate::payments::types::{Outcome, PaymentIntent};
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::OnceLock;
use std::time::Duration;

pub const NAME: &str = "simulated";

/// The simulated executor. `steering` (`[executors.simulated] steering`) allows the two fields that
/// reach outside the node, `pay` (asks the MetaAgent for money) and `report_to` (an HTTP POST to any
/// URL): off on a node unless configured, so a task submitted over the API cannot spend or make the
/// node call an internal address; the tests, benchmarks and chaos harness turn it on.
pub struct Simulated {
    pub steering: bool,
}

impl Simulated {
    /// With `pay` and `report_to` (tests, benchmarks, the chaos harness).
    pub const STEERED: Simulated = Simulated { steering: true };
    /// Without them (a node's default): demos keep `sleep_ms`, `fail_attempts`, `panic_deliveries`,
    /// `fatal`, `output` and `progress`.
    pub const DEMO: Simulated = Simulated { steering: false };
}

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
    fail_runs: u32,
    #[serde(default)]
    output: Option<Value>,
    #[serde(default)]
    pay: Vec<Pay>,
    #[serde(default)]
    progress: Vec<Value>,
    #[serde(default)]
    report_to: Option<String>,
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
            // A workflow step's payload carries the plan's input under `input`.
            let steering = payload.get("simulate").or_else(|| payload.get("input")?.get("simulate"));
            let sim = match steering {
                None => Simulate::default(),
                Some(v) => {
                    Simulate::deserialize(v).map_err(|e| ExecError::Fatal(format!("invalid `simulate` field: {e}")))?
                }
            };
            if !self.steering && (!sim.pay.is_empty() || sim.report_to.is_some()) {
                return Err(ExecError::Fatal(
                    "the simulated executor's `pay` and `report_to` are off on this node (they reach outside it); \
                     [executors.simulated] steering = true turns them on"
                        .into(),
                ));
            }
            let report_to = sim.report_to.clone();
            report(report_to.as_deref(), ctx, "start", None).await;
            let r = simulate(ctx, payload, sim).await;
            let outcome = match &r {
                Ok(_) => "ok",
                Err(ExecError::Retryable(_)) => "retryable",
                Err(ExecError::Fatal(_)) => "fatal",
                Err(_) => "other",
            };
            report(report_to.as_deref(), ctx, "end", Some(outcome)).await;
            r
        })
    }
}

/// The shared client for `report_to` (built on first use; 2 s timeout per report).
fn report_client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap_or_default())
}

/// POST one execution report to `url`; failures are ignored (logged at debug).
async fn report(url: Option<&str>, ctx: &TaskContext, phase: &str, outcome: Option<&str>) {
    let Some(url) = url else { return };
    let mut body = json!({
        "task_id": ctx.task_id.to_string(),
        "attempt": ctx.attempt,
        "deliveries": ctx.deliveries,
        "node": ctx.node_id,
        "agent": ctx.agent,
        "phase": phase,
    });
    if let Some(o) = outcome {
        body["outcome"] = json!(o);
    }
    let sent = report_client().post(url).json(&body).send().await.and_then(|r| r.error_for_status());
    if let Err(e) = sent {
        tracing::debug!(task_id = %ctx.task_id, phase, url, error = %e, "execution report not delivered");
    }
}

/// The steered work itself: payments, sleep, panic, failure, output.
async fn simulate(ctx: &TaskContext, payload: &Value, sim: Simulate) -> Result<Value, ExecError> {
    let mut payments = Vec::new();
    let business = if sim.pay.is_empty() { Ok(String::new()) } else { ctx.business(payload) };
    for (i, p) in sim.pay.iter().enumerate() {
        let business = match &business {
            Ok(b) => b.clone(),
            Err(r) => return Err(ExecError::Fatal(format!("payment {i} denied ({}): {}", r.code, r.reason))),
        };
        let intent = PaymentIntent {
            agent_id: ctx.agent.clone(),
            vendor: p.vendor.clone(),
            amount_cents: p.amount_cents,
            reason: p.reason.clone(),
            mandate_id: format!("{}-{i}", ctx.task_id),
            business_id: business,
            tenant_id: ctx.tenant_id.clone(),
            task_id: Some(ctx.task_id),
            workflow: ctx.workflow_budget(),
        };
        let d = ctx.payments.approve(intent).await.map_err(ExecError::Retryable)?;
        match d.outcome {
            Outcome::Approved => {
                payments.push(json!({"mandate_id": d.mandate_id, "amount_cents": d.amount_cents, "vendor": d.vendor}))
            }
            Outcome::NeedsReview => {
                return Err(ExecError::Retryable(format!("payment {i} is held for review: {}", d.reason)))
            }
            Outcome::Denied => return Err(ExecError::Fatal(format!("payment {i} denied ({}): {}", d.code, d.reason))),
        }
    }
    for p in sim.progress {
        ctx.progress.report(p);
    }
    if sim.sleep_ms > 0 {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(sim.sleep_ms)) => {}
            _ = ctx.cancel.cancelled() => return Err(ExecError::Cancelled("the simulated work was stopped".into())),
        }
    }
    if ctx.deliveries <= sim.panic_deliveries {
        panic!("simulated panic on delivery {} of task {}", ctx.deliveries, ctx.task_id);
    }
    if sim.fatal {
        return Err(ExecError::Fatal("simulated fatal error".into()));
    }
    let run = payload.get("workflow").and_then(|w| w.get("run")).and_then(Value::as_u64).unwrap_or(1);
    if run <= u64::from(sim.fail_runs) {
        return Err(ExecError::Fatal(format!("simulated failure of workflow run {run}")));
    }
    if ctx.attempt <= sim.fail_attempts {
        return Err(ExecError::Retryable(format!("simulated failure on attempt {}", ctx.attempt)));
    }
    Ok(sim.output.unwrap_or_else(
        || json!({ "agent": ctx.agent, "task_id": ctx.task_id, "attempt": ctx.attempt, "status": "done" }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::TaskId;

    fn ctx(attempt: u32, deliveries: u32) -> TaskContext {
        TaskContext {
            attempt,
            deliveries,
            node_id: "n".into(),
            ..TaskContext::detached("genesis.qa", TaskId::generate())
        }
    }

    /// A node's default: the fields that reach outside the node are refused (fatal, saying which key
    /// turns them on); the rest still steers.
    #[tokio::test]
    async fn without_steering_pay_and_report_to_are_refused() {
        let c = ctx(1, 1);
        for p in [
            json!({"simulate": {"pay": [{"vendor": "openai.com", "amount_cents": 5}]}}),
            json!({"simulate": {"report_to": "http://169.254.169.254/latest"}}),
            json!({"input": {"simulate": {"report_to": "http://127.0.0.1:1/"}}}),
        ] {
            match Simulated::DEMO.execute(&c, &p).await {
                Err(ExecError::Fatal(m)) => assert!(m.contains("[executors.simulated] steering = true"), "{m}"),
                other => panic!("{p}: {other:?}"),
            }
        }
        let demo = json!({"simulate": {"output": {"x": 1}}});
        assert_eq!(Simulated::DEMO.execute(&c, &demo).await, Ok(json!({"x": 1})));
    }

    #[tokio::test]
    async fn default_result_names_the_agent() {
        let c = ctx(1, 1);
        let v = Simulated::STEERED.execute(&c, &json!({})).await.expect("ok");
        assert_eq!(v["agent"], "genesis.qa");
    }

    #[tokio::test]
    async fn fails_on_the_first_attempts_then_returns_output() {
        let p = json!({"simulate": {"fail_attempts": 2, "output": {"x": 1}}});
        assert!(matches!(Simulated::STEERED.execute(&ctx(2, 1), &p).await, Err(ExecError::Retryable(_))));
        assert_eq!(Simulated::STEERED.execute(&ctx(3, 1), &p).await, Ok(json!({"x": 1})));
    }

    #[tokio::test]
    async fn reports_progress_then_stops_its_sleep_when_cancelled() {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = seen.clone();
        let c = TaskContext {
            progress: super::super::Progress::new(move |v| sink.lock().expect("lock").push(v)),
            ..ctx(1, 1)
        };
        let p = json!({"simulate": {"progress": [{"step": 1}, {"step": 2}], "sleep_ms": 600_000}});
        let cancel = c.cancel.clone();
        let run = Simulated::STEERED.execute(&c, &p);
        tokio::pin!(run);
        // Polled once: it has reported and sleeps.
        assert!(futures::poll!(&mut run).is_pending());
        assert_eq!(*seen.lock().expect("lock"), vec![json!({"step": 1}), json!({"step": 2})]);
        cancel.cancel();
        assert!(matches!(run.await, Err(ExecError::Cancelled(_))));
    }

    #[tokio::test]
    async fn invalid_simulate_is_fatal() {
        let p = json!({"simulate": {"sleep_ms": "soon"}});
        assert!(matches!(Simulated::STEERED.execute(&ctx(1, 1), &p).await, Err(ExecError::Fatal(_))));
    }

    #[tokio::test]
    async fn fail_runs_fails_the_early_runs_of_a_workflow_step_only() {
        let step = |run: u32| json!({"input": {"simulate": {"fail_runs": 1}}, "workflow": {"id": "w", "run": run}});
        let first = Simulated::STEERED.execute(&ctx(1, 1), &step(1)).await;
        assert!(matches!(&first, Err(ExecError::Fatal(e)) if e.contains("run 1")), "{first:?}");
        assert!(Simulated::STEERED.execute(&ctx(1, 1), &step(2)).await.is_ok(), "a retried run gets past it");
        let plain = json!({"simulate": {"fail_runs": 1}});
        assert!(
            matches!(Simulated::STEERED.execute(&ctx(1, 1), &plain).await, Err(ExecError::Fatal(_))),
            "no workflow: run 1"
        );
    }

    #[tokio::test]
    async fn panics_on_early_deliveries_only() {
        let p = json!({"simulate": {"panic_deliveries": 1}});
        let c = ctx(1, 1);
        let r =
            futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(Simulated::STEERED.execute(&c, &p))).await;
        assert!(r.is_err(), "first delivery panics");
        assert!(Simulated::STEERED.execute(&ctx(1, 2), &p).await.is_ok());
    }

    /// A one-purpose HTTP listener: answers every request 200 and hands each JSON body to the channel.
    async fn report_sink() -> (String, tokio::sync::mpsc::UnboundedReceiver<Value>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/exec", listener.local_addr().expect("addr"));
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        // One request: headers, then Content-Length bytes of body.
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                            let len = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
                                .unwrap_or(0usize);
                            if buf.len() < end + 4 + len {
                                break;
                            }
                            let body: Vec<u8> = buf.drain(..end + 4 + len).skip(end + 4).collect();
                            let _ = tx.send(serde_json::from_slice(&body).unwrap_or(Value::Null));
                            let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                            if sock.write_all(ok).await.is_err() {
                                return;
                            }
                        }
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                });
            }
        });
        (url, rx)
    }

    #[tokio::test]
    async fn reports_start_and_end_to_report_to() {
        let (url, mut rx) = report_sink().await;
        let p = json!({"simulate": {"fail_attempts": 1, "report_to": url}});
        let c = ctx(1, 3);
        assert!(matches!(Simulated::STEERED.execute(&c, &p).await, Err(ExecError::Retryable(_))));
        let start = rx.recv().await.expect("start report");
        let end = rx.recv().await.expect("end report");
        assert_eq!(start["phase"], "start");
        assert_eq!(start["task_id"], c.task_id.to_string());
        assert_eq!((start["attempt"].as_u64(), start["deliveries"].as_u64()), (Some(1), Some(3)));
        assert_eq!((start["node"].as_str(), start["agent"].as_str()), (Some("n"), Some("genesis.qa")));
        assert_eq!((end["phase"].as_str(), end["outcome"].as_str()), (Some("end"), Some("retryable")));
    }

    #[tokio::test]
    async fn an_unreachable_report_to_does_not_fail_the_task() {
        // A port that was free a moment ago: connection refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
        let p = json!({"simulate": {"report_to": format!("http://127.0.0.1:{port}/exec"), "output": 7}});
        assert_eq!(Simulated::STEERED.execute(&ctx(1, 1), &p).await, Ok(json!(7)));
    }
}
