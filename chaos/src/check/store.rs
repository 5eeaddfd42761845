//! How the checker reads Redis: the bus's key names, paged reads (the checker may SCAN and XRANGE
//! everything: it runs once, offline, on one Redis), and the two probes the harness polls while it
//! waits (task statuses, stream lengths).

use crate::record::PublishedTask;
use anyhow::Context;
use redis::aio::MultiplexedConnection;
use redis::Value;
use std::collections::{BTreeMap, HashMap};

pub(crate) async fn connect(url: &str) -> anyhow::Result<MultiplexedConnection> {
    let client = redis::Client::open(url).context("redis url")?;
    client.get_multiplexed_async_connection().await.context("connect to redis")
}

pub(crate) fn stream_key(topic: &str) -> String {
    format!("genesis:{{{topic}}}:stream")
}
pub(crate) fn dlq_key(topic: &str) -> String {
    format!("genesis:{{{topic}}}:dlq")
}
pub(crate) fn retry_key(topic: &str) -> String {
    format!("genesis:{{{topic}}}:retry")
}
pub(crate) fn result_key(topic: &str, task_id: &str) -> String {
    format!("genesis:{{{topic}}}:task:{task_id}")
}

/// Every entry of a stream, in pages.
pub(crate) async fn xrange_all(
    c: &mut MultiplexedConnection,
    key: &str,
) -> anyhow::Result<Vec<(String, HashMap<String, String>)>> {
    let mut out = Vec::new();
    let mut start = "-".to_string();
    loop {
        let page: Vec<(String, HashMap<String, String>)> =
            redis::cmd("XRANGE").arg(key).arg(&start).arg("+").arg("COUNT").arg(2000).query_async(c).await?;
        let n = page.len();
        if let Some((last, _)) = page.last() {
            start = format!("({last}");
        }
        out.extend(page);
        if n < 2000 {
            return Ok(out);
        }
    }
}

pub(crate) async fn scan(c: &mut MultiplexedConnection, pattern: &str) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) =
            redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(1000).query_async(c).await?;
        out.extend(keys);
        if next == 0 {
            out.sort();
            out.dedup();
            return Ok(out);
        }
        cursor = next;
    }
}

/// XPENDING count of the `genesis` group (0 if the stream or group does not exist).
pub(crate) async fn pending_count(c: &mut MultiplexedConnection, topic: &str) -> anyhow::Result<u64> {
    let key = stream_key(topic);
    let exists: bool = redis::cmd("EXISTS").arg(&key).query_async(c).await?;
    if !exists {
        return Ok(0);
    }
    let v: Value = redis::cmd("XPENDING").arg(&key).arg("genesis").query_async(c).await?;
    match v {
        Value::Array(items) => match items.first() {
            Some(Value::Int(n)) => Ok((*n).max(0) as u64),
            other => anyhow::bail!("unexpected XPENDING reply for {key}: {other:?}"),
        },
        other => anyhow::bail!("unexpected XPENDING reply for {key}: {other:?}"),
    }
}

/// Length and pending count of each topic's stream (for check 6, and for waiting on the trimmer).
pub async fn stream_state(url: &str, topics: &[String]) -> anyhow::Result<BTreeMap<String, (u64, u64)>> {
    let mut c = connect(url).await?;
    let mut out = BTreeMap::new();
    for t in topics {
        let len: u64 = redis::cmd("XLEN").arg(stream_key(t)).query_async(&mut c).await?;
        out.insert(t.clone(), (len, pending_count(&mut c, t).await?));
    }
    Ok(out)
}

/// Status of each task (`None` when it has no record), in the order given.
pub async fn statuses(url: &str, tasks: &[PublishedTask]) -> anyhow::Result<Vec<Option<String>>> {
    let mut c = connect(url).await?;
    let mut out = Vec::with_capacity(tasks.len());
    for chunk in tasks.chunks(1000) {
        let mut pipe = redis::pipe();
        for t in chunk {
            pipe.cmd("HGET").arg(result_key(&t.topic, &t.task_id)).arg("status");
        }
        let v: Vec<Option<String>> = pipe.query_async(&mut c).await?;
        out.extend(v);
    }
    Ok(out)
}

/// The result record (all fields) of each task, in the order given; empty when it has none.
pub(crate) async fn records(
    c: &mut MultiplexedConnection,
    tasks: &[PublishedTask],
) -> anyhow::Result<Vec<HashMap<String, String>>> {
    let mut out = Vec::with_capacity(tasks.len());
    for chunk in tasks.chunks(1000) {
        let mut pipe = redis::pipe();
        for t in chunk {
            pipe.cmd("HGETALL").arg(result_key(&t.topic, &t.task_id));
        }
        let v: Vec<HashMap<String, String>> = pipe.query_async(c).await?;
        out.extend(v);
    }
    Ok(out)
}
