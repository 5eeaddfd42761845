//! The root supervisor: one agent supervisor per roster entry plus the node's service actors,
//! one-for-one. When its own restart intensity is exceeded it records why and fails, which ends the
//! runtime; the binary then exits non-zero.

use crate::agent::supervisor::{AgentMsg, AgentSupervisor};
use crate::agent::AgentContext;
use crate::bus::{keys, Bus};
use crate::events::{Events, RuntimeEvent};
use crate::node::services::canceller::Canceller;
use crate::node::services::heartbeat::Heartbeat;
use crate::node::services::reclaimer::Reclaimer;
use crate::node::services::retry_scheduler::RetryScheduler;
use crate::node::services::trimmer::Trimmer;
use crate::node::services::{Periodic, Ticker, TickerArgs};
use crate::policy::intensity::{RestartDecision, RestartHistory};
use crate::roster::Roster;
use crate::settings::RuntimeSettings;
use dashmap::DashMap;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Everything the node's actors share.
pub struct NodeContext {
    pub bus: Bus,
    pub settings: Arc<RuntimeSettings>,
    pub roster: Roster,
    /// Per roster agent (same index): its executor and circuit breaker, built once per node so that
    /// an agent supervisor's restart keeps the executor's pool and the breaker's state.
    pub agent_parts: Vec<super::AgentParts>,
    pub events: Events,
    /// Running agent supervisors by agent name (the reclaimer's directory).
    pub agents: Arc<DashMap<String, ActorRef<AgentMsg>>>,
    /// Why the root gave up, if it did.
    pub gave_up: Mutex<Option<String>>,
    /// The payment authority, when payments are configured; the MetaAgent serves it.
    pub payments: Option<crate::payments::authority::Authority>,
    /// Follows the running MetaAgent across restarts.
    pub payments_client: crate::payments::meta_agent::PaymentsClient,
    /// The workflows carried by this node's bus (its workers' hook and its sweeper).
    pub workflows: crate::workflow::Workflows,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// This process's lease on the node id (a ULID made at start).
    pub instance: String,
    pub started_at: u64,
    /// Last successful heartbeat write (ms since the epoch; 0 = never).
    pub last_beat: Arc<std::sync::atomic::AtomicU64>,
    /// The attempts running on this node, for cancel requests to reach them.
    pub running: Arc<super::running::RunningAttempts>,
}

impl NodeContext {
    /// What the liveness key says about this process: who holds the node id, for `genesis health`
    /// and for the message a second process with the same id gets.
    pub fn node_info(&self) -> serde_json::Value {
        serde_json::json!({
            "instance": self.instance,
            "pid": std::process::id(),
            "host": hostname(),
            "started_at": self.started_at,
            "workers": self.roster.agents.iter().map(|a| (a.name.clone(), a.concurrency)).collect::<std::collections::BTreeMap<_, _>>(),
        })
    }
}

/// How often a node looks for cancel requests for the tasks it runs: a cancel reaches a running
/// attempt within this (plus the executor's time to stop the work at its agent).
const CANCEL_POLL: std::time::Duration = std::time::Duration::from_millis(250);

pub(crate) fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RootChild {
    MetaAgent,
    Sampler,
    Agent(usize),
    Heartbeat,
    Reclaimer,
    RetryScheduler,
    Trimmer,
    /// Settles the reservations of finished tasks (with payments only).
    Reconciler,
    Canceller,
    /// Repairs workflows a node left mid-way (deadlines, missed outcomes, undone effects).
    Sweeper,
}

pub struct Root;

pub enum RootMsg {
    Restart(RootChild),
    /// Answered by the root's own mailbox: proof of life for the systemd watchdog.
    Ping(ractor::RpcReplyPort<()>),
    /// Begin a graceful shutdown: every agent stops fetching.
    Drain,
    /// Kill one child as if it crashed (chaos harness, tests).
    Crash(RootChild),
}

pub struct RootState {
    node: Arc<NodeContext>,
    children: HashMap<ActorId, RootChild>,
    /// Restarts of agents and the MetaAgent: past the root's intensity the node gives up.
    history: RestartHistory,
    /// Restarts of the node's services, per service: they back off but never end the node (a
    /// sampler or trimmer that keeps failing is reported, not fatal; a heartbeat that keeps failing
    /// shows on `/readyz`).
    services: HashMap<RootChild, RestartHistory>,
}

impl RootChild {
    fn is_service(self) -> bool {
        matches!(
            self,
            RootChild::Sampler
                | RootChild::Heartbeat
                | RootChild::Reclaimer
                | RootChild::RetryScheduler
                | RootChild::Trimmer
                | RootChild::Reconciler
                | RootChild::Canceller
                | RootChild::Sweeper
        )
    }
}

struct ChildName<'a>(&'a NodeContext, RootChild);

impl fmt::Display for ChildName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            RootChild::Agent(i) => match self.0.roster.agents.get(i) {
                Some(a) => write!(f, "agent {}", a.name),
                None => write!(f, "agent #{i}"),
            },
            other => write!(f, "{other:?}"),
        }
    }
}

impl Actor for Root {
    type Msg = RootMsg;
    type State = RootState;
    type Arguments = Arc<NodeContext>;

    async fn pre_start(&self, me: ActorRef<RootMsg>, node: Arc<NodeContext>) -> Result<RootState, ActorProcessingErr> {
        let mut st =
            RootState { node, children: HashMap::new(), history: RestartHistory::default(), services: HashMap::new() };
        start(&me, &mut st, RootChild::Heartbeat).await?;
        if st.node.payments.is_some() {
            start(&me, &mut st, RootChild::MetaAgent).await?;
        }
        for i in 0..st.node.roster.agents.len() {
            start(&me, &mut st, RootChild::Agent(i)).await?;
        }
        for c in [
            RootChild::Reclaimer,
            RootChild::RetryScheduler,
            RootChild::Trimmer,
            RootChild::Sampler,
            RootChild::Canceller,
            RootChild::Sweeper,
        ] {
            start(&me, &mut st, c).await?;
        }
        if st.node.payments.is_some() {
            start(&me, &mut st, RootChild::Reconciler).await?;
        }
        Ok(st)
    }

    async fn handle(&self, me: ActorRef<RootMsg>, msg: RootMsg, st: &mut RootState) -> Result<(), ActorProcessingErr> {
        match msg {
            RootMsg::Restart(child) => start(&me, st, child).await,
            RootMsg::Ping(reply) => {
                let _ = reply.send(());
                Ok(())
            }
            RootMsg::Crash(child) => {
                let ids: Vec<ActorId> = st.children.iter().filter(|(_, c)| **c == child).map(|(id, _)| *id).collect();
                for cell in me.get_children() {
                    if ids.contains(&cell.get_id()) {
                        cell.kill();
                    }
                }
                Ok(())
            }
            RootMsg::Drain => {
                for a in st.node.agents.iter() {
                    let _ = a.value().cast(AgentMsg::Drain);
                }
                Ok(())
            }
        }
    }

    async fn handle_supervisor_evt(
        &self,
        me: ActorRef<RootMsg>,
        evt: SupervisionEvent,
        st: &mut RootState,
    ) -> Result<(), ActorProcessingErr> {
        let Some((cell, why)) = crate::supervision::exit_of(&evt) else { return Ok(()) };
        let Some(child) = st.children.remove(&cell.get_id()) else { return Ok(()) };
        let node = st.node.clone();
        let name = ChildName(&node, child).to_string();
        match child {
            RootChild::Agent(i) => {
                if let Some(a) = node.roster.agents.get(i) {
                    node.agents.remove(&a.name);
                }
            }
            RootChild::MetaAgent => node.payments_client.set(None),
            _ => {}
        }
        tracing::warn!(child = %name, reason = %why, "root: child exited");
        node.events.emit(RuntimeEvent::ChildFailed {
            supervisor: "root".into(),
            child: name.clone(),
            reason: why.clone(),
            at: Instant::now(),
        });
        let sup = &node.settings.supervision;
        if child.is_service() {
            let history = st.services.entry(child).or_default();
            let after = match history.on_failure(Instant::now(), sup.root, &sup.restart_backoff, rand::random::<f64>())
            {
                RestartDecision::Restart { after, .. } => after,
                RestartDecision::Escalate { restarts_in_window } => {
                    tracing::error!(child = %name, restarts_in_window, "node service keeps failing; restarting it at the slowest pace (it never ends the node)");
                    sup.restart_backoff.max
                }
            };
            let restart = crate::metrics::RestartLabel { supervisor: "root".into(), child: name.clone() };
            node.metrics.actor_restarts.get_or_create(&restart).inc();
            node.events.emit(RuntimeEvent::ChildRestarted {
                supervisor: "root".into(),
                child: name,
                restarts_in_window: history.recent() as u32,
                after,
            });
            me.send_after(after, move || RootMsg::Restart(child));
            return Ok(());
        }
        match st.history.on_failure(Instant::now(), sup.root, &sup.restart_backoff, rand::random::<f64>()) {
            RestartDecision::Restart { after, restarts_in_window } => {
                tracing::info!(child = %name, ?after, restarts_in_window, "root: restarting child");
                let restart = crate::metrics::RestartLabel { supervisor: "root".into(), child: name.clone() };
                node.metrics.actor_restarts.get_or_create(&restart).inc();
                node.events.emit(RuntimeEvent::ChildRestarted {
                    supervisor: "root".into(),
                    child: name,
                    restarts_in_window,
                    after,
                });
                me.send_after(after, move || RootMsg::Restart(child));
                Ok(())
            }
            RestartDecision::Escalate { restarts_in_window } => {
                let reason = format!(
                    "root supervisor gave up: {restarts_in_window} restarts within {:?} (limit {}); last: {name} {why}",
                    sup.root.within, sup.root.max_restarts
                );
                tracing::error!(%reason, "the node stops");
                if let Ok(mut g) = node.gave_up.lock() {
                    *g = Some(reason.clone());
                }
                node.events.emit(RuntimeEvent::RootGaveUp { reason: reason.clone() });
                Err(reason.into())
            }
        }
    }
}

async fn start(me: &ActorRef<RootMsg>, st: &mut RootState, child: RootChild) -> Result<(), ActorProcessingErr> {
    let node = &st.node;
    let s = &node.settings;
    let topics: Vec<_> = node.roster.topics().cloned().collect();
    let job: Box<dyn Periodic> = match child {
        RootChild::Agent(i) => {
            let spec = node.roster.agents.get(i).ok_or("no such agent")?.clone();
            let parts = node.agent_parts.get(i).ok_or("no such agent")?;
            let ctx = Arc::new(AgentContext {
                consumer: keys::consumer(&s.node_id, &spec.name),
                node_id: s.node_id.clone(),
                bus: node.bus.clone(),
                settings: s.clone(),
                executor: parts.executor.clone(),
                breaker: parts.breaker.clone(),
                events: node.events.clone(),
                payments: node.payments_client.clone(),
                workflows: node.workflows.clone(),
                metrics: node.metrics.clone(),
                running: node.running.clone(),
                spec,
            });
            let name = ctx.spec.name.clone();
            let (a, _) = Actor::spawn_linked(None, AgentSupervisor, ctx, me.get_cell()).await?;
            st.children.insert(a.get_id(), child);
            node.agents.insert(name, a);
            return Ok(());
        }
        RootChild::MetaAgent => {
            let authority = node.payments.clone().ok_or("payments are not configured")?;
            let args = crate::payments::meta_agent::MetaArgs { authority, metrics: Some(node.metrics.clone()) };
            let (m, _) = Actor::spawn_linked(None, crate::payments::meta_agent::MetaAgent, args, me.get_cell()).await?;
            st.children.insert(m.get_id(), child);
            node.payments_client.set(Some(m));
            return Ok(());
        }
        RootChild::Heartbeat => Box::new(Heartbeat {
            bus: node.bus.clone(),
            node_id: s.node_id.clone(),
            instance: node.instance.clone(),
            interval: s.liveness.heartbeat_interval,
            ttl: s.liveness.heartbeat_ttl,
            info: node.node_info(),
            last_beat: node.last_beat.clone(),
            circuits: node
                .roster
                .agents
                .iter()
                .zip(&node.agent_parts)
                .map(|(a, p)| (a.name.clone(), p.breaker.clone()))
                .collect(),
        }),
        RootChild::Reclaimer => Box::new(Reclaimer {
            bus: node.bus.clone(),
            node_id: s.node_id.clone(),
            roster: node.roster.clone(),
            interval: s.liveness.reclaim_interval,
            min_idle: s.liveness.heartbeat_interval,
            agents: node.agents.clone(),
            // Three lease lifetimes: far past any hand-over between fetcher, supervisor and worker.
            orphan_idle: s.liveness.heartbeat_ttl * 3,
        }),
        RootChild::RetryScheduler => {
            Box::new(RetryScheduler { bus: node.bus.clone(), topics, interval: s.bus.retry_poll })
        }
        RootChild::Sampler => Box::new(crate::node::services::sampler::Sampler {
            bus: node.bus.clone(),
            node_id: s.node_id.clone(),
            roster: node.roster.clone(),
            payments: node.payments.clone(),
            metrics: node.metrics.clone(),
            last_beat: node.last_beat.clone(),
            interval: std::time::Duration::from_secs(5),
        }),
        RootChild::Trimmer => Box::new(Trimmer::new(node.bus.clone(), &node.roster, &s.bus, node.metrics.clone())),
        RootChild::Reconciler => {
            let authority = node.payments.clone().ok_or("payments are not configured")?;
            Box::new(crate::node::services::reconciler::Reconciler {
                bus: node.bus.clone(),
                roster: node.roster.clone(),
                interval: authority.settings().reconcile_interval,
                authority,
                metrics: node.metrics.clone(),
            })
        }
        RootChild::Sweeper => Box::new(crate::node::services::sweeper::Sweeper {
            workflows: node.workflows.clone(),
            interval: s.workflows.sweep_interval,
        }),
        RootChild::Canceller => Box::new(Canceller {
            bus: node.bus.clone(),
            node_id: s.node_id.clone(),
            running: node.running.clone(),
            interval: CANCEL_POLL,
        }),
    };
    let (t, _) =
        Actor::spawn_linked(None, Ticker, TickerArgs { job, reconnect: s.bus.reconnect }, me.get_cell()).await?;
    st.children.insert(t.get_id(), child);
    Ok(())
}
