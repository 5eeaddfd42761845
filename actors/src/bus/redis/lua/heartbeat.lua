-- The node-id lease. KEYS: node key. ARGV: instance, info (JSON with "instance"), ttl_ms, and the
-- instance of a holder known to be dead ('' for none).
-- Writes the key when it is free, expired, this instance's or the dead holder's; otherwise returns
-- the holder's info (another live process has this node id) and writes nothing.
local NKEYS = 1
local NARGV = 4
arity('heartbeat', NKEYS, NARGV)
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, v = pcall(cjson.decode, cur)
  if ok and type(v) == 'table' and v['instance'] ~= nil and v['instance'] ~= ARGV[1] and v['instance'] ~= ARGV[4] then
    return cur
  end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return false
