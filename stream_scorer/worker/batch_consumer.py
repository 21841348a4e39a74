"""faust's Kafka consumer handing whole fetched batches to one handler per topic.

faust delivers a record to an agent through a per-message path: a coroutine per record, two tasks per record
(``wait_first`` in the drain loop), the channel queue, the stream's iterator, an ``Event`` and the buffer of
``take``. On this 2-core machine that path cost more CPU than scoring the event. Here the consumer keeps every
part of faust's that matters for delivery (group membership and rebalances in its consumer thread, flow control,
offset tracking, acks, commits, the monitor's counters) and replaces only the drain loop: the records of one
fetch (up to ``batch_size``, topped up for at most ``batch_wait_sec``) go to the topic's handler as one list.

Delivery is unchanged: every message is tracked before its handler runs and acked when the handler returns, and
faust commits acked offsets; a rebalance or a shutdown waits for the batch in flight (``wait_empty``) before
committing, and a handler that fails never acks (the worker exits, the batch is redelivered).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message, TopicT
from faust.types.transports import TransportT
from mode import ServiceT

BatchHandler = Callable[[Sequence[Message]], Awaitable[None]]
FETCH_TIMEOUT_SEC = 1.0


class BatchApp(faust.App):
    """A faust app whose consumer delivers each fetched batch of a subscribed topic to that topic's handler."""

    def __init__(self, *args: Any, batch_size: int, batch_wait_sec: float, **kwargs: Any) -> None:
        super().__init__(*args, broker_max_poll_records=batch_size, **kwargs)
        self.batch_size = batch_size
        self.batch_wait_sec = batch_wait_sec
        self.batch_handlers: dict[str, BatchHandler] = {}

    def batch_subscribe(self, topic: TopicT, handler: BatchHandler) -> None:
        """Consume ``topic`` in the app's consumer group; its records reach ``handler`` a fetched batch at a time."""
        for name in topic.topics:
            self.batch_handlers[name] = handler
        self.topics.add(topic)

    def _new_transport(self) -> TransportT:
        return BatchTransport(self.conf.broker_consumer, self)


class BatchConsumer(faust_aiokafka.Consumer):
    async def _drain_messages(self, fetcher: ServiceT) -> None:  # the fetcher service's loop
        app = cast(BatchApp, self.app)
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
                    if handler is None:  # a topic an agent reads: faust's own per-message path
                        for message in batch:
                            await self.callback(message)
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
        for message in messages:
            self.track_message(message)

        async def run() -> None:
            await handler(messages)
            on_out = self.app.sensors.on_message_out
            for message in messages:
                self.ack(message)
                on_out(message.tp, message.offset, message)

        # A task of its own: stopping the fetcher cancels this loop, not the batch; shutdown and rebalances wait
        # for its acks (``wait_empty``) before committing.
        await asyncio.shield(asyncio.ensure_future(run()))

    async def _fetch_batch(self, size: int, within: float) -> list[Message]:
        """Up to ``size`` records of the active partitions, in partition order; when the first fetch brings
        fewer, more are fetched for at most ``within`` seconds. Empty when the flow stopped (a rebalance): the
        records fetched meanwhile are left to be read again from the committed offsets."""
        records: list[tuple[TP, Any]] = []
        generation: int | None = None
        deadline: float | None = None
        timeout = FETCH_TIMEOUT_SEC
        while True:
            fetched, active = await self._wait_next_records(timeout)
            if self.should_stop:
                return []
            if generation is None:
                generation = self.app.consumer_generation_id
            if not self.flow_active or self.app.consumer_generation_id != generation:
                # a rebalance started or happened meanwhile: what this consumer read but did not deliver is
                # read again from the committed offsets (the fetcher's positions moved past it)
                await self.perform_seek()
                return []
            for tp, tp_records in (fetched or {}).items():
                if active is None or tp in active or tp in self._buffered_partitions:
                    records.extend((tp, record) for record in tp_records)
            if not records or len(records) >= size or within <= 0:
                break
            now = time.monotonic()
            deadline = deadline if deadline is not None else now + within
            if now >= deadline:
                break
            timeout = deadline - now
        return await self._new_messages(records)

    async def _new_messages(self, records: Sequence[tuple[TP, Any]]) -> list[Message]:
        """Messages of the records not read before (as faust's loop: offsets below the read offset are dropped,
        gaps in offsets are registered so that commits can pass them)."""
        read_offset = self._read_offset
        acks_enabled_for = self.app.topics.acks_enabled_for
        to_message = self._to_message
        messages: list[Message] = []
        for tp, record in records:
            offset = record.offset
            last = read_offset[tp]
            if last is not None and offset < last:
                continue
            if last and offset - last > 1 and acks_enabled_for(tp.topic):
                await self._add_gap(tp, last + 1, offset)
            messages.append(to_message(tp, record))
            read_offset[tp] = offset
        for tp in {tp for tp, _ in records}:
            self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
        return messages


class BatchTransport(faust_aiokafka.Transport):
    Consumer = BatchConsumer
