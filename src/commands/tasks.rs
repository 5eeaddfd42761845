//! `genesis publish` and `genesis task get`.

use crate::config::ServiceConfig;
use crate::submit::{self, SubmitRequest};
use anyhow::{bail, Context, Result};
use genesis_actors::bus::Bus;

pub async fn publish(cfg: &ServiceConfig, bus: &Bus, req: SubmitRequest, json: bool) -> Result<()> {
    let (env, entry) =
        submit::submit(bus, &cfg.roster, cfg.settings.bus.max_payload_bytes, cfg.settings.bus.result_ttl, req)
            .await
            .context("publish failed")?;
    if json {
        println!("{}", serde_json::json!({ "task_id": env.task_id, "topic": env.topic, "entry_id": entry }));
    } else {
        println!("{}", env.task_id);
    }
    Ok(())
}

pub async fn get(cfg: &ServiceConfig, bus: &Bus, id: &str, topic: Option<&str>, json: bool) -> Result<()> {
    let Some(r) = submit::find(bus, &cfg.roster, id, topic).await? else {
        bail!("task {id} not found (unknown id, or its result expired after bus.result_ttl)");
    };
    if json {
        println!("{}", serde_json::to_string(&r)?);
        return Ok(());
    }
    println!("task_id:  {}", r.task_id);
    println!("topic:    {}", r.topic);
    println!("status:   {}", r.status.as_str());
    println!("attempts: {}", r.attempts);
    if let Some(v) = &r.result {
        println!("result:   {v}");
    }
    if let Some(e) = &r.error {
        println!("error:    {e}");
    }
    if let Some(reason) = &r.reason {
        println!("reason:   {reason}");
    }
    for h in &r.history {
        println!("  attempt {}: {}", h.attempt, h.error);
    }
    Ok(())
}
