"""Pipelined script calls against a fake server (the paths a real Redis rarely takes: scripts lost between parts,
lost again after a load, a dead pooled connection). The real-Redis paths are in test_feature_store.py."""

from __future__ import annotations

from collections import deque
from types import SimpleNamespace
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError

from stream_scorer.core.script_calls import ScriptCall, eval_pipelined

SHA = "f" * 40


def _commands(packed: bytes) -> list[list[str]]:
    """The RESP commands in a write (arrays of bulk strings, as ``_pack`` writes them)."""
    out: list[list[str]] = []
    rest = packed
    while rest:
        header, rest = rest.split(b"\r\n", 1)
        parts: list[str] = []
        for _ in range(int(header[1:])):
            size, rest = rest.split(b"\r\n", 1)
            n = int(size[1:])
            parts.append(rest[:n].decode())
            rest = rest[n + 2:]
        out.append(parts)
    return out


class FakeServer:
    """Runs EVALSHA calls as ``part <first key>``; ``forget_after`` calls it drops its scripts (a flush)."""

    def __init__(self, *, forget_after: int | None = None, never_keeps: bool = False, dies_on: int | None = None):
        self.known = True
        self.forget_after = forget_after
        self.never_keeps = never_keeps
        self.dies_on = dies_on
        self.calls = 0
        self.loads = 0


class FakeConnection:
    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.replies: deque[Any] = deque()
        self.disconnected = False

    async def send_packed_command(self, packed: bytes, check_health: bool = True) -> None:
        s = self.server
        for command in _commands(packed):
            if command[:2] == ["SCRIPT", "LOAD"]:
                s.loads += 1
                assert s.loads <= 3, "the client loads the script in a loop"
                s.known = not s.never_keeps
                self.replies.append(SHA)
                continue
            assert command[0] == "EVALSHA" and command[1] == SHA
            s.calls += 1
            if s.dies_on is not None and s.calls == s.dies_on:
                self.replies.append(RedisConnectionError("Connection closed by server."))
            elif not s.known:
                self.replies.append(NoScriptError("NOSCRIPT No matching script."))
            else:
                self.replies.append(f"part {command[3]}")
            if s.forget_after is not None and s.calls == s.forget_after:
                s.known = False

    async def read_response(self) -> Any:
        reply = self.replies.popleft()
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def disconnect(self) -> None:
        self.disconnected = True
        self.replies.clear()


class FakePool:
    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.out: list[FakeConnection] = []
        self.released: list[FakeConnection] = []

    async def get_connection(self) -> FakeConnection:
        conn = FakeConnection(self.server)
        self.out.append(conn)
        return conn

    async def release(self, conn: FakeConnection) -> None:
        self.released.append(conn)


CALLS: list[ScriptCall] = [([f"k{i}"], [1]) for i in range(3)]


async def _run(server: FakeServer, pool: FakePool | None = None) -> tuple[dict[int, Any], list[int], FakePool]:
    pool = pool or FakePool(server)
    redis = SimpleNamespace(connection_pool=pool)
    script = SimpleNamespace(sha=SHA, script="return 1")
    replies: dict[int, Any] = {}
    order: list[int] = []

    def on_reply(i: int, reply: Any) -> None:
        replies[i] = reply
        order.append(i)

    await eval_pipelined(redis, script, CALLS, on_reply)  # type: ignore[arg-type]
    return replies, order, pool


async def test_parts_reach_the_caller_in_order_on_one_connection() -> None:
    replies, order, pool = await _run(FakeServer())
    assert replies == {0: "part k0", 1: "part k1", 2: "part k2"} and order == [0, 1, 2]
    assert len(pool.out) == 1 and pool.released == pool.out and not pool.out[0].disconnected


async def test_scripts_lost_between_parts_are_loaded_and_the_rest_sent_again() -> None:
    server = FakeServer(forget_after=1)  # part 0 ran; parts 1 and 2 find no script
    replies, order, pool = await _run(server)
    assert replies == {0: "part k0", 1: "part k1", 2: "part k2"} and order == [0, 1, 2]
    assert server.loads == 1 and server.calls == 5  # 3, then parts 1 and 2 again
    assert pool.released == pool.out and not pool.out[0].disconnected


async def test_a_script_unknown_even_after_a_load_fails_the_call_and_closes_the_connection() -> None:
    server = FakeServer(never_keeps=True)
    server.known = False
    pool = FakePool(server)
    with pytest.raises(NoScriptError):
        await _run(server, pool)
    assert server.loads == 1  # loaded once, not in a loop
    assert len(pool.out) == 1 and pool.out[0].disconnected and pool.released == pool.out


async def test_a_dead_connection_is_closed_and_the_read_made_once_more_on_a_fresh_one() -> None:
    server = FakeServer(dies_on=2)  # part 1's reply is a dropped connection
    replies, order, pool = await _run(server)
    assert replies == {0: "part k0", 1: "part k1", 2: "part k2"}
    assert order == [0, 0, 1, 2]  # part 0 handled again on the retry: the caller's slots are overwritten
    assert len(pool.out) == 2 and pool.out[0].disconnected and pool.released == pool.out
