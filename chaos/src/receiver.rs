//! The HTTP endpoint the executors report executions to: the simulated executor (`simulate.report_to`)
//! and the outside test agents (`report_to`, `tests/agents/chaos_report.py`).

use crate::record::{Clock, ExecReport};
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use std::sync::{Arc, Mutex};

#[derive(Deserialize)]
struct Body {
    task_id: String,
    attempt: u32,
    /// Outside agents know neither the delivery counter nor the node.
    #[serde(default)]
    deliveries: u32,
    #[serde(default)]
    node: String,
    agent: String,
    phase: String,
    #[serde(default)]
    outcome: Option<String>,
}

#[derive(Clone)]
struct Shared {
    clock: Clock,
    reports: Arc<Mutex<Vec<ExecReport>>>,
}

/// A running receiver: its URL and the reports so far.
pub struct Receiver {
    pub url: String,
    reports: Arc<Mutex<Vec<ExecReport>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Listen on a free loopback port; reports are stamped with `clock` when they arrive.
    pub async fn start(clock: Clock) -> anyhow::Result<Receiver> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/exec", listener.local_addr()?);
        let reports = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new().route("/exec", post(exec)).with_state(Shared { clock, reports: reports.clone() });
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("genesis-chaos: report receiver stopped: {e}");
            }
        });
        Ok(Receiver { url, reports, task })
    }

    pub fn count(&self) -> usize {
        self.reports.lock().map(|r| r.len()).unwrap_or(0)
    }

    pub fn snapshot(&self) -> Vec<ExecReport> {
        self.reports.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn exec(State(s): State<Shared>, Json(b): Json<Body>) {
    let at_us = s.clock.us();
    let r = ExecReport {
        task_id: b.task_id,
        attempt: b.attempt,
        deliveries: b.deliveries,
        node: b.node,
        agent: b.agent,
        phase: b.phase,
        outcome: b.outcome,
        at_us,
    };
    if let Ok(mut v) = s.reports.lock() {
        v.push(r);
    }
}
