"""How a stream batch is cut in parts, when their reads may be written ahead of its updates, and the merge of
the batch's earlier events into a part's windows."""

from __future__ import annotations

from schemas.events import TransactionEvent
from stream_scorer.core.batch_merge import (
    CARD_WINDOW_LAG_DAYS,
    FRAUD_COUNTER_LAG_DAYS,
    card_parts,
    merge_card_batch,
)
from stream_scorer.core.feature_inputs import FraudState
from stream_scorer.core.features import DAY
from stream_scorer.core.identified import Identified, identify_transaction
from stream_scorer.core.window import card_member, member_id

T0 = 1_700_000_000.0


def _tx(card: str, ts: float = T0) -> Identified[TransactionEvent]:
    return identify_transaction(TransactionEvent(card_id=card, transaction_amount=10.0), f"{card}-{ts}", ts)


def _plan(cards: str, size: int, days: list[int] | None = None) -> tuple[list[str], bool]:
    items = [_tx(c, T0 + (days[n] if days else 0) * DAY) for n, c in enumerate(cards)]
    parts, sequential = card_parts(items, size)
    assert [i for part in parts for i in part] == items
    return ["".join(i.event.card_id for i in part) for part in parts], sequential


def test_parts_grow_by_half_to_the_size_and_are_all_read_at_the_start() -> None:
    assert _plan("abcdefghijklmnopqrstu", 8) == (["ab", "cde", "fghi", "jklmno", "pqrstu"], False)
    # cards shared across parts change nothing: their earlier events are merged in memory
    assert _plan("aabcaxydefgb", 4) == (["a", "ab", "cax", "ydef", "gb"], False)


def test_a_batch_over_days_is_cut_and_read_part_after_part() -> None:
    """Merchant and MCC counters are shared by many cards, and a card's update trims its window of members
    older than the retention (the window plus a day): once the batch's events are a day or more apart, one
    event's update can change another's features, so no part holds such events together and every read follows
    the previous part's updates."""
    assert min(FRAUD_COUNTER_LAG_DAYS, CARD_WINDOW_LAG_DAYS) == 1
    assert _plan("abcd", 8, [0, 0, 0, 0]) == (["ab", "cd"], False)
    assert _plan("abcde", 8, [0, 0, 1, 1, 0]) == (["ab", "cd", "e"], True)


def test_a_parts_windows_get_the_batchs_earlier_events_of_their_card_once() -> None:
    a1, b1, a2, a3 = _tx("a", T0), _tx("b", T0 + 1), _tx("a", T0 + 2), _tx("a", T0 + 3)
    stored = [card_member("old", 5.0, "US", "m"), repr(T0 - 60),
              card_member(a1.event_id, 10.0, None, "merchant_unknown"),
              repr(T0)]  # a1 already stored: a redelivery
    earlier: dict[str, list[Identified[TransactionEvent]]] = {}
    first = [FraudState(list(stored)), FraudState([])]
    merge_card_batch([a1, b1], first, earlier)
    assert first[0].card_history == stored  # alone in its part, a1 needs nothing more
    assert {card: [i.event_id for i in found] for card, found in earlier.items()} == {
        "a": [a1.event_id], "b": [b1.event_id]}
    second = [FraudState(list(stored)), FraudState(list(stored))]
    merge_card_batch([a2, a3], second, earlier)
    window = second[0].card_history
    assert second[1].card_history is window
    ids = [member_id(m) for m in window[::2]]
    assert sorted(ids) == sorted(["old", a1.event_id, a2.event_id, a3.event_id])  # a1 once, not twice
    assert [i.event_id for i in earlier["a"]] == [a1.event_id, a2.event_id, a3.event_id]
