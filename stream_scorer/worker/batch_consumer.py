"""faust's Kafka consumer handing whole fetched batches to one handler per topic.

faust delivers a record to an agent through a per-message path: a coroutine per record, two tasks per record
(``wait_first`` in the drain loop), the channel queue, the stream's iterator, an ``Event`` and the buffer of
``take``. On this 2-core machine that path cost more CPU than scoring the event. Here the consumer keeps every
part of faust's that matters for delivery (group membership and rebalances in its consumer thread, flow control,
offset tracking, acks, commits, the monitor's counters) and replaces only the drain loop: the records of one
fetch (up to ``batch_size``, topped up for at most ``batch_wait_sec``) go to the topic's handler as one list.

Delivery is unchanged: every message is tracked before its handler runs and acked when the handler returns, and
faust commits acked offsets; a rebalance or a shutdown waits for the batches in flight (``wait_empty``) before
committing, and a handler that fails never acks (``ScoringRuntime.run_batch`` exits the process without
committing, and the batch is redelivered). The next batch starts when the handler releases the current one
(``stream_scorer.worker.release``: its feature updates are applied, only the broker's acknowledgements are
awaited), so that wait overlaps the next batch's scoring; at most two batches are in flight. Only topics
subscribed with ``batch_subscribe`` are served: faust agents are not (their per-message path would wait on flow
control inside this loop during a rebalance).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import faust
from aiokafka import AIOKafkaConsumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message, TopicT
from faust.types.transports import TransportT
from mode import ServiceT

from stream_scorer.worker.release import BATCH_RELEASE

BatchHandler = Callable[[Sequence[Message]], Awaitable[None]]
FETCH_TIMEOUT_SEC = 1.0


class BatchApp(faust.App):
    """A faust app whose consumer delivers each fetched batch of a subscribed topic to that topic's handler."""

    def __init__(self, *args: Any, batch_size: int, batch_wait_sec: float, fetch_max_wait_ms: int,
                 **kwargs: Any) -> None:
        super().__init__(*args, broker_max_poll_records=batch_size, **kwargs)
        self.batch_size = batch_size
        self.batch_wait_sec = batch_wait_sec
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.batch_handlers: dict[str, BatchHandler] = {}

    def batch_subscribe(self, topic: TopicT, handler: BatchHandler) -> None:
        """Consume ``topic`` in the app's consumer group; its records reach ``handler`` a fetched batch at a time."""
        for name in topic.topics:
            self.batch_handlers[name] = handler
        self.topics.add(topic)

    def _new_transport(self) -> TransportT:
        return BatchTransport(self.conf.broker_consumer, self)


class BatchConsumer(faust_aiokafka.Consumer):
    _in_flight: deque[asyncio.Future[None]]
    """Batches handed to their handler and not finished: the last one, and one released still waiting for its
    broker acknowledgements."""
    _carried: Sequence[tuple[TP, Any]] = ()
    """Records of the last fetch beyond ``batch_size``: the head of the next batch."""
    _carried_generation: int | None = None

    async def _drain_messages(self, fetcher: ServiceT) -> None:  # the fetcher service's loop
        app = cast(BatchApp, self.app)
        self._in_flight = getattr(self, "_in_flight", None) or deque()  # kept if faust restarts this loop
        stopped = self._stopped.is_set
        fetcher_stopped = cast(Any, fetcher)._stopped.is_set
        try:
            while not (stopped() or fetcher_stopped()):
                messages = await self._fetch_batch(app.batch_size, app.batch_wait_sec)
                by_topic: dict[str, list[Message]] = {}
                for message in messages:
                    by_topic.setdefault(message.topic, []).append(message)
                for topic, batch in by_topic.items():
                    handler = app.batch_handlers.get(topic)
                    if handler is None:  # not tracked, never acked: nothing waits for it (agents are not served)
                        self.log.warning("no batch handler for %s: %d records skipped", topic, len(batch))
                    else:
                        await self._deliver(handler, batch)
                commit_every = self._commit_every
                if commit_every is not None and self._n_acked >= commit_every:
                    self._n_acked = 0
                    await self.commit()
        except self.consumer_stopped_errors:
            if not self.transport.app.should_stop:
                raise
            self.log.info("Broker stopped consumer, shutting down...")
        except asyncio.CancelledError:
            if not self.transport.app.should_stop:
                raise

    async def _deliver(self, handler: BatchHandler, messages: list[Message]) -> None:
        """Run the handler on already tracked messages, then ack them; return once the handler released the
        batch (``release_batch``: the next one may start) or finished, with at most two batches in flight."""
        inbound = self.app.monitor.stream_inbound_time  # what faust's stall check reads (set by streams before)
        now = time.monotonic()
        for tp in {m.tp for m in messages}:
            inbound[tp] = now
        released: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def release() -> None:
            if not released.done():
                released.set_result(None)

        in_flight = self._in_flight
        previous = in_flight[-1] if in_flight else None

        async def run() -> None:
            BATCH_RELEASE.set(release)  # this task's context only
            await handler(messages)
            if previous is not None:  # acks in batch order: a commit never passes a batch still in flight
                await asyncio.shield(previous)
            on_out = self.app.sensors.on_message_out
            for message in messages:
                self.ack(message)
                on_out(message.tp, message.offset, message)

        # A task of its own: stopping the fetcher cancels this loop, not the batch; shutdown and rebalances wait
        # for its acks (``wait_empty``) before committing.
        task = asyncio.ensure_future(run())
        task.add_done_callback(lambda _: release())
        in_flight.append(task)
        await asyncio.shield(released)
        while len(in_flight) > 1 or (in_flight and in_flight[0].done()):
            await asyncio.shield(in_flight[0])  # raises what the batch raised (the handler exits the process first)
            in_flight.popleft()

    async def _fetch_batch(self, size: int, within: float) -> list[Message]:
        """Up to ``size`` records of the active partitions, in partition order (more are fetched for at most
        ``within`` seconds while there are fewer; records beyond ``size`` start the next batch). Empty while a
        rebalance is under way or happened meanwhile: what was fetched and not delivered is then read again
        from the committed offsets (``_read_again``). Carried records are kept only while the generation is
        unchanged: every rebalance (pausing partitions included) bumps it, as no static membership is set."""
        records, generation = list(self._carried), self._carried_generation
        self._carried = ()
        deadline: float | None = None
        while not records or (len(records) < size and within > 0):
            if records:
                now = time.monotonic()
                deadline = now + within if deadline is None else deadline
                if now >= deadline:
                    break
                timeout = deadline - now
            else:
                timeout = FETCH_TIMEOUT_SEC
                generation = self.app.consumer_generation_id
            fetched, active = await self._wait_next_records(timeout)
            if self.should_stop:
                return []
            if not self.flow_active or self.app.consumer_generation_id != generation:
                return await self._read_again()  # a rebalance started or happened during the fetch
            for tp, tp_records in (fetched or {}).items():
                if active is None or tp in active or tp in self._buffered_partitions:
                    records.extend((tp, record) for record in tp_records)
            if not records:
                return []  # nothing within the timeout: the loop checks for a stop, then fetches again
        if self.should_stop:
            return []
        if not self.flow_active or self.app.consumer_generation_id != generation:
            return await self._read_again()
        self._carried, self._carried_generation = records[size:], generation
        # no await since the checks above: the whole batch is tracked before a rebalance can start waiting for it
        messages, gaps = self._track_new(records[:size])
        for tp, offset_from, offset_to in gaps:
            await self._add_gap(tp, offset_from, offset_to)
        return messages

    async def _read_again(self) -> list[Message]:
        """Drop what was fetched and not delivered, and seek to the committed offsets so it is read again (as
        faust's ``getmany`` does when the flow stopped). faust's own recovery seek may already be behind us:
        records fetched after it would otherwise be skipped. A worker left with no partitions has nothing to
        seek; a failing seek crashes the worker rather than skip records (at-least-once)."""
        if self.assignment():
            await self.perform_seek()
        return []

    def _track_new(self, records: Sequence[tuple[TP, Any]]) -> tuple[list[Message], list[tuple[TP, int, int]]]:
        """Messages of the records not read before (as faust's loop: offsets below the read offset are
        dropped), tracked as in flight when a batch handler will ack them; and the gaps in offsets to register
        so that commits can pass them."""
        read_offset = self._read_offset
        acks_enabled_for = self.app.topics.acks_enabled_for
        handled = cast(BatchApp, self.app).batch_handlers
        to_message = self._to_message
        messages: list[Message] = []
        gaps: list[tuple[TP, int, int]] = []
        for tp, record in records:
            offset = record.offset
            last = read_offset[tp]
            if last is not None and offset < last:
                continue
            if last and offset - last > 1 and acks_enabled_for(tp.topic):
                gaps.append((tp, last + 1, offset))
            message = to_message(tp, record)
            if tp.topic in handled:
                self.track_message(message)
            messages.append(message)
            read_offset[tp] = offset
        for tp in {tp for tp, _ in records}:
            self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
        return messages, gaps


class BatchConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: faust_aiokafka.Transport) -> AIOKafkaConsumer:
        """faust's consumer, with the broker's wait for a fetch at ``WORKER_FETCH_MAX_WAIT_MS`` (faust: 1,500).

        aiokafka keeps one fetch request in flight per broker, for the partitions with nothing buffered. When
        it holds only partitions with no new records, the broker keeps it for the whole wait, and partitions
        that run out of buffered records meanwhile are not fetched again until it returns: a catch-up over
        partitions of unequal backlog stalled ~0.6 s near its end, and busy partitions next to idle ones
        would stall the same way."""
        consumer = super()._create_worker_consumer(transport)
        if not hasattr(consumer, "_fetch_max_wait_ms"):  # aiokafka's own attribute, read by start() (Fetcher)
            raise RuntimeError("this aiokafka has no _fetch_max_wait_ms: WORKER_FETCH_MAX_WAIT_MS cannot be set")
        consumer._fetch_max_wait_ms = cast(BatchApp, self.app).fetch_max_wait_ms
        return consumer


class BatchWorkerConsumer(BatchConsumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return BatchConsumerThread(self, loop=self.loop, beacon=self.beacon)


class BatchTransport(faust_aiokafka.Transport):
    Consumer = BatchWorkerConsumer
