"""What the feature functions read: the state of a card, merchant, MCC, user or item as of an event's time.

Kept apart from the definitions (``features``) so both the stores that build these objects and the functions
that read them import one small module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from stream_scorer.core.window import CardWindow

DAY = 86400.0


def day_of(ts: float) -> int:
    """Day index (UTC) of an epoch-seconds timestamp: the unit of the daily counters."""
    return int(ts // DAY)


# --------------------------------------------------------------------------------------------------- fraud state
@dataclass(slots=True)
class DailyCounts:
    """Per-day counters of one merchant / MCC (``tx`` and ``fraud``) or item (``view``, ``cart``, ``purchase``)."""

    counts: dict[str, dict[int, int]] = field(default_factory=dict)
    _totals: dict[tuple[int, int], dict[str, int]] = field(default_factory=dict, repr=False, compare=False)
    """Memo of ``totals``: one merchant's counters serve every transaction of a batch (and of the cache TTL)."""

    def get(self, kind: str, day: int) -> int:
        return self.counts.get(kind, {}).get(day, 0)

    def totals(self, first_day: int, end_day: int) -> dict[str, int]:
        """Each kind's count over days ``[first_day, end_day)`` (kinds without counters are absent). Memoized:
        read it, do not change it."""
        key = (first_day, end_day)
        found = self._totals.get(key)
        if found is None:
            found = self._totals[key] = {kind: sum(n for d, n in per_day.items() if first_day <= d < end_day)
                                         for kind, per_day in self.counts.items()}
        return found

    def total(self, kind: str, first_day: int, end_day: int) -> int:
        return self.totals(first_day, end_day).get(kind, 0)

    def add(self, kind: str, day: int, n: int = 1) -> None:
        per_day = self.counts.setdefault(kind, {})
        per_day[day] = per_day.get(day, 0) + n
        self._totals.clear()

    def drop_before(self, first_kept: int) -> None:
        for per_day in self.counts.values():
            for day in [d for d in per_day if d < first_kept]:
                del per_day[day]
        self._totals.clear()

    def is_empty(self) -> bool:
        return not any(self.counts.values())


@dataclass(slots=True)
class FraudState:
    """Everything the fraud features of one transaction read, as of its time."""

    card_history: CardWindow = ()
    """The card's prior transactions as stored (:mod:`stream_scorer.core.window`)."""
    merchant: DailyCounts = field(default_factory=DailyCounts)
    mcc: DailyCounts = field(default_factory=DailyCounts)
    updated_at: float | None = None


# ---------------------------------------------------------------------------------------- personalization state
@dataclass(slots=True)  # not frozen: cheaper to build, one per window member
class UserEvent:
    """One prior session event of a user, as kept in the user's window."""

    event_id: str
    ts: float
    event_type: str
    category: str
    price: float
    item_id: str
    session_id: str


@dataclass(slots=True)
class PersonalizationState:
    user_history: Sequence[UserEvent] = ()
    item: DailyCounts = field(default_factory=DailyCounts)
    updated_at: float | None = None
