"""The Redis feature store: reads the state the feature definitions need and applies the online update rules.

Layout (``features:{entity}:{id}`` hashes, each with ``_updated_at`` in epoch seconds):

* ``features:card:{id}``: ``_updated_at``; ``features:card:{id}:tx``: sorted set of the card's transactions,
  member ``transaction_id|amount|country|merchant_id``, score = event time. Windows are read as
  ``[t - 7d, t)``, so reading never sees the event itself or later ones and a redelivery reads what it read.
* ``features:merchant:{id}`` / ``features:mcc:{code}``: daily counters ``tx:{day}`` and ``fraud:{day}``.
* ``features:user:{id}``: ``_updated_at``; ``features:user:{id}:events``: sorted set of session events,
  member ``event_id|type|category|price|item_id|session_id``.
* ``features:item:{id}``: daily counters ``view:{day}``, ``cart:{day}``, ``purchase:{day}``.

Every update is a Lua script, atomic per event and idempotent per event id (the sorted-set insert decides
whether the counters move), so a redelivered event changes nothing. Reads for a whole batch go out as one
pipeline: one round trip per request or per batch; merchant, MCC and item counters may come from an in-process
TTL cache (``FEATURE_CACHE_TTL``) instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from stream_scorer.config import RedisSettings
from stream_scorer.core.feature_state import (
    CARD_RETENTION_SEC,
    ITEM_RETENTION_DAYS,
    NO_SESSION,
    RISK_RETENTION_DAYS,
    USER_RETENTION_SEC,
    LabelUpdate,
    SessionUpdate,
    TransactionUpdate,
)
from stream_scorer.core.features import (
    CARD_WINDOW_SEC,
    USER_WINDOW_SEC,
    CardTx,
    DailyCounts,
    FraudState,
    PersonalizationState,
    UserEvent,
    day_of,
)
from stream_scorer.metrics import Metrics

LABEL_SEEN_TTL_SEC = 90 * 86400


def card_key(card_id: str) -> str:
    return f"features:card:{card_id}"


def merchant_key(merchant_id: str) -> str:
    return f"features:merchant:{merchant_id}"


def mcc_key(mcc_code: str) -> str:
    return f"features:mcc:{mcc_code}"


def user_key(user_id: str) -> str:
    return f"features:user:{user_id}"


def item_key(item_id: str) -> str:
    return f"features:item:{item_id}"


def create_redis(settings: RedisSettings) -> aioredis.Redis:
    """A pooled asyncio client (hiredis parser when installed); no connection is opened until first use."""
    password = settings.password.get_secret_value() if settings.password else None
    return aioredis.Redis(
        host=settings.host, port=settings.port, db=settings.db, password=password, decode_responses=True,
        max_connections=settings.max_connections, socket_timeout=settings.socket_timeout_sec,
        socket_connect_timeout=settings.socket_timeout_sec, health_check_interval=30,
    )


class FeatureStore(Protocol):
    """What the scoring core needs from a feature store (Redis here; in-memory fakes in unit tests)."""

    async def fetch_fraud_states(self, keys: Sequence[FraudKey]) -> list[FraudState]: ...

    async def fetch_personalization_states(self, keys: Sequence[PersonalizationKey]) -> list[PersonalizationState]:
        ...

    async def apply_transactions(self, updates: Sequence[TransactionUpdate]) -> int: ...

    async def apply_labels(self, updates: Sequence[LabelUpdate]) -> int: ...

    async def apply_session_events(self, updates: Sequence[SessionUpdate]) -> int: ...

    async def ping(self) -> float: ...


FraudKey = tuple[str, str, str, float]
"""(card_id, merchant_id, mcc_code, event time): what a fraud state is read for."""
PersonalizationKey = tuple[str, str, float]
"""(user_id, item_id, event time)."""

_APPLY_TRANSACTION = """
local added = redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
if added == 1 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[5])
  redis.call('EXPIRE', KEYS[1], ARGV[7])
  redis.call('HSET', KEYS[2], '_updated_at', ARGV[4])
  redis.call('EXPIRE', KEYS[2], ARGV[7])
  for i = 3, 4 do
    redis.call('HINCRBY', KEYS[i], 'tx:' .. ARGV[3], 1)
    redis.call('HDEL', KEYS[i], 'tx:' .. ARGV[6], 'fraud:' .. ARGV[6])
    redis.call('HSET', KEYS[i], '_updated_at', ARGV[4])
  end
end
return added
"""

_APPLY_LABEL = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[3]) then
  for i = 2, 3 do
    redis.call('HINCRBY', KEYS[i], 'fraud:' .. ARGV[1], 1)
    redis.call('HSET', KEYS[i], '_updated_at', ARGV[2])
  end
  return 1
end
return 0
"""

_APPLY_SESSION_EVENT = """
local added = redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
if added == 1 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[5])
  redis.call('EXPIRE', KEYS[1], ARGV[7])
  redis.call('HSET', KEYS[2], '_updated_at', ARGV[4])
  redis.call('EXPIRE', KEYS[2], ARGV[7])
  redis.call('HINCRBY', KEYS[3], ARGV[3], 1)
  redis.call('HDEL', KEYS[3], 'view:' .. ARGV[6], 'cart:' .. ARGV[6], 'purchase:' .. ARGV[6])
  redis.call('HSET', KEYS[3], '_updated_at', ARGV[4])
end
return added
"""


class SlowFeatureCache:
    """In-process TTL cache for the daily counters of merchants, MCCs and items.

    Only these may be cached: the features read them for days that ended long enough ago (fraud risk: a week;
    item popularity: yesterday and before), so a cached copy differs from Redis only by labels that arrived
    within the TTL. Card and user windows change with every event and are never cached.
    """

    def __init__(self, ttl_sec: float, *, max_entries: int = 200_000, metrics: Metrics | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_sec
        self._max = max_entries
        self._metrics = metrics
        self._clock = clock
        self._entries: dict[str, tuple[float, DailyCounts, float | None]] = {}

    @property
    def enabled(self) -> bool:
        return self._ttl > 0

    def get(self, key: str) -> tuple[DailyCounts, float | None] | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] < self._clock():
            return None
        return entry[1], entry[2]

    def put(self, key: str, counts: DailyCounts, updated_at: float | None) -> None:
        if len(self._entries) >= self._max:
            self._entries.clear()  # crude but bounded; a full cache refills within one TTL
        self._entries[key] = (self._clock() + self._ttl, counts, updated_at)

    def record(self, hits: int, misses: int) -> None:
        if self._metrics is not None:
            if hits:
                self._metrics.feature_cache.labels("hit").inc(hits)
            if misses:
                self._metrics.feature_cache.labels("miss").inc(misses)


class RedisFeatureStore:
    def __init__(self, redis: aioredis.Redis, *, cache: SlowFeatureCache | None = None) -> None:
        self._redis = redis
        self._cache = cache if cache is not None and cache.enabled else None
        self._apply_tx = redis.register_script(_APPLY_TRANSACTION)
        self._apply_label = redis.register_script(_APPLY_LABEL)
        self._apply_session = redis.register_script(_APPLY_SESSION_EVENT)

    @property
    def redis(self) -> aioredis.Redis:
        return self._redis

    async def ping(self) -> float:
        """Round-trip time of a PING in seconds (raises when Redis does not answer)."""
        start = time.perf_counter()
        await self._redis.ping()
        return time.perf_counter() - start

    # ------------------------------------------------------------------------------------------------- reads
    async def fetch_fraud_states(self, keys: Sequence[FraudKey]) -> list[FraudState]:
        """One pipeline: each card's window and freshness, plus each distinct merchant / MCC not cached."""
        if not keys:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for card_id, _, _, ts in keys:
            pipe.zrangebyscore(card_key(card_id) + ":tx", ts - CARD_WINDOW_SEC, f"({ts!r}", withscores=True)
            pipe.hget(card_key(card_id), "_updated_at")
        slow_keys = {merchant_key(m) for _, m, _, _ in keys} | {mcc_key(c) for _, _, c, _ in keys}
        slow, fetched = self._slow_lookup(slow_keys, pipe)
        raw = await pipe.execute()
        self._slow_fill(slow, fetched, raw[2 * len(keys):])
        states = []
        for row, (_, merchant_id, mcc_code, _) in enumerate(keys):
            members, card_updated = raw[2 * row], raw[2 * row + 1]
            merchant, m_updated = slow[merchant_key(merchant_id)]
            mcc, c_updated = slow[mcc_key(mcc_code)]
            history = [_card_tx(member, score) for member, score in members]
            states.append(FraudState(history, merchant, mcc, _latest(card_updated, m_updated, c_updated)))
        return states

    async def fetch_personalization_states(self, keys: Sequence[PersonalizationKey]) -> list[PersonalizationState]:
        if not keys:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for user_id, _, ts in keys:
            pipe.zrangebyscore(user_key(user_id) + ":events", ts - USER_WINDOW_SEC, f"({ts!r}", withscores=True)
            pipe.hget(user_key(user_id), "_updated_at")
        slow, fetched = self._slow_lookup({item_key(i) for _, i, _ in keys}, pipe)
        raw = await pipe.execute()
        self._slow_fill(slow, fetched, raw[2 * len(keys):])
        states = []
        for row, (_, item_id, _) in enumerate(keys):
            members, user_updated = raw[2 * row], raw[2 * row + 1]
            item, i_updated = slow[item_key(item_id)]
            history = [_user_event(member, score) for member, score in members]
            states.append(PersonalizationState(history, item, _latest(user_updated, i_updated)))
        return states

    def _slow_lookup(self, keys: set[str], pipe: Pipeline
                     ) -> tuple[dict[str, tuple[DailyCounts, float | None]], list[str]]:
        """Serve what the cache holds; queue an HGETALL on ``pipe`` for the rest (returned in order)."""
        found: dict[str, tuple[DailyCounts, float | None]] = {}
        missing: list[str] = []
        for key in sorted(keys):
            cached = self._cache.get(key) if self._cache is not None else None
            if cached is None:
                missing.append(key)
                pipe.hgetall(key)
            else:
                found[key] = cached
        if self._cache is not None:
            self._cache.record(len(found), len(missing))
        return found, missing

    def _slow_fill(self, found: dict[str, tuple[DailyCounts, float | None]], keys: list[str],
                   raw: Sequence[dict[str, str]]) -> None:
        for key, fields in zip(keys, raw, strict=True):
            counts, updated = _daily_counts(fields)
            found[key] = (counts, updated)
            if self._cache is not None:
                self._cache.put(key, counts, updated)

    # ----------------------------------------------------------------------------------------------- updates
    async def apply_transactions(self, updates: Sequence[TransactionUpdate]) -> int:
        if not updates:
            return 0
        now = repr(time.time())
        pipe = self._redis.pipeline(transaction=False)
        for u in updates:
            day = day_of(u.ts)
            member = f"{u.transaction_id}|{u.amount!r}|{u.country or ''}|{u.merchant_id}"
            await self._apply_tx(
                keys=[card_key(u.card_id) + ":tx", card_key(u.card_id), merchant_key(u.merchant_id),
                      mcc_key(u.mcc_code)],
                args=[member, repr(u.ts), day, now, repr(u.ts - CARD_RETENTION_SEC),
                      day - RISK_RETENTION_DAYS, int(CARD_RETENTION_SEC * 2)],
                client=pipe,
            )
        return sum(int(r) for r in await _execute(pipe))

    async def apply_labels(self, updates: Sequence[LabelUpdate]) -> int:
        frauds = [u for u in updates if u.is_fraud]
        if not frauds:
            return 0
        now = repr(time.time())
        pipe = self._redis.pipeline(transaction=False)
        for u in frauds:
            await self._apply_label(
                keys=[f"labels:seen:{u.transaction_id}", merchant_key(u.merchant_id), mcc_key(u.mcc_code)],
                args=[day_of(u.transaction_ts), now, LABEL_SEEN_TTL_SEC],
                client=pipe,
            )
        return sum(int(r) for r in await _execute(pipe))

    async def apply_session_events(self, updates: Sequence[SessionUpdate]) -> int:
        if not updates:
            return 0
        now = repr(time.time())
        pipe = self._redis.pipeline(transaction=False)
        for u in updates:
            day = day_of(u.ts)
            member = (f"{u.event_id}|{u.event_type}|{u.category}|{u.price!r}|{u.item_id}|"
                      f"{u.session_id or NO_SESSION}")
            await self._apply_session(
                keys=[user_key(u.user_id) + ":events", user_key(u.user_id), item_key(u.item_id)],
                args=[member, repr(u.ts), f"{u.event_type}:{day}", now, repr(u.ts - USER_RETENTION_SEC),
                      day - ITEM_RETENTION_DAYS, int(USER_RETENTION_SEC * 2)],
                client=pipe,
            )
        return sum(int(r) for r in await _execute(pipe))


async def _execute(pipe: Pipeline) -> list[Any]:
    # redis-py's Script objects load themselves (EVALSHA falls back to SCRIPT LOAD) inside pipelines.
    return await pipe.execute()


def _card_tx(member: str, score: float) -> CardTx:
    tid, amount, country, merchant = member.split("|", 3)
    return CardTx(tid, score, float(amount), country, merchant)


def _user_event(member: str, score: float) -> UserEvent:
    eid, etype, category, price, item, session = member.split("|", 5)
    return UserEvent(eid, score, etype, category, float(price), item, session)


def _daily_counts(fields: dict[str, str]) -> tuple[DailyCounts, float | None]:
    counts = DailyCounts()
    updated: float | None = None
    for name, value in fields.items():
        if name == "_updated_at":
            updated = float(value)
            continue
        kind, _, day = name.partition(":")
        if day.lstrip("-").isdigit():
            counts.counts.setdefault(kind, {})[int(day)] = int(value)
    return counts, updated


def _latest(*values: str | float | None) -> float | None:
    present = [float(v) for v in values if v is not None]
    return max(present) if present else None
