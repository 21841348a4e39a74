"""The Redis client of the feature store: redis-py's asyncio pool with a cheaper write for our packed commands."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import redis.asyncio as aioredis
from redis.asyncio.connection import Connection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from stream_scorer.config import RedisSettings


class DirectWriteConnection(Connection):
    """A connection whose ``send_packed_command`` writes at once when the socket takes the bytes.

    redis-py wraps every write in ``asyncio.wait_for(..., socket_timeout)``, which on Python 3.11 creates a task
    per command (~23 us, and the write waits one event-loop iteration): more than a feature read's own work.
    Here the bytes go to the transport directly; only when the socket does not take them all (the server is not
    reading) is the wait for them bounded by ``socket_timeout`` as before. Health checks, connecting, other
    command shapes and error mapping stay redis-py's."""

    async def send_packed_command(self, command: bytes | str | Iterable[bytes], check_health: bool = True) -> None:
        writer = self._writer
        if check_health or not isinstance(command, bytes) or writer is None or not self.is_connected:
            return await super().send_packed_command(command, check_health)
        transport = writer.transport
        if transport.is_closing():
            await self.disconnect(nowait=True)
            raise RedisConnectionError(f"Error while writing to {self._host_error()}: connection closed.")
        try:
            writer.write(command)
            if transport.get_write_buffer_size():  # not all taken by the socket: wait for it, bounded
                await asyncio.wait_for(writer.drain(), self.socket_timeout)
        except TimeoutError:
            await self.disconnect(nowait=True)
            raise RedisTimeoutError("Timeout writing to socket") from None
        except OSError as exc:
            await self.disconnect(nowait=True)
            raise RedisConnectionError(f"Error while writing to {self._host_error()}: {exc}") from exc
        except BaseException:
            await self.disconnect(nowait=True)  # a half-written command must not be left for the next user
            raise
        return None


def create_redis(settings: RedisSettings) -> aioredis.Redis:
    """A pooled asyncio client (hiredis parser when installed); no connection is opened until first use."""
    password = settings.password.get_secret_value() if settings.password else None
    pool = aioredis.ConnectionPool(
        connection_class=DirectWriteConnection,
        host=settings.host, port=settings.port, db=settings.db, password=password, decode_responses=True,
        max_connections=settings.max_connections, socket_timeout=settings.socket_timeout_sec,
        socket_connect_timeout=settings.socket_timeout_sec, health_check_interval=30,
        # no retries with backoff (redis-py's default: 10): a Redis outage must cost one timeout, not seconds,
        # so the API answers degraded at once and /health stays within probe timeouts
        retry=Retry(NoBackoff(), 0),
    )
    return aioredis.Redis.from_pool(pool)
