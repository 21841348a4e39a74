"""The online update rules, applied to an in-memory state.

Training replays history through this class (features of each event read *before* its own update, labels
applied when they arrive), which makes the offline features point-in-time correct by construction. The Redis
feature store applies the same rules in Lua; ``tests/`` replays the same events through both and compares.
Updates are idempotent per event id, like the Redis ones.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Generic, NamedTuple, TypeVar

from stream_scorer.core.feature_inputs import (
    DAY,
    DailyCounts,
    FraudState,
    PersonalizationState,
    UserEvent,
    day_of,
)
from stream_scorer.core.features import (
    CARD_WINDOW_SEC,
    ITEM_WINDOW_DAYS,
    LABEL_DELAY_DAYS,
    RISK_WINDOW_DAYS,
    USER_WINDOW_SEC,
)
from stream_scorer.core.window import card_member

# Entries a little older than any window are kept so that slightly out-of-order events still see their window.
CARD_RETENTION_SEC = CARD_WINDOW_SEC + DAY
USER_RETENTION_SEC = USER_WINDOW_SEC + DAY
RISK_RETENTION_DAYS = LABEL_DELAY_DAYS + RISK_WINDOW_DAYS + 1
ITEM_RETENTION_DAYS = ITEM_WINDOW_DAYS + 1
NO_SESSION = "-"


# The update records are NamedTuples: immutable, and ~3x cheaper to build than frozen dataclasses (one per event).
class TransactionUpdate(NamedTuple):
    transaction_id: str
    card_id: str
    ts: float
    amount: float
    country: str | None
    merchant_id: str
    mcc_code: str


class LabelUpdate(NamedTuple):
    transaction_id: str
    merchant_id: str
    mcc_code: str
    transaction_ts: float
    is_fraud: bool


class SessionUpdate(NamedTuple):
    event_id: str
    user_id: str
    ts: float
    event_type: str
    item_id: str
    category: str
    price: float
    session_id: str | None


class StoredTx(NamedTuple):
    """One prior transaction of a card, as the in-memory state keeps it."""

    event_id: str
    ts: float
    member: str
    """As stored in Redis: :func:`stream_scorer.core.window.card_member`."""


T = TypeVar("T", StoredTx, UserEvent)


@dataclass(slots=True)
class _Window(Generic[T]):
    """Prior events of one entity, in arrival order, with their ids for idempotent updates."""

    events: deque[T] = field(default_factory=deque)
    ids: set[str] = field(default_factory=set)


class InMemoryFeatureState:
    def __init__(self) -> None:
        self._cards: dict[str, _Window[StoredTx]] = {}
        self._users: dict[str, _Window[UserEvent]] = {}
        self._merchants: dict[str, DailyCounts] = {}
        self._mccs: dict[str, DailyCounts] = {}
        self._items: dict[str, DailyCounts] = {}
        self._labelled: set[str] = set()

    # ------------------------------------------------------------------------------------------------- fraud
    def fraud_state(self, card_id: str, merchant_id: str, mcc_code: str) -> FraudState:
        card = self._cards.get(card_id)
        return FraudState(
            card_history=[x for tx in card.events for x in (tx.member, tx.ts)] if card else [],
            merchant=self._merchants.get(merchant_id, DailyCounts()),
            mcc=self._mccs.get(mcc_code, DailyCounts()),
        )

    def apply_transaction(self, u: TransactionUpdate) -> bool:
        """Add the transaction to its card window and daily counters; False if it was already applied."""
        card: _Window[StoredTx] = self._cards.setdefault(u.card_id, _Window())
        if u.transaction_id in card.ids:
            return False
        card.events.append(StoredTx(u.transaction_id, u.ts,
                                    card_member(u.transaction_id, u.amount, u.country, u.merchant_id)))
        card.ids.add(u.transaction_id)
        _trim(card, u.ts - CARD_RETENTION_SEC)
        day = day_of(u.ts)
        for counts in (self._merchants.setdefault(u.merchant_id, DailyCounts()),
                       self._mccs.setdefault(u.mcc_code, DailyCounts())):
            counts.add("tx", day)
            counts.drop_before(day - RISK_RETENTION_DAYS)
        return True

    def apply_label(self, u: LabelUpdate) -> bool:
        """Count a fraud label against the day of its transaction; False if ignored (genuine or repeated)."""
        if not u.is_fraud or u.transaction_id in self._labelled:
            return False
        self._labelled.add(u.transaction_id)
        day = day_of(u.transaction_ts)
        self._merchants.setdefault(u.merchant_id, DailyCounts()).add("fraud", day)
        self._mccs.setdefault(u.mcc_code, DailyCounts()).add("fraud", day)
        return True

    # --------------------------------------------------------------------------------------- personalization
    def personalization_state(self, user_id: str, item_id: str) -> PersonalizationState:
        user = self._users.get(user_id)
        return PersonalizationState(
            user_history=list(user.events) if user else [],
            item=self._items.get(item_id, DailyCounts()),
        )

    def apply_session_event(self, u: SessionUpdate) -> bool:
        user: _Window[UserEvent] = self._users.setdefault(u.user_id, _Window())
        if u.event_id in user.ids:
            return False
        user.events.append(UserEvent(u.event_id, u.ts, u.event_type, u.category, u.price, u.item_id,
                                     u.session_id or NO_SESSION))
        user.ids.add(u.event_id)
        _trim(user, u.ts - USER_RETENTION_SEC)
        counts = self._items.setdefault(u.item_id, DailyCounts())
        counts.add(u.event_type, day_of(u.ts))
        counts.drop_before(day_of(u.ts) - ITEM_RETENTION_DAYS)
        return True

    # ---------------------------------------------------------------------------------------- snapshot access
    @property
    def cards(self) -> dict[str, list[StoredTx]]:
        return {k: list(w.events) for k, w in self._cards.items()}

    @property
    def users(self) -> dict[str, list[UserEvent]]:
        return {k: list(w.events) for k, w in self._users.items()}

    @property
    def merchants(self) -> dict[str, DailyCounts]:
        return self._merchants

    @property
    def mccs(self) -> dict[str, DailyCounts]:
        return self._mccs

    @property
    def items(self) -> dict[str, DailyCounts]:
        return self._items


def _trim(window: _Window[T], before: float) -> None:
    while window.events and window.events[0].ts < before:
        window.ids.discard(window.events.popleft().event_id)


