//! The ledger's Lua scripts. Each money operation is one script, so any number of nodes sharing one
//! Redis see one serial order of decisions: no two can both take the last cents of a budget, and a
//! mandate is decided once. A script touches only the keys it is given, and every one of them is in
//! the shard of one tenant ([`decide_keys`], [`settle_keys`], [`review_keys`]): one hash slot per
//! script, Cluster-safe; different tenants' decisions run on whichever shards hold their slots.
//!
//! `DECIDE` mirrors `policy::evaluate` step by step; the stateless verdicts (suspicious pattern,
//! whitelist) are computed in Rust and passed in, the stateful ones (idempotency, velocity,
//! structuring, anomaly, budgets) are computed here. `tests/payments.rs` runs one table of scenarios
//! against this and the in-memory ledger to keep the two identical.

use super::keys::Shard;
use crate::payments::types::{Decision, ValidIntent};
use redis::Script;

/// The KEYS of [`DECIDE`] for an intent (`day`: the UTC day of the decision), all in its tenant's shard.
pub fn decide_keys(i: &ValidIntent, day: &str) -> [String; 12] {
    let s = Shard::of(&i.tenant_id);
    let (agent, vendor, business) = (i.agent_id.as_str(), i.vendor.as_str(), i.business_id.as_str());
    let [ua, ub, ut] = s.budgets(agent, business, day);
    [
        s.mandate(i.mandate.as_str()),
        s.agent_window(agent),
        s.near_window(business, vendor),
        s.approved_amounts(agent, vendor),
        ua,
        ub,
        ut,
        s.reservations(),
        s.reviews(),
        s.log(),
        s.business_stats(business),
        s.businesses(),
    ]
}

/// The KEYS of [`SETTLE`] for mandate `id` stored in `shard` with decision `d` of UTC day `day`.
pub fn settle_keys(shard: &Shard, id: &str, d: &Decision, day: &str) -> [String; 7] {
    let [ua, ub, ut] = shard.budgets(&d.agent_id, &d.business_id, day);
    [shard.mandate(id), ua, ub, ut, shard.reservations(), shard.log(), shard.business_stats(&d.business_id)]
}

/// The KEYS of [`REVIEW`] for mandate `id` stored in `shard` with decision `d`; `day` is the UTC day
/// of the review, whose budgets an approval is checked against and charged to.
pub fn review_keys(shard: &Shard, id: &str, d: &Decision, day: &str) -> [String; 8] {
    let [ua, ub, ut] = shard.budgets(&d.agent_id, &d.business_id, day);
    let (ex, rv, log, sb) = (shard.reservations(), shard.reviews(), shard.log(), shard.business_stats(&d.business_id));
    [shard.mandate(id), ua, ub, ut, ex, rv, log, sb]
}

/// KEYS ([`decide_keys`]): mandate, agent window, near-threshold window, approved amounts, used agent/day,
///       used business, used tenant/day, reservations, reviews, log, business stats, business index (zset).
/// ARGV: now, fingerprint, amount, mandate, agent, vendor, business, tenant, reason, day,
///       pattern_code, pattern_reason, whitelist_code, whitelist_reason,
///       velocity_window, velocity_max_count, velocity_max_sum,
///       structuring_window, near_low, auto_approve, structuring_min_count,
///       anomaly_factor (hundredths), anomaly_min_samples, anomaly_history, review_above,
///       limit_agent, limit_business, limit_tenant, reservation_ttl, retention
/// Returns {'stored'} | {'conflict'} | {'new', outcome, code, reason}.
const DECIDE: &str = r#"
local M, WA, WN, AN, UA, UB, UT, EX, RV, LOG, SB = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11]
local now, fp, amount, mandate = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), ARGV[4]
local agent, vendor, business, tenant, reason, day = ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local pat_code, pat_reason, wl_code, wl_reason = ARGV[11], ARGV[12], ARGV[13], ARGV[14]
local vwin, vmax_n, vmax_sum = tonumber(ARGV[15]), tonumber(ARGV[16]), tonumber(ARGV[17])
local swin, near_low, auto, smin = tonumber(ARGV[18]), tonumber(ARGV[19]), tonumber(ARGV[20]), tonumber(ARGV[21])
local afactor, amin, ahist = tonumber(ARGV[22]), tonumber(ARGV[23]), tonumber(ARGV[24])
local review_above = tonumber(ARGV[25])
local lim_a, lim_b, lim_t = tonumber(ARGV[26]), tonumber(ARGV[27]), tonumber(ARGV[28])
local ttl, retention = tonumber(ARGV[29]), tonumber(ARGV[30])

-- 1. idempotency
local efp = redis.call('HGET', M, 'fingerprint')
if efp then
  if efp == fp then return {'stored'} end
  return {'conflict'}
end

local function amount_of(member) return tonumber(string.match(member, '|(%d+)$')) or 0 end
local function used(k)
  local r = redis.call('HMGET', k, 'reserved', 'captured')
  return (tonumber(r[1]) or 0) + (tonumber(r[2]) or 0)
end

-- windows as they were before this intent (the agent window is counted first and read only when the
-- count is within the limit, so an agent flooding intents cannot make every decision expensive)
redis.call('ZREMRANGEBYSCORE', WA, '-inf', now - vwin)
local recent_n = redis.call('ZCARD', WA)
local near = amount >= near_low and amount < auto
local near_recent = {}
if near then
  redis.call('ZREMRANGEBYSCORE', WN, '-inf', now - swin)
  near_recent = redis.call('ZRANGE', WN, 0, -1)
end

local function evaluate()
  -- 2. fraud
  if pat_code ~= '' then return 'denied', pat_code, pat_reason end
  local n = recent_n + 1
  if n > vmax_n then
    return 'denied', 'velocity_count', string.format('%d intents from agent %s within %d ms (limit %d)', n, agent, vwin, vmax_n)
  end
  local sum = amount
  for _, m in ipairs(redis.call('ZRANGE', WA, 0, -1)) do sum = sum + amount_of(m) end
  if sum > vmax_sum then
    return 'denied', 'velocity_sum', string.format('%d cents requested by agent %s within %d ms (limit %d)', sum, agent, vwin, vmax_sum)
  end
  if near then
    local c, s = 1, amount
    for _, m in ipairs(near_recent) do c = c + 1; s = s + amount_of(m) end
    if c >= smin and s > auto then
      return 'denied', 'structuring', string.format('%d intents just under the auto-approve threshold to %s from business %s sum to %d cents (threshold %d)', c, vendor, business, s, auto)
    end
  end
  local samples = redis.call('LRANGE', AN, 0, ahist - 1)
  local k = #samples
  if k >= 1 and k >= amin then
    local xs = {}
    for i, v in ipairs(samples) do xs[i] = tonumber(v) end
    table.sort(xs)
    -- med2 = 2 x median, in integers (policy::check_anomaly); afactor is the factor in hundredths
    local med2
    if k % 2 == 1 then med2 = 2 * xs[(k + 1) / 2] else med2 = xs[k / 2] + xs[k / 2 + 1] end
    if amount * 200 > afactor * med2 then
      return 'denied', 'amount_anomaly', string.format('amount %d cents is more than %g x the median (%g) of recent payments to this vendor', amount, afactor / 100, med2 / 2)
    end
  end
  -- 3. whitelist
  if wl_code ~= '' then return 'denied', wl_code, wl_reason end
  -- 4. review
  if amount > review_above then
    return 'needs_review', 'needs_review', string.format('%d cents is above the review threshold of %d', amount, review_above)
  end
  -- 5. budgets
  local ua, ub, ut = used(UA), used(UB), used(UT)
  if ua + amount > lim_a then
    return 'denied', 'over_agent_daily_budget', string.format('agent %s has used %d of %d cents today in tenant %s', agent, ua, lim_a, tenant)
  end
  if ub + amount > lim_b then
    return 'denied', 'over_business_budget', string.format('business %s has used %d of %d cents', business, ub, lim_b)
  end
  if ut + amount > lim_t then
    return 'denied', 'over_tenant_daily_budget', string.format('tenant %s has used %d of %d cents today', tenant, ut, lim_t)
  end
  return 'approved', 'approved', 'all checks passed; reserved'
end

local outcome, code, why = evaluate()
-- the tenant's businesses, by last decision: idle ones leave, and the index expires with the tenant
redis.call('ZADD', KEYS[12], now, business)
redis.call('ZREMRANGEBYSCORE', KEYS[12], '-inf', string.format('(%d', now - retention))
redis.call('PEXPIRE', KEYS[12], retention)

-- every evaluated intent counts toward the windows
local member = mandate .. '|' .. amount
redis.call('ZADD', WA, now, member)
redis.call('PEXPIRE', WA, vwin + 60000)
if near then
  redis.call('ZADD', WN, now, member)
  redis.call('PEXPIRE', WN, swin + 60000)
end

local status = outcome
if outcome == 'approved' then
  for _, k in ipairs({UA, UB, UT}) do redis.call('HINCRBY', k, 'reserved', amount) end
  redis.call('PEXPIRE', UA, 3 * 86400000)
  redis.call('PEXPIRE', UT, 3 * 86400000)
  redis.call('ZADD', EX, now + ttl, mandate)
  redis.call('LPUSH', AN, amount)
  redis.call('LTRIM', AN, 0, ahist - 1)
  redis.call('HINCRBY', SB, 'reserved', amount)
elseif outcome == 'needs_review' then
  redis.call('ZADD', RV, now, mandate)
end
redis.call('HINCRBY', SB, outcome, 1)
if outcome == 'denied' then redis.call('HINCRBY', SB, 'd:' .. code, 1) end
redis.call('HSET', M, 'fingerprint', fp, 'outcome', outcome, 'code', code, 'reason', why, 'status', status,
  'mandate_id', mandate, 'agent_id', agent, 'vendor', vendor, 'amount_cents', amount, 'business_id', business,
  'tenant_id', tenant, 'purpose', reason, 'day', day, 'decided_at_ms', now)
redis.call('PEXPIRE', M, retention)
redis.call('XADD', LOG, 'MINID', '~', now - retention, '*', 'event', 'decided', 'mandate_id', mandate, 'agent_id', agent,
  'vendor', vendor, 'amount_cents', amount, 'business_id', business, 'tenant_id', tenant, 'outcome', outcome, 'code', code, 'day', day)
return {'new', outcome, code, why}
"#;

/// Move a reservation to `captured` (spent) or back to the budget (`released` / `expired`).
/// KEYS ([`settle_keys`]): mandate, used agent/day, used business, used tenant/day, reservations, log, business stats.
/// ARGV: now, to (captured|released|expired), retention.
/// Returns {'ok', status} | {'same', status} (already there) | {'bad', status} | {'missing'}.
const SETTLE: &str = r#"
local M, UA, UB, UT, EX, LOG, SB = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local now, to, retention = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local st = redis.call('HGET', M, 'status')
if not st then return {'missing'} end
if st == to then return {'same', st} end
if st ~= 'approved' then return {'bad', st} end
local f = redis.call('HMGET', M, 'amount_cents', 'vendor', 'agent_id', 'mandate_id', 'business_id', 'tenant_id', 'day')
local amount = tonumber(f[1])
for _, k in ipairs({UA, UB, UT}) do
  redis.call('HINCRBY', k, 'reserved', -amount)
  if to == 'captured' then redis.call('HINCRBY', k, 'captured', amount) end
end
redis.call('HINCRBY', SB, 'reserved', -amount)
if to == 'captured' then
  redis.call('HINCRBY', SB, 'captured', amount)
  redis.call('HINCRBY', SB, 'v:' .. f[2], amount)
  redis.call('HINCRBY', SB, 'a:' .. f[3], amount)
else
  redis.call('HINCRBY', SB, 'released', amount)
end
redis.call('ZREM', EX, f[4])
redis.call('HSET', M, 'status', to, 'settled_at_ms', now)
redis.call('XADD', LOG, 'MINID', '~', now - retention, '*', 'event', to, 'mandate_id', f[4], 'agent_id', f[3],
  'vendor', f[2], 'amount_cents', amount, 'business_id', f[5], 'tenant_id', f[6], 'outcome', to, 'code', to, 'day', f[7])
return {'ok', to}
"#;

/// Decide a held review. KEYS ([`review_keys`]): mandate, used agent/day, used business, used tenant/day, reservations,
/// reviews, log, business stats (the budgets of the review's day). ARGV: now, approve (1|0), limit_agent,
/// limit_business, limit_tenant, reservation_ttl, retention, day (of the review; an approval moves the
/// mandate's budgets to it). Returns {'ok', outcome, code, reason} | {'bad', status} | {'missing'}.
const REVIEW: &str = r#"
local M, UA, UB, UT, EX, RV, LOG, SB = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local now, approve = tonumber(ARGV[1]), ARGV[2] == '1'
local lim_a, lim_b, lim_t, ttl, retention = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local today = ARGV[8]
local st = redis.call('HGET', M, 'status')
if not st then return {'missing'} end
if st ~= 'needs_review' then return {'bad', st} end
local f = redis.call('HMGET', M, 'amount_cents', 'vendor', 'agent_id', 'mandate_id', 'business_id', 'tenant_id', 'day')
local amount = tonumber(f[1])
local function used(k)
  local r = redis.call('HMGET', k, 'reserved', 'captured')
  return (tonumber(r[1]) or 0) + (tonumber(r[2]) or 0)
end
local outcome, code, why = 'denied', 'review_denied', 'denied by a reviewer'
if approve then
  if used(UA) + amount > lim_a then
    code, why = 'review_over_budget', string.format('approved by a reviewer, but agent %s has used %d of %d cents today in tenant %s', f[3], used(UA), lim_a, f[6])
  elseif used(UB) + amount > lim_b then
    code, why = 'review_over_budget', string.format('approved by a reviewer, but business %s has used %d of %d cents', f[5], used(UB), lim_b)
  elseif used(UT) + amount > lim_t then
    code, why = 'review_over_budget', string.format('approved by a reviewer, but tenant %s has used %d of %d cents today', f[6], used(UT), lim_t)
  else
    outcome, code, why = 'approved', 'approved', 'approved by a reviewer; reserved'
  end
end
local day = f[7]
if outcome == 'approved' then
  for _, k in ipairs({UA, UB, UT}) do redis.call('HINCRBY', k, 'reserved', amount) end
  redis.call('PEXPIRE', UA, 3 * 86400000)
  redis.call('PEXPIRE', UT, 3 * 86400000)
  redis.call('ZADD', EX, now + ttl, f[4])
  redis.call('HINCRBY', SB, 'reserved', amount)
  -- the reservation is today's: settling it must return it to today's budgets; and the mandate
  -- must outlive its reservation, so it is kept for the retention from now
  day = today
  redis.call('PEXPIRE', M, retention)
end
redis.call('HINCRBY', SB, 'needs_review', -1)
redis.call('HINCRBY', SB, outcome, 1)
if outcome == 'denied' then redis.call('HINCRBY', SB, 'd:' .. code, 1) end
redis.call('ZREM', RV, f[4])
redis.call('HSET', M, 'outcome', outcome, 'code', code, 'reason', why, 'status', outcome, 'reviewed_at_ms', now, 'day', day)
redis.call('XADD', LOG, 'MINID', '~', now - retention, '*', 'event', 'reviewed', 'mandate_id', f[4], 'agent_id', f[3],
  'vendor', f[2], 'amount_cents', amount, 'business_id', f[5], 'tenant_id', f[6], 'outcome', outcome, 'code', code, 'day', day)
return {'ok', outcome, code, why}
"#;

pub struct LedgerScripts {
    pub decide: Script,
    pub settle: Script,
    pub review: Script,
}

impl LedgerScripts {
    pub fn load() -> Self {
        LedgerScripts { decide: Script::new(DECIDE), settle: Script::new(SETTLE), review: Script::new(REVIEW) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payments::ledger::keys::hash_tag;
    use crate::payments::policy::{self, PaymentRules};
    use crate::payments::types::{Outcome, PaymentIntent};
    use crate::payments::vendor::Whitelist;
    use crate::tenant::TenantId;

    /// CRC16/XMODEM mod 16384: Redis Cluster's `CLUSTER KEYSLOT`.
    fn slot(key: &str) -> u16 {
        let crc = hash_tag(key).bytes().fold(0u16, |mut crc, b| {
            crc ^= u16::from(b) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
            }
            crc
        });
        crc % 16384
    }

    fn intent(tenant: &str) -> ValidIntent {
        let raw = PaymentIntent {
            agent_id: "agent-a".into(),
            vendor: "openai.com".into(),
            amount_cents: 500,
            reason: String::new(),
            mandate_id: format!("m-{tenant}"),
            business_id: format!("biz-{tenant}"),
            tenant_id: TenantId::parse(tenant).expect("tenant"),
        };
        let rules = PaymentRules { known_agents: ["agent-a".to_string()].into(), ..PaymentRules::default() };
        let whitelist = Whitelist::new(&["openai.com".to_string()]).expect("whitelist");
        policy::validate(&raw, &rules, &whitelist).expect("valid")
    }

    /// Every key of every script of one decision, settlement and review.
    fn script_keys(tenant: &str) -> Vec<Vec<String>> {
        let i = intent(tenant);
        let d = policy::decision(&i, &policy::Step::Approve, 0);
        assert_eq!(d.outcome, Outcome::Approved);
        let shard = Shard::of(&i.tenant_id);
        let id = i.mandate.as_str();
        vec![
            decide_keys(&i, "2024-02-29").to_vec(),
            settle_keys(&shard, id, &d, "2024-02-29").to_vec(),
            review_keys(&shard, id, &d, "2024-02-29").to_vec(),
        ]
    }

    #[test]
    fn slot_matches_redis() {
        // Values from `CLUSTER KEYSLOT`.
        assert_eq!((slot("foo"), slot("123456789"), slot("{user1000}.following")), (12182, 12739, 3443));
    }

    #[test]
    fn each_script_stays_in_its_tenants_slot_and_tenants_spread() {
        let mut slots = Vec::new();
        for tenant in ["tenant-1", "tenant-2"] {
            let tag = format!("pay:{tenant}");
            for keys in script_keys(tenant) {
                for k in &keys {
                    assert_eq!(hash_tag(k), tag, "{k} is outside the shard of {tenant}");
                }
                let mut s: Vec<u16> = keys.iter().map(|k| slot(k)).collect();
                s.dedup();
                assert_eq!(s.len(), 1, "one slot per script: {keys:?}");
                slots.push(s[0]);
            }
        }
        assert_eq!(&slots[..3], &[slots[0]; 3]);
        assert_eq!(&slots[3..], &[slots[3]; 3]);
        assert_ne!(slots[0], slots[3], "two tenants, two slots");
    }
}
