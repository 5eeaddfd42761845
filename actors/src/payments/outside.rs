//! An outside agent's payment intent, as the node's HTTP API receives it (`POST /v1/payments/intents`),
//! bound to the agent's payment token. Pure: parsing the body, naming the mandate, building the
//! [`PaymentIntent`] the MetaAgent decides.
//!
//! **Who pays comes from the token, never from the body.** The agent, business, tenant and task of the
//! intent are the token's claims, and so is the workflow budget it counts toward (a workflow step's); a body that names any of them (`agent_id`, `business_id`,
//! `tenant_id`, `task_id`, or the same without `_id`) is refused as a whole, so a confused or
//! malicious agent learns at once that it cannot spend as someone else.
//!
//! **Mandates are the task's, and a retry reuses them.** The mandate id is always under the task:
//! `<task_id>:k:<mandate_id>` when the body gives a `mandate_id` (the caller's idempotency key), else
//! `<task_id>:h:<hash>`, a hash of what is asked (vendor, amount, reason). Either way a retried attempt,
//! a replay after a crash or a repeated request asks for the same mandate, which the ledger decides
//! once; two identical payments in one task need two distinct `mandate_id`s.

use super::token::Claims;
use super::types::{is_valid_id, PaymentIntent, MAX_ID_LEN};
use crate::task::TaskId;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The body of `POST /v1/payments/intents`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntentBody {
    pub vendor: String,
    pub amount_cents: i64,
    #[serde(default)]
    pub reason: String,
    /// The caller's idempotency key for this payment, unique within its task.
    #[serde(default)]
    pub mandate_id: Option<String>,
}

/// Body fields that would name who pays: refused, since that is the token's to say.
pub const IDENTITY_FIELDS: [&str; 8] =
    ["agent_id", "agent", "business_id", "business", "tenant_id", "tenant", "task_id", "task"];

/// The longest caller `mandate_id`: what fits in a mandate id after `<task_id>:k:`.
pub const MAX_KEY_LEN: usize = MAX_ID_LEN - 26 - 3;

/// Why a body is refused (all are the caller's fault: HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("invalid intent: {0} (expected {{\"vendor\", \"amount_cents\", \"reason\"?, \"mandate_id\"?}})")]
    Shape(String),
    #[error("`{0}` is not accepted in an intent: the agent, business, tenant and task come from the payment token")]
    Identity(&'static str),
    #[error("mandate_id must be 1..={MAX_KEY_LEN} characters of [A-Za-z0-9:._-]")]
    Mandate,
}

/// Parse a request body (JSON).
pub fn parse_body(bytes: &[u8]) -> Result<IntentBody, BodyError> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| BodyError::Shape(e.to_string()))?;
    let Some(obj) = v.as_object() else { return Err(BodyError::Shape("not a JSON object".into())) };
    if let Some(f) = IDENTITY_FIELDS.iter().find(|f| obj.contains_key(**f)) {
        return Err(BodyError::Identity(f));
    }
    IntentBody::deserialize(v).map_err(|e| BodyError::Shape(e.to_string()))
}

/// The mandate id of an intent of task `task` (see the module docs).
pub fn mandate_for(task: &TaskId, body: &IntentBody) -> Result<String, BodyError> {
    match &body.mandate_id {
        Some(key) if key.len() <= MAX_KEY_LEN && is_valid_id(key) => Ok(format!("{task}:k:{key}")),
        Some(_) => Err(BodyError::Mandate),
        None => {
            let mut h = Sha256::new();
            for part in [body.vendor.as_bytes(), body.amount_cents.to_string().as_bytes(), body.reason.as_bytes()] {
                // Length-prefixed, so no two different intents hash the same parts.
                h.update((part.len() as u64).to_be_bytes());
                h.update(part);
            }
            let digest = h.finalize();
            let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
            Ok(format!("{task}:h:{hex}"))
        }
    }
}

/// The intent the MetaAgent decides: what to pay from the body, who pays from the token.
pub fn intent(claims: &Claims, body: IntentBody) -> Result<PaymentIntent, BodyError> {
    let mandate_id = mandate_for(&claims.task_id, &body)?;
    Ok(PaymentIntent {
        agent_id: claims.agent.clone(),
        vendor: body.vendor,
        amount_cents: body.amount_cents,
        reason: body.reason,
        mandate_id,
        business_id: claims.business.clone(),
        tenant_id: claims.tenant.clone(),
        task_id: Some(claims.task_id),
        workflow: claims.workflow.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payments::types::WorkflowBudget;
    use crate::tenant::TenantId;
    use serde_json::json;

    fn claims() -> Claims {
        Claims {
            task_id: TaskId::generate(),
            agent: "genesis.commerce".into(),
            business: "biz-1".into(),
            tenant: TenantId::parse("tenant-1").expect("tenant"),
            expires_at_ms: u64::MAX,
            workflow: None,
        }
    }

    fn body(v: Value) -> Result<IntentBody, BodyError> {
        parse_body(v.to_string().as_bytes())
    }

    #[test]
    fn who_pays_comes_from_the_token() {
        let c = claims();
        let b = body(json!({"vendor": "openai.com", "amount_cents": 500, "reason": "tokens"})).expect("body");
        let i = intent(&c, b).expect("intent");
        assert_eq!((i.agent_id.as_str(), i.business_id.as_str()), ("genesis.commerce", "biz-1"));
        assert_eq!((i.tenant_id.as_str(), i.task_id, i.workflow), ("tenant-1", Some(c.task_id), None));
        let w = WorkflowBudget { id: "wf-1".into(), budget_cents: 1000 };
        let c = Claims { workflow: Some(w.clone()), ..c };
        let b = body(json!({"vendor": "openai.com", "amount_cents": 500})).expect("body");
        assert_eq!(intent(&c, b).expect("intent").workflow, Some(w), "the workflow budget is the token's");
        for f in IDENTITY_FIELDS {
            let mut v = json!({"vendor": "openai.com", "amount_cents": 5});
            v[f] = json!("mallory");
            assert_eq!(body(v), Err(BodyError::Identity(f)), "{f}");
        }
    }

    #[test]
    fn malformed_bodies_are_refused() {
        for bad in ["", "[]", "{", r#"{"vendor": "x"}"#, r#"{"vendor": "x", "amount_cents": "5"}"#] {
            assert!(matches!(parse_body(bad.as_bytes()), Err(BodyError::Shape(_))), "{bad}");
        }
        let extra = body(json!({"vendor": "x", "amount_cents": 5, "tip": 1}));
        assert!(matches!(extra, Err(BodyError::Shape(m)) if m.contains("tip")));
    }

    #[test]
    fn mandates_are_the_tasks_and_repeat_for_the_same_ask() {
        let (t1, t2) = (TaskId::generate(), TaskId::generate());
        let ask = |v: Value| body(v).expect("body");
        let a = ask(json!({"vendor": "openai.com", "amount_cents": 500, "reason": "tokens"}));
        // The same ask in the same task (a retry, a replay): the same mandate.
        assert_eq!(mandate_for(&t1, &a), mandate_for(&t1, &a.clone()));
        assert_ne!(mandate_for(&t1, &a), mandate_for(&t2, &a), "another task, another mandate");
        for other in [
            json!({"vendor": "openai.com", "amount_cents": 501, "reason": "tokens"}),
            json!({"vendor": "openai.com", "amount_cents": 500, "reason": "tokens!"}),
            json!({"vendor": "stripe.com", "amount_cents": 500, "reason": "tokens"}),
            json!({"vendor": "openai.com5", "amount_cents": 0, "reason": "tokens"}),
        ] {
            assert_ne!(mandate_for(&t1, &a), mandate_for(&t1, &ask(other.clone())), "{other}");
        }
        let keyed = ask(json!({"vendor": "openai.com", "amount_cents": 500, "mandate_id": "order-1"}));
        assert_eq!(mandate_for(&t1, &keyed), Ok(format!("{t1}:k:order-1")));
        let m = mandate_for(&t1, &a).expect("mandate");
        assert!(m.starts_with(&format!("{t1}:h:")) && is_valid_id(&m), "{m}");
        let longest = ask(json!({"vendor": "x", "amount_cents": 1, "mandate_id": "k".repeat(MAX_KEY_LEN)}));
        assert!(mandate_for(&t1, &longest).is_ok_and(|m| is_valid_id(&m)));
        for bad in ["", "a b", "a{b}", &"k".repeat(MAX_KEY_LEN + 1)] {
            let b = ask(json!({"vendor": "x", "amount_cents": 1, "mandate_id": bad}));
            assert_eq!(mandate_for(&t1, &b), Err(BodyError::Mandate), "{bad}");
        }
    }
}
