//! The node's HTTP surface on `http.addr`: liveness and readiness probes, Prometheus `/metrics`, a
//! small task API (the only way to submit work to a node running on the in-process bus), and the
//! payments API outside agents ask for money through ([`payments`]).
//!
//! Who may call what: the probes are open; every other route checks the Host header ([`host`]); every
//! `/v1` route but `/v1/payments/intents` needs an API key ([`auth`]) and answers for the key's tenant
//! only (docs/semantics.md, "Tenants"); `/metrics` needs an admin key here, or is served open on its
//! own listener when `http.metrics_addr` is set ([`metrics_router`]).
//!
//! Errors are 4xx with a JSON body `{"error": "..."}` that names the problem; axum's own extractors
//! answer malformed JSON with 400/415/422 and a message.

pub mod admin_key;
pub mod auth;
pub mod host;
pub mod payments;
pub mod server;
pub mod workflows;

use auth::Caller;

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
    /// The API keys on the runtime's bus.
    keys: std::sync::OnceLock<genesis_actors::apikey::KeyStore>,
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
        let _ = self.inner.keys.set(genesis_actors::apikey::KeyStore::for_bus(runtime.bus()));
        let _ = self.inner.runtime.set(runtime);
    }

    /// The key store, once the node runs.
    fn keys(&self) -> Result<genesis_actors::apikey::KeyStore, ApiError> {
        self.inner.keys.get().cloned().ok_or_else(|| ApiError::Starting(self.waiting()))
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
    /// The caller's key does not allow it.
    Denied(auth::Denied),
}

impl From<auth::Denied> for ApiError {
    fn from(d: auth::Denied) -> Self {
        ApiError::Denied(d)
    }
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
            ApiError::Denied(d) => d.into_response(),
        }
    }
}

/// Who may call the HTTP API: `http.auth`, `http.allowed_hosts`, `http.metrics_addr`,
/// `http.admin_key_file` and the keys of `[[http.api_keys]]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HttpSettings {
    pub auth: auth::AuthSettings,
    /// As configured (it replaces the default); `None`: the default of the listen address.
    pub allowed_hosts: Option<Vec<host::HostPattern>>,
    /// `/metrics` on a listener of its own, open (no key, no Host check); `None`: on `http.addr`,
    /// for admin keys.
    pub metrics_addr: Option<SocketAddr>,
    /// The embedded bus's first-run admin key ([`admin_key`]).
    pub admin_key_file: std::path::PathBuf,
}

#[derive(Clone)]
pub struct Api {
    pub node: NodeSlot,
    pub roster: Arc<Roster>,
    pub max_payload_bytes: usize,
    pub result_ttl: Duration,
    pub auth: Arc<auth::AuthSettings>,
    /// `/metrics` is served on `http.addr` (no `http.metrics_addr`).
    pub metrics_here: bool,
}

pub fn router(api: Api, hosts: host::AllowedHosts) -> Router {
    let keyed = Router::new()
        .route("/v1/tasks", post(create_task))
        .route("/v1/tasks/{id}", get(get_task))
        .route("/v1/tasks/{id}/cancel", post(cancel_task))
        .route("/v1/stats", get(stats))
        .route("/v1/workflows", post(workflows::start).get(workflows::list))
        .route("/v1/workflows/{id}", get(workflows::get))
        .route("/v1/workflows/{id}/cancel", post(workflows::cancel))
        .route("/v1/workflows/{id}/retry", post(workflows::retry));
    let keyed = if api.metrics_here { keyed.route("/metrics", get(admin_metrics)) } else { keyed };
    let checked = keyed
        .route_layer(axum::middleware::from_fn_with_state(api.clone(), auth::require))
        // Its own auth: the payment token of the task the calling agent runs.
        .route("/v1/payments/intents", post(payments::create_intent))
        .route_layer(axum::middleware::from_fn_with_state(hosts, host::check));
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "alive"})) }))
        .route("/readyz", get(readyz))
        .merge(checked)
        .with_state(api)
}

/// `/metrics` alone, open, for the listener on `http.metrics_addr`: Prometheus scrapes it without a
/// key (bind it to an address only the scrapers reach).
pub fn metrics_router(api: Api) -> Router {
    Router::new().route("/metrics", get(metrics)).with_state(api)
}

/// Serve `router` on an already bound listener (binding happens before the runtime starts, so a taken
/// `http.addr` stops the start instead of leaving a node without probes) until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: server::Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    server::serve(listener, server::limited(router, limits), limits, shutdown).await
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

/// `/metrics` on `http.addr`: admin keys only (the metrics name every agent and topic of every tenant).
async fn admin_metrics(caller: Caller, state: State<Api>) -> Result<Response, ApiError> {
    caller.admin_only("/metrics on http.addr")?;
    metrics(state).await
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

/// `POST /v1/tasks`: the task is the key's tenant's (an admin key may name another in `tenant`).
async fn create_task(
    caller: Caller,
    State(api): State<Api>,
    Json(mut req): Json<SubmitRequest>,
) -> Result<Response, ApiError> {
    req.tenant = Some(caller.tenant_for(req.tenant.take(), "tenant")?);
    let bus = api.node.get()?.bus();
    let (env, entry) = submit::submit(bus, &api.roster, api.max_payload_bytes, api.result_ttl, req).await?;
    Ok((StatusCode::CREATED, Json(json!({ "task_id": env.task_id, "topic": env.topic, "entry_id": entry })))
        .into_response())
}

#[derive(serde::Deserialize)]
struct TaskQuery {
    topic: Option<String>,
}

fn task_not_found(id: &str) -> Response {
    error(StatusCode::NOT_FOUND, format!("task {id} not found (unknown, or its result expired)"))
}

/// The task's record if the caller may see it (another tenant's task is not found, as an unknown one).
async fn visible_task(
    caller: &Caller,
    api: &Api,
    id: &str,
    topic: Option<&str>,
) -> Result<Option<genesis_actors::bus::TaskRecord>, ApiError> {
    let record = submit::find(api.node.get()?.bus(), &api.roster, id, topic).await?;
    Ok(record.filter(|r| caller.sees(r.tenant_id.as_deref())))
}

async fn get_task(
    caller: Caller,
    State(api): State<Api>,
    Path(id): Path<String>,
    Query(q): Query<TaskQuery>,
) -> Result<Response, ApiError> {
    Ok(match visible_task(&caller, &api, &id, q.topic.as_deref()).await? {
        Some(r) => Json(r).into_response(),
        None => task_not_found(&id),
    })
}

/// `POST /v1/tasks/{id}/cancel` (`?topic=` optional): 202 with the record once the cancel is
/// requested (it takes effect when a worker takes the task, or when the node running it stops it),
/// 404 for an unknown task (or another tenant's), 409 for one that already ended.
async fn cancel_task(
    caller: Caller,
    State(api): State<Api>,
    Path(id): Path<String>,
    Query(q): Query<TaskQuery>,
) -> Result<Response, ApiError> {
    // Whose it is first: a cancel is never requested for a task the caller may not see.
    let Some(record) = visible_task(&caller, &api, &id, q.topic.as_deref()).await? else {
        return Ok(task_not_found(&id));
    };
    let c = submit::cancel(api.node.get()?.bus(), &api.roster, &id, Some(&record.topic)).await?;
    Ok(match c {
        None => task_not_found(&id),
        Some(c @ submit::Cancelled::Requested { .. }) => (StatusCode::ACCEPTED, Json(c.view())).into_response(),
        Some(c @ submit::Cancelled::Final(_)) => (StatusCode::CONFLICT, Json(c.view())).into_response(),
    })
}

/// `GET /v1/stats`: per-topic queue figures, which add up every tenant's tasks: admin keys only.
async fn stats(caller: Caller, State(api): State<Api>) -> Result<Response, ApiError> {
    caller.admin_only("/v1/stats")?;
    let bus = api.node.get()?.bus();
    let mut all = Vec::new();
    for t in api.roster.topics() {
        all.push(bus.stats(t).await?);
    }
    Ok(Json(all).into_response())
}
