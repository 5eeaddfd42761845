-- Put a dead letter back on its topic as attempt 1 and mark its task queued. A replay is a fresh start:
-- an earlier cancel request (the replayed task may have died of it) and progress report are cleared.
-- KEYS: dlq, stream, result.
-- ARGV: dlq_id, envelope, task_id, tenant_id, correlation_id, parent, topic, ttl_ms.
-- Returns the new entry id, or nil if the dead letter is gone (replayed or purged meanwhile).
local NKEYS = 3
local NARGV = 8
arity('dlq_replay', NKEYS, NARGV)
local dlq, stream, result = KEYS[1], KEYS[2], KEYS[3]
local dlq_id, envelope, task_id, tenant, corr, parent = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local topic, ttl = ARGV[7], ARGV[8]

if redis.call('XDEL', dlq, dlq_id) == 0 then return false end
local id = redis.call('XADD', stream, '*', 'task', envelope)
redis.call('HSET', result, 'task_id', task_id, 'topic', topic, 'tenant_id', tenant, 'correlation_id', corr, 'parent', parent,
  'status', 'queued', 'attempts', 0, 'error', '', 'reason', '', 'dlq_id', '', 'updated_at', now_ms())
redis.call('HDEL', result, 'cancel_requested_at', 'progress')
redis.call('PEXPIRE', result, ttl)
return id
