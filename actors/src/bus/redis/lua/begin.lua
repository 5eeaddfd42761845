-- Mark a batch of decoded deliveries as running.
-- KEYS: stream, then per item: result.
-- ARGV: group, topic, ttl_ms, node, worker (the consumer), then per item: entry_id, task_id, tenant_id,
--       correlation_id, parent, attempt.
-- Returns per item 1 (run it), 0 (its task already succeeded: acknowledged here, not run again) or 2
-- (marked running, but a cancel was requested: the worker dead-letters it as cancelled without running
-- it). Reading the flag here, in the step that marks the task running, is what makes a cancel race-free:
-- a request made before this step is seen here; one made after it finds the task running on this node.
local HEAD_KEYS = 1
local HEAD_ARGV = 5
local ITEM_KEYS = 1
local ITEM_ARGV = 6
local n = batch_arity('begin', HEAD_KEYS, HEAD_ARGV, ITEM_KEYS, ITEM_ARGV)
local stream = KEYS[1]
local group, topic, ttl, node, worker = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]

local out = {}
local now = now_ms()
for i = 1, n do
  local result = KEYS[HEAD_KEYS + i]
  local b = HEAD_ARGV + (i - 1) * ITEM_ARGV
  local entry_id, task_id, tenant, corr, parent = ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4], ARGV[b + 5]
  local attempt = ARGV[b + 6]
  if redis.call('HGET', result, 'status') == 'succeeded' then
    redis.call('XACK', stream, group, entry_id)
    out[#out + 1] = 0
  else
    redis.call('HSET', result, 'task_id', task_id, 'topic', topic, 'tenant_id', tenant, 'correlation_id', corr, 'parent', parent,
      'status', 'running', 'attempts', attempt, 'node', node, 'worker', worker, 'started_at', now, 'updated_at', now)
    redis.call('PEXPIRE', result, ttl)
    local cancel = redis.call('HGET', result, 'cancel_requested_at')
    if cancel and cancel ~= '' then out[#out + 1] = 2 else out[#out + 1] = 1 end
  end
end
return out
