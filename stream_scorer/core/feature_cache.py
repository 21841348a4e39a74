"""The in-process cache of slow-changing feature counters."""

from __future__ import annotations

import time
from collections.abc import Callable

from stream_scorer.core.feature_inputs import DailyCounts
from stream_scorer.metrics import Metrics


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
