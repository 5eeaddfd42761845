-- This consumer's own pending entries after `after_id` (read again: delivery counters grow).
-- KEYS: stream.
-- ARGV: group, consumer, after_id, count.
-- Returns {id, deliveries, fields} per entry.
local NKEYS = 1
local NARGV = 4
arity('read_pending', NKEYS, NARGV)
local stream = KEYS[1]
local group, consumer, after, count = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

local r = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', count, 'STREAMS', stream, after)
local out = {}
if not r or not r[1] then return out end
for _, e in ipairs(r[1][2]) do
  local p = redis.call('XPENDING', stream, group, e[1], e[1], 1)
  local n = 1
  if #p > 0 then n = p[1][4] end
  local fields = e[2]
  if not fields then fields = {} end
  out[#out + 1] = {e[1], n, fields}
end
return out
