"""How a batch handler tells the consumer that the next batch may start before this one is acknowledged.

The batch consumer starts the next batch once the handler has done everything the next one must follow (its
feature updates are applied in Redis); what is left (the wait for the broker's acknowledgements of its
decisions) overlaps the next batch's scoring. The handler still returns only when everything is acknowledged,
and the consumer acks the batch's offsets only then. Outside the consumer (tests, benchmarks) releasing does
nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar

BATCH_RELEASE: ContextVar[Callable[[], None] | None] = ContextVar("batch_release", default=None)
"""Set by the consumer in the task that runs a batch's handler."""


def release_batch() -> None:
    release = BATCH_RELEASE.get()
    if release is not None:
        release()
