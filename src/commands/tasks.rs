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
        outln!("{}", serde_json::json!({ "task_id": env.task_id, "topic": env.topic, "entry_id": entry }));
    } else {
        outln!("{}", env.task_id);
    }
    Ok(())
}

pub async fn get(cfg: &ServiceConfig, bus: &Bus, id: &str, topic: Option<&str>, json: bool) -> Result<()> {
    let Some(r) = submit::find(bus, &cfg.roster, id, topic).await? else {
        bail!("task {id} not found (unknown id, or its result expired after bus.result_ttl)");
    };
    if json {
        outln!("{}", serde_json::to_string(&r)?);
        return Ok(());
    }
    outln!("task_id:  {}", r.task_id);
    outln!("topic:    {}", r.topic);
    outln!("status:   {}", r.status.as_str());
    outln!("attempts: {}", r.attempts);
    if let Some(v) = &r.result {
        outln!("result:   {v}");
    }
    if let Some(e) = &r.error {
        outln!("error:    {e}");
    }
    if let Some(reason) = &r.reason {
        outln!("reason:   {reason}");
    }
    for h in &r.history {
        outln!("  attempt {}: {}", h.attempt, h.error);
    }
    Ok(())
}
