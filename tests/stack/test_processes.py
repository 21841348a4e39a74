"""stack/processes.py: pid files, liveness, ownership tied to an address, stop by recorded pid. The processes are
stand-ins started here; no Kafka or Redis is involved."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from stack.errors import StackError
from stack.lifecycle import status
from stack.paths import addr_file, pid_file
from stack.processes import our_pid, our_pid_at, record_started, stop_pid
from stack.redis_service import redis_up
from tests.stack.fake_servers import free_port


def test_stale_pid_file_is_removed(state):
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    pid_file("kafka").write_text(f"{p.pid}\n")
    assert our_pid("kafka") is None
    assert not pid_file("kafka").exists()
    # alive but not what we started (this test process): also stale
    pid_file("redis").write_text(f"{os.getpid()}\n")
    assert our_pid("redis") is None
    assert not pid_file("redis").exists()
    pid_file("redis").write_text("garbage\n")
    assert our_pid("redis") is None


def test_stop_pid_terminates_recorded_process(state):
    # a stand-in whose command line carries the marker stack checks before signalling
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "redis-server"], start_new_session=True
    )
    try:
        pid_file("redis").write_text(f"{proc.pid}\n")
        assert our_pid("redis") == proc.pid
        assert stop_pid("redis", timeout=5)
        assert proc.wait(timeout=5) is not None
        assert not pid_file("redis").exists()
        assert not stop_pid("redis")
    finally:
        if proc.poll() is None:
            proc.kill()


def test_ownership_is_tied_to_the_address(state, monkeypatch):
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "redis-server"], start_new_session=True
    )
    try:
        record_started("redis", proc.pid, "127.0.0.1:6379")
        assert our_pid_at("redis", "127.0.0.1:6379") == (proc.pid, None)
        assert our_pid_at("redis", "127.0.0.1:7000") == (None, "127.0.0.1:6379")
        # nothing answers on the requested port and ours serves another one: refuse, don't restart ours
        port = free_port()
        monkeypatch.setenv("REDIS_PORT", str(port))
        with pytest.raises(StackError, match=r"our redis runs at 127\.0\.0\.1:6379"):
            redis_up()
        assert proc.poll() is None
        assert status()["redis"]["pid"] is None
    finally:
        proc.kill()
        proc.wait()
    assert our_pid_at("redis", "127.0.0.1:6379") == (None, None)
    assert not addr_file("redis").exists()
