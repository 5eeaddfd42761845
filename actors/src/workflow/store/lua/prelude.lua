-- Shared by the workflow store's scripts (prepended to each). Every script takes the same KEYS, all
-- under the one `{wf}` hash tag (one slot on Redis Cluster):
--   1 the workflow's document (hash: doc, version, status)
--   2 all workflows, 3 the open (not ended) ones, 4 the expiring (ended) ones,
--   5 the workflow's tenant's index, 6..10 one index per status (WorkflowStatus::ALL order).
-- Index scores are `created_at` (ms), except `expiring`, scored by when the document expires.
local NKEYS = 10

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Put workflow `id` in the indexes for its status: the status index `status_index` (1..5) and no
-- other; the open index while it runs or has effects left (final = settled), else the expiring
-- index with its document's expiry.
local function place(id, member, created_at, status_index, final, retention_ms)
  redis.call('ZADD', KEYS[2], created_at, id)
  redis.call('ZADD', KEYS[5], created_at, id)
  for i = 6, 10 do
    if i == 5 + status_index then
      redis.call('ZADD', KEYS[i], created_at, id)
    else
      redis.call('ZREM', KEYS[i], id)
    end
  end
  if final == '1' then
    redis.call('ZREM', KEYS[3], id)
    redis.call('PEXPIRE', KEYS[1], retention_ms)
    redis.call('ZADD', KEYS[4], now_ms() + tonumber(retention_ms), member)
  else
    redis.call('ZADD', KEYS[3], created_at, id)
    redis.call('PERSIST', KEYS[1])
    redis.call('ZREM', KEYS[4], member)
  end
end
