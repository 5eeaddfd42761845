-- Move retries that are due back into their stream.
-- KEYS: retry zset, stream.
-- ARGV: limit.
-- Returns how many moved.
local NKEYS = 2
local NARGV = 1
arity('move_due', NKEYS, NARGV)
local retries, stream = KEYS[1], KEYS[2]
local limit = ARGV[1]

local due = redis.call('ZRANGEBYSCORE', retries, '-inf', now_ms(), 'LIMIT', 0, limit)
for _, m in ipairs(due) do
  redis.call('XADD', stream, '*', 'task', m)
  redis.call('ZREM', retries, m)
end
return #due
