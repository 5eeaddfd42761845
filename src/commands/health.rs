//! `genesis health`: the cluster as Redis sees it — live nodes (last heartbeat, workers per agent) and
//! per topic: queue depth (lag), pending, scheduled retries and DLQ depth.

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
            json!({ "node_id": id, "last_heartbeat_ms_ago": age, "pid": info["pid"], "workers": info["workers"] })
        })
        .collect();
    let mut topics = Vec::new();
    for t in cfg.roster.topics() {
        topics.push(bus.stats(t).await?);
    }
    if json_out {
        outln!("{}", json!({ "nodes": nodes, "topics": topics }));
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
    outln!("{:<28} {:>8} {:>8} {:>9} {:>8} {:>6}", "topic", "queued", "pending", "consumers", "retrying", "dlq");
    for s in &topics {
        outln!("{:<28} {:>8} {:>8} {:>9} {:>8} {:>6}", s.topic, s.lag, s.pending, s.consumers, s.retrying, s.dlq);
    }
    Ok(())
}
