-- Mark a batch of decoded deliveries as running.
-- KEYS: stream, then per item: result.
-- ARGV: group, topic, ttl_ms, node, worker (the consumer), then per item: entry_id, task_id, tenant_id,
--       correlation_id, parent, attempt.
-- Returns per item 1 (run it), 0 (its task already succeeded: acknowledged here, not run again), 2
-- (marked running, but a cancel was requested: the worker dead-letters it as cancelled without running
-- it) or 3 (the entry is not pending for this consumer on this server: nothing written, not run).
-- Reading the flag here, in the step that marks the task running, is what makes a cancel race-free:
-- a request made before this step is seen here; one made after it finds the task running on this node.
-- The fence (`owned_by`, as for outcomes) keeps a record from being written where its entry is not:
-- an entry read from a restarted old master that still claims to be master, begun on the new master,
-- would otherwise leave a `running` record there with no entry, which `publish.lua` then takes for a
-- published task: the publisher's retry is answered "duplicate" and the task never runs.
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
  if not owned_by(stream, group, entry_id, worker) then
    out[#out + 1] = 3
  elseif redis.call('HGET', result, 'status') == 'succeeded' then
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
