//! The process-agent protocol as pure functions (docs/agents.md, "process"): the request line the node
//! writes, the agent's lines parsed into [`AgentLine`], and the payment intent and answer of a `pay`
//! line. No I/O here: `child.rs` moves the bytes, `mod.rs` runs the conversation.
//!
//! The parser is strict on purpose: a line that is not exactly one known object is a broken agent,
//! and the executor treats it like a crash (the child is replaced, the task replayed, the poison limit
//! bounds it). A lenient parser would instead guess, and a guessed `result` is a wrong result.

use super::super::TaskContext;
use crate::payments::types::{Decision, PaymentIntent, Rejection};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// The longest line an agent may write on stdout (without its newline). Longer is a protocol error:
/// it bounds the node's memory whatever the child does.
pub const MAX_LINE_BYTES: usize = 4 * 1024 * 1024;

/// Pay lines one task may send; past this each is answered with an error instead of reaching the
/// MetaAgent (a runaway loop in an agent must not flood the payment authority until the timeout).
pub const MAX_PAYS_PER_TASK: u32 = 100;

/// How much of an offending line an error message quotes.
const QUOTE_CHARS: usize = 60;

/// What the node writes to the agent's stdin for one task, one line of JSON.
#[derive(Debug, Serialize)]
struct Request<'a> {
    task_id: String,
    attempt: u32,
    tenant_id: &'a str,
    correlation_id: &'a str,
    payload: &'a Value,
    deadline_ms: u64,
    traceparent: Option<&'a str>,
    payment_token: Option<&'a str>,
}

/// The request line for one attempt, newline included.
pub fn request_line(ctx: &TaskContext, payload: &Value) -> Result<Vec<u8>, serde_json::Error> {
    let req = Request {
        task_id: ctx.task_id.to_string(),
        attempt: ctx.attempt,
        tenant_id: ctx.tenant_id.as_str(),
        correlation_id: &ctx.correlation_id,
        payload,
        deadline_ms: ctx.deadline_ms,
        traceparent: ctx.traceparent.as_deref(),
        payment_token: ctx.payment_token.as_deref(),
    };
    let mut line = serde_json::to_vec(&req)?;
    line.push(b'\n');
    Ok(line)
}

/// One line from the agent, understood.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentLine {
    /// `{"progress": …}`: how far the agent is (any JSON value).
    Progress(Value),
    /// `{"pay": {…}}`: ask the node's MetaAgent for money; the agent then reads one answer line.
    Pay(PayRequest),
    /// `{"result": …}`: the task's result; the conversation is over.
    Result(Value),
    /// `{"error": "…", "retryable": bool}`: the attempt failed; the conversation is over.
    Error { message: String, retryable: bool },
}

/// What an agent may say about a payment. Who pays (agent, tenant, business) and the mandate are
/// not among these fields: the node takes them from the task, so an agent can spend only as itself.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayRequest {
    pub vendor: String,
    pub amount_cents: i64,
    #[serde(default, alias = "reason")]
    pub purpose: String,
}

/// Why a line is not protocol.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProtocolError {
    #[error("a line that is not JSON ({error}): {quote}")]
    NotJson { error: String, quote: String },
    #[error("a JSON line that is not an object: {quote}")]
    NotObject { quote: String },
    #[error("a line of unknown shape ({problem}): {quote}")]
    Shape { problem: String, quote: String },
}

const KINDS: [&str; 4] = ["progress", "pay", "result", "error"];

/// Parse one stdout line (without its newline). A blank line is `Ok(None)` (a stray `print()` is
/// harmless); anything else must be one object with exactly one of `progress`, `pay`, `result`,
/// `error` (which may come with `retryable`, default false) and no other key.
pub fn parse_line(line: &[u8]) -> Result<Option<AgentLine>, ProtocolError> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let value: Value = serde_json::from_slice(line)
        .map_err(|e| ProtocolError::NotJson { error: e.to_string(), quote: quote(line) })?;
    let Value::Object(mut m) = value else {
        return Err(ProtocolError::NotObject { quote: quote(line) });
    };
    let shape = |problem: String| ProtocolError::Shape { problem, quote: quote(line) };
    let kinds: Vec<&str> = KINDS.into_iter().filter(|k| m.contains_key(*k)).collect();
    let kind = match kinds.as_slice() {
        [k] => *k,
        [] => return Err(shape(format!("expected one of the keys {}", KINDS.join(", ")))),
        _ => return Err(shape(format!("more than one of the keys {}", kinds.join(", ")))),
    };
    if let Some(extra) = m.keys().find(|k| *k != kind && !(kind == "error" && *k == "retryable")) {
        return Err(shape(format!("unexpected key `{extra}` in a `{kind}` line")));
    }
    let value = m.remove(kind).unwrap_or(Value::Null);
    Ok(Some(match kind {
        "progress" => AgentLine::Progress(value),
        "result" => AgentLine::Result(value),
        "pay" => AgentLine::Pay(PayRequest::deserialize(value).map_err(|e| shape(format!("invalid `pay`: {e}")))?),
        _ => {
            let Value::String(message) = value else {
                return Err(shape("`error` must be a string".into()));
            };
            let retryable = match m.remove("retryable") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => b,
                Some(_) => return Err(shape("`retryable` must be true or false".into())),
            };
            AgentLine::Error { message, retryable }
        }
    }))
}

/// The first characters of a line, for an error message (lossy UTF-8, cut at a character).
fn quote(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let mut q: String = text.chars().take(QUOTE_CHARS).collect();
    if text.chars().nth(QUOTE_CHARS).is_some() {
        q.push('…');
    }
    format!("{q:?}")
}

/// The intent for the `index`-th pay line (from 0) of this attempt, for the task's business
/// ([`TaskContext::business`]: bound to the task, not to what the agent writes in a `pay` line) and
/// workflow budget. The mandate `<task_id>-p<index>` is bound to the task, so a replayed or retried
/// task asking again gets the same decision and is not charged twice (the ledger is idempotent per
/// mandate).
pub fn intent(ctx: &TaskContext, business: &str, index: u32, pay: PayRequest) -> PaymentIntent {
    PaymentIntent {
        agent_id: ctx.agent.clone(),
        vendor: pay.vendor,
        amount_cents: pay.amount_cents,
        reason: pay.purpose,
        mandate_id: format!("{}-p{index}", ctx.task_id),
        business_id: business.to_string(),
        tenant_id: ctx.tenant_id.clone(),
        task_id: Some(ctx.task_id),
        workflow: ctx.workflow_budget(),
    }
}

/// The denial of the `index`-th pay line of a task whose business is not a valid id: the same answer
/// the authority gives an intent that fails validation (nothing is asked or stored).
pub fn refused(ctx: &TaskContext, index: u32, pay: PayRequest, why: &Rejection) -> Decision {
    Decision::rejected_input(&intent(ctx, "", index, pay), why, crate::task::now_ms())
}

/// The answer line to a pay line, newline included: `{"payment": {"status": "approved" | "denied" |
/// "needs_review", "code", "reason", "mandate_id", "vendor", "amount_cents"}}`, or `{"payment":
/// {"status": "error", "error": "…"}}` when no decision could be had (payments not configured, the
/// MetaAgent restarting, too many pay lines).
pub fn payment_answer(decision: &Result<Decision, String>) -> Vec<u8> {
    let payment = match decision {
        Ok(d) => json!({
            "status": d.outcome.as_str(),
            "code": d.code,
            "reason": d.reason,
            "mandate_id": d.mandate_id,
            "vendor": d.vendor,
            "amount_cents": d.amount_cents,
        }),
        Err(e) => json!({"status": "error", "error": e}),
    };
    let mut m = Map::new();
    m.insert("payment".into(), payment);
    let mut line = Value::Object(m).to_string().into_bytes();
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payments::types::Outcome;
    use crate::task::TaskId;

    fn parse(s: &str) -> Result<Option<AgentLine>, ProtocolError> {
        parse_line(s.as_bytes())
    }

    #[test]
    fn the_four_kinds_of_line() {
        assert_eq!(parse(r#"{"progress": {"step": 1}}"#), Ok(Some(AgentLine::Progress(json!({"step": 1})))));
        assert_eq!(parse(r#"{"result": [1, 2]}"#), Ok(Some(AgentLine::Result(json!([1, 2])))));
        assert_eq!(parse(r#"{"result": null}"#), Ok(Some(AgentLine::Result(Value::Null))));
        assert_eq!(
            parse(r#"{"error": "boom", "retryable": true}"#),
            Ok(Some(AgentLine::Error { message: "boom".into(), retryable: true }))
        );
        assert_eq!(
            parse(r#"{"error": "boom"}"#),
            Ok(Some(AgentLine::Error { message: "boom".into(), retryable: false }))
        );
        let pay = PayRequest { vendor: "openai.com".into(), amount_cents: 250, purpose: "tokens".into() };
        assert_eq!(
            parse(r#"{"pay": {"vendor": "openai.com", "amount_cents": 250, "purpose": "tokens"}}"#),
            Ok(Some(AgentLine::Pay(pay.clone())))
        );
        assert_eq!(
            parse(r#"{"pay": {"vendor": "openai.com", "amount_cents": 250, "reason": "tokens"}}"#),
            Ok(Some(AgentLine::Pay(pay)))
        );
    }

    #[test]
    fn blank_lines_are_skipped() {
        assert_eq!(parse(""), Ok(None));
        assert_eq!(parse("  \r"), Ok(None));
    }

    #[test]
    fn garbage_and_unknown_shapes_are_errors() {
        assert!(matches!(parse("this is not JSON {{{"), Err(ProtocolError::NotJson { .. })));
        assert!(matches!(parse("[1]"), Err(ProtocolError::NotObject { .. })));
        assert!(matches!(parse("42"), Err(ProtocolError::NotObject { .. })));
        for bad in [
            r#"{}"#,
            r#"{"hello": 1}"#,
            r#"{"result": 1, "error": "x"}"#,
            r#"{"result": 1, "extra": 2}"#,
            r#"{"result": 1, "retryable": false}"#,
            r#"{"error": 3}"#,
            r#"{"error": "x", "retryable": "yes"}"#,
            r#"{"pay": {"vendor": "a.com"}}"#,
            r#"{"pay": {"vendor": "a.com", "amount_cents": 1.5}}"#,
            r#"{"pay": {"vendor": "a.com", "amount_cents": 1, "agent_id": "someone-else"}}"#,
            r#"{"pay": {"vendor": "a.com", "amount_cents": 1, "tenant_id": "other"}}"#,
        ] {
            assert!(matches!(parse(bad), Err(ProtocolError::Shape { .. })), "{bad}: {:?}", parse(bad));
        }
    }

    #[test]
    fn errors_quote_a_bounded_prefix_of_the_line() {
        let long = format!("not json {}", "x".repeat(10_000));
        let e = parse(&long).expect_err("garbage").to_string();
        assert!(e.len() < 200, "{e}");
        assert!(e.contains("not json xxx") && e.contains('…'), "{e}");
        let e = parse_line(b"\xff\xfe garbage").expect_err("not UTF-8").to_string();
        assert!(e.contains("garbage"), "{e}");
    }

    fn ctx() -> TaskContext {
        TaskContext {
            attempt: 2,
            traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
            payment_token: Some("tok".into()),
            tenant_id: crate::tenant::TenantId::parse("acme").expect("tenant"),
            ..TaskContext::detached("genesis.research", TaskId::generate())
        }
    }

    #[test]
    fn the_request_line_carries_the_task_and_ends_in_a_newline() {
        let c = ctx();
        let line = request_line(&c, &json!({"q": "x\ny"})).expect("serializes");
        assert_eq!(line.last(), Some(&b'\n'));
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1, "one line, whatever the payload holds");
        let v: Value = serde_json::from_slice(&line).expect("JSON");
        assert_eq!(v["task_id"], c.task_id.to_string());
        assert_eq!((v["attempt"].as_u64(), v["tenant_id"].as_str()), (Some(2), Some("acme")));
        assert_eq!(v["correlation_id"], c.correlation_id);
        assert_eq!(v["payload"], json!({"q": "x\ny"}));
        assert_eq!(v["deadline_ms"], c.deadline_ms);
        assert_eq!(v["traceparent"], c.traceparent.clone().unwrap_or_default());
        assert_eq!(v["payment_token"], "tok");
        let detached = TaskContext::detached("a", TaskId::generate());
        let v: Value = serde_json::from_slice(&request_line(&detached, &json!({})).expect("ok")).expect("JSON");
        assert_eq!((v["traceparent"].clone(), v["payment_token"].clone()), (Value::Null, Value::Null));
    }

    #[test]
    fn the_intent_is_bound_to_the_task_whatever_the_agent_writes() {
        let c = ctx();
        let pay = PayRequest { vendor: "openai.com".into(), amount_cents: 250, purpose: "tokens".into() };
        let business = c.business(&json!({"business_id": "biz-7"})).expect("business");
        let i = intent(&c, &business, 1, pay.clone());
        assert_eq!((i.agent_id.as_str(), i.tenant_id.as_str()), ("genesis.research", "acme"));
        assert_eq!(i.mandate_id, format!("{}-p1", c.task_id));
        assert!(crate::payments::types::is_valid_id(&i.mandate_id), "{}", i.mandate_id);
        assert_eq!((i.business_id.as_str(), i.amount_cents, i.reason.as_str()), ("biz-7", 250, "tokens"));
        assert_eq!(i.workflow, None);
        // A workflow step: the envelope's business wins, and the workflow's budget goes with the intent.
        let step = TaskContext {
            business_id: Some("biz-wf".into()),
            workflow: Some(crate::workflow::state::WorkflowRef {
                id: "wf-1".into(),
                step: "spec".into(),
                run: 1,
                kind: crate::workflow::state::TaskKind::Step,
                budget_cents: Some(900),
            }),
            ..ctx()
        };
        let i = intent(&step, &step.business(&json!({"business_id": "biz-7"})).expect("business"), 0, pay.clone());
        assert_eq!(i.business_id, "biz-wf");
        assert_eq!(i.workflow.map(|w| (w.id, w.budget_cents)), Some(("wf-1".to_string(), 900)));
        // A business that is not an id is refused as validation refuses it, not paid as `default`.
        let why = c.business(&json!({"business_id": 3})).expect_err("not an id");
        let d = refused(&c, 2, pay, &why);
        assert_eq!((d.outcome, d.code.as_str()), (Outcome::Denied, "invalid_business"));
        assert_eq!(d.mandate_id, format!("{}-p2", c.task_id));
    }

    #[test]
    fn payment_answers() {
        let d = Decision {
            outcome: Outcome::Denied,
            code: "vendor_lookalike".into(),
            reason: "looks like openai.com".into(),
            mandate_id: "m-1".into(),
            agent_id: "a".into(),
            vendor: "0penai.com".into(),
            amount_cents: 100,
            business_id: "b".into(),
            tenant_id: "t".into(),
            decided_at_ms: 0,
        };
        let line = payment_answer(&Ok(d.clone()));
        assert_eq!(line.last(), Some(&b'\n'));
        let v: Value = serde_json::from_slice(&line).expect("JSON");
        assert_eq!(v["payment"]["status"], "denied");
        assert_eq!(
            (v["payment"]["code"].as_str(), v["payment"]["amount_cents"].as_u64()),
            (Some("vendor_lookalike"), Some(100))
        );
        for (outcome, status) in [(Outcome::Approved, "approved"), (Outcome::NeedsReview, "needs_review")] {
            let v: Value =
                serde_json::from_slice(&payment_answer(&Ok(Decision { outcome, ..d.clone() }))).expect("JSON");
            assert_eq!(v["payment"]["status"], status);
        }
        let v: Value = serde_json::from_slice(&payment_answer(&Err("not configured".into()))).expect("JSON");
        assert_eq!(v, json!({"payment": {"status": "error", "error": "not configured"}}));
    }
}
