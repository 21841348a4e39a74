from __future__ import annotations

import random
import time

from stream_scorer.core.feature_inputs import FraudState, PersonalizationState, UserEvent
from stream_scorer.core.features import fraud_features, personalization_features
from stream_scorer.core.window import CardWindow, card_member


def card_window(entries: list[tuple[str, float, float, str, str]]) -> CardWindow:
    """A stored window from (transaction id, time, amount, country, merchant) entries."""
    return [x for tid, ts, amount, country, merchant in entries
            for x in (card_member(tid, amount, country, merchant), ts)]


def test_features_do_not_depend_on_the_order_of_the_history() -> None:
    """Redis returns a window in time order, a batch merge appends, a replay keeps arrival order: float sums
    must come out bit-identical anyway."""
    rng = random.Random(3)
    now = time.time()
    history = [(f"t{i}", now - rng.uniform(1, 3000), round(rng.uniform(0.1, 500), 2), "US", "m") for i in range(40)]
    shuffled = history[:]
    rng.shuffle(shuffled)
    assert fraud_features(now, 10.0, "US", FraudState(card_window(history))) == \
        fraud_features(now, 10.0, "US", FraudState(card_window(shuffled)))
    events = [UserEvent(f"e{i}", now - rng.uniform(1, 3000), "purchase", "books", round(rng.uniform(1, 90), 2),
                        "i1", "s1") for i in range(40)]
    mixed = events[:]
    rng.shuffle(mixed)
    assert personalization_features(now, "i1", "books", 20.0, "s1", PersonalizationState(events)) == \
        personalization_features(now, "i1", "books", 20.0, "s1", PersonalizationState(mixed))


def test_missing_features_from_the_computed_row_equal_the_window_scan() -> None:
    from stream_scorer.core.feature_inputs import DailyCounts, day_of
    from stream_scorer.core.features import missing_fraud_feature_rows, missing_fraud_features, risk_window

    rng = random.Random(7)
    now = time.time()
    first, _ = risk_window(now)
    seen_kinds = set()
    batch: tuple[list[float], list[FraudState], list[list[float]], list[list[str]]] = ([], [], [], [])
    shared_mcc = DailyCounts()
    shared_mcc.add("tx", first + 1)
    for case in range(200):
        history = card_window([(f"t{i}", now - rng.choice([rng.uniform(1, 3000), rng.uniform(8 * 86400, 9 * 86400),
                                                           rng.uniform(0, 5) - 10]), 12.0, "US", "m")
                               for i in range(rng.randint(0, 3))])  # inside the window, too old, or after ``now``
        merchant, mcc = DailyCounts(), DailyCounts()
        if rng.random() < 0.5:
            merchant.add("tx", first + rng.randint(0, 27))
        if rng.random() < 0.5:
            mcc.add("tx", rng.choice([first + 3, day_of(now)]))  # inside, or after the label-known window
        state = FraudState(history, merchant, mcc)
        row = fraud_features(now, 10.0, "US", state)
        scanned = missing_fraud_features(now, state)
        assert missing_fraud_feature_rows([now], [state], [row]) == [scanned], case
        seen_kinds.add(tuple(scanned))
        shared = FraudState(history, merchant, shared_mcc)
        for ts, s in ((now, state), (now - rng.choice([0, 86400, 40 * 86400]), shared)):
            r = fraud_features(ts, 10.0, "US", s)
            for part, value in zip(batch, (ts, s, r, missing_fraud_features(ts, s)), strict=True):
                part.append(value)  # type: ignore[arg-type]
    assert len(seen_kinds) > 4  # every combination of missing entities was exercised
    # the batch version (MCC counters shared by rows of several days) lists the same, in new lists
    rows_missing = missing_fraud_feature_rows(*batch[:3])
    assert rows_missing == batch[3]
    assert len({id(m) for m in rows_missing}) == len(rows_missing)
    assert len(set(map(tuple, batch[3]))) > 4
