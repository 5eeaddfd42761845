-- Apply a retention to a topic's DLQ: drop dead letters older than max_age (their ids are their times),
-- then the oldest beyond max_len.
-- KEYS: dlq.
-- ARGV: max_age_ms, max_len.
-- Returns {dropped by age, dropped by length, remaining, time (ms) of the oldest remaining or -1}.
local NKEYS = 1
local NARGV = 2
arity('dlq_trim', NKEYS, NARGV)
local dlq = KEYS[1]
local max_age, max_len = tonumber(ARGV[1]), tonumber(ARGV[2])

local min_id = now_ms() - max_age
if min_id < 0 then min_id = 0 end
local by_age = redis.call('XTRIM', dlq, 'MINID', string.format('%d', min_id))
local by_len = redis.call('XTRIM', dlq, 'MAXLEN', max_len)
local remaining = redis.call('XLEN', dlq)
local oldest = -1
local first = redis.call('XRANGE', dlq, '-', '+', 'COUNT', 1)
if #first > 0 then oldest = tonumber(string.match(first[1][1], '^(%d+)-')) end
return {by_age, by_len, remaining, oldest}
