"""One drift monitor per served (model, version), published as gauges at most once per interval."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence

import numpy as np

from stream_scorer.metrics import Metrics, drop_series
from stream_scorer.models.base import ModelMetadata
from stream_scorer.monitoring.drift import DEFAULT_MIN_ROWS, DEFAULT_TOP_FEATURES, DEFAULT_WINDOW, DriftMonitor


class DriftTracker:
    """Drift of every model version this process scores. Not thread-safe: call it from one event loop.

    ``observe`` publishes when ``publish_interval`` seconds (by ``clock``) have passed since the last publication,
    so the PSI computation (about a millisecond per model for a full window) runs at most once per interval.
    """

    def __init__(self, metrics: Metrics, *, window: int = DEFAULT_WINDOW, min_rows: int = DEFAULT_MIN_ROWS,
                 publish_interval: float = 1.0, top_features: int = DEFAULT_TOP_FEATURES,
                 clock: Callable[[], float] = time.monotonic, exclude: Collection[str] = ()) -> None:
        self._metrics = metrics
        self._window = window
        self._min_rows = min_rows
        self._top_features = top_features
        self._exclude = frozenset(exclude)
        self._interval = publish_interval
        self._clock = clock
        self._next_publish = float("-inf")
        self._monitors: dict[tuple[str, str], DriftMonitor] = {}
        self._serving: dict[str, frozenset[str]] = {}

    def observe(self, model_name: str, metadata: ModelMetadata, feature_names: Sequence[str], x: np.ndarray,
                scores: np.ndarray) -> None:
        """Add a scored batch (``x`` in ``feature_names`` order); the monitor is built on the version's first batch."""
        key = (model_name, metadata.version)
        monitor = self._monitors.get(key)
        if monitor is None:
            serving = self._serving.get(model_name)
            if serving is not None and metadata.version not in serving:
                return  # a batch that started before a swap: that version's gauges are gone for good
            monitor = self._monitors[key] = DriftMonitor(metadata.raw, feature_names, window=self._window,
                                                          min_rows=self._min_rows,
                                                          top_features=self._top_features,
                                                          exclude=self._exclude)
        monitor.observe(x, scores)
        if self._clock() >= self._next_publish:
            self.publish()

    def publish(self) -> None:
        """Set the gauges of every monitor that has a baseline (PSI only from ``min_rows`` rows on)."""
        m = self._metrics
        for (model, version), monitor in self._monitors.items():
            if not monitor.active:
                continue
            report = monitor.report()
            m.drift_window_rows.labels(model, version).set(report.rows)
            if report.score is not None:
                m.score_psi.labels(model, version).set(report.score)
            for feature, value in report.features.items():
                m.feature_psi.labels(model, version, feature).set(value)
        self._next_publish = self._clock() + self._interval

    def retain(self, model_name: str, versions: Sequence[str]) -> None:
        """The versions of a model that serve now (after a swap); every other version is forgotten."""
        self._serving[model_name] = frozenset(versions)
        for name, version in list(self._monitors):
            if name == model_name and version not in versions:
                self.forget(name, version)

    def forget(self, model_name: str, version: str) -> None:
        """Drop a version (swapped out) and its gauges, so that no stale value stays exported."""
        monitor = self._monitors.pop((model_name, version), None)
        if monitor is None:
            return
        m = self._metrics
        drop_series(m.drift_window_rows, model_name, version)  # label sets exist only once published
        drop_series(m.score_psi, model_name, version)
        for feature in monitor.features:
            drop_series(m.feature_psi, model_name, version, feature)

    def monitor(self, model_name: str, version: str) -> DriftMonitor | None:
        return self._monitors.get((model_name, version))
