"""EVALSHA calls of the feature store's Lua scripts on the process's multiplexed connection, packed here.

redis-py packs each argument in Python (~0.3 ms for a batch of 64 reads); these pack a whole command in one
join and write it to a :class:`MultiplexedConnection`. A connection that died with a restarted server fails
at once: with ``retry`` the call is made once more on a fresh connection (safe: reads have no effect, updates are
idempotent per event). A server that lost its scripts (restarted, ``SCRIPT FLUSH``) gets the script loaded again
and the call repeated.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Generator, Sequence
from typing import Any, Generic, TypeVar

from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError

from stream_scorer.core.multiplexed import MultiplexedConnection, pack

T = TypeVar("T")
ScriptCall = tuple[Sequence[str], Sequence[str | int]]
"""(keys, args) of one call of a script."""


class Deferred(Generic[T]):
    """An awaitable that creates its coroutine only when awaited: one that is never awaited (a read a failed
    batch no longer needs) leaves nothing behind, where an unawaited coroutine warns when collected."""

    __slots__ = ("_args", "_call")

    def __init__(self, call: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> None:
        self._call = call
        self._args = args

    def __await__(self) -> Generator[Any, None, T]:
        return self._call(*self._args).__await__()


async def eval_script(conn: MultiplexedConnection, script: AsyncScript, keys: Sequence[str],
                      args: Sequence[str | int], *, retry: bool = True) -> Any:
    return await (await send_script(conn, script, keys, args, retry=retry))


async def send_script(conn: MultiplexedConnection, script: AsyncScript, keys: Sequence[str],
                      args: Sequence[str | int], *, retry: bool = True) -> Awaitable[Any]:
    """Write the EVALSHA; the returned awaitable reads its reply (the caller works meanwhile instead of idling
    while the script runs). ``retry=False``: a lost connection or a lost script fails the call (the script
    loaded again first) instead of repeating it, which could run it after commands written later."""
    packed = pack(["EVALSHA", script.sha, len(keys), *keys, *args])
    try:
        futures = await conn.send(packed, 1)
    except RedisConnectionError:
        if not retry:
            raise
        return await send_script(conn, script, keys, args, retry=False)  # written now, in the caller's order
    return Deferred(_receive, conn, script, packed, futures, keys, args, retry)


async def _receive(conn: MultiplexedConnection, script: AsyncScript, packed: bytes,
                   futures: list[asyncio.Future[Any]], keys: Sequence[str], args: Sequence[str | int],
                   retry: bool) -> Any:
    replies: list[Any] = []
    try:
        await _read_replies(conn, script, [packed], futures, lambda _, reply: replies.append(reply), retry)
    except RedisConnectionError:
        if not retry:
            raise
        return await eval_script(conn, script, keys, args, retry=False)
    return replies[0]


async def eval_pipelined(conn: MultiplexedConnection, script: AsyncScript, calls: Sequence[ScriptCall],
                         on_reply: Callable[[int, Any], None], *, retry: bool = True) -> None:
    """Several calls of one script written at once; ``on_reply(i, reply)`` runs as each reply arrives, while
    Redis runs the next call (a big read split in parts: the caller parses part ``i`` instead of idling until
    the whole read is done). ``on_reply`` may be called again for a part after a retry."""
    await (await send_pipelined(conn, script, calls, on_reply, retry=retry))


async def send_pipelined(conn: MultiplexedConnection, script: AsyncScript, calls: Sequence[ScriptCall],
                         on_reply: Callable[[int, Any], None], *, retry: bool = True) -> Awaitable[None]:
    """``eval_pipelined`` in two steps: written when this returns, replies read when the awaitable is awaited
    (commands written later on the connection run after these); ``retry`` as in ``send_script``."""
    packs = [pack(["EVALSHA", script.sha, len(keys), *keys, *args]) for keys, args in calls]
    try:
        futures = await conn.send(b"".join(packs), len(packs))
    except RedisConnectionError:
        if not retry:
            raise
        return await send_pipelined(conn, script, calls, on_reply, retry=False)
    return Deferred(_receive_all, conn, script, calls, packs, futures, on_reply, retry)


async def _receive_all(conn: MultiplexedConnection, script: AsyncScript, calls: Sequence[ScriptCall],
                       packs: Sequence[bytes], futures: list[asyncio.Future[Any]],
                       on_reply: Callable[[int, Any], None], retry: bool) -> None:
    try:
        await _read_replies(conn, script, packs, futures, on_reply, retry)
    except RedisConnectionError:
        if not retry:
            raise
        await eval_pipelined(conn, script, calls, on_reply, retry=False)


async def _read_replies(conn: MultiplexedConnection, script: AsyncScript, packs: Sequence[bytes],
                        futures: list[asyncio.Future[Any]], on_reply: Callable[[int, Any], None],
                        repeat: bool = True) -> None:
    """The replies of ``packs`` (already written, in order). A server that lost its scripts answers NOSCRIPT from
    some call on: the script is loaded once and, with ``repeat``, those calls written again (a second NOSCRIPT
    is raised); without, the NOSCRIPT is raised once the script is loaded. The replies still owed for the failed
    calls arrive on their own futures, which nobody awaits."""
    i, reloaded = 0, False
    while i < len(packs):
        try:
            reply = await futures[i]
        except NoScriptError:  # every call from this one on failed the same way
            if reloaded:  # loaded, and still unknown: not a lost script
                raise
            reloaded = True
            source = script.script if isinstance(script.script, str | bytes) else bytes(script.script)
            [loaded] = await conn.send(pack(["SCRIPT", "LOAD", source]), 1)
            await loaded
            if not repeat:
                raise
            futures = [*futures[:i], *await conn.send(b"".join(packs[i:]), len(packs) - i)]
            continue
        on_reply(i, reply)
        i += 1
