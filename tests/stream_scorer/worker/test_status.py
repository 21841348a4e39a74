"""The worker's /ready and /health while its consumer is still starting: 503 and 200, never an error."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from aiohttp import ClientSession
from faust.exceptions import ConsumerNotStarted
from faust.types import TP

from stream_scorer.worker.status import WorkerStatusServer
from tests.support.processes import free_port


class _Store:
    async def ping(self) -> float:
        return 0.001


class _Consumer:
    def __init__(self) -> None:
        self.started = False

    def assignment(self) -> set[TP]:
        if not self.started:
            raise ConsumerNotStarted("Consumer thread not yet started")
        return {TP("transactions", 1), TP("transactions", 0)}


async def test_ready_is_503_until_the_consumer_has_started() -> None:
    consumer = _Consumer()
    services: Any = SimpleNamespace(store=_Store(), models=SimpleNamespace(loaded=lambda: {
        "fraud": SimpleNamespace(version="v1")}))
    port = free_port()
    async with WorkerStatusServer(services, SimpleNamespace(consumer=consumer), port, "127.0.0.1"), \
            ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/ready") as r:
            assert r.status == 503
            body = await r.json()
            assert body["consumer"] == "starting" and body["assigned_partitions"] == []
        async with http.get(f"http://127.0.0.1:{port}/health") as r:
            assert r.status == 200 and (await r.json())["consumer"] == "starting"
        consumer.started = True
        async with http.get(f"http://127.0.0.1:{port}/ready") as r:
            assert r.status == 200
            body = await r.json()
            assert body["ready"] is True and body["assigned_partitions"] == ["transactions[0]", "transactions[1]"]
