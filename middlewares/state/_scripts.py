"""RedisState's Lua scripts: each operation is one script, run atomically in Redis.

The algorithm is MemoryState's (see :mod:`middlewares.state`), over four keys
per deployment: ``rec`` (a hash: ``open_until``, ``probing``, ``estimate``,
``estimated_at``), ``usage`` and ``outcomes`` (hashes of window buckets:
field ``a<index>`` the first count, requests; ``b<index>`` the second, tokens
or failures) and ``leases`` (a sorted set of in-flight slots scored by the
time they expire). Bucket indexes are computed by the caller, as MemoryState
computes them, and sent with the policy's numbers as ARGV; nothing is read
first and written back later. Numbers come back as strings where they may
have a fraction (Redis would truncate a Lua number), ``''`` for none.

Every script ends with the deployment's record as the caller sees it:
``in_flight, open_until, probing, requests, tokens, estimate, estimated_at``.
"""

from __future__ import annotations

from middlewares.shared import script

__all__ = ["ACQUIRE", "RELEASE", "VIEW"]

_PRELUDE = """
local function fmt(x) return string.format('%.17g', x) end

-- The sums of a window's buckets at index >= low, and the buckets by index;
-- older fields are deleted when prune is set.
local function window(key, low, prune)
  local flat = redis.call('HGETALL', key)
  local first, second, buckets, stale = 0, 0, {}, {}
  for i = 1, #flat, 2 do
    local field = flat[i]
    local index = tonumber(string.sub(field, 2))
    if index < low then
      stale[#stale + 1] = field
    else
      local value = tonumber(flat[i + 1])
      local bucket = buckets[index]
      if not bucket then
        bucket = {0, 0}
        buckets[index] = bucket
      end
      if string.sub(field, 1, 1) == 'a' then
        first = first + value
        bucket[1] = bucket[1] + value
      else
        second = second + value
        bucket[2] = bucket[2] + value
      end
    end
  end
  if prune and #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
  return first, second, buckets
end

-- The record: in_flight, open_until, probing, requests, tokens, estimate, estimated_at
-- (the window's sums counted here unless the caller knows them).
local function record(now, low, limited, requests, tokens)
  local in_flight = redis.call('ZCOUNT', KEYS[4], '(' .. now, '+inf')
  local rec = redis.call('HMGET', KEYS[1], 'open_until', 'probing', 'estimate', 'estimated_at')
  if not limited then
    requests, tokens = '', ''
  elseif requests == nil then
    requests, tokens = window(KEYS[2], low, false)
  end
  return {in_flight, rec[1] or '', rec[2] or '', requests, tokens, rec[3] or '', rec[4] or ''}
end
"""

# KEYS: rec, usage, outcomes, leases.
# ARGV: now, cost, rpm, tpm, max_concurrency ('' for none), usage index, window steps,
# step seconds, lease id, lease deadline, key ttl ms, short wait.
# -> {ok, reason, retry_after, probe, <record>}
ACQUIRE = script(
    _PRELUDE
    + """
local now, cost = tonumber(ARGV[1]), tonumber(ARGV[2])
local rpm, tpm, most = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local index, steps, step = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local low, limited = index - steps, (rpm ~= nil or tpm ~= nil)
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', ARGV[1])

local function refuse(reason, after)
  local out = {0, reason, after, 0}
  for _, v in ipairs(record(ARGV[1], low, limited)) do out[#out + 1] = v end
  return out
end

-- The earliest time old buckets leave the window enough for cost to fit.
local function wait(buckets, used, limit, which)
  local order = {}
  for at, _ in pairs(buckets) do order[#order + 1] = at end
  table.sort(order)
  for _, at in ipairs(order) do
    used = used - buckets[at][which]
    if used + cost <= limit then return fmt(math.max((at + steps + 1) * step - now, 0)) end
  end
  return fmt(step)
end

local probe = 0
local state = redis.call('HMGET', KEYS[1], 'open_until', 'probing')
local open_until = tonumber(state[1])
if open_until then
  if now < open_until then return refuse('breaker', fmt(open_until - now)) end
  local probing = tonumber(state[2])
  if probing and probing > now then return refuse('breaker', ARGV[12]) end
  probe = 1
end
if most and redis.call('ZCARD', KEYS[4]) >= most then return refuse('concurrency', ARGV[12]) end
local requests, tokens
if limited then
  local buckets
  requests, tokens, buckets = window(KEYS[2], low, true)
  if rpm and requests + 1 > rpm then return refuse('rpm', wait(buckets, requests, rpm, 1)) end
  if tpm and tokens + cost > tpm then
    if cost > tpm then return refuse('tpm', '') end
    return refuse('tpm', wait(buckets, tokens, tpm, 2))
  end
  redis.call('HINCRBY', KEYS[2], 'a' .. index, 1)
  redis.call('HINCRBY', KEYS[2], 'b' .. index, cost)
  redis.call('PEXPIRE', KEYS[2], ARGV[11])
  requests, tokens = requests + 1, tokens + cost
end
redis.call('ZADD', KEYS[4], ARGV[10], ARGV[9])
redis.call('PEXPIRE', KEYS[4], ARGV[11])
if probe == 1 then
  redis.call('HSET', KEYS[1], 'probing', ARGV[10])
  redis.call('PEXPIRE', KEYS[1], ARGV[11])
end
local out = {1, '', '', probe}
for _, v in ipairs(record(ARGV[1], low, limited, requests, tokens)) do out[#out + 1] = v end
return out
"""
)

# KEYS: rec, usage, outcomes, leases.
# ARGV: now, lease id, probe (0/1), cost bucket index, tokens - cost (''), latency (''),
# outcome, min_requests, failure_ratio, cooldown, retry_after (''), breaker index,
# breaker steps, decay, key ttl ms, usage index now, window steps, limited (0/1).
# -> <record>
RELEASE = script(
    _PRELUDE
    + """
local now = tonumber(ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[2])
local delta = tonumber(ARGV[5])
if delta and delta ~= 0 and redis.call('HEXISTS', KEYS[2], 'b' .. ARGV[4]) == 1 then
  redis.call('HINCRBY', KEYS[2], 'b' .. ARGV[4], delta)
end

-- Peak-EWMA: the first sample, or one above the (decayed) estimate, replaces it;
-- one below pulls it down by how long it has been since the last sample.
local latency = tonumber(ARGV[6])
if latency then
  local rec = redis.call('HMGET', KEYS[1], 'estimate', 'estimated_at')
  local estimate, at = tonumber(rec[1]), tonumber(rec[2])
  if estimate then
    local weight = math.exp(math.min(at - now, 0) / tonumber(ARGV[14]))
    local current = estimate * weight
    if latency >= current then
      estimate = latency
    else
      estimate = current * weight + latency * (1 - weight)
    end
  else
    estimate = latency
  end
  redis.call('HSET', KEYS[1], 'estimate', fmt(estimate), 'estimated_at', ARGV[1])
end

local min_requests = tonumber(ARGV[8])
if min_requests > 0 then
  local outcome, probe = ARGV[7], ARGV[3] == '1'
  local reopen = now + math.max(tonumber(ARGV[10]), tonumber(ARGV[11]) or 0)
  if outcome == 'ignored' then
    if probe then redis.call('HDEL', KEYS[1], 'probing') end
  elseif probe then
    redis.call('HDEL', KEYS[1], 'probing')
    redis.call('DEL', KEYS[3])
    if outcome == 'success' then
      redis.call('HDEL', KEYS[1], 'open_until')
    else
      redis.call('HSET', KEYS[1], 'open_until', fmt(reopen))
    end
  else
    local bindex = tonumber(ARGV[12])
    local requests, failures = window(KEYS[3], bindex - tonumber(ARGV[13]), true)
    redis.call('HINCRBY', KEYS[3], 'a' .. bindex, 1)
    requests = requests + 1
    if outcome == 'failure' then
      redis.call('HINCRBY', KEYS[3], 'b' .. bindex, 1)
      failures = failures + 1
      local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until'))
      if open_until then
        if reopen > open_until then redis.call('HSET', KEYS[1], 'open_until', fmt(reopen)) end
      elseif requests >= min_requests and failures >= tonumber(ARGV[9]) * requests then
        redis.call('HSET', KEYS[1], 'open_until', fmt(reopen))
        redis.call('DEL', KEYS[3])
      end
    end
    redis.call('PEXPIRE', KEYS[3], ARGV[15])
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[15])
return record(ARGV[1], tonumber(ARGV[16]) - tonumber(ARGV[17]), ARGV[18] == '1')
"""
)

# KEYS: rec, usage, outcomes, leases. ARGV: now, usage index, window steps, limited (0/1).
# -> <record>
VIEW = script(
    _PRELUDE
    + """
return record(ARGV[1], tonumber(ARGV[2]) - tonumber(ARGV[3]), ARGV[4] == '1')
"""
)
