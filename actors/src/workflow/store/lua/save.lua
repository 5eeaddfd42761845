-- Compare-and-set of a workflow: write it as version+1 only if the stored version is still the one
-- the caller read, and move it between the indexes in the same step (its status may have changed).
-- A missing document (never created, or expired) is not re-created.
-- KEYS: see the prelude. ARGV: expected version, doc, status_index, id, expiring member, created_at,
-- final ('1'/'0'), retention_ms.
-- Returns 1 (saved) or 0 (the version moved on, or no such workflow).
local NARGV = 8
arity('workflow_save', NKEYS, NARGV)
local v = redis.call('HGET', KEYS[1], 'version')
if not v or tonumber(v) ~= tonumber(ARGV[1]) then return 0 end
local status_index = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], 'doc', ARGV[2], 'version', tonumber(v) + 1, 'status', status_index)
place(ARGV[4], ARGV[5], ARGV[6], status_index, ARGV[7], ARGV[8])
return 1
