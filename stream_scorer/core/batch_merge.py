"""What the stream adds around a batch: each event's own feature update, and, for events of one card or user in
the same batch, the earlier ones of the batch in their history (the batch path scores like one event at a time)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import TypeVar

from schemas.events import SessionEvent, TransactionEvent
from stream_scorer.core.feature_inputs import CardTx, FraudState, PersonalizationState, UserEvent
from stream_scorer.core.feature_state import NO_SESSION, SessionUpdate, TransactionUpdate
from stream_scorer.core.identified import Identified


def tx_update(i: Identified[TransactionEvent]) -> TransactionUpdate:
    e = i.event
    return TransactionUpdate(i.event_id, e.card_id, i.ts, e.transaction_amount, e.country_code, e.merchant_id,
                             e.mcc_code)


def session_update(i: Identified[SessionEvent]) -> SessionUpdate:
    e = i.event
    return SessionUpdate(i.event_id, e.user_id, i.ts, e.event_type, e.item_id, e.item_category, e.item_price,
                         e.session_id)


H = TypeVar("H", CardTx, UserEvent)


def _with_batch(entities: Sequence[str], histories: Sequence[Sequence[H]],
                entry: Callable[[int], H]) -> list[Sequence[H]]:
    """Each row's history plus the other events of its entity in the same batch (once per event id), built
    once per entity; the feature functions keep, per event, only what precedes it."""
    rows_of: dict[str, list[int]] = defaultdict(list)
    for row, entity in enumerate(entities):
        rows_of[entity].append(row)
    merged_histories = list(histories)
    for rows in rows_of.values():
        if len(rows) < 2:
            continue
        merged = {e.event_id: e for e in histories[rows[0]]}  # the rows of one entity read the same state
        for r in rows:
            merged.setdefault(entry(r).event_id, entry(r))
        shared = list(merged.values())
        for r in rows:
            merged_histories[r] = shared
    return merged_histories


def merge_card_batch(items: Sequence[Identified[TransactionEvent]], states: list[FraudState]) -> None:
    def entry(r: int) -> CardTx:
        i = items[r]
        return CardTx(i.event_id, i.ts, i.event.transaction_amount, i.event.country_code or "", i.event.merchant_id)

    merged = _with_batch([i.event.card_id for i in items], [s.card_history for s in states], entry)
    for state, history in zip(states, merged, strict=True):
        state.card_history = history


def merge_user_batch(items: Sequence[Identified[SessionEvent]], states: list[PersonalizationState]) -> None:
    def entry(r: int) -> UserEvent:
        e = items[r].event
        return UserEvent(items[r].event_id, items[r].ts, e.event_type, e.item_category, e.item_price, e.item_id,
                         e.session_id or NO_SESSION)

    merged = _with_batch([i.event.user_id for i in items], [s.user_history for s in states], entry)
    for state, history in zip(states, merged, strict=True):
        state.user_history = history
