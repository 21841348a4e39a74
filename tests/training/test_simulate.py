from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from schemas.events import FraudLabel, SessionEvent, TransactionEvent
from stream_scorer.core.geo import COUNTRY_CENTROIDS
from tests.training.conftest import END, SMALL_SESSIONS, SMALL_TX
from training.simulate.sessions import SessionSimConfig, conversion_labels, simulate_sessions
from training.simulate.transactions import SCENARIOS, SimulatedTransactions, simulate_transactions

TX_COLUMNS = ["transaction_id", "timestamp", "card_id", "merchant_id", "mcc_code", "country_code",
              "transaction_amount", "is_fraud", "scenario"]
LABEL_COLUMNS = ["transaction_id", "card_id", "merchant_id", "mcc_code", "transaction_timestamp", "timestamp",
                 "is_fraud"]
SESSION_COLUMNS = ["event_id", "timestamp", "user_id", "session_id", "item_id", "item_category", "item_price",
                   "event_type"]


def test_transactions_are_deterministic_for_a_seed(small_transactions: SimulatedTransactions) -> None:
    again = simulate_transactions(SMALL_TX)
    pd.testing.assert_frame_equal(small_transactions.transactions, again.transactions)
    pd.testing.assert_frame_equal(small_transactions.labels, again.labels)
    other = simulate_transactions(replace(SMALL_TX, seed=SMALL_TX.seed + 1))
    assert not other.transactions["transaction_amount"].equals(small_transactions.transactions["transaction_amount"])


def test_transactions_follow_the_stream_schema(small_transactions: SimulatedTransactions) -> None:
    tx = small_transactions.transactions
    assert list(tx.columns) == TX_COLUMNS
    assert tx["transaction_id"].is_unique
    assert tx["timestamp"].is_monotonic_increasing
    assert tx["timestamp"].min() >= pd.Timestamp(END) - pd.Timedelta(days=SMALL_TX.days)
    assert tx["timestamp"].max() < pd.Timestamp(END)
    assert tx["card_id"].str.fullmatch(r"card_\d{8}").all()
    assert tx["merchant_id"].str.fullmatch(r"merchant_\d{5}").all()
    assert set(tx["country_code"]) <= set(COUNTRY_CENTROIDS)
    assert set(tx["scenario"]) <= {"genuine", *SCENARIOS}
    assert (tx["is_fraud"] == (tx["scenario"] != "genuine")).all()
    for row in tx.sample(200, random_state=0).to_dict("records"):
        event = TransactionEvent.model_validate(row)
        assert event.card_id == row["card_id"]


def test_every_scenario_occurs_and_frauds_get_delayed_labels(small_transactions: SimulatedTransactions) -> None:
    tx, labels = small_transactions.transactions, small_transactions.labels
    assert set(tx.loc[tx["is_fraud"], "scenario"]) == set(SCENARIOS)
    assert list(labels.columns) == LABEL_COLUMNS
    assert set(labels["transaction_id"]) == set(tx.loc[tx["is_fraud"], "transaction_id"])
    delay_days = (labels["timestamp"] - labels["transaction_timestamp"]).dt.total_seconds() / 86_400
    assert delay_days.between(1.0, 20.0).all()
    assert (delay_days > 7).any() and (delay_days < 7).any()
    for row in labels.head(50).to_dict("records"):
        FraudLabel.model_validate(row)


def test_card_testing_is_small_amounts_then_large() -> None:
    sim = simulate_transactions(replace(SMALL_TX, card_testing_per_day=2.0))
    testing = sim.transactions.loc[sim.transactions["scenario"] == "card_testing"]
    assert (testing["transaction_amount"] < 5).sum() > (testing["transaction_amount"] >= 150).sum() > 0


def test_default_fraud_rate_is_in_the_target_band() -> None:
    sim = simulate_transactions(replace(SMALL_TX, n_cards=2_000, n_merchants=800, days=30,
                                        compromised_merchants_per_day=0.12 * 0.4,
                                        compromised_cards_per_day=2.2 * 0.4, card_testing_per_day=1.0 * 0.4))
    assert 0.003 <= sim.transactions["is_fraud"].mean() <= 0.012


def test_sessions_are_deterministic_and_follow_the_schema() -> None:
    first, second = simulate_sessions(SMALL_SESSIONS), simulate_sessions(SMALL_SESSIONS)
    pd.testing.assert_frame_equal(first.events, second.events)
    events = first.events
    assert list(events.columns) == SESSION_COLUMNS
    assert events["event_id"].is_unique
    assert events["timestamp"].is_monotonic_increasing
    assert set(events["event_type"]) == {"view", "cart", "purchase"}
    assert events["user_id"].str.fullmatch(r"user_\d{8}").all()
    assert (events["item_id"] == "item_" + events["item_category"] + "_"
            + events["item_id"].str.rsplit("_", n=1).str[-1]).all()
    for row in events.sample(200, random_state=0).to_dict("records"):
        SessionEvent.model_validate(row)
    other = simulate_sessions(SessionSimConfig(n_users=250, days=28, end=END, seed=4))
    assert len(other.events) != len(events) or not other.events["item_id"].equals(events["item_id"])


def test_conversion_label_marks_views_bought_later_in_the_session() -> None:
    t0 = pd.Timestamp("2024-01-01", tz="UTC")
    events = pd.DataFrame({
        "session_id": ["s1", "s1", "s1", "s1", "s2", "s1"],
        "item_id": ["a", "b", "a", "a", "a", "b"],
        "event_type": ["view", "view", "cart", "purchase", "view", "view"],
        "timestamp": [t0, t0 + pd.Timedelta(seconds=1), t0 + pd.Timedelta(seconds=2),
                      t0 + pd.Timedelta(seconds=3), t0 + pd.Timedelta(seconds=4), t0 + pd.Timedelta(seconds=5)],
    })
    # a viewed then bought in s1 -> 1; b never bought -> 0; cart/purchase rows -> 0; a viewed in s2 -> 0
    assert conversion_labels(events).tolist() == [1, 0, 0, 0, 0, 0]


def test_simulated_conversion_rate_is_plausible() -> None:
    events = simulate_sessions(SMALL_SESSIONS).events
    views = events["event_type"] == "view"
    rate = conversion_labels(events)[views].mean()
    assert 0.02 < rate < 0.15
    assert np.isfinite(events["item_price"]).all()


@pytest.mark.parametrize(("cards", "days"), [(400, 20), (200, 40)])
def test_history_size_scales_with_config(cards: int, days: int) -> None:
    base = simulate_transactions(replace(SMALL_TX, n_cards=200, days=20))
    bigger = simulate_transactions(replace(SMALL_TX, n_cards=cards, days=days))
    assert len(bigger.transactions) > 1.5 * len(base.transactions)
