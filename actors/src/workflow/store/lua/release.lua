-- Give back a workflow's drive lease, only if this driver still holds it (it may have expired and
-- been taken by another). KEYS: the lease. ARGV: the holder's token. Returns 1 if released.
local NKEYS = 1
local NARGV = 1
arity('workflow_release', NKEYS, NARGV)
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
