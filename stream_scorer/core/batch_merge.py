"""What the stream adds around a batch: each event's own feature update, and, for events of one card or user in
the same batch, the earlier ones of the batch in their history (the batch path scores like one event at a time)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from schemas.events import SessionEvent, TransactionEvent
from stream_scorer.core.feature_inputs import FraudState, PersonalizationState, UserEvent
from stream_scorer.core.feature_state import NO_SESSION, SessionUpdate, TransactionUpdate
from stream_scorer.core.identified import Identified
from stream_scorer.core.window import card_member, member_id


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
