"""The worker's own /metrics, /health and /ready (aiohttp, which faust already depends on)."""

from __future__ import annotations

from types import TracebackType

import faust
import orjson
from aiohttp import web
from faust.exceptions import ConsumerNotStarted
from prometheus_client import CONTENT_TYPE_LATEST

from stream_scorer.bootstrap import Services
from stream_scorer.metrics import exposition


class WorkerStatusServer:
    def __init__(self, services: Services, app: faust.App, port: int, host: str = "0.0.0.0") -> None:
        self._services = services
        self._app = app
        self._port = port
        self._host = host
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> WorkerStatusServer:
        web_app = web.Application()
        web_app.router.add_get("/metrics", self._metrics)
        web_app.router.add_get("/health", self._health)
        web_app.router.add_get("/ready", self._ready)
        self._runner = web.AppRunner(web_app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self._port).start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _metrics(self, request: web.Request) -> web.Response:
        body = exposition(self._services.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _status(self) -> dict[str, object]:
        try:
            rtt = await self._services.store.ping()
            redis: dict[str, object] = {"status": "up", "latency_ms": round(rtt * 1000, 3)}
        except Exception as exc:  # reported, not raised
            redis = {"status": "down", "error": type(exc).__name__}
        models = {n: m.version for n, m in self._services.models.loaded().items()}
        try:
            assigned = self._app.consumer.assignment()
            consumer = "started"
        except ConsumerNotStarted:  # probed while the worker starts (run.sh, an orchestrator's readiness probe)
            assigned, consumer = set(), "starting"
        assignment = sorted(f"{tp.topic}[{tp.partition}]" for tp in assigned)
        return {"redis": redis, "models": models, "consumer": consumer, "assigned_partitions": assignment}

    async def _health(self, request: web.Request) -> web.Response:
        status = await self._status()
        return web.Response(body=orjson.dumps({"status": "ok", **status}), content_type="application/json")

    async def _ready(self, request: web.Request) -> web.Response:
        status = await self._status()
        ok = (status["redis"]["status"] == "up" and bool(status["models"])  # type: ignore[index]
              and status["consumer"] == "started")
        return web.Response(body=orjson.dumps({"ready": ok, **status}), status=200 if ok else 503,
                            content_type="application/json")
