//! The ledger on Redis: every money operation is one Lua script (see `scripts.rs`).

use super::scripts::LedgerScripts;
use super::*;
use crate::payments::policy::{self, Limits};
use crate::payments::types::{code, Decision, Outcome, Rejection};
use ::redis::aio::ConnectionManager;
use ::redis::Value;
use std::sync::Arc;

#[derive(Clone)]
pub struct RedisLedger {
    conn: ConnectionManager,
    scripts: Arc<LedgerScripts>,
}

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        _ => String::new(),
    }
}

fn items(v: Value) -> Vec<Value> {
    match v {
        Value::Array(a) | Value::Set(a) => a,
        Value::Map(m) => m.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        _ => Vec::new(),
    }
}

fn pairs(v: Value) -> BTreeMap<String, String> {
    items(v)
        .chunks(2)
        .filter_map(|c| match c {
            [k, v] => Some((text(k), text(v))),
            _ => None,
        })
        .collect()
}

fn outcome(s: &str) -> Result<Outcome, LedgerError> {
    serde_json::from_value(serde_json::Value::String(s.to_string()))
        .map_err(|_| LedgerError::Protocol(format!("unknown outcome `{s}`")))
}

fn num(m: &BTreeMap<String, String>, k: &str) -> u64 {
    m.get(k).and_then(|v| v.parse::<i64>().ok()).map(|v| v.max(0) as u64).unwrap_or(0)
}

fn record(m: BTreeMap<String, String>) -> Result<Option<MandateRecord>, LedgerError> {
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
            amount_cents: num(&m, "amount_cents"),
            business_id: get("business_id"),
            tenant_id: get("tenant_id"),
            decided_at_ms: num(&m, "decided_at_ms"),
        },
        status: get("status"),
        purpose: get("purpose"),
    }))
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

impl RedisLedger {
    pub async fn connect(url: &str) -> Result<Self, LedgerError> {
        let client = ::redis::Client::open(url)?;
        let cfg = ::redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(std::time::Duration::from_secs(2)))
            .set_response_timeout(Some(std::time::Duration::from_secs(5)));
        let conn = ConnectionManager::new_with_config(client, cfg).await?;
        Ok(RedisLedger { conn, scripts: Arc::new(LedgerScripts::load()) })
    }

    pub async fn decide(&self, x: &DecideInput<'_>) -> Result<Decided, LedgerError> {
        let i = x.intent;
        let r = x.rules;
        let f = &r.fraud;
        let amount = i.amount.get();
        let day = policy::utc_day(x.now_ms);
        let (agent, vendor, business, tenant) = (&i.agent_id, i.vendor.as_str(), &i.business_id, &i.tenant_id);
        let pattern = policy::check_suspicious(i, r).err();
        let whitelist = x.whitelist.check(&i.vendor).err();
        let (pat_code, pat_reason) = pattern.as_ref().map(|p| (p.code, p.reason.as_str())).unwrap_or(("", ""));
        let (wl_code, wl_reason) = whitelist.as_ref().map(|p| (p.code, p.reason.as_str())).unwrap_or(("", ""));
        let mut inv = self.scripts.decide.prepare_invoke();
        inv.key(keys::mandate(i.mandate.as_str()))
            .key(keys::agent_window(agent))
            .key(keys::near_window(business, vendor))
            .key(keys::approved_amounts(agent, vendor))
            .key(keys::used_agent(agent, &day))
            .key(keys::used_business(business))
            .key(keys::used_tenant(tenant, &day))
            .key(keys::RESERVATIONS)
            .key(keys::REVIEWS)
            .key(keys::LOG)
            .key(keys::business_stats(business))
            .key(keys::BUSINESSES)
            .key(keys::TENANTS);
        inv.arg(x.now_ms)
            .arg(policy::fingerprint(i))
            .arg(amount)
            .arg(i.mandate.as_str())
            .arg(agent)
            .arg(vendor)
            .arg(business)
            .arg(tenant)
            .arg(&i.reason)
            .arg(&day)
            .arg(pat_code)
            .arg(pat_reason)
            .arg(wl_code)
            .arg(wl_reason)
            .arg(f.velocity_window_ms)
            .arg(f.velocity_max_count)
            .arg(f.velocity_max_sum_cents)
            .arg(f.structuring_window_ms)
            .arg(policy::near_threshold_floor(r))
            .arg(r.auto_approve_cents)
            .arg(f.structuring_min_count)
            .arg(policy::hundredths(f.anomaly_factor))
            .arg(f.anomaly_min_samples)
            .arg(f.anomaly_history.max(1))
            .arg(r.review_above_cents)
            .arg(x.limits.agent_daily_cents)
            .arg(x.limits.business_total_cents)
            .arg(x.limits.tenant_daily_cents)
            .arg(x.reservation_ttl_ms)
            .arg(x.retention_ms);
        let reply = items(inv.invoke_async(&mut self.conn.clone()).await?);
        match reply.first().map(text).as_deref() {
            Some("stored") => match self.mandate(i.mandate.as_str()).await? {
                Some(m) => Ok(Decided::Stored(m.decision)),
                None => Err(LedgerError::Protocol("stored mandate vanished".into())),
            },
            Some("conflict") => Ok(Decided::Conflict(Rejection::new(
                code::MANDATE_CONFLICT,
                format!("mandate {} was already used with different details", i.mandate.as_str()),
            ))),
            Some("new") if reply.len() == 4 => Ok(Decided::New(Decision {
                outcome: outcome(&text(&reply[1]))?,
                code: text(&reply[2]),
                reason: text(&reply[3]),
                mandate_id: i.mandate.as_str().to_string(),
                agent_id: agent.clone(),
                vendor: vendor.to_string(),
                amount_cents: amount,
                business_id: business.clone(),
                tenant_id: tenant.clone(),
                decided_at_ms: x.now_ms,
            })),
            other => Err(LedgerError::Protocol(format!("decide returned {other:?}"))),
        }
    }

    pub async fn mandate(&self, id: &str) -> Result<Option<MandateRecord>, LedgerError> {
        let v: Value = ::redis::cmd("HGETALL").arg(keys::mandate(id)).query_async(&mut self.conn.clone()).await?;
        record(pairs(v))
    }

    /// The usage keys a mandate's reservation counts against.
    fn usage_keys(m: &MandateRecord, day: &str) -> [String; 3] {
        let d = &m.decision;
        [keys::used_agent(&d.agent_id, day), keys::used_business(&d.business_id), keys::used_tenant(&d.tenant_id, day)]
    }

    /// The mandate and the usage keys (agent/day, business, tenant/day) its reservation counts against,
    /// from one read of the mandate hash.
    async fn with_usage_keys(&self, id: &str) -> Result<Option<(MandateRecord, [String; 3])>, LedgerError> {
        let v: Value = ::redis::cmd("HGETALL").arg(keys::mandate(id)).query_async(&mut self.conn.clone()).await?;
        let fields = pairs(v);
        let day = fields.get("day").cloned().unwrap_or_default();
        Ok(record(fields)?.map(|m| {
            let keys = Self::usage_keys(&m, &day);
            (m, keys)
        }))
    }

    pub async fn settle(&self, id: &str, to: Settle, now_ms: u64, retention_ms: u64) -> Result<Settled, LedgerError> {
        let Some((m, [ua, ub, ut])) = self.with_usage_keys(id).await? else { return Ok(Settled::Missing) };
        let reply = items(
            self.scripts
                .settle
                .key(keys::mandate(id))
                .key(ua)
                .key(ub)
                .key(ut)
                .key(keys::RESERVATIONS)
                .key(keys::LOG)
                .key(keys::business_stats(&m.decision.business_id))
                .arg(now_ms)
                .arg(to.as_str())
                .arg(retention_ms)
                .invoke_async(&mut self.conn.clone())
                .await?,
        );
        let after = self.mandate(id).await?.unwrap_or(m);
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
        reservation_ttl_ms: u64,
        retention_ms: u64,
    ) -> Result<Settled, LedgerError> {
        let Some((m, [ua, ub, ut])) = self.with_usage_keys(id).await? else { return Ok(Settled::Missing) };
        let reply = items(
            self.scripts
                .review
                .key(keys::mandate(id))
                .key(ua)
                .key(ub)
                .key(ut)
                .key(keys::RESERVATIONS)
                .key(keys::REVIEWS)
                .key(keys::LOG)
                .key(keys::business_stats(&m.decision.business_id))
                .arg(now_ms)
                .arg(if approve { "1" } else { "0" })
                .arg(limits.agent_daily_cents)
                .arg(limits.business_total_cents)
                .arg(limits.tenant_daily_cents)
                .arg(reservation_ttl_ms)
                .arg(retention_ms)
                .invoke_async(&mut self.conn.clone())
                .await?,
        );
        let after = self.mandate(id).await?.unwrap_or(m);
        Ok(match reply.first().map(text).as_deref() {
            Some("ok") => Settled::Done(after),
            Some("bad") => Settled::Refused(after),
            _ => Settled::Missing,
        })
    }

    pub async fn reviews(&self) -> Result<Vec<MandateRecord>, LedgerError> {
        let ids: Vec<String> =
            ::redis::cmd("ZRANGE").arg(keys::REVIEWS).arg(0).arg(-1).query_async(&mut self.conn.clone()).await?;
        let mut out = Vec::new();
        for id in ids {
            if let Some(m) = self.mandate(&id).await? {
                out.push(m);
            }
        }
        Ok(out)
    }

    pub async fn due_reservations(&self, now_ms: u64, limit: usize) -> Result<Vec<String>, LedgerError> {
        Ok(::redis::cmd("ZRANGEBYSCORE")
            .arg(keys::RESERVATIONS)
            .arg("-inf")
            .arg(now_ms)
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut self.conn.clone())
            .await?)
    }

    pub async fn usage(&self, key: &str) -> Result<Usage, LedgerError> {
        let (r, c): (Option<i64>, Option<i64>) =
            ::redis::cmd("HMGET").arg(key).arg("reserved").arg("captured").query_async(&mut self.conn.clone()).await?;
        Ok(Usage { reserved: r.unwrap_or(0).max(0) as u64, captured: c.unwrap_or(0).max(0) as u64 })
    }

    pub async fn known_parties(&self) -> Result<(Vec<String>, Vec<String>), LedgerError> {
        let mut conn = self.conn.clone();
        let mut b: Vec<String> = ::redis::cmd("SMEMBERS").arg(keys::BUSINESSES).query_async(&mut conn).await?;
        let mut t: Vec<String> = ::redis::cmd("SMEMBERS").arg(keys::TENANTS).query_async(&mut conn).await?;
        b.sort();
        t.sort();
        Ok((b, t))
    }

    pub async fn business_stats(&self, business: &str) -> Result<BusinessStats, LedgerError> {
        let mut conn = self.conn.clone();
        let m = pairs(::redis::cmd("HGETALL").arg(keys::business_stats(business)).query_async(&mut conn).await?);
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

    pub async fn log(&self, day: &str, limit: usize) -> Result<Vec<LogEntry>, LedgerError> {
        let Some((start, end)) = day_bounds(day) else { return Ok(Vec::new()) };
        let v: Value = ::redis::cmd("XRANGE")
            .arg(keys::LOG)
            .arg(start)
            .arg(format!("({end}"))
            .arg("COUNT")
            .arg(limit.min(i64::MAX as usize))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(items(v)
            .into_iter()
            .filter_map(|e| {
                let mut it = items(e).into_iter();
                let id = text(&it.next()?);
                let f = pairs(it.next()?);
                let get = |k: &str| f.get(k).cloned().unwrap_or_default();
                Some(LogEntry {
                    at_ms: id.split('-').next().and_then(|s| s.parse().ok()).unwrap_or(0),
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
                })
            })
            .collect())
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
