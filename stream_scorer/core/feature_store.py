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
from collections.abc import Awaitable, Iterable, Sequence
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError

from stream_scorer.core import redis_scripts as scripts
from stream_scorer.core.feature_cache import SlowFeatureCache
from stream_scorer.core.feature_inputs import CardTx, DailyCounts, FraudState, PersonalizationState, UserEvent, day_of
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
from stream_scorer.core.features import CARD_WINDOW_SEC, USER_WINDOW_SEC

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


class FeatureStore(Protocol):
    """What the scoring core needs from a feature store (Redis here; in-memory fakes in unit tests)."""

    async def fetch_fraud_states(self, keys: Sequence[FraudKey]) -> list[FraudState]: ...

    async def fetch_personalization_states(self, keys: Sequence[PersonalizationKey]) -> list[PersonalizationState]:
        ...

    async def apply_transactions(self, updates: Sequence[TransactionUpdate]) -> int: ...

    async def apply_labels(self, updates: Sequence[LabelUpdate]) -> int: ...

    async def apply_session_events(self, updates: Sequence[SessionUpdate]) -> int: ...

    async def send_transactions(self, updates: Sequence[TransactionUpdate]) -> Awaitable[int]:
        """Start ``apply_transactions``: sent when this returns, applied when the awaitable completes."""
        ...

    async def send_session_events(self, updates: Sequence[SessionUpdate]) -> Awaitable[int]: ...

    async def ping(self) -> float: ...


FraudKey = tuple[str, str, str, float]
"""(card_id, merchant_id, mcc_code, event time): what a fraud state is read for."""
PersonalizationKey = tuple[str, str, float]
"""(user_id, item_id, event time)."""


class RedisFeatureStore:
    def __init__(self, redis: aioredis.Redis, *, cache: SlowFeatureCache | None = None) -> None:
        self._redis = redis
        self._cache = cache if cache is not None and cache.enabled else None
        self._fetch = redis.register_script(scripts.FETCH)
        self._apply_tx = redis.register_script(scripts.APPLY_TRANSACTIONS)
        self._apply_label = redis.register_script(scripts.APPLY_LABELS)
        self._apply_session = redis.register_script(scripts.APPLY_SESSION_EVENTS)

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
        """One script call: each distinct card's window and freshness, each distinct merchant / MCC not cached.

        A card with several events in the batch is read once, over ``[earliest - 7d, latest)``; the feature
        functions keep, for each event, only what precedes it (a hot card costs one read, not one per event).
        """
        if not keys:
            return []
        spans = _spans((card, ts) for card, _, _, ts in keys)
        windows = [(card_key(card) + ":tx", card_key(card), low - CARD_WINDOW_SEC, high)
                   for card, (low, high) in spans.items()]
        slow_keys = {merchant_key(m) for _, m, _, _ in keys} | {mcc_key(c) for _, _, c, _ in keys}
        raw_windows, slow = await self._read(windows, slow_keys)
        cards: dict[str, tuple[list[CardTx], str | None]] = {}
        for card, (members, card_updated) in zip(spans, raw_windows, strict=True):
            cards[card] = ([_card_tx(members[j], float(members[j + 1])) for j in range(0, len(members), 2)],
                           card_updated)
        states = []
        for card_id, merchant_id, mcc_code, _ in keys:
            history, card_updated = cards[card_id]
            merchant, m_updated = slow[merchant_key(merchant_id)]
            mcc, c_updated = slow[mcc_key(mcc_code)]
            states.append(FraudState(history, merchant, mcc, _latest(card_updated, m_updated, c_updated)))
        return states

    async def fetch_personalization_states(self, keys: Sequence[PersonalizationKey]) -> list[PersonalizationState]:
        """Like ``fetch_fraud_states``: each distinct user read once, each distinct item not cached."""
        if not keys:
            return []
        spans = _spans((user, ts) for user, _, ts in keys)
        windows = [(user_key(user) + ":events", user_key(user), low - USER_WINDOW_SEC, high)
                   for user, (low, high) in spans.items()]
        raw_windows, slow = await self._read(windows, {item_key(i) for _, i, _ in keys})
        users: dict[str, tuple[list[UserEvent], str | None]] = {}
        for user, (members, user_updated) in zip(spans, raw_windows, strict=True):
            users[user] = ([_user_event(members[j], float(members[j + 1])) for j in range(0, len(members), 2)],
                           user_updated)
        states = []
        for user_id, item_id, _ in keys:
            history, user_updated = users[user_id]
            item, i_updated = slow[item_key(item_id)]
            states.append(PersonalizationState(history, item, _latest(user_updated, i_updated)))
        return states

    async def _read(self, windows: Sequence[tuple[str, str, float, float]], slow_keys: set[str]
                    ) -> tuple[list[tuple[list[str], str | None]], dict[str, tuple[DailyCounts, float | None]]]:
        """Windows ``[min, max)`` of sorted sets with their hash's ``_updated_at``, and counter hashes (cached
        ones from the cache), all in one script call."""
        slow: dict[str, tuple[DailyCounts, float | None]] = {}
        missing: list[str] = []
        for key in sorted(slow_keys):
            cached = self._cache.get(key) if self._cache is not None else None
            if cached is None:
                missing.append(key)
            else:
                slow[key] = cached
        if self._cache is not None:
            self._cache.record(len(slow), len(missing))
        keys: list[str] = []
        args: list[str | int] = [len(windows)]
        for zset, hash_key, low, high in windows:
            keys += (zset, hash_key)
            args += (repr(low), f"({high!r}")
        raw = await self._eval(self._fetch, [*keys, *missing], args)
        n = len(windows)
        for key, flat in zip(missing, raw[2 * n:], strict=True):
            counts, updated = _daily_counts(flat)
            slow[key] = (counts, updated)
            if self._cache is not None:
                self._cache.put(key, counts, updated)
        return [(raw[2 * i], raw[2 * i + 1]) for i in range(n)], slow

    # ----------------------------------------------------------------------------------------------- updates
    async def apply_transactions(self, updates: Sequence[TransactionUpdate]) -> int:
        return int(await (await self.send_transactions(updates)))

    async def send_transactions(self, updates: Sequence[TransactionUpdate]) -> Awaitable[int]:
        """Send the updates; the returned awaitable waits for Redis to apply them (how many were new). The
        caller works meanwhile (the stream builds its decisions) instead of idling while the script runs."""
        if not updates:
            return _ready(0)
        keys: list[str] = []
        args: list[str | int] = [repr(time.time()), int(CARD_RETENTION_SEC * 2)]
        for u in updates:
            day = day_of(u.ts)
            keys += (card_key(u.card_id) + ":tx", card_key(u.card_id), merchant_key(u.merchant_id),
                     mcc_key(u.mcc_code))
            args += (f"{u.transaction_id}|{u.amount!r}|{u.country or ''}|{u.merchant_id}", repr(u.ts), day,
                     repr(u.ts - CARD_RETENTION_SEC), day - RISK_RETENTION_DAYS - 1)
        return await self._send(self._apply_tx, keys, args)

    async def apply_labels(self, updates: Sequence[LabelUpdate]) -> int:
        frauds = [u for u in updates if u.is_fraud]
        if not frauds:
            return 0
        keys: list[str] = []
        args: list[str | int] = [repr(time.time()), LABEL_SEEN_TTL_SEC]
        for u in frauds:
            keys += (f"labels:seen:{u.transaction_id}", merchant_key(u.merchant_id), mcc_key(u.mcc_code))
            args.append(day_of(u.transaction_ts))
        return int(await self._eval(self._apply_label, keys, args))

    async def apply_session_events(self, updates: Sequence[SessionUpdate]) -> int:
        return int(await (await self.send_session_events(updates)))

    async def send_session_events(self, updates: Sequence[SessionUpdate]) -> Awaitable[int]:
        """Like ``send_transactions``."""
        if not updates:
            return _ready(0)
        keys: list[str] = []
        args: list[str | int] = [repr(time.time()), int(USER_RETENTION_SEC * 2)]
        for u in updates:
            day = day_of(u.ts)
            keys += (user_key(u.user_id) + ":events", user_key(u.user_id), item_key(u.item_id))
            args += (f"{u.event_id}|{u.event_type}|{u.category}|{u.price!r}|{u.item_id}|{u.session_id or NO_SESSION}",
                     repr(u.ts), f"{u.event_type}:{day}", repr(u.ts - USER_RETENTION_SEC),
                     day - ITEM_RETENTION_DAYS - 1)
        return await self._send(self._apply_session, keys, args)

    async def _eval(self, script: AsyncScript, keys: Sequence[str], args: Sequence[str | int], *,
                    retry: bool = True) -> Any:
        """EVALSHA on a pooled connection, packed here: redis-py packs each argument in Python (~0.3 ms for a
        batch of 64 reads), this packs the whole command in one join. Connection handling (auth, db, reconnect,
        timeouts, hiredis parsing) stays redis-py's."""
        return await (await self._send(script, keys, args, retry=retry))

    async def _send(self, script: AsyncScript, keys: Sequence[str], args: Sequence[str | int], *,
                    retry: bool = True) -> Awaitable[Any]:
        """Write the EVALSHA; the returned awaitable reads its reply and gives the connection back.

        A pooled connection that died with a restarted server fails at once: with ``retry`` the call is made
        once more on a fresh connection (safe: reads have no effect, updates are idempotent per event)."""
        packed = _pack(["EVALSHA", script.sha, len(keys), *keys, *args])
        pool = self._redis.connection_pool
        conn = await pool.get_connection()
        try:
            await conn.send_packed_command(packed, check_health=False)
        except BaseException as exc:
            try:
                await conn.disconnect()  # a half-written command must not be left for the next user
            finally:
                await pool.release(conn)
            if retry and isinstance(exc, RedisConnectionError):
                return self._eval(script, keys, args, retry=False)
            raise
        return self._receive(conn, script, packed, keys, args, retry)

    async def _receive(self, conn: AbstractConnection, script: AsyncScript, packed: bytes, keys: Sequence[str],
                       args: Sequence[str | int], retry: bool) -> Any:
        pool = self._redis.connection_pool
        try:
            try:
                return await _reply(conn, script, packed)
            except BaseException:
                await conn.disconnect()  # a half-read reply must not be left for the next user of the connection
                raise
            finally:
                await pool.release(conn)
        except RedisConnectionError:
            if not retry:
                raise
            return await self._eval(script, keys, args, retry=False)


async def _reply(conn: AbstractConnection, script: AsyncScript, packed: bytes) -> Any:
    try:
        return await conn.read_response()
    except NoScriptError:  # Redis restarted or flushed its scripts: load it once, then retry
        source = script.script if isinstance(script.script, str | bytes) else bytes(script.script)
        await conn.send_packed_command(_pack(["SCRIPT", "LOAD", source]), check_health=False)
        await conn.read_response()
        await conn.send_packed_command(packed, check_health=False)
        return await conn.read_response()


async def _ready(value: int) -> int:
    return value


def _pack(parts: Sequence[str | int | bytes]) -> bytes:
    """A RESP command: ``*<n>`` then ``$<len>`` + bytes for each part. Built as one string when every part is
    ASCII text (ids, numbers: the usual case), where lengths in characters are lengths in bytes."""
    if not any(type(part) is bytes for part in parts):
        body = "".join([f"${len(text)}\r\n{text}\r\n" for text in map(str, parts)])
        if body.isascii():
            return f"*{len(parts)}\r\n{body}".encode()
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        data = part if isinstance(part, bytes) else str(part).encode()
        out.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(out)


def _spans(entity_times: Iterable[tuple[str, float]]) -> dict[str, tuple[float, float]]:
    """Earliest and latest event time per entity, in first-seen order."""
    spans: dict[str, tuple[float, float]] = {}
    for entity, ts in entity_times:
        low, high = spans.get(entity, (ts, ts))
        spans[entity] = (min(low, ts), max(high, ts))
    return spans


def _card_tx(member: str, score: float) -> CardTx:
    tid, amount, country, merchant = member.split("|", 3)
    return CardTx(tid, score, float(amount), country, merchant)


def _user_event(member: str, score: float) -> UserEvent:
    eid, etype, category, price, item, session = member.split("|", 5)
    return UserEvent(eid, score, etype, category, float(price), item, session)


def _daily_counts(flat: Sequence[str]) -> tuple[DailyCounts, float | None]:
    """Parse a counter hash from HGETALL's flat ``[field, value, ...]`` reply."""
    counts = DailyCounts()
    updated: float | None = None
    for name, value in zip(flat[::2], flat[1::2], strict=True):
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
