//! API keys on Redis: one hash per key and an index of every key, all under the one `{apikeys}` hash
//! tag (one slot on Redis Cluster, so a script writes a record and its index entry atomically).
//! Written only by the scripts of [`super::scripts`]; reads are plain commands.

use super::scripts::{CreateArgs, RevokeArgs, Scripts};
use super::{ApiKey, KeyHash, KeyId, KeyStoreError, Revoked, Role};
use crate::connection::Conn;
use crate::tenant::TenantId;
use std::collections::HashMap;
use std::sync::Arc;

/// Redis key names of API keys.
pub mod keys {
    use super::KeyId;

    pub const TAG: &str = "{apikeys}";

    /// A key's record: a hash of `sha256`, `tenant`, `role`, `created_at` and, once revoked, `revoked_at`.
    pub fn record(id: &KeyId) -> String {
        format!("genesis:{TAG}:key:{id}")
    }

    /// Every key id, scored by `created_at` (ms): what `list` reads (no SCAN).
    pub fn index() -> String {
        format!("genesis:{TAG}:all")
    }
}

#[derive(Clone)]
pub struct RedisKeys {
    conn: Conn,
    scripts: Arc<Scripts>,
}

impl RedisKeys {
    pub fn new(conn: Conn) -> Self {
        RedisKeys { conn, scripts: Arc::new(Scripts::load()) }
    }

    pub async fn create(&self, key: &ApiKey) -> Result<(), KeyStoreError> {
        let stored: i64 = self.scripts.create.call(&CreateArgs { key }).invoke_async(&mut self.conn.clone()).await?;
        if stored == 1 {
            Ok(())
        } else {
            Err(KeyStoreError::Exists(key.id.clone()))
        }
    }

    pub async fn get(&self, id: &KeyId) -> Result<Option<ApiKey>, KeyStoreError> {
        let fields: HashMap<String, String> =
            ::redis::cmd("HGETALL").arg(keys::record(id)).query_async(&mut self.conn.clone()).await?;
        if fields.is_empty() {
            return Ok(None);
        }
        decode(id, &fields).map(Some)
    }

    pub async fn list(&self) -> Result<Vec<ApiKey>, KeyStoreError> {
        let ids: Vec<String> =
            ::redis::cmd("ZRANGE").arg(keys::index()).arg(0).arg(-1).query_async(&mut self.conn.clone()).await?;
        let mut out = Vec::with_capacity(ids.len());
        for raw in ids {
            let id = KeyId::parse(&raw).map_err(|problem| KeyStoreError::Corrupt { id: raw.clone(), problem })?;
            // An index entry whose record is gone (deleted by hand) is skipped, not an error.
            if let Some(k) = self.get(&id).await? {
                out.push(k);
            }
        }
        Ok(out)
    }

    pub async fn revoke(&self, id: &KeyId, now_ms: u64) -> Result<Revoked, KeyStoreError> {
        let done: i64 =
            self.scripts.revoke.call(&RevokeArgs { id, now_ms }).invoke_async(&mut self.conn.clone()).await?;
        let record = match self.get(id).await? {
            Some(r) if done != 0 => r,
            _ => return Ok(Revoked::Unknown),
        };
        Ok(if done == 1 { Revoked::Now(record) } else { Revoked::Already(record) })
    }
}

fn decode(id: &KeyId, f: &HashMap<String, String>) -> Result<ApiKey, KeyStoreError> {
    let corrupt = |problem: &str| KeyStoreError::Corrupt { id: id.to_string(), problem: problem.to_string() };
    let field = |name: &str| f.get(name).ok_or_else(|| corrupt(&format!("no field {name}")));
    let ms = |v: &String| v.parse::<u64>().map_err(|_| corrupt("a time is not a number"));
    Ok(ApiKey {
        id: id.clone(),
        tenant: TenantId::parse(field("tenant")?).map_err(|e| corrupt(&e.to_string()))?,
        role: Role::parse(field("role")?).ok_or_else(|| corrupt("role is neither tenant nor admin"))?,
        created_at: ms(field("created_at")?)?,
        revoked_at: f.get("revoked_at").map(ms).transpose()?,
        sha256: KeyHash::from_hex(field("sha256")?).ok_or_else(|| corrupt("sha256 is not 64 hex digits"))?,
    })
}
