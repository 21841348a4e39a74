"""Events with their identity settled: the id and time every path (HTTP, stream) scores them under."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Generic, NamedTuple, TypeVar

from schemas.events import SessionEvent, TransactionEvent

E = TypeVar("E", TransactionEvent, SessionEvent)


class Identified(NamedTuple, Generic[E]):
    """An event with its id and time settled (from the event, else from the adapter's fallback)."""

    event: E
    event_id: str
    ts: float


def new_event_id() -> str:
    """An id for an HTTP request that brought none (random, 128 bits, from the OS's generator). Drawn
    ``_ID_DRAW`` at a time: one ``getrandom`` call instead of one per id (``/score/batch`` needs one per row)."""
    while True:
        try:
            return _unused_ids.pop()
        except IndexError:  # none left (another thread may have taken the last one since the check)
            raw = os.urandom(16 * _ID_DRAW).hex()
            _unused_ids.extend(raw[i:i + 32] for i in range(0, len(raw), 32))


_ID_DRAW = 64
_unused_ids: list[str] = []
os.register_at_fork(after_in_child=_unused_ids.clear)  # a forked process never hands out its parent's ids


def identify_transaction(event: TransactionEvent, fallback_id: str | Callable[[], str],
                         fallback_ts: float) -> Identified[TransactionEvent]:
    """``fallback_id`` may be a callable, called only when the event has no id of its own."""
    ts = event.timestamp.timestamp() if event.timestamp is not None else fallback_ts
    event_id = event.transaction_id or (fallback_id() if callable(fallback_id) else fallback_id)
    return Identified(event, event_id, ts)


def identify_session_event(event: SessionEvent, fallback_id: str | Callable[[], str],
                           fallback_ts: float) -> Identified[SessionEvent]:
    ts = event.timestamp.timestamp() if event.timestamp is not None else fallback_ts
    event_id = event.event_id or (fallback_id() if callable(fallback_id) else fallback_id)
    return Identified(event, event_id, ts)




def identify_requests(events: Sequence[E], now: float) -> list[Identified[E]]:
    """HTTP requests' events identified as ``identify_transaction`` / ``identify_session_event`` would with
    ``new_event_id`` and ``now`` (equal: tested), in one loop: ``/score/batch`` identifies hundreds at a time."""
    out: list[Identified[E]] = []
    append = out.append
    for event in events:
        own = event.transaction_id if isinstance(event, TransactionEvent) else event.event_id
        stamp = event.timestamp
        append(Identified(event, own or new_event_id(), now if stamp is None else stamp.timestamp()))
    return out
