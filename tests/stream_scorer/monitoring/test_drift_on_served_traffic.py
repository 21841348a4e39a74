"""Drift gauges on traffic served by the real scorer and a really trained model: near zero for traffic drawn
like the training history, well above the alarm level for shifted traffic."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from prometheus_client import CollectorRegistry

from schemas.events import TransactionEvent
from stream_scorer.bootstrap import MODEL_FEATURES
from stream_scorer.core.feature_state import LabelUpdate
from stream_scorer.core.features import NOT_DRIFT_MONITORED
from stream_scorer.core.identified import identify_transaction
from stream_scorer.core.scorer import Scorer
from stream_scorer.metrics import Metrics
from stream_scorer.models.registry import ModelRegistry
from stream_scorer.monitoring import DriftTracker
from tests.support.fakes import InMemoryFeatureStore
from training.prepare import TrainOptions
from training.simulate.transactions import TransactionSimConfig, simulate_transactions

pytestmark = pytest.mark.slow

END = datetime(2024, 3, 1, 12, tzinfo=UTC)
TRAIN_END = datetime(2024, 2, 20, 12, tzinfo=UTC)  # the split training derives for 45 days ending at END
WINDOW = 9000  # about the rows of the 16 training days: the served window covers the training period
STABLE, MAJOR = 0.1, 0.25  # the usual PSI reading


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.pipeline import train

    root = tmp_path_factory.mktemp("drift")
    train(TrainOptions(kind="fraud", model_dir=root / "artifacts", data_dir=None, seed=3, sim_entities=500,
                       sim_days=45, sim_end=END))
    return root / "artifacts"


def _traffic(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The configuration training simulated with (seed 3: the very history it trained on), up to the end of its
    training period; another seed is another world drawn by the same rules."""
    sim = simulate_transactions(TransactionSimConfig(n_cards=500, days=45, end=END, seed=seed))
    tx = sim.transactions
    return tx[tx["timestamp"] < TRAIN_END].sort_values("timestamp"), sim.labels.sort_values("timestamp")


async def _serve(model_dir: Path, transactions: pd.DataFrame, labels: pd.DataFrame, *, amount_factor: float = 1.0,
                 country: str | None = None) -> Metrics:
    """Replay a history through the scorer as the worker would (scored, then recorded; labels as they arrive)."""
    metrics = Metrics(CollectorRegistry())
    registry = ModelRegistry(model_dir, expected_features=MODEL_FEATURES)
    registry.refresh("fraud")
    scorer = Scorer(InMemoryFeatureStore(), registry, metrics, drift=DriftTracker(metrics, window=WINDOW,
                                                                                 publish_interval=0.0,
                                                                                 exclude=NOT_DRIFT_MONITORED))
    rows = transactions.to_dict("records")
    label_rows = labels.to_dict("records")
    next_label = 0
    for start in range(0, len(rows), 500):
        batch = rows[start:start + 500]
        first = batch[0]["timestamp"]
        known = []
        while next_label < len(label_rows) and label_rows[next_label]["timestamp"] <= first:
            lab = label_rows[next_label]
            known.append(LabelUpdate(lab["transaction_id"], lab["merchant_id"], lab["mcc_code"],
                                     lab["transaction_timestamp"].timestamp(), bool(lab["is_fraud"])))
            next_label += 1
        if known:
            await scorer.apply_labels(known)
        events = [TransactionEvent(card_id=r["card_id"], transaction_amount=round(r["transaction_amount"] *
                                                                                    amount_factor, 2),
                                   merchant_id=r["merchant_id"], mcc_code=r["mcc_code"],
                                   country_code=country or r["country_code"], transaction_id=r["transaction_id"],
                                   timestamp=r["timestamp"].to_pydatetime()) for r in batch]
        await scorer.score_transactions([identify_transaction(e, "unused", 0.0) for e in events],
                                        apply_updates=True)
    return metrics


def _psi(metrics: Metrics) -> tuple[float, dict[str, float]]:
    score = metrics.registry.get_sample_value("model_score_psi", {"model": "fraud", "version": "v1"})
    assert score is not None, "no score PSI published"
    features = {s.labels["feature"]: s.value for family in metrics.registry.collect()
                if family.name == "model_feature_psi" for s in family.samples if s.labels["version"] == "v1"}
    assert features, "no feature PSI published"
    assert not set(features) & NOT_DRIFT_MONITORED  # calendar features say nothing over a short window
    return score, features


async def test_traffic_like_the_training_data_stays_near_zero(model_dir: Path) -> None:
    transactions, labels = _traffic(seed=3)  # the training history itself, served through the online path
    score, features = _psi(await _serve(model_dir, transactions, labels))
    assert score < STABLE, score
    assert max(features.values()) < STABLE, features
    # another world drawn by the same rules: the score distribution stays stable too (merchant and MCC rates
    # are properties of the drawn world, so only the score is asserted here)
    transactions, labels = _traffic(seed=11)
    score, _ = _psi(await _serve(model_dir, transactions, labels))
    assert score < STABLE, score


async def test_shifted_traffic_moves_the_gauges(model_dir: Path) -> None:
    transactions, labels = _traffic(seed=3)
    score, features = _psi(await _serve(model_dir, transactions, labels, amount_factor=6.0, country="NG"))
    assert score > MAJOR, score
    shifted = {name for name, value in features.items() if value > MAJOR}
    assert shifted & {"amount", "card_amount_sum_24h", "card_amount_sum_7d", "card_country_is_foreign",
                      "card_distance_from_usual_km"}, features
