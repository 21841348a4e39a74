"""Small, fixed simulated histories shared by the training tests (session-scoped: simulated once)."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from training.offline_features import fraud_feature_frame
from training.simulate.sessions import SessionSimConfig, SimulatedSessions, simulate_sessions
from training.simulate.transactions import SimulatedTransactions, TransactionSimConfig, simulate_transactions

END = datetime(2024, 3, 1, 12, tzinfo=UTC)
SMALL_TX = TransactionSimConfig(n_cards=500, n_merchants=150, days=45, end=END, seed=3,
                                compromised_merchants_per_day=0.05, compromised_cards_per_day=1.0,
                                card_testing_per_day=0.5)
SMALL_SESSIONS = SessionSimConfig(n_users=250, days=28, end=END, seed=3)


@pytest.fixture(scope="session")
def small_transactions() -> SimulatedTransactions:
    return simulate_transactions(SMALL_TX)


@pytest.fixture(scope="session")
def small_sessions() -> SimulatedSessions:
    return simulate_sessions(SMALL_SESSIONS)


@pytest.fixture(scope="session")
def small_fraud_features(small_transactions: SimulatedTransactions) -> pd.DataFrame:
    return fraud_feature_frame(small_transactions.transactions, small_transactions.labels)
