"""Consumer lag per assigned partition: ``stream_consumer_lag{topic,partition}`` = high watermark - committed.

Read from faust's consumer every few seconds, without a broker round trip in the steady state:

* the high watermark is the one aiokafka learnt from its last fetch response (``consumer.highwater(tp)``);
* the committed offset is faust's own record of it (``Consumer._committed_offset``: read from the broker when
  the partition is assigned, then updated on every commit faust makes). faust has no public accessor for it;
  asking the broker (``AIOKafkaConsumer.committed``) would cost one request per partition per tick, on the
  consumer's own thread. A partition without a committed offset is measured from its earliest offset.

Partitions that are no longer assigned (a rebalance moved them to another worker) are removed from the gauge,
so each worker only reports the partitions it owns.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from types import TracebackType

import faust
from faust.types import TP

from stream_scorer.metrics import Metrics, drop_series
from stream_scorer.tasks import cancel_and_wait

log = logging.getLogger(__name__)

LAG_INTERVAL_SEC = 5.0


class ConsumerLagReporter:
    """Sets the lag gauge every ``interval`` seconds while entered (a background task cancelled on exit)."""

    def __init__(self, app: faust.App, metrics: Metrics, *, interval: float = LAG_INTERVAL_SEC) -> None:
        self._app = app
        self._gauge = metrics.consumer_lag
        self._interval = interval
        self._reported: set[tuple[str, str]] = set()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ConsumerLagReporter:
        self._task = asyncio.ensure_future(self._run())
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await cancel_and_wait(self._task)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.report()
            except asyncio.CancelledError:
                raise
            except Exception:  # a metric must never stop the worker (e.g. a rebalance in the middle of a tick)
                log.debug("consumer lag not measured this time", exc_info=True)

    async def report(self) -> None:
        """Measure once: set the gauge for every assigned partition, drop the partitions no longer assigned."""
        consumer = self._app.consumer
        assigned = consumer.assignment()
        committed: Mapping[TP, int | None] = getattr(consumer, "_committed_offset", {})
        ends: dict[TP, int] = {}
        start: dict[TP, int] = {}
        for tp in assigned:
            try:
                highwater = consumer.highwater(tp)
            except AssertionError:  # aiokafka: revoked since assignment() answered
                continue
            if highwater is None:  # nothing fetched from it yet
                continue
            ends[tp] = highwater
            offset = committed.get(tp)
            if offset is not None:
                start[tp] = offset
        never_committed = [tp for tp in ends if tp not in start]
        if never_committed:
            start.update(await consumer.earliest_offsets(*never_committed))
        current: set[tuple[str, str]] = set()
        for tp, end in ends.items():
            labels = (tp.topic, str(tp.partition))
            self._gauge.labels(*labels).set(max(0, end - start.get(tp, 0)))
            current.add(labels)
        kept = {(tp.topic, str(tp.partition)) for tp in assigned}
        for labels in self._reported - kept:
            drop_series(self._gauge, *labels)
        self._reported = (self._reported & kept) | current
