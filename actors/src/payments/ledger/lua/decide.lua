-- Decide one payment intent: idempotency, fraud windows, review threshold, budgets and the reservation,
-- in one atomic step over the keys of the intent's tenant (one hash slot). Mirrors `policy::evaluate`
-- step by step; the stateless verdicts (suspicious pattern, whitelist) are computed in Rust and passed in.
-- KEYS (`scripts::decide_keys`): mandate, agent window, near-threshold window, approved amounts,
--       used agent/day, used business, used tenant/day, reservations, reviews, log, business stats,
--       business index, the task's open reservations, the tenant's open tasks, used workflow (`…:used:workflow:`
--       for an intent without a workflow: never touched).
-- ARGV: now, fingerprint, amount, mandate, agent, vendor, business, tenant, reason, day,
--       pattern_code, pattern_reason, whitelist_code, whitelist_reason,
--       velocity_window, velocity_max_count, velocity_max_sum,
--       structuring_window, near_low, auto_approve, structuring_min_count,
--       anomaly_factor (hundredths), anomaly_min_samples, anomaly_history, review_above,
--       limit_agent, limit_business, limit_tenant, reservation_ttl, retention,
--       task (task id or ''), check_after (ms until the reconciler first looks at the task),
--       workflow (workflow id or ''), limit_workflow (its budget; 0 without a workflow)
-- Returns {'stored'} | {'conflict'} | {'new', outcome, code, reason}.
local NKEYS = 15
local NARGV = 34
arity('decide', NKEYS, NARGV)
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
local TK, TS, task, check_after = KEYS[13], KEYS[14], ARGV[31], tonumber(ARGV[32])
local UW, wf, lim_w = KEYS[15], ARGV[33], tonumber(ARGV[34])

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

-- The reasons are worded as `policy.rs` words them, so both ledgers give the same decision. A decimal
-- the way Rust prints it: `h` hundredths as the shortest decimal (`10`, `2.5`, `1.05`).
local function decimal(h)
  local whole, frac = math.floor(h / 100), h % 100
  if frac == 0 then return string.format('%d', whole) end
  if frac % 10 == 0 then return string.format('%d.%d', whole, frac / 10) end
  return string.format('%d.%02d', whole, frac)
end

local function evaluate()
  -- 2. fraud
  if pat_code ~= '' then return 'denied', pat_code, pat_reason end
  local n = recent_n + 1
  if n > vmax_n then
    return 'denied', 'velocity_count', string.format('%d intents by this agent within %d ms (max %d)', n, vwin, vmax_n)
  end
  local sum = amount
  for _, m in ipairs(redis.call('ZRANGE', WA, 0, -1)) do sum = sum + amount_of(m) end
  if sum > vmax_sum then
    return 'denied', 'velocity_sum', string.format('%d cents requested by this agent within %d ms (max %d)', sum, vwin, vmax_sum)
  end
  if near then
    local c, s = 1, amount
    for _, m in ipairs(near_recent) do c = c + 1; s = s + amount_of(m) end
    if c >= smin and s > auto then
      return 'denied', 'structuring', string.format('%d near-threshold payments to this vendor within %d ms sum to %d cents (> %d)', c, swin, s, auto)
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
      return 'denied', 'amount_anomaly', string.format('amount %d cents is more than %s\195\151 the median (%s) of recent payments to this vendor', amount, decimal(afactor), decimal(med2 * 50))
    end
  end
  -- 3. whitelist
  if wl_code ~= '' then return 'denied', wl_code, wl_reason end
  -- 4. review
  if amount > review_above then
    return 'needs_review', 'needs_review', string.format('amount %d cents is above the review threshold of %d cents', amount, review_above)
  end
  -- 5. budgets: the workflow's first (policy::check_workflow_budget), then the three
  if wf ~= '' then
    local uw = used(UW)
    if uw + amount > lim_w then
      return 'denied', 'over_workflow_budget', string.format('workflow %s has %d of %d cents reserved or spent; %d more is over its budget', wf, uw, lim_w, amount)
    end
  end
  local ua, ub, ut = used(UA), used(UB), used(UT)
  if ua + amount > lim_a then
    return 'denied', 'over_agent_daily_budget', string.format("%d cents would exceed the agent's daily (in this tenant) budget (%d of %d cents used)", amount, ua, lim_a)
  end
  if ub + amount > lim_b then
    return 'denied', 'over_business_budget', string.format("%d cents would exceed the business's budget (%d of %d cents used)", amount, ub, lim_b)
  end
  if ut + amount > lim_t then
    return 'denied', 'over_tenant_daily_budget', string.format("%d cents would exceed the tenant's daily budget (%d of %d cents used)", amount, ut, lim_t)
  end
  return 'approved', 'approved', 'passed every check'
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
  if wf ~= '' then
    -- kept for the retention after its last movement (not a day: a workflow outlives UTC days)
    redis.call('HINCRBY', UW, 'reserved', amount)
    redis.call('PEXPIRE', UW, retention)
  end
  redis.call('ZADD', EX, now + ttl, mandate)
  redis.call('LPUSH', AN, amount)
  redis.call('LTRIM', AN, 0, ahist - 1)
  redis.call('HINCRBY', SB, 'reserved', amount)
  -- settled with its task (the worker's hook, or the reconciler); the index expires with the reservation
  if task ~= '' then
    redis.call('SADD', TK, mandate)
    redis.call('PEXPIRE', TK, ttl)
    redis.call('ZADD', TS, 'NX', now + check_after, task)
    redis.call('PEXPIRE', TS, ttl)
  end
elseif outcome == 'needs_review' then
  redis.call('ZADD', RV, now, mandate)
end
redis.call('HINCRBY', SB, outcome, 1)
if outcome == 'denied' then redis.call('HINCRBY', SB, 'd:' .. code, 1) end
redis.call('HSET', M, 'fingerprint', fp, 'outcome', outcome, 'code', code, 'reason', why, 'status', status,
  'mandate_id', mandate, 'agent_id', agent, 'vendor', vendor, 'amount_cents', amount, 'business_id', business,
  'tenant_id', tenant, 'purpose', reason, 'day', day, 'decided_at_ms', now, 'task_id', task)
-- the workflow and the budget it was decided under: what settling moves, and what a review re-checks
if wf ~= '' then redis.call('HSET', M, 'workflow_id', wf, 'workflow_budget_cents', ARGV[34]) end
-- kept for the retention; a reservation's mandate until it is settled, then what is left of its
-- retention (settle.lua): it is never forgotten while it holds money, however late the expiry runs
if outcome ~= 'approved' then redis.call('PEXPIRE', M, retention) end
redis.call('XADD', LOG, 'MINID', '~', now - retention, '*', 'event', 'decided', 'mandate_id', mandate, 'agent_id', agent,
  'vendor', vendor, 'amount_cents', amount, 'business_id', business, 'tenant_id', tenant, 'outcome', outcome, 'code', code, 'day', day)
return {'new', outcome, code, why}
