-- Trim a stream below min(oldest pending entry, last delivered entry) of the group: acknowledged
-- entries only, never pending or undelivered ones.
-- KEYS: stream.
-- ARGV: group.
-- Returns how many entries were removed.
local NKEYS = 1
local NARGV = 1
arity('trim', NKEYS, NARGV)
local stream = KEYS[1]
local group = ARGV[1]

if redis.call('EXISTS', stream) == 0 then return 0 end
local last = nil
for _, g in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
  local name, ld
  for i = 1, #g, 2 do
    if g[i] == 'name' then name = g[i + 1] elseif g[i] == 'last-delivered-id' then ld = g[i + 1] end
  end
  if name == group then last = ld end
end
if not last then return 0 end
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local threshold = last
local s = redis.call('XPENDING', stream, group)
if s[1] > 0 then
  local am, as = parse(s[2])
  local bm, bs = parse(last)
  if am < bm or (am == bm and as < bs) then threshold = s[2] end
end
return redis.call('XTRIM', stream, 'MINID', threshold)
