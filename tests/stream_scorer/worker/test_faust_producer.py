"""FaustProducer: a batch of records to aiokafka batches per partition (a fake aiokafka producer; the real broker
paths are in tests/integration)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError
from aiokafka.partitioner import DefaultPartitioner
from faust.exceptions import NotReady

from stream_scorer.errors import BrokerUnavailable
from stream_scorer.worker.app import FaustProducer
from stream_scorer.worker.processor import Outgoing, Unacknowledged


class FakeBatch:
    def __init__(self, capacity: int) -> None:
        self.records: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]] = []
        self.capacity = capacity
        self.closed = False

    def append(self, *, timestamp: float | None, key: bytes | None, value: bytes,
               headers: list[tuple[str, bytes]]) -> object | None:
        if self.closed or len(self.records) >= self.capacity:
            return None
        self.records.append((key, value, headers))
        return object()

    def close(self) -> None:
        self.closed = True


class FakeAiokafka:
    def __init__(self, partitions: int, capacity: int, fail_on_call: int | None = None,
                 nack_on_call: int | None = None) -> None:
        self.partitions = partitions
        self.capacity = capacity
        self.fail_on_call = fail_on_call
        self.nack_on_call = nack_on_call
        self.sent: list[tuple[str, int, FakeBatch]] = []

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(self.partitions))

    def create_batch(self) -> FakeBatch:
        return FakeBatch(self.capacity)

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int) -> asyncio.Future[Any]:
        assert batch.closed, "a queued batch must be closed"
        if self.fail_on_call is not None and len(self.sent) == self.fail_on_call:
            raise KafkaTimeoutError()
        self.sent.append((topic, partition, batch))
        ack: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.nack_on_call is not None and len(self.sent) == self.nack_on_call + 1:
            ack.set_exception(KafkaTimeoutError())  # queued, then not acknowledged by the broker
        else:
            ack.set_result(len(batch.records))
        return ack


class FaustDriver:
    def __init__(self, inner: FakeAiokafka | None) -> None:
        self.inner = inner

    def _ensure_producer(self) -> FakeAiokafka:
        if self.inner is None:
            raise NotReady("Producer service not yet started")
        return self.inner


def _producer(inner: FakeAiokafka | None) -> FaustProducer:
    return FaustProducer(SimpleNamespace(producer=FaustDriver(inner)))  # type: ignore[arg-type]


async def test_records_go_to_their_keys_partition_in_order_split_into_full_batches() -> None:
    inner = FakeAiokafka(partitions=3, capacity=2)
    records: list[Outgoing] = [("decisions", f"card-{i % 4}".encode(), f"v{i}".encode(), None) for i in range(12)]
    records.append(("dlq", None, b"poison", [("dlq.reason", b"invalid_json")]))
    await (await _producer(inner).send_all(records))
    every = [0, 1, 2]
    sent = [(t, p, v) for t, p, batch in inner.sent for _, v, _ in batch.records]  # in queueing order
    for topic, key, value, _ in records:
        if key is not None:
            assert [p for t, p, v in sent if (t, v) == (topic, value)] == [DefaultPartitioner()(key, every, every)]
    for topic, partition in {(t, p) for t, p, _ in sent}:
        queued = [v for t, p, v in sent if (t, p) == (topic, partition)]
        assert queued == [r[2] for r in records if r[2] in queued]  # each partition keeps the input order
    assert all(len(batch.records) <= 2 for _, _, batch in inner.sent)
    assert sum(len(batch.records) for _, _, batch in inner.sent) == len(records)
    (dead,) = [batch.records[0] for t, _, batch in inner.sent if t == "dlq"]
    assert dead == (None, b"poison", [("dlq.reason", b"invalid_json")])


async def test_a_stopped_producer_is_a_retryable_broker_error() -> None:
    with pytest.raises(BrokerUnavailable):
        await _producer(None).send_all([("decisions", b"k", b"v", None)])


async def test_a_failure_midway_raises_and_what_was_queued_is_still_observed() -> None:
    inner = FakeAiokafka(partitions=1, capacity=1, fail_on_call=2)
    with pytest.raises(KafkaTimeoutError):
        await _producer(inner).send_all([("decisions", b"k", f"v{i}".encode(), None) for i in range(4)])
    assert len(inner.sent) == 2


async def test_a_batch_not_acknowledged_names_what_to_send_again_in_its_partition_only() -> None:
    inner = FakeAiokafka(partitions=2, capacity=2, nack_on_call=1)
    keys = [b"a", b"b", b"c", b"d", b"e", b"f", b"g", b"h"]
    records: list[Outgoing] = [("decisions", k, k * 2, None) for k in keys]
    settled = await _producer(inner).send_all(records)
    with pytest.raises(Unacknowledged) as failure:
        await settled
    topic, partition, nacked = inner.sent[1]
    later_same_partition = [b for t, p, b in inner.sent[2:] if (t, p) == (topic, partition)]
    expected = [r for r in records if r[2] in {v for batch in [nacked, *later_same_partition]
                                                  for _, v, _ in batch.records}]
    assert list(failure.value.records) == expected  # that batch and the later ones of its partition, in order
    assert all(DefaultPartitioner()(r[1], [0, 1], [0, 1]) == partition for r in failure.value.records)
    assert len(expected) < len(records)
