"""A minimal Redis client (RESP2 over one socket): PING and INFO, enough to tell a real Redis apart."""

from __future__ import annotations

import socket
from typing import Any

from stack.addresses import format_hostport
from stack.errors import StackError


class RedisReplyError(Exception):
    """An error reply (``-ERR ...``), returned rather than raised by ``resp_read``."""


def resp_encode(*args: str | bytes) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a.encode() if isinstance(a, str) else a
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class _Reader:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = b""

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("connection closed by peer")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(max(4096, n - len(self.buf)))
            if not chunk:
                raise ConnectionError("connection closed by peer")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data


def resp_read(reader: _Reader) -> Any:
    """Read one RESP2 value. Errors come back as RedisReplyError instances (not raised)."""
    line = reader.line()
    if not line:
        raise ValueError("empty RESP line")
    kind, rest = line[:1], line[1:]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        return RedisReplyError(rest.decode(errors="replace"))
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = reader.exact(n + 2)
        return data[:-2]
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [resp_read(reader) for _ in range(n)]
    raise ValueError(f"not a RESP reply: {line[:40]!r}")


def redis_command(host: str, port: int, *args: str, timeout: float = 2.0) -> Any:
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(resp_encode(*args))
        return resp_read(_Reader(sock))


def redis_ping(host: str = "127.0.0.1", port: int = 6379, timeout: float = 2.0) -> bool:
    """True when a real Redis answers PING with PONG on host:port."""
    try:
        reply = redis_command(host, port, "PING", timeout=timeout)
    except (OSError, ValueError):
        return False
    if isinstance(reply, RedisReplyError):
        if "NOAUTH" in str(reply) or "WRONGPASS" in str(reply):
            raise StackError(
                f"Redis at {format_hostport(host, port)} requires a password; stack only handles open Redis"
            )
        return False
    return reply == "PONG"


def parse_redis_info(text: str | bytes) -> dict[str, str]:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line or line.startswith("#") or ":" not in line:
            continue
        k, v = line.split(":", 1)
        out[k.strip()] = v.strip()
    return out


def redis_info(host: str, port: int, section: str = "server") -> dict[str, str]:
    reply = redis_command(host, port, "INFO", section)
    if isinstance(reply, RedisReplyError) or not isinstance(reply, bytes):
        raise StackError(f"Redis at {format_hostport(host, port)} refused INFO: {reply}")
    return parse_redis_info(reply)


def redis_version(host: str, port: int) -> str:
    try:
        return redis_info(host, port).get("redis_version", "?")
    except (OSError, ValueError, StackError):
        return "?"
