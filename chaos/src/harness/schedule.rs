//! The chaos schedule of a run: owns Redis, the nodes and the A2A agent servers while the run lasts,
//! performs what is due (kills and restarts on seeded, jittered intervals), restarts nodes that exit
//! on their own, and scrapes the nodes' `/metrics` on the way.

use crate::agents::AgentServer;
use crate::cluster::{Launcher, NodeProc, RedisProc};
use crate::metrics::Scraper;
use crate::record::{ChaosEvent, Clock, EventKind};
use crate::secs;
use anyhow::Context;
use rand::rngs::StdRng;
use rand::Rng;
use std::time::{Duration, Instant};

/// How often the nodes' `/metrics` are scraped (and right before a node is killed).
const SCRAPE_EVERY: Duration = Duration::from_secs(1);

pub(super) fn say(clock: &Clock, msg: &str) {
    println!("[{:>9}] {msg}", secs(clock.us()));
}

pub(super) struct Chaos {
    pub clock: Clock,
    pub rng: StdRng,
    pub launcher: Launcher,
    pub redis: RedisProc,
    pub nodes: Vec<NodeProc>,
    pub node_restart_at: Vec<Option<Instant>>,
    pub redis_restart_at: Option<Instant>,
    pub next_node_kill: Option<Instant>,
    pub next_redis_kill: Option<Instant>,
    pub node_every: Option<Duration>,
    pub redis_every: Option<Duration>,
    /// Whether the last two node restarts were delayed.
    pub last_restarts: [Option<bool>; 2],
    /// The A2A agent servers (outside runs; empty otherwise).
    pub agents: Vec<AgentServer>,
    pub next_agent_kill: Option<Instant>,
    pub agent_every: Option<Duration>,
    /// Scrapes nodes that serve HTTP (outside runs).
    pub scraper: Option<Scraper>,
    pub next_scrape: Instant,
    pub events: Vec<ChaosEvent>,
}

impl Chaos {
    fn event(&mut self, kind: EventKind, node: Option<&str>, agent: Option<&str>, detail: String) {
        let at_us = self.clock.us();
        println!("[{:>9}] chaos: {detail}", secs(at_us));
        self.events.push(ChaosEvent {
            at_us,
            kind,
            node: node.map(str::to_string),
            agent: agent.map(str::to_string),
            detail,
        });
    }

    fn jittered(&mut self, every: Duration) -> Duration {
        every.mul_f64(self.rng.random_range(0.7..1.3))
    }

    /// Perform what is due now. `chaos`: whether new kills may start.
    pub async fn step(&mut self, chaos: bool) -> anyhow::Result<()> {
        let now = Instant::now();
        if self.redis_restart_at.is_some_and(|t| t <= now) {
            self.redis_restart_at = None;
            self.redis.restart().await.context("restart redis-server")?;
            let d = "redis-server is back (same port, same append-only file)".into();
            self.event(EventKind::RedisUp, None, None, d);
        }
        for i in 0..self.nodes.len() {
            if self.node_restart_at[i].is_some_and(|t| t <= now) {
                self.node_restart_at[i] = None;
                self.nodes[i].start(&self.launcher)?;
                let id = self.nodes[i].id.clone();
                self.event(EventKind::NodeRestart, Some(&id), None, format!("restarted {id} with the same node id"));
            }
        }
        self.agents_due(now).await?;
        self.watch_nodes().await?;
        self.scrape(false).await;
        if !chaos {
            return Ok(());
        }
        self.node_kill(now).await?;
        self.redis_kill(now);
        self.agent_kill(now);
        Ok(())
    }

    /// Nodes that ended on their own: record, then restart at once (what systemd would do).
    async fn watch_nodes(&mut self) -> anyhow::Result<()> {
        for i in 0..self.nodes.len() {
            if let Some(status) = self.nodes[i].exited() {
                let id = self.nodes[i].id.clone();
                if let Some(s) = self.scraper.as_mut() {
                    s.end_lifetime(&id);
                }
                let log = self.nodes[i].logs.last().cloned().unwrap_or_default();
                let last = std::fs::read_to_string(&log).unwrap_or_default();
                let last: String =
                    last.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").chars().take(300).collect();
                let detail = format!("{id} EXITED ON ITS OWN ({status}); log {}; last line: {last}", log.display());
                self.event(EventKind::NodeExited, Some(&id), None, detail);
                self.nodes[i].start(&self.launcher)?;
                self.event(EventKind::NodeRestart, Some(&id), None, format!("restarted {id} with the same node id"));
            }
        }
        Ok(())
    }

    async fn node_kill(&mut self, now: Instant) -> anyhow::Result<()> {
        let (Some(t), Some(every)) = (self.next_node_kill, self.node_every) else { return Ok(()) };
        if t > now {
            return Ok(());
        }
        let next = self.jittered(every);
        self.next_node_kill = Some(t + next);
        let up: Vec<usize> = (0..self.nodes.len()).filter(|i| self.nodes[*i].is_running()).collect();
        if up.is_empty() {
            return Ok(());
        }
        let i = up[self.rng.random_range(0..up.len())];
        let id = self.nodes[i].id.clone();
        // Half the restarts are delayed past the heartbeat TTL (never three alike in a row).
        let delayed = match self.last_restarts {
            [Some(a), Some(b)] if a == b => !a,
            _ => self.rng.random_bool(0.5),
        };
        self.last_restarts = [self.last_restarts[1], Some(delayed)];
        let delay = Duration::from_millis(self.rng.random_range(1500..3000));
        // Its counters die with it: read them first.
        if let (Some(s), Some(port)) = (self.scraper.as_mut(), self.nodes[i].http_port) {
            s.scrape(&id, port).await;
            s.end_lifetime(&id);
        }
        self.event(EventKind::NodeKill, Some(&id), None, format!("SIGKILL node {id}"));
        self.nodes[i].kill();
        if delayed {
            say(
                &self.clock,
                &format!("chaos: {id} stays down for {delay:?} (its heartbeat expires; others take over)"),
            );
            self.node_restart_at[i] = Some(Instant::now() + delay);
        } else {
            self.nodes[i].start(&self.launcher)?;
            self.event(EventKind::NodeRestart, Some(&id), None, format!("restarted {id} at once"));
        }
        Ok(())
    }

    fn redis_kill(&mut self, now: Instant) {
        let (Some(t), Some(every)) = (self.next_redis_kill, self.redis_every) else { return };
        if t > now {
            return;
        }
        let next = self.jittered(every);
        self.next_redis_kill = Some(t + next);
        if self.redis_restart_at.is_none() {
            let down = Duration::from_millis(self.rng.random_range(300..1500));
            self.event(EventKind::RedisKill, None, None, format!("SIGKILL redis-server (down for {down:?})"));
            self.redis.kill();
            self.redis_restart_at = Some(Instant::now() + down);
        }
    }

    /// SIGKILL one A2A agent's server that is up; it comes back on its port 1–3 s later.
    fn agent_kill(&mut self, now: Instant) {
        let (Some(t), Some(every)) = (self.next_agent_kill, self.agent_every) else { return };
        if t > now {
            return;
        }
        let next = self.jittered(every);
        self.next_agent_kill = Some(t + next);
        let up: Vec<usize> = (0..self.agents.len()).filter(|i| self.agents[*i].is_up()).collect();
        if up.is_empty() {
            return;
        }
        let i = up[self.rng.random_range(0..up.len())];
        let down = Duration::from_millis(self.rng.random_range(1000..3000));
        let (name, port) = (self.agents[i].name.clone(), self.agents[i].port);
        let d = format!("SIGKILL the A2A agent of {name} (port {port}; down for {down:?})");
        self.event(EventKind::AgentKill, None, Some(&name), d);
        self.agents[i].kill();
        self.agents[i].restart_at = Some(Instant::now() + down);
    }

    /// Start the agents whose down time is over; note the ones that came up.
    async fn agents_due(&mut self, now: Instant) -> anyhow::Result<()> {
        for i in 0..self.agents.len() {
            if self.agents[i].restart_at.is_some_and(|t| t <= now) {
                self.agents[i].restart_at = None;
                self.agents[i].begin_start();
            }
            if self.agents[i].poll().await? {
                let (name, port) = (self.agents[i].name.clone(), self.agents[i].port);
                let d = format!("the A2A agent of {name} is back on port {port}");
                self.event(EventKind::AgentUp, None, Some(&name), d);
            }
        }
        Ok(())
    }

    /// Scrape every running node's `/metrics` when due (or now, with `now`).
    pub async fn scrape(&mut self, now: bool) {
        let Some(s) = self.scraper.as_mut() else { return };
        if !now && Instant::now() < self.next_scrape {
            return;
        }
        for n in self.nodes.iter().filter(|n| n.is_running()) {
            if let Some(port) = n.http_port {
                s.scrape(&n.id, port).await;
            }
        }
        self.next_scrape = Instant::now() + SCRAPE_EVERY;
    }

    /// When the next thing is due (at most 100 ms away, to watch the nodes).
    pub fn next_due(&self, chaos: bool) -> Instant {
        let mut t = Instant::now() + Duration::from_millis(100);
        let mut due: Vec<Option<Instant>> = vec![self.redis_restart_at];
        due.extend(self.node_restart_at.iter().copied());
        due.extend(self.agents.iter().map(|a| a.restart_at));
        if chaos {
            due.push(self.next_node_kill);
            due.push(self.next_redis_kill);
            due.push(self.next_agent_kill);
        }
        for d in due.into_iter().flatten() {
            t = t.min(d);
        }
        t
    }

    /// Bring everything back up now (end of the chaos phase); waits for the agents' servers.
    pub async fn heal(&mut self) -> anyhow::Result<()> {
        if self.redis_restart_at.is_some() {
            self.redis_restart_at = Some(Instant::now());
        }
        for t in self.node_restart_at.iter_mut().flatten() {
            *t = Instant::now();
        }
        for a in &mut self.agents {
            if a.restart_at.is_some() {
                a.restart_at = Some(Instant::now());
            }
        }
        self.step(false).await?;
        for i in 0..self.agents.len() {
            if self.agents[i].is_starting() {
                self.agents[i].finish_start().await?;
                let (name, port) = (self.agents[i].name.clone(), self.agents[i].port);
                let d = format!("the A2A agent of {name} is back on port {port}");
                self.event(EventKind::AgentUp, None, Some(&name), d);
            }
        }
        Ok(())
    }
}
