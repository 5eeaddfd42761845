-- Store a new API key record and index it, unless its id is taken.
-- KEYS: 1 the key's hash, 2 the index of every key (scored by created_at). Both under `{apikeys}`.
-- ARGV: sha256 (hex), tenant, role, created_at (ms), id.
-- Returns 1 stored, 0 the id is taken (nothing written).
local NKEYS = 2
local NARGV = 5
arity('apikey_create', NKEYS, NARGV)
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'sha256', ARGV[1], 'tenant', ARGV[2], 'role', ARGV[3], 'created_at', ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
return 1
