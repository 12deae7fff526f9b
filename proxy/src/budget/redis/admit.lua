-- Tollgate budget admission: check every budget and rate limit of one
-- request and reserve all of them, or none.
--
-- KEYS: per budget: spent key, reserved key; then one key per rate limit;
--   then this admission's marks: admitted, settled.
-- ARGV: now_us, n_budgets, n_rates, lease_epoch, live_epochs, reserved_ttl_ms,
--   per budget (8): kind ("c" calendar | "r" rolling), expire_at_ms,
--     first_live_slot, limit_usd (-1: none), limit_tokens (-1: none),
--     usd, tokens, enforce (1 | 0);
--   per rate (2): per-minute limit, cost.
-- Returns: admitted, then per budget spent_usd, spent_tokens, reserved_usd,
--   reserved_tokens, oldest spent slot (rolling; -1: none), fits; then per
--   rate allowed, tat_us.
--
-- Exactly once: a reply the proxy never saw does not mean the script did
-- not run. An admission that reserves sets its `admitted` mark (as long as
-- its reservations live), which the settlement consumes; one that arrives
-- after its own settlement (the proxy gave up on it and settled or
-- released already) reserves nothing.

local now_us = tonumber(ARGV[1])
local nb = tonumber(ARGV[2])
local nr = tonumber(ARGV[3])
local epoch = tonumber(ARGV[4])
local live = tonumber(ARGV[5])
local reserved_ttl = tonumber(ARGV[6])
local PERIOD_US = 60000000

-- Sums the "u:<n>" and "t:<n>" fields of a hash, deleting those below min;
-- also returns the lowest live n holding a non-zero amount (-1: none).
local function sum_live(key, min)
  local flat = redis.call('HGETALL', key)
  local u, t, oldest = 0, 0, -1
  for i = 1, #flat, 2 do
    local f = flat[i]
    local n = tonumber(string.sub(f, 3))
    local v = tonumber(flat[i + 1])
    if n == nil or n < min then
      redis.call('HDEL', key, f)
    else
      if string.sub(f, 1, 1) == 'u' then
        u = u + v
      else
        t = t + v
      end
      if v > 0 and (oldest < 0 or n < oldest) then
        oldest = n
      end
    end
  end
  return u, t, oldest
end

local out = {0}
local admitted = redis.call('EXISTS', KEYS[2 * nb + nr + 2]) == 0
local a = 7
for i = 1, nb do
  local b = a + (i - 1) * 8
  local spent_key, reserved_key = KEYS[2 * i - 1], KEYS[2 * i]
  local su, st, oldest = 0, 0, -1
  if ARGV[b] == 'c' then
    local v = redis.call('HMGET', spent_key, 'u', 't')
    su, st = tonumber(v[1]) or 0, tonumber(v[2]) or 0
  else
    su, st, oldest = sum_live(spent_key, tonumber(ARGV[b + 2]))
  end
  local ru, rt = sum_live(reserved_key, epoch - live)
  local lu, lt = tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
  local fits = (lu < 0 or su + ru + tonumber(ARGV[b + 5]) <= lu)
    and (lt < 0 or st + rt + tonumber(ARGV[b + 6]) <= lt)
  if not fits and ARGV[b + 7] == '1' then
    admitted = false
  end
  table.insert(out, su)
  table.insert(out, st)
  table.insert(out, ru)
  table.insert(out, rt)
  table.insert(out, oldest)
  table.insert(out, fits and 1 or 0)
end

local tats = {}
local r0 = a + nb * 8
for j = 1, nr do
  local b = r0 + (j - 1) * 2
  local limit, cost = tonumber(ARGV[b]), tonumber(ARGV[b + 1])
  local tat = tonumber(redis.call('GET', KEYS[2 * nb + j]) or '0')
  if tat < now_us then
    tat = now_us
  end
  local new = tat + (PERIOD_US / limit) * math.min(cost, limit)
  local allowed = new - now_us <= PERIOD_US
  if not allowed then
    admitted = false
  end
  tats[j] = new
  table.insert(out, allowed and 1 or 0)
  table.insert(out, new)
end

if admitted then
  out[1] = 1
  for i = 1, nb do
    local b = a + (i - 1) * 8
    local reserved_key = KEYS[2 * i]
    local usd, tokens = ARGV[b + 5], ARGV[b + 6]
    if usd ~= '0' then
      redis.call('HINCRBY', reserved_key, 'u:' .. epoch, usd)
    end
    if tokens ~= '0' then
      redis.call('HINCRBY', reserved_key, 't:' .. epoch, tokens)
    end
    redis.call('PEXPIRE', reserved_key, reserved_ttl)
  end
  for j = 1, nr do
    local ttl = math.ceil((tats[j] - now_us) / 1000) + 1000
    redis.call('SET', KEYS[2 * nb + j], string.format('%.0f', tats[j]), 'PX', ttl)
  end
  redis.call('SET', KEYS[2 * nb + nr + 1], '1', 'PX', reserved_ttl)
end
return out
