-- Helpers shared by the bus's scripts (prepended to each). Every script touches only keys of one topic
-- (one hash slot), and every step that marks or acknowledges an entry (`begin`, every outcome) first
-- checks, with `owned_by`, that the entry is still pending for the consumer that holds it: the fence
-- against a presumed-dead node that came back, and against an entry read from a server that is no
-- longer master.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Append one failed attempt to the record's JSON history; returns the new history text.
local function push_history(key, attempt, err, now)
  local h = redis.call('HGET', key, 'history')
  local list = {}
  if h and h ~= '' and h ~= '{}' then list = cjson.decode(h) end
  table.insert(list, {attempt = tonumber(attempt), error = err, at = now})
  local s = cjson.encode(list)
  redis.call('HSET', key, 'history', s)
  return s
end

-- The pending entry `id` of `group` if `consumer` holds it, else nil.
local function owned_by(stream, group, id, consumer)
  local p = redis.call('XPENDING', stream, group, id, id, 1)
  if #p == 0 or p[1][2] ~= consumer then return nil end
  return p[1]
end
