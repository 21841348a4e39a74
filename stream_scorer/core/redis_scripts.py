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

# What a batch of updates touches, written once per key at its end instead of once per event (the scripts run
# ~3 us per redis.call): each window's and entity hash's expiry, each hash's ``_updated_at`` (``now`` is one value
# for the whole batch), and each counter's increments summed per field, then the counter swept up to the latest
# day any of its events allows. Equal to the per-event writes (tested, with redeliveries and sweeps), except that
# a counter field older than the retention, added by an out-of-order event, is swept in the same batch instead
# of never.
BATCH = """
local windows, hashes, counters, counter_keys = {}, {}, {}, {}
local function touch(window, hash)
  windows[window] = true
  hashes[hash] = true
end
local function count(key, field, upto)
  local c = counters[key]
  if not c then
    c = {fields = {}, order = {}, upto = upto}
    counters[key] = c
    counter_keys[#counter_keys + 1] = key
  elseif upto > c.upto then
    c.upto = upto
  end
  local n = c.fields[field]
  if n then
    c.fields[field] = n + 1
  else
    c.fields[field] = 1
    c.order[#c.order + 1] = field
  end
end
local function flush(now, ttl, kinds)
  for key in pairs(windows) do redis.call('EXPIRE', key, ttl) end
  for key in pairs(hashes) do
    redis.call('HSET', key, '_updated_at', now)
    redis.call('EXPIRE', key, ttl)
  end
  for _, key in ipairs(counter_keys) do
    local c = counters[key]
    for _, field in ipairs(c.order) do redis.call('HINCRBY', key, field, c.fields[field]) end
    sweep(key, c.upto, kinds)
    redis.call('HSET', key, '_updated_at', now)
  end
end
"""

# Per transaction, KEYS: card window, card hash, merchant hash, mcc hash;
# ARGV: now, ttl, then per transaction: member, ts, day, trim-before, last day to drop.
# The window insert decides whether the event is new: a redelivered event changes nothing.
APPLY_TRANSACTIONS = SWEEP + BATCH + """
local now, ttl = ARGV[1], ARGV[2]
local added = 0
for i = 0, #KEYS / 4 - 1 do
  local k, a = 4 * i, 2 + 5 * i
  if redis.call('ZADD', KEYS[k + 1], ARGV[a + 2], ARGV[a + 1]) == 1 then
    added = added + 1
    redis.call('ZREMRANGEBYSCORE', KEYS[k + 1], '-inf', '(' .. ARGV[a + 4])
    touch(KEYS[k + 1], KEYS[k + 2])
    local field, upto = 'tx:' .. ARGV[a + 3], tonumber(ARGV[a + 5])
    count(KEYS[k + 3], field, upto)
    count(KEYS[k + 4], field, upto)
  end
end
flush(now, ttl, {'tx', 'fraud'})
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
APPLY_SESSION_EVENTS = SWEEP + BATCH + """
local now, ttl = ARGV[1], ARGV[2]
local added = 0
for i = 0, #KEYS / 3 - 1 do
  local k, a = 3 * i, 2 + 5 * i
  if redis.call('ZADD', KEYS[k + 1], ARGV[a + 2], ARGV[a + 1]) == 1 then
    added = added + 1
    redis.call('ZREMRANGEBYSCORE', KEYS[k + 1], '-inf', '(' .. ARGV[a + 4])
    touch(KEYS[k + 1], KEYS[k + 2])
    count(KEYS[k + 3], ARGV[a + 3], tonumber(ARGV[a + 5]))
  end
end
flush(now, ttl, {'view', 'cart', 'purchase'})
return added
"""
