"""How the scoring core reads features and records updates: one read per request, or for the stream a batch
in pipelined parts; the feature store's failures turned into the core's errors and metrics.

Split from :mod:`stream_scorer.core.scorer`, which decides; this module only talks to the store.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, NoReturn, TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from schemas.decisions import FraudDecision, PersonalizationDecision
from schemas.events import SessionEvent, TransactionEvent
from stream_scorer.core.identified import Identified
from stream_scorer.errors import FeatureStoreUnavailable
from stream_scorer.metrics import Metrics

_STORE_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError, ResponseError)
# Error replies that mean "Redis cannot serve right now" (memory, failover, a long script, loading, scripts lost
# by a restart or SCRIPT FLUSH: loaded again before the error reaches here); any other error reply is a bug and is
# raised as is.
_OPERATIONAL_REPLIES = ("OOM", "READONLY", "BUSY", "MASTERDOWN", "CLUSTERDOWN", "LOADING", "TRYAGAIN", "NOSCRIPT")

log = logging.getLogger(__name__)

K = TypeVar("K")
S = TypeVar("S")
U = TypeVar("U")
E = TypeVar("E", TransactionEvent, SessionEvent)
D = TypeVar("D", FraudDecision, PersonalizationDecision)
STREAM_PART_SIZE = 100
"""Events per part of a stream batch (see ``StoreCalls.score``): small enough that the worker waits for one part's
read, not a whole batch's (~10 ms of Redis time for 500 events), large enough to keep one model call per part
cheap per event."""


@dataclass(frozen=True)
class Updates(Generic[E, S, U]):
    """How the stream records a batch: merge into a part's states the batch's events their read did not see, one
    update per event, and the store's call that sends them."""

    merge: Callable[[Sequence[Identified[E]], list[S], dict[str, list[Identified[E]]]], None]
    """``merge(part, states, earlier)``: ``earlier`` holds the unseen events of earlier parts per entity, and
    gets the part's (``batch_merge.merge_card_batch``)."""
    of: Callable[[Identified[E]], U]
    send: Callable[..., Awaitable[Awaitable[int]]]
    parts: Callable[[Sequence[Identified[E]], int], tuple[list[Sequence[Identified[E]]], bool]]
    """The batch in parts of at most the given size, and whether each part's read must follow the previous
    part's updates (``batch_merge.plan_parts``)."""


class StoreCalls:
    """The scorer's calls to the feature store, with their metrics and failure handling."""

    def __init__(self, metrics: Metrics, *, part_size: int = STREAM_PART_SIZE) -> None:
        if part_size < 1:
            raise ValueError(f"part_size must be at least 1, not {part_size}")
        self._metrics = metrics
        self._part_size = part_size

    async def score(self, items: Sequence[Identified[E]], model: str,
                     send_fetch: Callable[..., Awaitable[Awaitable[list[S]]]],
                     key_of: Callable[[Identified[E]], K], empty: Callable[[], S],
                     decide: Callable[[Sequence[Identified[E]], Sequence[S], bool], list[D]], allow_degraded: bool,
                     updates: Updates[E, S, U] | None) -> list[D]:
        """Read the features, decide, and with ``updates`` (the stream) record each event.

        The stream's batch goes in parts of at most ``part_size`` (``updates.parts``: the first ones smaller),
        pipelined on the one Redis connection, where Redis runs the calls in the order they are written. Every
        part's read is written at the start, and each part's windows get the batch's earlier events of their card
        or user in memory (``merge``), as they would have been read after those events' updates; a batch whose
        events are far enough apart in time for one's update to change another's counters or window (a catch-up)
        is read part after part instead, each read written right after the previous part's updates. Redis reads
        and applies the updates while the worker decides; the updates' replies are read once every part is
        decided, so the worker waits for the first part's read only, unless Redis is the slower. These calls are
        not repeated on a new connection when one is lost (a repeat could run after calls written after it): the
        batch fails instead and the worker retries it whole (reads as of each event's time, idempotent updates).
        The first read (only other reads are written before its reply comes) and the last part's updates
        (nothing is written after them) may be repeated."""
        if updates is None:  # HTTP: one read for the whole batch, nothing recorded
            states, degraded = await self._fetch(await self._send_fetch(send_fetch, [key_of(i) for i in items]),
                                                 len(items), model, allow_degraded, empty)
            return decide(items, states, degraded)
        parts, sequential = updates.parts(items, self._part_size)
        out: list[D] = []
        reads: dict[int, Awaitable[list[S]]] = {}
        applied: list[Awaitable[int]] = []  # each part's updates: the replies are read once every part is decided
        earlier: dict[str, list[Identified[E]]] = {}  # the batch's events the next parts' reads do not see
        try:
            for k, part in enumerate(parts[:1] if sequential else parts):  # only the first may be repeated
                reads[k] = await self._send_fetch(send_fetch, [key_of(i) for i in part], retry=not reads)
            for n, part in enumerate(parts):
                states, degraded = await self._fetch(reads.pop(n), len(part), model, allow_degraded, empty)
                if sequential:
                    earlier = {}  # this part's read followed every earlier part's updates
                updates.merge(part, states, earlier)
                last = n + 1 == len(parts)
                applied.append(await self._send_updates(updates.send, [updates.of(i) for i in part], retry=last))
                if sequential and not last:  # written after this part's updates: Redis runs it after them
                    reads[n + 1] = await self._send_fetch(send_fetch, [key_of(i) for i in parts[n + 1]],
                                                          retry=False)
                # reads are as of each event's time: the part's features cannot see its own updates, and the worker
                # scores while Redis applies them (and reads the next parts) instead of idling
                out += decide(part, states, degraded)
            while applied:
                try:
                    await applied.pop(0)
                except _STORE_ERRORS as exc:
                    self._update_failed(exc)
        finally:
            for pending in reads.values():  # a part failed: the reads written for later parts are not wanted
                _discard(pending)
            for reply in applied:  # nor the replies of its updates (the batch is retried whole)
                _discard(reply)
        return out

    async def _send_fetch(self, send: Callable[..., Awaitable[Awaitable[list[S]]]], keys: Sequence[K], *,
                          retry: bool = True) -> Awaitable[list[S]]:
        """The read written (or its failure, reported when awaited)."""
        try:
            return await send(keys, retry=retry)
        except _STORE_ERRORS as exc:
            return _failed(exc)

    async def _fetch(self, pending: Awaitable[list[S]], n: int, model: str, allow_degraded: bool,
                     empty: Callable[[], S]) -> tuple[list[S], bool]:
        """The states of a read already written, or defaults (``degraded``) when allowed; the fetch histogram
        observes how long scoring waited for them (a stream part's read ran while the previous part was scored)."""
        waiting_since = time.perf_counter()
        try:
            states = await pending
        except _STORE_ERRORS as exc:
            _raise_if_not_operational(exc)
            self._metrics.feature_store_errors.labels("fetch").inc()
            self._metrics.redis_up.set(0)
            if not allow_degraded:
                raise FeatureStoreUnavailable(f"feature store unavailable: {exc}") from exc
            log.warning("feature store unavailable, scoring from defaults", extra={"error": str(exc)})
            self._metrics.degraded_decisions.labels(model).inc(n)
            return [empty() for _ in range(n)], True
        self._metrics.redis_up.set(1)
        self._metrics.child(self._metrics.feature_fetch_duration, model).observe(time.perf_counter() - waiting_since)
        return states, False

    async def apply(self, apply: Callable[[Sequence[U]], object], updates: Sequence[U]) -> Any:
        try:
            return await apply(updates)  # type: ignore[misc]
        except _STORE_ERRORS as exc:
            self._update_failed(exc)

    async def _send_updates(self, send: Callable[..., Awaitable[Awaitable[int]]], updates: Sequence[U], *,
                            retry: bool) -> Awaitable[int]:
        try:
            return await send(updates, retry=retry)
        except _STORE_ERRORS as exc:
            self._update_failed(exc)

    def _update_failed(self, exc: BaseException) -> NoReturn:
        _raise_if_not_operational(exc)
        self._metrics.feature_store_errors.labels("update").inc()
        raise FeatureStoreUnavailable(f"feature update failed: {exc}") from exc


async def _failed(exc: BaseException) -> NoReturn:
    raise exc


def _discard(pending: Awaitable[Any]) -> None:
    close = getattr(pending, "close", None)  # a coroutine never awaited: closed, not warned about
    if close is not None:
        close()


def _raise_if_not_operational(exc: BaseException) -> None:
    if isinstance(exc, ResponseError) and not str(exc).startswith(_OPERATIONAL_REPLIES):
        raise exc
