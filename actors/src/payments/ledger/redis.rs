//! The ledger on Redis: every money operation is one Lua script (see `scripts.rs`) over the keys of one
//! tenant's shard (see `keys.rs`). What a script cannot see because it is global — which tenant a
//! business or a mandate belongs to, and the set of tenants — is read and written with single-key
//! commands around it; reads across tenants visit the set of tenants, never SCAN.

use super::index;
use super::keys::{self, Shard};
use super::reply::{self, items, log_entries, num, pairs, record, scored, text};
use super::scripts::{self, LedgerScripts};
use super::*;
use crate::connection::Conn;
use crate::payments::policy::{self, Limits};
use crate::payments::types::{Decision, Outcome};
use crate::task::TaskId;
use crate::tenant::TenantId;
use ::redis::Value;
use std::sync::Arc;

#[derive(Clone)]
pub struct RedisLedger {
    conn: Conn,
    scripts: Arc<LedgerScripts>,
}

/// Milliseconds at the start of UTC day `YYYY-MM-DD` and of the next day.
pub fn day_bounds(day: &str) -> Option<(u64, u64)> {
    let mut it = day.split('-');
    let (y, m, d): (i64, i64, i64) = (it.next()?.parse().ok()?, it.next()?.parse().ok()?, it.next()?.parse().ok()?);
    if it.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Days from the civil date (H. Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let start = u64::try_from(days).ok()?.checked_mul(86_400_000)?;
    Some((start, start + 86_400_000))
}

/// The task and workflow a stored mandate's money is also counted under.
fn owners(m: &MandateRecord) -> scripts::Owners<'_> {
    scripts::Owners {
        task: m.task_id.as_deref().unwrap_or_default(),
        workflow: m.workflow.as_ref().map(|w| w.id.as_str()).unwrap_or_default(),
    }
}

/// A tenant id read back from Redis (written from a [`TenantId`], so only a foreign writer can make
/// this fail).
fn stored_tenant(raw: &str) -> Result<TenantId, LedgerError> {
    TenantId::parse(raw).map_err(|e| LedgerError::Protocol(format!("stored tenant: {e}")))
}

impl RedisLedger {
    /// Connect to a plain URL (one attempt). For tools and tests; the node uses [`RedisLedger::open`]
    /// with the same connector as its bus (TLS, Sentinel, Cluster alike).
    pub async fn connect(url: &str) -> Result<Self, LedgerError> {
        let opts = crate::connection::RedisOptions { url: Some(url.to_string().into()), ..Default::default() };
        let target = crate::connection::RedisTarget::resolve(&opts, "bus.redis_url")
            .map_err(|e| LedgerError::Protocol(e.to_string()))?;
        let reconnect = crate::policy::backoff::Backoff::new(
            std::time::Duration::from_millis(100),
            std::time::Duration::from_secs(10),
            2.0,
        );
        Self::open(&crate::connection::Connector::new(target, reconnect)?).await
    }

    /// Open the ledger's connection (one attempt).
    pub async fn open(connector: &crate::connection::Connector) -> Result<Self, LedgerError> {
        let conn = connector.connect(std::time::Duration::from_secs(5)).await?;
        index::adopt_legacy(&conn, crate::task::now_ms()).await?;
        Ok(RedisLedger { conn, scripts: Arc::new(LedgerScripts::load()) })
    }

    pub async fn decide(&self, x: &DecideInput<'_>) -> Result<Decided, LedgerError> {
        let i = x.intent;
        let r = x.rules;
        let amount = i.amount.get();
        let day = policy::utc_day(x.now_ms);
        let (agent, vendor, business, tenant) = (&i.agent_id, i.vendor.as_str(), &i.business_id, &i.tenant_id);
        let mandate = i.mandate.as_str();
        let mut conn = self.conn.clone();
        // Ownership, before the script (its keys are all in the tenant's shard, so it cannot see these
        // global ones), in one round trip of single-key commands: the first intent for a business binds
        // it to its tenant, the first for a mandate id binds the id (expiring with the mandate, after the
        // retention), and the tenant joins the set that cross-tenant reads visit. If the script then
        // fails, the mandate's entry stays behind: harmless, it names the tenant the mandate would have
        // been stored in, so a retry from that tenant decides normally and a lookup by id finds no
        // mandate there (`Missing`).
        // `SET … NX GET` answers the owner there was before (nil: this call bound it). Separate
        // single-key commands, sent together on the multiplexed connection: on Redis Cluster the
        // three keys live on different shards, and a pipeline may not cross slots.
        let bind_business =
            ::redis::cmd("SET").arg(keys::business_tenant(business)).arg(tenant.as_str()).arg("NX").arg("GET").clone();
        let bind_mandate = ::redis::cmd("SET")
            .arg(keys::mandate_tenant(mandate))
            .arg(tenant.as_str())
            .arg("NX")
            .arg("PX")
            .arg(x.retention_ms.max(1))
            .arg("GET")
            .clone();
        let join_tenants = index::touch_tenant(tenant, x.now_ms, x.retention_ms);
        let (mut c1, mut c2) = (conn.clone(), conn.clone());
        let (before_business, before_mandate, ()): (Option<String>, Option<String>, ()) = futures::try_join!(
            bind_business.query_async(&mut c1),
            bind_mandate.query_async(&mut c2),
            join_tenants.query_async(&mut conn),
        )?;
        let business_tenant = Some(before_business.unwrap_or_else(|| tenant.to_string()));
        let mandate_tenant = Some(before_mandate.unwrap_or_else(|| tenant.to_string()));
        if let Err(rejection) = policy::check_ownership(i, business_tenant.as_deref(), mandate_tenant.as_deref()) {
            return Ok(Decided::Refused(rejection));
        }
        let pattern = policy::check_suspicious(i, r).err();
        let whitelist = x.whitelist.check(&i.vendor).err();
        let (pat_code, pat_reason) = pattern.as_ref().map(|p| (p.code, p.reason.as_str())).unwrap_or(("", ""));
        let (wl_code, wl_reason) = whitelist.as_ref().map(|p| (p.code, p.reason.as_str())).unwrap_or(("", ""));
        let args = scripts::DecideArgs {
            input: x,
            day: &day,
            pattern: (pat_code, pat_reason),
            whitelist: (wl_code, wl_reason),
        };
        let inv = self.scripts.decide.call(&args);
        let reply = items(inv.invoke_async(&mut conn).await?);
        match reply.first().map(text).as_deref() {
            Some("stored") => match self.record_in(&Shard::of(tenant), mandate).await? {
                Some(m) => Ok(Decided::Stored(m.decision)),
                None => Err(LedgerError::Protocol("stored mandate vanished".into())),
            },
            Some("conflict") => Ok(Decided::Refused(policy::mandate_conflict(i))),
            Some("new") if reply.len() == 4 => {
                let outcome = reply::outcome(&text(&reply[1]))?;
                if outcome == Outcome::Approved {
                    self.hold(tenant, mandate, x.now_ms.saturating_add(x.reservation_ttl_ms)).await?;
                }
                Ok(Decided::New(Decision {
                    outcome,
                    code: text(&reply[2]),
                    reason: text(&reply[3]),
                    mandate_id: mandate.to_string(),
                    agent_id: agent.clone(),
                    vendor: vendor.to_string(),
                    amount_cents: amount,
                    business_id: business.clone(),
                    tenant_id: tenant.to_string(),
                    decided_at_ms: x.now_ms,
                }))
            }
            other => Err(LedgerError::Protocol(format!("decide returned {other:?}"))),
        }
    }

    /// Mandate `id` of `tenant` now holds a reservation due at `deadline`. Like the mandate itself
    /// (the scripts), its tenant entry, which finds it, loses its expiry until the reservation is
    /// settled; and the tenant stays in the index that the expiry job visits until a retention after
    /// the deadline. Otherwise a retention as short as the reservation TTL (which `config check`
    /// allows) forgets the mandate while it holds money: the expiry job, running after the deadline,
    /// finds nothing to release, and the money stays reserved for good. (A crash between the script
    /// and this leaves the entry's expiry in place: the one window where that can still happen.)
    async fn hold(&self, tenant: &TenantId, id: &str, deadline: u64) -> Result<(), LedgerError> {
        let persist = ::redis::cmd("PERSIST").arg(keys::mandate_tenant(id)).clone();
        let index = index::hold_tenant(tenant, deadline);
        let (mut c1, mut c2) = (self.conn.clone(), self.conn.clone());
        let (_, _): (i64, i64) = futures::try_join!(persist.query_async(&mut c1), index.query_async(&mut c2))?;
        Ok(())
    }

    /// The shard holding mandate `id`, from the mandate's tenant entry.
    async fn shard_of(&self, id: &str) -> Result<Option<Shard>, LedgerError> {
        let tenant: Option<String> =
            ::redis::cmd("GET").arg(keys::mandate_tenant(id)).query_async(&mut self.conn.clone()).await?;
        tenant.map(|t| stored_tenant(&t).map(|t| Shard::of(&t))).transpose()
    }

    /// The mandate hash's fields in `shard`.
    async fn fields_in(&self, shard: &Shard, id: &str) -> Result<BTreeMap<String, String>, LedgerError> {
        let v: Value = ::redis::cmd("HGETALL").arg(shard.mandate(id)).query_async(&mut self.conn.clone()).await?;
        Ok(pairs(v))
    }

    async fn record_in(&self, shard: &Shard, id: &str) -> Result<Option<MandateRecord>, LedgerError> {
        record(&self.fields_in(shard, id).await?)
    }

    pub async fn mandate(&self, id: &str) -> Result<Option<MandateRecord>, LedgerError> {
        match self.shard_of(id).await? {
            Some(shard) => self.record_in(&shard, id).await,
            None => Ok(None),
        }
    }

    /// The mandate's shard, record and UTC day (of its budgets), from one read of the mandate hash.
    async fn stored(&self, id: &str) -> Result<Option<(Shard, MandateRecord, String)>, LedgerError> {
        let Some(shard) = self.shard_of(id).await? else { return Ok(None) };
        let fields = self.fields_in(&shard, id).await?;
        let day = fields.get("day").cloned().unwrap_or_default();
        Ok(record(&fields)?.map(|m| (shard, m, day)))
    }

    pub async fn settle(&self, id: &str, to: Settle, now_ms: u64, retention_ms: u64) -> Result<Settled, LedgerError> {
        let Some((shard, m, day)) = self.stored(id).await? else { return Ok(Settled::Missing) };
        let args = scripts::SettleArgs {
            shard: &shard,
            id,
            decision: &m.decision,
            day: &day,
            of: owners(&m),
            now_ms,
            to: to.as_str(),
            retention_ms,
        };
        let inv = self.scripts.settle.call(&args);
        let reply = items(inv.invoke_async(&mut self.conn.clone()).await?);
        let ok = reply.first().map(text).as_deref() == Some("ok");
        // The mandate may be at the end of its retention already: then it is gone at once, and the
        // reply is the record as settled.
        let after = self.record_in(&shard, id).await?;
        if let (true, Some(keep)) = (ok, reply.get(2)) {
            // The mandate is kept for the rest of its retention now (settle.lua); so is its tenant entry.
            let keep: u64 = text(keep).parse().unwrap_or(retention_ms).max(1);
            let _: i64 = ::redis::cmd("PEXPIRE")
                .arg(keys::mandate_tenant(id))
                .arg(keep)
                .query_async(&mut self.conn.clone())
                .await?;
        }
        let after = match after {
            Some(r) => r,
            None if ok => MandateRecord { status: to.as_str().to_string(), ..m },
            None => m,
        };
        Ok(match reply.first().map(text).as_deref() {
            Some("ok") => Settled::Done(after),
            Some("same") => Settled::Already(after),
            Some("bad") => Settled::Refused(after),
            _ => Settled::Missing,
        })
    }

    pub async fn review(
        &self,
        id: &str,
        approve: bool,
        limits: Limits,
        now_ms: u64,
        keep: &Lifetimes,
    ) -> Result<Settled, LedgerError> {
        let retention_ms = keep.retention_ms;
        let Some((shard, m, _held_on)) = self.stored(id).await? else { return Ok(Settled::Missing) };
        // The budgets of the day of the review, not of the day the intent was held (Money 5).
        let day = policy::utc_day(now_ms);
        let args = scripts::ReviewArgs {
            shard: &shard,
            id,
            decision: &m.decision,
            day: &day,
            of: owners(&m),
            now_ms,
            approve,
            limits,
            reservation_ttl_ms: keep.reservation_ttl_ms,
            retention_ms,
            check_task_after_ms: keep.check_task_after_ms,
        };
        let inv = self.scripts.review.call(&args);
        let reply = items(inv.invoke_async(&mut self.conn.clone()).await?);
        let after = self.record_in(&shard, id).await?.unwrap_or(m);
        let ok = reply.first().map(text).as_deref() == Some("ok");
        if ok && after.status == "approved" {
            // The script keeps the mandate until its reservation is settled; its tenant entry (which
            // finds it) and the tenant's place in the index (which finds its reservation) must live as
            // long, or the reservation could not be settled or expired.
            let tenant = stored_tenant(&after.decision.tenant_id)?;
            self.hold(&tenant, id, now_ms.saturating_add(keep.reservation_ttl_ms)).await?;
            let () = index::touch_tenant(&tenant, now_ms, retention_ms).query_async(&mut self.conn.clone()).await?;
        }
        Ok(match reply.first().map(text).as_deref() {
            Some("ok") => Settled::Done(after),
            Some("bad") => Settled::Refused(after),
            _ => Settled::Missing,
        })
    }

    /// Every tenant that asked for money, sorted.
    async fn tenants(&self) -> Result<Vec<TenantId>, LedgerError> {
        let t: Vec<String> = index::tenants_cmd().query_async(&mut self.conn.clone()).await?;
        let mut t: Vec<TenantId> = t.iter().map(|t| stored_tenant(t)).collect::<Result<_, _>>()?;
        t.sort();
        Ok(t)
    }

    /// One command per tenant (built by `cmd` for the tenant's shard), sent together: the replies in
    /// the order of `tenants`. Separate commands, not a pipeline: on Redis Cluster the tenants' shards
    /// live on different nodes.
    async fn per_tenant(
        &self,
        tenants: &[TenantId],
        cmd: impl Fn(&Shard) -> ::redis::Cmd,
    ) -> Result<Vec<Value>, LedgerError> {
        let calls = tenants.iter().map(|t| {
            let c = cmd(&Shard::of(t));
            let mut conn = self.conn.clone();
            async move { c.query_async::<Value>(&mut conn).await }
        });
        Ok(futures::future::try_join_all(calls).await?)
    }

    pub async fn reviews(&self) -> Result<Vec<MandateRecord>, LedgerError> {
        let tenants = self.tenants().await?;
        let replies = self.per_tenant(&tenants, |s| {
            let mut c = ::redis::cmd("ZRANGE");
            c.arg(s.reviews()).arg(0).arg(-1).arg("WITHSCORES");
            c
        });
        let mut held: Vec<(u64, String, &TenantId)> = Vec::new();
        for (t, v) in tenants.iter().zip(replies.await?) {
            held.extend(scored(v).into_iter().map(|(id, at)| (at, id, t)));
        }
        held.sort();
        let mut out = Vec::new();
        for (_, id, t) in held {
            if let Some(m) = self.record_in(&Shard::of(t), &id).await? {
                out.push(m);
            }
        }
        Ok(out)
    }

    pub async fn due_reservations(&self, now_ms: u64, limit: usize) -> Result<Vec<String>, LedgerError> {
        let tenants = self.tenants().await?;
        let replies = self.per_tenant(&tenants, |s| {
            let mut c = ::redis::cmd("ZRANGEBYSCORE");
            c.arg(s.reservations()).arg("-inf").arg(now_ms).arg("WITHSCORES").arg("LIMIT").arg(0).arg(limit);
            c
        });
        let mut due: Vec<(u64, String)> =
            replies.await?.into_iter().flat_map(scored).map(|(id, deadline)| (deadline, id)).collect();
        due.sort();
        Ok(due.into_iter().take(limit).map(|(_, id)| id).collect())
    }

    pub async fn task_reservations(&self, tenant: &TenantId, task: &TaskId) -> Result<Vec<String>, LedgerError> {
        let key = Shard::of(tenant).task(&task.to_string());
        Ok(::redis::cmd("SMEMBERS").arg(key).query_async(&mut self.conn.clone()).await?)
    }

    pub async fn due_tasks(&self, now_ms: u64, limit: usize) -> Result<Vec<(TenantId, TaskId)>, LedgerError> {
        let tenants = self.tenants().await?;
        let replies = self.per_tenant(&tenants, |s| {
            let mut c = ::redis::cmd("ZRANGEBYSCORE");
            c.arg(s.open_tasks()).arg("-inf").arg(now_ms).arg("WITHSCORES").arg("LIMIT").arg(0).arg(limit);
            c
        });
        let mut due: Vec<(u64, &TenantId, TaskId)> = Vec::new();
        for (t, v) in tenants.iter().zip(replies.await?) {
            for (id, at) in scored(v) {
                // Written from a TaskId; anything else was not written by the ledger and is skipped.
                if let Ok(task) = id.parse::<TaskId>() {
                    due.push((at, t, task));
                }
            }
        }
        due.sort();
        Ok(due.into_iter().take(limit).map(|(_, t, task)| (t.clone(), task)).collect())
    }

    pub async fn postpone_task(&self, tenant: &TenantId, task: &TaskId, at_ms: u64) -> Result<(), LedgerError> {
        let key = Shard::of(tenant).open_tasks();
        let mut c = self.conn.clone();
        let _: i64 =
            ::redis::cmd("ZADD").arg(key).arg("XX").arg(at_ms).arg(task.to_string()).query_async(&mut c).await?;
        Ok(())
    }

    /// Removes the task, then puts it back if a reservation joined its index meanwhile (a decision
    /// adds the task with `ZADD NX` after adding the mandate, so either that or this re-adds it).
    pub async fn forget_task(&self, tenant: &TenantId, task: &TaskId) -> Result<(), LedgerError> {
        let (shard, id) = (Shard::of(tenant), task.to_string());
        let mut c = self.conn.clone();
        let _: i64 = ::redis::cmd("ZREM").arg(shard.open_tasks()).arg(&id).query_async(&mut c).await?;
        let left: i64 = ::redis::cmd("SCARD").arg(shard.task(&id)).query_async(&mut c).await?;
        if left > 0 {
            let now = crate::task::now_ms();
            let _: i64 =
                ::redis::cmd("ZADD").arg(shard.open_tasks()).arg("NX").arg(now).arg(&id).query_async(&mut c).await?;
        }
        Ok(())
    }

    pub async fn usage(&self, key: &str) -> Result<Usage, LedgerError> {
        let (r, c): (Option<i64>, Option<i64>) =
            ::redis::cmd("HMGET").arg(key).arg("reserved").arg("captured").query_async(&mut self.conn.clone()).await?;
        Ok(Usage { reserved: r.unwrap_or(0).max(0) as u64, captured: c.unwrap_or(0).max(0) as u64 })
    }

    pub async fn known_parties(&self) -> Result<BTreeMap<TenantId, Vec<String>>, LedgerError> {
        let tenants = self.tenants().await?;
        let replies = self.per_tenant(&tenants, index::businesses_cmd);
        Ok(tenants
            .iter()
            .cloned()
            .zip(replies.await?)
            .map(|(t, v)| {
                let mut b: Vec<String> = items(v).iter().map(text).collect();
                b.sort();
                (t, b)
            })
            .collect())
    }

    pub async fn business_tenant(&self, business: &str) -> Result<Option<String>, LedgerError> {
        Ok(::redis::cmd("GET").arg(keys::business_tenant(business)).query_async(&mut self.conn.clone()).await?)
    }

    pub async fn business_stats(&self, business: &str) -> Result<BusinessStats, LedgerError> {
        let mut conn = self.conn.clone();
        let m = match self.business_tenant(business).await? {
            Some(t) => {
                let shard = Shard::of(&stored_tenant(&t)?);
                pairs(::redis::cmd("HGETALL").arg(shard.business_stats(business)).query_async(&mut conn).await?)
            }
            None => BTreeMap::new(),
        };
        let revenue: Option<u64> = ::redis::cmd("GET").arg(keys::revenue(business)).query_async(&mut conn).await?;
        let mut s = BusinessStats {
            approved: num(&m, "approved"),
            denied: num(&m, "denied"),
            needs_review: num(&m, "needs_review"),
            reserved_cents: num(&m, "reserved"),
            captured_cents: num(&m, "captured"),
            released_cents: num(&m, "released"),
            projected_revenue_cents: revenue,
            ..BusinessStats::default()
        };
        for (k, v) in &m {
            let n = v.parse::<i64>().unwrap_or(0).max(0) as u64;
            if let Some(vendor) = k.strip_prefix("v:") {
                s.captured_by_vendor.insert(vendor.to_string(), n);
            } else if let Some(agent) = k.strip_prefix("a:") {
                s.captured_by_agent.insert(agent.to_string(), n);
            } else if let Some(c) = k.strip_prefix("d:") {
                s.denials_by_code.insert(c.to_string(), n);
            }
        }
        Ok(s)
    }

    pub async fn set_projected_revenue(&self, business: &str, cents: u64) -> Result<(), LedgerError> {
        let _: () =
            ::redis::cmd("SET").arg(keys::revenue(business)).arg(cents).query_async(&mut self.conn.clone()).await?;
        Ok(())
    }

    /// The day's log of one tenant, or of every tenant merged by time.
    pub async fn log(&self, tenant: Option<&TenantId>, day: &str, limit: usize) -> Result<Vec<LogEntry>, LedgerError> {
        let Some((start, end)) = day_bounds(day) else { return Ok(Vec::new()) };
        let tenants = match tenant {
            Some(t) => vec![t.clone()],
            None => self.tenants().await?,
        };
        let replies = self.per_tenant(&tenants, |s| {
            let mut c = ::redis::cmd("XRANGE");
            c.arg(s.log()).arg(start).arg(format!("({end}")).arg("COUNT").arg(limit.min(i64::MAX as usize));
            c
        });
        let mut all: Vec<((u64, u64), usize, LogEntry)> = Vec::new();
        for (n, v) in replies.await?.into_iter().enumerate() {
            all.extend(log_entries(v).into_iter().map(|(id, e)| (id, n, e)));
        }
        all.sort_by_key(|(id, n, _)| (*id, *n));
        Ok(all.into_iter().take(limit).map(|(_, _, e)| e).collect())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn day_bounds_match_utc_days() {
        assert_eq!(super::day_bounds("1970-01-01"), Some((0, 86_400_000)));
        assert_eq!(super::day_bounds("2024-02-29").map(|b| b.0), Some(1_709_164_800_000));
        assert_eq!(super::day_bounds("2024-13-01"), None);
        assert_eq!(super::day_bounds("nope"), None);
    }
}
