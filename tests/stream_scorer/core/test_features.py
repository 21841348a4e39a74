from __future__ import annotations

import random
import time

from stream_scorer.core.features import (
    CardTx,
    FraudState,
    PersonalizationState,
    UserEvent,
    fraud_features,
    personalization_features,
)


def test_features_do_not_depend_on_the_order_of_the_history() -> None:
    """Redis returns a window in time order, a batch merge appends, a replay keeps arrival order: float sums
    must come out bit-identical anyway."""
    rng = random.Random(3)
    now = time.time()
    history = [CardTx(f"t{i}", now - rng.uniform(1, 3000), round(rng.uniform(0.1, 500), 2), "US", "m")
               for i in range(40)]
    shuffled = history[:]
    rng.shuffle(shuffled)
    assert fraud_features(now, 10.0, "US", FraudState(history)) == fraud_features(now, 10.0, "US", FraudState(shuffled))
    events = [UserEvent(f"e{i}", now - rng.uniform(1, 3000), "purchase", "books", round(rng.uniform(1, 90), 2),
                        "i1", "s1") for i in range(40)]
    mixed = events[:]
    rng.shuffle(mixed)
    assert personalization_features(now, "i1", "books", 20.0, "s1", PersonalizationState(events)) == \
        personalization_features(now, "i1", "books", 20.0, "s1", PersonalizationState(mixed))
