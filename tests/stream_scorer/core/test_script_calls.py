"""Script calls on the multiplexed connection, against a fake RESP server on a real socket (the paths a real Redis
rarely takes: scripts lost between parts, lost again after a load, a connection dropped mid-call, a server that
stops answering, AUTH and SELECT). The real-Redis paths are in test_feature_store.py."""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from stream_scorer.core.multiplexed import MultiplexedConnection, pack
from stream_scorer.core.redis_client import FeatureRedis
from stream_scorer.core.script_calls import ScriptCall, eval_pipelined, eval_script, send_script

SHA = "f" * 40
SCRIPT = SimpleNamespace(sha=SHA, script="return 1")


class FakeServer:
    """Answers EVALSHA with ``part <first key>``; ``forget_after`` calls it drops its scripts (a flush);
    ``drop_on``: the connection is closed instead of answering that call; ``mute``: nothing is answered."""

    def __init__(self, *, forget_after: int | None = None, never_keeps: bool = False, drop_on: int | None = None,
                 password: str | None = None) -> None:
        self.reply_delay = 0.0  # seconds before each EVALSHA reply (a slow script)
        self.handshake_delay: float | None = 0.0  # before each AUTH / SELECT reply (None: never answered)
        self.bad_select = False
        self.known = True
        self.forget_after = forget_after
        self.never_keeps = never_keeps
        self.drop_on = drop_on
        self.password = password
        self.mute = False
        self.calls = 0
        self.loads = 0
        self.connections = 0
        self.commands: list[list[str]] = []
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for writer in self._writers:  # the server's end of each connection (3.11's close() leaves them open)
            writer.close()
        await self._server.wait_closed()
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        authed = self.password is None
        try:
            while True:
                command = await _read_command(reader)
                self.commands.append(command)
                if command[0] in ("AUTH", "SELECT") and self.handshake_delay is None:
                    continue
                if command[0] in ("AUTH", "SELECT"):
                    await asyncio.sleep(self.handshake_delay)
                if command[0] == "AUTH":
                    authed = command[-1] == self.password
                    writer.write(b"+OK\r\n" if authed else b"-WRONGPASS invalid password\r\n")
                elif not authed:
                    writer.write(b"-NOAUTH Authentication required.\r\n")
                elif command[0] == "SELECT":
                    writer.write(b"-ERR DB index is out of range\r\n" if self.bad_select else b"+OK\r\n")
                elif command[:2] == ["SCRIPT", "LOAD"]:
                    self.loads += 1
                    assert self.loads <= 3, "the client loads the script in a loop"
                    self.known = not self.never_keeps
                    writer.write(b"$40\r\n" + SHA.encode() + b"\r\n")
                else:
                    assert command[0] == "EVALSHA" and command[1] == SHA
                    self.calls += 1
                    if self.drop_on == self.calls:
                        self.drop_on = None
                        writer.close()
                        return
                    if self.mute:
                        continue
                    await asyncio.sleep(self.reply_delay)
                    if not self.known:
                        writer.write(b"-NOSCRIPT No matching script.\r\n")
                    else:
                        reply = f"part {command[3]}".encode()
                        writer.write(b"$%d\r\n%b\r\n" % (len(reply), reply))
                    if self.forget_after is not None and self.calls == self.forget_after:
                        self.known = False
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


async def _read_command(reader: asyncio.StreamReader) -> list[str]:
    header = await reader.readline()
    parts = []
    for _ in range(int(header[1:])):
        size = int((await reader.readline())[1:])
        parts.append((await reader.readexactly(size + 2))[:-2].decode())
    return parts


@pytest.fixture
async def servers() -> AsyncIterator[list[FakeServer]]:
    """Servers to stop (with their ends of the connections) after the test."""
    started: list[FakeServer] = []
    yield started
    for server in started:
        await server.stop()


@pytest.fixture
def make_server(servers: list[FakeServer]) -> Callable[..., FakeServer]:
    """A ``FakeServer(**kwargs)`` stopped after the test."""
    def make(**kwargs: Any) -> FakeServer:
        server = FakeServer(**kwargs)
        servers.append(server)
        return server
    return make


@pytest.fixture
def server(make_server: Callable[..., FakeServer]) -> FakeServer:
    return make_server()


async def _call(conn: MultiplexedConnection, key: str, *, retry: bool = True) -> Any:
    """One EVALSHA of the test script with ``key`` as its first key."""
    return await eval_script(conn, SCRIPT, [key], [1], retry=retry)  # type: ignore[arg-type]


async def _connect(server: FakeServer, **kwargs: Any) -> MultiplexedConnection:
    port = await server.start()
    return MultiplexedConnection("127.0.0.1", port, **kwargs)


CALLS: list[ScriptCall] = [([f"k{i}"], [1]) for i in range(3)]


async def _pipelined(conn: MultiplexedConnection) -> tuple[dict[int, Any], list[int]]:
    replies: dict[int, Any] = {}
    order: list[int] = []

    def on_reply(i: int, reply: Any) -> None:
        replies[i] = reply
        order.append(i)

    await eval_pipelined(conn, SCRIPT, CALLS, on_reply)  # type: ignore[arg-type]
    return replies, order


async def test_parts_reach_the_caller_in_order_on_one_connection(server: FakeServer) -> None:
    conn = await _connect(server)
    replies, order = await _pipelined(conn)
    assert replies == {0: "part k0", 1: "part k1", 2: "part k2"} and order == [0, 1, 2]
    assert server.connections == 1
    conn.close()


async def test_concurrent_callers_share_the_connection_and_each_gets_its_own_replies(server: FakeServer) -> None:
    conn = await _connect(server)
    keys = [f"key{i}" for i in range(200)]
    replies = await asyncio.gather(*(_call(conn, k) for k in keys))
    assert replies == [f"part {k}" for k in keys]
    assert server.connections == 1
    conn.close()


async def test_scripts_lost_between_parts_are_loaded_and_the_rest_sent_again(
        make_server: Callable[..., FakeServer]) -> None:
    server = make_server(forget_after=1)  # part 0 ran; parts 1 and 2 find no script
    conn = await _connect(server)
    replies, order = await _pipelined(conn)
    assert replies == {0: "part k0", 1: "part k1", 2: "part k2"} and order == [0, 1, 2]
    assert server.loads == 1 and server.calls == 5  # 3, then parts 1 and 2 again
    assert await _call(conn, "next") == "part next"
    conn.close()


async def test_a_script_unknown_even_after_a_load_fails_the_call_without_looping(
        make_server: Callable[..., FakeServer]) -> None:
    server = make_server(never_keeps=True)
    server.known = False
    conn = await _connect(server)
    with pytest.raises(NoScriptError):
        await _pipelined(conn)
    assert server.loads == 1  # loaded once, not in a loop
    server.known, server.never_keeps = True, False
    assert await _call(conn, "next") == "part next"
    assert server.connections == 1  # the replies owed for the failed parts were read, in order
    conn.close()


async def test_a_dropped_connection_fails_its_calls_and_the_read_is_made_once_more_on_a_fresh_one(
        make_server: Callable[..., FakeServer]) -> None:
    server = make_server(drop_on=2)  # part 1 is never answered: the server closes the connection
    conn = await _connect(server)
    replies, order = await _pipelined(conn)
    assert replies == {0: "part k0", 1: "part k1", 2: "part k2"}
    assert order == [0, 0, 1, 2]  # part 0 handled again on the retry: the caller's slots are overwritten
    assert server.connections == 2
    conn.close()


async def test_a_server_that_stops_answering_times_out_and_the_next_call_connects_again(
        server: FakeServer) -> None:
    conn = await _connect(server, timeout=0.2)
    assert await _call(conn, "a") == "part a"
    server.mute = True
    with pytest.raises(RedisTimeoutError):
        await _call(conn, "b", retry=False)
    assert not conn.connected
    server.mute = False
    assert await _call(conn, "c") == "part c"
    assert server.connections == 2
    conn.close()


async def test_credentials_and_database_are_sent_first_and_a_wrong_password_is_a_connection_error(
        make_server: Callable[..., FakeServer]) -> None:
    server = make_server(password="s3cret")
    port = await server.start()
    conn = MultiplexedConnection("127.0.0.1", port, db=4, username="scorer", password="s3cret")
    assert await _call(conn, "a") == "part a"
    assert server.commands[:2] == [["AUTH", "scorer", "s3cret"], ["SELECT", "4"]]
    conn.close()
    wrong = MultiplexedConnection("127.0.0.1", port, password="nope")
    with pytest.raises(RedisConnectionError, match="WRONGPASS"):
        await _call(wrong, "a")
    assert not wrong.connected


async def test_no_server_is_a_connection_error() -> None:
    server = FakeServer()
    port = await server.start()
    await server.stop()
    conn = MultiplexedConnection("127.0.0.1", port, timeout=1.0)
    with pytest.raises(RedisConnectionError):
        await _call(conn, "a")


async def test_a_cancelled_caller_does_not_shift_the_replies_of_the_others(server: FakeServer) -> None:
    conn = await _connect(server)
    server.reply_delay = 0.05
    waiting = asyncio.ensure_future(_call(conn, "cancelled"))
    await asyncio.sleep(0.01)
    waiting.cancel()
    replies = await asyncio.gather(*(_call(conn, k) for k in ("a", "b")))
    assert replies == ["part a", "part b"]
    assert server.connections == 1
    conn.close()


async def test_nothing_is_written_before_the_handshake_and_callers_share_one_connect(
        make_server: Callable[..., FakeServer]) -> None:
    server = make_server(password="pw")
    server.handshake_delay = 0.05  # callers arrive while AUTH and SELECT are in flight
    conn = await _connect(server, db=2, password="pw")
    keys = [f"k{i}" for i in range(5)]
    replies = await asyncio.gather(*(_call(conn, k) for k in keys))
    assert replies == [f"part {k}" for k in keys]
    assert server.connections == 1
    assert [c[0] for c in server.commands[:2]] == ["AUTH", "SELECT"] and server.commands[0] == ["AUTH", "pw"]
    conn.close()


async def test_a_refused_select_fails_every_waiting_caller_before_any_command_runs(server: FakeServer) -> None:
    server.bad_select = True
    conn = await _connect(server, db=99)
    outcomes = await asyncio.gather(*(_call(conn, f"k{i}", retry=False)
                                      for i in range(3)), return_exceptions=True)
    assert all(isinstance(o, RedisConnectionError) and "out of range" in str(o) for o in outcomes)
    assert server.calls == 0 and not conn.connected  # no script ran on another database


async def test_a_server_that_never_answers_the_handshake_costs_one_attempt_for_all_waiters(
        make_server: Callable[..., FakeServer]) -> None:
    server = make_server(password="pw")
    server.handshake_delay = None
    conn = await _connect(server, password="pw", timeout=0.2)
    outcomes = await asyncio.gather(*(_call(conn, f"k{i}", retry=False)
                                      for i in range(5)), return_exceptions=True)
    assert all(isinstance(o, RedisConnectionError) for o in outcomes)
    assert server.connections == 1  # one shared attempt, not one per waiting caller


async def test_a_slow_but_answering_server_is_not_timed_out(server: FakeServer) -> None:
    conn = await _connect(server, timeout=0.3)
    server.reply_delay = 0.15  # each part in time, all three together longer than the timeout
    replies, _ = await _pipelined(conn)
    assert replies == {0: "part k0", 1: "part k1", 2: "part k2"}
    assert server.connections == 1
    conn.close()


async def test_an_authentication_error_reply_is_a_connection_error(make_server: Callable[..., FakeServer]) -> None:
    server = make_server(password="pw")  # the client sends no password: its command gets NOAUTH
    conn = await _connect(server)
    with pytest.raises(RedisConnectionError, match="NOAUTH"):
        await _call(conn, "a")
    assert server.connections == 2 and not conn.connected  # retried once on a fresh connection, then dropped


async def test_the_client_opens_its_connection_with_its_own_settings_and_closes_it_with_itself(
        make_server: Callable[..., FakeServer]) -> None:
    server = make_server(password="pw")
    port = await server.start()
    redis = FeatureRedis(host="127.0.0.1", port=port, db=3, password="pw", socket_timeout=0.7)
    conn = redis.multiplexed
    assert await _call(conn, "a") == "part a"
    assert server.commands[:2] == [["AUTH", "pw"], ["SELECT", "3"]]
    assert conn._timeout == 0.7
    await redis.aclose()
    assert not conn.connected


def test_commands_are_packed_as_resp_with_text_as_utf8() -> None:
    assert pack(["EVALSHA", "ab", 2, "k|é", b"\x00raw"]) == (
        b"*5\r\n$7\r\nEVALSHA\r\n$2\r\nab\r\n$1\r\n2\r\n$4\r\nk|\xc3\xa9\r\n$4\r\n\x00raw\r\n")


async def test_without_retry_a_lost_script_is_loaded_and_the_call_fails_instead_of_repeating(
        make_server: Callable[..., FakeServer]) -> None:
    """A repeat would run after whatever the caller wrote since (the stream's next part's read)."""
    server = make_server(forget_after=0)
    server.known = False
    conn = await _connect(server)
    with pytest.raises(NoScriptError):
        await _call(conn, "k", retry=False)
    assert server.loads == 1 and server.calls == 1  # loaded for the batch's retry, not sent again
    assert await _call(conn, "k", retry=False) == "part k"
    conn.close()


async def test_without_retry_a_lost_connection_fails_the_call_once_written(
        make_server: Callable[..., FakeServer]) -> None:
    server = make_server(drop_on=1)
    conn = await _connect(server)
    pending = await send_script(conn, SCRIPT, ["k"], [1], retry=False)  # type: ignore[arg-type]
    with pytest.raises(RedisConnectionError):
        await pending
    assert server.calls == 1
    assert await _call(conn, "again", retry=False) == "part again"  # the next call connects again
    conn.close()


async def test_a_call_never_awaited_leaves_no_coroutine_behind(server: FakeServer) -> None:
    conn = await _connect(server)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pending = await send_script(conn, SCRIPT, ["k"], [1])  # type: ignore[arg-type]
        del pending
        gc.collect()
    assert not [w for w in caught if "never awaited" in str(w.message)]
    conn.close()
