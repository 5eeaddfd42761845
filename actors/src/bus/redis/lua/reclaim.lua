-- Claim a dead consumer's entries idle for at least min_idle. The idle condition makes concurrent
-- reclaimers exclusive: a claim resets the idle time.
-- KEYS: stream.
-- ARGV: group, dead consumer, claiming consumer, min_idle_ms, limit.
-- Returns {id, deliveries, fields} per claimed entry.
local NKEYS = 1
local NARGV = 5
arity('reclaim', NKEYS, NARGV)
local stream = KEYS[1]
local group, dead, claimer, min_idle, limit = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]

local p = redis.call('XPENDING', stream, group, 'IDLE', min_idle, '-', '+', limit, dead)
local out = {}
for _, x in ipairs(p) do
  local e = redis.call('XCLAIM', stream, group, claimer, min_idle, x[1])
  if #e > 0 and e[1] then
    local fields = e[1][2]
    if not fields then fields = {} end
    out[#out + 1] = {x[1], x[4] + 1, fields}
  end
end
return out
