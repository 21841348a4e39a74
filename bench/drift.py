"""Drift monitoring benchmark: cost of ``DriftTracker.observe`` per scored row, and of one publication.

    python bench/drift.py [--rows 200000]

Baselines from ``training/baselines.py`` on synthetic rows of the fraud model's 22 features; monitored: the
score plus all 22 features (metadata without ``feature_importance``) or plus the top 8 (with it). The publish
interval is set out of reach while observing, so the figures are the per-batch path alone; CPU time of
the process (``time.process_time``), so that other load on the machine does not inflate them.
"""

from __future__ import annotations

import sys
from pathlib import Path

# ruff: noqa: E402 - running this file puts bench/ on the import path, where bench/http.py shadows the standard
# library's ``http`` (prometheus_client imports it): drop that folder, add the project root, then import
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import time
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry

from stream_scorer.core.features import FRAUD_FEATURE_NAMES
from stream_scorer.metrics import Metrics
from stream_scorer.models.base import ModelMetadata
from stream_scorer.monitoring import DriftTracker
from training.baselines import feature_baseline, score_baseline


def _metadata(with_importance: bool) -> ModelMetadata:
    rng = np.random.default_rng(0)
    x = rng.gamma(1.5, 2.0, size=(50_000, len(FRAUD_FEATURE_NAMES)))
    raw: dict[str, Any] = {"score_baseline": score_baseline(rng.beta(1.0, 30.0, 50_000)),
                           "feature_baseline": feature_baseline(x, FRAUD_FEATURE_NAMES)}
    if with_importance:
        raw["feature_importance"] = dict(zip(FRAUD_FEATURE_NAMES, rng.dirichlet(np.ones(22)).tolist(), strict=True))
    return ModelMetadata(name="fraud", version="v1", framework="xgboost", feature_names=FRAUD_FEATURE_NAMES,
                         thresholds={}, defaults={}, metrics={}, path=Path("."), raw=raw)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(1)
    x = rng.gamma(1.5, 2.0, size=(args.rows, len(FRAUD_FEATURE_NAMES)))
    scores = rng.beta(1.0, 30.0, args.rows)
    for with_importance in (False, True):
        meta = _metadata(with_importance)
        columns = "score + top 8 features" if with_importance else "score + 22 features"
        for batch in (1, 10, 100, 1000):
            tracker = DriftTracker(Metrics(CollectorRegistry()), publish_interval=1e9)
            tracker.observe("fraud", meta, FRAUD_FEATURE_NAMES, x[:batch], scores[:batch])  # builds the monitor
            n = (args.rows // batch) * batch
            start = time.process_time()
            for i in range(0, n, batch):
                tracker.observe("fraud", meta, FRAUD_FEATURE_NAMES, x[i:i + batch], scores[i:i + batch])
            per_row = (time.process_time() - start) / n * 1e6
            print(f"{columns:<24} batch {batch:>5}: {per_row:6.2f} us per row")
        start = time.process_time()
        for _ in range(20):
            tracker.publish()
        print(f"{columns:<24} publish (full 10,000-row window): {(time.process_time() - start) / 20 * 1e3:.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
