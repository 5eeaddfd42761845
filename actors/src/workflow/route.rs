//! Routing (HALO): which agent runs a step that names a capability instead of an agent. Pure: the rules
//! come from config (`[[workflows.routes]]`), the queue depths from the bus, and the answer says which
//! rule chose the agent, so a step's record can explain itself.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `capability` may be served by `agent`; among the rules that match, the highest `priority` wins and
/// equals are broken by the shorter queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRule {
    pub capability: String,
    pub agent: String,
    #[serde(default)]
    pub priority: i32,
}

/// The agent chosen for a step and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub agent: String,
    pub reason: String,
}

/// No agent serves a capability.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no agent serves capability `{capability}`: add a [[workflows.routes]] rule, or an agent named genesis.{capability}")]
pub struct Unroutable {
    pub capability: String,
}

/// What routing knows about the fleet: the agents that exist and their current queue depth (entries
/// queued + pending; missing means 0).
#[derive(Debug, Clone, Default)]
pub struct Fleet {
    pub agents: Vec<String>,
    pub depth: BTreeMap<String, u64>,
}

impl Fleet {
    pub fn has(&self, agent: &str) -> bool {
        self.agents.iter().any(|a| a == agent)
    }

    fn depth(&self, agent: &str) -> u64 {
        self.depth.get(agent).copied().unwrap_or(0)
    }
}

/// The route of a step: its named agent as it is, or the best rule for its capability. Rules naming
/// agents the fleet does not have are skipped. Without any rule, an agent called `genesis.<capability>`
/// serves it (the roster's naming convention).
pub fn route(
    agent: Option<&str>,
    capability: Option<&str>,
    rules: &[RouteRule],
    fleet: &Fleet,
) -> Result<Route, Unroutable> {
    if let Some(agent) = agent {
        return Ok(Route { agent: agent.to_string(), reason: "named in the plan".into() });
    }
    let capability = capability.unwrap_or_default();
    let matching: Vec<&RouteRule> =
        rules.iter().filter(|r| r.capability == capability && fleet.has(&r.agent)).collect();
    if let Some(top) = matching.iter().map(|r| r.priority).max() {
        let mut best: Vec<&&RouteRule> = matching.iter().filter(|r| r.priority == top).collect();
        // Shortest queue first; the name breaks ties so the answer is deterministic.
        best.sort_by(|a, b| fleet.depth(&a.agent).cmp(&fleet.depth(&b.agent)).then(a.agent.cmp(&b.agent)));
        if let Some(r) = best.first() {
            let reason = if best.len() > 1 {
                format!(
                    "rule {capability} → {} (priority {top}); shortest queue ({}) of {} equal rules",
                    r.agent,
                    fleet.depth(&r.agent),
                    best.len()
                )
            } else {
                format!("rule {capability} → {} (priority {top})", r.agent)
            };
            return Ok(Route { agent: r.agent.clone(), reason });
        }
    }
    let by_name = format!("genesis.{capability}");
    if fleet.has(&by_name) {
        return Ok(Route { agent: by_name, reason: format!("agent named after capability {capability}") });
    }
    Err(Unroutable { capability: capability.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fleet(agents: &[&str], depth: &[(&str, u64)]) -> Fleet {
        Fleet {
            agents: agents.iter().map(|s| s.to_string()).collect(),
            depth: depth.iter().map(|(a, d)| (a.to_string(), *d)).collect(),
        }
    }

    fn rule(c: &str, a: &str, p: i32) -> RouteRule {
        RouteRule { capability: c.into(), agent: a.into(), priority: p }
    }

    #[test]
    fn a_named_agent_is_kept_and_a_capability_falls_back_to_the_name() {
        let f = fleet(&["genesis.spec"], &[]);
        assert_eq!(route(Some("x.y"), None, &[], &f).expect("named").agent, "x.y");
        let r = route(None, Some("spec"), &[], &f).expect("by name");
        assert_eq!(r.agent, "genesis.spec");
        assert!(r.reason.contains("named after"), "{}", r.reason);
        assert_eq!(route(None, Some("nope"), &[], &f), Err(Unroutable { capability: "nope".into() }));
    }

    #[test]
    fn priority_then_queue_depth_then_name() {
        let f = fleet(&["a1", "a2", "a3"], &[("a1", 10), ("a2", 3), ("a3", 0)]);
        let rules = [rule("web", "a1", 5), rule("web", "a2", 5), rule("web", "a3", 1), rule("web", "gone", 9)];
        let r = route(None, Some("web"), &rules, &f).expect("routes");
        assert_eq!(r.agent, "a2", "a3 has a lower priority, `gone` is not in the fleet");
        assert!(r.reason.contains("shortest queue"), "{}", r.reason);
    }

    proptest! {
        /// The chosen agent always exists, has the top priority among live matching rules, and no
        /// equal-priority rule has a strictly shorter queue.
        #[test]
        fn the_choice_is_optimal(rules in proptest::collection::vec((0..3usize, 0..4usize, -2..3i32), 0..12),
                                 depths in proptest::collection::vec(0..20u64, 4), live in proptest::collection::vec(any::<bool>(), 4)) {
            let names = ["a0", "a1", "a2", "a3"];
            let caps = ["c0", "c1", "c2"];
            let agents: Vec<&str> = names.iter().zip(&live).filter(|(_, l)| **l).map(|(n, _)| *n).collect();
            let f = fleet(&agents, &names.iter().zip(&depths).map(|(n, d)| (*n, *d)).collect::<Vec<_>>());
            let rules: Vec<RouteRule> = rules.iter().map(|(c, a, p)| rule(caps[*c], names[*a], *p)).collect();
            for c in caps {
                let live_rules: Vec<&RouteRule> = rules.iter().filter(|r| r.capability == c && f.has(&r.agent)).collect();
                match route(None, Some(c), &rules, &f) {
                    Ok(r) => {
                        prop_assert!(f.has(&r.agent));
                        let chosen = live_rules.iter().filter(|x| x.agent == r.agent).map(|x| x.priority).max();
                        let top = live_rules.iter().map(|x| x.priority).max();
                        prop_assert_eq!(chosen, top);
                        for x in live_rules.iter().filter(|x| Some(x.priority) == top) {
                            prop_assert!(f.depth(&x.agent) >= f.depth(&r.agent));
                        }
                    }
                    Err(_) => prop_assert!(live_rules.is_empty()),
                }
            }
        }
    }
}
