"""EVALSHA calls of the feature store's Lua scripts on redis-py's pooled connections, packed here.

redis-py packs each argument in Python (~0.3 ms for a batch of 64 reads); these pack a whole command in one
join. Connection handling (auth, db, reconnect, timeouts, hiredis parsing) stays redis-py's. A pooled connection
that died with a restarted server fails at once: with ``retry`` the call is made once more on a fresh connection
(safe: reads have no effect, updates are idempotent per event). A server that lost its scripts (restarted,
``SCRIPT FLUSH``) gets the script loaded again and the call repeated.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError

ScriptCall = tuple[Sequence[str], Sequence[str | int]]
"""(keys, args) of one call of a script."""


async def eval_script(redis: aioredis.Redis, script: AsyncScript, keys: Sequence[str], args: Sequence[str | int],
                      *, retry: bool = True) -> Any:
    return await (await send_script(redis, script, keys, args, retry=retry))


async def send_script(redis: aioredis.Redis, script: AsyncScript, keys: Sequence[str], args: Sequence[str | int],
                      *, retry: bool = True) -> Awaitable[Any]:
    """Write the EVALSHA; the returned awaitable reads its reply and gives the connection back (the caller works
    meanwhile instead of idling while the script runs)."""
    packed = _pack(["EVALSHA", script.sha, len(keys), *keys, *args])
    pool = redis.connection_pool
    conn = await pool.get_connection()
    try:
        await conn.send_packed_command(packed, check_health=False)
    except BaseException as exc:
        try:
            await conn.disconnect()  # a half-written command must not be left for the next user
        finally:
            await pool.release(conn)
        if retry and isinstance(exc, RedisConnectionError):
            return eval_script(redis, script, keys, args, retry=False)
        raise
    return _receive(redis, conn, script, packed, keys, args, retry)


async def _receive(redis: aioredis.Redis, conn: AbstractConnection, script: AsyncScript, packed: bytes,
                   keys: Sequence[str], args: Sequence[str | int], retry: bool) -> Any:
    replies: list[Any] = []
    try:
        async with _borrowed(redis, conn):
            await _read_replies(conn, script, [packed], lambda _, reply: replies.append(reply))
    except RedisConnectionError:
        if not retry:
            raise
        return await eval_script(redis, script, keys, args, retry=False)
    return replies[0]


async def eval_pipelined(redis: aioredis.Redis, script: AsyncScript, calls: Sequence[ScriptCall],
                         on_reply: Callable[[int, Any], None], *, retry: bool = True) -> None:
    """Several calls of one script written at once on one connection; ``on_reply(i, reply)`` runs as each reply
    arrives, while Redis runs the next call (a big read split in parts: the caller parses part ``i`` instead of
    idling until the whole read is done). ``on_reply`` may be called again for a part after a retry."""
    packs = [_pack(["EVALSHA", script.sha, len(keys), *keys, *args]) for keys, args in calls]
    conn = await redis.connection_pool.get_connection()
    try:
        async with _borrowed(redis, conn):
            await conn.send_packed_command(b"".join(packs), check_health=False)
            await _read_replies(conn, script, packs, on_reply)
    except RedisConnectionError:
        if not retry:
            raise
        await eval_pipelined(redis, script, calls, on_reply, retry=False)


async def _read_replies(conn: AbstractConnection, script: AsyncScript, packs: Sequence[bytes],
                        on_reply: Callable[[int, Any], None]) -> None:
    """The replies of ``packs`` (already written, in order). A server that lost its scripts answers NOSCRIPT from
    some call on: the script is loaded once and those calls written again (a second NOSCRIPT is raised)."""
    i, reloaded = 0, False
    while i < len(packs):
        try:
            reply = await conn.read_response()
        except NoScriptError:  # every call from this one on failed the same way
            if reloaded:  # loaded, and still unknown: not a lost script (the caller closes the connection)
                raise
            reloaded = True
            for _ in range(i + 1, len(packs)):
                with contextlib.suppress(NoScriptError):
                    await conn.read_response()
            await _load(conn, script)
            await conn.send_packed_command(b"".join(packs[i:]), check_health=False)
            continue
        on_reply(i, reply)
        i += 1


@contextlib.asynccontextmanager
async def _borrowed(redis: aioredis.Redis, conn: AbstractConnection) -> Any:
    """Gives the connection back to the pool; after any failure it is closed first, so that a half-written
    command or a half-read reply is never left for its next user."""
    try:
        yield
    except BaseException:
        await conn.disconnect()
        raise
    finally:
        await redis.connection_pool.release(conn)


async def _load(conn: AbstractConnection, script: AsyncScript) -> None:
    source = script.script if isinstance(script.script, str | bytes) else bytes(script.script)
    await conn.send_packed_command(_pack(["SCRIPT", "LOAD", source]), check_health=False)
    await conn.read_response()


def _pack(parts: Sequence[str | int | bytes]) -> bytes:
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
