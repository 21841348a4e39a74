"""The default fraud model on the project's default simulated history (slow: the full `make train` data)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from training.pipeline import train
from training.prepare import TrainOptions


@pytest.mark.slow
def test_default_fraud_model_beats_the_logistic_regression_baseline(tmp_path: Path) -> None:
    result = train(TrainOptions(kind="fraud", model_dir=tmp_path, data_dir=None,
                                sim_end=datetime(2024, 6, 1, tzinfo=UTC)))
    metrics = result.metadata["metrics"]
    assert metrics["average_precision"] > metrics["baseline_logreg_average_precision"] + 0.05
    assert metrics["auc_roc"] > 0.85
    for scenario in ("card_testing", "compromised_card", "compromised_merchant"):
        assert metrics[f"recall_at_review_{scenario}"] > 0.3, scenario
