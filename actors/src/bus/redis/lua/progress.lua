-- Keep an agent's latest progress report on its task's record, only while the record exists and is not
-- final: a late report never resurrects an expired record nor changes a finished one.
-- KEYS: result. ARGV: progress (JSON text, already bounded by the caller).
-- Returns 1 if written, 0 if not.
local NKEYS = 1
local NARGV = 1
arity('progress', NKEYS, NARGV)
local result = KEYS[1]
local status = redis.call('HGET', result, 'status')
if not status or status == 'succeeded' or status == 'dead' then return 0 end
redis.call('HSET', result, 'progress', ARGV[1], 'updated_at', now_ms())
return 1
