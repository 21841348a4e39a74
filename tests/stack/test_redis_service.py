"""stack/redis_service.py: the refusals that come before starting anything (nothing is installed or started)."""

from __future__ import annotations

import os

import pytest

from stack.errors import StackError
from stack.redis_service import install_redis, redis_up
from tests.stack.fake_servers import FakeServer


def test_install_redis_needs_root(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(StackError, match="not root"):
        install_redis()


def test_redis_up_refuses_port_taken_by_non_redis(state, monkeypatch):
    with FakeServer(lambda conn: None) as srv:
        monkeypatch.setenv("REDIS_HOST", "127.0.0.1")
        monkeypatch.setenv("REDIS_PORT", str(srv.port))
        with pytest.raises(StackError, match=f"port {srv.port}"):
            redis_up()
