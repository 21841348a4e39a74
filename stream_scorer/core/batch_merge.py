"""What the stream adds around a batch: each event's own feature update, and, for events of one card or user in
the same batch, the earlier ones of the batch in their history (the batch path scores like one event at a time)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import TypeVar

from schemas.events import SessionEvent, TransactionEvent
from stream_scorer.core.feature_inputs import FraudState, PersonalizationState, UserEvent, day_of
from stream_scorer.core.feature_state import NO_SESSION, SessionUpdate, TransactionUpdate
from stream_scorer.core.features import LABEL_DELAY_DAYS
from stream_scorer.core.identified import Identified
from stream_scorer.core.window import card_member, member_id

E = TypeVar("E", TransactionEvent, SessionEvent)

FRAUD_COUNTER_LAG_DAYS = LABEL_DELAY_DAYS + 1
"""A transaction reads its merchant's and MCC's counters up to ``LABEL_DELAY_DAYS`` days before its own day: a
day's counts reach the transactions of 8 days later at the earliest."""
ITEM_COUNTER_LAG_DAYS = 1
"""A session event reads its item's counters of the previous full days: a day's counts, the next day's events."""


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


def reads_after(parts: Sequence[Sequence[Identified[E]]], entity: Callable[[Identified[E]], str],
                counter_lag_days: int) -> list[int]:
    """For each part of a stream batch, the last earlier part whose updates its read must follow (-1: none).

    A part's read must see the earlier parts' updates it depends on: those of the parts that share one of its
    windows' entities (card, user), and, when the batch spans ``counter_lag_days`` days or more (one event's
    counter update may then be read by another's features), every earlier part's. Any other read may be written
    at the start of the batch, ahead of the updates."""
    days = [day_of(i.ts) for part in parts for i in part]
    if days and max(days) - min(days) >= counter_lag_days:
        return list(range(-1, len(parts) - 1))
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


def card_reads_after(parts: Sequence[Sequence[Identified[TransactionEvent]]]) -> list[int]:
    return reads_after(parts, lambda i: i.event.card_id, FRAUD_COUNTER_LAG_DAYS)


def user_reads_after(parts: Sequence[Sequence[Identified[SessionEvent]]]) -> list[int]:
    return reads_after(parts, lambda i: i.event.user_id, ITEM_COUNTER_LAG_DAYS)
