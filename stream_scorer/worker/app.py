"""The faust app: each input topic's fetched batches go to :class:`BatchProcessor` (see ``batch_consumer``)."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from typing import Any, cast

import faust
import mode
from faust.exceptions import NotReady
from faust.types import Message
from prometheus_client import CollectorRegistry

from stream_scorer.bootstrap import Services, build_services
from stream_scorer.config import Settings
from stream_scorer.errors import BrokerUnavailable
from stream_scorer.gc_tuning import tune_gc
from stream_scorer.heap_tuning import keep_freed_heap
from stream_scorer.worker.batch_consumer import BatchApp
from stream_scorer.worker.lag import ConsumerLagReporter
from stream_scorer.worker.partitioner import partitions_for
from stream_scorer.worker.processor import (
    BatchProcessor,
    Outgoing,
    OutputTopics,
    Record,
    RetryAbandoned,
    Unacknowledged,
)
from stream_scorer.worker.status import WorkerStatusServer
from stream_scorer.worker.topics import Topics, declare_topics, ensure_topics

log = logging.getLogger(__name__)

EXIT_UNEXPECTED = 70
PRODUCER_BATCH_BYTES = 512 * 1024


class FaustProducer:
    """Produces with the aiokafka producer of faust's app, a batch of records per partition.

    ``producer.send`` per record cost ~20 us of the worker's CPU (faust's wrapper, aiokafka's pure-Python murmur2
    and its accumulator, a future per record); here each partition's records go into one aiokafka batch
    (``create_batch`` / ``send_batch``) and the partition is the one ``send`` would pick (``partitions_for``)."""

    def __init__(self, app: faust.App) -> None:
        self._app = app

    async def send_all(self, records: Sequence[Outgoing]) -> Awaitable[Any]:
        try:
            producer = cast(Any, self._app.producer)._ensure_producer()  # faust's driver: its AIOKafkaProducer
        except NotReady as exc:  # stopping (or not started): retryable, so a stopping worker gives the batch back
            raise BrokerUnavailable(f"the producer is not running: {exc}") from exc
        by_topic: dict[str, list[Outgoing]] = {}
        for record in records:
            by_topic.setdefault(record[0], []).append(record)
        by_partition: dict[tuple[str, int], list[Outgoing]] = {}
        for topic, of_topic in by_topic.items():
            partitions = await producer.partitions_for(topic)
            if not partitions:
                raise BrokerUnavailable(f"no partitions known for {topic}")
            for record, partition in zip(of_topic, partitions_for([r[1] for r in of_topic], partitions), strict=True):
                by_partition.setdefault((topic, partition), []).append(record)
        acks: list[tuple[asyncio.Future[Any], tuple[str, int], list[Outgoing]]] = []
        try:
            for (topic, partition), batch_records in by_partition.items():
                batch = producer.create_batch()
                in_batch: list[Outgoing] = []
                for record in batch_records:
                    _, key, value, headers = record
                    if batch.append(timestamp=None, key=key, value=value, headers=headers or []) is None:
                        ack = await _submit(producer, batch, topic, partition)  # full: send it, go on
                        acks.append((ack, (topic, partition), in_batch))
                        batch, in_batch = producer.create_batch(), []
                        if batch.append(timestamp=None, key=key, value=value, headers=headers or []) is None:
                            raise RuntimeError("an empty aiokafka batch refused a record")  # it takes any first
                    in_batch.append(record)
                acks.append((await _submit(producer, batch, topic, partition), (topic, partition), in_batch))
        except BaseException:
            for ack, _, _ in acks:  # sent before the failure: the retry sends them again; read their outcome anyway
                ack.add_done_callback(_observe)
            raise
        return _settled(acks)


async def _settled(acks: list[tuple[asyncio.Future[Any], tuple[str, int], list[Outgoing]]]) -> None:
    """Every batch acknowledged, or :class:`Unacknowledged` with what must be sent again: in each partition with
    a failed batch, that batch and the ones queued after it (resending only the failed one could put its records
    behind later ones of the same partition)."""
    outcomes = await asyncio.gather(*(ack for ack, _, _ in acks), return_exceptions=True)
    again: list[Outgoing] = []
    failing: set[tuple[str, int]] = set()
    first: BaseException | None = None
    for (_, tp, records), outcome in zip(acks, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            failing.add(tp)
            first = first or outcome
        if tp in failing:
            again.extend(records)
    if first is not None:
        raise Unacknowledged(again, first)


async def _submit(producer: Any, batch: Any, topic: str, partition: int) -> asyncio.Future[Any]:
    batch.close()  # nothing else may append to it once queued
    ack: asyncio.Future[Any] = await producer.send_batch(batch, topic, partition=partition)
    return ack


def _observe(ack: asyncio.Future[Any]) -> None:
    if not ack.cancelled():
        ack.exception()  # marks it retrieved: no "exception was never retrieved" at garbage collection


class ScoringRuntime(mode.Service):
    """Builds the services inside faust's event loop before the agents run, closes them after."""

    def __init__(self, settings: Settings, app: faust.App, topics: Topics,
                 registry: CollectorRegistry | None = None) -> None:
        super().__init__()
        self.settings = settings
        self.app = app
        self.topics = topics
        self._registry = registry
        self._stack = AsyncExitStack()
        self._ready = asyncio.Event()
        self.services: Services | None = None
        self.processor: BatchProcessor | None = None

    async def on_start(self) -> None:
        created = await ensure_topics(self.settings.kafka.bootstrap_servers, self.settings.topics)
        if created:
            log.info("topics created", extra={"topics": created})
        services = await self._stack.enter_async_context(build_services(self.settings, registry=self._registry))
        if services.model_errors:
            raise RuntimeError(f"cannot start the worker without its models: {services.model_errors}")
        self.services = services
        names = self.settings.topics
        self.processor = BatchProcessor(services.scorer, FaustProducer(self.app),
                                        OutputTopics(names.fraud_decisions, names.personalization_scores, names.dlq,
                                                     names.shadow),
                                        services.metrics, should_stop=lambda: bool(self.app.should_stop))
        if self.settings.worker.metrics_port:
            status = WorkerStatusServer(services, self.app, self.settings.worker.metrics_port)
            await self._stack.enter_async_context(status)
        await self._stack.enter_async_context(ConsumerLagReporter(self.app, services.metrics))
        tune_gc(self.settings.gc_threshold)
        keep_freed_heap(self.settings.heap_keep_mb)
        self._ready.set()
        log.info("worker ready", extra={"models": {n: m.version for n, m in services.models.loaded().items()}})

    async def on_stop(self) -> None:
        await self._stack.aclose()

    async def run_batch(self, handler: Callable[[BatchProcessor, Sequence[Record]], Awaitable[None]],
                        messages: Sequence[Message]) -> None:
        """Process a batch to the end; never return on failure.

        The consumer acks (and later commits) the batch's offsets when this returns, so an unexpected error
        must not surface as an exception: the process exits without committing and the batch is redelivered
        to whichever worker takes the partitions. Shutdown does not cancel a batch: it waits for its acks.
        """
        await self._ready.wait()
        assert self.processor is not None
        try:
            await handler(self.processor, [_record(m) for m in messages])
        except RetryAbandoned:
            _exit_uncommitted("stopping while the batch waited for Redis or the broker")
        except BaseException:
            _exit_uncommitted("unexpected error while processing a batch")


def _exit_uncommitted(reason: str) -> None:
    log.critical(f"{reason}; exiting without committing (the batch is redelivered)", exc_info=True)
    os._exit(EXIT_UNEXPECTED)


def _record(m: Message) -> Record:
    return Record(m.topic, m.partition, m.offset, m.timestamp, m.key, m.value)


def create_worker_app(settings: Settings, *, registry: CollectorRegistry | None = None
                      ) -> tuple[faust.App, ScoringRuntime]:
    worker = settings.worker
    app = BatchApp(
        worker.app_id,
        batch_size=worker.batch_size,
        batch_wait_sec=worker.batch_wait_sec,
        fetch_max_wait_ms=worker.fetch_max_wait_ms,
        broker=",".join(f"kafka://{hp.strip()}" for hp in settings.kafka.bootstrap_servers.split(",")),
        store="memory://",
        web_enabled=False,
        datadir=str(worker.data_dir),
        topic_partitions=settings.topics.input_partitions,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        processing_guarantee="at_least_once",
        # a crashed worker's partitions move to the others after 10 s instead of faust's default 60 s
        broker_session_timeout=10.0,
        broker_heartbeat_interval=3.0,
        broker_commit_every=1000,
        broker_commit_interval=0.5,
        producer_linger_ms=1,
        # A partition's decisions of one batch fit in one aiokafka batch: a second batch for the same partition
        # waits until the first is on the wire, a broker round trip the worker idled through (16 KiB default)
        producer_max_batch_size=PRODUCER_BATCH_BYTES,
        producer_acks=-1,
        topic_disable_leader=True,  # faust's leader topic is read by no batch handler (and no agent runs here)
    )
    topics = declare_topics(app, settings.topics)
    runtime = ScoringRuntime(settings, app, topics, registry)

    def handle(process: Callable[[BatchProcessor, Sequence[Record]], Awaitable[None]]
               ) -> Callable[[Sequence[Message]], Awaitable[None]]:
        return lambda messages: runtime.run_batch(process, messages)

    app.batch_subscribe(topics.transactions, handle(BatchProcessor.process_transactions))
    app.batch_subscribe(topics.sessions, handle(BatchProcessor.process_sessions))
    app.batch_subscribe(topics.fraud_labels, handle(BatchProcessor.process_labels))
    return app, runtime


def run_worker(settings: Settings) -> None:
    """Run one worker process in the foreground until SIGINT/SIGTERM (graceful: the batches in flight, commit)."""
    use_event_loop(settings.worker.event_loop)
    app, runtime = create_worker_app(settings)
    worker = faust.Worker(app, runtime, loglevel=settings.log_level, quiet=True, override_logging=False,
                          redirect_stdouts=False)
    worker.execute_from_commandline()


def use_event_loop(name: str) -> None:
    """The event loop of the loops created from now on in this process (faust's and its consumer thread's), as
    faust's ``--loop`` option sets it."""
    if name == "uvloop":
        try:
            import uvloop
        except ImportError:  # not installed (uvloop has no Windows build): the standard loop works the same
            log.warning("uvloop is not installed: the worker runs on the standard asyncio loop "
                        "(set WORKER_EVENT_LOOP=asyncio to silence this)")
            return
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
