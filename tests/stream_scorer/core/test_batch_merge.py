"""Which reads of a stream batch's parts may be written ahead of the batch's updates."""

from __future__ import annotations

from schemas.events import TransactionEvent
from stream_scorer.core.batch_merge import FRAUD_COUNTER_LAG_DAYS, card_reads_after
from stream_scorer.core.features import DAY
from stream_scorer.core.identified import Identified, identify_transaction

T0 = 1_700_000_000.0


def _tx(card: str, ts: float = T0) -> Identified[TransactionEvent]:
    return identify_transaction(TransactionEvent(card_id=card, transaction_amount=10.0), f"{card}-{ts}", ts)


def test_parts_without_a_shared_card_read_at_the_start() -> None:
    parts = [[_tx("a"), _tx("b")], [_tx("c"), _tx("d")], [_tx("e")]]
    assert card_reads_after(parts) == [-1, -1, -1]


def test_a_part_reads_after_the_last_earlier_part_with_one_of_its_cards() -> None:
    parts = [[_tx("a"), _tx("a")], [_tx("b")], [_tx("c"), _tx("a")], [_tx("d")], [_tx("b"), _tx("a")]]
    # a card twice in one part is the part's own business (merged in memory), not a dependency
    assert card_reads_after(parts) == [-1, -1, 0, -1, 2]


def test_a_batch_whose_counters_can_reach_each_other_reads_part_after_part() -> None:
    """Merchant and MCC counters are shared by many cards: once the batch spans enough days for one event's
    counter update to be in another's features, every read follows the previous part's updates."""
    close = [[_tx("a", T0)], [_tx("b", T0 + (FRAUD_COUNTER_LAG_DAYS - 1) * DAY)]]
    assert card_reads_after(close) == [-1, -1]
    apart = [[_tx("a", T0)], [_tx("b", T0 + FRAUD_COUNTER_LAG_DAYS * DAY)], [_tx("c", T0)]]
    assert card_reads_after(apart) == [-1, 0, 1]
