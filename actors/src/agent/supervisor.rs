//! The supervisor of one agent: owns its fetcher and workers, dispatches fetched jobs to idle workers,
//! and remembers which entry each worker holds — so a worker that crashes mid-task is restarted and
//! handed the same entry at once, without waiting for any idle timeout.

use crate::agent::fetcher::{Fetcher, FetcherArgs, FetcherMsg};
use crate::agent::worker::{Worker, WorkerArgs, WorkerMsg};
use crate::agent::{AgentContext, Job};
use crate::events::RuntimeEvent;
use crate::policy::intensity::{RestartDecision, RestartHistory};
use crate::task::TaskId;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

pub struct AgentSupervisor;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Child {
    Fetcher,
    Worker(usize),
}

impl fmt::Display for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Child::Fetcher => f.write_str("fetcher"),
            Child::Worker(i) => write!(f, "worker-{i}"),
        }
    }
}

/// The fetcher's only report: jobs it read. The fetcher holds a `DerivedActorRef<Fetched>`, so it
/// cannot send the supervisor anything else (no `Drain`, no `Restart`).
pub struct Fetched(pub Vec<Job>);

/// A worker's only report: it finished the job in its slot (outcome written).
pub struct WorkerDone {
    pub slot: usize,
    pub entry_id: String,
}

pub enum AgentMsg {
    /// Jobs read by the fetcher.
    Jobs(Fetched),
    /// A worker finished the job it held.
    Done(WorkerDone),
    /// Start a child again (sent after its restart backoff).
    Restart(Child),
    /// Forward deliveries claimed from a dead node to this agent's fetcher.
    Inject(Vec<crate::bus::Delivery>),
    /// Stop fetching (shutdown): running tasks finish, nothing new starts. Entries fetched but not
    /// started stay pending in the bus for replay.
    Drain,
    /// How many tasks are running.
    InFlight(ractor::RpcReplyPort<usize>),
    /// Entries pending for this consumer that nothing here holds (an outcome lost in a failover, an
    /// injected batch dropped while restarting): the reclaimer's orphan sweep finds them; they are
    /// replayed to workers like a crashed worker's entry.
    Orphans(Vec<String>),
    /// How many more entries this agent can start now (free slots not yet covered), for the
    /// reclaimer: entries taken from a dead node must not wait in a local queue.
    Capacity(ractor::RpcReplyPort<usize>),
    /// Make a child fail as if it had crashed (the chaos harness's actor kills, and tests of
    /// escalation: a crash not tied to an entry counts against the restart intensity).
    Crash(Child),
}

impl From<Fetched> for AgentMsg {
    fn from(f: Fetched) -> Self {
        AgentMsg::Jobs(f)
    }
}

impl TryFrom<AgentMsg> for Fetched {
    type Error = ();
    fn try_from(m: AgentMsg) -> Result<Self, ()> {
        match m {
            AgentMsg::Jobs(f) => Ok(f),
            _ => Err(()),
        }
    }
}

impl From<WorkerDone> for AgentMsg {
    fn from(d: WorkerDone) -> Self {
        AgentMsg::Done(d)
    }
}

impl TryFrom<AgentMsg> for WorkerDone {
    type Error = ();
    fn try_from(m: AgentMsg) -> Result<Self, ()> {
        match m {
            AgentMsg::Done(d) => Ok(d),
            _ => Err(()),
        }
    }
}

/// What a busy slot holds: enough to replay it (the entry is re-read from the bus) and to log it.
struct Held {
    entry_id: String,
    /// Unknown for an orphan until its worker re-reads it.
    task_id: Option<TaskId>,
    /// Why the last worker that held it crashed (its panic message).
    last_crash: Option<String>,
}

#[derive(Default)]
struct Slot {
    worker: Option<ActorRef<WorkerMsg>>,
    held: Option<Held>,
}

pub struct AgentState {
    ctx: Arc<AgentContext>,
    fetcher: Option<ActorRef<FetcherMsg>>,
    slots: Vec<Slot>,
    /// Slots with a running worker and nothing to do.
    idle: Vec<usize>,
    /// Slots holding nothing (running worker or not): what the fetcher may fill.
    free: usize,
    queue: VecDeque<Job>,
    /// Orphaned entries to replay (re-read and re-claimed by the worker that takes them).
    replays: VecDeque<String>,
    /// Whether a fetcher has started before: only the first replays this consumer's pending
    /// entries (a restarted fetcher would re-read entries the workers hold and bump their delivery
    /// counters; the orphan sweep covers anything else).
    fetcher_started: bool,
    /// Entry ids held by a slot or waiting in the queue, to drop duplicates (a fetcher restart re-reads
    /// this consumer's pending entries, some of which are already held).
    known: HashSet<String>,
    children: HashMap<ActorId, Child>,
    history: RestartHistory,
    /// Credits given to the fetcher and not yet returned as jobs.
    granted: usize,
    draining: bool,
}

impl Actor for AgentSupervisor {
    type Msg = AgentMsg;
    type State = AgentState;
    type Arguments = Arc<AgentContext>;

    async fn pre_start(
        &self,
        me: ActorRef<AgentMsg>,
        ctx: Arc<AgentContext>,
    ) -> Result<AgentState, ActorProcessingErr> {
        let n = ctx.spec.concurrency;
        let mut st = AgentState {
            ctx,
            fetcher: None,
            slots: (0..n).map(|_| Slot::default()).collect(),
            idle: Vec::with_capacity(n),
            free: n,
            queue: VecDeque::new(),
            replays: VecDeque::new(),
            fetcher_started: false,
            known: HashSet::new(),
            children: HashMap::new(),
            history: RestartHistory::default(),
            granted: 0,
            draining: false,
        };
        for i in 0..st.slots.len() {
            start(&me, &mut st, Child::Worker(i)).await?;
        }
        start(&me, &mut st, Child::Fetcher).await?;
        Ok(st)
    }

    async fn post_start(&self, _: ActorRef<AgentMsg>, st: &mut AgentState) -> Result<(), ActorProcessingErr> {
        grant(st);
        Ok(())
    }

    async fn handle(
        &self,
        me: ActorRef<AgentMsg>,
        msg: AgentMsg,
        st: &mut AgentState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            // A fetch that was in flight when draining began: leave its entries pending in the bus (they
            // replay on the next start, or on another node), start nothing new.
            AgentMsg::Jobs(_) if st.draining => {}
            AgentMsg::Jobs(Fetched(jobs)) => {
                st.granted = st.granted.saturating_sub(jobs.len());
                for job in jobs {
                    if st.known.insert(job.delivery.entry_id.clone()) {
                        st.queue.push_back(job);
                    }
                }
            }
            AgentMsg::Done(WorkerDone { slot, entry_id }) => {
                if let Some(s) = st.slots.get_mut(slot) {
                    if s.held.as_ref().is_some_and(|h| h.entry_id == entry_id) {
                        s.held = None;
                        st.known.remove(&entry_id);
                        st.free += 1;
                        if s.worker.is_some() {
                            st.idle.push(slot);
                        }
                    }
                }
            }
            AgentMsg::Restart(Child::Fetcher) if st.draining => {}
            AgentMsg::Restart(child) => start(&me, st, child).await?,
            AgentMsg::Drain => {
                st.draining = true;
                if let Some(f) = st.fetcher.take() {
                    st.children.remove(&f.get_id());
                    f.stop(Some("draining".into()));
                }
                for job in st.queue.drain(..) {
                    st.known.remove(&job.delivery.entry_id);
                }
                tracing::info!(agent = %st.ctx.spec.name, running = st.slots.len() - st.free, "draining: no new tasks");
            }
            AgentMsg::InFlight(reply) => {
                let _ = reply.send(st.slots.len() - st.free);
            }
            AgentMsg::Orphans(_) if st.draining => {}
            AgentMsg::Orphans(ids) => {
                for id in ids {
                    if st.known.insert(id.clone()) {
                        tracing::warn!(agent = %st.ctx.spec.name, entry = %id, "orphaned pending entry found; replaying it");
                        st.replays.push_back(id);
                    }
                }
            }
            AgentMsg::Capacity(reply) => {
                // Credits granted to the fetcher are not subtracted: injected entries use them up
                // (the fetcher counts them against its credits), so the total stays within the slots.
                let taken = st.queue.len() + st.replays.len();
                let _ = reply.send(if st.draining { 0 } else { st.free.saturating_sub(taken) });
            }
            AgentMsg::Crash(Child::Fetcher) => {
                if let Some(f) = &st.fetcher {
                    let _ = f.cast(FetcherMsg::Crash);
                }
            }
            AgentMsg::Crash(Child::Worker(i)) => {
                if let Some(w) = st.slots.get(i).and_then(|s| s.worker.as_ref()) {
                    let _ = w.cast(WorkerMsg::Crash);
                }
            }
            AgentMsg::Inject(_) if st.draining => {}
            AgentMsg::Inject(deliveries) => {
                if let Some(f) = &st.fetcher {
                    let _ = f.cast(FetcherMsg::Inject(deliveries));
                }
                // Without a fetcher the entries stay pending for this consumer; the restarted fetcher
                // replays them from its pending list.
            }
        }
        dispatch(st);
        grant(st);
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        me: ActorRef<AgentMsg>,
        evt: SupervisionEvent,
        st: &mut AgentState,
    ) -> Result<(), ActorProcessingErr> {
        let Some((cell, why)) = crate::supervision::exit_of(&evt) else { return Ok(()) };
        let Some(child) = st.children.remove(&cell.get_id()) else { return Ok(()) };
        let agent = st.ctx.spec.name.clone();
        match child {
            Child::Fetcher => {
                st.fetcher = None;
                st.granted = 0;
            }
            Child::Worker(i) => {
                if let Some(s) = st.slots.get_mut(i) {
                    s.worker = None;
                }
                st.idle.retain(|&x| x != i);
            }
        }
        let holding = match child {
            Child::Worker(i) => st
                .slots
                .get(i)
                .and_then(|s| s.held.as_ref())
                .map(|h| h.task_id.map(|t| t.to_string()).unwrap_or_else(|| h.entry_id.clone())),
            Child::Fetcher => None,
        };
        tracing::warn!(%agent, child = %child, reason = %why, task_id = holding.as_deref().unwrap_or("-"), "supervised child exited");
        st.ctx.events.emit(RuntimeEvent::ChildFailed {
            supervisor: agent.clone(),
            child: child.to_string(),
            reason: why.clone(),
            at: Instant::now(),
        });
        if let Child::Worker(i) = child {
            if let Some(h) = st.slots.get_mut(i).and_then(|s| s.held.as_mut()) {
                h.last_crash = Some(crash_text(&why));
            }
        }
        if holding.is_some() {
            // A worker that crashed while running an entry: the crash is that entry's (its delivery
            // counter bounds it: past `bus.max_deliveries` it is dead-lettered as poison), so it is
            // contained there and not counted against this supervisor's intensity — a poison storm on
            // one agent cannot take the node down. The successor replays the entry at once.
            let restart = crate::metrics::RestartLabel { supervisor: agent.clone(), child: child.to_string() };
            st.ctx.metrics.actor_restarts.get_or_create(&restart).inc();
            st.ctx.events.emit(RuntimeEvent::ChildRestarted {
                supervisor: agent,
                child: child.to_string(),
                restarts_in_window: st.history.recent() as u32,
                after: std::time::Duration::ZERO,
            });
            start(&me, st, child).await?;
            dispatch(st);
            grant(st);
            return Ok(());
        }
        let sup = &st.ctx.settings.supervision;
        match st.history.on_failure(Instant::now(), sup.agent, &sup.restart_backoff, rand::random::<f64>()) {
            RestartDecision::Restart { after, restarts_in_window } => {
                tracing::info!(%agent, child = %child, ?after, restarts_in_window, "restarting child");
                let restart = crate::metrics::RestartLabel { supervisor: agent.clone(), child: child.to_string() };
                st.ctx.metrics.actor_restarts.get_or_create(&restart).inc();
                st.ctx.events.emit(RuntimeEvent::ChildRestarted {
                    supervisor: agent,
                    child: child.to_string(),
                    restarts_in_window,
                    after,
                });
                if after.is_zero() {
                    start(&me, st, child).await?;
                    dispatch(st);
                    grant(st);
                } else {
                    me.send_after(after, move || AgentMsg::Restart(child));
                }
                Ok(())
            }
            RestartDecision::Escalate { restarts_in_window } => {
                let reason = format!(
                    "agent {agent}: restart intensity exceeded ({restarts_in_window} restarts within {:?}, limit {}); last: {child} {why}",
                    sup.agent.within, sup.agent.max_restarts
                );
                tracing::error!(%agent, %reason, "escalating to the root supervisor");
                st.ctx.events.emit(RuntimeEvent::Escalated { supervisor: agent, reason: reason.clone() });
                Err(reason.into())
            }
        }
    }
}

async fn start(me: &ActorRef<AgentMsg>, st: &mut AgentState, child: Child) -> Result<(), ActorProcessingErr> {
    let ctx = st.ctx.clone();
    match child {
        Child::Fetcher => {
            let replay_pending = !st.fetcher_started;
            let args = FetcherArgs { ctx, supervisor: me.get_derived(), replay_pending };
            let (f, _) = Actor::spawn_linked(None, Fetcher, args, me.get_cell()).await?;
            st.fetcher_started = true;
            st.children.insert(f.get_id(), child);
            st.fetcher = Some(f);
            st.granted = 0;
        }
        Child::Worker(slot) => {
            let (w, _) = Actor::spawn_linked(
                None,
                Worker,
                WorkerArgs { ctx, slot, supervisor: me.get_derived() },
                me.get_cell(),
            )
            .await?;
            st.children.insert(w.get_id(), child);
            if let Some(s) = st.slots.get_mut(slot) {
                match &s.held {
                    // The entry the crashed worker held goes to its successor at once.
                    Some(h) => {
                        let _ = w.cast(WorkerMsg::Replay {
                            entry_id: h.entry_id.clone(),
                            task_id: h.task_id,
                            last_crash: h.last_crash.clone(),
                        });
                    }
                    None => st.idle.push(slot),
                }
                s.worker = Some(w);
            }
        }
    }
    Ok(())
}

/// Give orphans to replay, then queued jobs, to idle, running workers (none while draining).
fn dispatch(st: &mut AgentState) {
    while !st.replays.is_empty() && !st.draining {
        let Some(slot) = st.idle.pop() else { return };
        let (Some(s), Some(entry_id)) = (st.slots.get_mut(slot), st.replays.pop_front()) else { return };
        let Some(w) = &s.worker else {
            st.replays.push_front(entry_id);
            continue;
        };
        s.held = Some(Held { entry_id: entry_id.clone(), task_id: None, last_crash: None });
        st.free -= 1;
        let _ = w.cast(WorkerMsg::Replay { entry_id, task_id: None, last_crash: None });
    }
    while !st.queue.is_empty() && !st.draining {
        let Some(slot) = st.idle.pop() else { break };
        let (Some(s), Some(job)) = (st.slots.get_mut(slot), st.queue.pop_front()) else { break };
        let Some(w) = &s.worker else {
            // Not running after all: put the job back; the slot returns to `idle` when restarted.
            st.queue.push_front(job);
            continue;
        };
        s.held = Some(Held {
            entry_id: job.delivery.entry_id.clone(),
            task_id: Some(job.envelope.task_id),
            last_crash: None,
        });
        st.free -= 1;
        let _ = w.cast(WorkerMsg::Run(Box::new(job)));
    }
}

/// Ask the fetcher for as many entries as there are free slots not already covered.
fn grant(st: &mut AgentState) {
    if st.draining {
        return;
    }
    let want = st.free.saturating_sub(st.queue.len() + st.replays.len() + st.granted);
    if want > 0 {
        if let Some(f) = &st.fetcher {
            if f.cast(FetcherMsg::Credit(want)).is_ok() {
                st.granted += want;
            }
        }
    }
}

/// A crash reason short enough for a dead letter (a panic message can be long).
fn crash_text(why: &str) -> String {
    const MAX: usize = 500;
    let mut t: String = why.chars().take(MAX).collect();
    if why.chars().count() > MAX {
        t.push('…');
    }
    t
}
