//! The Redis ledger's index of tenants ([`keys::TENANTS`]) and, per tenant, of businesses
//! ([`Shard::businesses`]): sorted sets scored by the time of the last decision, so that an index
//! entry lives as long as the data it leads to (the retention) instead of forever.
//!
//! Pruning is one `ZREMRANGEBYSCORE` by score, which Redis runs atomically: a tenant deciding at the
//! same moment has a fresh score and is never removed, whatever the order of the two commands (a
//! check-then-remove of a plain set could drop it). The businesses index is pruned and given its
//! lifetime inside the DECIDE script.

use super::keys::{self, Shard};
use super::LedgerError;
use crate::connection::Conn;
use crate::tenant::TenantId;

/// `(cutoff` for `ZREMRANGEBYSCORE -inf …`: entries last seen more than `retention_ms` before `now_ms`.
fn cutoff(now_ms: u64, retention_ms: u64) -> String {
    format!("({}", now_ms.saturating_sub(retention_ms))
}

/// The tenant asked for money at `now_ms` (its score only grows: `GT`, whatever the nodes' clocks),
/// and the tenants idle for longer than the retention leave the index. One key, one slot: a pipeline.
pub(super) fn touch_tenant(tenant: &TenantId, now_ms: u64, retention_ms: u64) -> ::redis::Pipeline {
    let mut p = ::redis::pipe();
    p.cmd("ZADD").arg(keys::TENANTS).arg("GT").arg(now_ms).arg(tenant.as_str()).ignore();
    p.cmd("ZREMRANGEBYSCORE").arg(keys::TENANTS).arg("-inf").arg(cutoff(now_ms, retention_ms)).ignore();
    p
}

/// The tenant holds a reservation due at `deadline`: it stays in the index until a retention after
/// that (`GT`: a score only grows), so the expiry job, which visits the index, finds the reservation
/// even if the tenant decides nothing more.
pub(super) fn hold_tenant(tenant: &TenantId, deadline: u64) -> ::redis::Cmd {
    let mut c = ::redis::cmd("ZADD");
    c.arg(keys::TENANTS).arg("GT").arg(deadline).arg(tenant.as_str());
    c
}

/// Every tenant in the index (already pruned by the decisions).
pub(super) fn tenants_cmd() -> ::redis::Cmd {
    let mut c = ::redis::cmd("ZRANGE");
    c.arg(keys::TENANTS).arg(0).arg(-1);
    c
}

/// A shard's businesses (already pruned by its decisions).
pub(super) fn businesses_cmd(shard: &Shard) -> ::redis::Cmd {
    let mut c = ::redis::cmd("ZRANGE");
    c.arg(shard.businesses()).arg(0).arg(-1);
    c
}

/// Moves the plain sets of earlier versions ([`keys::LEGACY_TENANTS`] and each tenant's
/// [`Shard::legacy_businesses`]) into the sorted sets, scored `now_ms` (so they get a whole retention
/// from the upgrade), and deletes them. `ZADD NX` keeps a score a newer node already wrote; running
/// this twice, or on two nodes at once, ends in the same state. Single-key commands only (the keys
/// are in different slots).
pub(super) async fn adopt_legacy(conn: &Conn, now_ms: u64) -> Result<usize, LedgerError> {
    let mut c = conn.clone();
    let legacy: Vec<String> = ::redis::cmd("SMEMBERS").arg(keys::LEGACY_TENANTS).query_async(&mut c).await?;
    for raw in &legacy {
        let Ok(tenant) = TenantId::parse(raw) else {
            tracing::warn!(tenant = %raw, "legacy payment index: not a tenant id, dropped");
            continue;
        };
        let shard = Shard::of(&tenant);
        let businesses: Vec<String> =
            ::redis::cmd("SMEMBERS").arg(shard.legacy_businesses()).query_async(&mut c).await?;
        let mut p = ::redis::pipe();
        for b in &businesses {
            p.cmd("ZADD").arg(shard.businesses()).arg("NX").arg(now_ms).arg(b).ignore();
        }
        p.cmd("DEL").arg(shard.legacy_businesses()).ignore();
        let () = p.query_async(&mut c).await?;
        let _: i64 = ::redis::cmd("ZADD")
            .arg(keys::TENANTS)
            .arg("NX")
            .arg(now_ms)
            .arg(tenant.as_str())
            .query_async(&mut c)
            .await?;
    }
    if !legacy.is_empty() {
        let _: i64 = ::redis::cmd("DEL").arg(keys::LEGACY_TENANTS).query_async(&mut c).await?;
        tracing::info!(tenants = legacy.len(), "payment index: adopted the tenants of the previous version");
    }
    Ok(legacy.len())
}
