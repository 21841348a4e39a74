"""The worker's event loop choice (``WORKER_EVENT_LOOP``)."""

from __future__ import annotations

import asyncio
import builtins
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from stream_scorer.worker.app import use_event_loop


@pytest.fixture
def restored_policy() -> Iterator[None]:
    policy = asyncio.get_event_loop_policy()
    yield
    asyncio.set_event_loop_policy(policy)


def test_uvloop_is_the_loop_of_new_event_loops_every_time_it_is_chosen(restored_policy: None) -> None:
    for _ in range(2):
        asyncio.set_event_loop_policy(None)
        use_event_loop("uvloop")
        loop = asyncio.new_event_loop()
        try:
            assert type(loop).__module__.startswith("uvloop")
        finally:
            loop.close()


def test_without_uvloop_the_worker_warns_and_keeps_the_standard_loop(
        restored_policy: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    real_import = builtins.__import__

    def no_uvloop(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("uvloop"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_uvloop)
    before = asyncio.get_event_loop_policy()
    with caplog.at_level(logging.WARNING):
        use_event_loop("uvloop")
    assert asyncio.get_event_loop_policy() is before
    assert "uvloop is not installed" in caplog.text


def test_asyncio_leaves_the_standard_loop(restored_policy: None) -> None:
    before = asyncio.get_event_loop_policy()
    use_event_loop("asyncio")
    assert asyncio.get_event_loop_policy() is before
