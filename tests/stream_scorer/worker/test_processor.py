"""The batch processor with in-memory fakes of our own interfaces (the real-broker paths are in tests/integration)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.errors import KafkaTimeoutError

from schemas.decisions import FraudDecision
from schemas.events import TransactionEvent
from stream_scorer.bootstrap import MODEL_FEATURES
from stream_scorer.core.identified import Identified
from stream_scorer.core.scorer import Scorer
from stream_scorer.errors import BrokerUnavailable
from stream_scorer.metrics import Metrics
from stream_scorer.models.registry import ModelRegistry
from stream_scorer.worker.dead_letters import MAX_DEAD_LETTER_BYTES
from stream_scorer.worker.processor import (
    BatchProcessor,
    Outgoing,
    OutputTopics,
    Record,
    RetryAbandoned,
    Unacknowledged,
)
from stream_scorer.worker.release import BATCH_RELEASE
from tests.support.fakes import InMemoryFeatureStore


class FakeProducer:
    def __init__(self, failures: int = 0) -> None:
        self.sent: list[tuple[str, bytes | None, bytes, list[tuple[str, bytes]] | None]] = []
        self.failures = failures

    async def send_all(self, records: Sequence[Outgoing]) -> Awaitable[Any]:
        if self.failures:
            self.failures -= 1
            raise BrokerUnavailable("broker hiccup")
        self.sent.extend(records)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class PoisonAwareScorer(Scorer):
    """Fails deterministically on card ``poison`` (like a bug hit by one event), or on everything."""

    fail_all = False

    async def score_transactions(self, items: Sequence[Identified[TransactionEvent]], **kwargs: Any
                                 ) -> list[FraudDecision]:
        if self.fail_all or any(i.event.card_id == "poison" for i in items):
            raise ValueError("year 55000 is out of range")
        return await super().score_transactions(items, **kwargs)


def _processor(model_dir: Path, producer: FakeProducer) -> tuple[BatchProcessor, PoisonAwareScorer]:
    registry = ModelRegistry(model_dir, expected_features=MODEL_FEATURES)
    for name in MODEL_FEATURES:
        registry.refresh(name)
    scorer = PoisonAwareScorer(InMemoryFeatureStore(), registry, Metrics())
    outputs = OutputTopics("decisions", "scores", "dlq")
    return BatchProcessor(scorer, producer, outputs, Metrics()), scorer


def _record(offset: int, body: dict[str, Any] | bytes, key: bytes | None = None) -> Record:
    """Keyed by the body's card id (as producers must), unless ``key`` is given."""
    value = body if isinstance(body, bytes) else orjson.dumps(body)
    if key is None and isinstance(body, dict):
        key = str(body.get("card_id", "")).encode()
    return Record("transactions", 0, offset, time.time(), key, value)


async def test_an_event_failing_alone_is_dead_lettered_and_the_rest_scored(model_dir: Path) -> None:
    producer = FakeProducer()
    processor, _ = _processor(model_dir, producer)
    records = [_record(i, {"card_id": card, "transaction_amount": 5.0, "transaction_id": f"t{i}"})
               for i, card in enumerate(["c1", "poison", "c2"])]
    await processor.process_transactions(records)
    decisions = [orjson.loads(v)["transaction_id"] for topic, _, v, _ in producer.sent if topic == "decisions"]
    dead = [(v, dict(h or [])) for topic, _, v, h in producer.sent if topic == "dlq"]
    assert decisions == ["t0", "t2"]
    assert len(dead) == 1 and dead[0][0] == records[1].value
    assert dead[0][1]["dlq.reason"] == b"scoring_failed"
    assert b"ValueError" in dead[0][1]["dlq.error"]


async def test_a_broken_scorer_is_not_mistaken_for_poison(model_dir: Path) -> None:
    producer = FakeProducer()
    processor, scorer = _processor(model_dir, producer)
    scorer.fail_all = True
    records = [_record(i, {"card_id": f"c{i}", "transaction_amount": 5.0}) for i in range(3)]
    with pytest.raises(ValueError):
        await processor.process_transactions(records)
    assert producer.sent == []  # nothing dead-lettered: the worker exits and the batch is redelivered


async def test_broker_hiccups_are_retried(model_dir: Path) -> None:
    producer = FakeProducer(failures=2)
    processor, _ = _processor(model_dir, producer)
    await processor.process_transactions([_record(0, {"card_id": "c1", "transaction_amount": 5.0})])
    assert [topic for topic, *_ in producer.sent] == ["decisions"]


async def test_after_a_partial_failure_only_the_unacknowledged_records_are_sent_again(model_dir: Path) -> None:
    class PartlyFailing(FakeProducer):
        def __init__(self) -> None:
            super().__init__()
            self.calls: list[list[Outgoing]] = []

        async def send_all(self, records: Sequence[Outgoing]) -> Awaitable[Any]:
            self.calls.append(list(records))
            if len(self.calls) == 1:  # the broker acknowledged all but the last two
                async def failed() -> None:
                    raise Unacknowledged(records[-2:], KafkaTimeoutError())
                self.sent.extend(records[:-2])
                return failed()
            return await super().send_all(records)

    producer = PartlyFailing()
    processor, _ = _processor(model_dir, producer)
    records = [_record(i, {"card_id": f"c{i}", "transaction_amount": 5.0, "transaction_id": f"t{i}"})
               for i in range(5)]
    await processor.process_transactions(records)
    assert [len(c) for c in producer.calls] == [5, 2]
    assert producer.calls[1] == producer.calls[0][-2:]
    ids = [orjson.loads(v)["transaction_id"] for _, _, v, _ in producer.sent]
    assert sorted(ids) == [f"t{i}" for i in range(5)]  # each decision produced once


async def test_huge_bad_records_are_dead_lettered_truncated(model_dir: Path) -> None:
    producer = FakeProducer()
    processor, _ = _processor(model_dir, producer)
    huge = b"x" * (MAX_DEAD_LETTER_BYTES + 10)
    await processor.process_transactions([_record(0, huge)])
    [(topic, _, value, headers)] = producer.sent
    assert topic == "dlq" and len(value) == MAX_DEAD_LETTER_BYTES
    assert dict(headers or [])["dlq.value.truncated"] == str(len(huge)).encode()


async def test_stopping_while_retrying_gives_the_batch_back(model_dir: Path) -> None:
    producer = FakeProducer(failures=1000)  # the broker stays down
    processor, _ = _processor(model_dir, producer)
    stopping = [False]
    processor._should_stop = lambda: stopping[0]
    task = asyncio.ensure_future(processor.process_transactions(
        [_record(0, {"card_id": "c1", "transaction_amount": 5.0})]))
    await asyncio.sleep(0.2)
    assert not task.done()  # retrying with backoff
    stopping[0] = True
    with pytest.raises(RetryAbandoned):
        await asyncio.wait_for(task, timeout=10)
    assert producer.sent == []


async def test_events_keyed_other_than_by_their_card_are_scored_counted_and_logged_once(
        model_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    producer = FakeProducer()
    processor, _ = _processor(model_dir, producer)
    metrics = processor._metrics
    body = {"card_id": "c1", "transaction_amount": 5.0}
    right = _record(0, {**body, "transaction_id": "t0"})
    keyless = Record("transactions", 0, 1, time.time(), None, orjson.dumps({**body, "transaction_id": "t1"}))
    wrong = _record(2, {**body, "transaction_id": "t2"}, key=b"c2")
    with caplog.at_level(logging.WARNING, logger="stream_scorer.worker.processor"):
        await processor.process_transactions([right, keyless, wrong])
        await processor.process_transactions([_record(3, {**body, "transaction_id": "t3"}, key=b"c3")])

    decisions = [(k, orjson.loads(v)["transaction_id"]) for topic, k, v, _ in producer.sent if topic == "decisions"]
    assert decisions == [(b"c1", "t0"), (b"c1", "t1"), (b"c1", "t2"), (b"c1", "t3")]  # keyed by card, as always

    def count(kind: str) -> float | None:
        return metrics.registry.get_sample_value("stream_key_mismatch_total", {"topic": "transactions", "kind": kind})

    assert (count("missing"), count("other")) == (1.0, 2.0)
    warnings = [r for r in caplog.records if "not keyed by their entity id" in r.getMessage()]
    assert len(warnings) == 1  # once a minute per topic, not once per batch
    assert (warnings[0].partition, warnings[0].offset) == (0, 1)  # type: ignore[attr-defined]
    assert b"c2" not in repr(warnings[0].__dict__).encode()  # ids are never logged


class SlowAckProducer(FakeProducer):
    """Acknowledges a send only when the test says so; records the order of events."""

    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log
        self.acks: list[asyncio.Future[None]] = []
        self.sent_again = asyncio.Event()

    async def send_all(self, records: Sequence[Outgoing]) -> Awaitable[Any]:
        self.log.append(f"send {orjson.loads(records[0][2])['transaction_id']}")
        self.sent.extend(records)
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.acks.append(ack)
        if len(self.acks) > 1:
            self.sent_again.set()
        return ack


async def test_a_batch_is_released_once_its_features_are_updated_and_sends_after_the_previous_batch(
        model_dir: Path) -> None:
    """The consumer starts the next batch at the release (the features it reads are written by then), while this
    batch waits for the broker; the next batch's records go out only after this batch's are acknowledged."""
    log: list[str] = []
    producer = SlowAckProducer(log)
    processor, _ = _processor(model_dir, producer)
    released = [asyncio.Event(), asyncio.Event()]

    async def run(n: int) -> None:
        BATCH_RELEASE.set(lambda: (log.append(f"release {n}"), released[n].set()))
        body = {"card_id": "card_1", "transaction_amount": 10.0 + n, "transaction_id": f"tx-{n}"}
        await processor.process_transactions([_record(n, body)])
        log.append(f"done {n}")

    first = asyncio.create_task(run(0))
    await asyncio.wait_for(released[0].wait(), 10)
    second = asyncio.create_task(run(1))
    # the second is scored with the first batch's updates applied: it sees the card's first event (see below)
    await asyncio.wait_for(released[1].wait(), 10)
    await asyncio.sleep(0.05)
    assert log == ["release 0", "send tx-0", "release 1"]  # the second waits for the first's acknowledgement
    producer.acks[0].set_result(None)
    await first
    await asyncio.wait_for(producer.sent_again.wait(), 10)
    producer.acks[1].set_result(None)
    await second
    assert log == ["release 0", "send tx-0", "release 1", "done 0", "send tx-1", "done 1"]
    second_decision = orjson.loads(producer.sent[-1][2])
    assert "card_tx_count_1h" not in second_decision["features_missing"]
