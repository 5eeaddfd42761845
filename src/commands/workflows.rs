//! `genesis workflow start | get | list | cancel | retry | events`: the workflow engine from the
//! command line, on the same bus (and with the same templates and routes) as the nodes.

use crate::config::ServiceConfig;
use anyhow::{anyhow, bail, Result};
use genesis_actors::bus::Bus;
use genesis_actors::task::TenantId;
use genesis_actors::workflow::engine::{StartRequest, WorkflowError, Workflows};
use genesis_actors::workflow::launch::Launch;
use genesis_actors::workflow::state::{Workflow, WorkflowStatus};
use genesis_actors::workflow::store::ListFilter;
use humantime_serde::re::humantime;
use serde_json::Value;

fn engine(cfg: &ServiceConfig, bus: &Bus) -> Workflows {
    Workflows::new(bus.clone(), &cfg.roster, &cfg.settings)
}

/// What `start` takes from its flags.
pub struct StartArgs {
    pub template: Option<String>,
    pub plan: Option<String>,
    pub input: Option<String>,
    pub tenant: TenantId,
    pub business: Option<String>,
    pub budget_cents: Option<u64>,
    pub json: bool,
}

fn json_flag(flag: &str, text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| anyhow!("{flag} is not valid JSON: {e}"))
}

pub async fn start(cfg: &ServiceConfig, bus: &Bus, a: StartArgs) -> Result<()> {
    let plan = a
        .plan
        .as_deref()
        .map(|p| match p.strip_prefix('@') {
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| anyhow!("--plan @{path}: {e}"))
                .and_then(|t| json_flag("--plan", &t)),
            None => json_flag("--plan", p),
        })
        .transpose()?;
    let launch = Launch {
        template: a.template,
        plan,
        input: a.input.as_deref().map(|i| json_flag("--input", i)).transpose()?,
        business_id: a.business,
        budget_cents: a.budget_cents,
        ..Default::default()
    };
    let plan = launch.plan(&cfg.settings.workflows.templates).map_err(|e| anyhow!("{e}"))?;
    let req = StartRequest {
        tenant: a.tenant,
        business: launch.business_id.clone(),
        template: launch.template.clone(),
        ..Default::default()
    };
    let started = engine(cfg, bus).start(plan, req).await.map_err(explain)?;
    if a.json {
        outln!("{}", serde_json::to_value(&started.workflow)?);
    } else {
        outln!("{}", started.workflow.id);
    }
    Ok(())
}

pub async fn get(cfg: &ServiceConfig, bus: &Bus, id: &str, json: bool) -> Result<()> {
    let Some(wf) = engine(cfg, bus).get(id).await.map_err(explain)? else {
        bail!("workflow {id} not found (unknown, or ended more than workflows.retention ago)");
    };
    if json {
        outln!("{}", serde_json::to_value(&wf)?);
    } else {
        outln!("{}", text(&wf).trim_end());
    }
    Ok(())
}

pub async fn list(
    cfg: &ServiceConfig,
    bus: &Bus,
    status: Option<&str>,
    tenant: Option<TenantId>,
    limit: usize,
    json: bool,
) -> Result<()> {
    let status = status
        .map(|s| {
            WorkflowStatus::parse(s)
                .ok_or_else(|| anyhow!("--status {s}: one of running, compensating, succeeded, failed, cancelled"))
        })
        .transpose()?;
    let filter = ListFilter { status, tenant, limit, cursor: None };
    let page = engine(cfg, bus).list(&filter).await.map_err(explain)?;
    if json {
        let items: Vec<Value> = page.workflows.iter().map(summary).collect();
        outln!("{}", serde_json::json!({ "workflows": items, "cursor": page.cursor }));
        return Ok(());
    }
    outln!("{:<32} {:<13} {:<14} {:<16} {:>5} {}", "WORKFLOW", "STATUS", "TEMPLATE", "TENANT", "STEPS", "CREATED");
    for wf in &page.workflows {
        let done = wf.steps.iter().filter(|s| s.status.as_str() == "succeeded").count();
        outln!(
            "{:<32} {:<13} {:<14} {:<16} {:>5} {}",
            wf.id,
            wf.status.as_str(),
            wf.template.as_deref().unwrap_or("-"),
            wf.tenant_id,
            format!("{done}/{}", wf.steps.len()),
            timestamp(wf.created_at)
        );
    }
    Ok(())
}

pub async fn cancel(cfg: &ServiceConfig, bus: &Bus, id: &str, json: bool) -> Result<()> {
    let wf = engine(cfg, bus).cancel(id).await.map_err(explain)?;
    print_after(&wf, "cancel requested: running steps are stopped at their agents, then compensations run", json)
}

pub async fn retry(cfg: &ServiceConfig, bus: &Bus, id: &str, json: bool) -> Result<()> {
    let wf = engine(cfg, bus).retry(id).await.map_err(explain)?;
    print_after(&wf, &format!("run {} started from the steps that did not succeed", wf.run), json)
}

fn print_after(wf: &Workflow, message: &str, json: bool) -> Result<()> {
    if json {
        outln!("{}", serde_json::to_value(wf)?);
    } else {
        outln!("{}: {} ({message})", wf.id, wf.status.as_str());
    }
    Ok(())
}

fn explain(e: WorkflowError) -> anyhow::Error {
    anyhow!("{e}")
}

/// One line per workflow in `list --json`: no step outputs.
fn summary(wf: &Workflow) -> Value {
    serde_json::json!({
        "workflow_id": wf.id, "status": wf.status.as_str(), "reason": wf.reason, "template": wf.template,
        "tenant_id": wf.tenant_id, "business_id": wf.business_id, "created_at": wf.created_at,
        "ended_at": wf.ended_at, "steps": wf.steps.len(), "run": wf.run,
    })
}

pub(super) fn timestamp(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// At most `max` characters of a value's JSON.
fn short(v: &Value, max: usize) -> String {
    let s = v.to_string();
    if s.chars().count() <= max {
        return s;
    }
    let mut cut: String = s.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

fn text(wf: &Workflow) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{:<13}{v}\n", format!("{k}:")));
    line("workflow", wf.id.clone());
    line("status", wf.status.as_str().to_string());
    if let Some(r) = &wf.reason {
        line("reason", format!("{r}{}", wf.error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default()));
    }
    line("template", wf.template.clone().unwrap_or_else(|| "-".into()));
    line("tenant", wf.tenant_id.to_string());
    line("business", wf.business_id.clone());
    line("correlation", wf.correlation_id.clone());
    line("run", wf.run.to_string());
    if let Some(b) = wf.budget_cents {
        line("budget", format!("{b} cents"));
    }
    line("created", timestamp(wf.created_at));
    if let Some(e) = wf.ended_at {
        line("ended", timestamp(e));
    }
    out.push_str(&format!(
        "\n{:<12} {:<22} {:<10} {:<26} {:>3} {:<20} {:<20} {:<30} {}\n",
        "STEP", "AGENT", "STATUS", "TASK", "ATT", "STARTED", "ENDED", "OUTPUT", "ROUTE"
    ));
    for s in &wf.steps {
        let out_text = match (&s.output, &s.error) {
            (Some(v), _) => short(v, 30),
            (None, Some(e)) => short(&Value::String(e.clone()), 30),
            _ => "-".into(),
        };
        out.push_str(&format!(
            "{:<12} {:<22} {:<10} {:<26} {:>3} {:<20} {:<20} {:<30} {}\n",
            s.id,
            s.agent,
            s.status.as_str(),
            s.task_id.map(|t| t.to_string()).unwrap_or_else(|| "-".into()),
            s.attempts,
            s.started_at.map(timestamp).unwrap_or_else(|| "-".into()),
            s.ended_at.map(timestamp).unwrap_or_else(|| "-".into()),
            out_text,
            s.route
        ));
    }
    if let Some(comps) = &wf.compensations {
        out.push_str("\ncompensations (latest completed step first):\n");
        for c in comps {
            out.push_str(&format!(
                "  {:<12} {:<22} {:?}{}\n",
                c.step,
                c.agent,
                c.status,
                c.error.as_deref().map(|e| format!(" — {e}")).unwrap_or_default()
            ));
        }
    }
    out
}
