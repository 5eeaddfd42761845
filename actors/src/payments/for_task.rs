//! Who a task's money is for, beyond what the agent asks: the business it pays for and the workflow
//! budget it counts toward, both from the task's envelope. One rule for every way a task asks — the
//! simulated executor's `pay`, a process agent's pay lines, an outside agent's payment token — so an
//! agent cannot pay for another business or outside its workflow's budget by the way it asks.
//!
//! (There used to be two business rules: the process and simulated executors fell back to `default`
//! for a payload `business_id` that was not a string, the token refused one that was not a valid id.
//! The strict one is kept: money is never charged to `default` because a business id was malformed.)

use super::types::{code, is_valid_id, Rejection, WorkflowBudget, DEFAULT_BUSINESS, MAX_ID_LEN};
use crate::workflow::state::WorkflowRef;
use serde_json::Value;

/// The business a task pays for: the envelope's `business_id` (a workflow's business, carried by
/// every step), else the payload's `business_id`, else [`DEFAULT_BUSINESS`]. The first one present
/// decides: one that is not a valid id is `invalid_business` (the task's payments are then denied,
/// and it gets no payment token), never a fall back to the next.
pub fn business_of(envelope: Option<&str>, payload: &Value) -> Result<String, Rejection> {
    let invalid = |whose: &str| {
        Rejection::new(
            code::INVALID_BUSINESS,
            format!(
                "the task's {whose} business_id must be a string of 1..={MAX_ID_LEN} characters of [A-Za-z0-9:._-]"
            ),
        )
    };
    if let Some(b) = envelope {
        return if is_valid_id(b) { Ok(b.to_string()) } else { Err(invalid("envelope's")) };
    }
    match payload.get("business_id") {
        None | Some(Value::Null) => Ok(DEFAULT_BUSINESS.to_string()),
        Some(Value::String(b)) if is_valid_id(b) => Ok(b.clone()),
        Some(_) => Err(invalid("payload's")),
    }
}

/// The workflow budget a task's intents count toward: its envelope's workflow, when that carries a
/// budget. A workflow step without one pays as any task does (only the other budgets apply).
pub fn workflow_of(workflow: Option<&WorkflowRef>) -> Option<WorkflowBudget> {
    let w = workflow?;
    Some(WorkflowBudget { id: w.id.clone(), budget_cents: w.budget_cents? })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::state::TaskKind;
    use serde_json::json;

    #[test]
    fn the_envelope_decides_then_the_payload_then_the_default() {
        assert_eq!(business_of(None, &json!({})), Ok(DEFAULT_BUSINESS.to_string()));
        assert_eq!(business_of(None, &json!({"business_id": null})), Ok(DEFAULT_BUSINESS.to_string()));
        assert_eq!(business_of(None, &json!({"business_id": "biz-7"})), Ok("biz-7".to_string()));
        assert_eq!(business_of(Some("biz-env"), &json!({"business_id": "biz-7"})), Ok("biz-env".to_string()));
        assert_eq!(business_of(Some("biz-env"), &json!("not an object")), Ok("biz-env".to_string()));
        for bad in [json!({"business_id": 7}), json!({"business_id": "a b"}), json!({"business_id": ""})] {
            let r = business_of(None, &bad).map_err(|r| r.code);
            assert_eq!(r, Err(code::INVALID_BUSINESS), "{bad}");
        }
        // An invalid envelope business is refused, not replaced by the payload's.
        let r = business_of(Some("a{b}"), &json!({"business_id": "biz-7"}));
        assert!(r.as_ref().is_err_and(|r| r.reason.contains("envelope")), "{r:?}");
    }

    #[test]
    fn only_a_workflow_with_a_budget_has_a_scope() {
        let w = |budget_cents| WorkflowRef {
            id: "wf-1".into(),
            step: "s".into(),
            run: 1,
            kind: TaskKind::Step,
            budget_cents,
        };
        assert_eq!(workflow_of(None), None);
        assert_eq!(workflow_of(Some(&w(None))), None);
        assert_eq!(workflow_of(Some(&w(Some(1000)))), Some(WorkflowBudget { id: "wf-1".into(), budget_cents: 1000 }));
    }
}
