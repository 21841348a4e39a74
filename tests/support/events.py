"""Deterministic little histories for tests (the realistic simulators live in training/)."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from schemas.events import SessionEvent, TransactionEvent
from stream_scorer.core.feature_state import LabelUpdate, SessionUpdate, TransactionUpdate

COUNTRIES = ["US", "US", "US", "GB", "FR", "NG"]
MCCS = ["5411", "5812", "5999", "4111"]
CATEGORIES = ["electronics", "fashion", "home", "books"]


def transaction_events(n: int, *, start: float, span_sec: float, cards: int = 20, merchants: int = 8,
                       seed: int = 0) -> list[TransactionEvent]:
    """``n`` transactions in time order with distinct timestamps, bursts included."""
    rng = random.Random(seed)
    times = sorted(rng.sample(range(int(span_sec * 1000)), n))
    events = []
    for i, t_ms in enumerate(times):
        card = rng.randrange(cards)
        merchant = rng.randrange(merchants)
        small = rng.random() < 0.1
        events.append(TransactionEvent(
            transaction_id=f"tx-{seed}-{i:06d}", card_id=f"card_{card:05d}", merchant_id=f"merchant_{merchant:03d}",
            mcc_code=MCCS[merchant % len(MCCS)], country_code=rng.choice(COUNTRIES),
            transaction_amount=round(rng.uniform(0.5, 4.0) if small else rng.lognormvariate(3.5, 0.9), 2),
            timestamp=datetime.fromtimestamp(start + t_ms / 1000, UTC),
        ))
    return events


def event_body(event: TransactionEvent | SessionEvent) -> bytes:
    """The JSON a producer (or an HTTP client) sends for ``event``."""
    return event.model_dump_json(exclude_none=True).encode()


def tx_update(e: TransactionEvent) -> TransactionUpdate:
    assert e.transaction_id is not None and e.timestamp is not None
    return TransactionUpdate(e.transaction_id, e.card_id, e.timestamp.timestamp(), e.transaction_amount,
                             e.country_code, e.merchant_id, e.mcc_code)


def fraud_labels(events: list[TransactionEvent], *, share: float, delay_sec: float, seed: int = 0
                 ) -> list[tuple[float, LabelUpdate]]:
    """(arrival time, label) for a random share of the events, arriving ``delay_sec`` after them."""
    rng = random.Random(seed)
    out = []
    for e in events:
        if rng.random() < share:
            assert e.transaction_id is not None and e.timestamp is not None
            ts = e.timestamp.timestamp()
            out.append((ts + delay_sec, LabelUpdate(e.transaction_id, e.merchant_id, e.mcc_code, ts, True)))
    return out


def session_events(n: int, *, start: float, span_sec: float, users: int = 10, seed: int = 0) -> list[SessionEvent]:
    rng = random.Random(seed)
    times = sorted(rng.sample(range(int(span_sec * 1000)), n))
    events = []
    for i, t_ms in enumerate(times):
        user = rng.randrange(users)
        category = rng.choice(CATEGORIES)
        roll = rng.random()
        events.append(SessionEvent(
            event_id=f"ev-{seed}-{i:06d}", user_id=f"user_{user:05d}", session_id=f"s-{user}-{int(t_ms // 3_600_000)}",
            item_id=f"item_{category}_{rng.randrange(5)}", item_category=category,
            item_price=round(rng.lognormvariate(3.5, 1.0), 2),
            event_type="purchase" if roll < 0.05 else "cart" if roll < 0.15 else "view",
            timestamp=datetime.fromtimestamp(start + t_ms / 1000, UTC),
        ))
    return events


def session_update(e: SessionEvent) -> SessionUpdate:
    assert e.event_id is not None and e.timestamp is not None
    return SessionUpdate(e.event_id, e.user_id, e.timestamp.timestamp(), e.event_type, e.item_id, e.item_category,
                         e.item_price, e.session_id)
