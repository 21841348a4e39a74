"""Drift monitoring: PSI against the training baselines, the sliding window, and the gauges."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from stream_scorer.metrics import Metrics
from stream_scorer.models.base import ModelMetadata
from stream_scorer.monitoring import DriftMonitor, DriftTracker, monitored_features, psi
from tests.support.artifacts import write_xgboost_artifact
from training.baselines import binned, feature_baseline, score_baseline

NAMES = ("amount", "hour_of_day", "is_night", "card_tx_count_24h", "card_amount_ratio_7d")


def _rows(rng: np.random.Generator, n: int, *, amount_factor: float = 1.0,
          score_shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic served rows in ``NAMES`` order and their scores (the reference distribution when unshifted)."""
    hour = rng.integers(0, 24, n).astype(np.float64)
    x = np.column_stack([
        rng.lognormal(3.5, 1.0, n) * amount_factor,
        hour,
        (hour < 6).astype(np.float64),
        rng.poisson(4.0, n).astype(np.float64),
        rng.gamma(2.0, 0.5, n),
    ])
    scores = np.clip(rng.beta(1.0, 30.0, n) + score_shift, 0.0, 1.0)
    return x, scores


def _raw(seed: int = 0, **extra: Any) -> dict[str, Any]:
    """Metadata with baselines written by training/baselines.py on 50k reference rows."""
    x, scores = _rows(np.random.default_rng(seed), 50_000)
    return {"name": "fraud", "version": "v7", "feature_names": list(NAMES), "score_baseline": score_baseline(scores),
            "feature_baseline": feature_baseline(x, NAMES), **extra}


def _metadata(raw: dict[str, Any], version: str = "v7") -> ModelMetadata:
    return ModelMetadata(name="fraud", version=version, framework="xgboost", feature_names=NAMES, thresholds={},
                         defaults={}, metrics={}, path=Path("unused"), raw={**raw, "version": version})


def _feed(monitor: DriftMonitor, x: np.ndarray, scores: np.ndarray, batch: int) -> None:
    for start in range(0, len(scores), batch):
        monitor.observe(x[start:start + batch], scores[start:start + batch])


def _gauge(metrics: Metrics, name: str, version: str = "v7", **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, {"model": "fraud", "version": version, **labels})


# ------------------------------------------------------------------------------------------------------- psi
def test_psi_matches_a_hand_computed_value() -> None:
    expected = np.array([0.5, 0.3, 0.2])
    actual = np.array([0.4, 0.4, 0.2])
    by_hand = (0.4 - 0.5) * math.log(0.4 / 0.5) + (0.4 - 0.3) * math.log(0.4 / 0.3)  # ≈ 0.05108
    assert psi(expected, actual) == pytest.approx(by_hand, rel=1e-12)
    assert psi(expected, expected) == 0.0


def test_psi_floors_empty_bins_instead_of_going_infinite() -> None:
    value = psi(np.array([0.5, 0.5]), np.array([1.0, 0.0]))
    assert value == pytest.approx(0.5 * math.log(1.0 / 0.5) + (1e-4 - 0.5) * math.log(1e-4 / 0.5))
    with pytest.raises(ValueError, match="bins"):
        psi(np.array([0.5, 0.5]), np.array([1.0]))


# --------------------------------------------------------------------------------------------------- monitor
@pytest.mark.parametrize("batch", [1, 1000])
def test_rows_from_the_reference_distribution_give_psi_near_zero(batch: int) -> None:
    monitor = DriftMonitor(_raw(), NAMES)
    _feed(monitor, *_rows(np.random.default_rng(1), 10_000), batch)
    report = monitor.report()
    assert report.rows == 10_000
    assert report.score is not None and report.score < 0.02
    assert set(report.features) == set(NAMES)
    assert max(report.features.values()) < 0.02, report.features


def test_a_shift_shows_on_exactly_the_shifted_features_and_the_score() -> None:
    monitor = DriftMonitor(_raw(), NAMES)
    _feed(monitor, *_rows(np.random.default_rng(2), 10_000, amount_factor=3.0, score_shift=0.05), 500)
    report = monitor.report()
    assert report.score is not None and report.score > 0.25
    assert {name for name, value in report.features.items() if value > 0.25} == {"amount"}
    assert max(v for name, v in report.features.items() if name != "amount") < 0.02


def test_the_window_forgets_old_rows() -> None:
    monitor = DriftMonitor(_raw(), NAMES, window=10_000)
    rng = np.random.default_rng(3)
    _feed(monitor, *_rows(rng, 10_000, amount_factor=3.0, score_shift=0.05), 700)
    assert monitor.report().features["amount"] > 0.25
    _feed(monitor, *_rows(rng, 10_000), 300)
    report = monitor.report()
    assert report.rows == 10_000
    assert report.score is not None and report.score < 0.02
    assert max(report.features.values()) < 0.02, report.features


@pytest.mark.parametrize("batch", [1, 7, 64, 65, 333, 2500])
def test_the_window_holds_exactly_the_last_rows_binned_like_training(batch: int) -> None:
    raw = _raw()
    monitor = DriftMonitor(raw, NAMES, window=1000, min_rows=1)
    x, scores = _rows(np.random.default_rng(4), 3210, amount_factor=2.0)
    x[::97, 0] = np.nan  # searchsorted puts NaN in the last bin, and so must the monitor
    x[::89, 3] = np.inf
    x[::83, 4] = -np.inf
    _feed(monitor, x, scores, batch)
    last_x, last_scores = x[-1000:], scores[-1000:]
    report = monitor.report()
    base = raw["score_baseline"]
    assert report.score == pytest.approx(psi(np.array(base["fractions"]),
                                             np.array(binned(last_scores, np.array(base["decile_edges"])))))
    for j, name in enumerate(NAMES):
        ref = raw["feature_baseline"][name]
        direct = psi(np.array(ref["fractions"]), np.array(binned(last_x[:, j], np.array(ref["quantile_edges"]))))
        assert report.features[name] == pytest.approx(direct), name


def test_no_psi_below_min_rows() -> None:
    monitor = DriftMonitor(_raw(), NAMES, min_rows=500)
    x, scores = _rows(np.random.default_rng(5), 500)
    _feed(monitor, x[:499], scores[:499], 100)
    report = monitor.report()
    assert (report.rows, report.score, report.features) == (499, None, {})
    monitor.observe(x[499:], scores[499:])
    report = monitor.report()
    assert report.rows == 500 and report.score is not None and set(report.features) == set(NAMES)


def test_top_features_follow_the_training_importance() -> None:
    importance = {"amount": 0.1, "hour_of_day": 0.05, "is_night": 0.0, "card_tx_count_24h": 0.5,
                  "card_amount_ratio_7d": 0.35}
    monitor = DriftMonitor(_raw(feature_importance=importance), NAMES, top_features=3)
    assert monitor.features == ("card_tx_count_24h", "card_amount_ratio_7d", "amount")
    assert DriftMonitor(_raw(), NAMES, top_features=3).features == NAMES  # no importance: every baseline feature
    raw = _raw(feature_importance=importance)
    del raw["feature_baseline"]["card_amount_ratio_7d"]  # the next most important one with a baseline takes its place
    assert monitored_features(raw, NAMES, 3) == ["card_tx_count_24h", "amount", "hour_of_day"]


def test_features_are_found_by_name_whatever_the_serving_order() -> None:
    order = NAMES[::-1]
    x, scores = _rows(np.random.default_rng(6), 5000, amount_factor=3.0)
    monitor = DriftMonitor(_raw(), order)
    monitor.observe(x[:, ::-1].copy(), scores)
    report = monitor.report()
    assert {name for name, value in report.features.items() if value > 0.25} == {"amount"}


def test_missing_or_broken_baselines_are_not_monitored() -> None:
    raw = _raw()
    del raw["feature_baseline"]["hour_of_day"]
    raw["feature_baseline"]["is_night"] = {"quantile_edges": [0.0, 1.0], "fractions": [0.5, 0.5]}  # one short
    monitor = DriftMonitor(raw, NAMES)
    assert monitor.has_score and monitor.features == ("amount", "card_tx_count_24h", "card_amount_ratio_7d")
    without_score = DriftMonitor({"feature_baseline": raw["feature_baseline"]}, NAMES)
    assert not without_score.has_score and without_score.active
    x, scores = _rows(np.random.default_rng(7), 600)
    without_score.observe(x, scores)
    report = without_score.report()
    assert report.score is None and set(report.features) == {"amount", "card_tx_count_24h", "card_amount_ratio_7d"}


def test_a_batch_of_the_wrong_shape_is_refused() -> None:
    monitor = DriftMonitor(_raw(), NAMES)
    x, scores = _rows(np.random.default_rng(8), 10)
    with pytest.raises(ValueError, match="shape"):
        monitor.observe(x[:, :4], scores)
    with pytest.raises(ValueError, match="shape"):
        monitor.observe(x, scores[:9])


# --------------------------------------------------------------------------------------------------- tracker
class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_tracker_publishes_gauges_at_most_once_per_interval() -> None:
    metrics, clock = Metrics(CollectorRegistry()), _Clock()
    tracker = DriftTracker(metrics, min_rows=500, publish_interval=1.0, clock=clock)
    meta = _metadata(_raw())
    rng = np.random.default_rng(9)
    tracker.observe("fraud", meta, NAMES, *_rows(rng, 400))
    assert _gauge(metrics, "model_drift_window_rows") == 400  # first batch: published, but no PSI below 500 rows
    assert _gauge(metrics, "model_score_psi") is None
    assert _gauge(metrics, "model_feature_psi", feature="amount") is None

    clock.now += 0.5
    tracker.observe("fraud", meta, NAMES, *_rows(rng, 600, amount_factor=3.0))
    assert _gauge(metrics, "model_drift_window_rows") == 400  # within the interval: not yet
    clock.now += 0.5
    tracker.observe("fraud", meta, NAMES, *_rows(rng, 1, amount_factor=3.0))
    assert _gauge(metrics, "model_drift_window_rows") == 1001
    score_psi = _gauge(metrics, "model_score_psi")
    assert score_psi is not None and score_psi < 0.1
    amount = _gauge(metrics, "model_feature_psi", feature="amount")
    assert amount is not None and amount > 0.25
    hour = _gauge(metrics, "model_feature_psi", feature="hour_of_day")
    assert hour is not None and hour < 0.1

    tracker.observe("fraud", meta, NAMES, *_rows(rng, 99))
    assert _gauge(metrics, "model_drift_window_rows") == 1001
    tracker.publish()
    assert _gauge(metrics, "model_drift_window_rows") == 1100


def test_forget_removes_a_version_and_only_its_gauges() -> None:
    metrics = Metrics(CollectorRegistry())
    tracker = DriftTracker(metrics, min_rows=10, clock=_Clock())
    raw = _raw()
    rng = np.random.default_rng(10)
    for version in ("v7", "v8"):
        tracker.observe("fraud", _metadata(raw, version), NAMES, *_rows(rng, 50))
    tracker.publish()
    for version in ("v7", "v8"):
        assert _gauge(metrics, "model_score_psi", version) is not None
        assert _gauge(metrics, "model_feature_psi", version, feature="amount") is not None

    tracker.forget("fraud", "v7")
    assert tracker.monitor("fraud", "v7") is None
    assert _gauge(metrics, "model_drift_window_rows", "v7") is None
    assert _gauge(metrics, "model_score_psi", "v7") is None
    assert all(_gauge(metrics, "model_feature_psi", "v7", feature=name) is None for name in NAMES)
    assert _gauge(metrics, "model_drift_window_rows", "v8") == 50
    assert _gauge(metrics, "model_feature_psi", "v8", feature="amount") is not None
    tracker.publish()
    assert _gauge(metrics, "model_score_psi", "v7") is None
    tracker.forget("fraud", "v7")  # twice, or a version never seen: nothing to do
    tracker.forget("fraud", "v99")


def test_metadata_without_baselines_publishes_nothing(tmp_path: Path) -> None:
    metadata = ModelMetadata.read(write_xgboost_artifact(tmp_path, "fraud"))
    metrics = Metrics(CollectorRegistry())
    tracker = DriftTracker(metrics, min_rows=1, clock=_Clock())
    x = np.random.default_rng(11).random((600, len(metadata.feature_names)))
    tracker.observe("fraud", metadata, metadata.feature_names, x, np.full(600, 0.5))
    tracker.publish()
    monitor = tracker.monitor("fraud", "v1")
    assert monitor is not None and not monitor.active
    names = {s.name for family in metrics.registry.collect() for s in family.samples}
    assert not names & {"model_score_psi", "model_feature_psi", "model_drift_window_rows"}
    tracker.forget("fraud", "v1")


def test_excluded_features_are_never_monitored() -> None:
    from stream_scorer.core.features import FRAUD_FEATURE_NAMES, NOT_DRIFT_MONITORED
    from stream_scorer.monitoring import monitored_features

    rng = np.random.default_rng(3)
    x = rng.gamma(2.0, 3.0, size=(2000, len(FRAUD_FEATURE_NAMES)))
    raw = {"feature_baseline": feature_baseline(x, FRAUD_FEATURE_NAMES)}
    assert {"hour_of_day", "is_night", "is_weekend"} <= NOT_DRIFT_MONITORED
    everything = monitored_features(raw, FRAUD_FEATURE_NAMES)
    kept = monitored_features(raw, FRAUD_FEATURE_NAMES, exclude=NOT_DRIFT_MONITORED)
    assert "hour_of_day" in everything and kept == [n for n in everything if n not in NOT_DRIFT_MONITORED]
