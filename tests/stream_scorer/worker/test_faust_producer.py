"""FaustProducer: a batch of records to aiokafka batches per partition (a fake aiokafka producer; the real broker
paths are in tests/integration)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaTimeoutError
from aiokafka.partitioner import DefaultPartitioner
from faust.exceptions import NotReady

from schemas.decisions import FraudDecision
from stream_scorer.config import Settings
from stream_scorer.errors import BrokerUnavailable
from stream_scorer.worker.app import FaustProducer, create_worker_app
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


async def test_a_full_batch_of_decisions_for_one_partition_fits_one_producer_batch(tmp_path: Path) -> None:
    """A second aiokafka batch for a partition waits until the first is on the wire (a broker round trip the
    worker idles through): the worker's producer takes a whole input batch of one partition's decisions at once."""
    settings = Settings(model_dir=tmp_path, gc_threshold=0, heap_keep_mb=0)
    app, _ = create_worker_app(settings)
    conf = app.conf
    assert conf.producer_max_batch_size <= conf.producer_max_request_size
    decision = FraudDecision(
        fraud_score=0.912345, risk_level="high", confidence=0.912345, recommended_action="decline",
        explanation="High risk (score 0.91): 14 transactions on this card in the last hour; 9,876.54 spent on this "
                    "card in the last 24 hours; 12 small transactions in the last hour (card-testing pattern).",
        top_risk_factors=["card_tx_count_1h", "card_amount_sum_24h", "card_small_tx_count_1h"], features_used=22,
        latency_ms=12.345, model_version="fraud-2026-12-06T00-00-00", feature_freshness_sec=0.123,
        transaction_id="tx-" + "9" * 32, decision_id="0" * 36, event_timestamp=datetime.now(UTC),
        scored_at=datetime.now(UTC), features_missing=["merchant_tx_count_28d", "merchant_fraud_rate_28d"],
    ).model_dump_json().encode()
    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", max_batch_size=conf.producer_max_batch_size)
    try:
        batch = producer.create_batch()
        for _ in range(settings.worker.batch_size):
            assert batch.append(timestamp=None, key=b"card-000001", value=decision, headers=[]) is not None
    finally:
        await producer.stop()  # never started: nothing to flush
