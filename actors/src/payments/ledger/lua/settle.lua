-- Move a reservation to `captured` (spent) or back to the budget (`released` / `expired`).
-- KEYS (`scripts::settle_keys`): mandate, used agent/day, used business, used tenant/day, reservations,
--       log, business stats, the task's open reservations, the tenant's open tasks, used workflow (of the
--       mandate's workflow; `…:used:workflow:` for a mandate without one: never touched).
-- ARGV: now, to (captured|released|expired), retention.
-- Returns {'ok', status, keep_ms} | {'same', status} (already there) | {'bad', status} | {'missing'}.
-- keep_ms: how long the mandate is kept from now (the caller gives its tenant entry as long).
-- Until now the mandate had no expiry (decide.lua, review.lua): it held a reservation.
local NKEYS = 10
local NARGV = 3
arity('settle', NKEYS, NARGV)
local M, UA, UB, UT, EX, LOG, SB = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local TK, TS, UW = KEYS[8], KEYS[9], KEYS[10]
local now, to, retention = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local st = redis.call('HGET', M, 'status')
if not st then return {'missing'} end
-- whatever happens next the mandate is no longer an open reservation of its task (settled now, or
-- before): it leaves the task's index, and the task leaves the open tasks with its last one
local task = redis.call('HGET', M, 'task_id')
if task and task ~= '' then
  redis.call('SREM', TK, redis.call('HGET', M, 'mandate_id'))
  if redis.call('SCARD', TK) == 0 then redis.call('ZREM', TS, task) end
end
if st == to then return {'same', st} end
if st ~= 'approved' then return {'bad', st} end
local f = redis.call('HMGET', M, 'amount_cents', 'vendor', 'agent_id', 'mandate_id', 'business_id', 'tenant_id', 'day', 'workflow_id')
local amount = tonumber(f[1])
local budgets = {UA, UB, UT}
if f[8] and f[8] ~= '' then budgets[4] = UW end
for _, k in ipairs(budgets) do
  redis.call('HINCRBY', k, 'reserved', -amount)
  if to == 'captured' then redis.call('HINCRBY', k, 'captured', amount) end
end
if budgets[4] then redis.call('PEXPIRE', UW, retention) end
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
-- the rest of its retention, counted from its decision or its approval by a reviewer (none left:
-- it goes now, as the in-memory ledger forgets it at its next pruning)
local f2 = redis.call('HMGET', M, 'reviewed_at_ms', 'decided_at_ms')
local since = tonumber(f2[1]) or tonumber(f2[2]) or now
local keep = math.max(since + retention - now, 1)
redis.call('PEXPIRE', M, keep)
redis.call('XADD', LOG, 'MINID', '~', now - retention, '*', 'event', to, 'mandate_id', f[4], 'agent_id', f[3],
  'vendor', f[2], 'amount_cents', amount, 'business_id', f[5], 'tenant_id', f[6], 'outcome', to, 'code', to, 'day', f[7])
return {'ok', to, keep}
