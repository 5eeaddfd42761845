//! `genesis health`: the cluster as Redis sees it — live nodes (last heartbeat, workers per agent), per
//! agent its rate limit (as configured here) and its circuit on each node (each node writes its
//! circuits' states into its heartbeat), and per topic: queue depth (lag), pending, scheduled retries
//! and DLQ depth.

use crate::config::ServiceConfig;
use anyhow::Result;
use genesis_actors::bus::Bus;
use genesis_actors::task::now_ms;
use serde_json::{json, Value};

pub async fn run(cfg: &ServiceConfig, bus: &Bus, json_out: bool) -> Result<()> {
    let now = now_ms();
    let nodes: Vec<Value> = bus
        .live_nodes()
        .await?
        .into_iter()
        .map(|(id, info)| {
            let info: Value = serde_json::from_str(&info).unwrap_or(Value::Null);
            let age = info["beat_at"].as_u64().map(|t| now.saturating_sub(t));
            json!({
                "node_id": id,
                "last_heartbeat_ms_ago": age,
                "pid": info["pid"],
                "workers": info["workers"],
                "circuits": info["circuits"],
            })
        })
        .collect();
    let agents: Vec<Value> = cfg
        .roster
        .agents
        .iter()
        .map(|a| {
            let circuits: serde_json::Map<String, Value> = nodes
                .iter()
                .filter_map(|n| Some((n["node_id"].as_str()?.to_string(), n["circuits"].get(&a.name)?.clone())))
                .collect();
            json!({
                "agent": a.name,
                "rate": a.rate.as_ref().map(genesis_actors::policy::rate::describe),
                "circuits": circuits,
            })
        })
        .collect();
    let mut topics = Vec::new();
    for t in cfg.roster.topics() {
        topics.push(bus.stats(t).await?);
    }
    if json_out {
        outln!("{}", json!({ "nodes": nodes, "agents": agents, "topics": topics }));
        return Ok(());
    }
    outln!("nodes ({} alive):", nodes.len());
    for n in &nodes {
        let workers: u64 = n["workers"].as_object().map(|w| w.values().filter_map(Value::as_u64).sum()).unwrap_or(0);
        outln!(
            "  {:<20} last heartbeat {:>6} ms ago   pid {:<8} workers {}",
            n["node_id"].as_str().unwrap_or("?"),
            n["last_heartbeat_ms_ago"].as_u64().map(|a| a.to_string()).unwrap_or_else(|| "?".into()),
            n["pid"],
            workers
        );
    }
    outln!("{:<28} {:<24} circuit", "agent", "rate limit");
    for a in &agents {
        let rate = a["rate"].as_str().unwrap_or("-");
        outln!("{:<28} {:<24} {}", a["agent"].as_str().unwrap_or("?"), rate, circuit_text(&a["circuits"]));
    }
    outln!("{:<28} {:>8} {:>8} {:>9} {:>8} {:>6}", "topic", "queued", "pending", "consumers", "retrying", "dlq");
    for s in &topics {
        outln!("{:<28} {:>8} {:>8} {:>9} {:>8} {:>6}", s.topic, s.lag, s.pending, s.consumers, s.retrying, s.dlq);
    }
    Ok(())
}

/// One agent's circuits across nodes: the state when every node agrees, else each node's.
fn circuit_text(circuits: &Value) -> String {
    let Some(by_node) = circuits.as_object().filter(|m| !m.is_empty()) else { return "-".into() };
    let states: std::collections::BTreeSet<&str> = by_node.values().filter_map(Value::as_str).collect();
    if states.len() == 1 {
        return states.into_iter().next().unwrap_or("-").to_string();
    }
    by_node.iter().map(|(node, s)| format!("{node}: {}", s.as_str().unwrap_or("?"))).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn circuits_agree_or_are_shown_per_node() {
        assert_eq!(circuit_text(&json!({})), "-");
        assert_eq!(circuit_text(&json!({"n1": "closed", "n2": "closed"})), "closed");
        assert_eq!(circuit_text(&json!({"n1": "open", "n2": "closed"})), "n1: open, n2: closed");
    }
}
