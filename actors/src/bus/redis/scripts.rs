//! The Lua scripts that make each step atomic. Every script touches only keys of one topic (one hash
//! slot), and every outcome that acknowledges an entry first checks that the entry is still pending for
//! the consumer that ran it (the fence against a presumed-dead node that came back).
//!
//! Loaded through `redis::Script`, which sends EVALSHA and falls back to loading the script (so a
//! restarted Redis with an empty script cache is handled).

use redis::Script;

const PRELUDE: &str = r#"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function push_history(key, attempt, err, now)
  local h = redis.call('HGET', key, 'history')
  local list = {}
  if h and h ~= '' and h ~= '{}' then list = cjson.decode(h) end
  table.insert(list, {attempt = tonumber(attempt), error = err, at = now})
  local s = cjson.encode(list)
  redis.call('HSET', key, 'history', s)
  return s
end
local function owned_by(stream, id, consumer)
  local p = redis.call('XPENDING', stream, 'genesis', id, id, 1)
  if #p == 0 or p[1][2] ~= consumer then return nil end
  return p[1]
end
"#;

/// KEYS: stream, result. ARGV: envelope, task_id, topic, ttl_ms.
/// Returns the entry id, or nil if a task with this id already exists.
const PUBLISH: &str = r#"
if redis.call('EXISTS', KEYS[2]) == 1 then return false end
local id = redis.call('XADD', KEYS[1], '*', 'task', ARGV[1])
redis.call('HSET', KEYS[2], 'task_id', ARGV[2], 'topic', ARGV[3], 'status', 'queued', 'attempts', 0, 'updated_at', now_ms())
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return id
"#;

/// KEYS: stream, result_1..result_n. ARGV: ttl_ms, topic, then (entry_id, task_id, attempt) per item.
/// Returns 1 per item to run, 0 for an item whose task already succeeded (acked here).
const BEGIN: &str = r#"
local out = {}
local now = now_ms()
for i = 2, #KEYS do
  local b = 3 + (i - 2) * 3
  local st = redis.call('HGET', KEYS[i], 'status')
  if st == 'succeeded' then
    redis.call('XACK', KEYS[1], 'genesis', ARGV[b])
    out[#out + 1] = 0
  else
    redis.call('HSET', KEYS[i], 'task_id', ARGV[b + 1], 'topic', ARGV[2], 'status', 'running', 'attempts', ARGV[b + 2], 'updated_at', now)
    redis.call('PEXPIRE', KEYS[i], ARGV[1])
    out[#out + 1] = 1
  end
end
return out
"#;

/// Write the outcomes of many deliveries of one topic, each atomically with its XACK and only if the
/// entry is still pending for the consumer that ran it (the hot path batches completions).
/// KEYS: stream, dlq, retry zset, result_1..result_n.
/// ARGV: 11 per item: entry_id, consumer, kind (ok|retry|dead), ttl_ms, task_id ('' if unknown), topic,
///       attempt, deliveries, then x, y, z: ok: result, '', '' | retry: error, delay_ms, next envelope |
///       dead: error, reason, original entry text.
/// Returns one 1 (written) or 0 (not this consumer's any more: nothing written) per item.
const COMPLETE_MANY: &str = r#"
local out = {}
local now = now_ms()
for i = 4, #KEYS do
  local b = (i - 4) * 11
  local id, consumer, kind, ttl = ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4]
  local task_id, topic, attempt, deliveries = ARGV[b + 5], ARGV[b + 6], ARGV[b + 7], ARGV[b + 8]
  local x, y, z = ARGV[b + 9], ARGV[b + 10], ARGV[b + 11]
  local R = KEYS[i]
  if not owned_by(KEYS[1], id, consumer) then
    out[#out + 1] = 0
  else
    redis.call('XACK', KEYS[1], 'genesis', id)
    local has_task = task_id ~= ''
    if kind == 'ok' then
      redis.call('HSET', R, 'task_id', task_id, 'topic', topic, 'status', 'succeeded', 'attempts', attempt, 'result', x, 'error', '', 'reason', '', 'updated_at', now)
    elseif kind == 'retry' then
      push_history(R, attempt, x, now)
      redis.call('HSET', R, 'task_id', task_id, 'topic', topic, 'status', 'retrying', 'attempts', attempt, 'error', x, 'updated_at', now)
      redis.call('ZADD', KEYS[3], now + tonumber(y), z)
    else
      local hist
      if has_task then
        hist = push_history(R, attempt, x, now)
        redis.call('HSET', R, 'task_id', task_id, 'topic', topic, 'status', 'dead', 'attempts', attempt, 'error', x, 'reason', y, 'updated_at', now)
      else
        hist = cjson.encode({{attempt = tonumber(attempt), error = x, at = now}})
      end
      redis.call('XADD', KEYS[2], '*', 'task_id', task_id, 'topic', topic, 'reason', y, 'error', x,
        'attempts', attempt, 'deliveries', deliveries, 'history', hist, 'envelope', z, 'source_id', id, 'dead_at', now)
    end
    if has_task then redis.call('PEXPIRE', R, ttl) end
    out[#out + 1] = 1
  end
end
return out
"#;

/// KEYS: stream. ARGV: consumer, entry_id.
/// Claims the entry again for the same consumer (incrementing its delivery counter).
/// Returns {deliveries, fields} or nil if the entry is no longer pending for this consumer.
const REDELIVER: &str = r#"
local p = owned_by(KEYS[1], ARGV[2], ARGV[1])
if not p then return false end
local e = redis.call('XCLAIM', KEYS[1], 'genesis', ARGV[1], 0, ARGV[2])
local fields = {}
if #e > 0 and e[1] and e[1][2] then fields = e[1][2] end
return {p[4] + 1, fields}
"#;

/// KEYS: stream. ARGV: consumer, after_id, count.
/// This consumer's own pending entries after `after_id`, each {id, deliveries, fields}.
const READ_PENDING: &str = r#"
local r = redis.call('XREADGROUP', 'GROUP', 'genesis', ARGV[1], 'COUNT', ARGV[3], 'STREAMS', KEYS[1], ARGV[2])
local out = {}
if not r or not r[1] then return out end
for _, e in ipairs(r[1][2]) do
  local p = redis.call('XPENDING', KEYS[1], 'genesis', e[1], e[1], 1)
  local n = 1
  if #p > 0 then n = p[1][4] end
  local fields = e[2]
  if not fields then fields = {} end
  out[#out + 1] = {e[1], n, fields}
end
return out
"#;

/// KEYS: stream. ARGV: dead consumer, claiming consumer, min_idle_ms, limit.
/// Claims the dead consumer's entries idle for at least min_idle; each {id, deliveries, fields}.
/// The idle condition makes concurrent reclaimers exclusive: a claim resets the idle time.
const RECLAIM: &str = r#"
local p = redis.call('XPENDING', KEYS[1], 'genesis', 'IDLE', ARGV[3], '-', '+', ARGV[4], ARGV[1])
local out = {}
for _, x in ipairs(p) do
  local e = redis.call('XCLAIM', KEYS[1], 'genesis', ARGV[2], ARGV[3], x[1])
  if #e > 0 and e[1] then
    local fields = e[1][2]
    if not fields then fields = {} end
    out[#out + 1] = {x[1], x[4] + 1, fields}
  end
end
return out
"#;

/// KEYS: retry zset, stream. ARGV: limit. Moves due retries into the stream; returns how many.
const MOVE_DUE: &str = r#"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms(), 'LIMIT', 0, ARGV[1])
for _, m in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'task', m)
  redis.call('ZREM', KEYS[1], m)
end
return #due
"#;

/// KEYS: stream. Trims entries below min(oldest pending, last delivered) — acknowledged entries only.
const TRIM: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local last = nil
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local name, ld
  for i = 1, #g, 2 do
    if g[i] == 'name' then name = g[i + 1] elseif g[i] == 'last-delivered-id' then ld = g[i + 1] end
  end
  if name == 'genesis' then last = ld end
end
if not last then return 0 end
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local threshold = last
local s = redis.call('XPENDING', KEYS[1], 'genesis')
if s[1] > 0 then
  local am, as = parse(s[2])
  local bm, bs = parse(last)
  if am < bm or (am == bm and as < bs) then threshold = s[2] end
end
return redis.call('XTRIM', KEYS[1], 'MINID', threshold)
"#;

/// KEYS: dlq, stream, result. ARGV: dlq_id, envelope, task_id, topic, ttl_ms.
/// Returns the new entry id, or nil if the dead letter is gone (replayed or purged meanwhile).
const DLQ_REPLAY: &str = r#"
if redis.call('XDEL', KEYS[1], ARGV[1]) == 0 then return false end
local id = redis.call('XADD', KEYS[2], '*', 'task', ARGV[2])
redis.call('HSET', KEYS[3], 'task_id', ARGV[3], 'topic', ARGV[4], 'status', 'queued', 'attempts', 0, 'error', '', 'reason', '', 'updated_at', now_ms())
redis.call('PEXPIRE', KEYS[3], ARGV[5])
return id
"#;

pub struct Scripts {
    pub publish: Script,
    pub begin: Script,
    pub complete_many: Script,
    pub redeliver: Script,
    pub read_pending: Script,
    pub reclaim: Script,
    pub move_due: Script,
    pub trim: Script,
    pub dlq_replay: Script,
}

fn with_prelude(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}\n{body}"))
}

impl Scripts {
    pub fn load() -> Self {
        Scripts {
            publish: with_prelude(PUBLISH),
            begin: with_prelude(BEGIN),
            complete_many: with_prelude(COMPLETE_MANY),
            redeliver: with_prelude(REDELIVER),
            read_pending: with_prelude(READ_PENDING),
            reclaim: with_prelude(RECLAIM),
            move_due: with_prelude(MOVE_DUE),
            trim: with_prelude(TRIM),
            dlq_replay: with_prelude(DLQ_REPLAY),
        }
    }
}
