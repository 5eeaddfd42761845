-- Give the node-id lease back on a clean stop, only if this instance holds it.
-- KEYS: node key. ARGV: instance. Returns 1 if removed.
local NKEYS = 1
local NARGV = 1
arity('release', NKEYS, NARGV)
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
local ok, v = pcall(cjson.decode, cur)
if ok and type(v) == 'table' and v['instance'] == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
