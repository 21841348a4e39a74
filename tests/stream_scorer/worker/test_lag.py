"""The consumer-lag gauge with a fake of what it reads of faust's consumer (the real-broker check is in
tests/integration/test_stream_delivery.py)."""

from __future__ import annotations

from types import SimpleNamespace

from faust.types import TP

from stream_scorer.metrics import Metrics
from stream_scorer.worker.lag import ConsumerLagReporter


class _FakeConsumer:
    """What ``ConsumerLagReporter`` reads of faust's consumer."""

    def __init__(self) -> None:
        self.assigned: dict[TP, int] = {}  # partition -> high watermark
        self._committed_offset: dict[TP, int | None] = {}

    def assignment(self) -> set[TP]:
        return set(self.assigned)

    def highwater(self, tp: TP) -> int:
        return self.assigned[tp]

    async def earliest_offsets(self, *partitions: TP) -> dict[TP, int]:
        return {tp: 10 for tp in partitions}


async def test_lag_gauge_follows_the_assignment() -> None:
    metrics = Metrics()
    consumer = _FakeConsumer()
    reporter = ConsumerLagReporter(SimpleNamespace(consumer=consumer), metrics)  # type: ignore[arg-type]
    tx0, tx1, tx2 = (TP("transactions", p) for p in range(3))
    consumer.assigned = {tx0: 100, tx1: 50, tx2: 30}
    consumer._committed_offset = {tx0: 90, tx1: 50}  # tx2: never committed, measured from its earliest offset

    def lag(tp: TP) -> float | None:
        return metrics.registry.get_sample_value("stream_consumer_lag",
                                                 {"topic": tp.topic, "partition": str(tp.partition)})

    await reporter.report()
    assert [lag(tx0), lag(tx1), lag(tx2)] == [10, 0, 20]
    consumer.assigned = {tx1: 60}  # a rebalance gave tx0 and tx2 to another worker
    await reporter.report()
    assert [lag(tx0), lag(tx1), lag(tx2)] == [None, 10, None]
