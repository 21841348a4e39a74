"""Per-client token buckets for ``/score/*`` (429 with ``Retry-After`` when empty)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class RateLimiter:
    def __init__(self, per_sec: float, burst: int = 0, *, max_clients: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_sec = per_sec
        self.burst = float(burst or max(1, math.ceil(per_sec)))
        self._max_clients = max_clients
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, last refill)

    def acquire(self, client: str) -> float:
        """0 when the request may proceed, else the seconds until a token is available."""
        now = self._clock()
        tokens, last = self._buckets.get(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.per_sec)
        if tokens >= 1.0:
            if len(self._buckets) >= self._max_clients and client not in self._buckets:
                self._buckets.clear()
            self._buckets[client] = (tokens - 1.0, now)
            return 0.0
        self._buckets[client] = (tokens, now)
        return (1.0 - tokens) / self.per_sec
