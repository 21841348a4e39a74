from __future__ import annotations

import pytest

from schemas.events import SessionEvent, TransactionEvent
from stream_scorer.worker.decode import decode


@pytest.mark.parametrize(("raw", "reason", "field"), [
    (None, "empty_message", None),
    (b"", "empty_message", None),
    (b"not json", "invalid_json", None),
    (b"[1, 2]", "invalid_json", None),
    (b'{"transaction_amount": 5}', "invalid_event", "card_id"),
    (b'{"card_id": "c", "transaction_amount": -5}', "invalid_event", "transaction_amount"),
    (b'{"card_id": "c|d", "transaction_amount": 5}', "invalid_event", "card_id"),
    (b'{"card_id": "c", "transaction_amount": NaN}', "invalid_event", "transaction_amount"),
    (b'{"card_id": "c", "transaction_amount": Infinity}', "invalid_event", "transaction_amount"),
    (b'{"card_id": "c", "transaction_amount": "nan"}', "invalid_event", "transaction_amount"),
])
def test_rejections_name_reason_and_field(raw: bytes | None, reason: str, field: str | None) -> None:
    decoded = decode(TransactionEvent, raw)
    assert decoded.event is None and decoded.rejection is not None
    assert (decoded.rejection.reason, decoded.rejection.field) == (reason, field)


@pytest.mark.parametrize("amount", [b"NaN", b"-Infinity", b'"inf"'])
def test_non_finite_numbers_are_rejected_as_such(amount: bytes) -> None:
    for schema, body in ((TransactionEvent, b'{"card_id": "c", "transaction_amount": %s}'),
                         (SessionEvent, b'{"user_id": "u", "item_id": "i", "item_price": %s}')):
        decoded = decode(schema, body % amount)
        assert decoded.rejection is not None and "finite" in decoded.rejection.detail


def test_valid_events_decode() -> None:
    tx = decode(TransactionEvent, b'{"card_id": "c", "transaction_amount": 5, "timestamp": 1700000000}').event
    assert tx is not None and tx.timestamp is not None and tx.timestamp.timestamp() == 1700000000
    session = decode(SessionEvent, b'{"user_id": "u", "item_id": "i"}').event
    assert session is not None and session.event_type == "view"


def test_far_future_timestamps_are_rejected() -> None:
    raw = b'{"card_id": "c", "transaction_amount": 5, "timestamp": "9999-12-31T00:00:00Z"}'
    decoded = decode(TransactionEvent, raw)
    assert decoded.rejection is not None and decoded.rejection.field == "timestamp"
