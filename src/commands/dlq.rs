//! `genesis dlq list|replay|delete|purge`.

use crate::cli::DlqCommand;
use crate::config::ServiceConfig;
use anyhow::{bail, Result};
use genesis_actors::bus::{DeadLetter, DeadLetterRef, DlqFilter};
use std::io::{BufRead, IsTerminal, Write};

pub async fn run(cfg: &ServiceConfig, command: DlqCommand) -> Result<()> {
    let ttl = cfg.settings.bus.result_ttl;
    match command {
        DlqCommand::List { redis, topic, reason, limit, json } => {
            let topic = super::roster_topic(cfg, "--topic", &topic)?;
            let bus = super::connect(cfg, &redis).await?;
            let list = bus.dlq_list(&topic, &DlqFilter { reason }, limit).await?;
            if json {
                outln!("{}", serde_json::to_string(&list)?);
            } else if list.is_empty() {
                outln!("no dead letters in {topic}");
            } else {
                for d in &list {
                    outln!("{}", line(d));
                }
            }
        }
        DlqCommand::Replay { redis, topic, id, all: _, reason, json } => {
            let topic = super::roster_topic(cfg, "--topic", &topic)?;
            let one = id.as_deref().map(parse_ref).transpose()?;
            let bus = super::connect(cfg, &redis).await?;
            let refs: Vec<DeadLetterRef> = match one {
                Some(r) => vec![r],
                None => {
                    let list = bus.dlq_list(&topic, &DlqFilter { reason }, usize::MAX).await?;
                    list.into_iter().map(|d| DeadLetterRef::Entry(d.id)).collect()
                }
            };
            let mut replayed = Vec::new();
            let mut failed = Vec::new();
            for r in refs {
                let shown = match &r {
                    DeadLetterRef::Entry(id) => id.clone(),
                    DeadLetterRef::Task(id) => id.to_string(),
                };
                match bus.dlq_replay(&topic, &r, ttl).await {
                    Ok(env) => replayed.push(serde_json::json!({"id": shown, "task_id": env.task_id})),
                    Err(e) => failed.push(serde_json::json!({"id": shown, "error": e.to_string()})),
                }
            }
            if json {
                outln!("{}", serde_json::json!({"replayed": replayed, "failed": failed}));
            } else {
                for r in &replayed {
                    outln!(
                        "replayed {} as task {}",
                        r["id"].as_str().unwrap_or("?"),
                        r["task_id"].as_str().unwrap_or("?")
                    );
                }
                for f in &failed {
                    errln!("not replayed {}: {}", f["id"].as_str().unwrap_or("?"), f["error"].as_str().unwrap_or("?"));
                }
                if replayed.is_empty() && failed.is_empty() {
                    outln!("no dead letters to replay in {topic}");
                }
            }
            if !failed.is_empty() {
                bail!("{} dead letter(s) could not be replayed", failed.len());
            }
        }
        DlqCommand::Delete { redis, topic, id, json } => {
            let topic = super::roster_topic(cfg, "--topic", &topic)?;
            let r = parse_ref(&id)?;
            let bus = super::connect(cfg, &redis).await?;
            let d = bus.dlq_delete(&topic, &r).await?;
            if json {
                outln!("{}", serde_json::json!({"topic": topic, "deleted": d}));
            } else {
                outln!("deleted {}", line(&d));
            }
        }
        DlqCommand::Purge { redis, topic, reason, yes, json } => {
            let topic = super::roster_topic(cfg, "--topic", &topic)?;
            let filter = DlqFilter { reason };
            let which = match &filter.reason {
                Some(r) => format!("the dead letters with reason {r} of {topic}"),
                None => format!("every dead letter of {topic}"),
            };
            if !yes {
                let stdin = std::io::stdin();
                if !stdin.is_terminal() {
                    bail!(
                        "refusing to delete {which} without confirmation: stdin is not a terminal; pass --yes to purge non-interactively"
                    );
                }
                let mut err = std::io::stderr();
                if !confirm(&format!("Delete {which}? This cannot be undone."), &mut stdin.lock(), &mut err)? {
                    bail!("purge cancelled; nothing was deleted");
                }
            }
            let bus = super::connect(cfg, &redis).await?;
            let n = bus.dlq_purge(&topic, &filter).await?;
            if json {
                outln!("{}", serde_json::json!({"topic": topic, "reason": filter.reason, "purged": n}));
            } else {
                outln!("purged {n} dead letter(s) from {topic}");
            }
        }
    }
    Ok(())
}

fn parse_ref(id: &str) -> Result<DeadLetterRef> {
    id.parse().map_err(|e: String| anyhow::anyhow!("--id {e}"))
}

/// One dead letter on one line.
fn line(d: &DeadLetter) -> String {
    let truncated = if d.truncated {
        format!(
            "  TRUNCATED ({} of {} bytes kept: cannot be replayed)",
            d.envelope.as_deref().map_or(0, str::len),
            d.envelope_bytes
        )
    } else {
        String::new()
    };
    format!(
        "{}  task={}  reason={}  attempts={}  deliveries={}  error={}{truncated}",
        d.id,
        d.task_id.as_deref().unwrap_or("-"),
        d.reason,
        d.attempts,
        d.deliveries,
        d.error
    )
}

/// Ask `question` on `out` and read the answer from `input`: only `y` or `yes` (any case) agrees.
fn confirm(question: &str, input: &mut impl BufRead, out: &mut impl Write) -> Result<bool> {
    write!(out, "{question} [y/N] ")?;
    out.flush()?;
    let mut answer = String::new();
    input.read_line(&mut answer)?;
    Ok(matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_yes_confirms() {
        for (answer, want) in
            [("y\n", true), ("YES\n", true), ("\n", false), ("n\n", false), ("", false), ("yep\n", false)]
        {
            let mut out = Vec::new();
            assert_eq!(confirm("Delete?", &mut answer.as_bytes(), &mut out).expect("io"), want, "{answer:?}");
            assert_eq!(String::from_utf8_lossy(&out), "Delete? [y/N] ");
        }
    }

    #[test]
    fn ids_name_the_flag_when_wrong() {
        assert!(matches!(parse_ref("1-0"), Ok(DeadLetterRef::Entry(_))));
        let e = parse_ref("nope").expect_err("bad id").to_string();
        assert!(e.starts_with("--id ") && e.contains("task id"), "{e}");
    }
}
