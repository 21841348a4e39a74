"""Redis service: reuse the one at ``REDIS_HOST:REDIS_PORT`` when it answers, else start Debian's
``redis-server`` on loopback (installing it with apt-get as root when missing), without persistence."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from stack.addresses import format_hostport, is_loopback, port_open
from stack.apt import apt_install, find_binary
from stack.errors import StackError, log
from stack.paths import redis_dir
from stack.processes import our_pid, our_pid_at, pid_alive, record_started, spawn, stop_pid, tail, wait_until
from stack.redis_client import redis_ping, redis_version

REDIS_START_TIMEOUT = 15.0


def redis_address() -> tuple[str, int]:
    host = os.environ.get("REDIS_HOST") or "127.0.0.1"
    port_s = os.environ.get("REDIS_PORT") or "6379"
    if not port_s.isdigit():
        raise StackError(f"REDIS_PORT={port_s!r} is not a port number")
    return host, int(port_s)


def install_redis() -> str:
    return apt_install("redis-server", "redis-server")


def find_redis_server() -> str | None:
    return find_binary("redis-server")


def redis_up() -> dict[str, Any]:
    host, port = redis_address()
    addr = format_hostport(host, port)
    pid, elsewhere = our_pid_at("redis", addr)
    if redis_ping(host, port):
        info = {"service": "redis", "host": host, "port": port, "address": addr, "pid": pid, "started": False}
        log(f"redis already up at {addr} ({f'ours, pid {pid}' if pid else 'external'}), reusing it")
        return info
    if pid is not None:
        # ours but not answering yet: give it a moment, else restart it
        if wait_until(lambda: redis_ping(host, port), 5.0, pid):
            return {"service": "redis", "host": host, "port": port, "address": addr, "pid": pid, "started": False}
        log(f"our redis (pid {pid}) does not answer PING, restarting it")
        stop_pid("redis")
    if port_open(host, port):
        raise StackError(f"port {port} on {host} is taken by something that does not answer Redis PING")
    if elsewhere:
        raise StackError(
            f"our redis runs at {elsewhere} (pid {our_pid('redis')}); run `python3 stack/stack.py down` "
            f"before starting one at {addr}"
        )
    if not is_loopback(host):
        raise StackError(f"no Redis answers at {addr} and stack can only start one on loopback")
    binary = find_redis_server() or install_redis()
    d = redis_dir()
    d.mkdir(parents=True, exist_ok=True)
    cmd = [
        binary,
        "--bind", host,
        "--port", str(port),
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
        "--protected-mode", "yes",
        "--dir", str(d),
        "--logfile", "",
    ]  # fmt: skip
    t0 = time.monotonic()
    proc = spawn(cmd, d / "redis.log", d)
    record_started("redis", proc.pid, addr)
    if not wait_until(lambda: redis_ping(host, port), REDIS_START_TIMEOUT, proc.pid):
        why = "exited" if not pid_alive(proc.pid) else f"did not answer PING within {REDIS_START_TIMEOUT:.0f}s"
        print(tail(d / "redis.log"), file=sys.stderr)
        stop_pid("redis", timeout=3)
        raise StackError(f"redis-server on {addr} {why} (log: {d / 'redis.log'})")
    log(f"redis {redis_version(host, port)} started at {addr} (pid {proc.pid}, {time.monotonic() - t0:.1f}s)")
    return {"service": "redis", "host": host, "port": port, "address": addr, "pid": proc.pid, "started": True}
