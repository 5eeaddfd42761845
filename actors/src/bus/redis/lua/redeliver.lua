-- Claim an entry again for the consumer that holds it (incrementing its delivery counter), after its
-- worker crashed.
-- KEYS: stream.
-- ARGV: group, consumer, entry_id.
-- Returns {deliveries, fields}, or nil if the entry is no longer pending for this consumer.
local NKEYS = 1
local NARGV = 3
arity('redeliver', NKEYS, NARGV)
local stream = KEYS[1]
local group, consumer, id = ARGV[1], ARGV[2], ARGV[3]

local p = owned_by(stream, group, id, consumer)
if not p then return false end
local e = redis.call('XCLAIM', stream, group, consumer, 0, id)
local fields = {}
if #e > 0 and e[1] and e[1][2] then fields = e[1][2] end
return {p[4] + 1, fields}
