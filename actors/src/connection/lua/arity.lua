-- Prepended to every Genesis script by `connection::script`: a script states the shape of its KEYS and
-- ARGV as `local` constants and checks them first, so a caller that pushes one argument too many or too
-- few gets an error naming the script instead of a script that silently reads nil.

local function arity(name, nkeys, nargv)
  if #KEYS ~= nkeys or #ARGV ~= nargv then
    error(string.format('%s: expects %d KEYS and %d ARGV, got %d and %d', name, nkeys, nargv, #KEYS, #ARGV))
  end
end

-- A batched script: a fixed head (head_keys KEYS, head_argv ARGV), then items of item_keys KEYS and
-- item_argv ARGV each. Returns the number of items.
local function batch_arity(name, head_keys, head_argv, item_keys, item_argv)
  local n = (#KEYS - head_keys) / item_keys
  if n < 0 or n ~= math.floor(n) or #ARGV ~= head_argv + n * item_argv then
    error(string.format('%s: expects %d+%d*n KEYS and %d+%d*n ARGV, got %d and %d',
      name, head_keys, item_keys, head_argv, item_argv, #KEYS, #ARGV))
  end
  return n
end
