//! The seeded workload: the same seed gives the same sequence of task kinds, topics, payloads and
//! publish times (task ids are fresh ULIDs). What a task is steered to do depends on its agent's
//! executor: the simulated executor reads the payload's `simulate` object (`simulated`), the outside
//! test agents its `mode` (`outside`).

mod outside;
mod simulated;
pub mod workflows;

use crate::record::{AgentConf, ExecutorConf, Expect};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct Mix {
    /// Tasks that crash their first delivery (replayed at once, then succeed): a worker panic
    /// (simulated) or a process agent's `crash` (outside; A2A agents have no crash mode, their kills
    /// are the harness's).
    pub panic_ratio: f64,
    /// Tasks that fail: simulated, half recover within max_retries and half are dead; outside, a
    /// third each recover, exhaust their retries, or fail fatally.
    pub fail_ratio: f64,
    /// Tasks that ask the MetaAgent for money first (simulated agents, and process agents' `pay`).
    pub pay_ratio: f64,
    /// Outside only: tasks that run long, half within the agent's timeout and half beyond it (each
    /// attempt is cancelled at the agent: A2A `CancelTask`, SIGTERM to the process group).
    pub slow_ratio: f64,
}

impl Mix {
    /// Poison tasks (crash on every delivery, dead-lettered as `poison`): a tenth of the panic ratio.
    pub fn poison_ratio(&self) -> f64 {
        self.panic_ratio / 10.0
    }
    /// Tasks with `fatal: true` (dead-lettered as `fatal_error` at once; simulated only).
    pub const FATAL_RATIO: f64 = 0.01;
}

/// One task to publish.
#[derive(Debug, Clone)]
pub struct Planned {
    /// When to publish it, from the start of the workload.
    pub at: Duration,
    pub topic: String,
    pub tenant: String,
    pub kind: &'static str,
    /// The payload without `report_to` (added at publish time).
    pub payload: Value,
    pub panic_deliveries: u32,
    pub max_retries: u32,
    pub expect: Expect,
}

/// What a kind needs besides the random source.
pub(crate) struct Ctx<'a> {
    pub mix: Mix,
    pub agent: &'a AgentConf,
    /// The task's index in the plan (names its crash marker).
    pub index: usize,
    /// Where process agents' `crash` markers go (one file per task that crashes once).
    pub markers: &'a Path,
}

/// `tasks` tasks spread evenly over `duration`, drawn from `seed`. `markers` is the directory for the
/// crash markers of outside process agents.
pub fn plan(
    seed: u64,
    tasks: usize,
    duration: Duration,
    mix: Mix,
    agents: &[AgentConf],
    markers: &Path,
) -> Vec<Planned> {
    let mut rng = StdRng::seed_from_u64(seed);
    let step = if tasks == 0 { Duration::ZERO } else { duration / tasks as u32 };
    (0..tasks)
        .map(|index| {
            let agent = &agents[rng.random_range(0..agents.len())];
            // A business belongs to one tenant (the ledger refuses another tenant's intents for it).
            let b = rng.random_range(0..6);
            let (tenant, business) = (format!("tenant-{}", b % 4), format!("biz-{b}"));
            let ctx = Ctx { mix, agent, index, markers };
            let k = match agent.executor {
                ExecutorConf::Simulated => simulated::kind(&mut rng, &ctx),
                ExecutorConf::A2a { .. } => outside::a2a(&mut rng, &ctx),
                ExecutorConf::Process => outside::process(&mut rng, &ctx),
            };
            let mut payload = k.payload;
            payload["business_id"] = json!(business);
            Planned {
                at: step * index as u32,
                topic: agent.name.clone(),
                tenant,
                kind: k.kind,
                payload,
                panic_deliveries: k.panic_deliveries,
                max_retries: agent.max_retries,
                expect: k.expect,
            }
        })
        .collect()
}

/// What one kind of task is: its name, payload, planned crashes and expected outcome.
pub(crate) struct Kind {
    pub kind: &'static str,
    pub payload: Value,
    pub panic_deliveries: u32,
    pub expect: Expect,
}

impl Kind {
    pub fn new(kind: &'static str, payload: Value, expect: Expect) -> Kind {
        Kind { kind, payload, panic_deliveries: 0, expect }
    }
    pub fn crashing(mut self, deliveries: u32) -> Kind {
        self.panic_deliveries = deliveries;
        self
    }
}

/// Where a task's marker file goes (a process agent's `crash` crashes once per marker).
pub(crate) fn marker(markers: &Path, index: usize) -> PathBuf {
    markers.join(format!("crash-{index}"))
}

/// The payload to publish: the planned one with `report_to` where its executor reads it (the
/// `simulate` object, or the top level for the outside agents).
pub fn with_report_to(p: &Planned, report_to: &str) -> Value {
    let mut v = p.payload.clone();
    if v.get("simulate").is_some() {
        v["simulate"]["report_to"] = json!(report_to);
    } else {
        v["report_to"] = json!(report_to);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(v: &[Planned]) -> Vec<(String, String)> {
        v.iter().map(|p| (p.topic.clone(), p.payload.to_string())).collect()
    }

    const MIX: Mix = Mix { panic_ratio: 0.05, fail_ratio: 0.1, pay_ratio: 0.1, slow_ratio: 0.1 };

    #[test]
    fn the_same_seed_gives_the_same_workload() {
        let agents = crate::config::agents();
        let m = Path::new("/tmp/markers");
        let a = plan(42, 500, Duration::from_secs(10), MIX, &agents, m);
        let b = plan(42, 500, Duration::from_secs(10), MIX, &agents, m);
        let c = plan(43, 500, Duration::from_secs(10), MIX, &agents, m);
        assert_eq!(key(&a), key(&b));
        assert_ne!(key(&a), key(&c));
        for kind in ["noop", "sleep", "panic", "fail_ok", "fail_dead", "pay"] {
            assert!(a.iter().any(|p| p.kind == kind), "{kind} appears in 500 tasks");
        }
        assert_eq!(a[499].at, Duration::from_millis(20) * 499);
        let with = with_report_to(&a[0], "http://r");
        assert_eq!(with["simulate"]["report_to"], "http://r");
    }

    #[test]
    fn the_outside_workload_is_seeded_and_has_every_kind() {
        let agents = crate::config::outside_agents([1, 2]);
        let m = Path::new("/tmp/markers");
        let a = plan(7, 1000, Duration::from_secs(10), MIX, &agents, m);
        assert_eq!(key(&a), key(&plan(7, 1000, Duration::from_secs(10), MIX, &agents, m)));
        for kind in outside::KINDS {
            assert!(a.iter().any(|p| p.kind == *kind), "{kind} appears in 1000 tasks");
        }
        for p in &a {
            let a2a = p.topic == "genesis.research" || p.topic == "genesis.seo";
            assert_eq!(a2a, p.kind.starts_with("a2a."), "{} on {}", p.kind, p.topic);
            assert!(p.payload.get("mode").is_some(), "{}", p.payload);
        }
        let with = with_report_to(&a[0], "http://r");
        assert_eq!(with["report_to"], "http://r");
    }
}
