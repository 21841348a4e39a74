"""Errors and messages of the local stack: one-line, user-facing, on stderr."""

from __future__ import annotations

import sys


class StackError(Exception):
    """A failure with a one-line, user-facing message."""


class ToolMissing(StackError):
    """A required program (java, mvn, redis-server) is not installed."""


def log(msg: str) -> None:
    print(f"stack: {msg}", file=sys.stderr, flush=True)
