-- Decide a held review, checking the budgets again now.
-- KEYS (`scripts::review_keys`): mandate, used agent/day, used business, used tenant/day, reservations,
--       reviews, log, business stats, the task's open reservations, the tenant's open tasks, used workflow
--       (of the mandate's workflow; `…:used:workflow:` for a mandate without one: never touched).
-- ARGV: now, approve (1|0), limit_agent, limit_business, limit_tenant, reservation_ttl, retention,
--       today, check_after (ms until the reconciler first looks at the mandate's task).
-- Returns {'ok', outcome, code, reason} | {'bad', status} | {'missing'}.
local NKEYS = 11
local NARGV = 9
arity('review', NKEYS, NARGV)
local M, UA, UB, UT, EX, RV, LOG, SB = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local now, approve = tonumber(ARGV[1]), ARGV[2] == '1'
local lim_a, lim_b, lim_t, ttl, retention = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
-- the day of the review: an approval is checked against and charged to its budgets (KEYS are today's)
local today = ARGV[8]
local TK, TS, check_after = KEYS[9], KEYS[10], tonumber(ARGV[9])
local UW = KEYS[11]
local st = redis.call('HGET', M, 'status')
if not st then return {'missing'} end
if st ~= 'needs_review' then return {'bad', st} end
local f = redis.call('HMGET', M, 'amount_cents', 'vendor', 'agent_id', 'mandate_id', 'business_id', 'tenant_id', 'day', 'workflow_id', 'workflow_budget_cents')
local amount = tonumber(f[1])
-- the workflow's budget as the intent carried it (checked first, as decide.lua does)
local wf, lim_w = f[8] or '', tonumber(f[9]) or 0
local function used(k)
  local r = redis.call('HMGET', k, 'reserved', 'captured')
  return (tonumber(r[1]) or 0) + (tonumber(r[2]) or 0)
end
local outcome, code, why = 'denied', 'review_denied', 'denied by a reviewer'
if approve then
  if wf ~= '' and used(UW) + amount > lim_w then
    code, why = 'review_over_budget', string.format('approved by a reviewer, but workflow %s has %d of %d cents reserved or spent', wf, used(UW), lim_w)
  elseif used(UA) + amount > lim_a then
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
  if wf ~= '' then
    redis.call('HINCRBY', UW, 'reserved', amount)
    redis.call('PEXPIRE', UW, retention)
  end
  redis.call('ZADD', EX, now + ttl, f[4])
  redis.call('HINCRBY', SB, 'reserved', amount)
  -- the reservation is today's: settling it must return it to today's budgets; and the mandate
  -- must outlive its reservation: it is kept until settled, then for the retention from now
  day = today
  redis.call('PERSIST', M)
  local task = redis.call('HGET', M, 'task_id')
  if task and task ~= '' then
    redis.call('SADD', TK, f[4])
    redis.call('PEXPIRE', TK, ttl)
    redis.call('ZADD', TS, 'NX', now + check_after, task)
    redis.call('PEXPIRE', TS, ttl)
  end
end
redis.call('HINCRBY', SB, 'needs_review', -1)
redis.call('HINCRBY', SB, outcome, 1)
if outcome == 'denied' then redis.call('HINCRBY', SB, 'd:' .. code, 1) end
redis.call('ZREM', RV, f[4])
redis.call('HSET', M, 'outcome', outcome, 'code', code, 'reason', why, 'status', outcome, 'reviewed_at_ms', now, 'day', day)
redis.call('XADD', LOG, 'MINID', '~', now - retention, '*', 'event', 'reviewed', 'mandate_id', f[4], 'agent_id', f[3],
  'vendor', f[2], 'amount_cents', amount, 'business_id', f[5], 'tenant_id', f[6], 'outcome', outcome, 'code', code, 'day', day)
return {'ok', outcome, code, why}
