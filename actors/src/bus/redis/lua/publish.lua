-- Append a new task and record it as queued, unless a task with this id already has a record.
-- A record is proof of the entry because no script writes a record where its entry is not: this one
-- writes both at once, and `begin`/`complete_many` write only for an entry pending on this server.
-- KEYS: stream, result.
-- ARGV: envelope, task_id, tenant_id, correlation_id, parent ('' if none), topic, ttl_ms,
--       workflow ('<workflow id>/<step>' for a workflow's task, else '': written here only).
-- Returns the entry id, or nil for a duplicate.
local NKEYS = 2
local NARGV = 8
arity('publish', NKEYS, NARGV)
local stream, result = KEYS[1], KEYS[2]
local envelope, task_id, tenant, corr, parent, topic, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]

if redis.call('EXISTS', result) == 1 then return false end
local id = redis.call('XADD', stream, '*', 'task', envelope)
redis.call('HSET', result, 'task_id', task_id, 'topic', topic, 'tenant_id', tenant, 'correlation_id', corr, 'parent', parent,
  'status', 'queued', 'attempts', 0, 'updated_at', now_ms())
if ARGV[8] ~= '' then redis.call('HSET', result, 'workflow', ARGV[8]) end
redis.call('PEXPIRE', result, ttl)
return id
