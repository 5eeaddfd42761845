//! Check 5, money: every usage hash within its limit and equal to what its mandates hold; one
//! decision and at most one approval per mandate in the decision log.

use super::store::{scan, xrange_all};
use super::CheckReport;
use crate::record::Limits;
use genesis_actors::payments::ledger::keys::{self, Shard};
use redis::aio::MultiplexedConnection;
use std::collections::{BTreeMap, BTreeSet, HashMap};

#[derive(Default)]
struct Usage {
    reserved: i64,
    captured: i64,
}

pub(super) async fn money(c: &mut MultiplexedConnection, limits: Limits, r: &mut CheckReport) -> anyhow::Result<()> {
    // The ledger's tenants, each a shard of its own (the checker may SCAN: it runs on one Redis, offline).
    let mut tenants: Vec<String> = redis::cmd("ZRANGE").arg(keys::TENANTS).arg(0).arg(-1).query_async(c).await?;
    tenants.sort();
    let shards: Vec<Shard> = tenants
        .iter()
        .map(|t| genesis_actors::tenant::TenantId::parse(t).map(|t| Shard::of(&t)))
        .collect::<Result<_, _>>()?;

    // Usage hashes against the limits.
    let mut used: BTreeMap<String, Usage> = BTreeMap::new();
    let mut max_usage: BTreeMap<&str, (i64, String)> = BTreeMap::new();
    for shard in &shards {
        for key in scan(c, &format!("{}used:*", shard.prefix())).await? {
            let (reserved, captured): (Option<i64>, Option<i64>) =
                redis::cmd("HMGET").arg(&key).arg("reserved").arg("captured").query_async(c).await?;
            let (reserved, captured) = (reserved.unwrap_or(0), captured.unwrap_or(0));
            let rest = key.trim_start_matches(shard.prefix()).trim_start_matches("used:");
            let (kind, limit) = match rest.split(':').next() {
                Some("agent") => ("agent/day", limits.agent_daily_cents),
                Some("business") => ("business", limits.business_total_cents),
                Some("tenant") => ("tenant/day", limits.tenant_daily_cents),
                _ => {
                    r.violate("5 money", format!("unknown usage key {key}"));
                    continue;
                }
            };
            r.usage_hashes += 1;
            let total = reserved + captured;
            if reserved < 0 || captured < 0 || total > limit as i64 {
                r.violate(
                    "5 money",
                    format!(
                        "{key}: reserved {reserved} + captured {captured} = {total} (limit {limit}, none negative)"
                    ),
                );
            }
            let m = max_usage.entry(kind).or_insert((i64::MIN, String::new()));
            if total > m.0 {
                *m = (total, format!("{total} of {limit} cents ({key})"));
            }
            used.insert(key, Usage { reserved, captured });
        }
    }
    r.max_usage = max_usage.into_iter().map(|(k, (_, v))| (k.to_string(), v)).collect();

    // Mandates: usage must equal what the mandates hold.
    let mut expect: BTreeMap<String, Usage> = BTreeMap::new();
    let mut approved_mandates: BTreeSet<String> = BTreeSet::new();
    for shard in &shards {
        for key in scan(c, &format!("{}mandate:*", shard.prefix())).await? {
            let m: HashMap<String, String> = redis::cmd("HGETALL").arg(&key).query_async(c).await?;
            r.mandates += 1;
            let get = |k: &str| m.get(k).cloned().unwrap_or_default();
            let status = get("status");
            *r.mandates_by_status.entry(status.clone()).or_default() += 1;
            if get("outcome") == "denied" {
                *r.denied_by_code.entry(get("code")).or_default() += 1;
            }
            if get("outcome") == "approved" {
                approved_mandates.insert(get("mandate_id"));
            }
            let amount: i64 = get("amount_cents").parse().unwrap_or(0);
            for h in shard.budgets(&get("agent_id"), &get("business_id"), &get("day")) {
                let u = expect.entry(h).or_default();
                match status.as_str() {
                    "approved" => u.reserved += amount,
                    "captured" => u.captured += amount,
                    _ => {}
                }
            }
        }
    }
    let names: BTreeSet<&String> = used.keys().chain(expect.keys()).collect();
    for name in names {
        let (a, b) = (used.get(name), expect.get(name));
        let (ur, uc) = a.map(|u| (u.reserved, u.captured)).unwrap_or((0, 0));
        let (er, ec) = b.map(|u| (u.reserved, u.captured)).unwrap_or((0, 0));
        if (ur, uc) != (er, ec) {
            r.violate(
                "5 money",
                format!(
                    "usage {name}: reserved {ur} / captured {uc}, but its mandates hold reserved {er} / captured {ec}"
                ),
            );
        }
    }

    // The decision log: one decision and at most one approval per mandate.
    let mut decided: HashMap<String, usize> = HashMap::new();
    let mut approvals: HashMap<String, usize> = HashMap::new();
    let mut log = Vec::new();
    for shard in &shards {
        log.extend(xrange_all(c, &shard.log()).await?);
    }
    for (_, f) in log {
        let mandate = f.get("mandate_id").cloned().unwrap_or_default();
        let event = f.get("event").map(String::as_str).unwrap_or("");
        if event == "decided" {
            r.decided_events += 1;
            *decided.entry(mandate.clone()).or_default() += 1;
        }
        if matches!(event, "decided" | "reviewed") && f.get("outcome").map(String::as_str) == Some("approved") {
            r.approval_events += 1;
            *approvals.entry(mandate).or_default() += 1;
        }
    }
    let mut multi: Vec<_> = decided.iter().filter(|(_, n)| **n > 1).collect();
    multi.sort();
    for (m, n) in multi {
        r.violate("5 money", format!("mandate {m}: {n} `decided` events (one mandate, one decision)"));
    }
    let mut twice: Vec<_> = approvals.iter().filter(|(_, n)| **n > 1).collect();
    twice.sort();
    for (m, n) in twice {
        r.violate("5 money", format!("mandate {m}: approved {n} times in the decision log"));
    }
    for m in &approved_mandates {
        if !approvals.contains_key(m) {
            r.violate("5 money", format!("mandate {m}: approved, but no approval in the decision log"));
        }
    }
    Ok(())
}
