//! `genesis bus stats`.

use crate::config::ServiceConfig;
use anyhow::Result;
use genesis_actors::bus::Bus;

pub async fn run(cfg: &ServiceConfig, bus: &Bus, json: bool) -> Result<()> {
    let mut all = Vec::new();
    for t in cfg.roster.topics() {
        all.push(bus.stats(t).await?);
    }
    if json {
        outln!("{}", serde_json::to_string(&all)?);
        return Ok(());
    }
    outln!(
        "{:<28} {:>8} {:>8} {:>8} {:>9} {:>8} {:>6}",
        "topic",
        "length",
        "pending",
        "lag",
        "consumers",
        "retrying",
        "dlq"
    );
    for s in &all {
        outln!(
            "{:<28} {:>8} {:>8} {:>8} {:>9} {:>8} {:>6}",
            s.topic,
            s.length,
            s.pending,
            s.lag,
            s.consumers,
            s.retrying,
            s.dlq
        );
    }
    Ok(())
}
