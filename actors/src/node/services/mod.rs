//! The node's service actors, each a periodic job run by the same small [`Ticker`] actor:
//! [`heartbeat`] (liveness key), [`reclaimer`] (entries of dead nodes), [`retry_scheduler`] (due
//! retries back into their streams), [`trimmer`] (acknowledged entries out of the streams),
//! [`sampler`] (gauges), [`canceller`] (cancel requests to the attempts running here), [`sweeper`]
//! (workflows a node left mid-way) and, with payments, [`reconciler`] (reservations of finished
//! tasks).
//!
//! A failed bus call slows a ticker down (capped backoff) and never fails the actor; only a panic does,
//! and the root supervisor restarts it with a fresh job.

pub mod canceller;
pub mod heartbeat;
pub mod reclaimer;
pub mod reconciler;
pub mod retry_scheduler;
pub mod sampler;
pub mod sweeper;
pub mod trimmer;

use crate::bus::BusError;
use crate::policy::backoff::Backoff;
use crate::policy::retry::Retry;
use futures::future::BoxFuture;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::time::Duration;

pub trait Periodic: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn interval(&self) -> Duration;
    fn tick(&mut self) -> BoxFuture<'_, Result<(), BusError>>;
}

pub struct Ticker;

pub struct TickerArgs {
    pub job: Box<dyn Periodic>,
    pub reconnect: Backoff,
}

pub struct TickerState {
    job: Box<dyn Periodic>,
    retry: Retry,
}

pub struct Tick;

impl Actor for Ticker {
    type Msg = Tick;
    type State = TickerState;
    type Arguments = TickerArgs;

    async fn pre_start(&self, me: ActorRef<Tick>, a: TickerArgs) -> Result<TickerState, ActorProcessingErr> {
        me.cast(Tick)?;
        Ok(TickerState { job: a.job, retry: Retry::new(a.reconnect) })
    }

    async fn handle(&self, me: ActorRef<Tick>, _: Tick, st: &mut TickerState) -> Result<(), ActorProcessingErr> {
        let next = match st.job.tick().await {
            Ok(()) => {
                st.retry.succeeded();
                st.job.interval()
            }
            Err(e) => {
                // No bus error ends a service actor: it slows down and says why (a service's failure
                // must not spend the root's restart budget; only a panic reaches the supervisor).
                crate::metrics::count_bus_error(&e);
                let f = st.retry.failed();
                if f.log {
                    tracing::warn!(service = st.job.name(), failures = f.failures, class = e.class().as_str(), error = %e, "bus call failed; backing off");
                }
                st.job.interval().max(f.delay)
            }
        };
        me.send_after(next, || Tick);
        Ok(())
    }
}
