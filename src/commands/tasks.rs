//! `genesis publish`, `genesis task get` and `genesis task cancel`.

use crate::config::ServiceConfig;
use crate::submit::{self, SubmitRequest};
use anyhow::{bail, Context, Result};
use genesis_actors::bus::{Bus, TaskRecord, TaskStatus};
use humantime_serde::re::humantime;
use std::time::Duration;

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
    let now = genesis_actors::task::now_ms();
    if json {
        outln!("{}", view(&r, now)?);
    } else {
        outln!("{}", text(&r, now).trim_end());
    }
    Ok(())
}

pub async fn cancel(cfg: &ServiceConfig, bus: &Bus, id: &str, topic: Option<&str>, json: bool) -> Result<()> {
    let Some(c) = submit::cancel(bus, &cfg.roster, id, topic).await? else {
        bail!("task {id} not found (unknown id, or its result expired after bus.result_ttl)");
    };
    if json {
        outln!("{}", c.view());
    }
    match c {
        submit::Cancelled::Requested { .. } => {
            if !json {
                outln!("{}", c.message());
            }
            Ok(())
        }
        // Said on stderr by the caller; --json has printed the record too.
        submit::Cancelled::Final(_) => bail!("{}", c.message()),
    }
}

/// How long a running task has run, or `None` if it is not running.
fn elapsed_ms(r: &TaskRecord, now_ms: u64) -> Option<u64> {
    (r.status == TaskStatus::Running).then(|| r.started_at.map(|s| now_ms.saturating_sub(s))).flatten()
}

/// `--json`: the record as stored, plus `elapsed_ms` while it runs.
fn view(r: &TaskRecord, now_ms: u64) -> Result<serde_json::Value> {
    let mut v = serde_json::to_value(r)?;
    if let (Some(obj), Some(e)) = (v.as_object_mut(), elapsed_ms(r, now_ms)) {
        obj.insert("elapsed_ms".into(), e.into());
    }
    Ok(v)
}

fn timestamp(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(t).to_string()
}

/// Whole seconds once it is a second or more (the milliseconds are noise at that point).
fn duration_text(ms: u64) -> String {
    let d = if ms >= 1000 { Duration::from_secs(ms / 1000) } else { Duration::from_millis(ms) };
    humantime::format_duration(d).to_string()
}

fn text(r: &TaskRecord, now_ms: u64) -> String {
    let mut out = String::new();
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let mut line = |k: &str, v: String| out.push_str(&format!("{:<13}{v}\n", format!("{k}:")));
    line("task_id", r.task_id.clone());
    line("topic", r.topic.clone());
    line("tenant", dash(&r.tenant_id));
    line("correlation", dash(&r.correlation_id));
    line("parent", dash(&r.parent));
    line("status", r.status.as_str().to_string());
    if r.status == TaskStatus::Running {
        line("node", dash(&r.node));
        line("worker", dash(&r.worker));
        line("started_at", r.started_at.map(timestamp).unwrap_or_else(|| "-".into()));
        line("elapsed", elapsed_ms(r, now_ms).map(duration_text).unwrap_or_else(|| "-".into()));
    }
    line("attempts", r.attempts.to_string());
    if let Some(p) = &r.progress {
        line("progress", p.to_string());
    }
    if let Some(at) = r.cancel_requested_at {
        line("cancel", format!("requested at {}", timestamp(at)));
    }
    if let Some(v) = &r.result {
        line("result", v.to_string());
    }
    if let Some(e) = &r.error {
        line("error", e.clone());
    }
    if let Some(reason) = &r.reason {
        line("reason", reason.clone());
    }
    if r.status == TaskStatus::Dead {
        if let Some(id) = &r.dlq_id {
            line("dead letter", format!("{id} (genesis dlq replay --topic {} --id {})", r.topic, r.task_id));
        }
    }
    for h in &r.history {
        out.push_str(&format!("  attempt {}: {}\n", h.attempt, h.error));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running() -> TaskRecord {
        TaskRecord {
            tenant_id: Some("acme".into()),
            correlation_id: Some("c-1".into()),
            status: TaskStatus::Running,
            node: Some("node-1".into()),
            worker: Some("node-1/genesis.build".into()),
            started_at: Some(1_000),
            attempts: 1,
            progress: Some(serde_json::json!({"step": 2, "of": 5})),
            cancel_requested_at: Some(2_000),
            updated_at: 1_000,
            ..TaskRecord::new("genesis.build", "01J00000000000000000000000")
        }
    }

    #[test]
    fn a_running_task_shows_where_and_for_how_long() {
        let r = running();
        let t = text(&r, 62_500);
        for want in
            ["node:        node-1", "worker:      node-1/genesis.build", "started_at:  1970-01-01T00:00:01.000Z"]
        {
            assert!(t.contains(want), "{want} in\n{t}");
        }
        assert!(t.contains("elapsed:     1m 1s"), "{t}");
        assert!(t.contains(r#"progress:    {"of":5,"step":2}"#), "{t}");
        assert!(t.contains("cancel:      requested at 1970-01-01T00:00:02.000Z"), "{t}");
        assert!(
            t.contains("tenant:      acme") && t.contains("correlation: c-1") && t.contains("parent:      -"),
            "{t}"
        );
        assert_eq!(view(&r, 62_500).expect("json")["elapsed_ms"], 61_500);
    }

    #[test]
    fn a_finished_task_shows_no_elapsed_time() {
        let r = TaskRecord {
            status: TaskStatus::Succeeded,
            parent: Some("01J0000000000000000000000P".into()),
            ..running()
        };
        let t = text(&r, 62_500);
        assert!(!t.contains("elapsed") && !t.contains("worker"), "{t}");
        assert!(t.contains("parent:      01J0000000000000000000000P"), "{t}");
        let v = view(&r, 62_500).expect("json");
        assert!(v.get("elapsed_ms").is_none());
        assert_eq!((v["tenant_id"].as_str(), v["node"].as_str()), (Some("acme"), Some("node-1")));
    }
}
