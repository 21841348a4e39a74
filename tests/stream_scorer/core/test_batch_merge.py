"""How a stream batch is cut in parts, and which parts' reads may be written ahead of the batch's updates."""

from __future__ import annotations

from schemas.events import TransactionEvent
from stream_scorer.core.batch_merge import FRAUD_COUNTER_LAG_DAYS, card_parts
from stream_scorer.core.features import DAY
from stream_scorer.core.identified import Identified, identify_transaction

T0 = 1_700_000_000.0


def _tx(card: str, ts: float = T0) -> Identified[TransactionEvent]:
    return identify_transaction(TransactionEvent(card_id=card, transaction_amount=10.0), f"{card}-{ts}", ts)


def _plan(cards: str, size: int, days: list[int] | None = None) -> tuple[list[str], list[int]]:
    items = [_tx(c, T0 + (days[n] if days else 0) * DAY) for n, c in enumerate(cards)]
    parts, after = card_parts(items, size)
    assert [i for part in parts for i in part] == items
    return ["".join(i.event.card_id for i in part) for part in parts], after


def test_parts_grow_to_the_size_and_without_a_shared_card_read_at_the_start() -> None:
    assert _plan("abcdefghijklmnopqrstu", 8) == (["ab", "cdef", "ghijklmn", "opqrstu"], [-1, -1, -1, -1])


def test_a_part_reads_after_the_last_earlier_part_with_one_of_its_cards() -> None:
    # parts of 1, 2, 4, 4: a card twice in one part is the part's own business (merged in memory)
    parts, after = _plan("aabcaxydefgb", 4)
    assert parts == ["a", "ab", "caxy", "defg", "b"]
    assert after == [-1, 0, 1, -1, 1]


def test_a_batch_whose_counters_can_reach_each_other_is_cut_and_read_part_after_part() -> None:
    """Merchant and MCC counters are shared by many cards: once the batch spans enough days for one event's
    counter update (an increment, or a sweep of old days) to change another's features, no part holds such
    events together and every read follows the previous part's updates."""
    lag = FRAUD_COUNTER_LAG_DAYS
    assert _plan("abcd", 8, [0, 0, lag - 1, 0]) == (["ab", "cd"], [-1, -1])
    assert _plan("abcde", 8, [0, 0, lag, lag, 0]) == (["ab", "cd", "e"], [-1, 0, 1])
