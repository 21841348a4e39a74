"""What the stream adds around a batch: each event's own feature update, and, for events of one card or user in
the same batch, the earlier ones of the batch in their history (the batch path scores like one event at a time)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import TypeVar

from schemas.events import SessionEvent, TransactionEvent
from stream_scorer.core.feature_inputs import FraudState, PersonalizationState, UserEvent, day_of
from stream_scorer.core.feature_state import (
    ITEM_RETENTION_DAYS,
    NO_SESSION,
    RISK_RETENTION_DAYS,
    SessionUpdate,
    TransactionUpdate,
)
from stream_scorer.core.features import ITEM_WINDOW_DAYS, LABEL_DELAY_DAYS, RISK_WINDOW_DAYS
from stream_scorer.core.identified import Identified
from stream_scorer.core.window import card_member, member_id

E = TypeVar("E", TransactionEvent, SessionEvent)

FRAUD_COUNTER_LAG_DAYS = min(LABEL_DELAY_DAYS + 1, RISK_RETENTION_DAYS + 1 - (LABEL_DELAY_DAYS + RISK_WINDOW_DAYS))
"""How many days apart two transactions must be for one's update of a merchant / MCC counter to change what the
other reads: a transaction reads the days ``[day - 35, day - 7)``, so an increment reaches the transactions 8
days later; its update also sweeps the days before ``day - 36``, which an (out-of-order) transaction 2 days
earlier still reads."""
ITEM_COUNTER_LAG_DAYS = min(1, ITEM_RETENTION_DAYS + 1 - ITEM_WINDOW_DAYS)
"""The same for items: an event reads the previous 7 full days (an increment reaches the next day's events) and
its update sweeps the days before ``day - 8`` (read by an event 2 days earlier)."""


def tx_update(i: Identified[TransactionEvent]) -> TransactionUpdate:
    e = i.event
    return TransactionUpdate(i.event_id, e.card_id, i.ts, e.transaction_amount, e.country_code, e.merchant_id,
                             e.mcc_code)


def session_update(i: Identified[SessionEvent]) -> SessionUpdate:
    e = i.event
    return SessionUpdate(i.event_id, e.user_id, i.ts, e.event_type, e.item_id, e.item_category, e.item_price,
                         e.session_id)


def _shared_rows(entities: Sequence[str]) -> list[list[int]]:
    """The rows of each entity that occurs more than once in the batch (they read the same stored state)."""
    rows_of: dict[str, list[int]] = defaultdict(list)
    for row, entity in enumerate(entities):
        rows_of[entity].append(row)
    return [rows for rows in rows_of.values() if len(rows) > 1]


def merge_card_batch(items: Sequence[Identified[TransactionEvent]], states: list[FraudState]) -> None:
    """Each row's window plus the other events of its card in the same batch (once per transaction id), built
    once per card; the feature functions keep, per event, only what precedes it."""
    for rows in _shared_rows([i.event.card_id for i in items]):
        stored = states[rows[0]].card_history
        window = list(stored)
        known = {member_id(member) for member in stored[::2] if isinstance(member, str)}
        for r in rows:
            i = items[r]
            if i.event_id not in known:
                known.add(i.event_id)
                e = i.event
                window += (card_member(i.event_id, e.transaction_amount, e.country_code, e.merchant_id), i.ts)
        for r in rows:
            states[r].card_history = window


def merge_user_batch(items: Sequence[Identified[SessionEvent]], states: list[PersonalizationState]) -> None:
    """Like ``merge_card_batch``, for the users' windows."""
    for rows in _shared_rows([i.event.user_id for i in items]):
        merged = {e.event_id: e for e in states[rows[0]].user_history}
        for r in rows:
            i = items[r]
            if i.event_id not in merged:
                e = i.event
                merged[i.event_id] = UserEvent(i.event_id, i.ts, e.event_type, e.item_category, e.item_price,
                                               e.item_id, e.session_id or NO_SESSION)
        history = list(merged.values())
        for r in rows:
            states[r].user_history = history


def plan_parts(items: Sequence[Identified[E]], size: int, entity: Callable[[Identified[E]], str],
               counter_lag_days: int) -> tuple[list[Sequence[Identified[E]]], list[int]]:
    """A stream batch in parts, and for each part the last earlier part whose updates its read must follow
    (-1: none, the read may be written at the start of the batch).

    Parts hold ``size`` events, the first ones fewer (a quarter, then a half: the worker waits for the first
    part's read with nothing to do), and events less than ``counter_lag_days`` days apart: a part is read before
    its own updates, and only windows (``merge``), not counters, see the part's earlier events. A part's read
    follows the updates of the parts sharing one of its entities (card, user), and, when the batch spans
    ``counter_lag_days`` days or more, of every earlier part."""
    parts: list[Sequence[Identified[E]]] = []
    start, step = 0, max(1, size // 4)
    low = high = first = last = day_of(items[0].ts) if items else 0  # the part's days, the batch's
    for n, item in enumerate(items):
        day = day_of(item.ts)
        first, last = min(first, day), max(last, day)
        if n == start or n - start >= step or max(high, day) - min(low, day) >= counter_lag_days:
            if n > start:
                parts.append(items[start:n])
                start, step = n, min(size, step * 2)
            low = high = day
        else:
            low, high = min(low, day), max(high, day)
    if start < len(items):
        parts.append(items[start:])
    if last - first >= counter_lag_days:
        return parts, list(range(-1, len(parts) - 1))
    return parts, _reads_after(parts, entity)


def _reads_after(parts: Sequence[Sequence[Identified[E]]], entity: Callable[[Identified[E]], str]) -> list[int]:
    last_part: dict[str, int] = {}
    out: list[int] = []
    for k, part in enumerate(parts):
        after = -1
        for i in part:
            key = entity(i)
            seen = last_part.get(key)
            if seen is not None and seen != k:
                after = max(after, seen)
            last_part[key] = k
        out.append(after)
    return out


def card_parts(items: Sequence[Identified[TransactionEvent]], size: int
               ) -> tuple[list[Sequence[Identified[TransactionEvent]]], list[int]]:
    return plan_parts(items, size, lambda i: i.event.card_id, FRAUD_COUNTER_LAG_DAYS)


def user_parts(items: Sequence[Identified[SessionEvent]], size: int
               ) -> tuple[list[Sequence[Identified[SessionEvent]]], list[int]]:
    return plan_parts(items, size, lambda i: i.event.user_id, ITEM_COUNTER_LAG_DAYS)
