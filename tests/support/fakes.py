"""In-memory fakes of our own interfaces, for unit tests."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import TypeVar

from stream_scorer.core.feature_inputs import DailyCounts
from stream_scorer.core.feature_state import InMemoryFeatureState, LabelUpdate, SessionUpdate, TransactionUpdate
from stream_scorer.core.feature_store import FraudKey, PersonalizationKey
from stream_scorer.core.features import FraudState, PersonalizationState

T = TypeVar("T")


class InMemoryFeatureStore:
    """The ``FeatureStore`` protocol over :class:`InMemoryFeatureState`; ``fail`` simulates Redis being down."""

    def __init__(self) -> None:
        self.state = InMemoryFeatureState()
        self.fail: Exception | None = None
        self.fetches = 0
        self.retry_flags: list[tuple[str, bool]] = []
        """(call, retry) of each send_* call."""

    def _check(self) -> None:
        if self.fail is not None:
            raise self.fail

    async def fetch_fraud_states(self, keys: Sequence[FraudKey]) -> list[FraudState]:
        """Copies, as Redis's replies are: later updates do not change a state already read."""
        self._check()
        self.fetches += 1
        states = [self.state.fraud_state(card, merchant, mcc) for card, merchant, mcc, _ in keys]
        return [FraudState(s.card_history, _copy(s.merchant), _copy(s.mcc), s.updated_at) for s in states]

    async def fetch_personalization_states(self, keys: Sequence[PersonalizationKey]) -> list[PersonalizationState]:
        self._check()
        self.fetches += 1
        states = [self.state.personalization_state(user, item) for user, item, _ in keys]
        return [PersonalizationState(s.user_history, _copy(s.item), s.updated_at) for s in states]

    async def send_fraud_fetch(self, keys: Sequence[FraudKey], *, retry: bool = True) -> Awaitable[list[FraudState]]:
        self.retry_flags.append(("fetch", retry))
        return _ready(await self.fetch_fraud_states(keys))  # read now: after every update sent before

    async def send_personalization_fetch(self, keys: Sequence[PersonalizationKey], *, retry: bool = True
                                         ) -> Awaitable[list[PersonalizationState]]:
        self.retry_flags.append(("fetch", retry))
        return _ready(await self.fetch_personalization_states(keys))

    async def apply_transactions(self, updates: Sequence[TransactionUpdate]) -> int:
        self._check()
        return sum(self.state.apply_transaction(u) for u in updates)

    async def apply_labels(self, updates: Sequence[LabelUpdate]) -> int:
        self._check()
        return sum(self.state.apply_label(u) for u in updates)

    async def apply_session_events(self, updates: Sequence[SessionUpdate]) -> int:
        self._check()
        return sum(self.state.apply_session_event(u) for u in updates)

    async def send_transactions(self, updates: Sequence[TransactionUpdate], *, retry: bool = True) -> Awaitable[int]:
        self.retry_flags.append(("update", retry))
        return _ready(await self.apply_transactions(updates))

    async def send_session_events(self, updates: Sequence[SessionUpdate], *, retry: bool = True) -> Awaitable[int]:
        self.retry_flags.append(("update", retry))
        return _ready(await self.apply_session_events(updates))

    async def ping(self) -> float:
        self._check()
        return 0.0


async def _ready(value: T) -> T:
    return value


def _copy(counts: DailyCounts) -> DailyCounts:
    return DailyCounts({kind: dict(per_day) for kind, per_day in counts.counts.items()})
