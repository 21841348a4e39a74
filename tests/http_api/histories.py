"""Small, readable histories for the HTTP tests, written to Redis through the stream's own update path
(``RedisFeatureStore.apply_transactions`` / ``apply_session_events``)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from schemas.events import SessionEvent, TransactionEvent
from stream_scorer.core.features import DAY, HOUR

BURST_SIZE = 8


def _at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def card_testing_burst(card_id: str, *, now: float | None = None, merchant_id: str = "merchant_burst",
                       mcc_code: str = "5999") -> list[TransactionEvent]:
    """Card testing: ``BURST_SIZE`` transactions of 1-3 in the last 50 minutes, in the card's home country."""
    now = time.time() if now is None else now
    return [TransactionEvent(transaction_id=f"{card_id}-small-{i}", card_id=card_id, merchant_id=merchant_id,
                             mcc_code=mcc_code, country_code="US", transaction_amount=1.0 + (i % 3),
                             timestamp=_at(now - 50 * 60 + i * 5 * 60)) for i in range(BURST_SIZE)]


def quiet_card(card_id: str, *, now: float | None = None, merchant_id: str = "merchant_grocer",
               mcc_code: str = "5411") -> list[TransactionEvent]:
    """An ordinary card: one purchase of 40-60 a day over the last six days, none in the last day."""
    now = time.time() if now is None else now
    return [TransactionEvent(transaction_id=f"{card_id}-day-{i}", card_id=card_id, merchant_id=merchant_id,
                             mcc_code=mcc_code, country_code="US", transaction_amount=40.0 + 4 * i,
                             timestamp=_at(now - (i + 1) * DAY - 3 * HOUR)) for i in range(6)]


def merchant_volume(merchant_id: str, mcc_code: str, *, now: float | None = None,
                    n: int = 12) -> list[TransactionEvent]:
    """Old traffic (10-15 days ago, inside the label-known risk window) of another card at a merchant / MCC."""
    now = time.time() if now is None else now
    return [TransactionEvent(transaction_id=f"{merchant_id}-{mcc_code}-old-{i}", card_id=f"card_other_{merchant_id}",
                             merchant_id=merchant_id, mcc_code=mcc_code, country_code="US",
                             transaction_amount=30.0 + i, timestamp=_at(now - 10 * DAY - i * 9 * HOUR))
            for i in range(n)]


def rich_shopper(user_id: str, session_id: str, *, now: float | None = None,
                 category: str = "electronics") -> list[SessionEvent]:
    """Two weeks of activity with purchases over 100, and a deep current session (views, then cart adds)."""
    now = time.time() if now is None else now
    past = [SessionEvent(event_id=f"{user_id}-past-{i}", user_id=user_id, session_id=f"{user_id}-old-{i // 5}",
                         item_id=f"item_{category}_{i % 4}", item_category=category, item_price=150.0 + i,
                         event_type="purchase" if i % 5 == 4 else "view",
                         timestamp=_at(now - (10 - i // 5) * DAY + i * 60)) for i in range(15)]
    session = [SessionEvent(event_id=f"{user_id}-now-{i}", user_id=user_id, session_id=session_id,
                            item_id=f"item_{category}_{i % 3}", item_category=category, item_price=299.99,
                            event_type="cart" if i >= 4 else "view", timestamp=_at(now - 600 + i * 60))
               for i in range(6)]
    return past + session
