-- Store a new workflow as version 1 and index it, unless its id exists: then return the stored one
-- (a creator that runs again gets the workflow it made, and writes nothing).
-- KEYS: see the prelude. ARGV: doc, status_index, id, expiring member, created_at, final ('1'/'0'),
-- retention_ms.
-- Returns nil (created), or {doc, version} of the existing workflow.
local NARGV = 7
arity('workflow_create', NKEYS, NARGV)
local existing = redis.call('HMGET', KEYS[1], 'doc', 'version')
if existing[1] then return {existing[1], existing[2]} end
local status_index = tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'doc', ARGV[1], 'version', 1, 'status', status_index)
place(ARGV[3], ARGV[4], ARGV[5], status_index, ARGV[6], ARGV[7])
return nil
