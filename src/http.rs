//! The node's HTTP surface on `http.addr`: liveness and readiness probes, Prometheus `/metrics`, and a
//! small task API (the only way to submit work to a node running on the in-process bus).
//!
//! Errors are 4xx with a JSON body `{"error": "..."}` that names the problem; axum's own extractors
//! answer malformed JSON with 400/415/422 and a message.

use crate::submit::{self, SubmitError, SubmitRequest};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use genesis_actors::roster::Roster;
use genesis_actors::runtime::RuntimeHandle;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
pub struct Api {
    pub runtime: RuntimeHandle,
    pub roster: Arc<Roster>,
    pub max_payload_bytes: usize,
    pub result_ttl: Duration,
}

pub fn router(api: Api) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "alive"})) }))
        .route("/readyz", get(readyz))
        .route("/v1/tasks", post(create_task))
        .route("/v1/tasks/{id}", get(get_task))
        .route("/v1/stats", get(stats))
        .route("/metrics", get(metrics))
        .with_state(api)
}

/// Bind and serve until `shutdown` resolves.
/// Serve on an already bound listener (binding happens before the runtime starts, so a taken
/// `http.addr` stops the start instead of leaving a node without probes) until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    api: Api,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(?addr, "HTTP listening (/healthz, /readyz, /metrics, /v1/tasks)");
    axum::serve(listener, router(api)).with_graceful_shutdown(shutdown).await
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

impl IntoResponse for SubmitError {
    fn into_response(self) -> Response {
        match self {
            SubmitError::Invalid(m) => error(StatusCode::BAD_REQUEST, m),
            SubmitError::Bus(e) => error(StatusCode::SERVICE_UNAVAILABLE, format!("bus unavailable: {e}")),
        }
    }
}

async fn metrics(State(api): State<Api>) -> Response {
    let body = api.runtime.metrics().encode();
    ([(axum::http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body)
        .into_response()
}

async fn readyz(State(api): State<Api>) -> Response {
    let h = api.runtime.health().await;
    let status = if h.ready() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(json!({ "ready": h.ready(), "health": h }))).into_response()
}

async fn create_task(State(api): State<Api>, Json(req): Json<SubmitRequest>) -> Result<Response, SubmitError> {
    let (env, entry) =
        submit::submit(api.runtime.bus(), &api.roster, api.max_payload_bytes, api.result_ttl, req).await?;
    Ok((StatusCode::CREATED, Json(json!({ "task_id": env.task_id, "topic": env.topic, "entry_id": entry })))
        .into_response())
}

#[derive(serde::Deserialize)]
struct TaskQuery {
    topic: Option<String>,
}

async fn get_task(
    State(api): State<Api>,
    Path(id): Path<String>,
    Query(q): Query<TaskQuery>,
) -> Result<Response, SubmitError> {
    match submit::find(api.runtime.bus(), &api.roster, &id, q.topic.as_deref()).await? {
        Some(r) => Ok(Json(r).into_response()),
        None => Ok(error(StatusCode::NOT_FOUND, format!("task {id} not found (unknown, or its result expired)"))),
    }
}

async fn stats(State(api): State<Api>) -> Result<Response, SubmitError> {
    let mut all = Vec::new();
    for t in api.roster.topics() {
        all.push(api.runtime.bus().stats(t).await?);
    }
    Ok(Json(all).into_response())
}
