-- One request against an agent's rate limit, by GCRA: the same arithmetic as
-- `policy::rate::Gcra::decide` (read it for the why), on one key per agent holding the theoretical
-- arrival time (TAT) in microseconds, and on Redis's clock (TIME), so that every node shares one limit
-- and one clock. Allowed: the TAT advances by one interval and the key expires once the TAT is past.
-- Refused: nothing changes.
-- KEYS: the agent's rate key. ARGV: interval_us (T, rounded up), burst (B ≥ 1).
-- Returns 0 (allowed) or the wait in microseconds (> 0) until the request would be allowed.
local NKEYS = 1
local NARGV = 2
arity('rate', NKEYS, NARGV)
local key = KEYS[1]
local interval, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', key) or '') or now
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - burst * interval
if now < allow_at then return allow_at - now end
redis.call('SET', key, string.format('%d', new_tat), 'PX', math.floor((new_tat - now) / 1000) + 1)
return 0
