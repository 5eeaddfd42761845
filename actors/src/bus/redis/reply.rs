//! Parsing of raw Redis replies. Entry data is read as bytes and converted leniently, so one entry with
//! odd bytes cannot make a whole batch unreadable (it is dead-lettered instead).

use crate::bus::types::{BusError, HistoryItem};
use crate::task::ENVELOPE_FIELD;
use redis::Value;

pub fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Okay => Some("OK".into()),
        _ => None,
    }
}

pub fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        other => text(other).and_then(|s| s.parse().ok()),
    }
}

pub fn items(v: Value) -> Vec<Value> {
    match v {
        Value::Array(a) | Value::Set(a) => a,
        Value::Map(m) => m.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        _ => Vec::new(),
    }
}

/// Field/value pairs of a flat `[f1, v1, f2, v2, ...]` array (or a RESP3 map).
pub fn pairs(v: Value) -> Vec<(String, String)> {
    let flat = items(v);
    flat.chunks(2)
        .filter_map(|c| match c {
            [k, v] => Some((text(k)?, text(v).unwrap_or_default())),
            _ => None,
        })
        .collect()
}

pub fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The envelope field of an entry's fields, if present.
pub fn envelope(fields: Value) -> Option<String> {
    let p = pairs(fields);
    field(&p, ENVELOPE_FIELD).map(str::to_string)
}

/// `[[id, deliveries, fields], ...]` as returned by our scripts.
pub fn id_count_fields(v: Value) -> Result<Vec<(String, u32, Option<String>)>, BusError> {
    items(v)
        .into_iter()
        .map(|e| {
            let mut it = items(e).into_iter();
            let id = it.next().as_ref().and_then(text);
            let n = it.next().as_ref().and_then(int);
            let fields = it.next().unwrap_or(Value::Nil);
            match (id, n) {
                (Some(id), Some(n)) => Ok((id, n.clamp(1, u32::MAX as i64) as u32, envelope(fields))),
                _ => Err(BusError::Protocol("malformed pending entry".into())),
            }
        })
        .collect()
}

/// A plain XREADGROUP/XRANGE reply for one stream: `[[stream, [[id, fields], ...]]]` or `[[id, fields]]`.
pub fn stream_entries(v: Value) -> Vec<(String, Value)> {
    items(v)
        .into_iter()
        .filter_map(|e| {
            let mut it = items(e).into_iter();
            let id = it.next().as_ref().and_then(text)?;
            Some((id, it.next().unwrap_or(Value::Nil)))
        })
        .collect()
}

/// Entries of the single stream in an XREADGROUP reply.
pub fn read_reply(v: Value) -> Vec<(String, Value)> {
    match v {
        Value::Nil => Vec::new(),
        Value::Map(m) => m.into_iter().next().map(|(_, e)| stream_entries(e)).unwrap_or_default(),
        other => items(other)
            .into_iter()
            .next()
            .map(|s| items(s).into_iter().nth(1).map(stream_entries).unwrap_or_default())
            .unwrap_or_default(),
    }
}

pub fn history(s: Option<&str>) -> Vec<HistoryItem> {
    match s {
        Some(s) if s.starts_with('[') => serde_json::from_str(s).unwrap_or_default(),
        _ => Vec::new(),
    }
}
