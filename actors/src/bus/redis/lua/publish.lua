-- Append a new task and record it as queued, unless a task with this id already has a record.
-- KEYS: stream, result.
-- ARGV: envelope, task_id, topic, ttl_ms.
-- Returns the entry id, or nil for a duplicate.
local NKEYS = 2
local NARGV = 4
arity('publish', NKEYS, NARGV)
local stream, result = KEYS[1], KEYS[2]
local envelope, task_id, topic, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

if redis.call('EXISTS', result) == 1 then return false end
local id = redis.call('XADD', stream, '*', 'task', envelope)
redis.call('HSET', result, 'task_id', task_id, 'topic', topic, 'status', 'queued', 'attempts', 0, 'updated_at', now_ms())
redis.call('PEXPIRE', result, ttl)
return id
