"""A private ``redis-server`` per test: safe to stop and restart, and exact to count commands on (the shared
stack Redis is used by other processes, so its ``INFO commandstats`` and database 9 are not ours alone)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from stream_scorer.config import RedisSettings, Settings
from stream_scorer.core.redis_client import FeatureRedis
from tests.support.redis_server import RedisServer, throwaway_redis


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    with throwaway_redis(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def private_settings(private_redis: RedisServer, model_dir: Path) -> Settings:
    """Settings for an API against the private Redis; a short socket timeout so an outage is noticed fast."""
    return Settings(model_dir=model_dir, redis=RedisSettings(host=private_redis.host, port=private_redis.port,
                                                             socket_timeout_sec=0.2))


@pytest.fixture
async def private_redis_client(private_redis: RedisServer) -> AsyncIterator[FeatureRedis]:
    client = FeatureRedis(host=private_redis.host, port=private_redis.port, decode_responses=True,
                            socket_timeout=2.0)
    try:
        yield client
    finally:
        await client.aclose()
