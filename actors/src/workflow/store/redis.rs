//! The workflow store on Redis: documents and indexes under the one `{wf}` tag ([`super::keys`]),
//! written only by the scripts of [`super::scripts`]; reads are plain commands (a pipeline stays in
//! the one slot).

use super::scripts::{CreateArgs, PruneArgs, ReleaseArgs, SaveArgs, Scripts};
use super::*;
use crate::connection::Conn;
use crate::tenant::TenantId;
use ::redis::Value;
use std::sync::Arc;

/// The stream entry field that holds an event's JSON.
const EVENT_FIELD: &str = "event";

#[derive(Clone)]
pub struct RedisStore {
    conn: Conn,
    scripts: Arc<Scripts>,
    opts: Options,
}

fn ms(d: Duration) -> u64 {
    (d.as_millis() as u64).max(1)
}

impl RedisStore {
    pub fn new(conn: Conn, opts: Options) -> Self {
        RedisStore { conn, scripts: Arc::new(Scripts::load()), opts }
    }

    pub async fn create(&self, wf: &Workflow) -> Result<Created, StoreError> {
        let doc = encode(wf);
        let args = CreateArgs { wf, doc: &doc, retention_ms: ms(self.opts.retention) };
        let r: Option<(String, u64)> = self.scripts.create.call(&args).invoke_async(&mut self.conn.clone()).await?;
        Ok(match r {
            None => Created::New,
            Some((doc, version)) => Created::Exists(Box::new(decode(&wf.id, &doc)?), version),
        })
    }

    pub async fn load(&self, id: &str) -> Result<Option<(Workflow, Version)>, StoreError> {
        let (doc, version): (Option<String>, Option<u64>) = ::redis::cmd("HMGET")
            .arg(keys::doc(id))
            .arg("doc")
            .arg("version")
            .query_async(&mut self.conn.clone())
            .await?;
        match (doc, version) {
            (Some(doc), Some(v)) => Ok(Some((decode(id, &doc)?, v))),
            _ => Ok(None),
        }
    }

    pub async fn save(&self, wf: &Workflow, expected: Version) -> Result<bool, StoreError> {
        let doc = encode(wf);
        let args = SaveArgs { wf, doc: &doc, expected, retention_ms: ms(self.opts.retention) };
        let n: i64 = self.scripts.save.call(&args).invoke_async(&mut self.conn.clone()).await?;
        Ok(n == 1)
    }

    pub async fn list(&self, filter: &ListFilter) -> Result<Page, StoreError> {
        // The narrowest index first: a tenant's (then filtered by status), else a status's, else all.
        let index = match (&filter.tenant, filter.status) {
            (Some(t), _) => keys::tenant(t),
            (None, Some(s)) => keys::status(s),
            (None, None) => keys::all(),
        };
        let limit = filter.limit();
        let cursor = filter.cursor.as_deref().and_then(parse_cursor);
        let max = cursor.as_ref().map(|(at, _)| at.to_string()).unwrap_or_else(|| "+inf".into());
        let batch = (limit * 2).max(64);
        let mut out = Vec::new();
        let mut offset = 0;
        let mut conn = self.conn.clone();
        loop {
            let got: Vec<(String, u64)> = ::redis::cmd("ZREVRANGEBYSCORE")
                .arg(&index)
                .arg(&max)
                .arg("-inf")
                .arg("WITHSCORES")
                .arg("LIMIT")
                .arg(offset)
                .arg(batch)
                .query_async(&mut conn)
                .await?;
            let exhausted = got.len() < batch;
            offset += got.len();
            let ids: Vec<&(String, u64)> = got.iter().filter(|(id, at)| after_cursor(*at, id, &cursor)).collect();
            if !ids.is_empty() {
                let mut pipe = ::redis::pipe();
                for (id, _) in &ids {
                    pipe.cmd("HGET").arg(keys::doc(id)).arg("doc");
                }
                let docs: Vec<Option<String>> = pipe.query_async(&mut conn).await?;
                for ((id, _), doc) in ids.into_iter().zip(docs) {
                    // Gone: an ended workflow past its retention, not pruned from the index yet.
                    let Some(doc) = doc else { continue };
                    let wf = decode(id, &doc)?;
                    if filter.status.is_some_and(|s| s != wf.status) {
                        continue;
                    }
                    out.push(wf);
                    if out.len() == limit {
                        return Ok(Page { cursor: out.last().map(cursor_of), workflows: out });
                    }
                }
            }
            if exhausted {
                return Ok(Page { workflows: out, cursor: None });
            }
        }
    }

    pub async fn not_final(&self, limit: usize) -> Result<Vec<String>, StoreError> {
        let stop = limit.max(1) as i64 - 1;
        Ok(::redis::cmd("ZRANGE").arg(keys::open()).arg(0).arg(stop).query_async(&mut self.conn.clone()).await?)
    }

    pub async fn prune(&self, limit: usize) -> Result<usize, StoreError> {
        let mut conn = self.conn.clone();
        let now = crate::task::now_ms();
        let due: Vec<String> = ::redis::cmd("ZRANGEBYSCORE")
            .arg(keys::expiring())
            .arg("-inf")
            .arg(now)
            .arg("LIMIT")
            .arg(0)
            .arg(limit.max(1))
            .query_async(&mut conn)
            .await?;
        let mut removed = 0;
        for member in due {
            let Some((id, tenant)) = member.split_once(':') else { continue };
            let Ok(tenant) = TenantId::parse(tenant) else { continue };
            let n: i64 = self.scripts.prune.call(&PruneArgs { id, tenant: &tenant }).invoke_async(&mut conn).await?;
            removed += n.max(0) as usize;
        }
        Ok(removed)
    }

    pub async fn lease(&self, id: &str, token: &str, ttl: Duration) -> Result<bool, StoreError> {
        let r: Option<String> = ::redis::cmd("SET")
            .arg(keys::lease(id))
            .arg(token)
            .arg("NX")
            .arg("PX")
            .arg(ms(ttl))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(r.is_some())
    }

    pub async fn release(&self, id: &str, token: &str) -> Result<(), StoreError> {
        let _: i64 = self.scripts.release.call(&ReleaseArgs { id, token }).invoke_async(&mut self.conn.clone()).await?;
        Ok(())
    }

    pub async fn append_events(&self, events: &[WorkflowEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut pipe = ::redis::pipe();
        for e in events {
            let json = serde_json::to_string(e).map_err(|e| StoreError::Protocol(e.to_string()))?;
            pipe.cmd("XADD")
                .arg(keys::events())
                .arg("MAXLEN")
                .arg("~")
                .arg(self.opts.events_max_len.max(1))
                .arg("*")
                .arg(EVENT_FIELD)
                .arg(json)
                .ignore();
        }
        let () = pipe.query_async(&mut self.conn.clone()).await?;
        Ok(())
    }

    pub async fn read_events(&self, after: Option<&str>, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let start = after.map(|a| format!("({a}")).unwrap_or_else(|| "-".into());
        let v: Value = ::redis::cmd("XRANGE")
            .arg(keys::events())
            .arg(start)
            .arg("+")
            .arg("COUNT")
            .arg(limit.max(1))
            .query_async(&mut self.conn.clone())
            .await?;
        let entries: Vec<(String, Vec<(String, String)>)> =
            ::redis::from_redis_value(v).map_err(|e| StoreError::Protocol(format!("XRANGE reply: {e}")))?;
        entries
            .into_iter()
            .filter_map(|(id, fields)| {
                let json = fields.into_iter().find(|(k, _)| k == EVENT_FIELD)?.1;
                Some(
                    serde_json::from_str(&json)
                        .map(|event| StoredEvent { id: id.clone(), event })
                        .map_err(|e| StoreError::Corrupt { id, error: e.to_string() }),
                )
            })
            .collect()
    }
}
