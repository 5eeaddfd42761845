//! `POST /v1/payments/intents`: how an outside agent (a2a, http, process) asks the MetaAgent for money,
//! with the payment token of the task it works on (`Authorization: Bearer <token>` or
//! `Genesis-Payment-Token: <token>`). See docs/semantics.md, Money 13.
//!
//! The body is `{"vendor", "amount_cents", "reason"?, "mandate_id"?}`; the agent, business, tenant and
//! task are the token's, and a body naming any of them is refused (400). Answers, all JSON:
//! - 200 approved, 202 needs_review (held for a human; ask again later), 402 denied: the decision
//!   (`outcome`, `code`, `reason`, `mandate_id`, …), as the MetaAgent returns it;
//! - 400 a malformed body; 401 no token, or one that is forged, altered, expired or made with another
//!   key; 409 the token's task has already ended (its money is settled);
//! - 503 no decision could be made now (payments not configured on this node, the MetaAgent restarting,
//!   Redis unreachable): ask again, with the same mandate.

use super::{error, Api, ApiError};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use genesis_actors::payments::outside;
use genesis_actors::payments::types::Outcome;

/// The header that carries a payment token, for clients whose `Authorization` is taken.
pub const TOKEN_HEADER: &str = "genesis-payment-token";

/// The token presented: `Genesis-Payment-Token`, else `Authorization: Bearer …`.
fn presented(headers: &HeaderMap) -> Option<&str> {
    if let Some(t) = headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok()) {
        return Some(t.trim());
    }
    super::auth::bearer(headers)
}

pub(super) async fn create_intent(
    State(api): State<Api>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let runtime = api.node.get()?;
    let payments = runtime.payments();
    let Some(token) = presented(&headers).filter(|t| !t.is_empty()) else {
        return Ok(error(
            StatusCode::UNAUTHORIZED,
            "a payment token is required (Authorization: Bearer <token>, or Genesis-Payment-Token): the one \
             your task came with",
        ));
    };
    let claims = match payments.verify_token(token) {
        None => return Ok(error(StatusCode::SERVICE_UNAVAILABLE, "payments are not configured on this node")),
        Some(Err(e)) => return Ok(error(StatusCode::UNAUTHORIZED, e.to_string())),
        Some(Ok(c)) => c,
    };
    let intent = match outside::parse_body(&body).and_then(|b| outside::intent(&claims, b)) {
        Ok(i) => i,
        Err(e) => return Ok(error(StatusCode::BAD_REQUEST, e.to_string())),
    };
    // A task that has ended has had its money settled: a payment now would outlive it.
    if let Some(spec) = api.roster.by_name(&claims.agent) {
        let task = claims.task_id.to_string();
        if let Some(r) = runtime.bus().task(&spec.topic, &task).await?.filter(|r| r.status.is_final()) {
            return Ok(error(
                StatusCode::CONFLICT,
                format!(
                    "task {task} has already ended ({}); its payment token pays only while it runs",
                    r.status.as_str()
                ),
            ));
        }
    }
    let decision = match payments.approve(intent).await {
        Ok(d) => d,
        Err(e) => {
            return Ok(error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("no decision could be made now ({e}); ask again"),
            ))
        }
    };
    let status = match decision.outcome {
        Outcome::Approved => StatusCode::OK,
        Outcome::NeedsReview => StatusCode::ACCEPTED,
        Outcome::Denied => StatusCode::PAYMENT_REQUIRED,
    };
    Ok((status, Json(decision)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_read_from_either_header() {
        let mut h = HeaderMap::new();
        assert_eq!(presented(&h), None);
        h.insert("authorization", "Bearer abc".parse().expect("header"));
        assert_eq!(presented(&h), Some("abc"));
        h.insert("authorization", "bearer  abc ".parse().expect("header"));
        assert_eq!(presented(&h), Some("abc"));
        h.insert("authorization", "Basic abc".parse().expect("header"));
        assert_eq!(presented(&h), None);
        h.insert(TOKEN_HEADER, "xyz".parse().expect("header"));
        assert_eq!(presented(&h), Some("xyz"), "the dedicated header wins");
    }
}
