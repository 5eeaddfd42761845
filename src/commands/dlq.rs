//! `genesis dlq list|replay|purge`.

use crate::cli::DlqCommand;
use crate::config::ServiceConfig;
use anyhow::Result;

pub async fn run(cfg: &ServiceConfig, command: DlqCommand) -> Result<()> {
    let ttl = cfg.settings.bus.result_ttl;
    match command {
        DlqCommand::List { redis, topic, limit, json } => {
            let topic = super::roster_topic(cfg, "--topic", &topic)?;
            let bus = super::connect(cfg, &redis).await?;
            let list = bus.dlq_list(&topic, limit).await?;
            if json {
                outln!("{}", serde_json::to_string(&list)?);
            } else if list.is_empty() {
                outln!("no dead letters in {topic}");
            } else {
                for d in &list {
                    outln!(
                        "{}  task={}  reason={}  attempts={}  deliveries={}  error={}",
                        d.id,
                        d.task_id.as_deref().unwrap_or("-"),
                        d.reason,
                        d.attempts,
                        d.deliveries,
                        d.error
                    );
                }
            }
        }
        DlqCommand::Replay { redis, topic, id, all, json } => {
            let topic = super::roster_topic(cfg, "--topic", &topic)?;
            let bus = super::connect(cfg, &redis).await?;
            let ids: Vec<String> = match (id, all) {
                (Some(id), _) => vec![id],
                (None, _) => bus.dlq_list(&topic, usize::MAX).await?.into_iter().map(|d| d.id).collect(),
            };
            let mut replayed = Vec::new();
            let mut failed = Vec::new();
            for id in ids {
                match bus.dlq_replay(&topic, &id, ttl).await {
                    Ok(env) => replayed.push(serde_json::json!({"dlq_id": id, "task_id": env.task_id})),
                    Err(e) => failed.push(serde_json::json!({"dlq_id": id, "error": e.to_string()})),
                }
            }
            if json {
                outln!("{}", serde_json::json!({"replayed": replayed, "failed": failed}));
            } else {
                for r in &replayed {
                    outln!(
                        "replayed {} as task {}",
                        r["dlq_id"].as_str().unwrap_or("?"),
                        r["task_id"].as_str().unwrap_or("?")
                    );
                }
                for f in &failed {
                    errln!(
                        "not replayed {}: {}",
                        f["dlq_id"].as_str().unwrap_or("?"),
                        f["error"].as_str().unwrap_or("?")
                    );
                }
            }
            if !failed.is_empty() {
                anyhow::bail!("{} dead letter(s) could not be replayed", failed.len());
            }
        }
        DlqCommand::Purge { redis, topic, json } => {
            let topic = super::roster_topic(cfg, "--topic", &topic)?;
            let bus = super::connect(cfg, &redis).await?;
            let n = bus.dlq_purge(&topic).await?;
            if json {
                outln!("{}", serde_json::json!({"topic": topic, "purged": n}));
            } else {
                outln!("purged {n} dead letter(s) from {topic}");
            }
        }
    }
    Ok(())
}
