"""stack/redis_client.py: RESP encoding and decoding, PING/INFO against a fake server and the real Redis."""

from __future__ import annotations

import socket

import pytest

from stack.errors import StackError
from stack.redis_client import (
    RedisReplyError,
    _Reader,
    parse_redis_info,
    redis_ping,
    redis_version,
    resp_encode,
    resp_read,
)
from tests.stack.fake_servers import FakeServer, free_port


def test_resp_encode():
    assert resp_encode("PING") == b"*1\r\n$4\r\nPING\r\n"
    assert resp_encode("INFO", "server") == b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n"


def test_resp_read_kinds():
    a, b = socket.socketpair()
    with a, b:
        b.sendall(b"+PONG\r\n:42\r\n$5\r\nhel\r\n\r\n$-1\r\n*2\r\n+a\r\n:1\r\n-ERR nope\r\n")
        r = _Reader(a)
        assert resp_read(r) == "PONG"
        assert resp_read(r) == 42
        assert resp_read(r) == b"hel\r\n"
        assert resp_read(r) is None
        assert resp_read(r) == ["a", 1]
        err = resp_read(r)
        assert isinstance(err, RedisReplyError) and "nope" in str(err)


def test_parse_redis_info():
    info = parse_redis_info(b"# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n\r\n# Clients\r\nx:a:b\r\n")
    assert info["redis_version"] == "7.0.15"
    assert info["redis_mode"] == "standalone"
    assert info["x"] == "a:b"


def _fake_redis(conn):
    r = _Reader(conn)
    while True:
        cmd = resp_read(r)
        if cmd == [b"PING"]:
            conn.sendall(b"+PONG\r\n")
        elif cmd and cmd[0] == b"INFO":
            body = b"# Server\r\nredis_version:9.9.9\r\n"
            conn.sendall(b"$%d\r\n%s\r\n" % (len(body), body))
        else:
            conn.sendall(b"-ERR unknown\r\n")


def test_redis_ping_and_version_against_fake_server():
    with FakeServer(_fake_redis) as srv:
        assert redis_ping("127.0.0.1", srv.port)
        assert redis_version("127.0.0.1", srv.port) == "9.9.9"


def test_redis_ping_false_for_non_redis_and_closed_port():
    with FakeServer(lambda conn: conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")) as srv:
        assert not redis_ping("127.0.0.1", srv.port)
    with FakeServer(lambda conn: None) as srv:  # accepts then closes
        assert not redis_ping("127.0.0.1", srv.port)
    assert not redis_ping("127.0.0.1", free_port())


def test_redis_ping_noauth_is_a_clear_error():
    def noauth(conn):
        conn.recv(100)
        conn.sendall(b"-NOAUTH Authentication required.\r\n")

    with FakeServer(noauth) as srv, pytest.raises(StackError, match="password"):
        redis_ping("127.0.0.1", srv.port)


@pytest.mark.integration
def test_real_redis_ping_and_info(real_redis):
    assert redis_ping(*real_redis)
    assert redis_version(*real_redis).count(".") >= 1
