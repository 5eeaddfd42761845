//! The node's HTTP surface on `http.addr`: liveness and readiness probes, Prometheus `/metrics`, a
//! small task API (the only way to submit work to a node running on the in-process bus), and the
//! payments API outside agents ask for money through ([`payments`]).
//!
//! Errors are 4xx with a JSON body `{"error": "..."}` that names the problem; axum's own extractors
//! answer malformed JSON with 400/415/422 and a message.

pub mod payments;
pub mod server;
pub mod workflows;

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

/// The node as HTTP sees it. HTTP comes up before the first Redis connection, so that `/healthz` and
/// `/readyz` can say why a node is not ready ("waiting for Redis: …"); the runtime arrives later.
#[derive(Clone, Default)]
pub struct NodeSlot {
    inner: Arc<SlotInner>,
}

#[derive(Default)]
struct SlotInner {
    runtime: std::sync::OnceLock<RuntimeHandle>,
    waiting: std::sync::Mutex<String>,
}

impl NodeSlot {
    /// Why the node is not running yet (already redacted).
    pub fn set_waiting(&self, reason: impl Into<String>) {
        if let Ok(mut w) = self.inner.waiting.lock() {
            *w = reason.into();
        }
    }

    pub fn set(&self, runtime: RuntimeHandle) {
        let _ = self.inner.runtime.set(runtime);
    }

    fn waiting(&self) -> String {
        self.inner.waiting.lock().map(|w| w.clone()).unwrap_or_default()
    }

    fn get(&self) -> Result<&RuntimeHandle, ApiError> {
        self.inner.runtime.get().ok_or_else(|| ApiError::Starting(self.waiting()))
    }
}

/// What a handler can fail with.
pub(crate) enum ApiError {
    Submit(SubmitError),
    /// The node is not running yet.
    Starting(String),
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        ApiError::Submit(e)
    }
}

impl From<genesis_actors::bus::BusError> for ApiError {
    fn from(e: genesis_actors::bus::BusError) -> Self {
        ApiError::Submit(SubmitError::Bus(e))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Submit(e) => e.into_response(),
            ApiError::Starting(why) => error(StatusCode::SERVICE_UNAVAILABLE, format!("the node is starting: {why}")),
        }
    }
}

#[derive(Clone)]
pub struct Api {
    pub node: NodeSlot,
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
        .route("/v1/tasks/{id}/cancel", post(cancel_task))
        .route("/v1/stats", get(stats))
        .route("/v1/workflows", post(workflows::start).get(workflows::list))
        .route("/v1/workflows/{id}", get(workflows::get))
        .route("/v1/workflows/{id}/cancel", post(workflows::cancel))
        .route("/v1/workflows/{id}/retry", post(workflows::retry))
        .route("/v1/payments/intents", post(payments::create_intent))
        .route("/metrics", get(metrics))
        .with_state(api)
}

/// Serve on an already bound listener (binding happens before the runtime starts, so a taken
/// `http.addr` stops the start instead of leaving a node without probes) until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    api: Api,
    limits: server::Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(
        ?addr,
        "HTTP listening (/healthz, /readyz, /metrics, /v1/tasks, /v1/tasks/{{id}}/cancel, /v1/workflows, /v1/payments/intents)"
    );
    server::serve(listener, server::limited(router(api), limits), limits, shutdown).await
}

pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
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

async fn metrics(State(api): State<Api>) -> Result<Response, ApiError> {
    let body = api.node.get()?.metrics().encode();
    Ok(([(axum::http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body)
        .into_response())
}

async fn readyz(State(api): State<Api>) -> Response {
    let Ok(runtime) = api.node.get() else {
        let reason = api.node.waiting();
        return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "ready": false, "reason": reason }))).into_response();
    };
    let h = runtime.health().await;
    let status = if h.ready() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(json!({ "ready": h.ready(), "health": h }))).into_response()
}

async fn create_task(State(api): State<Api>, Json(req): Json<SubmitRequest>) -> Result<Response, ApiError> {
    let bus = api.node.get()?.bus();
    let (env, entry) = submit::submit(bus, &api.roster, api.max_payload_bytes, api.result_ttl, req).await?;
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
) -> Result<Response, ApiError> {
    match submit::find(api.node.get()?.bus(), &api.roster, &id, q.topic.as_deref()).await? {
        Some(r) => Ok(Json(r).into_response()),
        None => Ok(error(StatusCode::NOT_FOUND, format!("task {id} not found (unknown, or its result expired)"))),
    }
}

/// `POST /v1/tasks/{id}/cancel` (`?topic=` optional): 202 with the record once the cancel is
/// requested (it takes effect when a worker takes the task, or when the node running it stops it),
/// 404 for an unknown task, 409 for one that already ended.
async fn cancel_task(
    State(api): State<Api>,
    Path(id): Path<String>,
    Query(q): Query<TaskQuery>,
) -> Result<Response, ApiError> {
    let c = submit::cancel(api.node.get()?.bus(), &api.roster, &id, q.topic.as_deref()).await?;
    Ok(match c {
        None => error(StatusCode::NOT_FOUND, format!("task {id} not found (unknown, or its result expired)")),
        Some(c @ submit::Cancelled::Requested { .. }) => (StatusCode::ACCEPTED, Json(c.view())).into_response(),
        Some(c @ submit::Cancelled::Final(_)) => (StatusCode::CONFLICT, Json(c.view())).into_response(),
    })
}

async fn stats(State(api): State<Api>) -> Result<Response, ApiError> {
    let bus = api.node.get()?.bus();
    let mut all = Vec::new();
    for t in api.roster.topics() {
        all.push(bus.stats(t).await?);
    }
    Ok(Json(all).into_response())
}
