"""The batch consumer's hand-off to handlers (the rest of the consumer is faust's, exercised against the real
broker in tests/integration): the next batch starts at the release, acks stay in batch order."""

from __future__ import annotations

import asyncio
from collections import deque
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry

from stream_scorer.config import Settings, WorkerSettings
from stream_scorer.worker.app import create_worker_app
from stream_scorer.worker.batch_consumer import BatchConsumer, BatchConsumerThread
from stream_scorer.worker.release import release_batch


def _consumer(acked: list[int]) -> Any:
    """The attributes ``_deliver`` uses, on a plain object."""
    return SimpleNamespace(
        app=SimpleNamespace(monitor=SimpleNamespace(stream_inbound_time={}),
                            sensors=SimpleNamespace(on_message_out=lambda tp, offset, message: None)),
        ack=lambda message: acked.append(message.offset), _in_flight=deque())


def _messages(*offsets: int) -> list[Any]:
    return [SimpleNamespace(tp="transactions-0", offset=o) for o in offsets]


async def test_the_next_batch_starts_at_the_release_and_acks_wait_for_the_previous_batch() -> None:
    acked: list[int] = []
    consumer = _consumer(acked)
    broker_acked = asyncio.Event()
    handled: list[str] = []

    async def first(messages: list[Any]) -> None:
        handled.append("first scored")
        release_batch()
        await broker_acked.wait()  # producing: waits for the broker

    async def second(messages: list[Any]) -> None:  # has nothing to produce (e.g. labels without dead letters)
        handled.append("second scored")

    await asyncio.wait_for(BatchConsumer._deliver(consumer, first, _messages(1, 2)), 10)  # back at the release
    assert handled == ["first scored"] and acked == []
    delivering = asyncio.create_task(BatchConsumer._deliver(consumer, second, _messages(3)))
    await asyncio.sleep(0.05)
    assert handled == ["first scored", "second scored"]
    assert acked == [] and not delivering.done()  # not acked before the first batch: at most two in flight
    broker_acked.set()
    await asyncio.wait_for(delivering, 10)
    assert acked == [1, 2, 3]
    assert not consumer._in_flight


async def test_a_batch_never_released_is_waited_for_whole() -> None:
    acked: list[int] = []
    consumer = _consumer(acked)

    async def handler(messages: list[Any]) -> None:
        await asyncio.sleep(0.01)

    await asyncio.wait_for(BatchConsumer._deliver(consumer, handler, _messages(7)), 10)
    assert acked == [7] and not consumer._in_flight


async def test_the_worker_consumer_waits_for_fetches_as_configured(tmp_path: Path) -> None:
    """faust creates aiokafka's consumer with a fixed 1,500 ms fetch wait; the worker's is the setting's."""
    settings = Settings(worker=WorkerSettings(fetch_max_wait_ms=77, batch_size=321, data_dir=tmp_path))
    app, _ = create_worker_app(settings, registry=CollectorRegistry())
    consumer = app.consumer
    thread = consumer._new_consumer_thread()
    assert isinstance(thread, BatchConsumerThread)
    client = thread._create_worker_consumer(app.transport)
    try:
        assert client._fetch_max_wait_ms == 77
        assert client._max_poll_records == 321  # faust's own settings are kept
        assert app.conf.broker_max_poll_records == 321
    finally:
        await client.stop()
        for loop in (thread.thread_loop, consumer._thread.thread_loop):  # never started: closed here
            loop.close()
