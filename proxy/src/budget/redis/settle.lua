-- Tollgate budget settlement: add actual spend to the window current at
-- settle time, release the reservation (if its lease is still live), and
-- correct token rate counters from the estimate to actual usage.
--
-- KEYS: per budget: spent key, reserved key; then one key per rate limit;
--   then the admission's marks: admitted, settled.
-- ARGV: now_us, n_budgets, n_rates, settled_ttl_ms,
--   per budget (9): kind ("c" | "r"), expire_at_ms, slot, first_live_slot,
--     lease_epoch, reserved_usd, reserved_tokens, usd, tokens;
--   per rate (3): per-minute limit, estimated tokens, actual tokens.
-- Returns: per budget spent_usd, spent_tokens of the window after settling.
--
-- Exactly once: the `settled` mark makes a repeat (a retry of a call whose
-- reply was lost) change nothing and return the totals as they are. The
-- reservation is released, and token rates corrected from the estimate,
-- only when the admission's `admitted` mark was there to consume: an
-- admission whose reply was lost may or may not have reserved.

local now_us = tonumber(ARGV[1])
local nb = tonumber(ARGV[2])
local nr = tonumber(ARGV[3])
local PERIOD_US = 60000000

local function release(key, field, amount)
  if amount == '0' or redis.call('HEXISTS', key, field) == 0 then
    return
  end
  local left = redis.call('HINCRBY', key, field, '-' .. amount)
  if left <= 0 then
    redis.call('HDEL', key, field)
  end
end

local function sum_live(key, min)
  local flat = redis.call('HGETALL', key)
  local u, t = 0, 0
  for i = 1, #flat, 2 do
    local f = flat[i]
    local n = tonumber(string.sub(f, 3))
    if n == nil or n < min then
      redis.call('HDEL', key, f)
    elseif string.sub(f, 1, 1) == 'u' then
      u = u + tonumber(flat[i + 1])
    else
      t = t + tonumber(flat[i + 1])
    end
  end
  return u, t
end

local out = {}
local a = 5
local admitted_key, settled_key = KEYS[2 * nb + nr + 1], KEYS[2 * nb + nr + 2]
if not redis.call('SET', settled_key, '1', 'NX', 'PX', ARGV[4]) then
  for i = 1, nb do
    local b = a + (i - 1) * 9
    local su, st
    if ARGV[b] == 'c' then
      local v = redis.call('HMGET', KEYS[2 * i - 1], 'u', 't')
      su, st = tonumber(v[1]) or 0, tonumber(v[2]) or 0
    else
      su, st = sum_live(KEYS[2 * i - 1], tonumber(ARGV[b + 3]))
    end
    table.insert(out, su)
    table.insert(out, st)
  end
  return out
end
local admitted = redis.call('DEL', admitted_key) == 1
for i = 1, nb do
  local b = a + (i - 1) * 9
  local spent_key, reserved_key = KEYS[2 * i - 1], KEYS[2 * i]
  local epoch = ARGV[b + 4]
  if admitted then
    release(reserved_key, 'u:' .. epoch, ARGV[b + 5])
    release(reserved_key, 't:' .. epoch, ARGV[b + 6])
  end
  local usd, tokens = ARGV[b + 7], ARGV[b + 8]
  local su, st
  if ARGV[b] == 'c' then
    su = redis.call('HINCRBY', spent_key, 'u', usd)
    st = redis.call('HINCRBY', spent_key, 't', tokens)
  else
    local slot = ARGV[b + 2]
    if usd ~= '0' then
      redis.call('HINCRBY', spent_key, 'u:' .. slot, usd)
    end
    if tokens ~= '0' then
      redis.call('HINCRBY', spent_key, 't:' .. slot, tokens)
    end
    su, st = sum_live(spent_key, tonumber(ARGV[b + 3]))
  end
  redis.call('PEXPIREAT', spent_key, ARGV[b + 1])
  table.insert(out, su)
  table.insert(out, st)
end

local r0 = a + nb * 9
for j = 1, nr do
  local b = r0 + (j - 1) * 3
  local key = KEYS[2 * nb + j]
  local delta = tonumber(ARGV[b + 2])
  if admitted then
    delta = delta - tonumber(ARGV[b + 1])
  end
  local shift = (PERIOD_US / tonumber(ARGV[b])) * delta
  local tat = tonumber(redis.call('GET', key) or '')
  local new = nil
  if tat ~= nil then
    new = math.max(tat + shift, now_us)
  elseif shift > 0 then
    new = now_us + shift
  end
  if new ~= nil then
    if new <= now_us then
      redis.call('DEL', key)
    else
      local ttl = math.ceil((new - now_us) / 1000) + 1000
      redis.call('SET', key, string.format('%.0f', new), 'PX', ttl)
    end
  end
end
return out
