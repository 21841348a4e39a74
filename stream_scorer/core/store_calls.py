"""How the scoring core reads features and records updates: one read per request, or for the stream a batch
in pipelined parts; the feature store's failures turned into the core's errors and metrics.

Split from :mod:`stream_scorer.core.scorer`, which decides; this module only talks to the store.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
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
    """How the stream records a batch: merge a part's earlier events into its states, one update per event, and
    the store's call that sends them."""

    merge: Callable[[Sequence[Identified[E]], list[S]], None]
    of: Callable[[Identified[E]], U]
    send: Callable[..., Awaitable[Awaitable[int]]]


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

        The stream's batch goes in parts of ``part_size``, pipelined on the one Redis connection: part i + 1's
        read is written right after part i's updates, so Redis runs it after them (part i + 1 sees part i as the
        next event would) and both run while part i is decided, instead of the worker waiting for a whole batch's
        read. Inside a part, events of one entity see the earlier ones through ``merge``. These calls are not
        repeated on a new connection when one is lost (a repeat could run after a later part's read): the batch
        fails instead and the worker retries it whole (reads as of each event's time, idempotent updates). The
        first read and the last part's updates have nothing written around them and may be repeated."""
        if updates is None:  # HTTP: one read for the whole batch, nothing recorded
            states, degraded = await self._fetch(await self._send_fetch(send_fetch, [key_of(i) for i in items]),
                                                 len(items), model, allow_degraded, empty)
            return decide(items, states, degraded)
        size = self._part_size
        parts = [items[i:i + size] for i in range(0, len(items), size)]
        out: list[D] = []
        # the first read may be repeated (the previous batch's updates are applied), the others not
        next_read: Awaitable[list[S]] | None = await self._send_fetch(send_fetch, [key_of(i) for i in parts[0]])
        try:
            for n, part in enumerate(parts):
                assert next_read is not None
                states, degraded = await self._fetch(next_read, len(part), model, allow_degraded, empty)
                next_read = None
                if len(part) > 1:  # events to be recorded see the earlier ones of their part
                    updates.merge(part, states)
                last = n + 1 == len(parts)
                applied = await self._send_updates(updates.send, [updates.of(i) for i in part], retry=last)
                if not last:  # written after this part's updates: Redis runs it after them
                    try:
                        next_read = await self._send_fetch(send_fetch, [key_of(i) for i in parts[n + 1]],
                                                           retry=False)
                    except BaseException:  # cancelled: the update's reply is still read
                        with contextlib.suppress(Exception):
                            await applied
                        raise
                out += await self._decide_while_applying(partial(decide, part, states, degraded), applied)
        finally:
            if next_read is not None:  # a part failed: the next one's read is not wanted
                _discard(next_read)
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

    async def _decide_while_applying(self, decide: Callable[[], list[D]], applied: Awaitable[int]) -> list[D]:
        """``decide()`` while Redis applies the updates already sent; returns once both are done.

        Reads are as of each event's time, so the part's features cannot see its own updates, and the worker
        scores instead of idling while the script runs."""
        try:
            decisions = decide()
        except BaseException:
            with contextlib.suppress(Exception):  # read the reply (the connection goes back); the scoring
                await applied                     # error is the one to report
            raise
        try:
            await applied
        except _STORE_ERRORS as exc:
            self._update_failed(exc)
        return decisions

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
