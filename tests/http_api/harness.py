"""Helpers for the HTTP tests: the app in process (with its lifespan), metric values, Redis command counts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import redis.asyncio as aioredis
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from http_api.app import create_app
from stream_scorer.config import Settings


@asynccontextmanager
async def in_process_api(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The app with its lifespan entered, and a client that calls it through the ASGI transport."""
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://api") as c:
        yield app, c


def metric_value(exposition: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text (0.0 when the labelled series does not exist yet)."""
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


async def command_calls(redis: aioredis.Redis, command: str) -> int:
    """How many times the server executed ``command`` (``INFO commandstats``; server-wide, all clients)."""
    stats = await redis.info("commandstats")
    entry = stats.get(f"cmdstat_{command.lower()}")
    return int(entry["calls"]) if isinstance(entry, dict) else 0
