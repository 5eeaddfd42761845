-- Request the cancel of a task: set `cancel_requested_at` on its record (an earlier request stands),
-- unless the record is missing (unknown or expired: never resurrected) or final (nothing to cancel).
-- The worker's `begin` step reads the flag atomically with marking the task running; for a task that
-- is already running, the caller then asks the node named here to stop it.
-- KEYS: result. ARGV: none.
-- Returns nil (no record), or {status, node, requested_at ('' when final)}.
local NKEYS = 1
local NARGV = 0
arity('cancel', NKEYS, NARGV)
local result = KEYS[1]
local status = redis.call('HGET', result, 'status')
if not status then return nil end
local node = redis.call('HGET', result, 'node') or ''
if status == 'succeeded' or status == 'dead' then return {status, node, ''} end
local at = redis.call('HGET', result, 'cancel_requested_at')
if not at or at == '' then
  at = tostring(now_ms())
  redis.call('HSET', result, 'cancel_requested_at', at, 'updated_at', at)
end
return {status, node, at}
