//! `genesis task tree ID`: a task with the tasks before and after it — its `reply_to` hops (parents up
//! the chain, the replies it published down the chain) and, for a workflow's step, the steps it needs
//! and the steps that need it — so following a chain never needs `redis-cli --scan`.

use crate::config::ServiceConfig;
use crate::submit;
use anyhow::{bail, Result};
use genesis_actors::bus::{Bus, TaskRecord};
use genesis_actors::task::TaskId;
use genesis_actors::workflow::state::Workflow;
use genesis_actors::workflow::Workflows;
use serde_json::{json, Value};

/// Longest `reply_to` chain followed either way.
const MAX_HOPS: usize = 64;

/// One task as the tree shows it.
fn node(r: &TaskRecord, relation: &str) -> Value {
    json!({"task_id": r.task_id, "topic": r.topic, "status": r.status.as_str(), "relation": relation,
           "workflow_id": r.workflow_id, "step": r.workflow_step})
}

fn missing(id: &str, relation: &str) -> Value {
    json!({"task_id": id, "status": "unknown (expired or never published)", "relation": relation})
}

/// The tree of `id` as JSON: `task`, `parents` (nearest first), `children`, and `workflow`.
pub async fn build(cfg: &ServiceConfig, bus: &Bus, id: &str) -> Result<Value> {
    let Some(root) = submit::find(bus, &cfg.roster, id, None).await? else {
        bail!("task {id} not found (unknown id, or its result expired after bus.result_ttl)");
    };
    let mut parents = Vec::new();
    let mut up = root.parent.clone();
    while let Some(p) = up.take() {
        if parents.len() >= MAX_HOPS {
            break;
        }
        match submit::find(bus, &cfg.roster, &p, None).await? {
            Some(r) => {
                up = r.parent.clone();
                parents.push(node(&r, "reply_to parent"));
            }
            None => parents.push(missing(&p, "reply_to parent")),
        }
    }
    let mut children = Vec::new();
    let mut next: TaskId = root.task_id.parse().map_err(|e: String| anyhow::anyhow!(e))?;
    for _ in 0..MAX_HOPS {
        next = next.reply_id();
        match submit::find(bus, &cfg.roster, &next.to_string(), None).await? {
            Some(r) => children.push(node(&r, "reply")),
            None => break,
        }
    }
    let mut workflow = Value::Null;
    if let (Some(wf_id), Some(step)) = (&root.workflow_id, &root.workflow_step) {
        let engine = Workflows::new(bus.clone(), &cfg.roster, &cfg.settings);
        if let Some(wf) = engine.get(wf_id).await? {
            let (needs, needed_by) = neighbours(&wf, step);
            for s in needs {
                parents.push(step_node(cfg, bus, &wf, s, "needed step").await?);
            }
            for s in needed_by {
                children.push(step_node(cfg, bus, &wf, s, "needs this step").await?);
            }
            workflow = json!({"id": wf.id, "status": wf.status.as_str(), "step": step, "run": wf.run});
        }
    }
    Ok(json!({"task": node(&root, "this task"), "parents": parents, "children": children, "workflow": workflow}))
}

/// The steps `step` needs, and the steps that need it.
fn neighbours<'a>(wf: &'a Workflow, step: &str) -> (Vec<&'a str>, Vec<&'a str>) {
    let needs = wf.step(step).map(|s| s.needs.iter().map(String::as_str).collect()).unwrap_or_default();
    let needed_by = wf.steps.iter().filter(|s| s.needs.iter().any(|n| n == step)).map(|s| s.id.as_str()).collect();
    (needs, needed_by)
}

async fn step_node(cfg: &ServiceConfig, bus: &Bus, wf: &Workflow, step: &str, relation: &str) -> Result<Value> {
    let Some(s) = wf.step(step) else { return Ok(missing(step, relation)) };
    let Some(task_id) = s.task_id else {
        return Ok(json!({"step": step, "status": s.status.as_str(), "relation": relation, "task_id": null}));
    };
    let topic = cfg.roster.by_name(&s.agent).map(|a| a.topic.clone());
    let record = match topic {
        Some(t) => bus.task(&t, &task_id.to_string()).await?,
        None => None,
    };
    Ok(match record {
        Some(r) => node(&r, relation),
        None => missing(&task_id.to_string(), relation),
    })
}

pub async fn tree(cfg: &ServiceConfig, bus: &Bus, id: &str, json: bool) -> Result<()> {
    let t = build(cfg, bus, id).await?;
    if json {
        outln!("{t}");
        return Ok(());
    }
    let line = |v: &Value| {
        let step = v["step"].as_str().map(|s| format!(" step {s}")).unwrap_or_default();
        format!(
            "{} {} {}{step} ({})",
            v["task_id"].as_str().unwrap_or("-"),
            v["topic"].as_str().unwrap_or("-"),
            v["status"].as_str().unwrap_or("-"),
            v["relation"].as_str().unwrap_or("-")
        )
    };
    if let Some(w) = t["workflow"].as_object() {
        outln!(
            "workflow {} ({}), step {}",
            w.get("id").and_then(Value::as_str).unwrap_or("-"),
            w.get("status").and_then(Value::as_str).unwrap_or("-"),
            w.get("step").and_then(Value::as_str).unwrap_or("-")
        );
    }
    outln!("parents:");
    for p in t["parents"].as_array().into_iter().flatten() {
        outln!("  {}", line(p));
    }
    outln!("task:\n  {}", line(&t["task"]));
    outln!("children:");
    for c in t["children"].as_array().into_iter().flatten() {
        outln!("  {}", line(c));
    }
    Ok(())
}
