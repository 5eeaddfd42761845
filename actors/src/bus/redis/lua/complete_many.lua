-- Write the outcomes of many deliveries of one topic, each atomically with its XACK and only if the
-- entry is still pending for the consumer that ran it (the hot path batches completions).
-- KEYS: stream, dlq, retry zset, then per item: result.
-- ARGV: group, topic, then per item: entry_id, consumer, kind (ok|retry|dead), ttl_ms, task_id ('' if
--       unknown), tenant_id, correlation_id, parent, attempt, deliveries, result (ok), error (retry, dead), delay_ms (retry), next envelope
--       (retry), reason (dead), original entry text (dead; possibly truncated), the original's size in
--       bytes (dead), truncated (dead: 1 if only the start of the original is kept, else 0).
-- Returns per item 1 (written) or 0 (not this consumer's any more: nothing written).
local HEAD_KEYS = 3
local HEAD_ARGV = 2
local ITEM_KEYS = 1
local ITEM_ARGV = 18
local n = batch_arity('complete_many', HEAD_KEYS, HEAD_ARGV, ITEM_KEYS, ITEM_ARGV)
local stream, dlq, retries = KEYS[1], KEYS[2], KEYS[3]
local group, topic = ARGV[1], ARGV[2]

local out = {}
local now = now_ms()
for i = 1, n do
  local R = KEYS[HEAD_KEYS + i]
  local b = HEAD_ARGV + (i - 1) * ITEM_ARGV
  local id, consumer, kind, ttl = ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4]
  local task_id, tenant, corr, parent = ARGV[b + 5], ARGV[b + 6], ARGV[b + 7], ARGV[b + 8]
  local attempt, deliveries = ARGV[b + 9], ARGV[b + 10]
  local result, err, delay, next_env = ARGV[b + 11], ARGV[b + 12], ARGV[b + 13], ARGV[b + 14]
  local reason, original, original_bytes, truncated = ARGV[b + 15], ARGV[b + 16], ARGV[b + 17], ARGV[b + 18]
  if not owned_by(stream, group, id, consumer) then
    out[#out + 1] = 0
  else
    redis.call('XACK', stream, group, id)
    local has_task = task_id ~= ''
    if has_task then
      redis.call('HSET', R, 'task_id', task_id, 'topic', topic, 'tenant_id', tenant, 'correlation_id', corr, 'parent', parent)
    end
    if kind == 'ok' then
      redis.call('HSET', R, 'status', 'succeeded', 'attempts', attempt, 'result', result, 'error', '', 'reason', '', 'updated_at', now)
    elseif kind == 'retry' then
      push_history(R, attempt, err, now)
      redis.call('HSET', R, 'status', 'retrying', 'attempts', attempt, 'error', err, 'updated_at', now)
      redis.call('ZADD', retries, now + tonumber(delay), next_env)
    else
      local hist
      if has_task then
        hist = push_history(R, attempt, err, now)
        redis.call('HSET', R, 'status', 'dead', 'attempts', attempt, 'error', err, 'reason', reason, 'updated_at', now)
      else
        hist = cjson.encode({{attempt = tonumber(attempt), error = err, at = now}})
      end
      local dlq_id = redis.call('XADD', dlq, '*', 'task_id', task_id, 'topic', topic, 'reason', reason, 'error', err,
        'attempts', attempt, 'deliveries', deliveries, 'history', hist, 'envelope', original,
        'envelope_bytes', original_bytes, 'truncated', truncated, 'source_id', id, 'dead_at', now)
      if has_task then redis.call('HSET', R, 'dlq_id', dlq_id) end
    end
    if has_task then redis.call('PEXPIRE', R, ttl) end
    out[#out + 1] = 1
  end
end
return out
