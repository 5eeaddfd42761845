//! Reading the Redis ledger's replies: values to text, numbers, mandate records and log entries. Missing
//! or malformed fields read as empty or 0; only an unknown outcome is an error.

use super::{LedgerError, LogEntry, MandateRecord};
use crate::payments::types::{Decision, Outcome, WorkflowBudget};
use ::redis::Value;
use std::collections::BTreeMap;

pub(super) fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        _ => String::new(),
    }
}

pub(super) fn items(v: Value) -> Vec<Value> {
    match v {
        Value::Array(a) | Value::Set(a) => a,
        Value::Map(m) => m.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        _ => Vec::new(),
    }
}

pub(super) fn pairs(v: Value) -> BTreeMap<String, String> {
    items(v)
        .chunks(2)
        .filter_map(|c| match c {
            [k, v] => Some((text(k), text(v))),
            _ => None,
        })
        .collect()
}

/// `(member, score)` of a `… WITHSCORES` reply (flat in RESP2, pairs in RESP3); scores are whole ms.
pub(super) fn scored(v: Value) -> Vec<(String, u64)> {
    let score = |v: &Value| match v {
        Value::Double(d) => *d as u64,
        other => text(other).parse::<f64>().map(|d| d as u64).unwrap_or(0),
    };
    let all = items(v);
    if all.iter().all(|x| matches!(x, Value::Array(_))) {
        return all
            .into_iter()
            .filter_map(|p| match items(p).as_slice() {
                [m, s] => Some((text(m), score(s))),
                _ => None,
            })
            .collect();
    }
    all.chunks(2)
        .filter_map(|c| match c {
            [m, s] => Some((text(m), score(s))),
            _ => None,
        })
        .collect()
}

pub(super) fn outcome(s: &str) -> Result<Outcome, LedgerError> {
    serde_json::from_value(serde_json::Value::String(s.to_string()))
        .map_err(|_| LedgerError::Protocol(format!("unknown outcome `{s}`")))
}

pub(super) fn num(m: &BTreeMap<String, String>, k: &str) -> u64 {
    m.get(k).and_then(|v| v.parse::<i64>().ok()).map(|v| v.max(0) as u64).unwrap_or(0)
}

/// A mandate hash (`HGETALL`), or `None` if it is empty (no such mandate).
pub(super) fn record(m: &BTreeMap<String, String>) -> Result<Option<MandateRecord>, LedgerError> {
    if m.is_empty() {
        return Ok(None);
    }
    let get = |k: &str| m.get(k).cloned().unwrap_or_default();
    Ok(Some(MandateRecord {
        decision: Decision {
            outcome: outcome(&get("outcome"))?,
            code: get("code"),
            reason: get("reason"),
            mandate_id: get("mandate_id"),
            agent_id: get("agent_id"),
            vendor: get("vendor"),
            amount_cents: num(m, "amount_cents"),
            business_id: get("business_id"),
            tenant_id: get("tenant_id"),
            decided_at_ms: num(m, "decided_at_ms"),
        },
        status: get("status"),
        purpose: get("purpose"),
        task_id: m.get("task_id").filter(|t| !t.is_empty()).cloned(),
        workflow: m
            .get("workflow_id")
            .filter(|w| !w.is_empty())
            .map(|w| WorkflowBudget { id: w.clone(), budget_cents: num(m, "workflow_budget_cents") }),
    }))
}

/// The entries of an `XRANGE` reply, each with its stream id as `(ms, seq)` (for merging several logs).
pub(super) fn log_entries(v: Value) -> Vec<((u64, u64), LogEntry)> {
    items(v)
        .into_iter()
        .filter_map(|e| {
            let mut it = items(e).into_iter();
            let id = text(&it.next()?);
            let f = pairs(it.next()?);
            let (ms, seq) = id.split_once('-').unwrap_or((id.as_str(), "0"));
            let (ms, seq) = (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0));
            let get = |k: &str| f.get(k).cloned().unwrap_or_default();
            let entry = LogEntry {
                at_ms: ms,
                event: get("event"),
                mandate_id: get("mandate_id"),
                agent_id: get("agent_id"),
                vendor: get("vendor"),
                amount_cents: num(&f, "amount_cents"),
                business_id: get("business_id"),
                tenant_id: get("tenant_id"),
                outcome: get("outcome"),
                code: get("code"),
                day: get("day"),
            };
            Some(((ms, seq), entry))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_in_resp2_and_resp3() {
        let b = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let flat = Value::Array(vec![b("m-1"), b("1700"), b("m-2"), b("1800")]);
        let nested = Value::Array(vec![Value::Array(vec![b("m-1"), Value::Double(1700.0)])]);
        assert_eq!(scored(flat), vec![("m-1".to_string(), 1700), ("m-2".to_string(), 1800)]);
        assert_eq!(scored(nested), vec![("m-1".to_string(), 1700)]);
        assert!(scored(Value::Nil).is_empty());
    }
}
