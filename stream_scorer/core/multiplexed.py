"""One Redis connection shared by all the coroutines of a process, for the feature store's script calls.

A command through redis-py's asyncio pool cost ~195 us of CPU on this machine where the socket round trip itself
costs ~70 us: a pool checkout (a lock, and a non-blocking read per checkout to check the connection), an
``asyncio.timeout`` per read, the parser's layers and the release. The feature store makes one or two script calls
per request or batch, so that overhead was a third of a single ``/score/fraud``. Here commands are written to one
connection as they come and each reply resolves the oldest waiting future (Redis answers in order), so concurrent
callers share the connection without checkout or locks; hiredis parses the replies.

- Errors are redis-py's classes (the callers already handle them): a server error reply is ``ResponseError``
  (``NoScriptError`` for NOSCRIPT), a lost connection ``ConnectionError``, no reply within ``timeout``
  ``TimeoutError``. A lost or timed-out connection fails every reply it still owed and the next call connects
  again (with AUTH and SELECT as configured).
- The timeout costs one timer per connection, not one per call: it watches the oldest unanswered command.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError


class MultiplexedConnection:
    def __init__(self, host: str, port: int, *, db: int = 0, username: str | None = None,
                 password: str | None = None, timeout: float = 5.0) -> None:
        self._address = (host, port)
        self._db = db
        self._username = username
        self._password = password
        self._timeout = timeout
        self._transport: asyncio.Transport | None = None
        self._reader: Any = None
        self._pending: deque[tuple[asyncio.Future[Any], float]] = deque()  # oldest first, with its send time
        self._watchdog: asyncio.TimerHandle | None = None
        self._connecting: asyncio.Lock | None = None

    @property
    def connected(self) -> bool:
        return self._transport is not None

    async def send(self, payload: bytes, replies: int) -> list[asyncio.Future[Any]]:
        """Write ``payload`` (``replies`` commands, RESP-packed); a future per reply, in order."""
        if self._transport is None:
            await self._connect()
        return self._write(payload, replies)

    def close(self) -> None:
        self._drop(lambda: RedisConnectionError("connection closed by the client"))

    # ------------------------------------------------------------------------------------------------ internals
    def _write(self, payload: bytes, replies: int) -> list[asyncio.Future[Any]]:
        transport = self._transport
        if transport is None or transport.is_closing():
            self._drop(lambda: RedisConnectionError(f"connection to {self._where()} lost"))
            raise RedisConnectionError(f"connection to {self._where()} lost")
        loop = asyncio.get_running_loop()
        now = loop.time()
        futures = [loop.create_future() for _ in range(replies)]
        self._pending.extend((future, now) for future in futures)
        transport.write(payload)
        if self._watchdog is None:
            self._watchdog = loop.call_at(now + self._timeout, self._check_timeout)
        return futures

    async def _connect(self) -> None:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._transport is not None:
                return  # another caller connected meanwhile
            loop = asyncio.get_running_loop()
            try:
                async with asyncio.timeout(self._timeout):
                    transport, _ = await loop.create_connection(lambda: _Protocol(self), *self._address)
            except (OSError, TimeoutError) as exc:
                raise RedisConnectionError(f"Error connecting to {self._where()}: {exc or 'timeout'}") from None
            self._reader = hiredis.Reader(encoding="utf-8", replyError=ResponseError)
            self._transport = transport
            await self._handshake()

    async def _handshake(self) -> None:
        commands: list[list[str]] = []
        if self._password is not None:
            commands.append(["AUTH", *([self._username] if self._username else []), self._password])
        if self._db:
            commands.append(["SELECT", str(self._db)])
        if not commands:
            return
        futures = self._write(b"".join(pack(c) for c in commands), len(commands))
        try:
            for future in futures:
                await future
        except ResponseError as exc:
            self._drop(lambda: RedisConnectionError("handshake failed"))
            raise RedisConnectionError(f"{self._where()} refused the connection: {exc}") from None

    def _received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        pending = self._pending
        while (reply := reader.gets()) is not False:
            if not pending:  # a reply nobody asked for: the stream is out of step, start afresh
                self._drop(lambda: RedisConnectionError(f"unexpected reply from {self._where()}"))
                return
            future, _ = pending.popleft()
            if future.done():  # its caller was cancelled: the reply is dropped, the order kept
                continue
            if isinstance(reply, ResponseError):
                message = str(reply)
                _fail(future, NoScriptError(message) if message.startswith("NOSCRIPT") else reply)
            else:
                future.set_result(reply)

    def _check_timeout(self) -> None:
        self._watchdog = None
        if not self._pending:
            return
        loop = asyncio.get_running_loop()
        oldest = self._pending[0][1]
        if loop.time() - oldest >= self._timeout:
            self._drop(lambda: RedisTimeoutError(f"Timeout reading from {self._where()}"))
        else:
            self._watchdog = loop.call_at(oldest + self._timeout, self._check_timeout)

    def _lost(self, exc: Exception | None) -> None:
        reason = f": {exc}" if exc else ""
        self._drop(lambda: RedisConnectionError(f"Connection to {self._where()} closed{reason}"))

    def _drop(self, error: Callable[[], Exception]) -> None:
        """Close the connection (if open) and fail every reply it owed with a fresh ``error()``."""
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.abort()
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        pending, self._pending = self._pending, deque()
        for future, _ in pending:
            if not future.done():
                _fail(future, error())

    def _where(self) -> str:
        return f"{self._address[0]}:{self._address[1]}"


class _Protocol(asyncio.Protocol):
    def __init__(self, owner: MultiplexedConnection) -> None:
        self._owner = owner
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        if self._owner._transport is self._transport:  # not a connection already dropped
            self._owner._received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._owner._transport is self._transport:
            self._owner._lost(exc)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    future.set_exception(exc)
    future.exception()  # retrieved: a caller that stopped waiting (it failed on an earlier reply) logs nothing


def pack(parts: Sequence[str | int | bytes]) -> bytes:
    """A RESP command: ``*<n>`` then ``$<len>`` + bytes for each part. Built as one string when every part is
    ASCII text (ids, numbers: the usual case), where lengths in characters are lengths in bytes."""
    if not any(type(part) is bytes for part in parts):
        body = "".join([f"${len(text)}\r\n{text}\r\n" for text in map(str, parts)])
        if body.isascii():
            return f"*{len(parts)}\r\n{body}".encode()
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        data = part if isinstance(part, bytes) else str(part).encode()
        out.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(out)
