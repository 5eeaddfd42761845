-- Revoke an API key: set its revoked_at once (a second revoke keeps the first time).
-- KEYS: 1 the key's hash. ARGV: now (ms).
-- Returns 0 no such key, 1 revoked now, 2 revoked before.
local NKEYS = 1
local NARGV = 1
arity('apikey_revoke', NKEYS, NARGV)
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HEXISTS', KEYS[1], 'revoked_at') == 1 then return 2 end
redis.call('HSET', KEYS[1], 'revoked_at', ARGV[1])
return 1
