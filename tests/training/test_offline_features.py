"""Point-in-time correctness: an offline feature equals what the online update rules give after replaying only
what was known before the event (earlier transactions, labels that had arrived), and nothing later leaks in."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stream_scorer.core.feature_state import InMemoryFeatureState, LabelUpdate, SessionUpdate, TransactionUpdate
from stream_scorer.core.features import (
    FRAUD_FEATURE_NAMES,
    PERSONALIZATION_FEATURE_NAMES,
    fraud_features,
    personalization_features,
)
from training.offline_features import epoch_seconds, fraud_feature_frame, personalization_feature_frame
from training.simulate.sessions import SimulatedSessions
from training.simulate.transactions import SimulatedTransactions


def _tx_updates(tx: pd.DataFrame) -> list[TransactionUpdate]:
    return [TransactionUpdate(r.transaction_id, r.card_id, ts, r.transaction_amount, r.country_code or None,
                              r.merchant_id, r.mcc_code)
            for r, ts in zip(tx.itertuples(index=False), epoch_seconds(tx["timestamp"]), strict=True)]


def _label_updates(labels: pd.DataFrame) -> list[tuple[float, LabelUpdate]]:
    arrivals = epoch_seconds(labels["timestamp"])
    tx_times = epoch_seconds(labels["transaction_timestamp"])
    return [(float(a), LabelUpdate(r.transaction_id, r.merchant_id, r.mcc_code, float(t), bool(r.is_fraud)))
            for r, a, t in zip(labels.itertuples(index=False), arrivals, tx_times, strict=True)]


def _chosen_events(frame: pd.DataFrame, n: int = 24) -> list[int]:
    """Frauds of each scenario, events whose merchant risk already counts arrived labels, and a spread."""
    rng = np.random.default_rng(0)
    picks: set[int] = set()
    for _, group in frame.loc[frame["label"] == 1].groupby("scenario"):
        picks.update(rng.choice(group.index.to_numpy(), size=min(3, len(group)), replace=False).tolist())
    risky = frame.index[frame["merchant_fraud_rate_28d"] > 0.02].to_numpy()
    picks.update(rng.choice(risky, size=min(6, len(risky)), replace=False).tolist())
    busy = frame.index[frame["card_tx_count_24h"] >= 3].to_numpy()
    picks.update(rng.choice(busy, size=min(3, len(busy)), replace=False).tolist())
    picks.update(np.linspace(0, len(frame) - 1, n - len(picks)).astype(int).tolist())
    return sorted(picks)


def test_fraud_features_equal_a_fresh_replay_of_only_what_was_known(
        small_transactions: SimulatedTransactions, small_fraud_features: pd.DataFrame) -> None:
    tx = small_transactions.transactions.sort_values("timestamp", kind="stable").reset_index(drop=True)
    updates = _tx_updates(tx)
    labels = _label_updates(small_transactions.labels)
    frame = small_fraud_features
    assert list(frame.columns[-len(FRAUD_FEATURE_NAMES):]) == list(FRAUD_FEATURE_NAMES)
    assert (frame["transaction_id"] == tx["transaction_id"]).all()
    chosen = _chosen_events(frame)
    assert frame.loc[chosen, "merchant_fraud_rate_28d"].max() > 0.02  # some chosen events read arrived labels
    for i in chosen:
        event = updates[i]
        state = InMemoryFeatureState()
        for earlier in updates[:i]:  # every transaction before it, in order
            state.apply_transaction(earlier)
        for arrival, label in labels:  # every label that had arrived before it
            if arrival < event.ts:
                state.apply_label(label)
        online = fraud_features(event.ts, event.amount, event.country,
                                state.fraud_state(event.card_id, event.merchant_id, event.mcc_code))
        offline = frame.loc[i, list(FRAUD_FEATURE_NAMES)].to_numpy(dtype=np.float64)
        assert offline.tolist() == online, f"transaction {event.transaction_id} differs"


def _merchant_history(label_arrival_day: float | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Merchant m: a fraud on day 0, genuine traffic on days 1..12, the transaction under test on day 10."""
    t0 = pd.Timestamp("2024-01-01T12:00:00Z")
    rows = [("x", t0, "card_a", 100.0, True)]
    rows += [(f"g{d}", t0 + pd.Timedelta(days=d), f"card_{d}", 20.0, False) for d in range(1, 13) if d != 10]
    rows.append(("e", t0 + pd.Timedelta(days=10), "card_e", 30.0, False))
    tx = pd.DataFrame(rows, columns=["transaction_id", "timestamp", "card_id", "transaction_amount", "is_fraud"])
    tx = tx.assign(merchant_id="m", mcc_code="5411", country_code="US").sort_values("timestamp")
    labels = pd.DataFrame(columns=["transaction_id", "card_id", "merchant_id", "mcc_code", "transaction_timestamp",
                                   "timestamp", "is_fraud"])
    if label_arrival_day is not None:
        labels = pd.DataFrame([{"transaction_id": "x", "card_id": "card_a", "merchant_id": "m", "mcc_code": "5411",
                                "transaction_timestamp": t0,
                                "timestamp": t0 + pd.Timedelta(days=label_arrival_day), "is_fraud": True}])
    return tx, labels


def _features_of(frame: pd.DataFrame, transaction_id: str) -> pd.Series:
    return frame.loc[frame["transaction_id"] == transaction_id, list(FRAUD_FEATURE_NAMES)].iloc[0]


def test_a_label_arriving_after_the_event_does_not_change_its_features() -> None:
    no_label = fraud_feature_frame(*_merchant_history(None))
    late = fraud_feature_frame(*_merchant_history(10.5))  # arrives half a day after transaction "e"
    pd.testing.assert_series_equal(_features_of(no_label, "e"), _features_of(late, "e"))
    # The same label arriving before "e" is counted: day 0 is inside e's known-label window (days -25..2).
    early = fraud_feature_frame(*_merchant_history(9.0))
    before, after = _features_of(no_label, "e"), _features_of(early, "e")
    assert after["merchant_fraud_rate_28d"] > before["merchant_fraud_rate_28d"]
    assert after["mcc_fraud_rate_28d"] > before["mcc_fraud_rate_28d"]
    # ... and only from its arrival on: the genuine transaction of day 8 is scored before it arrived.
    pd.testing.assert_series_equal(_features_of(no_label, "g8"), _features_of(early, "g8"))


def test_a_label_arriving_the_same_instant_as_a_transaction_counts_only_afterwards() -> None:
    exact = fraud_feature_frame(*_merchant_history(10.0))  # arrives exactly when "e" happens
    no_label = fraud_feature_frame(*_merchant_history(None))
    pd.testing.assert_series_equal(_features_of(no_label, "e"), _features_of(exact, "e"))
    assert _features_of(exact, "g11")["merchant_fraud_rate_28d"] > _features_of(no_label, "g11")[
        "merchant_fraud_rate_28d"]


def test_an_event_never_sees_itself_or_later_events(small_fraud_features: pd.DataFrame,
                                                    small_transactions: SimulatedTransactions) -> None:
    tx = small_transactions.transactions
    first_of_card = ~tx["card_id"].duplicated()
    frame = small_fraud_features
    assert (frame.loc[first_of_card.to_numpy(), "card_tx_count_7d"] == 0).all()
    # Truncating the history after an event leaves its features unchanged.
    cut = len(tx) // 2
    head = fraud_feature_frame(tx.iloc[:cut], small_transactions.labels)
    pd.testing.assert_frame_equal(head[list(FRAUD_FEATURE_NAMES)], frame.iloc[:cut][list(FRAUD_FEATURE_NAMES)])


def test_personalization_features_equal_a_fresh_replay(small_sessions: SimulatedSessions) -> None:
    events = small_sessions.events.sort_values("timestamp", kind="stable").reset_index(drop=True)
    frame = personalization_feature_frame(events)
    assert list(frame.columns[-len(PERSONALIZATION_FEATURE_NAMES):]) == list(PERSONALIZATION_FEATURE_NAMES)
    times = epoch_seconds(events["timestamp"])
    updates = [SessionUpdate(r.event_id, r.user_id, ts, r.event_type, r.item_id, r.item_category, r.item_price,
                             r.session_id) for r, ts in zip(events.itertuples(index=False), times, strict=True)]
    view_rows = np.flatnonzero(events["event_type"].to_numpy() == "view")
    rng = np.random.default_rng(1)
    late_in_session = [i for i in view_rows if frame.loc[np.searchsorted(view_rows, i), "session_event_count"] >= 3]
    chosen = sorted(set(rng.choice(view_rows, 12, replace=False).tolist())
                    | set(rng.choice(late_in_session, 8, replace=False).tolist()))
    for i in chosen:
        event = updates[i]
        state = InMemoryFeatureState()
        for earlier in updates[:i]:
            state.apply_session_event(earlier)
        online = personalization_features(event.ts, event.item_id, event.category, event.price, event.session_id,
                                          state.personalization_state(event.user_id, event.item_id))
        row = frame.loc[frame["event_id"] == event.event_id, list(PERSONALIZATION_FEATURE_NAMES)]
        assert row.to_numpy(dtype=np.float64)[0].tolist() == online, f"event {event.event_id} differs"


@pytest.mark.parametrize("event_types", [("view",), ("view", "cart", "purchase")])
def test_personalization_rows_and_labels(small_sessions: SimulatedSessions, event_types: tuple[str, ...]) -> None:
    frame = personalization_feature_frame(small_sessions.events, event_types=event_types)
    expected = small_sessions.events["event_type"].isin(event_types).sum()
    assert len(frame) == expected
    assert set(frame["label"].unique()) <= {0, 1}
    assert frame["label"].sum() > 0
