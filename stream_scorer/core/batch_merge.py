"""What the stream adds around a batch: each event's own feature update, and, for events of one card or user in
the same batch, the earlier ones of the batch in their history (the batch path scores like one event at a time)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import TypeVar

from schemas.events import SessionEvent, TransactionEvent
from stream_scorer.core.feature_inputs import FraudState, PersonalizationState, UserEvent, day_of
from stream_scorer.core.feature_state import (
    CARD_RETENTION_SEC,
    ITEM_RETENTION_DAYS,
    NO_SESSION,
    RISK_RETENTION_DAYS,
    USER_RETENTION_SEC,
    SessionUpdate,
    TransactionUpdate,
)
from stream_scorer.core.features import (
    CARD_WINDOW_SEC,
    DAY,
    ITEM_WINDOW_DAYS,
    LABEL_DELAY_DAYS,
    RISK_WINDOW_DAYS,
    USER_WINDOW_SEC,
)
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
CARD_WINDOW_LAG_DAYS = int((CARD_RETENTION_SEC - CARD_WINDOW_SEC) // DAY)
USER_WINDOW_LAG_DAYS = int((USER_RETENTION_SEC - USER_WINDOW_SEC) // DAY)
"""The same for windows: an event's update trims its card's (user's) window of the members older than the
retention, the window plus a day, which an event more than a day earlier still reads. Events of one UTC day are
less than a day apart."""


def tx_update(i: Identified[TransactionEvent]) -> TransactionUpdate:
    e = i.event
    return TransactionUpdate(i.event_id, e.card_id, i.ts, e.transaction_amount, e.country_code, e.merchant_id,
                             e.mcc_code)


def session_update(i: Identified[SessionEvent]) -> SessionUpdate:
    e = i.event
    return SessionUpdate(i.event_id, e.user_id, i.ts, e.event_type, e.item_id, e.item_category, e.item_price,
                         e.session_id)


Earlier = dict[str, list[Identified[E]]]
"""A batch's events, per card or user, that the read of the part being merged did not see (see ``plan_parts``)."""


def _unseen(items: Sequence[Identified[E]], entities: Sequence[str], earlier: Earlier[E]
            ) -> Iterator[tuple[list[int], list[Identified[E]]]]:
    """Per card (user) of a part whose read misses some of its batch events: the card's rows in the part, and
    the batch's events of it so far, ``earlier`` ones then the part's own. Every card's events of the part are
    then added to ``earlier``."""
    rows_of: dict[str, list[int]] = defaultdict(list)
    for row, entity in enumerate(entities):
        rows_of[entity].append(row)
    for entity, rows in rows_of.items():
        mine: list[Identified[E]] = [items[r] for r in rows]
        before: list[Identified[E]] = earlier.setdefault(entity, [])
        if before or len(rows) > 1:
            yield rows, before + mine
        before.extend(mine)


def merge_card_batch(items: Sequence[Identified[TransactionEvent]], states: list[FraudState],
                     earlier: Earlier[TransactionEvent]) -> None:
    """Each row's window plus the batch's other events of its card that its read did not see: ``earlier`` ones
    and the part's own (once per transaction id), built once per card; the feature functions keep, per event,
    only what precedes it. Then the part's events are added to ``earlier``."""
    for rows, events in _unseen(items, [i.event.card_id for i in items], earlier):
        stored = states[rows[0]].card_history
        window = list(stored)
        known = {member_id(member) for member in stored[::2] if isinstance(member, str)}
        for i in events:
            if i.event_id not in known:
                known.add(i.event_id)
                e = i.event
                window += (card_member(i.event_id, e.transaction_amount, e.country_code, e.merchant_id), i.ts)
        for r in rows:
            states[r].card_history = window


def merge_user_batch(items: Sequence[Identified[SessionEvent]], states: list[PersonalizationState],
                     earlier: Earlier[SessionEvent]) -> None:
    """Like ``merge_card_batch``, for the users' windows."""
    for rows, events in _unseen(items, [i.event.user_id for i in items], earlier):
        merged = {e.event_id: e for e in states[rows[0]].user_history}
        for i in events:
            if i.event_id not in merged:
                e = i.event
                merged[i.event_id] = UserEvent(i.event_id, i.ts, e.event_type, e.item_category, e.item_price,
                                               e.item_id, e.session_id or NO_SESSION)
        history = list(merged.values())
        for r in rows:
            states[r].user_history = history


def plan_parts(items: Sequence[Identified[E]], size: int, lag_days: int
               ) -> tuple[list[Sequence[Identified[E]]], bool]:
    """A stream batch in parts, and whether each part's read must follow the previous part's updates.

    Parts hold ``size`` events, the first ones fewer (a quarter, then half as many again each time: the worker
    waits for the first part's read with nothing to do, and Redis should read a part in less time than the
    worker decides the previous one, at ~25 us per card against ~50 us per event). When the batch's events are
    less than ``lag_days`` days apart, no event's update changes another's counters or trims a window member
    another reads: every read is written at the start of the batch, and each part's windows get the batch's
    earlier events of their card or user in memory (``merge``), as they get their own part's. Otherwise (a
    catch-up batch over days) parts are also cut where their events are that far apart, and each part is read
    after the previous part's updates (``True``)."""
    parts: list[Sequence[Identified[E]]] = []
    start, step = 0, max(1, size // 4)
    low = high = first = last = day_of(items[0].ts) if items else 0  # the part's days, the batch's
    for n, item in enumerate(items):
        day = day_of(item.ts)
        first, last = min(first, day), max(last, day)
        if n == start or n - start >= step or max(high, day) - min(low, day) >= lag_days:
            if n > start:
                parts.append(items[start:n])
                start, step = n, min(size, max(step + 1, step * 3 // 2))
            low = high = day
        else:
            low, high = min(low, day), max(high, day)
    if start < len(items):
        parts.append(items[start:])
    return parts, last - first >= lag_days


def card_parts(items: Sequence[Identified[TransactionEvent]], size: int
               ) -> tuple[list[Sequence[Identified[TransactionEvent]]], bool]:
    return plan_parts(items, size, min(FRAUD_COUNTER_LAG_DAYS, CARD_WINDOW_LAG_DAYS))


def user_parts(items: Sequence[Identified[SessionEvent]], size: int
               ) -> tuple[list[Sequence[Identified[SessionEvent]]], bool]:
    return plan_parts(items, size, min(ITEM_COUNTER_LAG_DAYS, USER_WINDOW_LAG_DAYS))
