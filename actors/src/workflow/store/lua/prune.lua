-- Take an ended workflow whose document has expired out of every index. One whose document still
-- exists is left in them: if it expires later than the index said (clocks), its expiry is moved.
-- KEYS: see the prelude. ARGV: id, expiring member.
-- Returns 1 (removed) or 0.
local NARGV = 2
arity('workflow_prune', NKEYS, NARGV)
if redis.call('EXISTS', KEYS[1]) == 1 then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl > 0 then redis.call('ZADD', KEYS[4], now_ms() + ttl, ARGV[2]) end
  return 0
end
redis.call('ZREM', KEYS[4], ARGV[2])
for i = 2, 10 do
  if i ~= 4 then redis.call('ZREM', KEYS[i], ARGV[1]) end
end
return 1
