//! `/v1/workflows`: start (201, or 200 with the existing workflow for an id that exists), get, list
//! (`?status=&tenant=&limit=&cursor=`), cancel and retry (409 when the status does not allow it).
//! The same engine and templates as `genesis workflow` and `genesis.meta.orchestrate`.
//!
//! Tenants (docs/semantics.md, "Tenants"): a workflow is its key's tenant's; a tenant key sees, lists,
//! cancels and retries only its tenant's workflows (another's is 404, as an unknown one); an admin key
//! sees all and may start one for a tenant by naming it in `tenant_id`.

use super::auth::Caller;
use super::{error, Api, ApiError};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use genesis_actors::task::TenantId;
use genesis_actors::workflow::engine::{StartRequest, WorkflowError};
use genesis_actors::workflow::launch::Launch;
use genesis_actors::workflow::state::{Workflow, WorkflowStatus};
use genesis_actors::workflow::store::ListFilter;
use serde::Deserialize;
use serde_json::{json, Value};

fn failed(e: WorkflowError) -> Response {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    error(status, e.to_string())
}

fn not_found(id: &str) -> Response {
    error(StatusCode::NOT_FOUND, format!("workflow {id} not found (unknown, or expired)"))
}

/// The start request ([`Launch`]) plus the tenant it is for (an admin key's choice only).
#[derive(Deserialize)]
pub struct StartBody {
    #[serde(default)]
    tenant_id: Option<String>,
    #[serde(flatten)]
    launch: Value,
}

pub async fn start(caller: Caller, State(api): State<Api>, Json(body): Json<StartBody>) -> Result<Response, ApiError> {
    let runtime = api.node.get()?;
    let named = match body.tenant_id.as_deref().map(TenantId::parse).transpose() {
        Ok(t) => t,
        Err(e) => return Ok(error(StatusCode::BAD_REQUEST, e.to_string())),
    };
    let tenant = caller.tenant_for(named, "tenant_id")?;
    let launch = match Launch::from_json(&body.launch) {
        Ok(l) => l,
        Err(e) => return Ok(error(StatusCode::BAD_REQUEST, e.to_string())),
    };
    let workflows = runtime.workflows();
    let plan = match launch.plan(&workflows.settings().templates) {
        Ok(p) => p,
        Err(e) => return Ok(error(StatusCode::BAD_REQUEST, e.to_string())),
    };
    let req = StartRequest {
        tenant,
        business: launch.business_id.clone(),
        correlation: launch.correlation_id.clone(),
        template: launch.template.clone(),
        projected_revenue: launch.projected_revenue_cents,
        workflow_id: launch.workflow_id.clone(),
        remaining_budget_cents: None,
    };
    Ok(match workflows.start(plan, req).await {
        // A chosen id that a workflow the caller may not see has: refused without showing it.
        Ok(s) if s.existed && !caller.sees(Some(s.workflow.tenant_id.as_str())) => error(
            StatusCode::CONFLICT,
            format!("workflow id {} is taken; choose another workflow_id (or leave it out)", s.workflow.id),
        ),
        Ok(s) => {
            let code = if s.existed { StatusCode::OK } else { StatusCode::CREATED };
            let poll = format!("/v1/workflows/{}", s.workflow.id);
            (
                code,
                [(axum::http::header::LOCATION, poll.clone())],
                Json(json!({"workflow": s.workflow, "poll_url": poll})),
            )
                .into_response()
        }
        Err(e) => failed(e),
    })
}

/// The workflow if the caller may see it; `Err` is the answer to give (404, or the engine's error).
async fn visible(caller: &Caller, api: &Api, id: &str) -> Result<Result<Workflow, Response>, ApiError> {
    Ok(match api.node.get()?.workflows().get(id).await {
        Ok(Some(wf)) if caller.sees(Some(wf.tenant_id.as_str())) => Ok(wf),
        Ok(_) => Err(not_found(id)),
        Err(e) => Err(failed(e)),
    })
}

pub async fn get(caller: Caller, State(api): State<Api>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(match visible(&caller, &api, &id).await? {
        Ok(wf) => Json(wf).into_response(),
        Err(r) => r,
    })
}

#[derive(Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    tenant: Option<String>,
    #[serde(default)]
    limit: usize,
    cursor: Option<String>,
}

/// A tenant key lists its own tenant's workflows (`?tenant=` naming another finds none); an admin key
/// lists every tenant's, or the one `?tenant=` names.
pub async fn list(caller: Caller, State(api): State<Api>, Query(q): Query<ListQuery>) -> Result<Response, ApiError> {
    let status = match q.status.as_deref().map(|s| WorkflowStatus::parse(s).ok_or(s)).transpose() {
        Ok(s) => s,
        Err(s) => {
            let msg = format!("status `{s}`: one of running, compensating, succeeded, failed, cancelled");
            return Ok(error(StatusCode::BAD_REQUEST, msg));
        }
    };
    let named = match q.tenant.as_deref().map(TenantId::parse).transpose() {
        Ok(t) => t,
        Err(e) => return Ok(error(StatusCode::BAD_REQUEST, e.to_string())),
    };
    let tenant = match (caller.is_admin(), named) {
        (true, named) => named,
        (false, Some(t)) if t != caller.tenant => {
            return Ok(Json(json!({"workflows": [], "cursor": null})).into_response());
        }
        (false, _) => Some(caller.tenant.clone()),
    };
    let filter = ListFilter { status, tenant, limit: q.limit, cursor: q.cursor };
    Ok(match api.node.get()?.workflows().list(&filter).await {
        Ok(page) => Json(json!({"workflows": page.workflows, "cursor": page.cursor})).into_response(),
        Err(e) => failed(e),
    })
}

pub async fn cancel(caller: Caller, State(api): State<Api>, Path(id): Path<String>) -> Result<Response, ApiError> {
    if let Err(r) = visible(&caller, &api, &id).await? {
        return Ok(r);
    }
    Ok(match api.node.get()?.workflows().cancel(&id).await {
        Ok(wf) => (StatusCode::ACCEPTED, Json(wf)).into_response(),
        Err(e) => failed(e),
    })
}

pub async fn retry(caller: Caller, State(api): State<Api>, Path(id): Path<String>) -> Result<Response, ApiError> {
    if let Err(r) = visible(&caller, &api, &id).await? {
        return Ok(r);
    }
    Ok(match api.node.get()?.workflows().retry(&id).await {
        Ok(wf) => (StatusCode::ACCEPTED, Json(wf)).into_response(),
        Err(e) => failed(e),
    })
}
