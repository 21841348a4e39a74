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

# Until the sorted sets of earlier versions (``features:card:{id}:tx``, member ``id|amount|country|merchant``,
# score = event time) have expired (twice the retention after their last write), a card without a log is read
# from its set, in time order; the first update of the card writes the log and deletes the set. The keys are
# derived here, not passed (one Redis, as everywhere in these scripts).
LEGACY_WINDOWS = """
local function card_hash(log_key)
  return string.sub(log_key, 1, -5)
end
local function legacy_body(log_key)
  local flat = redis.call('ZRANGE', card_hash(log_key) .. ':tx', 0, -1, 'WITHSCORES')
  if #flat == 0 then return nil end
  local parts = {}
  for i = 1, #flat, 2 do parts[#parts + 1] = '\\n' .. flat[i] .. '|' .. flat[i + 1] end
  return table.concat(parts)
end
"""

# KEYS: the card logs to read (ARGV[1] of them), then the counter hashes to read whole. A log is one string
# (see ``stream_scorer.core.window.read_card_log``): one GET costs Redis ~3.5 us per card where the sorted
# set's ZRANGEBYSCORE WITHSCORES and the hash's HGET cost ~22.
FETCH_LOGS = LEGACY_WINDOWS + """
local n = tonumber(ARGV[1])
local out = {}
for i = 1, n do
  out[i] = redis.call('GET', KEYS[i])
  if not out[i] then
    local body = legacy_body(KEYS[i])
    if body then out[i] = (redis.call('HGET', card_hash(KEYS[i]), '_updated_at') or '0') .. body end
  end
end
for j = n + 1, #KEYS do
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

# A card log (``stream_scorer.core.window.read_card_log``): ``{_updated_at}`` then ``\n{member}|{time}`` per
# transaction in arrival order. A batch reads each log once, appends to it in Lua, and writes it back once (SET
# with its expiry). A transaction id already in the log is not added again; after each append the log's leading
# entries older than that event's retention are dropped (the in-memory state's rule: arrival order, so an
# out-of-order older entry stays until the ones before it go; reads keep only their window).
CARD_LOGS = """
local logs, log_keys = {}, {}
local function log_add(key, id, entry, before)
  local log = logs[key]
  if not log then
    local stored = redis.call('GET', key)
    local body, legacy = '', nil
    if stored then
      local cut = string.find(stored, '\\n', 1, true)
      if cut then body = string.sub(stored, cut) end
    else
      legacy = legacy_body(key)
      body = legacy or ''
    end
    log = {body = body, changed = false, legacy = legacy}
    logs[key] = log
    log_keys[#log_keys + 1] = key
  end
  local body = log.body
  if string.find(body, '\\n' .. id .. '|', 1, true) then return false end
  body = body .. '\\n' .. entry
  while true do  -- the first entry's time follows its fourth '|' (ids, countries and merchants have none)
    local at = 2
    for _ = 1, 4 do at = string.find(body, '|', at, true) + 1 end
    local stop = string.find(body, '\\n', at, true)
    if tonumber(string.sub(body, at, (stop or 0) - 1)) >= before then break end
    if not stop then
      body = ''
      break
    end
    body = string.sub(body, stop)
  end
  log.body = body
  log.changed = true
  return true
end
local function log_flush(now, ttl)
  for _, key in ipairs(log_keys) do
    local log = logs[key]
    if log.changed then
      redis.call('SET', key, now .. log.body, 'EX', ttl)
      if log.legacy then redis.call('DEL', card_hash(key) .. ':tx') end
    end
  end
end
"""

# Per transaction, KEYS: card log, card hash, merchant hash, mcc hash;
# ARGV: now, ttl, then per transaction: id, log entry, day, keep-from (retention), last day to drop.
# The log decides whether the event is new: a redelivered event changes nothing.
APPLY_TRANSACTIONS = SWEEP + BATCH + LEGACY_WINDOWS + CARD_LOGS + """
local now, ttl = ARGV[1], ARGV[2]
local added = 0
for i = 0, #KEYS / 4 - 1 do
  local k, a = 4 * i, 2 + 5 * i
  if log_add(KEYS[k + 1], ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 4])) then
    added = added + 1
    hashes[KEYS[k + 2]] = true
    local field, upto = 'tx:' .. ARGV[a + 3], tonumber(ARGV[a + 5])
    count(KEYS[k + 3], field, upto)
    count(KEYS[k + 4], field, upto)
  end
end
log_flush(now, ttl)
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
