"""Fixtures of the stack tests: a private state directory, and the real Kafka broker and Redis server of
``python3 stack/stack.py up`` for the checks that need them.

Outside CI a missing service skips those tests; under ``CI=true`` (``1``/``true``/``yes``) it fails them, so a CI
run can never pass without having talked to the real services.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from stack.addresses import DEFAULT_KAFKA, parse_bootstrap
from stack.errors import StackError
from stack.kafka_protocol import kafka_answers
from stack.redis_client import redis_ping

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private, empty state directory (``STACK_STATE_DIR``) instead of the project's ``.stack/``."""
    monkeypatch.setenv("STACK_STATE_DIR", str(tmp_path / "state"))
    (tmp_path / "state").mkdir()
    return tmp_path / "state"


def _missing(what: str) -> None:
    message = f"no {what} (run python3 stack/stack.py up)"
    if IN_CI:
        pytest.fail(f"{message}; under CI=true the real services are required")
    pytest.skip(message)  # outside CI only (see above)


@pytest.fixture
def real_kafka() -> tuple[str, int]:
    """(host, port) of the Kafka answering at KAFKA_BOOTSTRAP_SERVERS (first address)."""
    host, port = parse_bootstrap(os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or DEFAULT_KAFKA)[0]
    if not kafka_answers(host, port):
        _missing(f"Kafka answers at {host}:{port}")
    return host, port


@pytest.fixture
def real_redis() -> tuple[str, int]:
    """(host, port) of the Redis answering PING at REDIS_HOST:REDIS_PORT."""
    host = os.environ.get("REDIS_HOST") or "127.0.0.1"
    port = int(os.environ.get("REDIS_PORT") or 6379)
    answers = False
    with contextlib.suppress(StackError):
        answers = redis_ping(host, port)
    if not answers:
        _missing(f"Redis answers at {host}:{port}")
    return host, port
