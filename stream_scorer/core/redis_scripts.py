"""Lua scripts of the Redis feature store. Each handles a whole batch in one call: one round trip and one reply
parsed by hiredis, instead of one command (and its Python-side packing and parsing) per key.

A script touches many keys, so on Redis Cluster a batch must be grouped by hash slot first (not done here:
one Redis, or a proxy that routes scripts, is assumed).
"""

# KEYS: pairs (window sorted set, entity hash) for each read, then the counter hashes to read whole.
# ARGV: number of pairs, then (min score, max score) per pair.
FETCH = """
local n = tonumber(ARGV[1])
local out = {}
for i = 1, n do
  out[2 * i - 1] = redis.call('ZRANGEBYSCORE', KEYS[2 * i - 1], ARGV[2 * i], ARGV[2 * i + 1], 'WITHSCORES')
  out[2 * i] = redis.call('HGET', KEYS[2 * i], '_updated_at')
end
for j = 2 * n + 1, #KEYS do
  out[j] = redis.call('HGETALL', KEYS[j])
end
return out
"""

# Daily counters older than the retention are removed: every day up to ``upto`` the first time a hash is swept
# (HKEYS), then only the days since the last sweep (kept in ``_swept``); out-of-order older events sweep nothing.
SWEEP = """
local function sweep(key, upto, kinds)
  local swept = redis.call('HGET', key, '_swept')
  if not swept then
    for _, f in ipairs(redis.call('HKEYS', key)) do
      local d = tonumber(string.match(f, ':(%-?%d+)$'))
      if d and d <= upto then redis.call('HDEL', key, f) end
    end
  else
    for d = tonumber(swept) + 1, upto do
      for _, kind in ipairs(kinds) do redis.call('HDEL', key, kind .. ':' .. d) end
    end
  end
  if (not swept) or tonumber(swept) < upto then redis.call('HSET', key, '_swept', upto) end
end
"""

# Per transaction, KEYS: card window, card hash, merchant hash, mcc hash;
# ARGV: now, ttl, then per transaction: member, ts, day, trim-before, last day to drop.
# The window insert decides whether the event is new: a redelivered event changes nothing.
APPLY_TRANSACTIONS = SWEEP + """
local now, ttl = ARGV[1], ARGV[2]
local added = 0
for i = 0, #KEYS / 4 - 1 do
  local k, a = 4 * i, 2 + 5 * i
  if redis.call('ZADD', KEYS[k + 1], ARGV[a + 2], ARGV[a + 1]) == 1 then
    added = added + 1
    redis.call('ZREMRANGEBYSCORE', KEYS[k + 1], '-inf', '(' .. ARGV[a + 4])
    redis.call('EXPIRE', KEYS[k + 1], ttl)
    redis.call('HSET', KEYS[k + 2], '_updated_at', now)
    redis.call('EXPIRE', KEYS[k + 2], ttl)
    for j = 3, 4 do
      redis.call('HINCRBY', KEYS[k + j], 'tx:' .. ARGV[a + 3], 1)
      sweep(KEYS[k + j], tonumber(ARGV[a + 5]), {'tx', 'fraud'})
      redis.call('HSET', KEYS[k + j], '_updated_at', now)
    end
  end
end
return added
"""

# Per label, KEYS: seen marker, merchant hash, mcc hash; ARGV: now, marker ttl, then the transaction's day.
APPLY_LABELS = """
local now, ttl = ARGV[1], ARGV[2]
local added = 0
for i = 0, #KEYS / 3 - 1 do
  local k = 3 * i
  if redis.call('SET', KEYS[k + 1], '1', 'NX', 'EX', ttl) then
    added = added + 1
    for j = 2, 3 do
      redis.call('HINCRBY', KEYS[k + j], 'fraud:' .. ARGV[3 + i], 1)
      redis.call('HSET', KEYS[k + j], '_updated_at', now)
    end
  end
end
return added
"""

# Per session event, KEYS: user window, user hash, item hash;
# ARGV: now, ttl, then per event: member, ts, counter field, trim-before, last day to drop.
APPLY_SESSION_EVENTS = SWEEP + """
local now, ttl = ARGV[1], ARGV[2]
local added = 0
for i = 0, #KEYS / 3 - 1 do
  local k, a = 3 * i, 2 + 5 * i
  if redis.call('ZADD', KEYS[k + 1], ARGV[a + 2], ARGV[a + 1]) == 1 then
    added = added + 1
    redis.call('ZREMRANGEBYSCORE', KEYS[k + 1], '-inf', '(' .. ARGV[a + 4])
    redis.call('EXPIRE', KEYS[k + 1], ttl)
    redis.call('HSET', KEYS[k + 2], '_updated_at', now)
    redis.call('EXPIRE', KEYS[k + 2], ttl)
    redis.call('HINCRBY', KEYS[k + 3], ARGV[a + 3], 1)
    sweep(KEYS[k + 3], tonumber(ARGV[a + 5]), {'view', 'cart', 'purchase'})
    redis.call('HSET', KEYS[k + 3], '_updated_at', now)
  end
end
return added
"""
