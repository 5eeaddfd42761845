//! Starting and stopping a node's actor tree.

use crate::bus::{Bus, Lease};
use crate::events::{Events, RuntimeEvent};
use crate::executor::ExecutorRegistry;
use crate::node::root::{NodeContext, Root, RootMsg};
use crate::roster::Roster;
use crate::settings::RuntimeSettings;
use dashmap::DashMap;
use ractor::{Actor, ActorRef};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{0}")]
    Executor(#[from] crate::executor::BuildError),
    #[error("cannot prepare the bus: {0}")]
    Bus(#[from] crate::bus::BusError),
    #[error("cannot start the actor tree: {0}")]
    Spawn(#[from] ractor::SpawnErr),
    #[error("node id `{node_id}` is held by another live process ({holder}); stop it, or give this node a distinct --node-id / node.id")]
    NodeIdTaken { node_id: String, holder: String },
}

/// See [`Runtime::health`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct Health {
    pub node_id: String,
    pub bus: String,
    pub bus_error: Option<String>,
    pub agents_running: usize,
    pub agents_total: usize,
    pub heartbeat_age_ms: Option<u64>,
    pub heartbeat_fresh: bool,
}

impl Health {
    pub fn ready(&self) -> bool {
        self.bus_error.is_none() && self.agents_running == self.agents_total && self.heartbeat_fresh
    }
}

/// A cloneable view of a running node.
#[derive(Clone)]
pub struct RuntimeHandle {
    node: Arc<NodeContext>,
    root: ActorRef<RootMsg>,
}

impl RuntimeHandle {
    /// A snapshot for readiness checks: is the bus reachable, is every agent supervisor running, is
    /// this node's heartbeat fresh (written within its time to live)?
    pub async fn health(&self) -> Health {
        let bus_error = match tokio::time::timeout(std::time::Duration::from_secs(2), self.node.bus.ping()).await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some("ping timed out after 2s".into()),
        };
        let last = self.node.last_beat.load(std::sync::atomic::Ordering::Relaxed);
        let age_ms = if last == 0 { None } else { Some(crate::task::now_ms().saturating_sub(last)) };
        let ttl = self.node.settings.liveness.heartbeat_ttl.as_millis() as u64;
        Health {
            node_id: self.node.settings.node_id.clone(),
            bus: self.node.bus.describe(),
            bus_error,
            agents_running: self.node.agents.len(),
            agents_total: self.node.roster.agents.len(),
            heartbeat_age_ms: age_ms,
            heartbeat_fresh: age_ms.is_some_and(|a| a < ttl),
        }
    }

    pub fn bus(&self) -> &Bus {
        &self.node.bus
    }

    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.node.metrics
    }

    /// The way to the MetaAgent, and the payment token key (for the HTTP payments API).
    pub fn payments(&self) -> &crate::payments::meta_agent::PaymentsClient {
        &self.node.payments_client
    }

    /// The workflows this node carries (for the HTTP workflow API).
    pub fn workflows(&self) -> &crate::workflow::Workflows {
        &self.node.workflows
    }

    /// Make one of an agent's children fail as if it crashed (chaos, tests). `false` if the agent is
    /// not running.
    pub fn crash(&self, agent: &str, child: crate::agent::supervisor::Child) -> bool {
        match self.node.agents.get(agent) {
            Some(a) => a.value().cast(crate::agent::supervisor::AgentMsg::Crash(child)).is_ok(),
            None => false,
        }
    }

    /// Kill one of the root's children as if it crashed (chaos, tests).
    pub fn crash_root_child(&self, child: crate::node::root::RootChild) -> bool {
        self.root.cast(RootMsg::Crash(child)).is_ok()
    }

    /// Whether the root supervisor's mailbox answers within `timeout` (the systemd watchdog's check).
    pub async fn root_alive(&self, timeout: std::time::Duration) -> bool {
        ractor::call_t!(self.root, RootMsg::Ping, timeout.as_millis() as u64).is_ok()
    }
}

/// Take the node id's lease. A holder whose process is gone from this host (a node restarted after a
/// crash) is replaced at once; otherwise wait up to one lease lifetime: a holder that keeps renewing
/// is alive, and this start is refused; one that stops renewing was dead, and its lease expires.
async fn claim_node_id(node: &NodeContext) -> Result<(), RuntimeError> {
    let s = &node.settings;
    let (ttl, id) = (s.liveness.heartbeat_ttl, &s.node_id);
    let info = node.node_info().to_string();
    let deadline = tokio::time::Instant::now() + ttl + s.liveness.heartbeat_interval;
    let mut first_seen: Option<String> = None;
    loop {
        let holder = match node.bus.heartbeat(id, &node.instance, ttl, &info).await? {
            Lease::Held => return Ok(()),
            Lease::Taken { holder } => holder,
        };
        let held: serde_json::Value = serde_json::from_str(&holder).unwrap_or_default();
        if let Some(dead) = dead_here(&held) {
            tracing::warn!(node = %id, %holder, "the previous holder of this node id is gone from this host; taking its lease");
            if node.bus.take_over(id, dead, &node.instance, ttl, &info).await? == Lease::Held {
                return Ok(());
            }
            continue;
        }
        let renewed = first_seen.as_ref().is_some_and(|f| f != &holder);
        if renewed || tokio::time::Instant::now() >= deadline {
            return Err(RuntimeError::NodeIdTaken { node_id: id.clone(), holder: crate::secret::redact_url(&holder) });
        }
        if first_seen.is_none() {
            tracing::warn!(node = %id, %holder, ?ttl, "node id held by another process; waiting to see whether it is alive");
            first_seen = Some(holder);
        }
        tokio::time::sleep(s.liveness.heartbeat_interval.min(std::time::Duration::from_millis(200))).await;
    }
}

/// The instance of a lease whose process ran on this host and no longer exists.
fn dead_here(held: &serde_json::Value) -> Option<&str> {
    let same_host = held["host"].as_str().is_some_and(|h| !h.is_empty() && h == crate::node::root::hostname());
    let pid = held["pid"].as_u64()?;
    let gone = !std::path::Path::new(&format!("/proc/{pid}")).exists();
    (same_host && gone && pid != u64::from(std::process::id())).then(|| held["instance"].as_str()).flatten()
}

/// The configured payment token key, or a random one for this process (said at WARN: tokens it makes
/// then verify on this node only).
fn token_key(p: &crate::payments::PaymentsSettings) -> crate::payments::token::TokenKey {
    match &p.token_key {
        Some(k) => k.clone(),
        None => {
            tracing::warn!("no payment token key configured (payments.token_key_file or GENESIS_PAYMENT_TOKEN_KEY): using a random key for this process; outside agents' payment tokens made here will not verify on other nodes, nor after a restart");
            crate::payments::token::TokenKey::random()
        }
    }
}

/// Each agent's executor and circuit breaker, built once per node. The `orchestrate` executor is built
/// last, because it holds the workflow engine and every other agent's executor (a planner agent may be
/// any of them).
fn agent_parts(
    roster: &Roster,
    executors: &ExecutorRegistry,
    workflows: &crate::workflow::Workflows,
    metrics: &Arc<crate::metrics::Metrics>,
) -> Result<Vec<crate::node::AgentParts>, RuntimeError> {
    use crate::executor::{orchestrate, Executor};
    let is_orchestrate = |a: &crate::roster::AgentSpec| {
        matches!(&a.executor, crate::roster::ExecutorSpec::Named(n) if n == orchestrate::NAME)
            && executors.get(orchestrate::NAME).is_none()
    };
    let mut built: Vec<Option<Arc<dyn Executor>>> = Vec::with_capacity(roster.agents.len());
    for a in &roster.agents {
        built.push(if is_orchestrate(a) { None } else { Some(executors.for_agent(a)?) });
    }
    let planners: std::collections::BTreeMap<String, Arc<dyn Executor>> =
        roster.agents.iter().zip(&built).filter_map(|(a, e)| Some((a.name.clone(), e.clone()?))).collect();
    let ws = workflows.settings();
    let mut parts = Vec::with_capacity(roster.agents.len());
    for (a, executor) in roster.agents.iter().zip(built) {
        let executor = executor.unwrap_or_else(|| {
            Arc::new(orchestrate::Orchestrate::new(
                workflows.clone(),
                ws.templates.clone(),
                planners.clone(),
                ws.planner.clone(),
            ))
        });
        let breaker = Arc::new(crate::agent::breaker::Breaker::new(&a.name, a.breaker));
        breaker.with_metrics(metrics.clone());
        parts.push(crate::node::AgentParts { executor, breaker });
    }
    Ok(parts)
}

/// A running node.
pub struct Runtime {
    root: ActorRef<RootMsg>,
    handle: Option<JoinHandle<()>>,
    node: Arc<NodeContext>,
}

impl Runtime {
    /// Start the whole tree on `bus`, without payments. See [`Runtime::start_with_payments`].
    pub async fn start(
        bus: Bus,
        settings: RuntimeSettings,
        roster: Roster,
        executors: ExecutorRegistry,
    ) -> Result<Runtime, RuntimeError> {
        Self::start_with_payments(bus, settings, roster, executors, None).await
    }

    /// Start the whole tree on `bus`, with a MetaAgent serving `payments` when given. Creates the
    /// consumer groups of every roster topic first.
    pub async fn start_with_payments(
        bus: Bus,
        settings: RuntimeSettings,
        roster: Roster,
        executors: ExecutorRegistry,
        payments: Option<crate::payments::authority::Authority>,
    ) -> Result<Runtime, RuntimeError> {
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let topics: Vec<_> = roster.topics().cloned().collect();
        bus.ensure_topics(&topics).await?;
        let bus = bus.with_dlq_entry_limit(settings.bus.dlq.max_entry_bytes);
        let mut payments_client = crate::payments::meta_agent::PaymentsClient::new(std::time::Duration::from_secs(10));
        if let Some(a) = &payments {
            payments_client = payments_client.with_tokens(token_key(a.settings()));
        }
        let mut workflows =
            crate::workflow::Workflows::new(bus.clone(), &roster, &settings).with_metrics(metrics.clone());
        if let Some(a) = &payments {
            workflows = workflows.with_payments(a.clone());
        }
        let agent_parts = agent_parts(&roster, &executors, &workflows, &metrics)?;
        let node = Arc::new(NodeContext {
            bus,
            workflows,
            settings: Arc::new(settings),
            roster,
            agent_parts,
            events: Events::default(),
            agents: Arc::new(DashMap::new()),
            gave_up: Mutex::new(None),
            payments,
            payments_client,
            last_beat: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            instance: ulid::Ulid::generate().to_string(),
            started_at: crate::task::now_ms(),
            metrics,
            running: Arc::default(),
        });
        // Take the node id's lease before anything runs: two processes on one id would share consumer
        // names and replay each other's in-flight work.
        claim_node_id(&node).await?;
        let (root, handle) = Actor::spawn(None, Root, node.clone()).await?;
        tracing::info!(node = %node.settings.node_id, bus = %node.bus.describe(), agents = node.roster.agents.len(), "node started");
        Ok(Runtime { root, handle: Some(handle), node })
    }

    pub fn subscribe(&self) -> broadcast::Receiver<RuntimeEvent> {
        self.node.events.subscribe()
    }

    pub fn bus(&self) -> &Bus {
        &self.node.bus
    }

    pub fn settings(&self) -> &RuntimeSettings {
        &self.node.settings
    }

    /// The workflows this node carries.
    pub fn workflows(&self) -> &crate::workflow::Workflows {
        &self.node.workflows
    }

    /// A cheap, cloneable view for health checks and the HTTP API.
    pub fn handle(&self) -> RuntimeHandle {
        RuntimeHandle { node: self.node.clone(), root: self.root.clone() }
    }

    /// Wait until the root stops. `Err` carries the reason when the root gave up.
    /// Cancel-safe: `serve` polls it inside `select!`; the handle is awaited by reference and dropped
    /// only once the root has really stopped, so a later call still waits for the tree.
    pub async fn wait(&mut self) -> Result<(), String> {
        if let Some(h) = self.handle.as_mut() {
            let _ = h.await;
            self.handle = None;
        }
        match self.node.gave_up.lock().ok().and_then(|g| g.clone()) {
            Some(reason) => Err(reason),
            None => Ok(()),
        }
    }

    /// Graceful stop: every agent stops fetching, running tasks get up to `shutdown_grace` to finish,
    /// then the tree stops. Tasks still running then are abandoned unacknowledged: on Redis they replay
    /// on the next start, or on another node (a clean stop removes this node's heartbeat at once); on
    /// the in-process bus they are gone with the process, and the log says so.
    pub async fn shutdown(mut self) -> Result<(), String> {
        let grace = self.node.settings.shutdown_grace;
        let _ = self.root.cast(RootMsg::Drain);
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let mut running = 0;
            for a in self.node.agents.iter() {
                running += ractor::call_t!(a.value(), crate::agent::supervisor::AgentMsg::InFlight, 1000).unwrap_or(0);
            }
            if running == 0 {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                if self.node.bus.is_durable() {
                    tracing::warn!(
                        running,
                        ?grace,
                        "grace period over; unfinished tasks stay pending in Redis and will be replayed"
                    );
                } else {
                    tracing::warn!(
                        running,
                        ?grace,
                        "grace period over; unfinished tasks are lost: the in-process bus keeps nothing once this process exits"
                    );
                }
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        self.root.stop(Some("shutdown".into()));
        let r = self.wait().await;
        // Child processes of process agents end with their node.
        for parts in &self.node.agent_parts {
            parts.executor.shutdown().await;
        }
        if let Err(e) = self.node.bus.clear_heartbeat(&self.node.settings.node_id, &self.node.instance).await {
            tracing::warn!(error = %e, "could not remove the heartbeat key; other nodes will wait for it to expire");
        }
        r
    }
}
