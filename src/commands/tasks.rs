//! `genesis publish` and `genesis task get`.

use crate::config::ServiceConfig;
use anyhow::{bail, Context, Result};
use genesis_actors::bus::{Bus, Published, TaskRecord};
use genesis_actors::task::{TaskEnvelope, TaskId};

pub struct PublishArgs {
    pub topic: String,
    pub payload: String,
    pub tenant: String,
    pub reply_to: Option<String>,
    pub correlation_id: Option<String>,
}

pub async fn publish(cfg: &ServiceConfig, bus: &Bus, a: PublishArgs, json: bool) -> Result<()> {
    let topic = super::roster_topic(cfg, "--topic", &a.topic)?;
    let payload: serde_json::Value =
        serde_json::from_str(&a.payload).map_err(|e| anyhow::anyhow!("--payload is not valid JSON: {e}"))?;
    if a.tenant.trim().is_empty() {
        bail!("--tenant must not be empty");
    }
    let mut env = TaskEnvelope::new(topic, a.tenant, payload);
    if let Some(r) = a.reply_to {
        env.reply_to = Some(super::roster_topic(cfg, "--reply-to", &r)?);
    }
    if let Some(c) = a.correlation_id {
        env.correlation_id = c;
    }
    let size = env.to_json().len();
    if size > cfg.settings.bus.max_payload_bytes {
        bail!("the task is {size} bytes, over bus.max_payload_bytes = {}", cfg.settings.bus.max_payload_bytes);
    }
    let entry = match bus.publish(&env, cfg.settings.bus.result_ttl).await.context("publish failed")? {
        Published::Appended(id) => id,
        Published::Duplicate => bail!("task {} already exists", env.task_id),
    };
    if json {
        println!("{}", serde_json::json!({ "task_id": env.task_id, "topic": env.topic, "entry_id": entry }));
    } else {
        println!("{}", env.task_id);
    }
    Ok(())
}

pub async fn get(cfg: &ServiceConfig, bus: &Bus, id: &str, topic: Option<&str>, json: bool) -> Result<()> {
    let task_id: TaskId = id.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    let topics = match topic {
        Some(t) => vec![super::roster_topic(cfg, "--topic", t)?],
        None => cfg.roster.topics().cloned().collect(),
    };
    let mut found: Option<TaskRecord> = None;
    for t in &topics {
        if let Some(r) = bus.task(t, &task_id.to_string()).await? {
            found = Some(r);
            break;
        }
    }
    let Some(r) = found else {
        bail!(
            "task {task_id} not found in {} topic(s) (unknown id, or its result expired after bus.result_ttl)",
            topics.len()
        );
    };
    if json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
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
    }
    Ok(())
}
