"""A throwaway ``redis-server`` (Debian's binary) on a free loopback port, for tests that stop and restart Redis.

The shared Redis of the local stack must never be stopped (other tests and processes use it), and ``INFO
commandstats`` on it counts every client's commands; a private server is both safe to kill and exact to count::

    with throwaway_redis(tmp_path) as server:
        ...            # server.host, server.port answer PING
        server.stop()  # the port refuses connections
        server.start() # the same port, an empty server again (no persistence)

``require_redis_server()`` finds the binary; without it the calling test is skipped, or fails under ``CI=true``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import free_port

HOST = "127.0.0.1"
START_TIMEOUT_SEC = 10.0


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_redis_server() -> str:
    """The ``redis-server`` binary; skips the test when it is missing (fails under ``CI=true``)."""
    binary = shutil.which("redis-server")
    if binary is None:
        message = "redis-server is not installed (Debian: apt-get install redis-server)"
        if _in_ci():
            pytest.fail(f"{message}; required under CI=true")
        pytest.skip(message)  # outside CI only (see above)
    return binary


def ping(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when a Redis server answers ``PING`` at ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` child process; ``stop()`` and ``start()`` keep the port."""

    def __init__(self, binary: str, workdir: Path, *, port: int | None = None) -> None:
        self.binary = binary
        self.workdir = workdir
        self.host = HOST
        self.port = port or free_port()
        self.log_path = workdir / "redis.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._frozen = False

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.running and self._proc is not None else None

    def start(self, timeout: float = START_TIMEOUT_SEC) -> None:
        """Start the server (again) on its port and wait until it answers PING."""
        if self.running:
            raise RuntimeError(f"redis-server on port {self.port} is already running")
        self.workdir.mkdir(parents=True, exist_ok=True)
        cmd = [
            self.binary, "--bind", self.host, "--port", str(self.port), "--save", "", "--appendonly", "no",
            "--daemonize", "no", "--protected-mode", "yes", "--dir", str(self.workdir), "--logfile", "",
        ]
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          cwd=self.workdir)
        deadline = time.monotonic() + timeout
        while not ping(self.host, self.port):
            if self._proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self._proc.returncode}: {self._log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not answer PING within {timeout}s: {self._log_tail()}")
            time.sleep(0.02)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (SIGTERM, SIGKILL after ``timeout``); returns once the port refuses connections."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        if self._frozen:
            self._continue(proc.pid)
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def freeze(self) -> None:
        """SIGSTOP: the port still accepts TCP connections but nothing answers (a hung server)."""
        if self._proc is None or not self.running:
            raise RuntimeError("redis-server is not running")
        os.kill(self._proc.pid, signal.SIGSTOP)
        self._frozen = True

    def thaw(self) -> None:
        """SIGCONT after ``freeze()``."""
        if self._proc is not None and self._frozen:
            self._continue(self._proc.pid)

    def _continue(self, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
        self._frozen = False

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def throwaway_redis(workdir: Path) -> Iterator[RedisServer]:
    """A started private Redis (skipped, or failed under ``CI=true``, without the binary); stopped at exit."""
    with RedisServer(require_redis_server(), workdir) as server:
        yield server
