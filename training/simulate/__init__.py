"""Seeded simulators of event histories in the stream schemas (see ``training/README.md``)."""

from __future__ import annotations

from datetime import UTC, datetime


def default_history_end() -> datetime:
    """The start of the current UTC hour: live demo traffic then continues right after the history."""
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def history_tag(end: datetime) -> str:
    """A short tag of the history's end, part of every generated event id.

    Two histories ending at different hours thus never share event ids, so materializing a newer history is
    not mistaken for a redelivery of an older one by the idempotent feature store.
    """
    return end.astimezone(UTC).strftime("%Y%m%d%H")
