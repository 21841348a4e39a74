"""Where the local stack keeps its state: ``<project root>/.stack/`` (or ``STACK_STATE_DIR``)."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STACK_DIR = Path(__file__).resolve().parent
POM = STACK_DIR / "pom.xml"


def state_dir() -> Path:
    env = os.environ.get("STACK_STATE_DIR")
    return Path(env).resolve() if env else ROOT / ".stack"


def pid_file(service: str) -> Path:
    return state_dir() / f"{service}.pid"


def addr_file(service: str) -> Path:
    return state_dir() / f"{service}.addr"


def kafka_home(version: str) -> Path:
    return state_dir() / f"kafka-{version}"


def kafka_libs(version: str) -> Path:
    return kafka_home(version) / "libs"


def kafka_dir() -> Path:
    return state_dir() / "kafka"


def redis_dir() -> Path:
    return state_dir() / "redis"


@contextlib.contextmanager
def state_lock() -> Iterator[None]:
    """Serialise up/down between concurrent callers (e.g. parallel pytest workers)."""
    state_dir().mkdir(parents=True, exist_ok=True)
    with open(state_dir() / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
