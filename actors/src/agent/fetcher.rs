//! The fetcher reads its agent's topic for consumer `<node>/<agent>` and hands decoded entries to the
//! agent supervisor. It reads only as many entries as the supervisor has granted credits for (idle
//! workers), so nothing waits in a local buffer while another node could have run it.
//!
//! On every (re)start it first reads this consumer's own pending entries (id `0`): after a node or
//! fetcher restart, those are replayed before anything new. Undecodable entries are dead-lettered here.

use super::{AgentContext, Job};
use crate::agent::supervisor::Fetched;
use crate::bus::retrying::until_ok;
use crate::bus::{Begun, BusError, Completed, Completion, Delivery, Reader};
use crate::policy::outcome::reason;
use crate::task::TaskEnvelope;
use ractor::{Actor, ActorProcessingErr, ActorRef, DerivedActorRef};
use std::sync::Arc;

pub struct Fetcher;

pub struct FetcherArgs {
    pub ctx: Arc<AgentContext>,
    pub supervisor: DerivedActorRef<Fetched>,
    /// Read this consumer's own pending entries first (the agent's first fetcher: a node restart).
    pub replay_pending: bool,
}

pub enum FetcherMsg {
    /// The supervisor can take this many more jobs.
    Credit(usize),
    /// Read again (self-sent while credits remain, or after a backoff).
    Poll,
    /// Deliveries claimed from a dead node by the reclaimer, to run here.
    Inject(Vec<Delivery>),
    /// Fail now (see `AgentMsg::Crash`).
    Crash,
}

enum Cursor {
    /// Replaying own pending entries after this id.
    Pending(String),
    New,
}

pub struct FetcherState {
    ctx: Arc<AgentContext>,
    supervisor: DerivedActorRef<Fetched>,
    reader: Option<Reader>,
    credits: usize,
    cursor: Cursor,
    polling: bool,
    retry: crate::policy::retry::Retry,
}

impl Actor for Fetcher {
    type Msg = FetcherMsg;
    type State = FetcherState;
    type Arguments = FetcherArgs;

    async fn pre_start(&self, _: ActorRef<FetcherMsg>, a: FetcherArgs) -> Result<FetcherState, ActorProcessingErr> {
        let retry = crate::policy::retry::Retry::new(a.ctx.settings.bus.reconnect);
        Ok(FetcherState {
            ctx: a.ctx,
            supervisor: a.supervisor,
            reader: None,
            credits: 0,
            cursor: if a.replay_pending { Cursor::Pending("0".into()) } else { Cursor::New },
            polling: false,
            retry,
        })
    }

    async fn handle(
        &self,
        me: ActorRef<FetcherMsg>,
        msg: FetcherMsg,
        st: &mut FetcherState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            FetcherMsg::Credit(n) => {
                st.credits += n;
                poll_soon(&me, st);
            }
            FetcherMsg::Crash => return Err("crash requested (chaos)".into()),
            FetcherMsg::Inject(batch) => {
                let jobs = admit(&st.ctx, batch).await?;
                hand_over(st, jobs);
            }
            FetcherMsg::Poll => {
                st.polling = false;
                if st.credits == 0 {
                    return Ok(());
                }
                // The endpoint is down: leave tasks queued in the stream (no attempts spent on it).
                if let Err(wait) = st.ctx.breaker.reading() {
                    st.polling = true;
                    me.send_after(wait, || FetcherMsg::Poll);
                    return Ok(());
                }
                match read(st).await {
                    Ok(batch) => {
                        st.retry.succeeded();
                        let jobs = admit(&st.ctx, batch).await?;
                        hand_over(st, jobs);
                        poll_soon(&me, st);
                    }
                    Err(e) => {
                        crate::metrics::count_bus_error(&e);
                        let f = st.retry.failed();
                        let delay = f.delay;
                        if f.log {
                            tracing::warn!(agent = %st.ctx.spec.name, failures = f.failures, ?delay, error = %e, "read failed; backing off");
                        }
                        st.polling = true;
                        me.send_after(delay, || FetcherMsg::Poll);
                    }
                }
            }
        }
        Ok(())
    }
}

fn poll_soon(me: &ActorRef<FetcherMsg>, st: &mut FetcherState) {
    if st.credits > 0 && !st.polling {
        st.polling = true;
        let _ = me.cast(FetcherMsg::Poll);
    }
}

fn hand_over(st: &mut FetcherState, jobs: Vec<Job>) {
    if jobs.is_empty() {
        return;
    }
    st.credits = st.credits.saturating_sub(jobs.len());
    let _ = st.supervisor.send_message(Fetched(jobs));
}

async fn read(st: &mut FetcherState) -> Result<Vec<Delivery>, BusError> {
    let ctx = &st.ctx;
    if st.reader.is_none() {
        st.reader = Some(ctx.bus.reader(&ctx.consumer).await?);
    }
    let Some(reader) = st.reader.as_mut() else { return Ok(Vec::new()) };
    let topic = &ctx.spec.topic;
    match &st.cursor {
        Cursor::Pending(after) => {
            let batch = reader.read_pending(topic, after, st.credits).await?;
            match batch.last() {
                Some(last) => {
                    tracing::info!(agent = %ctx.spec.name, count = batch.len(), "replaying this consumer's pending entries");
                    st.cursor = Cursor::Pending(last.entry_id.clone());
                }
                None => st.cursor = Cursor::New,
            }
            Ok(batch)
        }
        Cursor::New => reader.read_new(topic, st.credits, ctx.settings.bus.block).await,
    }
}

/// Decode a batch: dead-letter what cannot be decoded, mark the rest running, drop (ack) what already
/// succeeded, drop what is not pending for this consumer on the master, and return the jobs to run (or,
/// when a cancel was requested, to dead-letter as such).
async fn admit(ctx: &AgentContext, batch: Vec<Delivery>) -> Result<Vec<Job>, ActorProcessingErr> {
    let reconnect = ctx.settings.bus.reconnect;
    let ttl = ctx.settings.bus.result_ttl;
    let mut valid = Vec::with_capacity(batch.len());
    for d in batch {
        match super::decode(ctx, &d) {
            Ok(env) => valid.push((d, env)),
            Err(e) => {
                tracing::warn!(agent = %ctx.spec.name, entry = %d.entry_id, error = %e, "undecodable entry dead-lettered");
                let l = crate::metrics::DeadLabel { agent: ctx.spec.name.clone(), reason: reason::DECODE.into() };
                ctx.metrics.tasks_dead.get_or_create(&l).inc();
                let dead = Completion::Dead { task: None, reason: reason::DECODE.into(), error: e.to_string() };
                let written =
                    until_ok(&reconnect, "dead-letter", || ctx.bus.complete(&ctx.consumer, &d, &dead, ttl)).await?;
                if written == Completed::Done {
                    super::undecodable(ctx, &d, &e).await;
                }
            }
        }
    }
    if valid.is_empty() {
        return Ok(Vec::new());
    }
    let refs: Vec<(&Delivery, &TaskEnvelope)> = valid.iter().map(|(d, e)| (d, e)).collect();
    let run = until_ok(&reconnect, "begin", || ctx.bus.begin(&ctx.consumer, &refs, ttl)).await?;
    Ok(valid
        .into_iter()
        .zip(run)
        .filter_map(|((delivery, envelope), begun)| match begun {
            Begun::AlreadySucceeded => None,
            Begun::NotOwner => {
                tracing::warn!(agent = %ctx.spec.name, entry = %delivery.entry_id, task_id = %envelope.task_id, "entry not pending for this consumer on the master (taken over, or read from a server that is no longer master): not run");
                None
            }
            Begun::Run => Some(Job { delivery, envelope, cancel_requested: false }),
            Begun::CancelRequested => Some(Job { delivery, envelope, cancel_requested: true }),
        })
        .collect())
}
