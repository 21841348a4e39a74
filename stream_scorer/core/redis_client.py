"""The Redis client of the feature store: redis-py's asyncio pool, plus one multiplexed connection for the
store's script calls (the hot path: see ``multiplexed``)."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import Connection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from stream_scorer.config import RedisSettings
from stream_scorer.core.multiplexed import MultiplexedConnection

DEFAULT_TIMEOUT_SEC = 5.0
"""Of the multiplexed connection, when the client sets no ``socket_timeout``."""


class FeatureRedis(aioredis.Redis):
    """A redis-py client (same arguments) whose ``multiplexed`` connection, opened on first use with the client's
    host, port, db and credentials, is closed with it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._multiplexed: MultiplexedConnection | None = None

    @property
    def multiplexed(self) -> MultiplexedConnection:
        if self._multiplexed is None:
            if self.connection_pool.connection_class is not Connection:
                raise ValueError("the feature store's connection is plain TCP (host, port): "
                                 f"{self.connection_pool.connection_class.__name__} is not supported")
            kw = self.connection_pool.connection_kwargs
            self._multiplexed = MultiplexedConnection(
                kw.get("host", "localhost"), int(kw.get("port", 6379)), db=int(kw.get("db", 0)),
                username=kw.get("username"), password=kw.get("password"),
                timeout=kw.get("socket_timeout") or DEFAULT_TIMEOUT_SEC)
        return self._multiplexed

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        if self._multiplexed is not None:
            self._multiplexed.close()
        await super().aclose(close_connection_pool)


def create_redis(settings: RedisSettings) -> FeatureRedis:
    """A pooled asyncio client (hiredis parser when installed); no connection is opened until first use."""
    password = settings.password.get_secret_value() if settings.password else None
    pool = aioredis.ConnectionPool(
        host=settings.host, port=settings.port, db=settings.db, password=password, decode_responses=True,
        max_connections=settings.max_connections, socket_timeout=settings.socket_timeout_sec,
        socket_connect_timeout=settings.socket_timeout_sec, health_check_interval=30,
        # no retries with backoff (redis-py's default: 10): a Redis outage must cost one timeout, not seconds,
        # so the API answers degraded at once and /health stays within probe timeouts
        retry=Retry(NoBackoff(), 0),
    )
    client = FeatureRedis.from_pool(pool)
    assert isinstance(client, FeatureRedis)  # from_pool builds ``cls``
    return client
