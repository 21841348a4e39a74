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

# Per transaction, KEYS: card window, card hash, merchant hash, mcc hash;
# ARGV: now, ttl, then per transaction: member, ts, day, trim-before, day-to-drop.
# The window insert decides whether the event is new: a redelivered event changes nothing.
APPLY_TRANSACTIONS = """
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
      redis.call('HDEL', KEYS[k + j], 'tx:' .. ARGV[a + 5], 'fraud:' .. ARGV[a + 5])
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
# ARGV: now, ttl, then per event: member, ts, counter field, trim-before, day-to-drop.
APPLY_SESSION_EVENTS = """
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
    local drop = ARGV[a + 5]
    redis.call('HDEL', KEYS[k + 3], 'view:' .. drop, 'cart:' .. drop, 'purchase:' .. drop)
    redis.call('HSET', KEYS[k + 3], '_updated_at', now)
  end
end
return added
"""
