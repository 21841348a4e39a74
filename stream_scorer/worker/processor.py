"""Batch processing for each input topic, independent of how faust delivers the batch.

For every batch: decode (bad records become dead letters), score the valid events with one feature-store
round trip and one model call, apply their feature updates, produce the decisions and dead letters, and wait
until the broker has acknowledged every one of them. Only then does the caller let faust ack the offsets.
Retryable failures (Redis or the broker) are retried with backoff, never dead-lettered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from aiokafka.errors import KafkaError
from pydantic import BaseModel

from schemas.decisions import ShadowScore, to_json
from schemas.events import FraudLabel, SessionEvent, TransactionEvent
from stream_scorer.core.feature_state import LabelUpdate
from stream_scorer.core.identified import Identified, identify_session_event, identify_transaction
from stream_scorer.core.scorer import Scorer
from stream_scorer.errors import BrokerUnavailable, ScoringError
from stream_scorer.metrics import Metrics, observe_many
from stream_scorer.worker.dead_letters import DeadLetter, dead_letter
from stream_scorer.worker.decode import decode
from stream_scorer.worker.release import release_batch

log = logging.getLogger(__name__)

MAX_BACKOFF_SEC = 5.0
KEY_WARNING_INTERVAL_SEC = 60.0


class RetryAbandoned(BaseException):
    """The worker is stopping while a batch waits for Redis or the broker: the batch must not be committed.

    A ``BaseException`` so that the per-event isolation (``except Exception``) never dead-letters it."""


class Record(NamedTuple):
    """What the processor needs of a consumed Kafka record (a NamedTuple: immutable, and ~3x cheaper to build than
    a frozen dataclass, one per record)."""

    topic: str
    partition: int
    offset: int
    timestamp: float | None
    key: bytes | None
    value: bytes | None


Headers = list[tuple[str, bytes]]
Outgoing = tuple[str, bytes | None, bytes, Headers | None]
"""(topic, key, value, headers) of a record to produce."""


class Unacknowledged(Exception):
    """Some records of a ``send_all`` were not acknowledged by the broker (the others were)."""

    def __init__(self, records: Sequence[Outgoing], cause: BaseException) -> None:
        super().__init__(f"{len(records)} records not acknowledged: {cause!r}")
        self.records = records
        self.cause = cause


class Producer(Protocol):
    async def send_all(self, records: Sequence[Outgoing]) -> Awaitable[Any]:
        """Queue every record (in order within each partition); the returned awaitable resolves when the broker
        acknowledged all of them. It raises :class:`Unacknowledged` naming the records that failed when it can
        tell them apart, any other error when it cannot (then every record is sent again)."""
        ...


@dataclass(frozen=True)
class OutputTopics:
    fraud_decisions: str
    personalization_scores: str
    dlq: str
    shadow: str = "scoring-shadow"


Scored = tuple[list[BaseModel], list[ShadowScore]]
"""Decisions in event order, and the shadow models' scores of the same events."""


class BatchProcessor:
    def __init__(self, scorer: Scorer, producer: Producer, outputs: OutputTopics, metrics: Metrics, *,
                 clock: Callable[[], float] = time.time, should_stop: Callable[[], bool] = lambda: False) -> None:
        self._should_stop = should_stop
        self._scorer = scorer
        self._producer = producer
        self._out = outputs
        self._metrics = metrics
        self._clock = clock
        self._key_warned_at: dict[str, float] = {}
        self._sending = asyncio.Lock()
        """Held while a batch produces and waits for its acknowledgements (a retry resends what failed before
        the next batch sends anything, keeping each partition's order)."""

    async def process_transactions(self, records: Sequence[Record]) -> None:
        await self._score_batch(records, TransactionEvent, identify_transaction, self._score_tx,
                                self._out.fraud_decisions, key_of=lambda e: e.card_id)

    async def process_sessions(self, records: Sequence[Record]) -> None:
        await self._score_batch(records, SessionEvent, identify_session_event, self._score_sessions,
                                self._out.personalization_scores, key_of=lambda e: e.user_id)

    async def process_labels(self, records: Sequence[Record]) -> None:
        if not records:
            return
        topic = records[0].topic
        self._metrics.batch_size.labels(topic).observe(len(records))
        updates: list[LabelUpdate] = []
        letters: list[DeadLetter] = []
        for record in records:
            decoded = decode(FraudLabel, record.value)
            if decoded.event is None:
                assert decoded.rejection is not None
                letters.append(_letter(record, decoded.rejection.reason, decoded.rejection.field,
                                       decoded.rejection.detail))
                continue
            label = decoded.event
            updates.append(LabelUpdate(label.transaction_id, label.merchant_id, label.mcc_code,
                                       label.transaction_timestamp.timestamp(), label.is_fraud))
        start = time.perf_counter()
        applied = await self._retrying(topic, lambda: self._scorer.apply_labels(updates))
        self._metrics.feature_update_duration.labels(topic).observe(time.perf_counter() - start)
        release_batch()
        await self._send_all(topic, [], letters)
        self._metrics.stream_events.labels(topic, "applied").inc(applied)
        self._metrics.stream_events.labels(topic, "ignored").inc(len(updates) - applied)
        self._count_dead(topic, letters)

    # ------------------------------------------------------------------------------------------- internals
    async def _score_tx(self, items: Sequence[Identified[TransactionEvent]]) -> Scored:
        shadow: list[ShadowScore] = []
        return list(await self._scorer.score_transactions(items, apply_updates=True, shadow=shadow)), shadow

    async def _score_sessions(self, items: Sequence[Identified[SessionEvent]]) -> Scored:
        shadow: list[ShadowScore] = []
        return list(await self._scorer.score_session_events(items, apply_updates=True, shadow=shadow)), shadow

    async def _score_batch(self, records: Sequence[Record], schema: type[Any], identify: Callable[..., Any],
                           score: Callable[[Sequence[Any]], Awaitable[Scored]], out_topic: str,
                           key_of: Callable[[Any], str]) -> None:
        if not records:
            return
        topic = records[0].topic
        self._metrics.batch_size.labels(topic).observe(len(records))
        items: list[Identified[Any]] = []
        sources: list[Record] = []
        letters: list[DeadLetter] = []
        keys: list[bytes] = []  # per item: its entity's id, the key of its decision
        mismatched: list[Record] = []
        now = self._clock()
        for record in records:
            decoded = decode(schema, record.value)
            if decoded.event is None:
                assert decoded.rejection is not None
                letters.append(_letter(record, decoded.rejection.reason, decoded.rejection.field,
                                       decoded.rejection.detail))
                continue
            fallback_id = f"{record.topic}-{record.partition}-{record.offset}"
            item = identify(decoded.event, fallback_id, record.timestamp or now)
            key = key_of(decoded.event).encode()
            if record.key != key:
                mismatched.append(record)
            items.append(item)
            keys.append(key)
            sources.append(record)
        if mismatched:
            self._count_key_mismatches(topic, mismatched)
        shadows: list[ShadowScore] = []
        try:
            decisions, shadows = await self._retrying(topic, lambda: score(items))
            scored = list(zip(keys, decisions, strict=True))
        except Exception as exc:  # not retryable (those are retried inside): find the events that fail alone
            log.warning("batch scoring failed, scoring events one by one", extra={"topic": topic,
                                                                                  "error": repr(exc)})
            scored = []
            failed: list[tuple[Record, Exception]] = []
            for item, key, record in zip(items, keys, sources, strict=True):
                try:
                    [decision], shadow = await self._retrying(topic, lambda item=item: score([item]))  # type: ignore[misc]
                except Exception as one:
                    failed.append((record, one))
                else:
                    scored.append((key, decision))
                    shadows.extend(shadow)
            if len(items) > 1 and not scored:
                raise  # every event fails alone too: not a poison event but a broken scorer; never dead-letter
            for record, error in failed:
                letters.append(_letter(record, "scoring_failed", getattr(error, "field", None),
                                       f"{type(error).__name__}: {error}"))
        outputs: list[Outgoing] = [(out_topic, key, to_json(decision), None) for key, decision in scored]
        outputs += [(self._out.shadow, s.event_id.encode(), to_json(s), None) for s in shadows]
        release_batch()  # the features are updated: the next batch may be scored while the broker acknowledges
        await self._send_all(topic, outputs, letters)
        done = self._clock()
        observe_many(self._metrics.event_to_decision.labels(topic),
                     [max(0.0, done - r.timestamp) for r in sources if r.timestamp is not None])
        self._metrics.stream_events.labels(topic, "scored").inc(len(scored))
        self._count_dead(topic, letters)

    async def _send_all(self, topic: str, outputs: Sequence[Outgoing], letters: Sequence[DeadLetter]) -> None:
        """Produce everything and wait for every broker acknowledgement. A failure is retried with backoff,
        sending again only what was not acknowledged when the producer can tell (fewer duplicates downstream)."""
        pending: Sequence[Outgoing] = [*outputs, *((self._out.dlq, letter.key, letter.value or b"", letter.headers)
                                                   for letter in letters)]
        if not pending:
            return
        async with self._sending:  # a released batch may still be sending: the next one's records go after its
            await self._send_in_order(topic, pending)

    async def _send_in_order(self, topic: str, pending: Sequence[Outgoing]) -> None:
        async def attempt() -> None:
            nonlocal pending
            try:
                await (await self._producer.send_all(pending))
            except Unacknowledged as exc:
                pending = exc.records
                raise BrokerUnavailable(f"producing failed: {exc}") from exc.cause
            except (KafkaError, OSError) as exc:
                raise BrokerUnavailable(f"producing failed: {exc!r}") from exc

        await self._retrying(topic, attempt)

    async def _retrying(self, topic: str, call: Callable[[], Awaitable[Any]]) -> Any:
        delay = 0.05
        while True:
            try:
                return await call()
            except ScoringError as exc:
                if not exc.retryable:
                    raise
                if self._should_stop():  # shutting down while Redis or the broker is down: give the batch back
                    raise RetryAbandoned(f"stopping while retrying: {exc.message}") from exc
                self._metrics.retries.labels(topic, exc.code).inc()
                log.warning("retryable failure, backing off", extra={"topic": topic, "error": exc.message,
                                                                     "delay_sec": delay})
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_SEC)

    def _count_key_mismatches(self, topic: str, records: Sequence[Record]) -> None:
        """Count (and at most once a minute per topic, log) events keyed other than by their entity: the
        worker cannot move them to the right partition, but the operator must know the producer is wrong."""
        missing = sum(1 for r in records if r.key is None)
        if missing:
            self._metrics.key_mismatches.labels(topic, "missing").inc(missing)
        if missing < len(records):
            self._metrics.key_mismatches.labels(topic, "other").inc(len(records) - missing)
        now = time.monotonic()
        last = self._key_warned_at.get(topic)
        if last is None or now - last >= KEY_WARNING_INTERVAL_SEC:
            self._key_warned_at[topic] = now
            first = records[0]  # located by partition and offset: keys are card / user ids, never logged
            log.warning("events not keyed by their entity id: producers must key them by it, or one entity's "
                        "events are spread over partitions", extra={
                            "topic": topic, "in_batch": len(records), "partition": first.partition,
                            "offset": first.offset, "key_missing": first.key is None})

    def _count_dead(self, topic: str, letters: Sequence[DeadLetter]) -> None:
        for letter in letters:
            self._metrics.dlq.labels(topic, letter.reason).inc()
            self._metrics.stream_events.labels(topic, "dead_lettered").inc()


def _letter(record: Record, reason: str, field: str | None, detail: str) -> DeadLetter:
    return dead_letter(key=record.key, value=record.value, source_topic=record.topic, partition=record.partition,
                       offset=record.offset, timestamp=record.timestamp, reason=reason, field=field, error=detail)
