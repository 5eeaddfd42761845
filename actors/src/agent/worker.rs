//! A worker runs one task at a time: executor under the agent's timeout, then the outcome written
//! atomically with the acknowledgement. A panic in the executor crashes this actor; the agent
//! supervisor restarts it and hands it the same entry again.

use super::{AgentContext, Job};
use crate::agent::supervisor::WorkerDone;
use crate::bus::retrying::until_ok;
use crate::bus::{Completed, Completion, Delivery};
use crate::executor::{ExecError, Executor, TaskContext, CANCEL_GRACE};
use crate::policy::outcome::{decide, poison, reason, AttemptResult, Verdict};
use crate::task::{TaskEnvelope, TaskId};
use ractor::{Actor, ActorProcessingErr, ActorRef, DerivedActorRef};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub struct Worker;

pub struct WorkerArgs {
    pub ctx: Arc<AgentContext>,
    pub slot: usize,
    pub supervisor: DerivedActorRef<WorkerDone>,
}

pub enum WorkerMsg {
    Run(Box<Job>),
    /// Run again the entry a crashed predecessor held: re-claim it (bumping Redis's delivery counter,
    /// which bounds poison entries) and decode it afresh.
    Replay {
        entry_id: String,
        /// `None` for an orphan found by the sweep (known once re-read).
        task_id: Option<TaskId>,
        /// Why the predecessor crashed (the panic message), kept for the dead letter if the entry
        /// turns out to be poison.
        last_crash: Option<String>,
    },
    /// Fail now (see `AgentMsg::Crash`). Only sent to an idle worker: a crash that holds no entry.
    Crash,
}

impl Actor for Worker {
    type Msg = WorkerMsg;
    type State = WorkerArgs;
    type Arguments = WorkerArgs;

    async fn pre_start(&self, _: ActorRef<WorkerMsg>, args: WorkerArgs) -> Result<WorkerArgs, ActorProcessingErr> {
        Ok(args)
    }

    async fn handle(
        &self,
        _: ActorRef<WorkerMsg>,
        msg: WorkerMsg,
        st: &mut WorkerArgs,
    ) -> Result<(), ActorProcessingErr> {
        let entry_id = match msg {
            WorkerMsg::Run(job) => {
                let Job { delivery, envelope, cancel_requested } = *job;
                let id = delivery.entry_id.clone();
                run(&st.ctx, st.slot, delivery, envelope, None, cancel_requested).await?;
                id
            }
            WorkerMsg::Replay { entry_id, task_id, last_crash } => {
                replay(&st.ctx, st.slot, &entry_id, task_id, last_crash).await?;
                entry_id
            }
            WorkerMsg::Crash => return Err("crash requested (chaos)".into()),
        };
        // The supervisor may be gone during shutdown; nothing to do then.
        let _ = st.supervisor.send_message(WorkerDone { slot: st.slot, entry_id });
        Ok(())
    }
}

async fn replay(
    ctx: &AgentContext,
    slot: usize,
    entry_id: &str,
    task_id: Option<TaskId>,
    last_crash: Option<String>,
) -> Result<(), ActorProcessingErr> {
    let reconnect = ctx.settings.bus.reconnect;
    let topic = &ctx.spec.topic;
    let fresh = until_ok(&reconnect, "redeliver", || ctx.bus.redeliver(&ctx.consumer, topic, entry_id)).await?;
    let Some(d) = fresh else {
        tracing::info!(agent = %ctx.spec.name, entry = %entry_id, "entry no longer pending for this node; nothing to replay");
        return Ok(());
    };
    ctx.events.emit(crate::events::RuntimeEvent::Replayed {
        agent: ctx.spec.name.clone(),
        entry_id: d.entry_id.clone(),
        deliveries: d.deliveries,
        at: std::time::Instant::now(),
    });
    tracing::info!(agent = %ctx.spec.name, worker = slot, entry = %entry_id, task_id = ?task_id, deliveries = d.deliveries, "replaying an entry (its worker crashed, or it was found orphaned)");
    match super::decode(ctx, &d) {
        Ok(env) => {
            // No `begin` on a replay (the record already says running here): a cancel requested
            // meanwhile is read from the record. A rare path, so one more read is cheap.
            let id = env.task_id.to_string();
            let record = until_ok(&reconnect, "read record", || ctx.bus.task(topic, &id)).await.ok().flatten();
            let cancel_requested = record.is_some_and(|r| r.cancel_requested_at.is_some());
            run(ctx, slot, d, env, last_crash, cancel_requested).await
        }
        Err(e) => {
            let dead = Completion::Dead { task: None, reason: reason::DECODE.into(), error: e.to_string() };
            let ttl = ctx.settings.bus.result_ttl;
            let written =
                until_ok(&reconnect, "dead-letter", || ctx.bus.complete(&ctx.consumer, &d, &dead, ttl)).await?;
            if written == Completed::Done {
                super::undecodable(ctx, &d, &e).await;
            }
            Ok(())
        }
    }
}

/// Run one delivery inside its CONSUMER `process` span, continuing the publisher's trace.
async fn run(
    ctx: &AgentContext,
    slot: usize,
    delivery: Delivery,
    env: TaskEnvelope,
    last_crash: Option<String>,
    cancel_requested: bool,
) -> Result<(), ActorProcessingErr> {
    let span = tracing::info_span!(
        "process",
        otel.name = format!("{} process", delivery.topic),
        otel.kind = "consumer",
        messaging.system = "redis",
        messaging.operation.type = "process",
        messaging.destination.name = %delivery.topic,
        messaging.consumer.group.name = crate::bus::GROUP,
        messaging.message.id = %delivery.entry_id,
        genesis.task_id = %env.task_id,
        genesis.attempt = env.attempt,
        genesis.deliveries = delivery.deliveries,
        genesis.agent = %ctx.spec.name,
        genesis.worker = slot,
        genesis.node = %ctx.node_id,
        genesis.tenant = %env.tenant_id,
    );
    crate::trace::continue_from(&span, env.traceparent.as_deref());
    run_in_span(ctx, slot, delivery, env, last_crash, cancel_requested).instrument(span).await
}

async fn run_in_span(
    ctx: &AgentContext,
    slot: usize,
    delivery: Delivery,
    env: TaskEnvelope,
    last_crash: Option<String>,
    cancel_requested: bool,
) -> Result<(), ActorProcessingErr> {
    let reconnect = ctx.settings.bus.reconnect;
    let ttl = ctx.settings.bus.result_ttl;
    let label = crate::metrics::Metrics::agent(&ctx.spec.name);
    ctx.metrics.tasks_received.get_or_create(&label).inc();
    if delivery.deliveries > 1 {
        tracing::warn!(
            deliveries = delivery.deliveries,
            "redelivered: an earlier delivery ended in a crash (worker panic, node kill) before its outcome was written; the supervisor restarted the worker and replayed the entry"
        );
    }
    let max = ctx.settings.bus.max_deliveries;
    let completion = if cancel_requested {
        tracing::info!(agent = %ctx.spec.name, task_id = %env.task_id, "cancel requested before the task ran: dead-lettered as cancelled");
        Completion::Dead { reason: reason::CANCELLED.into(), error: CANCELLED_BEFORE.into(), task: Some(env) }
    } else if let Some(error) = poison(delivery.deliveries, max, last_crash.as_deref()) {
        tracing::warn!(agent = %ctx.spec.name, task_id = %env.task_id, deliveries = delivery.deliveries, "poison entry: dead-lettering instead of running again");
        Completion::Dead { reason: reason::POISON.into(), error, task: Some(env) }
    } else {
        attempt(ctx, slot, &delivery, env).await?
    };

    let m = &ctx.metrics;
    match &completion {
        Completion::Succeeded { .. } => m.tasks_succeeded.get_or_create(&label).inc(),
        Completion::Retry { .. } => m.tasks_retried.get_or_create(&label).inc(),
        Completion::Dead { reason, .. } => {
            let l = crate::metrics::DeadLabel { agent: ctx.spec.name.clone(), reason: reason.clone() };
            m.tasks_dead.get_or_create(&l).inc()
        }
    };
    let written =
        until_ok(&reconnect, "complete", || ctx.bus.complete(&ctx.consumer, &delivery, &completion, ttl)).await?;
    if written == Completed::NotOwner {
        tracing::warn!(agent = %ctx.spec.name, entry = %delivery.entry_id, "entry was taken over by another node while running; outcome discarded");
    } else {
        // The task's money follows its outcome (captured on success, released on death).
        crate::payments::settlement::after_outcome(&ctx.payments, &ctx.metrics, &completion).await;
        // A workflow step's final outcome advances its workflow (every final path comes here: run,
        // cancelled before it ran, poison). Never fails the task: the sweeper repairs a miss.
        workflow_hook(ctx, &completion).await;
    }
    Ok(())
}

/// [`crate::workflow::Workflows::task_ended`] for a final completion of a workflow's task.
async fn workflow_hook(ctx: &AgentContext, completion: &Completion) {
    use crate::workflow::machine::TaskOutcome;
    let (env, outcome) = match completion {
        Completion::Succeeded { task, result } => {
            (task, TaskOutcome::Succeeded { output: result.clone(), attempts: task.attempt })
        }
        Completion::Dead { task: Some(task), reason, error } => {
            (task, TaskOutcome::Dead { reason: reason.clone(), error: error.clone(), attempts: task.attempt })
        }
        Completion::Retry { .. } | Completion::Dead { task: None, .. } => return,
    };
    let Some(wf) = &env.workflow else { return };
    if let Err(e) = ctx.workflows.task_ended(env, outcome).await {
        tracing::warn!(workflow = %wf.id, step = %wf.step, task_id = %env.task_id, error = %e, "could not advance the workflow now; the sweeper will");
    }
}

/// Why a task cancelled before it ran is dead (`genesis task cancel`, `POST /v1/tasks/{id}/cancel`).
const CANCELLED_BEFORE: &str = "cancelled on request before it ran";
/// Why a task cancelled while it ran (or waited for its rate limit or circuit) is dead.
const CANCELLED_RUNNING: &str = "cancelled on request while running";

/// How the executor's run under the agent's timeout ended.
enum Ran {
    Finished(Result<serde_json::Value, ExecError>),
    TimedOut,
    /// Cancelled on request (the attempt's token fired from outside: [`crate::node::running`]).
    Cancelled,
}

/// Run the executor once and turn its result into the completion to write.
async fn attempt(
    ctx: &AgentContext,
    slot: usize,
    delivery: &Delivery,
    env: TaskEnvelope,
) -> Result<Completion, ActorProcessingErr> {
    let spec = &ctx.spec;
    let cancel = CancellationToken::new();
    // Registered first, so a cancel request reaches the task while it waits for its limits too.
    let _running = ctx.running.register(&env.task_id.to_string(), &cancel);
    let label = crate::metrics::Metrics::agent(&spec.name);
    // The rate limit first: a task waiting for its slot must not hold the half-open circuit's probe.
    let outcome = if !super::rate::wait_for_slot(ctx, &cancel).await {
        Ran::Cancelled
    } else {
        // An open circuit holds the task here (still pending on this node) instead of spending an attempt.
        let permit = tokio::select! {
            p = ctx.breaker.admit() => Some(p),
            _ = cancel.cancelled() => None,
        };
        match permit {
            None => Ran::Cancelled,
            Some(permit) => {
                let (progress, forwarder) = super::progress::start(ctx, env.task_id.to_string());
                let deadline_ms = crate::task::now_ms().saturating_add(spec.timeout.as_millis() as u64);
                let tctx = TaskContext {
                    agent: spec.name.clone(),
                    node_id: ctx.node_id.clone(),
                    worker: slot,
                    task_id: env.task_id,
                    attempt: env.attempt,
                    deliveries: delivery.deliveries,
                    tenant_id: env.tenant_id.clone(),
                    correlation_id: env.correlation_id.clone(),
                    traceparent: crate::trace::traceparent_of(&tracing::Span::current())
                        .or_else(|| env.traceparent.clone()),
                    deadline_ms,
                    cancel: cancel.clone(),
                    progress,
                    // This attempt's task-bound payment token (with payments configured), valid past its deadline.
                    payment_token: ctx.payments.token_for(&spec.name, &env, deadline_ms),
                    payments: ctx.payments.clone(),
                    workflow: env.workflow.clone(),
                    business_id: env.business_id.clone(),
                };
                let started = std::time::Instant::now();
                let ran = run_until_timeout(ctx, &tctx, &env.payload, &cancel).await;
                drop(tctx);
                forwarder.finish().await;
                ctx.metrics.task_duration.get_or_create(&label).observe(started.elapsed().as_secs_f64());
                ctx.breaker.record(permit, matches!(&ran, Ran::Finished(Err(e)) if e.is_endpoint_fault()));
                ran
            }
        }
    };
    if matches!(outcome, Ran::TimedOut | Ran::Finished(Err(_))) {
        ctx.metrics.tasks_failed.get_or_create(&label).inc();
    }
    let result = match outcome {
        Ran::TimedOut => AttemptResult::TimedOut(spec.timeout),
        Ran::Cancelled => AttemptResult::Cancelled(CANCELLED_RUNNING.into()),
        Ran::Finished(Ok(v)) => AttemptResult::Ok(v),
        Ran::Finished(Err(ExecError::Retryable(e))) => AttemptResult::Retryable(e),
        Ran::Finished(Err(ExecError::RetryAfter { error, after })) => AttemptResult::RetryAfter { error, after },
        Ran::Finished(Err(ExecError::Server { error, retry_after })) => {
            AttemptResult::RetryAfter { error, after: retry_after.unwrap_or_default() }
        }
        Ran::Finished(Err(ExecError::Fatal(e))) => AttemptResult::Fatal(e),
        Ran::Finished(Err(ExecError::Cancelled(e))) => AttemptResult::Cancelled(e),
        Ran::Finished(Err(e @ ExecError::Unavailable(_))) => {
            ctx.metrics.tasks_unavailable.get_or_create(&label).inc();
            // Requeued without spending the attempt, due once the circuit may let a probe through.
            let after = ctx.breaker.state().open_for(std::time::Instant::now()).max(spec.retry_delay);
            AttemptResult::Unavailable { error: e.to_string(), after }
        }
        Ran::Finished(Err(ExecError::Crashed(e))) => {
            // Like a panic: this worker fails, its supervisor restarts it and replays the entry (a
            // delivery, bounded by bus.max_deliveries).
            return Err(format!("agent crashed: {e}").into());
        }
    };
    let schedule = ctx.settings.retry_backoff.starting_at(spec.retry_delay);
    Ok(match decide(env.attempt, spec.max_retries, result, &schedule, rand::random::<f64>()) {
        Verdict::Succeed(result) => {
            if let Some(to) = &env.reply_to {
                // Published before the ack: a crash in between re-runs the task, which republishes the
                // same (deterministic) reply id, which the bus deduplicates.
                let mut reply = env.reply(to.clone(), result.clone());
                let span = crate::trace::publish_span(&reply);
                reply.traceparent = crate::trace::traceparent_of(&span).or(reply.traceparent);
                let ttl = ctx.settings.bus.result_ttl;
                until_ok(&ctx.settings.bus.reconnect, "publish reply", || ctx.bus.publish(&reply, ttl))
                    .instrument(span)
                    .await?;
            }
            Completion::Succeeded { task: env, result }
        }
        Verdict::Retry { next_attempt, delay, error } => {
            tracing::info!(agent = %spec.name, task_id = %env.task_id, attempt = env.attempt, ?delay, %error, "attempt failed; retry scheduled");
            let mut next = env;
            next.attempt = next_attempt;
            Completion::Retry { next, delay, error }
        }
        Verdict::Dead { reason, error } => {
            tracing::warn!(agent = %spec.name, task_id = %env.task_id, attempt = env.attempt, reason, %error, "task dead-lettered");
            Completion::Dead { task: Some(env), reason: reason.into(), error }
        }
    })
}

/// Run the executor under the agent's timeout. When it fires, or a cancel is requested (the token fires
/// from outside), the executor is told to cancel (so it stops the work at its agent) and gets
/// [`CANCEL_GRACE`] to return before it is dropped. An executor that finishes its work anyway within the
/// grace of a cancel request keeps its result: the work was done.
async fn run_until_timeout(
    ctx: &AgentContext,
    tctx: &TaskContext,
    payload: &serde_json::Value,
    cancel: &CancellationToken,
) -> Ran {
    let executor: &dyn Executor = ctx.executor.as_ref();
    let work = executor.execute(tctx, payload);
    tokio::pin!(work);
    // The request first: an executor that returns because the token fired is a cancelled attempt, not
    // one that failed on its own.
    let requested = tokio::select! {
        biased;
        _ = cancel.cancelled() => true,
        r = &mut work => return Ran::Finished(r),
        _ = tokio::time::sleep(ctx.spec.timeout) => false,
    };
    cancel.cancel();
    let why = if requested { "a cancel request" } else { "its timeout" };
    let late = tokio::time::timeout(CANCEL_GRACE, &mut work).await;
    if late.is_err() {
        tracing::warn!(agent = %ctx.spec.name, task_id = %tctx.task_id, grace = ?CANCEL_GRACE, "executor did not stop within the grace period after {why}; dropped");
    }
    match (requested, late) {
        (true, Ok(Ok(v))) => Ran::Finished(Ok(v)),
        (true, _) => Ran::Cancelled,
        (false, _) => Ran::TimedOut,
    }
}
